"""orthobook.experiments: the registry, the results store (hash refusal), runs with model
selection and resume after a kill, the command line, and both sweep backends (local without
Ray importable, Ray on a local instance) on the tiny configuration ``smoke-copy``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from orthobook.experiments import REGISTRY, StaleResult, Store, get, parse_budget, run_group, select
from orthobook.experiments import runner as runner_module
from orthobook.experiments.build import build_model, build_optimizers, build_tasks
from orthobook.experiments.cli import main, parse_seeds
from orthobook.experiments.config import Deviation, Experiment, LRSchedule
from orthobook.experiments.report import comparison_rows, faithfulness_rows, verdict
from orthobook.experiments.sweep import groups, sweep
from orthobook.mnist import MNISTArrays, load_mnist_slice
from orthobook.optim import CayleySGD
from orthobook.ptb import PTBCorpus, Vocabulary, tokenize_ptb

SMOKE = get("smoke-copy")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_the_registry_holds_every_headline_experiment_of_the_issue() -> None:
    expected = [
        *(f"vorontsov2017-copy-T{T}-m{m}" for T in (200, 500, 1000, 10000) for m in ("0", "0.001", "0.01", "0.1", "1", "none")),
        *(f"vorontsov2017-{t}-{k}" for t in ("smnist", "pmnist") for k in ("m0", "m0.001", "m0.01", "m0.1", "m1", "mnone", "mnone-glorot", "lstm")),
        "vorontsov2017-adding-T200-m0.1", "vorontsov2017-ptb-char",
        "zhang2018-smnist-spectral", "zhang2018-smnist-ornn", "zhang2018-smnist-lstm", "zhang2018-adding-spectral", "zhang2018-copy-spectral",
        *(f"hu2018-adding-T{T}-{m}" for T in (200, 300, 400) for m in ("rin", "irnn", "lstm")),
        *(f"hu2018-{t}-{m}" for t in ("smnist", "pmnist") for m in ("rin", "irnn", "lstm")),
        *(f"orhan2020-{t}-{i}" for t in ("copy", "psmnist") for i in ("chain", "fbchain", "orthogonal", "identity")),
        "orhan2020-ptb-char",
    ]  # fmt: skip
    assert not [name for name in expected if name not in REGISTRY]
    for e in REGISTRY.values():
        assert e.reported and all(r.source for r in e.reported), e.name
        assert e.sources, e.name
    hashes = [e.config_hash() for e in REGISTRY.values()]
    assert len(set(hashes)) == len(hashes)


def test_the_papers_hyperparameters_as_checked_against_the_released_code() -> None:
    orhan = get("orhan2020-copy-chain")
    assert (orhan.lr, orhan.batch_size, orhan.clip, orhan.hidden_size, orhan.init_scale) == (1e-4, 16, 10.0, 100, 1.02)
    assert orhan.T + 2 * orhan.n_copy == 500 and orhan.early_stop_loss == 0.0025
    zhang = get("zhang2018-smnist-spectral")
    assert (zhang.reflectors, zhang.margin, zhang.batch_size, zhang.split) == (16, 0.01, 128, "pooled 80/20")
    for e in select("zhang2018-*"):  # the release decays Adam's rate by 0.99 per epoch, for every cell
        assert e.lr_decay == LRSchedule("exponential", 0.99) and e.deviation("lr_decay") is None, e.name
    assert all(e.lr_decay is None for e in REGISTRY.values() if e.paper != "zhang2018")
    hu = get("hu2018-smnist-rin")
    assert (hu.optimizer, hu.lr, hu.batch_size, hu.steps_per_epoch) == ("rmsprop", 1e-6, 128, 469)
    lstm = get("vorontsov2017-pmnist-lstm")
    assert (lstm.lr, lstm.clip, lstm.steps) == (1e-4, 1.0, 150 * lstm.steps_per_epoch)


def test_the_papers_tables_are_entered_for_the_mnist_grids() -> None:
    def accuracy(name: str) -> float:
        (reported,) = get(name).reported
        assert reported.metric == "test_accuracy" and "Table" in reported.source, name
        assert 0 < reported.value < 1 and reported.tolerance > 0, name
        return reported.value

    for task in ("smnist", "pmnist"):
        # Vorontsov et al.'s text: the best margin is 0.1 on both tasks, the LSTM beats every RNN,
        # and the Glorot start is the worst.
        cells = {k: accuracy(f"vorontsov2017-{task}-{k}") for k in ("m0", "m0.001", "m0.01", "m0.1", "m1", "mnone", "mnone-glorot", "lstm")}  # fmt: skip
        rnns = {k: v for k, v in cells.items() if k != "lstm"}
        assert max(rnns, key=rnns.get) == "m0.1" and min(rnns, key=rnns.get) == "mnone-glorot"
        assert cells["lstm"] > max(rnns.values())
        # Hu et al.'s text: at 1 × 100 the RIN beats the IRNN, and the LSTM is the worst.
        rin, irnn, lstm = (accuracy(f"hu2018-{task}-{m}") for m in ("rin", "irnn", "lstm"))
        assert rin > irnn > lstm


def test_learning_rate_schedules_follow_their_formula_and_torch() -> None:
    for schedule in (LRSchedule("exponential", 0.9), LRSchedule("step", 0.5, step_size=3)):
        weight = torch.nn.Parameter(torch.zeros(()))
        optimizer = torch.optim.SGD([weight], lr=0.1)
        scheduler = schedule.build(optimizer)
        for epoch in range(10):
            assert optimizer.param_groups[0]["lr"] == pytest.approx(0.1 * schedule.factor(epoch), rel=1e-12)
            optimizer.step()
            scheduler.step()
    assert LRSchedule("exponential", 0.99).factor(100) == pytest.approx(0.99**100, rel=1e-15)
    for bad in (dict(kind="cosine", gamma=0.5), dict(kind="exponential", gamma=1.5), dict(kind="step", gamma=0.5)):
        with pytest.raises(ValueError):
            LRSchedule(**bad)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        dataclasses.replace(SMOKE, lr_decay=LRSchedule("exponential", 0.9))
    with pytest.raises(TypeError, match="lr_decay"):
        dataclasses.replace(SMOKE, lr_decay=0.99, steps_per_epoch=10)
    scheduled = dataclasses.replace(SMOKE, lr_decay=LRSchedule("exponential", 0.9), steps_per_epoch=15)
    assert SMOKE.run_settings()["lr_decay"] is None  # a constant rate hashes as before the schedules
    assert json.loads(json.dumps(scheduled.run_settings()))["lr_decay"] == {"kind": "exponential", "gamma": 0.9, "step_size": None}  # fmt: skip
    assert scheduled.config_hash() != dataclasses.replace(scheduled, lr_decay=LRSchedule("exponential", 0.8)).config_hash()


SCHEDULED = dataclasses.replace(SMOKE, name="smoke-copy-decay", lr_decay=LRSchedule("exponential", 0.9), steps_per_epoch=15)


def _recording_rates(real_train, seen):
    def recording(module, task, optimizers, goal, config):
        histories = real_train(module, task, optimizers, goal, config)
        seen.append((goal, [[group["lr"] for group in opt.param_groups] for opt in optimizers]))
        return histories

    return recording


def test_a_scheduled_run_decays_every_rate_per_epoch_and_resumes_the_schedule(tmp_path, monkeypatch) -> None:
    e, real_train = SCHEDULED, runner_module.train
    task = build_tasks(e, torch.device("cpu")).train
    initial = [[g["lr"] for g in opt.param_groups] for opt in build_optimizers(e, [build_model(e, task, 0)])]

    def expected(goal: int) -> list[list[float]]:  # the rates of the epoch that the chunk ends in
        factor = e.lr_decay.factor((goal - 1) // e.steps_per_epoch)
        return [[lr * factor for lr in rates] for rates in initial]

    seen: list = []
    monkeypatch.setattr(runner_module, "train", _recording_rates(real_train, seen))
    unbroken = run_group(e, [0, 1], Store(tmp_path / "a"), progress=False)
    # chunks end at every evaluation (20 steps) and every epoch's end (15 steps)
    assert [goal for goal, _ in seen] == [15, 20, 30, 40, 45, 60]
    for goal, rates in seen:
        assert rates == [pytest.approx(r, rel=1e-12) for r in expected(goal)], goal
    assert [r["step"] for r in Store(tmp_path / "a").log(e, 0, "eval")] == [20, 40, 60]

    store = Store(tmp_path / "b")
    assert _run_killed_after(3, e, store, monkeypatch) == [15, 20, 30]
    seen.clear()
    monkeypatch.setattr(runner_module, "train", _recording_rates(real_train, seen))
    resumed = run_group(e, [0, 1], store, progress=False)
    assert [goal for goal, _ in seen] == [40, 45, 60]  # two epochs in: the rate is lr · 0.9²
    for goal, rates in seen:
        assert rates == [pytest.approx(r, rel=1e-12) for r in expected(goal)], goal
    for a, b in zip(unbroken, resumed):
        assert a["metrics"] == b["metrics"] and a["selected"] == b["selected"]


def test_the_hash_covers_the_run_settings_and_not_the_notes() -> None:
    changed_note = dataclasses.replace(SMOKE, title="other words", deviations=(Deviation("lr", 1.0, "why"),))
    assert changed_note.config_hash() == SMOKE.config_hash()
    assert dataclasses.replace(SMOKE, lr=2e-2).config_hash() != SMOKE.config_hash()


def test_configurations_are_checked() -> None:
    with pytest.raises(ValueError, match="task"):
        dataclasses.replace(SMOKE, task="sorting")
    with pytest.raises(ValueError, match="unknown field"):
        dataclasses.replace(SMOKE, deviations=(Deviation("learning_rate", 1, "x"),))
    with pytest.raises(ValueError, match="margin"):
        dataclasses.replace(SMOKE, margin=None)  # spectrum_lr_over_2m needs m > 0


def test_budgets_and_seeds_parse() -> None:
    assert parse_budget("500steps").steps == 500
    assert parse_budget("10m").seconds == 600 and parse_budget("2h").seconds == 7200
    both = parse_budget("100steps+30s")
    assert (both.steps, both.seconds) == (100, 30.0)
    assert parse_seeds("0-2") == [0, 1, 2] and parse_seeds("4,1") == [4, 1] and parse_seeds("2") == [0, 1]
    for bad in ("ten minutes", "0steps"):
        with pytest.raises(ValueError, match="budget"):
            parse_budget(bad)
    with pytest.raises(ValueError, match="seeds"):
        parse_seeds("1,1")


def test_vorontsov_optimizers_geodesic_sgd_on_frames_and_spectrum_at_lr_over_2m() -> None:
    e = get("vorontsov2017-copy-T200-m0.1")
    task = build_tasks(e, torch.device("cpu")).train
    model = build_model(dataclasses.replace(e, hidden_size=8), task, 0)
    frames, rest = build_optimizers(e, [model])
    assert isinstance(frames, CayleySGD) and frames.param_groups[0]["lr"] == e.frame_lr
    assert isinstance(rest, torch.optim.RMSprop)
    assert [g["lr"] for g in rest.param_groups] == [e.lr, e.lr / (2 * e.margin)]
    assert rest.param_groups[0]["weight_decay"] == 1e-4


def _tiny_char_corpus() -> PTBCorpus:
    """Three short texts in the layout of Mikolov's files, as load_ptb(level="char") reads them."""
    texts = {
        "train": " the market fell <unk> points \n traders said the fall was not over \n" * 4,
        "valid": " the market rose \n traders said so \n",
        "test": " the fall was over \n",
    }
    tokens = {split: tokenize_ptb(text, "char") for split, text in texts.items()}
    vocab = Vocabulary(tokens["train"])
    return PTBCorpus(*(vocab.encode(tokens[split]) for split in texts), vocab=vocab, level="char")


