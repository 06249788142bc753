"""Tests for orthobook.data: IDX parsing, checksummed downloads (local server only), MNIST
sequence views, Penn Treebank streams and loss conversions.

No test touches the network except a throw-away HTTP server on 127.0.0.1. Tests marked
``real_data`` use the files that ``python tests/fetch_real_data.py`` puts in
``tests/.real_data/`` and skip when they are absent.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import math
import socket
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from orthobook import data

HERE = Path(__file__).resolve().parent
SLICE = HERE / "data" / "mnist_slice"
REAL_MNIST = HERE / ".real_data" / "mnist"
REAL_PTB = HERE / ".real_data" / "ptb"
MNIST_NAMES = tuple(data.MNIST_MD5)


def md5(b: bytes) -> str:
    return hashlib.md5(b).hexdigest()


def idx_images(images: torch.Tensor) -> bytes:
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (2051, n, rows, cols))
    return header + images.to(torch.uint8).numpy().tobytes()


def idx_labels(labels: torch.Tensor) -> bytes:
    return (2049).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.to(torch.uint8).numpy().tobytes()


def tiny_mnist(n_train: int = 5, n_test: int = 3) -> dict[str, bytes]:
    """Raw IDX contents of a tiny MNIST-shaped data set, keyed by the standard names."""
    g = torch.Generator().manual_seed(0)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        out[f"{prefix}-images-idx3-ubyte"] = idx_images(torch.randint(0, 256, (n, 28, 28), generator=g))
        out[f"{prefix}-labels-idx1-ubyte"] = idx_labels(torch.randint(0, 10, (n,), generator=g))
    return out


def use_checksums_of(monkeypatch: pytest.MonkeyPatch, raw: dict[str, bytes]) -> None:
    """Make load_mnist expect the tiny files (gz MD5 of gzip.compress(mtime=0), content MD5)."""
    table = {name: (md5(gzip.compress(b, mtime=0)), md5(b)) for name, b in raw.items()}
    monkeypatch.setattr(data, "MNIST_MD5", table)


def real(directory: Path, what: str) -> Path:
    if not directory.is_dir() or not any(directory.iterdir()):
        pytest.skip(f"real {what} not fetched: run python tests/fetch_real_data.py")
    return directory


# --------------------------------------------------------------------------- local mirrors


class _Handler(http.server.BaseHTTPRequestHandler):
    files: dict[str, bytes] = {}

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = self.files.get(self.path)
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Keep the test output clean."""


@pytest.fixture
def server():
    """An HTTP server on 127.0.0.1 (free port); set ``files[path] = bytes`` to serve them."""
    handler = type("Handler", (_Handler,), {"files": {}})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    httpd.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.files = handler.files
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# --------------------------------------------------------------------------- IDX parser


def test_parse_idx_images_and_labels():
    images = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    labels = torch.tensor([7, 0, 9])
    parsed = data.parse_idx(idx_images(images))
    assert parsed.dtype == torch.uint8 and parsed.shape == (2, 3, 4)
    assert torch.equal(parsed.long(), images)
    assert data.parse_idx(idx_labels(labels)).tolist() == [7, 0, 9]


@pytest.mark.parametrize(
    "blob, match",
    [
        ((2050).to_bytes(4, "big") + bytes(8), "magic number 2050"),
        (b"\x1f\x8b\x08\x00", "magic number"),  # a gzip stream passed as raw IDX
        (b"\x00\x00", "truncated"),
        ((2051).to_bytes(4, "big") + (1).to_bytes(4, "big"), "truncated IDX header"),
        (idx_labels(torch.arange(5))[:-1], "truncated IDX file"),
        (idx_images(torch.zeros(2, 28, 28))[:-100], "truncated IDX file"),
        (idx_labels(torch.arange(5)) + b"\x00", "1 bytes beyond"),
    ],
)
def test_parse_idx_rejects_corrupt_files_naming_them(blob, match):
    with pytest.raises(ValueError, match=match) as err:
        data.parse_idx(blob, name="bad-file-idx")
    assert "bad-file-idx" in str(err.value)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 5), rows=st.integers(1, 6), cols=st.integers(1, 6), cut=st.integers(1, 20))
