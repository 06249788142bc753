"""Run one configuration for a group of seeds, under a budget, resumably.

A group is one seed, or several seeds of an Elman-type configuration trained side by side
as one :class:`~orthobook.batched.BatchedElmanRNN` ("many seeds at the price of one"). The
run proceeds in chunks of ``eval_every`` steps through :func:`orthobook.train.train`, whose
checkpoint carries the model, optimizers and batch generators from one chunk to the next
(and over a kill); after each chunk every model is scored on the validation set, and the
state of its best validation loss is kept (Note [model selection]). With a learning-rate
schedule the chunks also end at every epoch's end, where the schedulers step (Note [schedule
and resume] in :mod:`orthobook.experiments.build`). What a run leaves in the store is
described in :mod:`orthobook.experiments.store`.
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from orthobook.device import pick_device
from orthobook.experiments import build
from orthobook.experiments.config import Experiment
from orthobook.experiments.store import Store, provenance
from orthobook.train import TrainConfig, evaluate, train

__all__ = ["Budget", "parse_budget", "run_group", "SUCCESS"]

# Note [model selection]
# ~~~~~~~~~~~~~~~~~~~~~~
# Vorontsov et al. report the model of the best validation score, not the last step; so do
# we when `select == "best_validation"`: after every chunk each model is scored on the
# validation set (a held-out split for MNIST, a fixed batch of fresh sequences for the
# synthetic tasks), and the state with the lowest validation loss is saved and, at the end,
# scored on the test set. `select == "last"` scores the last state, or the state at which
# the validation loss first fell below `early_stop_loss` (Orhan & Pitkow's released code
# stops training there).

# The success level of each task, on the selected model's test metrics.
SUCCESS = {
    "copy": ("test_accuracy", 0.99, "recalls ≥ 99 % of the copied symbols"),
    "adding": ("test_loss", 0.01, "test MSE ≤ 0.01 (the baseline is 1/6)"),
}


@dataclass(frozen=True)
class Budget:
    """How long a run may train: at most ``steps`` optimizer steps and ``seconds`` of wall
    time (``None``: no such limit); the paper's own number of steps is always the cap."""

    steps: int | None = None
    seconds: float | None = None

    def __str__(self) -> str:
        parts = ([f"{self.steps}steps"] if self.steps else []) + ([f"{self.seconds:g}s"] if self.seconds else [])
        return "+".join(parts) or "paper"


_UNITS = {"s": 1, "m": 60, "h": 3600}
_WALL_CHUNK = 25
_EVAL_STATES = 2**27  # numbers of state per evaluation chunk: 512 MB in float32


def parse_budget(text: str | None) -> Budget:
    """``"500steps"``, ``"10m"``, ``"90s"``, ``"2h"``, both joined by ``+``, or ``None``/``"paper"``.

    Raises:
        ValueError: any other form.

    Example:
        >>> parse_budget("500steps"), parse_budget("10m").seconds
        (Budget(steps=500, seconds=None), 600.0)
    """
    if text is None or text == "paper":
        return Budget()
    steps, seconds = None, None
    for part in text.split("+"):
        match = re.fullmatch(r"(\d+)\s*steps|(\d+(?:\.\d+)?)\s*([smh])", part.strip())
        if match is None:
            raise ValueError(f"budget must look like '500steps', '10m', '90s' or '2h', got {text!r}")
        if match[1]:
            steps = int(match[1])
        else:
            seconds = float(match[2]) * _UNITS[match[3]]
    if steps == 0:
        raise ValueError("budget must allow at least one step")
    return Budget(steps, seconds)


def run_group(
    experiment: Experiment,
    seeds: list[int],
    store: Store,
    *,
    budget: Budget = Budget(),
    device: str | None = None,
    batch: bool = True,
    source: object = None,
    progress: bool | None = None,
) -> list[dict[str, Any]]:
    """Train ``experiment`` for ``seeds`` and write one summary per seed into ``store``.

    A seed whose valid summary is already stored is skipped; a group that was killed
    resumes from its last checkpoint. With ``batch`` and an Elman-type model the seeds train
    as one BatchedElmanRNN, else one after another. ``source``: the data to use instead of
    the download, as for :func:`~orthobook.experiments.build.build_tasks`.

    Returns:
        The summaries (stored or new), in the order of ``seeds``.

    Raises:
        NotRunnable: the configuration cannot run in this package (its message says why).
    """
    todo = [s for s in seeds if store.summary(experiment, s) is None]
    if todo:
        groups = [todo] if batch and build.batchable(experiment) else [[s] for s in todo]
        for group in groups:
            _train_group(experiment, group, store, budget, pick_device(device), source, progress)
    return [store.summary(experiment, s) for s in seeds]