@pytest.mark.parametrize("name", ["vorontsov2017-ptb-char", "orhan2020-ptb-char"])
def test_ptb_character_configurations_run(name: str, tmp_path: Path) -> None:
    """Next-character prediction over the three texts: one-hot input and output over the
    vocabulary, every validation and test window scored once, a stored summary."""
    corpus = _tiny_char_corpus()
    e = dataclasses.replace(get(name), T=10, hidden_size=8, batch_size=4, steps=4, eval_every=2)
    tasks = build_tasks(e, torch.device("cpu"), source=corpus)
    V = len(corpus.vocab)
    assert (tasks.train.input_size, tasks.train.output_size, tasks.test.output_size) == (V, V, V)
    assert [len(t) for t in (tasks.train, tasks.validation, tasks.test)] == [
        (len(stream) - 1) // 10 for stream in (corpus.train, corpus.valid, corpus.test)
    ]
    (summary,) = run_group(e, [0], Store(tmp_path), source=corpus, progress=False)
    assert summary["steps"] == 4 and summary["complete"]
    assert 0 < summary["metrics"]["test_loss"] < 2 * math.log(V)
    with pytest.raises(ValueError, match="char-level"):
        build_tasks(e, torch.device("cpu"), source=dataclasses.replace(corpus, level="word"))