def test_parse_idx_round_trip_and_any_truncation_rejected(n, rows, cols, cut):
    images = torch.randint(0, 256, (n, rows, cols), generator=torch.Generator().manual_seed(n))
    blob = idx_images(images)
    assert torch.equal(data.parse_idx(blob).long(), images)
    with pytest.raises(ValueError, match="truncated"):
        data.parse_idx(blob[: max(0, len(blob) - cut)], name="f")


def test_parse_idx_rejects_non_bytes():
    with pytest.raises(TypeError, match="data"):
        data.parse_idx("not bytes")


def test_read_idx_raw_and_gz(tmp_path):
    blob = idx_labels(torch.tensor([1, 2, 3]))
    (tmp_path / "l").write_bytes(blob)
    (tmp_path / "l.gz").write_bytes(gzip.compress(blob))
    assert data.read_idx(tmp_path / "l").tolist() == [1, 2, 3]
    assert data.read_idx(tmp_path / "l.gz").tolist() == [1, 2, 3]


def test_read_idx_corrupt_gzip_names_file(tmp_path):
    bad = tmp_path / "broken.gz"
    bad.write_bytes(gzip.compress(idx_labels(torch.arange(50)))[:-10])
    with pytest.raises(ValueError, match="broken.gz"):
        data.read_idx(bad)
    bad.write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match="not a valid gzip"):
        data.read_idx(bad)


def test_committed_slice_is_the_start_of_the_mnist_test_set():
    images = data.read_idx(SLICE / "t10k-images-idx3-ubyte.gz")
    labels = data.read_idx(SLICE / "t10k-labels-idx1-ubyte.gz")
    assert images.shape == (1000, 28, 28) and labels.shape == (1000,)
    # The well-known first ten test labels of MNIST.
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(labels.tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0


# --------------------------------------------------------------------------- downloads


def test_download_falls_back_past_a_corrupt_mirror(server, tmp_path):
    good = gzip.compress(b"payload")
    server.files["/bad/f.gz"] = b"corrupted bytes"
    server.files["/good/f.gz"] = good
    mirrors = [f"{server.base}/bad/", f"{server.base}/good/"]
    path = data.download("f.gz", tmp_path, mirrors, md5=md5(good), timeout=5)
    assert path == tmp_path / "f.gz" and path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]  # no temporary file left


def test_download_accepts_matching_content_md5(server, tmp_path):
    recompressed = gzip.compress(b"payload", compresslevel=1, mtime=12345)
    server.files["/m/f.gz"] = recompressed
    path = data.download("f.gz", tmp_path, [f"{server.base}/m/"], md5="0" * 32, content_md5=md5(b"payload"))
    assert gzip.decompress(path.read_bytes()) == b"payload"


def test_download_all_mirrors_fail_lists_each_and_leaves_nothing(server, tmp_path):
    server.files["/bad/f.gz"] = b"corrupted bytes"
    mirrors = [f"{server.base}/bad/", f"{server.base}/missing/", closed_port_url()]
    with pytest.raises(data.DownloadError) as err:
        data.download("f.gz", tmp_path, mirrors, md5=md5(b"the real thing"), timeout=5)
    message = str(err.value)
    for mirror in mirrors:
        assert mirror + "f.gz" in message
    assert "does not match" in message  # checksum rejection of the corrupt mirror
    assert "404" in message
    assert list(tmp_path.iterdir()) == []


