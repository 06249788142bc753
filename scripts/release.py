"""Pin the book to a release (or back to ``main``) and build the release's sdist and wheel.

The chapters' Colab install cells and the book's launch buttons name the same git ref, and
that ref is ``_config.yml``'s ``repository.branch``:

- on ``main`` the ref is ``main``: the launch buttons open ``blob/main/book/<chapter>.ipynb``,
  whose install cell installs ``git+<repository>@main``, the package of the same commit;
- a release ``X.Y.Z`` is the git tag ``vX.Y.Z``: its commit has ``branch: vX.Y.Z``, every
  install cell installs ``@vX.Y.Z``, and ``orthobook.__version__`` is ``X.Y.Z``.

Usage (from the repository root, or with ``--root``)::

    python scripts/release.py 0.2.0     # or: make release VERSION=0.2.0
    python scripts/release.py --main    # after the tag: back to @main

``release.py X.Y.Z`` sets ``__version__`` in ``orthobook/__init__.py`` (its one place),
renames the changelog's "Unreleased" section to "X.Y.Z (date)", points ``_config.yml``, the
install cell of every ``book/*.md`` (rewritten to exactly :data:`INSTALL_CELL`) and the
install line of the README at ``vX.Y.Z``, updates each paired ``book/*.ipynb`` from its
``.md`` with ``jupytext --update`` (which keeps the stored outputs), builds the sdist and the
wheel into ``dist/`` (``python -m build``), and prints the git commands that commit and tag
the release. ``--main`` points everything back at ``main`` (the same rewrite, ref ``main``)
and opens a new "Unreleased" section. Neither mode runs git.
"""

from __future__ import annotations

import argparse
import datetime
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAIN = "main"

# The Colab install cell of every chapter: the first code cell of book/<chapter>.md, tagged
# remove-cell. Colab keeps its own torch (it satisfies torch>=2.2); the [notebook] extra adds
# what the chapters import beyond the package (myst-nb's glue).
INSTALL_CELL = """\
# On Colab: install orthobook from the same branch or release as this notebook (Colab's own
# torch is kept); does nothing elsewhere.
import sys

if "google.colab" in sys.modules:
    %pip install --quiet "orthobook[notebook] @ git+{url}@{ref}\""""

# Any pip-installable git reference to the repository: `git+<url>@<ref>`.
PIN = re.compile(r"git\+(?P<url>https://github\.com/[\w.-]+/[\w.-]+?)(?:\.git)?@(?P<ref>[\w./-]+)")
VERSION = re.compile(r"\d+\.\d+\.\d+(?:(?:a|b|rc)\d+)?")
VERSION_LINE = re.compile(r'^__version__ = "(?P<version>[^"]*)"$', re.MULTILINE)
UNRELEASED = "## Unreleased"


@dataclass(frozen=True)
class Repository:
    """``_config.yml``'s ``repository``: where the book's launch buttons point."""

    url: str
    branch: str


def tag(version: str) -> str:
    """The git tag of a release: ``vX.Y.Z``."""
    return f"v{version}"


def repository(root: Path = ROOT) -> Repository:
    """Read ``repository.url`` and ``repository.branch`` from ``_config.yml``."""
    text = (root / "_config.yml").read_text(encoding="utf-8")
    block = re.search(r"^repository:\n((?:[ \t]+.*\n?)+)", text, re.MULTILINE)
    if block is None:
        raise ValueError("_config.yml has no repository: block")
    fields = dict(re.findall(r"^[ \t]+(url|branch):[ \t]*(\S+)", block.group(1), re.MULTILINE))
    if set(fields) != {"url", "branch"}:
        raise ValueError("_config.yml's repository: block needs url: and branch:")
    return Repository(fields["url"].rstrip("/"), fields["branch"])


def version(root: Path = ROOT) -> str:
    """``orthobook.__version__``, read from ``orthobook/__init__.py`` without importing it."""
    found = VERSION_LINE.findall((root / "orthobook" / "__init__.py").read_text(encoding="utf-8"))
    if len(found) != 1:
        raise ValueError("orthobook/__init__.py must hold exactly one line __version__ = \"X.Y.Z\"")
    return found[0]


def chapter_sources(root: Path = ROOT) -> list[Path]:
    """Every ``book/*.md`` that is a notebook (a jupytext header) and so has an install cell."""
    return sorted(p for p in (root / "book").glob("*.md") if p.read_text(encoding="utf-8").startswith("---\njupytext:"))


def install_cell(url: str, ref: str) -> str:
    """The exact source of a chapter's install cell for the repository ``url`` at ``ref``."""
    return INSTALL_CELL.format(url=url, ref=ref)


def pins(path: Path) -> list[tuple[str, str]]:
    """Every ``(url, ref)`` pinned by ``git+<url>@<ref>`` in a text file."""
    return [(m["url"], m["ref"]) for m in PIN.finditer(path.read_text(encoding="utf-8"))]


def _replace_once(pattern: re.Pattern[str], replacement: str, text: str, what: str) -> str:
    new, count = pattern.subn(replacement, text)
    if count != 1:
        raise ValueError(f"expected exactly one {what}, found {count}")
    return new


def set_version(root: Path, new: str) -> None:
    path = root / "orthobook" / "__init__.py"
    text = path.read_text(encoding="utf-8")
    path.write_text(_replace_once(VERSION_LINE, f'__version__ = "{new}"', text, "__version__ line"), encoding="utf-8")


def set_branch(root: Path, ref: str) -> None:
    path = root / "_config.yml"
    text = path.read_text(encoding="utf-8")
    pattern = re.compile(r"^(repository:\n(?:[ \t]+.*\n)*?[ \t]+branch:[ \t]*)\S+", re.MULTILINE)
    path.write_text(_replace_once(pattern, rf"\g<1>{ref}", text, "repository branch in _config.yml"), encoding="utf-8")


