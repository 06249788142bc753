"""The one training loop of the book.

:func:`train` runs any model on any task with any optimizer (the geodesic optimizers of
:mod:`orthobook.optim` included): gradient clipping, a progress bar, metrics appended to a
JSON-lines log, periodic checkpoints that a killed run resumes from (continuing the same
curve), probes evaluated during training, and a clear error when the loss stops being finite.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn
from tqdm.auto import tqdm

from orthobook import _checks

__all__ = ["Task", "History", "TrainingDiverged", "train", "evaluate"]

_ON_NONFINITE = ("raise", "stop")


class Task(Protocol):
    """What :func:`train` needs of a task (see :mod:`orthobook.tasks`)."""

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]: ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor: ...

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None: ...


class TrainingDiverged(FloatingPointError):
    """The loss became NaN or infinite.

    Attributes:
        step: the step whose loss was not finite.
        last_finite: the last logged record whose loss was finite (or ``None``).
    """

    def __init__(self, step: int, loss: float, last_finite: dict[str, Any] | None) -> None:
        self.step = step
        self.last_finite = last_finite
        super().__init__(
            f"loss became {loss} at step {step}; last finite record: {last_finite}. "
            "Lower the learning rate, clip gradients (clip=...), or pass on_nonfinite='stop'."
        )


@dataclass
class History:
    """Metrics of a run, one entry per logged step.

    Attributes:
        step, loss, accuracy, grad_norm: lists of equal length; ``accuracy`` holds ``None``
            for tasks without one; ``grad_norm`` is the total gradient norm before clipping.
        probes: ``name → [(step, value), …]`` for each probe passed to :func:`train`.
        diverged_at: the step whose loss was not finite, when the run stopped there.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    probes: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    diverged_at: int | None = None

    def append(self, record: Mapping[str, Any]) -> None:
        self.step.append(record["step"])
        self.loss.append(record["loss"])
        self.accuracy.append(record["accuracy"])
        self.grad_norm.append(record["grad_norm"])

    def records(self) -> list[dict[str, Any]]:
        """One dict per logged step (what the JSON-lines log holds)."""
        return [
            {"step": s, "loss": l, "accuracy": a, "grad_norm": g}
            for s, l, a, g in zip(self.step, self.loss, self.accuracy, self.grad_norm)
        ]

    def last_finite(self) -> dict[str, Any] | None:
        finite = [r for r in self.records() if math.isfinite(r["loss"])]
        return finite[-1] if finite else None

    def final_loss(self, window: int = 10) -> float:
        """Mean loss over the last ``window`` logged steps (a less noisy end point)."""
        if not self.loss:
            raise ValueError("the history is empty: no step was logged")
        tail = self.loss[-window:]
        return sum(tail) / len(tail)