def test_download_replaces_a_corrupt_file_only_after_verification(server, tmp_path):
    (tmp_path / "f.gz").write_bytes(b"old corrupt cache")
    server.files["/bad/f.gz"] = b"still corrupt"
    with pytest.raises(data.DownloadError):
        data.download("f.gz", tmp_path, [f"{server.base}/bad/"], md5=md5(b"good"))
    assert (tmp_path / "f.gz").read_bytes() == b"old corrupt cache"
    server.files["/good/f.gz"] = b"good"
    data.download("f.gz", tmp_path, [f"{server.base}/good/"], md5=md5(b"good"))
    assert (tmp_path / "f.gz").read_bytes() == b"good"


@pytest.mark.parametrize(
    "kwargs, error",
    [({"mirrors": "http://x/"}, TypeError), ({"mirrors": []}, ValueError), ({"timeout": 0}, ValueError)],
)
def test_download_validates_arguments(tmp_path, kwargs, error):
    args = {"mirrors": ["http://127.0.0.1:9/"], "timeout": 1.0} | kwargs
    with pytest.raises(error, match="mirrors|timeout"):
        data.download("f", tmp_path, args["mirrors"], md5="0" * 32, timeout=args["timeout"])


# --------------------------------------------------------------------------- load_mnist


def test_load_mnist_downloads_into_torchvision_layout(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        server.files[f"/good/{name}.gz"] = gzip.compress(blob, mtime=0)
        server.files[f"/bad/{name}.gz"] = gzip.compress(blob[:-1], mtime=0)
    mirrors = (f"{server.base}/bad/", f"{server.base}/good/")
    mnist = data.load_mnist(tmp_path, mirrors=mirrors, timeout=5)
    assert mnist.train_images.shape == (5, 28, 28) and mnist.test_images.shape == (3, 28, 28)
    assert mnist.train_labels.dtype == torch.long
    assert torch.equal(mnist.test_images, data.parse_idx(raw["t10k-images-idx3-ubyte"]))
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(f"{n}.gz" for n in raw)
    server.files.clear()  # the cache is used from now on
    again = data.load_mnist(tmp_path, download=False)
    assert torch.equal(again.train_labels, mnist.train_labels)


def test_load_mnist_downloads_again_over_a_corrupt_cache(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    cache = tmp_path / "MNIST" / "raw"
    cache.mkdir(parents=True)
    for name, blob in raw.items():
        (cache / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
        server.files[f"/m/{name}.gz"] = gzip.compress(blob, mtime=0)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte.gz: MD5 .* downloading"):
        mnist = data.load_mnist(tmp_path, mirrors=(f"{server.base}/m",))  # no trailing slash
    assert torch.equal(mnist.test_labels, data.parse_idx(raw["t10k-labels-idx1-ubyte"]).long())


@pytest.mark.parametrize("compressed", [False, True])
def test_load_mnist_from_source_dir(tmp_path, monkeypatch, compressed):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        if compressed:
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(blob, compresslevel=1))  # content MD5 path
        else:
            (tmp_path / name).write_bytes(blob)
    mnist = data.load_mnist(source_dir=tmp_path)
    assert torch.equal(mnist.train_labels, data.parse_idx(raw["train-labels-idx1-ubyte"]).long())


def test_load_mnist_reuses_an_extracted_torchvision_cache(tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    cache = tmp_path / "MNIST" / "raw"
    cache.mkdir(parents=True)
    for name, blob in raw.items():
        (cache / name).write_bytes(blob)
    assert data.load_mnist(tmp_path, download=False, mirrors=("http://127.0.0.1:9/",)).test_labels.shape == (3,)


def test_load_mnist_missing_file_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download=True"):
        data.load_mnist(tmp_path, download=False)


def test_load_mnist_checksum_mismatch_names_file(tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_labels(torch.tensor([1, 2, 4])))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: MD5"):
        data.load_mnist(source_dir=tmp_path)


def test_load_mnist_count_mismatch_names_both_files(tmp_path, monkeypatch):
    raw = tiny_mnist()
    raw["t10k-labels-idx1-ubyte"] = idx_labels(torch.tensor([1, 2]))  # 3 images, 2 labels
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte holds 3 images but .*t10k-labels-idx1-ubyte holds 2"):
        data.load_mnist(source_dir=tmp_path)


def test_load_mnist_shape_mismatch_names_file(tmp_path, monkeypatch):
    raw = tiny_mnist()
    raw["train-images-idx3-ubyte"] = idx_images(torch.zeros(5, 27, 27))
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected images of shape \(n, 28, 28\)"):
        data.load_mnist(source_dir=tmp_path)


def test_load_mnist_needs_a_place(tmp_path):
    with pytest.raises(ValueError, match="root"):
        data.load_mnist()
    with pytest.raises(ValueError, match="source_dir"):
        data.load_mnist(source_dir=tmp_path / "nowhere")


# --------------------------------------------------------------------------- sequence views


@pytest.fixture(scope="module")
def mnist_slice():
    return data.read_idx(SLICE / "t10k-images-idx3-ubyte.gz"), data.read_idx(SLICE / "t10k-labels-idx1-ubyte.gz").long()


def test_pixel_and_row_views(mnist_slice):
    images, labels = mnist_slice
    pixel = data.mnist_sequences(images, labels, view="pixel", normalize=False, device="cpu")
    row = data.mnist_sequences(images, labels, view="row", normalize=False, device="cpu")
    assert pixel.inputs.shape == (1000, 784, 1) and row.inputs.shape == (1000, 28, 28)
    assert pixel.inputs.dtype == torch.float32 and pixel.targets.dtype == torch.long
    # Step t of the pixel view is pixel (t // 28, t % 28); step r of the row view is row r.
    assert torch.equal(pixel.inputs[:, 28 * 5 + 9, 0], images[:, 5, 9].float() / 255)
    assert torch.equal(row.inputs, images.float() / 255)
    assert pixel.permutation is None and pixel.permutation_seed is None


def test_normalisation_uses_the_standard_statistics(mnist_slice):
    images, labels = mnist_slice
    x = data.mnist_sequences(images, labels, device="cpu").inputs
    expected = (images.double().reshape(1000, 784, 1) / 255 - 0.1307) / 0.3081
    assert torch.allclose(x.double(), expected, rtol=0, atol=10 * torch.finfo(torch.float32).eps * expected.abs().max())
    # The standard statistics are those of the training set; the test images come close.
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_permutation_fixed_by_its_seed_and_independent_of_global_seed(mnist_slice):
    images, labels = mnist_slice
    torch.manual_seed(1)
    a = data.mnist_sequences(images, labels, permute=True, permutation_seed=7, device="cpu")
    torch.manual_seed(2)
    torch.rand(10)
    b = data.mnist_sequences(images, labels, permute=True, permutation_seed=7, device="cpu")
    c = data.mnist_permutation(8)
    assert torch.equal(a.permutation, b.permutation) and torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.permutation, c)
    assert torch.equal(a.permutation.sort().values, torch.arange(784))
    assert a.permutation_seed == 7
    plain = data.mnist_sequences(images, labels, device="cpu")
    assert torch.equal(a.inputs[:, :, 0], plain.inputs[:, a.permutation, 0])


def test_mnist_sequences_validates(mnist_slice):
    images, labels = mnist_slice
    with pytest.raises(ValueError, match="view"):
        data.mnist_sequences(images, labels, view="column", device="cpu")
    with pytest.raises(TypeError, match="images"):
        data.mnist_sequences(images.float(), labels, device="cpu")
    with pytest.raises(ValueError, match="images"):
        data.mnist_sequences(images[:, :27], labels, device="cpu")
    with pytest.raises(ValueError, match="labels"):
        data.mnist_sequences(images, labels[:-1], device="cpu")
    with pytest.raises(TypeError, match="permutation_seed"):
        data.mnist_sequences(images, labels, permute=True, permutation_seed=1.5, device="cpu")


def test_validation_split_seeded_and_disjoint():
    train, val = data.validation_split(1000, 0.1, seed=3)
    again_train, again_val = data.validation_split(1000, 0.1, seed=3)
    other_train, other_val = data.validation_split(1000, 0.1, seed=4)
    assert len(val) == 100 and len(train) == 900
    assert torch.equal(val, again_val) and torch.equal(train, again_train)
    assert not torch.equal(val, other_val)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(1000))
    with pytest.raises(ValueError, match="fraction"):
        data.validation_split(10, 1.0, seed=0)
    with pytest.raises(TypeError, match="seed"):
        data.validation_split(10, 0.1, seed="0")


def loader_devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", loader_devices())
def test_sequence_loader_batches_on_device_seeded(mnist_slice, device):
    images, labels = mnist_slice
    seq = data.mnist_sequences(images[:100], labels[:100], device=device)
    loader = data.SequenceLoader(seq.inputs, seq.targets, 32, seed=5)
    batches = list(loader)
    assert len(loader) == len(batches) == 4 and [len(y) for _, y in batches] == [32, 32, 32, 4]
    for x, y in batches:
        assert x.device == seq.inputs.device and y.device == seq.inputs.device
        assert x.shape[1:] == (784, 1)
    seen = torch.cat([y for _, y in batches]).sort().values
    assert torch.equal(seen, seq.targets.sort().values)  # each example once per epoch
    second_epoch = [y for _, y in loader]
    assert any(not torch.equal(a, b) for (_, a), b in zip(batches, second_epoch, strict=True))
    replay = data.SequenceLoader(seq.inputs, seq.targets, 32, seed=5)
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(batches, replay, strict=True))
    assert len(data.SequenceLoader(seq.inputs, seq.targets, 32, drop_last=True)) == 3
    ordered = data.SequenceLoader(seq.inputs, seq.targets, 32, shuffle=False)
    assert torch.equal(next(iter(ordered))[1], seq.targets[:32])


