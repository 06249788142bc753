"""The package as a reader gets it (``make test-wheel``): the sdist and the wheel built from
it, the wheel installed in a fresh virtual environment in a temporary folder (the pinned
torch first, then the wheel with its ``notebook`` extra, papermill and ipykernel), every module
imported from outside the repository, and every ``book/*.ipynb`` run in quick mode by
papermill from a folder that holds only the notebooks, so a chapter works from its notebook
and the installed package alone, as on Colab."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conftest import ROOT

pytestmark = pytest.mark.wheel

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION = re.search(r'^__version__ = "([^"]+)"$', (ROOT / "orthobook" / "__init__.py").read_text(), re.M)[1]
NAME = f"orthobook-{VERSION}"
NOTEBOOKS = sorted((ROOT / "book").glob("*.ipynb"))
SOURCES = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "orthobook").rglob("*.py"))
MODULES = sorted(s.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for s in SOURCES)
PACKAGE_DATA = sorted(
    p.relative_to(ROOT).as_posix() for p in (ROOT / "orthobook" / "_data").rglob("*") if p.is_file()
) + ["orthobook/py.typed"]
TIMEOUT = 900


def _torch_install() -> list[str]:
    """The torch requirement of ``make venv`` (``TORCH_INSTALL`` from the Makefile), always pinned."""
    spec = os.environ.get("TORCH_INSTALL")
    if spec is None:
        spec = '"torch==' + re.search(r"^TORCH_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.M)[1] + '"'
    args = shlex.split(spec)
    assert args and re.fullmatch(r"torch==\d+\.\d+\.\d+", args[0]), f"torch must be pinned, got {spec!r}"
    return args


def _run(command: list[object], timeout: float = TIMEOUT, **kwargs: object) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([str(c) for c in command], capture_output=True, text=True, timeout=timeout, **kwargs)
    assert result.returncode == 0, f"{shlex.join(map(str, command))} failed:\n{(result.stdout + result.stderr)[-4000:]}"
    return result


@dataclass(frozen=True)
class Built:
    sdist: Path
    wheel: Path
    log: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """``python -m build``: the sdist, then the wheel built from the unpacked sdist."""
    out = tmp_path_factory.mktemp("dist")
    result = _run([sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT])
    return Built(out / f"{NAME}.tar.gz", out / f"{NAME}-py3-none-any.whl", result.stdout + result.stderr)


def test_the_build_warns_about_nothing_deprecated(built: Built) -> None:
    assert "Deprecat" not in built.log, built.log


def test_wheel_holds_the_package_its_data_and_licences(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        names = set(archive.namelist())
    info = f"{NAME}.dist-info"
    licences = {f"{info}/licenses/LICENSE", f"{info}/licenses/orthobook/_data/mnist_slice/README.md"}
    package = {n for n in names if not n.startswith(f"{info}/")}
    assert package == set(SOURCES) | set(PACKAGE_DATA)
    assert licences <= names


def test_wheel_metadata(built: Built) -> None:
    with zipfile.ZipFile(built.wheel) as archive:
        metadata = archive.read(f"{NAME}.dist-info/METADATA").decode()
    fields = re.findall(r"^([\w-]+): (.*)$", metadata.split("\n\n", 1)[0], re.M)
    assert ("Version", VERSION) in fields
    assert ("License-Expression", "MIT AND CC-BY-SA-3.0") in fields
    assert ("License-File", "LICENSE") in fields
    assert ("Classifier", "Typing :: Typed") in fields
    assert ("Requires-Dist", "torch>=2.2") in fields
    assert ("Provides-Extra", "notebook") in fields
    urls = dict(v.split(", ", 1) for k, v in fields if k == "Project-URL")
    assert urls == PROJECT["urls"]
    assert not [v for k, v in fields if k == "Classifier" and v.startswith("License ::")], "SPDX replaces these"


def test_sdist_leaves_the_tests_out_and_builds_alone(built: Built, tmp_path: Path) -> None:
    """The tests need the repository (book/, _config.yml): they are not in the sdist, and
    pytest in the unpacked sdist finds nothing to collect (exit code 5) rather than erroring."""
    with tarfile.open(built.sdist) as archive:
        names = {n.removeprefix(f"{NAME}/") for n in archive.getnames()}
        archive.extractall(tmp_path, filter="data")
    assert {"LICENSE", "README.md", "CHANGELOG.md", "CITATION.cff", "pyproject.toml", "orthobook/py.typed"} <= names
    assert not {n for n in names if n.split("/")[0] in ("tests", "book", "benchmarks", "scripts")}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        cwd=tmp_path / NAME,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 5, result.stdout + result.stderr  # 5: no tests collected, no error


@dataclass(frozen=True)
class Venv:
    root: Path
    python: Path
    env: dict[str, str]


@pytest.fixture(scope="module")
def venv(built: Built, tmp_path_factory: pytest.TempPathFactory) -> Venv:
    """A fresh venv: the pinned torch first (so ``torch>=2.2`` is satisfied), then the wheel."""
    root = tmp_path_factory.mktemp("venv")
    _run([sys.executable, "-m", "venv", root])
    python = root / "bin" / "python"
    pip = [python, "-m", "pip", "install", "--quiet", "--no-compile", "--disable-pip-version-check"]
    _run([*pip, *_torch_install()])
    tools = [r for r in PROJECT["optional-dependencies"]["test"] if re.match(r"(papermill|ipykernel)\b", r)]
    _run([*pip, f"orthobook[notebook] @ {built.wheel.as_uri()}", *tools])
    home = tmp_path_factory.mktemp("home")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "JUPYTER_PATH")}
    env.update(
        PATH=f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        VIRTUAL_ENV=str(root),
        # Kernels and settings of this venv only; downloads (none expected) into a fresh folder.
        JUPYTER_DATA_DIR=str(home / "jupyter-data"),
        JUPYTER_CONFIG_DIR=str(home / "jupyter-config"),
        IPYTHONDIR=str(home / "ipython"),
        ORTHOBOOK_DATA=str(home / "data"),
    )
    return Venv(root, python, env)


# Run with `python -I` from an empty folder: no repository, no PYTHONPATH, no user site.
_IMPORT_ALL = """
import importlib, importlib.metadata, importlib.resources, json, sys, sysconfig
modules = json.loads(sys.argv[1])
files = {name: importlib.import_module(name).__file__ for name in modules}
import orthobook, torch
from orthobook.mnist import load_mnist_slice
images, labels = load_mnist_slice()
print(json.dumps({
    "files": files,
    "purelib": sysconfig.get_paths()["purelib"],
    "path": sys.path,
    "version": orthobook.__version__,
    "metadata_version": importlib.metadata.version("orthobook"),
    "py_typed": importlib.resources.files("orthobook").joinpath("py.typed").is_file(),
    "slice": [list(images.shape), labels[:5].tolist()],
    "torch": torch.__version__,
}))
"""


def _inside(path: str | Path, folder: str | Path) -> bool:
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def test_every_module_imports_from_the_venv_outside_the_repository(venv: Venv, tmp_path: Path) -> None:
    result = _run([venv.python, "-I", "-c", _IMPORT_ALL, json.dumps(MODULES)], cwd=tmp_path, env=venv.env)
    found = json.loads(result.stdout)
    assert sorted(found["files"]) == MODULES
    assert _inside(found["purelib"], venv.root)
    outside = {name: file for name, file in found["files"].items() if not _inside(file, found["purelib"])}
    assert not outside, f"imported from outside the venv's site-packages: {outside}"
    assert not [p for p in found["path"] if p and _inside(p, ROOT)], "the repository is on sys.path"
    assert found["version"] == found["metadata_version"] == VERSION
    assert found["py_typed"]
    assert found["slice"] == [[1000, 28, 28], [7, 2, 1, 0, 4]]
    pinned = _torch_install()[0].removeprefix("torch==")
    assert found["torch"].split("+")[0] == pinned, "installing the wheel replaced the pinned torch"


# The kernel papermill starts in the chapters' folder: which python, which orthobook.
_KERNEL_PROBE = """
import json, os, sys, sysconfig
import orthobook
print(json.dumps({"prefix": sys.prefix, "orthobook": orthobook.__file__,
                  "purelib": sysconfig.get_paths()["purelib"], "path": sys.path, "cwd": os.getcwd()}))