def set_pins(path: Path, url: str, ref: str) -> bool:
    """Point every ``git+<url>@…`` of the repository in ``path`` at ``ref``; whether it changed."""
    text = path.read_text(encoding="utf-8")
    new = PIN.sub(lambda m: f"git+{url}@{ref}" if m["url"] == url else m[0], text)
    if new != text:
        path.write_text(new, encoding="utf-8")
    return new != text


# The first code cell of a MyST chapter: its fence line, its options (`:tags: [remove-cell]`)
# and a blank line, its body, the closing fence.
FIRST_CODE_CELL = re.compile(r"^(```\{code-cell\}[^\n]*\n(?::[^\n]*\n)*\n?)(.*?)\n(```)$", re.MULTILINE | re.DOTALL)


def set_install_cell(source: Path, url: str, ref: str) -> None:
    """Make the first code cell of the chapter ``source`` exactly :func:`install_cell`."""
    text = source.read_text(encoding="utf-8")
    cell = FIRST_CODE_CELL.search(text)
    if cell is None or '"google.colab" in sys.modules' not in cell.group(2):
        raise ValueError(f"{source.name}: the first code cell is not the Colab install cell")
    new = text[: cell.start(2)] + install_cell(url, ref) + text[cell.end(2) :]
    source.write_text(new, encoding="utf-8")


def update_notebook(source: Path) -> None:
    """Rewrite ``source``'s paired ``.ipynb`` from the ``.md``, keeping its stored outputs."""
    subprocess.run(
        [sys.executable, "-m", "jupytext", "--update", "--to", "ipynb", "--quiet", str(source)],
        check=True,
    )


def pin_everything(root: Path, ref: str) -> list[Path]:
    """Point ``_config.yml``, the chapters (``.md`` and ``.ipynb``) and the README at ``ref``."""
    url = repository(root).url
    set_branch(root, ref)
    changed = [root / "_config.yml"]
    for source in chapter_sources(root):
        set_install_cell(source, url, ref)
        update_notebook(source)
        changed += [source, source.with_suffix(".ipynb")]
    readme = root / "README.md"
    if set_pins(readme, url, ref):
        changed.append(readme)
    return changed


def close_unreleased(root: Path, new: str, date: datetime.date) -> None:
    """Rename the changelog's "Unreleased" section to the release; refuse an empty one."""
    path = root / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8")
    section = re.search(rf"^{UNRELEASED}\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    if section is None or not re.search(r"^\s*[-*] ", section.group(1), re.MULTILINE):
        raise ValueError(f"CHANGELOG.md needs a '{UNRELEASED}' section listing the changes of {new}")
    if re.search(rf"^## {re.escape(new)}\b", text, re.MULTILINE):
        raise ValueError(f"CHANGELOG.md already has a section for {new}")
    path.write_text(text.replace(f"{UNRELEASED}\n", f"## {new} ({date.isoformat()})\n", 1), encoding="utf-8")


def open_unreleased(root: Path) -> None:
    """Put an empty "Unreleased" section above the newest release, unless there is one."""
    path = root / "CHANGELOG.md"
    text = path.read_text(encoding="utf-8")
    if re.search(rf"^{UNRELEASED}$", text, re.MULTILINE):
        return
    first = re.search(r"^## ", text, re.MULTILINE)
    at = first.start() if first else len(text)
    path.write_text(text[:at] + f"{UNRELEASED}\n\n" + text[at:], encoding="utf-8")


def build(root: Path, isolation: bool) -> list[Path]:
    """``python -m build``: the sdist, then the wheel built from it, into ``root/dist``."""
    out = root / "dist"
    name = f"orthobook-{version(root)}"
    for old in (*out.glob(f"{name}.tar.gz"), *out.glob(f"{name}-*.whl")):
        old.unlink()
    command = [sys.executable, "-m", "build", "--outdir", str(out), str(root)]
    subprocess.run(command + ([] if isolation else ["--no-isolation"]), check=True)
    return sorted([*out.glob(f"{name}.tar.gz"), *out.glob(f"{name}-*.whl")])


def release(root: Path, new: str, *, isolation: bool = True, date: datetime.date | None = None) -> list[Path]:
    """Make the working tree at ``root`` the release ``new``; returns the built files."""
    if not VERSION.fullmatch(new):
        raise ValueError(f"version must look like X.Y.Z (optionally aN, bN, rcN), got {new!r}")
    close_unreleased(root, new, date or datetime.date.today())
    set_version(root, new)
    pin_everything(root, tag(new))
    return build(root, isolation)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("version", nargs="?", help="the release X.Y.Z (tagged vX.Y.Z)")
    mode.add_argument("--main", action="store_true", help="point everything back at main after a release")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository (default: this script's)")
    parser.add_argument(
        "--no-isolation", action="store_true", help="build with this environment's setuptools (no download)"
    )
    args = parser.parse_args(argv)
    root = args.root.resolve()
    if args.main:
        pin_everything(root, MAIN)
        open_unreleased(root)
        print(f"pinned to {MAIN}; commit with:\n  git commit -am \"Install cells and launch buttons name {MAIN}\"")
        return 0
    built = release(root, args.version, isolation=not args.no_isolation)
    print("built:\n" + "\n".join(f"  {p.relative_to(root)}" for p in built))
    ref = tag(args.version)
    print(
        "next:\n"
        f"  git commit -am \"Release {args.version}\"\n"
        f"  git tag -a {ref} -m \"orthobook {args.version}\"\n"
        f"  git push origin {MAIN} {ref}\n"
        "  python scripts/release.py --main    # then commit and push: main installs @main again"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