def test_sequence_loader_validates():
    with pytest.raises(ValueError, match="first dimension"):
        data.SequenceLoader(torch.zeros(4, 2), torch.zeros(3), 2)
    with pytest.raises(ValueError, match="batch_size"):
        data.SequenceLoader(torch.zeros(4, 2), torch.zeros(4), 0)


# --------------------------------------------------------------------------- Penn Treebank

TINY_PTB = {
    "train": " the cat sat \n the <unk> ran \n",
    "valid": " the tan cat \n",
    "test": " a cat \n",
}


def write_tiny_ptb(directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for split, text in TINY_PTB.items():
        (directory / f"ptb.{split}.txt").write_text(text)
    monkeypatch.setattr(data, "PTB_MD5", {s: md5(t.encode()) for s, t in TINY_PTB.items()})


def test_tokenize_ptb_word_and_char():
    text = " the <unk> fell \n a b \n"
    assert data.tokenize_ptb(text, "word") == ["the", "<unk>", "fell", "<eos>", "a", "b", "<eos>"]
    assert data.tokenize_ptb(text, "char") == [
        *"the_<unk>_fell",
        "<eos>",
        "a",
        "_",
        "b",
        "<eos>",
    ]
    with pytest.raises(ValueError, match="level"):
        data.tokenize_ptb(text, "byte")
    with pytest.raises(TypeError, match="text"):
        data.tokenize_ptb(b"bytes")


def test_vocabulary_order_encode_decode():
    vocab = data.Vocabulary(data.tokenize_ptb(TINY_PTB["train"]))
    # Frequency first (the: 2, <eos>: 2), then alphabetical.
    assert vocab.itos[:2] == ["<eos>", "the"] and len(vocab) == 6
    ids = vocab.encode(["the", "dog", "sat"])  # "dog" is unknown -> <unk>
    assert vocab.decode(ids) == ["the", "<unk>", "sat"]
    chars = data.Vocabulary(["a", "b"])
    with pytest.raises(ValueError, match="'c'"):
        chars.encode(["c"])
    with pytest.raises(ValueError, match="empty"):
        data.Vocabulary([])


def test_load_ptb_word_and_char_from_source_dir(tmp_path, monkeypatch):
    write_tiny_ptb(tmp_path, monkeypatch)
    word = data.load_ptb(source_dir=tmp_path)
    assert word.level == "word" and len(word.train) == 8 and len(word.valid) == 4
    assert word.vocab.decode(word.valid) == ["the", "<unk>", "cat", "<eos>"]
    char = data.load_ptb(source_dir=tmp_path, level="char")
    assert char.vocab.decode(char.test) == ["a", "_", "c", "a", "t", "<eos>"]
    assert "<eos>" in char.vocab and "_" in char.vocab and "<unk>" not in char.vocab


def test_load_ptb_downloads_and_checks(server, tmp_path, monkeypatch):
    write_tiny_ptb(tmp_path, monkeypatch)
    for split, text in TINY_PTB.items():
        server.files[f"/ptb/ptb.{split}.txt"] = text.encode()
    server.files["/bad/ptb.train.txt"] = b"garbage"
    corpus = data.load_ptb(tmp_path / "cache", mirrors=(f"{server.base}/bad/", f"{server.base}/ptb/"))
    assert corpus.vocab.decode(corpus.test) == ["<unk>", "cat", "<eos>"]
    assert (tmp_path / "cache" / "PTB" / "ptb.valid.txt").read_text() == TINY_PTB["valid"]
    (tmp_path / "ptb.test.txt").write_text(" a dog \n")
    with pytest.raises(ValueError, match="ptb.test.txt: MD5"):
        data.load_ptb(source_dir=tmp_path)
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.load_ptb(tmp_path / "empty", download=False)


def test_batchify_and_bptt_targets_shifted_by_one():
    stream = torch.arange(23)
    batched = data.batchify(stream, 4, device="cpu")
    assert batched.shape == (4, 5)  # 23 // 4 = 5 tokens per row; 3 dropped
    assert torch.equal(batched[1], torch.arange(5, 10))
    windows = list(data.bptt_batches(batched, 3))
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
    batched = data.batchify(torch.arange(n), batch_size, device="cpu")
    windows = list(data.bptt_batches(batched, seq_len))
    assert torch.equal(torch.cat([x for x, _ in windows], 1), batched[:, :-1])
    assert torch.equal(torch.cat([y for _, y in windows], 1), batched[:, 1:])
    assert all(x.shape[1] <= seq_len for x, _ in windows)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 500), fraction=st.floats(0, 0.99), seed=st.integers(0, 2**31))