def test_mnist_splits_of_the_papers() -> None:
    images, labels = load_mnist_slice()
    arrays = MNISTArrays(images[:600], labels[:600], images[600:], labels[600:])
    pooled = build_tasks(get("zhang2018-smnist-spectral"), torch.device("cpu"), source=arrays)
    assert (len(pooled.train), len(pooled.test)) == (800, 200)
    held_out = build_tasks(get("vorontsov2017-smnist-m0.1"), torch.device("cpu"), source=arrays)
    assert (len(held_out.train), len(held_out.validation), len(held_out.test)) == (500, 100, 400)
    assert held_out.train.inputs.shape[1:] == (784, 1)


def test_a_run_writes_its_store_and_selects_the_best_validation_model(tmp_path: Path) -> None:
    store = Store(tmp_path)
    summaries = run_group(SMOKE, [0, 1], store, progress=False)
    for seed, summary in zip([0, 1], summaries):
        assert summary["seed"] == seed and summary["steps"] == SMOKE.steps and summary["complete"]
        assert summary["config_hash"] == SMOKE.config_hash() and summary["batched_with"] == [0, 1]
        for key in ("device_name", "torch", "orthobook", "git_commit", "wall_time_s", "budget"):
            assert key in summary
        evals = store.log(SMOKE, seed, "eval")
        assert [r["step"] for r in evals] == list(range(SMOKE.eval_every, SMOKE.steps + 1, SMOKE.eval_every))
        best = min(evals, key=lambda r: r["loss"])
        assert summary["selected"]["step"] == best["step"]
        steps = [r["step"] for r in store.log(SMOKE, seed)]
        assert steps == sorted(set(steps)) and steps[-1] < SMOKE.steps
    assert summaries[0]["metrics"] != summaries[1]["metrics"]  # two seeds, two runs


