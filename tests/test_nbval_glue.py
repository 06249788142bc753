"""tests/nbval_glue.py: nbval skips glued values and SVG figures, and compares everything else."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

TESTS = Path(__file__).resolve().parent

GLUE = "from myst_nb import glue\nglue('x', 0.5 * 3, display=False)"
PRINT = "print(0.5 * 3)"


def _notebook(path: Path, source: str, stored: dict) -> None:
    cell = nbformat.v4.new_code_cell(source, execution_count=1)
    cell.outputs = [nbformat.v4.new_output(**stored)]
    notebook = nbformat.v4.new_notebook(cells=[cell])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, path)


def _nbval(path: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "pytest", "--nbval", str(path), "-p", "nbval_glue", "-p", "no:cacheprovider", "-q"]
    return subprocess.run(command, cwd=path.parent, env={**os.environ, "PYTHONPATH": str(TESTS)}, capture_output=True, text=True)


@pytest.mark.slow
def test_a_glued_value_that_differs_is_not_compared(tmp_path: Path) -> None:
    record = {
        "output_type": "display_data",
        "data": {"application/papermill.record/text/plain": "1.25"},
        "metadata": {"scrapbook": {"name": "x", "mime_prefix": "application/papermill.record/"}},
    }
    _notebook(tmp_path / "glued.ipynb", GLUE, record)
    result = _nbval(tmp_path / "glued.ipynb")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_a_printed_value_that_differs_is_compared(tmp_path: Path) -> None:
    _notebook(tmp_path / "printed.ipynb", PRINT, {"output_type": "stream", "name": "stdout", "text": "1.25\n"})
    result = _nbval(tmp_path / "printed.ipynb")
    assert result.returncode != 0 and "1.25" in result.stdout