def test_validation_split_partitions(n, fraction, seed):
    train, val = data.validation_split(n, fraction, seed)
    assert len(val) == round(fraction * n)
    assert torch.equal(torch.cat([train, val]).sort().values, torch.arange(n))


def test_batchify_and_bptt_validate():
    with pytest.raises(ValueError, match="batch_size"):
        data.batchify(torch.arange(3), 4, device="cpu")
    with pytest.raises(TypeError, match="stream"):
        data.batchify(torch.rand(10), 2, device="cpu")
    with pytest.raises(ValueError, match="data"):
        data.bptt_batches(torch.arange(4), 2)
    with pytest.raises(ValueError, match="seq_len"):
        data.bptt_batches(torch.zeros(2, 4, dtype=torch.long), 0)


def test_loss_conversions():
    """Book: Eq. (ptb-bpc) and Eq. (ptb-perplexity)."""
    assert data.nats_to_bits(math.log(2)) == pytest.approx(1.0, rel=4 * 2.0**-52)
    assert data.perplexity(0.0) == 1.0
    assert data.perplexity(math.log(10000)) == pytest.approx(10000, rel=1e3 * 2.0**-52)
    losses = torch.tensor([math.log(2), 2 * math.log(2)], dtype=torch.float64)
    assert torch.allclose(data.nats_to_bits(losses), torch.tensor([1.0, 2.0], dtype=torch.float64))
    assert torch.allclose(data.perplexity(losses), torch.tensor([2.0, 4.0], dtype=torch.float64))
    # Uniform prediction over V symbols: ppl = V and bits = log2 V.
    assert data.nats_to_bits(math.log(50)) == pytest.approx(math.log2(50), rel=8 * 2.0**-52)
    with pytest.raises(TypeError, match="loss"):
        data.perplexity("1.0")
    with pytest.raises(TypeError, match="loss"):
        data.nats_to_bits(torch.tensor([1]))


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_mnist():
    return data.load_mnist(source_dir=real(REAL_MNIST, "MNIST"))