def test_a_summary_of_other_settings_is_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    run_group(SMOKE, [0], store, budget=parse_budget("20steps"), progress=False)
    path = store.run_dir(SMOKE, 0) / "summary.json"
    summary = json.loads(path.read_text())
    path.write_text(json.dumps(dict(summary, config_hash="0" * 16)))
    with pytest.raises(StaleResult, match="Delete"):
        store.summaries(SMOKE)
    with pytest.raises(StaleResult):
        run_group(SMOKE, [0], store, progress=False)
    changed = dataclasses.replace(SMOKE, lr=5e-3)
    path.write_text(json.dumps(summary))
    with pytest.raises(StaleResult):
        store.summary(changed, 0)


def _run_killed_after(chunks: int, experiment: Experiment, store: Store, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Run seeds 0 and 1 until a kill after ``chunks`` chunks; the steps the chunks trained to."""
    real_train, calls = runner_module.train, []

    def killed(*args, **kwargs):
        if len(calls) == chunks:
            raise KeyboardInterrupt  # as a kill between two chunks
        calls.append(args[3])
        return real_train(*args, **kwargs)

    monkeypatch.setattr(runner_module, "train", killed)
    with pytest.raises(KeyboardInterrupt):
        run_group(experiment, [0, 1], store, progress=False)
    monkeypatch.setattr(runner_module, "train", real_train)
    return calls


def test_a_killed_run_resumes_where_it_stopped_and_ends_as_an_unbroken_one(tmp_path, monkeypatch) -> None:
    unbroken = run_group(SMOKE, [0, 1], Store(tmp_path / "a"), progress=False)
    real_train, store = runner_module.train, Store(tmp_path / "b")
    assert _run_killed_after(2, SMOKE, store, monkeypatch) == [20, 40]
    assert store.summary(SMOKE, 0) is None
    resumed_goals = []
    monkeypatch.setattr(runner_module, "train", lambda *a, **k: resumed_goals.append(a[3]) or real_train(*a, **k))
    resumed = run_group(SMOKE, [0, 1], store, progress=False)
    assert resumed_goals == [60]  # only the unfinished chunk
    for a, b in zip(unbroken, resumed):
        assert a["metrics"] == b["metrics"] and a["selected"] == b["selected"]
    assert store.log(SMOKE, 0) == Store(tmp_path / "a").log(SMOKE, 0)
    monkeypatch.setattr(runner_module, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert run_group(SMOKE, [0, 1], store, progress=False) == resumed


def test_seeds_batched_or_one_by_one_give_the_same_runs(tmp_path: Path) -> None:
    batched = run_group(SMOKE, [0, 1], Store(tmp_path / "a"), budget=parse_budget("20steps"), progress=False)
    single = run_group(SMOKE, [0, 1], Store(tmp_path / "b"), budget=parse_budget("20steps"), batch=False, progress=False)
    for a, b in zip(batched, single):
        assert a["batched_with"] == [0, 1] and b["batched_with"] == [b["seed"]]
        assert a["metrics"]["test_loss"] == pytest.approx(b["metrics"]["test_loss"], rel=1e-4)


def test_groups_split_seeds_over_workers_and_keep_lstms_apart() -> None:
    assert groups([SMOKE], [0, 1, 2, 3], 2, True) == [(SMOKE, [0, 2]), (SMOKE, [1, 3])]
    lstm = get("hu2018-adding-T200-lstm")
    assert groups([lstm], [0, 1], 4, True) == [(lstm, [0]), (lstm, [1])]


def test_verdicts() -> None:
    reported = get("zhang2018-smnist-spectral").reported[0]
    summary = {"complete": True, "steps": 10, "paper_steps": 10, "metrics": {"test_accuracy": 0.976}}
    near = [dict(summary, metrics={"test_accuracy": v}) for v in (0.975, 0.977, 0.976)]
    far = [dict(summary, metrics={"test_accuracy": v}) for v in (0.90, 0.91, 0.905)]
    assert verdict(reported, near)[0] == "agrees"
    assert verdict(reported, far)[0] == "disagrees"
    assert verdict(reported, [dict(s, complete=False) for s in near])[0] == "not comparable at this budget"
    assert verdict(reported, [])[0] == "not run"


def test_faithfulness_and_comparison_tables_are_made_from_the_configurations(tmp_path: Path) -> None:
    rows = faithfulness_rows(list(REGISTRY.values()))
    assert {r["paper"] for r in rows} == {"vorontsov2017", "zhang2018", "hu2018", "orhan2020", "smoke"}
    decay = next(r for r in rows if r["configuration"] == "zhang2018-smnist-spectral" and r["hyperparameter"] == "lr_decay")
    assert (decay["paper value"], decay["ours"], decay["note"]) == ("×0.99 per epoch", "×0.99 per epoch", "")
    run_group(SMOKE, [0, 1, 2], Store(tmp_path), budget=parse_budget("20steps"), progress=False)
    (row,) = comparison_rows([SMOKE], Store(tmp_path))
    assert row["seeds"] == 3 and row["ours"].n == 3 and row["steps"] == 20
    assert row["verdict"] == "not comparable at this budget"


def test_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in REGISTRY)
    assert main(["run", "smoke-copy", "--seeds", "0-1", "--budget", "20steps", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "smoke-copy" / "seed-1" / "summary.json").exists()
    assert main(["report", "smoke*", "--out", str(tmp_path)]) == 0
    assert "smoke-copy" in capsys.readouterr().out
    assert main(["report", "orhan2020-copy-chain", "--faithfulness"]) == 0
    assert "clip" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["run", "smoke-copy", "--budget", "soon"])


_NO_RAY = """
import sys
import time
sys.modules["ray"] = None  # Ray not importable
from orthobook.experiments.cli import main
assert main(["sweep", "smoke-copy", "--seeds", "0-1", "--budget", "20steps", "--workers", "2",
             "--out", sys.argv[1]]) == 0
try:
    main(["sweep", "smoke-copy", "--seeds", "1", "--backend", "ray", "--out", sys.argv[1]])
except ModuleNotFoundError as error:
    print("refused:", error)
"""


def test_the_local_backend_without_ray(tmp_path: Path) -> None:
    env = dict(os.environ, TQDM_DISABLE="1", OMP_NUM_THREADS="1")
    result = subprocess.run([sys.executable, "-c", _NO_RAY, str(tmp_path)], capture_output=True, text=True, env=env, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refused: the Ray backend needs Ray" in result.stdout
    store = Store(tmp_path)
    summaries = store.summaries(SMOKE)
    assert [s["seed"] for s in summaries] == [0, 1] and [s["batched_with"] for s in summaries] == [[0], [1]]


# A sweep's stand-in: starts one worker that watches it, prints the worker's pid, waits.
_PARENT = """
import os, subprocess, sys, time
worker = ("from orthobook.experiments.sweep import _exit_with_parent; import time; "
          f"_exit_with_parent({os.getpid()}, poll=0.05); print('watching', flush=True); time.sleep(120)")
child = subprocess.Popen([sys.executable, "-c", worker], stdout=subprocess.PIPE, text=True)
assert child.stdout.readline().strip() == "watching"
print(child.pid, flush=True)
time.sleep(120)
"""


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_a_local_worker_ends_when_its_sweep_is_killed() -> None:
    """A worker whose sweep dies (SIGKILL: no clean-up in the sweep) stops instead of going
    on writing into the store; the run resumes from its checkpoint on the next sweep."""
    with subprocess.Popen([sys.executable, "-c", _PARENT], stdout=subprocess.PIPE, text=True, cwd=ROOT) as parent:
        try:
            worker = int(parent.stdout.readline())
            assert _running(worker)
        finally:
            parent.kill()
    deadline = time.monotonic() + 30
    while _running(worker) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(worker), "the worker outlived its sweep"


@pytest.mark.slow
def test_the_ray_backend_on_a_local_instance(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        summaries = sweep([SMOKE], [0, 1], Store(tmp_path), budget=parse_budget("20steps"), backend="ray", workers=2)
    finally:
        ray.shutdown()
    assert [s["seed"] for s in summaries] == [0, 1] and all(s["steps"] == 20 for s in summaries)
    assert select("smoke*") == [SMOKE]


def test_the_book_finds_the_store_above_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orthobook.experiments.report import paper_scale_hours
    from orthobook.experiments.store import find_root

    monkeypatch.delenv("ORTHOBOOK_RESULTS", raising=False)
    (tmp_path / "book").mkdir()
    assert find_root(tmp_path / "book") is None  # no store: the chapter makes a tiny one
    summaries = run_group(SMOKE, [0], Store(tmp_path / "results"), budget=parse_budget("20steps"), progress=False)
    assert find_root(tmp_path / "book") == tmp_path / "results"
    summary = summaries[0]
    assert summary["steps_per_s"] < summary["train_steps_per_s"]  # wall time holds the validation passes too
    expected = SMOKE.steps / summary["train_steps_per_s"] + SMOKE.steps / SMOKE.eval_every * summary["validation_s"]
    assert paper_scale_hours(SMOKE, summaries) == pytest.approx(expected / 3600)
    older = [{k: v for k, v in summary.items() if k not in ("train_steps_per_s", "validation_s")}]
    assert paper_scale_hours(SMOKE, older) == pytest.approx(SMOKE.steps / summary["steps_per_s"] / 3600)


def test_evaluation_chunks_bound_the_states_and_keep_the_scores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run_group(SMOKE, [0], Store(tmp_path / "whole"), budget=parse_budget("20steps"), progress=False)
    chunks = []
    evaluate = runner_module.evaluate

    def spy(*args, **kwargs):
        chunks.append(kwargs["chunk_size"])
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(runner_module, "evaluate", spy)
    monkeypatch.setattr(runner_module, "_EVAL_STATES", 7 * SMOKE.T * SMOKE.hidden_size + 1)
    chunked = run_group(SMOKE, [0], Store(tmp_path / "chunked"), budget=parse_budget("20steps"), progress=False)
    assert chunks and set(chunks) == {7}  # 7 sequences of T · n states each per forward pass
    for key, value in whole[0]["metrics"].items():
        assert chunked[0]["metrics"][key] == pytest.approx(value, rel=1e-5, abs=1e-7)
