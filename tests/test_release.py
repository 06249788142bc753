"""scripts/release.py and the one install line: every chapter's Colab install cell, the
README and the book's launch buttons (``_config.yml``) name the same ref of this repository,
the ref exists, and a release rewrites all of them (run in a temporary copy, no network)."""

from __future__ import annotations

import datetime
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path
from types import ModuleType

import jupytext
import nbformat
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from conftest import ROOT


def _load_release() -> ModuleType:
    spec = importlib.util.spec_from_file_location("release", ROOT / "scripts" / "release.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["release"] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


release = _load_release()
CONFIG = release.repository(ROOT)
SOURCES = release.chapter_sources(ROOT)
IDS = [path.stem for path in SOURCES]


def _first_code_cell(notebook: nbformat.NotebookNode) -> str:
    return next(cell.source for cell in notebook.cells if cell.cell_type == "code").strip()


def test_every_chapter_has_a_source() -> None:
    assert {p.stem for p in SOURCES} >= {p.stem for p in (ROOT / "book").glob("*.ipynb")}


@pytest.mark.parametrize("source", SOURCES, ids=IDS)
def test_install_cell_names_the_launch_buttons_ref(source: Path) -> None:
    expected = release.install_cell(CONFIG.url, CONFIG.branch)
    for name, notebook in (
        (source.name, jupytext.read(source)),
        (source.with_suffix(".ipynb").name, nbformat.read(source.with_suffix(".ipynb"), as_version=4)),
    ):
        assert _first_code_cell(notebook) == expected, (
            f"{name}: the first code cell must be exactly the install cell for {CONFIG.url} at "
            f"{CONFIG.branch} (_config.yml's repository.branch); `python scripts/release.py --main` "
            f"writes it into every chapter:\n{expected}"
        )


def test_the_ref_is_main_or_this_versions_tag() -> None:
    assert CONFIG.branch in (release.MAIN, release.tag(release.version(ROOT))), (
        f"_config.yml's repository.branch is {CONFIG.branch!r}: either {release.MAIN!r} or the tag of "
        f"orthobook.__version__ ({release.tag(release.version(ROOT))!r})"
    )


def test_readme_installs_the_same_ref() -> None:
    found = [pin for pin in release.pins(ROOT / "README.md") if pin[0] == CONFIG.url]
    assert found, "the README shows how to pip-install the package from git"
    assert {ref for _, ref in found} == {CONFIG.branch}


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True)


def test_the_ref_exists_in_this_repository() -> None:
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout")
    ref = CONFIG.branch
    candidates = (ref, f"refs/tags/{ref}", f"refs/remotes/origin/{ref}")
    found = [c for c in candidates if _git("rev-parse", "--verify", "--quiet", f"{c}^{{commit}}").returncode == 0]
    assert found, (
        f"the install cells and launch buttons name {ref!r}, which is no branch or tag of this "
        f"repository; a release commit is tested after `git tag -a {ref}`"
    )


def test_the_version_has_one_place() -> None:
    import orthobook

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in project["project"] and project["project"]["dynamic"] == ["version"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "orthobook.__version__"}
    assert orthobook.__version__ == release.version(ROOT)
    assert release.VERSION.fullmatch(orthobook.__version__)


def test_project_urls_are_the_books_repository() -> None:
    urls = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Homepage"] == urls["Source"] == CONFIG.url
    assert all(url.startswith(CONFIG.url) for url in urls.values())