def train(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer,
    steps: int,
    *,
    batch_size: int = 64,
    seed: int = 0,
    clip: float | None = None,
    log_every: int = 1,
    log_path: str | os.PathLike | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    checkpoint_every: int = 500,
    probes: Mapping[str, Callable[[nn.Module], Any]] | None = None,
    probe_every: int = 100,
    on_nonfinite: str = "raise",
    progress: bool | None = None,
    description: str | None = None,
    penalty: Callable[[nn.Module], torch.Tensor] | None = None,
) -> History:
    """Train ``model`` on batches drawn from ``task`` for ``steps`` optimizer steps.

    Batches come from a generator seeded with ``seed`` (independent of torch's global
    state), drawn on the CPU and moved to the model's device. When ``checkpoint_path`` names
    an existing checkpoint the run resumes from it: model, optimizer, batch generator and
    history are restored, so the resumed run continues the same curve.

    Args:
        model: maps ``x`` (batch, T, input) to the task's output.
        task: samples batches and scores outputs (:class:`Task`).
        optimizer: any object with ``zero_grad``, ``step``, ``state_dict``, ``load_state_dict``.
        steps: total number of optimizer steps of the run (including resumed ones).
        batch_size: sequences per step.
        seed: seed of the batch generator.
        clip: max total gradient norm (``None``: no clipping).
        log_every: log loss, accuracy and gradient norm every this many steps.
        log_path: JSON-lines file receiving one record per logged step.
        checkpoint_path: where to save (atomically) and resume from.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        probes: ``name → fn(model)`` evaluated under ``no_grad`` every ``probe_every`` steps and
            at the end (e.g. singular values of ``W``).
        probe_every: steps between probes.
        on_nonfinite: ``"raise"`` a :class:`TrainingDiverged`, or ``"stop"`` and return the
            history with ``diverged_at`` set.
        progress: show a tqdm progress bar; ``None`` shows it unless the environment sets
            ``TQDM_DISABLE=1`` (as the book's stored runs do: a bar's timings differ every run).
        description: label of the progress bar.
        penalty: ``fn(model)`` returning a 0-dim tensor added to the loss before the backward
            pass (e.g. :class:`~orthobook.regularize.RecurrentL2`); the history logs the task's
            loss without it.

    Returns:
        The :class:`History` of the run.

    Raises:
        TrainingDiverged: the loss became NaN or infinite and ``on_nonfinite="raise"``.
    """
    _validate(steps, batch_size, clip, log_every, checkpoint_every, probe_every, on_nonfinite)
    if penalty is not None and not callable(penalty):
        raise TypeError(f"penalty must be a callable fn(model) -> tensor or None, got {type(penalty).__name__}")
    probes = dict(probes or {})
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(seed)
    history = History(probes={name: [] for name in probes})
    start = 0
    if checkpoint_path is not None and Path(checkpoint_path).exists():
        start = _resume(checkpoint_path, model, optimizer, generator, history)
    if log_path is not None:
        _rewrite_log(log_path, history)
    model.train()
    if progress is None:
        progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    bar = tqdm(range(start, steps), initial=start, total=steps, desc=description, disable=not progress)
    for step in bar:
        x, y = task.sample(batch_size, generator, device)
        optimizer.zero_grad(set_to_none=True)
        output = model(x)
        loss = task.loss(output, y)
        loss_value = loss.item()
        if not math.isfinite(loss_value):
            if on_nonfinite == "raise":
                bar.close()
                raise TrainingDiverged(step, loss_value, history.last_finite())
            history.diverged_at = step
            break
        (loss if penalty is None else loss + penalty(model)).backward()
        max_norm = math.inf if clip is None else clip
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
        optimizer.step()
        if step % log_every == 0:
            accuracy = task.accuracy(output.detach(), y)
            record = {
                "step": step,
                "loss": loss_value,
                "accuracy": None if accuracy is None else float(accuracy),
                "grad_norm": grad_norm,
            }
            history.append(record)
            if log_path is not None:
                _append_log(log_path, record)
            bar.set_postfix(loss=f"{loss_value:.4g}", refresh=False)
        if probes and (step + 1) % probe_every == 0:
            _probe(model, probes, step + 1, history)
        if checkpoint_path is not None and (step + 1) % checkpoint_every == 0:
            _save(checkpoint_path, model, optimizer, generator, history, step + 1)
    bar.close()
    if history.diverged_at is None:
        if probes and _last_probe_step(history) != steps:
            _probe(model, probes, steps, history)
        if checkpoint_path is not None:
            _save(checkpoint_path, model, optimizer, generator, history, steps)
    return history


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, batch_size: int = 512, seed: int = 12345) -> dict[str, float | None]:
    """Loss and accuracy of ``model`` on one fresh batch of ``batch_size`` sequences.

    Args:
        model: the trained model.
        task: the task.
        batch_size: sequences in the evaluation batch.
        seed: seed of the evaluation batch (different from training seeds by default).

    Returns:
        ``{"loss": …, "accuracy": … or None}``.
    """
    _checks.positive_int(batch_size, "batch_size")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    x, y = task.sample(batch_size, torch.Generator().manual_seed(seed), device)
    output = model(x)
    accuracy = task.accuracy(output, y)
    model.train(was_training)
    return {"loss": float(task.loss(output, y)), "accuracy": None if accuracy is None else float(accuracy)}


def _validate(
    steps: int, batch_size: int, clip: float | None, log_every: int, checkpoint_every: int, probe_every: int, on_nonfinite: str
) -> None:
    _checks.positive_int(steps, "steps")
    _checks.positive_int(batch_size, "batch_size")
    _checks.positive_int(log_every, "log_every")
    _checks.positive_int(checkpoint_every, "checkpoint_every")
    _checks.positive_int(probe_every, "probe_every")
    _checks.one_of(on_nonfinite, "on_nonfinite", _ON_NONFINITE)
    if clip is not None and _checks.non_negative_float(clip, "clip") == 0:
        raise ValueError("clip must be positive (or None for no clipping), got 0")


def _last_probe_step(history: History) -> int | None:
    first = next(iter(history.probes.values()))
    return first[-1][0] if first else None


@torch.no_grad()
def _probe(model: nn.Module, probes: Mapping[str, Callable[[nn.Module], Any]], step: int, history: History) -> None:
    for name, fn in probes.items():
        value = fn(model)
        if isinstance(value, torch.Tensor):
            value = value.detach().cpu().tolist()
        history.probes[name].append((step, value))


def _save(
    path: str | os.PathLike,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
    history: History,
    step: int,
) -> None:
    """Write the checkpoint to a temporary file, then rename it into place (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": history.__dict__,
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _resume(
    path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator, history: History
) -> int:
    state = torch.load(path, map_location=next(model.parameters()).device, weights_only=False)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"].cpu())
    torch.set_rng_state(state["torch_rng"].cpu())
    saved = History(**state["history"])
    for name in history.probes:
        history.probes[name] = saved.probes.get(name, [])
    for record in saved.records():
        history.append(record)
    return state["step"]


def _rewrite_log(path: str | os.PathLike, history: History) -> None:
    """Start the log afresh from the (possibly resumed) history, dropping lines past it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        for record in history.records():
            f.write(json.dumps(record) + "\n")


def _append_log(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    with Path(path).open("a") as f:
        f.write(json.dumps(record) + "\n")