def _train_group(
    experiment: Experiment,
    seeds: list[int],
    store: Store,
    budget: Budget,
    device: torch.device,
    source: object,
    progress: bool | None,
) -> None:
    tasks = build.build_tasks(experiment, device, source=source)
    models = [build.build_model(experiment, tasks.train, s).to(device) for s in seeds]
    module = build.batch_of(models, seeds)
    optimizers = build.build_optimizers(experiment, models)
    schedulers = build.build_schedulers(experiment, optimizers)
    work = store.work_dir(experiment, seeds)
    state = _load_progress(work, len(seeds))
    for scheduler, saved in zip(schedulers, state.get("schedulers", [])):
        scheduler.load_state_dict(saved)
    target = min(experiment.steps, budget.steps or experiment.steps)
    # A wall-clock budget is checked between chunks: short ones, so that it is kept closely.
    chunk = experiment.eval_every if budget.seconds is None else min(experiment.eval_every, _WALL_CHUNK)
    config = TrainConfig(
        batch_size=experiment.batch_size,
        seed=seeds[0],
        clip=experiment.clip,
        on_nonfinite="stop",
        log_every=max(1, experiment.eval_every // 10),
        log_path=work / "log.jsonl",
        progress=False,
        checkpoint_path=work / "checkpoint.pt",
        checkpoint_every=chunk,
    )
    started = time.perf_counter() - state["elapsed"]
    if progress is None:  # as orthobook.train does: shown unless TQDM_DISABLE says no
        progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    bar = tqdm(total=target, initial=state["step"], desc=f"{experiment.name} seeds {seeds}", disable=not progress)
    with bar:
        while not _finished(state, target, budget, started):
            goal = _next_goal(state["step"], chunk, target, experiment.steps_per_epoch if schedulers else None)
            tic = time.perf_counter()
            histories = train(module, tasks.train, optimizers, goal, config)
            state["train_s"] = state.get("train_s", 0.0) + time.perf_counter() - tic
            histories = histories if isinstance(histories, list) else [histories]
            bar.update(goal - state["step"])
            state["step"] = goal
            if schedulers and goal % experiment.steps_per_epoch == 0:
                for scheduler in schedulers:
                    scheduler.step()
                state["schedulers"] = [scheduler.state_dict() for scheduler in schedulers]
            if goal % experiment.eval_every == 0 or _finished(state, target, budget, started):
                tic = time.perf_counter()
                _select(experiment, models, tasks, state, histories, work)
                state["validations"] = state.get("validations", 0) + 1
                state["validation_s"] = state.get("validation_s", 0.0) + time.perf_counter() - tic
            state["elapsed"] = time.perf_counter() - started
            _save_progress(work, state)
    _write_summaries(experiment, seeds, models, tasks, state, store, budget, device, work)


def _next_goal(step: int, chunk: int, target: int, epoch: int | None) -> int:
    """The step the next chunk trains to: the next multiple of ``chunk`` (or ``target``), and
    no later than the end of the current epoch when a schedule steps there (``epoch``)."""
    goal = min(target, (step // chunk + 1) * chunk)
    return goal if epoch is None else min(goal, (step // epoch + 1) * epoch)


def _finished(state: dict[str, Any], target: int, budget: Budget, started: float) -> bool:
    if state["step"] >= target or all(m["stopped"] for m in state["models"]):
        return True
    return budget.seconds is not None and time.perf_counter() - started >= budget.seconds


def _score(e: Experiment, module: torch.nn.Module, task: object, tasks: build.Tasks, seed: int) -> dict[str, Any]:
    # Sequences per forward pass: at most 1,000, and few enough that their states (T · n
    # numbers each) stay under _EVAL_STATES; the copy task at T = 10,000 keeps 5 GB of
    # states for 1,000 sequences at once.
    chunk = max(1, min(1000, _EVAL_STATES // (e.T * e.hidden_size)))
    if tasks.synthetic:
        return evaluate(module, task, batch_size=e.eval_size, seed=seed, chunk_size=chunk)
    return evaluate(module, task, batch_size=len(task), chunk_size=chunk)


def _select(
    e: Experiment,
    models: list[torch.nn.Module],
    tasks: build.Tasks,
    state: dict[str, Any],
    histories: list[Any],
    work: Path,
) -> None:
    for k, (model, history) in enumerate(zip(models, histories)):
        record = state["models"][k]
        if record["stopped"]:
            continue
        if history.diverged_at is not None:
            record.update(stopped=True, diverged_at=history.diverged_at)
            continue
        score = _score(e, model, tasks.validation, tasks, build.VALIDATION_SEED)
        record["evals"].append({"step": state["step"], "loss": score["loss"], "accuracy": score["accuracy"]})
        keep = e.select == "last" or record["best"] is None or score["loss"] < record["best"]["loss"]
        if keep:
            record["best"] = {"step": state["step"], **score}
            _save_atomically(model.state_dict(), work / f"selected-{k}.pt")
        if e.early_stop_loss is not None and score["loss"] < e.early_stop_loss:
            record["stopped"] = True


def _write_summaries(
    e: Experiment,
    seeds: list[int],
    models: list[torch.nn.Module],
    tasks: build.Tasks,
    state: dict[str, Any],
    store: Store,
    budget: Budget,
    device: torch.device,
    work: Path,
) -> None:
    log = [json.loads(line) for line in (work / "log.jsonl").read_text().splitlines()]
    for k, (seed, model) in enumerate(zip(seeds, models)):
        record = state["models"][k]
        last = _score(e, model, tasks.test, tasks, build.TEST_SEED)
        selected = last
        selected_path = work / f"selected-{k}.pt"
        if selected_path.exists() and record["best"]["step"] != state["step"]:
            model.load_state_dict(torch.load(selected_path, map_location=device, weights_only=True))
            selected = _score(e, model, tasks.test, tasks, build.TEST_SEED)
        metrics = {"test_loss": selected["loss"], "test_accuracy": selected["accuracy"]}
        if e.task in SUCCESS:
            key, level, _ = SUCCESS[e.task]
            value = metrics[key]
            metrics["solved"] = float(value >= level if key == "test_accuracy" else value <= level)
        own_log = [{k2: v for k2, v in r.items() if k2 != "model"} for r in log if r.get("model", 0) == k]
        summary = {
            "name": e.name,
            "seed": seed,
            "config_hash": e.config_hash(),
            "metrics": metrics,
            "selected": {"step": None if record["best"] is None else record["best"]["step"], **selected},
            "best_validation": record["best"],
            "final": {"step": state["step"], "test_loss": last["loss"], "test_accuracy": last["accuracy"]},
            "steps": state["step"],
            "paper_steps": e.steps,
            "complete": state["step"] >= e.steps or record["stopped"],
            "diverged_at": record.get("diverged_at"),
            "budget": str(budget),
            "wall_time_s": state["elapsed"],
            "steps_per_s": state["step"] / state["elapsed"] if state["elapsed"] > 0 else None,
            "train_steps_per_s": state["step"] / state["train_s"] if state.get("train_s") else None,
            "validation_s": state["validation_s"] / state["validations"] if state.get("validations") else None,
            "batched_with": seeds,
            "select": e.select,
            **provenance(device),
        }
        store.write_run(e, seed, summary, own_log, record["evals"])


def _load_progress(work: Path, K: int) -> dict[str, Any]:
    path = work / "progress.json"
    if path.exists():
        return json.loads(path.read_text())
    models = [{"best": None, "stopped": False, "evals": []} for _ in range(K)]
    fresh = {"step": 0, "elapsed": 0.0, "train_s": 0.0, "validations": 0, "validation_s": 0.0, "models": models}
    (work / "checkpoint.pt").unlink(missing_ok=True)  # a checkpoint without progress is stale
    return fresh


def _save_progress(work: Path, state: dict[str, Any]) -> None:
    tmp = work / "progress.json.tmp"
    tmp.write_text(json.dumps(state))
    os.replace(tmp, work / "progress.json")


def _save_atomically(state: dict[str, Any], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