def test_changelog_has_an_unreleased_section_with_entries() -> None:
    text = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    section = re.search(r"^## Unreleased\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if CONFIG.branch == release.MAIN:
        assert section is not None and re.search(r"^\s*- ", section.group(1), re.MULTILINE)


def test_a_release_refuses_a_bad_version_or_an_empty_changelog(tmp_path: Path) -> None:
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n## 0.1.0 (2026-01-01)\n\n- first\n")
    with pytest.raises(ValueError, match="X.Y.Z"):
        release.release(tmp_path, "1.0")
    with pytest.raises(ValueError, match="Unreleased"):
        release.close_unreleased(tmp_path, "0.2.0", datetime.date(2026, 2, 1))
    (tmp_path / "CHANGELOG.md").write_text("# Changelog\n\n## Unreleased\n\n- more\n\n## 0.1.0 (2026-01-01)\n")
    with pytest.raises(ValueError, match="already"):
        release.close_unreleased(tmp_path, "0.1.0", datetime.date(2026, 2, 1))
    release.close_unreleased(tmp_path, "0.2.0", datetime.date(2026, 2, 1))
    release.open_unreleased(tmp_path)
    release.open_unreleased(tmp_path)  # idempotent
    assert (tmp_path / "CHANGELOG.md").read_text().startswith(
        "# Changelog\n\n## Unreleased\n\n## 0.2.0 (2026-02-01)\n\n- more\n"
    )


def test_the_install_cell_is_rewritten_whole_and_only_there(tmp_path: Path) -> None:
    chapter = tmp_path / "chapter.md"
    head = "---\njupytext:\n  x: 1\n---\n\n# Title\n\n```{code-cell} ipython3\n:tags: [remove-cell]\n\n"
    tail = "\n```\n\n```{code-cell} ipython3\nx = 1\n```\n"
    chapter.write_text(head + 'import sys\nif "google.colab" in sys.modules:\n    %pip install old' + tail)
    release.set_install_cell(chapter, CONFIG.url, "v1.2.3")
    assert chapter.read_text() == head + release.install_cell(CONFIG.url, "v1.2.3") + tail
    chapter.write_text(head + "x = 0" + tail)
    with pytest.raises(ValueError, match="not the Colab install cell"):
        release.set_install_cell(chapter, CONFIG.url, "v1.2.3")


# The files a release reads or rewrites (the rest of the repository plays no part).
_COPIED = ("pyproject.toml", "MANIFEST.in", "README.md", "LICENSE", "CHANGELOG.md", "CITATION.cff", "_config.yml")


def _copy_repository(dest: Path) -> Path:
    for name in _COPIED:
        shutil.copy2(ROOT / name, dest / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(ROOT / "orthobook", dest / "orthobook", ignore=ignore)
    shutil.copytree(ROOT / "scripts", dest / "scripts", ignore=ignore)
    (dest / "book").mkdir()
    for source in SOURCES:
        for path in (source, source.with_suffix(".ipynb")):
            shutil.copy2(path, dest / "book" / path.name)
    return dest


def _outputs(path: Path) -> dict[str, str]:
    """Source (pins masked) → outputs, for the code cells of a stored notebook."""
    cells = nbformat.read(path, as_version=4).cells
    code = [c for c in cells if c.cell_type == "code"]
    return {release.PIN.sub("git+PIN", c.source): json.dumps(c.outputs, sort_keys=True) for c in code}


def _run_release(root: Path, *args: str) -> str:
    result = subprocess.run(
        [sys.executable, str(root / "scripts" / "release.py"), "--root", str(root), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _assert_pinned(root: Path, ref: str) -> None:
    assert release.repository(root) == release.Repository(CONFIG.url, ref)
    expected = release.install_cell(CONFIG.url, ref)
    for source in release.chapter_sources(root):
        assert _first_code_cell(jupytext.read(source)) == expected, source.name
        stored = source.with_suffix(".ipynb")
        assert _first_code_cell(nbformat.read(stored, as_version=4)) == expected, stored.name
        for path in (source, stored):
            assert {r for u, r in release.pins(path) if u == CONFIG.url} == {ref}, path.name
    assert {r for u, r in release.pins(root / "README.md") if u == CONFIG.url} == {ref}


@pytest.mark.slow
def test_release_rewrites_every_pin_keeps_outputs_and_builds(tmp_path: Path) -> None:
    root = _copy_repository(tmp_path)
    before = {p.name: _outputs(p) for p in (root / "book").glob("*.ipynb")}

    stdout = _run_release(root, "9.8.7", "--no-isolation")

    assert release.version(root) == "9.8.7"
    _assert_pinned(root, "v9.8.7")
    for path in (root / "book").glob("*.ipynb"):
        after = _outputs(path)
        kept = {source: out for source, out in before[path.name].items() if source in after}
        assert kept and all(after[source] == out for source, out in kept.items()), f"{path.name} lost outputs"
    changelog = (root / "CHANGELOG.md").read_text()
    assert "## Unreleased" not in changelog and re.search(r"^## 9\.8\.7 \(\d{4}-\d\d-\d\d\)$", changelog, re.M)
    sdist, wheel = root / "dist" / "orthobook-9.8.7.tar.gz", root / "dist" / "orthobook-9.8.7-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        metadata = archive.read("orthobook-9.8.7.dist-info/METADATA").decode()
    assert "\nVersion: 9.8.7\n" in metadata
    with tarfile.open(sdist) as archive:
        assert "orthobook-9.8.7/orthobook/__init__.py" in archive.getnames()
    assert 'git tag -a v9.8.7 -m "orthobook 9.8.7"' in stdout

    _run_release(root, "--main")

    assert release.version(root) == "9.8.7"
    _assert_pinned(root, release.MAIN)
    changelog = (root / "CHANGELOG.md").read_text()
    assert changelog.index("## Unreleased") < changelog.index("## 9.8.7")


def test_citation_names_the_repository_and_no_second_version() -> None:
    text = (ROOT / "CITATION.cff").read_text(encoding="utf-8")
    assert re.search(rf'^repository-code: "{re.escape(CONFIG.url)}"$', text, re.MULTILINE)
    assert not re.search(r"^version:", text, re.MULTILINE), "the version's one place is orthobook/__init__.py"
