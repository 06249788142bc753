"""Smoke test of benchmarks/run.py: every group runs at the smallest sizes and writes its records.

No timing is asserted here; speed is read from the ratios the script prints.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

from conftest import ROOT

BENCHMARKS = ROOT / "benchmarks"
KEYS = {"case", "n", "T", "batch", "seconds", "baseline", "baseline_seconds", "ratio"}


def _load(name: str, path: Path) -> ModuleType:
    # benchmarks/ is a folder of scripts, not a package: load them by path.
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


_load("householder_cases", BENCHMARKS / "householder_cases.py")  # run.py imports it as a sibling
run = _load("orthobook_benchmarks_run", BENCHMARKS / "run.py")


@pytest.mark.parametrize("group", sorted(run.GROUPS))
def test_quick_run_writes_records_with_the_fixed_keys(group: str, tmp_path: Path) -> None:
    path = tmp_path / "records.json"
    argv = ["--quick", "--only", group, "--device", "cpu", "--threads", "1", "--repeats", "1", "--warmup", "0"]
    threads = torch.get_num_threads()
    try:
        returned = run.main([*argv, "--json", str(path)])
    finally:
        torch.set_num_threads(threads)
    records = json.loads(path.read_text())
    assert records == returned
    assert records, f"group {group} produced no record"
    for record in records:
        assert set(record) == KEYS
        assert record["seconds"] > 0 and record["baseline_seconds"] > 0
        assert record["ratio"] == pytest.approx(record["seconds"] / record["baseline_seconds"])


def test_unknown_group_is_refused() -> None:
    with pytest.raises(SystemExit):
        run.main(["--only", "no_such_group"])
