"""The book shows only public code, and every equation the package cites exists in the book.

A chapter includes package code with ``{literalinclude}`` + ``:pyobject:``; the target must be
a public name (no component starting with ``_``) defined in the named file. Docstrings cite the
book's equations as ``Book: Eq. (label)``; each label must be defined by some page.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from conftest import BOOK, ROOT

PAGES = sorted(BOOK.glob("*.md"))
INCLUDE = re.compile(r"```\{literalinclude\}\s+(?P<path>\S+)\s*\n(?P<options>(?::[^\n]*\n)*)")
EQUATION_LABEL = re.compile(r"^\$\$\s*\((?P<label>[\w-]+)\)\s*$", re.MULTILINE)
CITED_EQUATION = re.compile(r"Eq\.\s*\((?P<label>[a-z][\w-]*)\)")


def _includes() -> list[tuple[str, Path, str]]:
    found = []
    for page in PAGES:
        for match in INCLUDE.finditer(page.read_text()):
            options = dict(
                line[1:].split(":", 1) for line in match["options"].splitlines() if line.startswith(":")
            )
            if "pyobject" in options:
                found.append((page.name, (page.parent / match["path"]).resolve(), options["pyobject"].strip()))
    return found


def _defined(tree: ast.Module, dotted: str) -> bool:
    body: list[ast.stmt] = tree.body
    for part in dotted.split("."):
        node = next(
            (n for n in body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and n.name == part),
            None,
        )
        if node is None:
            return False
        body = node.body
    return True


INCLUDES = _includes()


def test_the_book_includes_package_code():
    assert INCLUDES, "no literalinclude with :pyobject: found: the pattern no longer matches the pages"


@pytest.mark.parametrize("page, path, target", INCLUDES, ids=[f"{p}:{t}" for p, _, t in INCLUDES])
def test_every_included_object_is_public_and_exists(page, path, target):
    assert path.is_file(), f"{page} includes {path}, which does not exist"
    assert not any(part.startswith("_") for part in target.split(".")), (
        f"{page} shows the private {target} of {path.name}: the book shows only public code"
    )
    assert _defined(ast.parse(path.read_text()), target), f"{page}: {target} is not defined in {path.name}"


def _book_labels() -> set[str]:
    return {m["label"] for page in PAGES for m in EQUATION_LABEL.finditer(page.read_text())}


def _cited_in_package() -> list[tuple[str, str]]:
    cited = []
    for module in sorted((ROOT / "orthobook").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef)):
                for m in CITED_EQUATION.finditer(ast.get_docstring(node) or ""):
                    cited.append((module.relative_to(ROOT).as_posix(), m["label"]))
    return cited


def test_every_equation_a_docstring_cites_exists_in_the_book():
    labels = _book_labels()
    assert len(labels) > 50, "the equation-label pattern no longer matches the pages"
    cited = _cited_in_package()
    assert cited, "no docstring cites an equation: the citation pattern no longer matches"
    missing = sorted({f"{module}: Eq. ({label})" for module, label in cited if label not in labels})
    assert not missing, "docstrings cite equations the book does not define:\n" + "\n".join(missing)
