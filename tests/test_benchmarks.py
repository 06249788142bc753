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
    if group == "peers" and run._peer_libraries() is None:
        pytest.skip("the bench extra (geotorch, geoopt) is not installed; the skip is tested below")
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


def test_record_writes_the_run_and_a_table_for_the_book(tmp_path: Path) -> None:
    threads = torch.get_num_threads()
    argv = ["--quick", "--only", "rnn", "--device", "cpu", "--threads", "1", "--repeats", "1", "--warmup", "0"]
    try:
        records = run.main([*argv, "--record", str(tmp_path), "--note", "A shared machine."])
    finally:
        torch.set_num_threads(threads)
    (path,) = tmp_path.glob("*.json")
    assert path.name == "cpu-threads-1.json"
    recorded = json.loads(path.read_text())
    assert tuple(recorded) == run.RUN_KEYS
    assert recorded["records"] == records and recorded["threads"] == 1 and recorded["note"] == "A shared machine."
    assert recorded["commit"] == run.git_commit()
    table = (tmp_path / "table.md").read_text()
    assert f"commit `{recorded['commit']}`" in table and recorded["date"] in table and "A shared machine." in table
    rows = [line for line in table.splitlines() if line.startswith("| ElmanRNN")]
    assert len(rows) == len(records)
    assert all(row.endswith(f"| {record['ratio']:.3f} |") for row, record in zip(rows, records))


def test_table_lists_every_recorded_run_in_order_of_threads(tmp_path: Path) -> None:
    record = {"case": "c", "n": 1, "T": None, "batch": None, "seconds": 2.0, "baseline": "b", "baseline_seconds": 1.0, "ratio": 2.0}
    for threads in (2, 1):
        meta = {**run.run_metadata(torch.device("cpu"), threads, None), "records": [record]}
        run.write_record(tmp_path, meta)
    table = (tmp_path / "table.md").read_text()
    assert table.index("**cpu, 1 thread**") < table.index("**cpu, 2 threads**")
    assert table.count("| c | 1 | - | - | 2 | b | 1 | 2.000 |") == 2


def test_peers_are_skipped_with_a_message_without_the_bench_extra(monkeypatch, capsys) -> None:
    monkeypatch.setattr(run, "_peer_libraries", lambda: None)
    settings = run.Settings(torch.device("cpu"), (8,), (5,), 4, True)
    assert list(run.peer_cases(settings)) == []
    assert "peers: skipped" in capsys.readouterr().out


def test_baselines_start_from_the_weights_of_the_model() -> None:
    """The compared nn.RNN holds the model's initial weights, its constrained W included."""
    model = run.ElmanRNN(1, 6, 1, generator=torch.Generator().manual_seed(0))
    run._householder(model.rnn, "weight_hh_l0")
    reference = run._same_start(model)
    x = torch.randn(3, 4, 1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(reference.rnn.weight_hh_l0, model.recurrent_matrices()[0].detach())
    assert torch.allclose(reference(x), model(x), rtol=0, atol=10 * torch.finfo(torch.float32).eps)