@pytest.mark.real_data
def test_real_mnist_files_and_split(real_mnist):
    for name, (_, raw_md5) in data.MNIST_MD5.items():
        assert md5((REAL_MNIST / name).read_bytes()) == raw_md5
    assert real_mnist.train_images.shape == (60000, 28, 28) and real_mnist.test_images.shape == (10000, 28, 28)
    assert real_mnist.train_labels.bincount().tolist()[:2] == [5923, 6742]
    slice_images = data.read_idx(SLICE / "t10k-images-idx3-ubyte.gz")
    assert torch.equal(slice_images, real_mnist.test_images[:1000])


@pytest.mark.real_data
def test_real_mnist_standard_statistics(real_mnist):
    counts = real_mnist.train_images.flatten().bincount(minlength=256).double()
    p = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * p).sum() / counts.sum()
    std = ((counts * (p - mean) ** 2).sum() / counts.sum()).sqrt()
    assert mean.item() == pytest.approx(data.MNIST_MEAN, abs=5e-5)
    assert std.item() == pytest.approx(data.MNIST_STD, abs=5e-5)


@pytest.mark.real_data
@pytest.mark.parametrize("view, permute", [("pixel", False), ("pixel", True), ("row", False)])
def test_real_mnist_pipelines_few_batches(real_mnist, view, permute):
    train_idx, val_idx = data.validation_split(60000, 1 / 12, seed=0)
    assert len(val_idx) == 5000
    subset = train_idx[:2000]  # a few batches are enough
    seq = data.mnist_sequences(
        real_mnist.train_images[subset], real_mnist.train_labels[subset], view=view, permute=permute, device="cpu"
    )
    loader = data.SequenceLoader(seq.inputs, seq.targets, 100, seed=1)
    for k, (x, y) in enumerate(loader):
        assert x.shape == ((100, 784, 1) if view == "pixel" else (100, 28, 28)) and y.shape == (100,)
        assert torch.isfinite(x).all()
        if k == 2:
            break


