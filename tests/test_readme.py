"""The README's first example runs as written and learns what the README says it learns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def _example() -> str:
    """The first ```python block of the README's section "A first example"."""
    section = re.search(r"^## A first example\n(.*?)(?=^## )", README, re.MULTILINE | re.DOTALL)
    assert section is not None, 'the README has a section "## A first example"'
    block = re.search(r"^```python\n(.*?)^```$", section.group(1), re.MULTILINE | re.DOTALL)
    assert block is not None, "that section holds a ```python block"
    return block.group(1)


def test_the_example_uses_the_package_root_and_states_its_result() -> None:
    code = _example()
    assert re.search(r"^from orthobook import ", code, re.MULTILINE)
    assert "at least 90 % of the symbols" in README


@pytest.mark.slow
def test_the_example_learns_the_copy_task(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TQDM_DISABLE="1", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2", ORTHOBOOK_DATA=str(tmp_path / "data"))
    result = subprocess.run(
        [sys.executable, "-c", _example()], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    printed = re.fullmatch(r"loss (\S+) \(memoryless (\S+)\), recall (\S+)\n", result.stdout)
    assert printed is not None, result.stdout
    loss, baseline, recall = map(float, printed.groups())
    assert recall >= 0.9, f"the README promises a recall of at least 0.9, got {recall}"
    assert loss < baseline / 4
