"""Tests for orthobook.downloads: checksummed downloads (local server only), verified reads,
and the default data directory."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import pytest
from data_support import closed_port_url, md5, server  # noqa: F401 (server is a fixture)

from orthobook import downloads

# --------------------------------------------------------------------------- download


def test_download_falls_back_past_a_corrupt_mirror(server, tmp_path):
    good = gzip.compress(b"payload")
    server.files["/bad/f.gz"] = b"corrupted bytes"
    server.files["/good/f.gz"] = good
    mirrors = [f"{server.base}/bad/", f"{server.base}/good/"]
    path = downloads.download("f.gz", tmp_path, mirrors, md5=md5(good), timeout=5)
    assert path == tmp_path / "f.gz" and path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.gz"]  # no temporary file left


def test_download_accepts_matching_content_md5(server, tmp_path):
    recompressed = gzip.compress(b"payload", compresslevel=1, mtime=12345)
    server.files["/m/f.gz"] = recompressed
    path = downloads.download("f.gz", tmp_path, [f"{server.base}/m/"], md5="0" * 32, content_md5=md5(b"payload"))
    assert gzip.decompress(path.read_bytes()) == b"payload"


def test_download_all_mirrors_fail_lists_each_and_leaves_nothing(server, tmp_path):
    server.files["/bad/f.gz"] = b"corrupted bytes"
    mirrors = [f"{server.base}/bad/", f"{server.base}/missing/", closed_port_url()]
    with pytest.raises(downloads.DownloadError) as err:
        downloads.download("f.gz", tmp_path, mirrors, md5=md5(b"the real thing"), timeout=5)
    message = str(err.value)
    for mirror in mirrors:
        assert mirror + "f.gz" in message
    assert "does not match" in message  # checksum rejection of the corrupt mirror
    assert "404" in message
    assert list(tmp_path.iterdir()) == []
    assert isinstance(err.value, OSError)


def test_download_replaces_a_corrupt_file_only_after_verification(server, tmp_path):
    (tmp_path / "f.gz").write_bytes(b"old corrupt cache")
    server.files["/bad/f.gz"] = b"still corrupt"
    with pytest.raises(downloads.DownloadError):
        downloads.download("f.gz", tmp_path, [f"{server.base}/bad/"], md5=md5(b"good"))
    assert (tmp_path / "f.gz").read_bytes() == b"old corrupt cache"
    server.files["/good/f.gz"] = b"good"
    downloads.download("f.gz", tmp_path, [f"{server.base}/good/"], md5=md5(b"good"))
    assert (tmp_path / "f.gz").read_bytes() == b"good"


def test_download_creates_the_directory(server, tmp_path):
    server.files["/m/f"] = b"x"
    path = downloads.download("f", tmp_path / "a" / "b", [f"{server.base}/m/"], md5=md5(b"x"))
    assert path == tmp_path / "a" / "b" / "f" and path.read_bytes() == b"x"


@pytest.mark.parametrize(
    "kwargs, error",
    [({"mirrors": "http://x/"}, TypeError), ({"mirrors": []}, ValueError), ({"timeout": 0}, ValueError)],
)
def test_download_validates_arguments(tmp_path, kwargs, error):
    args = {"mirrors": ["http://127.0.0.1:9/"], "timeout": 1.0} | kwargs
    with pytest.raises(error, match="mirrors|timeout"):
        downloads.download("f", tmp_path, args["mirrors"], md5="0" * 32, timeout=args["timeout"])


# --------------------------------------------------------------------------- verified reads


def test_read_content_raw_and_gz(tmp_path):
    (tmp_path / "f").write_bytes(b"abc")
    (tmp_path / "f.gz").write_bytes(gzip.compress(b"abc"))
    assert downloads.read_content(tmp_path / "f") == downloads.read_content(tmp_path / "f.gz") == b"abc"
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    with pytest.raises(ValueError, match="broken.gz: not a valid gzip"):
        downloads.read_content(tmp_path / "broken.gz")


def test_verified_content_by_own_or_content_md5(tmp_path):
    blob = gzip.compress(b"content", mtime=0)
    path = tmp_path / "f.gz"
    path.write_bytes(blob)
    assert downloads.verified_content(path, md5(blob)) == b"content"
    assert downloads.verified_content(path, "0" * 32, md5(b"content")) == b"content"
    with pytest.raises(ValueError, match=r"f.gz: MD5 .* does not match the expected 0{32} \(or content 1{32}\)"):
        downloads.verified_content(path, "0" * 32, "1" * 32)
    raw = tmp_path / "f"
    raw.write_bytes(b"content")
    with pytest.raises(ValueError, match="does not match"):
        downloads.verified_content(raw, "0" * 32, md5(b"content"))  # content MD5 is for .gz only
    with pytest.raises(FileNotFoundError):
        downloads.verified_content(tmp_path / "missing", "0" * 32)


# --------------------------------------------------------------------------- data directory


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(downloads.DATA_ENV, str(tmp_path / "datasets"))
    assert downloads.data_dir() == tmp_path / "datasets"
    monkeypatch.setenv(downloads.DATA_ENV, "~/datasets")
    assert downloads.data_dir() == Path.home() / "datasets"


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", {"XDG_CACHE_HOME": "/xdg"}, Path("/xdg/orthobook")),
        ("linux", {}, Path.home() / ".cache" / "orthobook"),
        ("darwin", {}, Path.home() / "Library" / "Caches" / "orthobook"),
        ("win32", {"LOCALAPPDATA": "/appdata"}, Path("/appdata/orthobook/Cache")),
    ],
)
def test_data_dir_defaults_to_the_user_cache(monkeypatch, platform, env, expected):
    for name in (downloads.DATA_ENV, "XDG_CACHE_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", platform)
    assert downloads.data_dir() == expected


def test_data_dir_does_not_depend_on_the_working_directory(monkeypatch, tmp_path):
    monkeypatch.delenv(downloads.DATA_ENV, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    before = downloads.data_dir()
    monkeypatch.chdir(tmp_path)
    assert downloads.data_dir() == before and before.is_absolute()