"""


def _papermill(venv: Venv, notebook: Path, out: Path, cwd: Path, threads: int) -> subprocess.CompletedProcess[str]:
    env = dict(venv.env, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [venv.python, "-m", "papermill", notebook, out, "-p", "quick", "True"]
    command += ["-k", "python3", "--cwd", cwd, "--no-progress-bar", "--execution-timeout", str(TIMEOUT)]
    return subprocess.run([str(c) for c in command], capture_output=True, text=True, env=env, timeout=TIMEOUT + 60)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty folder holding a copy of every book/*.ipynb and nothing else."""
    folder = tmp_path_factory.mktemp("chapters")
    for notebook in NOTEBOOKS:
        shutil.copy2(notebook, folder / notebook.name)
    assert sorted(p.name for p in folder.iterdir()) == [p.name for p in NOTEBOOKS]
    return folder


@pytest.fixture(scope="module")
def chapters(
    venv: Venv, folder: Path, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> dict[str, tuple[int, float, str]]:
    """Every notebook run in quick mode from ``folder``, a few at a time (one thread each:
    these runs check that the chapters work, not their stored outputs): notebook name →
    (exit code, seconds, the end of papermill's log)."""
    out = tmp_path_factory.mktemp("executed")

    def run(notebook: Path) -> tuple[str, tuple[int, float, str]]:
        started = time.perf_counter()
        result = _papermill(venv, folder / notebook.name, out / notebook.name, folder, threads=1)
        return notebook.name, (result.returncode, time.perf_counter() - started, result.stderr[-6000:])

    workers = max(1, min(len(NOTEBOOKS), os.cpu_count() or 1))
    with concurrent.futures.ThreadPoolExecutor(workers) as pool:
        results = dict(pool.map(run, NOTEBOOKS))
    plugins = request.config.pluginmanager
    reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():  # shown as the runs end, even when they pass
            reporter.write_line("")
            for name, (code, seconds, _) in results.items():
                verdict = "ran" if code == 0 else "FAILED"
                reporter.write_line(f"test-wheel: {name} {verdict} in {seconds:.0f} s ({workers} at a time)")
    return results


def test_the_kernel_runs_the_venvs_orthobook_in_the_folder_of_notebooks(
    venv: Venv, folder: Path, tmp_path: Path
) -> None:
    probe = tmp_path / "probe.ipynb"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(_KERNEL_PROBE)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, probe)
    # papermill puts its injected-parameters cell (quick = True) first: the probe is the last cell.
    result = _papermill(venv, probe, tmp_path / "probe.out.ipynb", folder, threads=1)
    assert result.returncode == 0, result.stderr[-4000:]
    executed = nbformat.read(tmp_path / "probe.out.ipynb", as_version=4)
    found = json.loads("".join(o.text for o in executed.cells[-1].outputs if o.output_type == "stream"))
    assert Path(found["prefix"]).resolve() == venv.root.resolve(), "the kernel is the venv's python"
    assert _inside(found["orthobook"], found["purelib"]) and _inside(found["purelib"], venv.root)
    assert _inside(found["cwd"], folder)
    assert not [p for p in found["path"] if p and _inside(p, ROOT)], "the repository is on the kernel's sys.path"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_chapter_runs_from_its_notebook_and_the_wheel(
    notebook: Path, chapters: dict[str, tuple[int, float, str]]
) -> None:
    code, seconds, log = chapters[notebook.name]
    assert code == 0, f"{notebook.name} failed after {seconds:.0f} s in quick mode:\n{log}"