@pytest.mark.real_data
def test_real_mnist_download_from_local_mirror(real_mnist, server, tmp_path):
    # Re-compressed files pass by their content MD5; the corrupt mirror is skipped.
    for name in data.MNIST_MD5:
        server.files[f"/good/{name}.gz"] = gzip.compress((REAL_MNIST / name).read_bytes(), compresslevel=1)
        server.files[f"/bad/{name}.gz"] = b"\x1f\x8b broken"
    mnist = data.load_mnist(tmp_path, mirrors=(f"{server.base}/bad/", f"{server.base}/good/"), timeout=30)
    assert torch.equal(mnist.test_labels, real_mnist.test_labels)


@pytest.fixture(scope="module")
def real_ptb_dir():
    return real(REAL_PTB, "PTB")


@pytest.mark.real_data
def test_real_ptb_files(real_ptb_dir):
    lines = {"train": 42068, "valid": 3370, "test": 3761}
    for split, h in data.PTB_MD5.items():
        blob = (real_ptb_dir / f"ptb.{split}.txt").read_bytes()
        assert md5(blob) == h and blob.count(b"\n") == lines[split]


@pytest.mark.real_data
def test_real_ptb_word_level(real_ptb_dir):
    ptb = data.load_ptb(source_dir=real_ptb_dir)
    assert len(ptb.vocab) == 10000 and "<eos>" in ptb.vocab and "<unk>" in ptb.vocab
    assert (len(ptb.train), len(ptb.valid), len(ptb.test)) == (929589, 73760, 82430)
    assert ptb.vocab.itos[:3] == ["the", "<unk>", "<eos>"]
    batched = data.batchify(ptb.train, 20, device="cpu")
    assert batched.shape == (20, 929589 // 20)
    for k, (x, y) in enumerate(data.bptt_batches(batched, 35)):
        assert x.shape == y.shape == (20, 35) and torch.equal(x[:, 1:], y[:, :-1])
        if k == 2:
            break


@pytest.mark.real_data
def test_real_ptb_char_level(real_ptb_dir):
    ptb = data.load_ptb(source_dir=real_ptb_dir, level="char")
    assert len(ptb.vocab) == 50 and "_" in ptb.vocab and "<eos>" in ptb.vocab
    assert len(ptb.train) == 5017482
    first = "".join(t if t != "<eos>" else "\n" for t in ptb.vocab.decode(ptb.train[:60]))
    assert first.startswith("aer_banknote_berlitz_calloway_centrust_")
    batched = data.batchify(ptb.valid, 32, device="cpu")
    x, y = next(data.bptt_batches(batched, 100))
    assert x.shape == (32, 100) and torch.equal(x[:, 1:], y[:, :-1])


# --------------------------------------------------------------------------- ClassificationTask


def _classification(n: int = 12, T: int = 5) -> data.ClassificationTask:
    inputs = torch.arange(n * T, dtype=torch.float32).reshape(n, T, 1)
    return data.ClassificationTask(inputs, torch.arange(n) % 3)


def test_classification_task_batches_are_distinct_examples():
    task = _classification()
    x, y = task.sample(5, torch.Generator().manual_seed(0))
    assert x.shape == (5, 5, 1) and y.shape == (5,) and task.input_size == 1 and len(task) == 12
    rows = (x[:, 0, 0] / 5).long()
    assert len(set(rows.tolist())) == 5, "no example twice in a batch"
    assert torch.equal(y, rows % 3), "inputs and labels stay paired"
    everything, labels = task.sample(12, torch.Generator().manual_seed(1))
    assert sorted((everything[:, 0, 0] / 5).long().tolist()) == list(range(12))
    again, _ = task.sample(5, torch.Generator().manual_seed(0))
    assert torch.equal(again, x)


def test_classification_task_loss_and_accuracy():
    task = _classification()
    logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 5.0, 0.0]])
    target = torch.tensor([0, 1, 2])
    assert task.accuracy(logits, target).item() == pytest.approx(2 / 3)
    expected = torch.nn.functional.cross_entropy(logits, target)
    assert torch.equal(task.loss(logits, target), expected)


@pytest.mark.parametrize(
    "inputs, targets, error, match",
    [
        (torch.zeros(4, 3), torch.zeros(4, dtype=torch.long), ValueError, r"inputs must have shape \(n, T, input_size\)"),
        (torch.zeros(4, 3, 1, dtype=torch.long), torch.zeros(4, dtype=torch.long), TypeError, "inputs must be a floating-point"),
        (torch.zeros(4, 3, 1), torch.zeros(4), TypeError, "targets must be an int64 tensor"),
        (torch.zeros(4, 3, 1), torch.zeros(5, dtype=torch.long), ValueError, r"targets must have shape \(4,\)"),
        (torch.zeros(4, 3, 1), [0, 1, 2, 3], TypeError, "targets must be a torch.Tensor"),
    ],
)
def test_classification_task_errors(inputs, targets, error, match):
    with pytest.raises(error, match=match):
        data.ClassificationTask(inputs, targets)


def test_classification_task_batch_size_errors():
    task = _classification()
    with pytest.raises(ValueError, match="batch_size must be at most the 12 examples"):
        task.sample(13)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        task.sample(0)
