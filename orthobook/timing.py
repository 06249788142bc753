"""Wall-clock cost of a training step, measured fairly on a shared machine.

A chapter that compares the speed of models times them *in the same run*, interleaved
(A B C A B C …), so that a change of machine load during the measurement falls on all of
them alike, and reports the median over repeats. Absolute times differ from machine to
machine and from run to run; ratios measured this way are far steadier.

:func:`interleaved_seconds` is the one timing primitive of the book and of ``benchmarks/``;
:func:`step_seconds` times training steps with it. It times under the same numerics as
:func:`orthobook.train.train`: denormal numbers are
flushed to zero on the CPU by default (``flush_denormal``), because a step that computes
with denormals (vanishing gradients are full of them) can be many times slower, and a
timing should not depend on whether the numbers happen to be tiny.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping

import torch
from torch import nn

from orthobook import _checks
from orthobook.tasks import Task
from orthobook.train import flushing_denormals

__all__ = ["interleaved_seconds", "step_seconds"]


def step_seconds(
    runs: Mapping[str, tuple[nn.Module, torch.optim.Optimizer]],
    task: Task,
    *,
    batch_size: int = 32,
    repeats: int = 10,
    warmup: int = 2,
    seed: int = 0,
    flush_denormal: bool = True,
) -> dict[str, float]:
    """Median seconds of one training step (forward, backward, optimizer step) per model.

    Each model gets one fixed batch from ``task`` (drawing batches is not timed). After
    ``warmup`` untimed rounds, every round times one step of each model in turn, and the
    median over ``repeats`` rounds is kept. On a GPU each step is synchronised before the
    clock stops. The models are trained by these steps: time copies, not models you keep.
    Denormals are flushed on the CPU during the measurement unless ``flush_denormal=False``
    (as in :class:`orthobook.train.TrainConfig`; see :func:`orthobook.train.flushing_denormals`
    for what torch can and cannot switch), and the previous mode is restored after.

    Args:
        runs: ``label → (model, optimizer)``; every model maps the task's inputs to its outputs.
        task: samples the batch and computes the loss (:class:`orthobook.tasks.Task`).
        batch_size: sequences per step.
        repeats: timed rounds.
        warmup: untimed rounds first.
        seed: seed of the batch generator.
        flush_denormal: flush denormal numbers to zero on the CPU while timing.

    Returns:
        ``label → median seconds per step``.

    Raises:
        TypeError: ``batch_size``, ``repeats``, ``warmup`` or ``seed`` is not an int, or
            ``flush_denormal`` not a bool.
        ValueError: ``runs`` is empty, or ``batch_size``/``repeats`` is not positive or
            ``warmup``/``seed`` negative.

    Example:
        >>> from orthobook.models import ElmanRNN
        >>> from orthobook.tasks import AddingTask
        >>> model = ElmanRNN(2, 8, 1)
        >>> times = step_seconds({"rnn": (model, torch.optim.SGD(model.parameters(), 0.1))}, AddingTask(10), repeats=2)
        >>> times["rnn"] > 0
        True
    """
    if not runs:
        raise ValueError("runs must hold at least one (model, optimizer) pair")
    _checks.positive_int(batch_size, "batch_size")
    _checks.positive_int(repeats, "repeats")
    _checks.non_negative_int(warmup, "warmup")
    _checks.non_negative_int(seed, "seed")
    steps = {label: _step(model, optimizer, task, batch_size, seed) for label, (model, optimizer) in runs.items()}
    device = _device_of(next(iter(runs.values()))[0])
    return interleaved_seconds(steps, repeats=repeats, warmup=warmup, device=device, flush_denormal=flush_denormal)


def interleaved_seconds(
    steps: Mapping[str, Callable[[], object]],
    *,
    repeats: int = 10,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    flush_denormal: bool = True,
) -> dict[str, float]:
    """Median wall-clock seconds of each callable, timed in turn within every round.

    After ``warmup`` untimed rounds, every round calls each step once, in order (A B C A B C
    …), so that a change of machine load falls on all of them alike; the median over
    ``repeats`` rounds is kept. On a GPU the device is synchronised before the clock starts
    and before it stops.

    Args:
        steps: ``label → step()``, each a callable doing one unit of work.
        repeats: timed rounds.
        warmup: untimed rounds first.
        device: where the steps run (``cuda``/``mps`` are synchronised).
        flush_denormal: flush denormal numbers to zero on the CPU while timing.

    Returns:
        ``label → median seconds``.

    Raises:
        TypeError: a step is not callable, or an argument has the wrong type.
        ValueError: ``steps`` is empty, ``repeats`` not positive or ``warmup`` negative.

    Example:
        >>> times = interleaved_seconds({"sum": lambda: torch.ones(100).sum()}, repeats=3)
        >>> times["sum"] > 0
        True
    """
    if not steps:
        raise ValueError("steps must hold at least one callable")
    for label, step in steps.items():
        if not callable(step):
            raise TypeError(f"steps[{label!r}] must be callable, got {type(step).__name__}")
    _checks.positive_int(repeats, "repeats")
    _checks.non_negative_int(warmup, "warmup")
    _checks.flag(flush_denormal, "flush_denormal")
    synchronize = _synchronizer(_checks.device(device))
    times: dict[str, list[float]] = {label: [] for label in steps}
    with flushing_denormals(flush_denormal):
        for round_ in range(warmup + repeats):
            for label, step in steps.items():
                synchronize()
                start = time.perf_counter()
                step()
                synchronize()
                if round_ >= warmup:
                    times[label].append(time.perf_counter() - start)
    return {label: statistics.median(seconds) for label, seconds in times.items()}


def _step(
    model: nn.Module, optimizer: torch.optim.Optimizer, task: Task, batch_size: int, seed: int
) -> Callable[[], None]:
    x, y = task.sample(batch_size, torch.Generator().manual_seed(seed), _device_of(model))

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        task.loss(model(x), y).backward()
        optimizer.step()

    return step


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def _synchronizer(device: torch.device) -> Callable[[], None]:
    """What waits for the device's queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    if device.type == "mps":
        return torch.mps.synchronize
    return lambda: None
