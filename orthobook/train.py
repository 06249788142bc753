"""The one training loop of the book.

:func:`train` runs any model on any task with one optimizer or several (Vorontsov's geodesic
SGD for ``U, V`` beside RMSprop for the rest, say). What the run does besides stepping is one
frozen :class:`TrainConfig`: batches, penalty, gradient clipping, the NaN guard, a JSON-lines
log, probes, a progress bar, checkpoints that a killed run resumes from (continuing the same
curve), and flushing of denormal numbers on the CPU.

The guard (Note [NaN guard]) checks the loss, the penalty and the gradient norm of every step,
so that no step is taken with non-finite gradients and no checkpoint holds a non-finite
number; :class:`TrainingDiverged` names the step, the quantity and a remedy that fits it. The
host reads values back only on logged, probe and checkpoint steps; in between the check runs
on the device and masks the update (Note [device-side guard]).

A :class:`~orthobook.batched.BatchedElmanRNN` goes where one model goes: its K models train
side by side as K runs would (Note [batched runs]), each with its own History.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from orthobook import _checks
from orthobook.batched import BatchedElmanRNN
from orthobook.optim import RetractingOptimizer
from orthobook.stiefel import StiefelParameter
from orthobook.tasks import Task

__all__ = ["TrainConfig", "History", "TrainingDiverged", "train", "evaluate", "flushing_denormals"]

_ON_NONFINITE = ("raise", "stop")

# Note [NaN guard]
# ~~~~~~~~~~~~~~~~
# A logged step reads the loss, the penalty, the accuracy and the total gradient norm (before
# clipping) back to the host in ONE transfer (a 0-dim stack) and steps the optimizers only
# when all of them are finite: the loss had to be read for the log and the progress bar
# anyway. A step that is not logged reads nothing (on a GPU the host runs ahead and queues
# the next steps): the check stays on the device (Note [device-side guard]). Probes,
# checkpoints and the end of the run read the device flag (and more) on their own steps only.
#
# A non-finite loss or penalty makes every gradient non-finite; a non-finite gradient norm
# with a finite loss means that backpropagation overflowed (‖∂L/∂h_t‖ grows like ρ(W)^T in an
# exploding recurrence). Clipping cannot repair either: it rescales by clip / ‖g‖, which is
# NaN or 0 when ‖g‖ is NaN or inf. So the step is not taken, and the run raises or stops.
#
# Finite gradients can still make a state non-finite (SGD with a huge learning rate moves a
# weight to inf; Adam's second moment overflows when |g| > 1.8e19 in float32). The next
# step's loss catches a parameter the loss uses; every checkpoint and the end of the run
# check the whole state (model and optimizers), so a checkpoint never holds one.

# Note [device-side guard]
# ~~~~~~~~~~~~~~~~~~~~~~~~
# On a step that is not logged, the finiteness of (loss, penalty, gradient norm) is a flag
# on the device, and the optimizers step unconditionally: every parameter that has a gradient
# and every tensor of its optimizer state is copied before the step and put back after it
# with torch.where(flag, new, old), so a step with a non-finite quantity changes nothing
# (state that the step created from nothing is set to zeros, which is how torch's optimizers
# start). The flag is sticky: once it is down no later step moves the model. The guard keeps,
# on the device, the first failing step and its three values; the next host read (a logged,
# probe or checkpoint step, or the end) finds them and diverges with that step, exactly as
# if it had been read at once: same step, quantity and value in TrainingDiverged and History,
# the log's last record is that step's (with accuracy None unless it was logged), and the
# weights and optimizer state are those before it. A copy of the parameters and the state
# per unlogged step is the price (memory traffic of the size of the model, not of the
# activations); with log_every = 1 every step is read and nothing is copied. Optimizer state
# that lives off the model's device (torch's Adam keeps its step count on the CPU when the
# model is on a GPU) or is not a tensor cannot be selected without a read, and counts the
# masked steps; it stays finite. For a BatchedElmanRNN the flags, steps and values are
# per model (Note [batched runs]).

_ADVICE = {
    "loss": (
        "The forward pass gave a non-finite loss. Check this step's batch for NaN or inf "
        "inputs; lower the learning rate if the weights grew over the last steps; check the "
        "spectral radius ρ(W) of the recurrence (activations of a linear or ReLU recurrence "
        "grow like ρ(W)^T)."
    ),
    "penalty": (
        "The loss is finite but the penalty is not: lower the penalty's weight, or check what "
        "it measures (a penalty of high powers of W overflows when W grows)."
    ),
    "grad_norm": (
        "The loss is finite but its gradient is not: backpropagation through time overflowed. "
        "Lower the learning rate, check the inputs, and check the spectral radius ρ(W) of the "
        "recurrence (the backward product of Jacobians grows like ρ(W)^T; start it nearer 1). "
        "Gradient clipping cannot help: it rescales by clip / ‖g‖, which is not finite either."
    ),
    "parameters": (
        "An optimizer step made a parameter non-finite from finite gradients: lower the "
        "learning rate or clip the gradient norm (TrainConfig(clip=...))."
    ),
    "optimizer state": (
        "An optimizer's state overflowed from finite gradients (e.g. Adam's second moment "
        "when |g| > 1.8e19 in float32): clip the gradient norm (TrainConfig(clip=...)) or "
        "lower the learning rate."
    ),
}

# At step 0 no optimizer step has been taken: the learning rate cannot be the cause.
_ADVICE_AT_START = {
    "loss": (
        "The initial weights give a non-finite loss, before any optimizer step. Check the "
        "batch for NaN or inf inputs, and the spectral radius ρ(W) of the initial recurrence "
        "(activations of a linear or ReLU recurrence grow like ρ(W)^T)."
    ),
    "grad_norm": (
        "The initial weights give a finite loss but a non-finite gradient: backpropagation "
        "through time overflowed before any optimizer step, so the learning rate is not the "
        "cause. Check the inputs, and the spectral radius ρ(W) of the initial recurrence (the "
        "backward product of Jacobians grows like ρ(W)^T; start it nearer 1). Gradient "
        "clipping cannot help: it rescales by clip / ‖g‖, which is not finite either."
    ),
}
_STATE = ("parameters", "optimizer state")


class TrainingDiverged(FloatingPointError):
    """A quantity of the run became NaN or infinite (Note [NaN guard]).

    Attributes:
        step: the step at which the guard found it (Note [NaN guard]): exact for ``"loss"``,
            ``"penalty"`` and ``"grad_norm"``, which are checked before every optimizer step;
            for ``"parameters"`` and ``"optimizer state"``, checked at checkpoints and at the
            end, the step after whose update the state was found non-finite.
        quantity: ``"loss"``, ``"penalty"``, ``"grad_norm"``, ``"parameters"`` or
            ``"optimizer state"``.
        value: the non-finite value (``nan``, ``inf`` or ``-inf``), or the name of the first
            non-finite tensor for the last two quantities.
        last_finite: the last logged record whose numbers are all finite, or ``None``.
    """

    def __init__(self, step: int, quantity: str, value: object, last_finite: dict[str, Any] | None) -> None:
        self.step, self.quantity, self.value, self.last_finite = step, quantity, value, last_finite
        advice = (_ADVICE_AT_START.get(quantity) if step == 0 else None) or _ADVICE[quantity]
        where = (
            f"after the update of step {step}; no checkpoint was written with it"
            if quantity in _STATE
            else f"at step {step}; no optimizer step was taken with it"
        )
        last = "none yet" if last_finite is None else last_finite
        super().__init__(
            f"{quantity} became {value} {where}. Last finite record: {last}. {advice} "
            "TrainConfig(on_nonfinite='stop') returns the history up to here instead of raising."
        )


@dataclass(frozen=True)
class TrainConfig:
    """How :func:`train` runs, apart from the model, task, optimizers and number of steps.

    One frozen value per run: build variants with ``dataclasses.replace(config, seed=1)``.
    Every field is checked when the config is made.

    Args:
        batch_size: sequences per step.
        seed: seed of the batch generator (independent of torch's global generator), ≥ 0.
        penalty: ``fn(model)`` returning a 0-dim tensor added to the loss before the backward
            pass (e.g. :class:`~orthobook.regularize.RecurrentL2`); the history logs it
            beside the task's loss, which it does not include.
        clip: the largest total gradient norm, a finite number > 0 (``None``: no clipping).
        on_nonfinite: when a quantity becomes NaN or infinite (Note [NaN guard]),
            ``"raise"`` a :class:`TrainingDiverged`, or ``"stop"`` and return the history
            with ``diverged_at`` set.
        log_every: record loss, penalty, accuracy and gradient norm every this many steps.
        log_path: JSON-lines file receiving one record per logged step (see :func:`train`).
        probes: ``name → fn(model)`` evaluated under ``no_grad`` every ``probe_every`` steps
            and at the end (e.g. the singular values of ``W``). Tensors are stored as lists.
        probe_every: steps between probes.
        progress: show a tqdm progress bar; ``None`` shows it unless the environment sets
            ``TQDM_DISABLE`` to ``1``/``true``/``yes`` (as the book's stored runs do).
        description: label of the progress bar.
        checkpoint_path: where to save (atomically) and resume from.
        checkpoint_every: steps between checkpoints (one is also written at the end).
        flush_denormal: flush denormal (subnormal) numbers to zero on the CPU during the run
            (:func:`flushing_denormals`); vanishing gradients are full of them, and CPUs
            compute with them many times slower.

    Raises:
        TypeError: a field has the wrong type.
        ValueError: a field is out of range (a non-positive count, a negative seed, a clip
            that is not positive and finite, an unknown ``on_nonfinite``).

    Example:
        >>> import dataclasses
        >>> config = TrainConfig(batch_size=32, clip=1.0)
        >>> dataclasses.replace(config, seed=1).seed, config.seed
        (1, 0)
        >>> TrainConfig(clip=float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: clip must be finite, got inf
    """

    # Batches
    batch_size: int = 64
    seed: int = 0
    # Objective
    penalty: Callable[[nn.Module], torch.Tensor] | None = None
    clip: float | None = None
    on_nonfinite: str = "raise"
    # Monitoring
    log_every: int = 1
    log_path: str | os.PathLike | None = None
    probes: Mapping[str, Callable[[nn.Module], Any]] = field(default_factory=dict)
    probe_every: int = 100
    progress: bool | None = None
    description: str | None = None
    # Checkpoints
    checkpoint_path: str | os.PathLike | None = None
    checkpoint_every: int = 500
    # Numerics
    flush_denormal: bool = True

    def __post_init__(self) -> None:
        _checks.positive_int(self.batch_size, "batch_size")
        _checks.non_negative_int(self.seed, "seed")
        if self.penalty is not None and not callable(self.penalty):
            raise TypeError(
                f"penalty must be a callable fn(model) -> tensor or None, got {type(self.penalty).__name__}"
            )
        if self.clip is not None:
            _checks.positive_float(self.clip, "clip")
        _checks.one_of(self.on_nonfinite, "on_nonfinite", _ON_NONFINITE)
        _checks.positive_int(self.log_every, "log_every")
        _checks.positive_int(self.probe_every, "probe_every")
        _checks.positive_int(self.checkpoint_every, "checkpoint_every")
        for name in ("log_path", "checkpoint_path"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise TypeError(f"{name} must be a str, an os.PathLike or None, got {type(value).__name__}")
        if not isinstance(self.probes, Mapping):
            raise TypeError(f"probes must be a mapping name -> fn(model), got {type(self.probes).__name__}")
        for name, fn in self.probes.items():
            if not isinstance(name, str) or not callable(fn):
                raise TypeError(f"probes must map str names to callables fn(model); got {name!r}: {fn!r}")
        # A copy, so that changing the caller's dict later does not change this config.
        object.__setattr__(self, "probes", dict(self.probes))
        if self.progress is not None and not isinstance(self.progress, bool):
            raise TypeError(f"progress must be a bool or None, got {type(self.progress).__name__}")
        if self.description is not None and not isinstance(self.description, str):
            raise TypeError(f"description must be a str or None, got {type(self.description).__name__}")
        if not isinstance(self.flush_denormal, bool):
            raise TypeError(f"flush_denormal must be a bool, got {type(self.flush_denormal).__name__}")


@dataclass
class History:
    """Metrics of a run, one entry per logged step.

    Attributes:
        step, loss, penalty, accuracy, grad_norm: lists of equal length; ``penalty`` holds
            ``None`` when the run has no penalty and ``accuracy`` for tasks without one;
            ``grad_norm`` is the total gradient norm before clipping. Every logged step took
            its optimizer step, so these numbers are finite.
        probes: ``name → [(step, value), …]`` for each probe of the config.
        diverged_at: the step at which the run stopped on a non-finite quantity, else ``None``.
        diverged_quantity: which quantity it was (see :class:`TrainingDiverged`), else ``None``.
    """

    step: list[int] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    penalty: list[float | None] = field(default_factory=list)
    accuracy: list[float | None] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)
    probes: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    diverged_at: int | None = None
    diverged_quantity: str | None = None

    def append(self, record: Mapping[str, Any]) -> None:
        """Add one record with the keys of :meth:`records` (``penalty`` and ``accuracy`` may
        be left out: ``None``)."""
        for key in _RECORD_KEYS:
            getattr(self, key).append(record.get(key) if key in _OPTIONAL_KEYS else record[key])

    def records(self) -> list[dict[str, Any]]:
        """One dict per logged step, keys ``step, loss, penalty, accuracy, grad_norm``."""
        return [dict(zip(_RECORD_KEYS, values)) for values in zip(*(getattr(self, key) for key in _RECORD_KEYS))]

    def last_finite(self) -> dict[str, Any] | None:
        """The last record whose numbers are all finite, or ``None``."""
        finite = [r for r in self.records() if _nonfinite_quantity(r) is None]
        return finite[-1] if finite else None

    def final_loss(self, window: int = 10) -> float:
        """Mean loss over the last ``window`` logged steps (a less noisy end point)."""
        _checks.positive_int(window, "window")
        if not self.loss:
            raise ValueError("the history is empty: no step was logged")
        tail = self.loss[-window:]
        return sum(tail) / len(tail)


_RECORD_KEYS = ("step", "loss", "penalty", "accuracy", "grad_norm")
_OPTIONAL_KEYS = ("penalty", "accuracy")
_GUARDED = ("loss", "penalty", "grad_norm")


def train(
    model: nn.Module,
    task: Task,
    optimizer: torch.optim.Optimizer | Sequence[torch.optim.Optimizer],
    steps: int,
    config: TrainConfig | None = None,
) -> History | list[History]:
    """Train ``model`` on batches drawn from ``task`` for ``steps`` optimizer steps.

    Each step draws a batch on the model's device from a CPU generator seeded with
    ``config.seed`` (so batches do not depend on the device), computes
    ``task.loss(model(x), y)`` plus the penalty, backpropagates, clips, checks (Note [NaN
    guard]) and steps every optimizer. When
    ``config.checkpoint_path`` names an existing checkpoint the run resumes from it: model,
    optimizers, batch generator, torch's random state (CPU, and CUDA on a GPU) and history
    are restored, so the resumed run continues the same curve.

    The log (``config.log_path``) is rewritten from the history at the start (a resumed run
    keeps its earlier records, each step once), then receives one JSON object per logged
    step, ``{"step", "loss", "penalty", "accuracy", "grad_norm"}``. A run that diverges ends
    its log with the record of that step and a ``"diverged"`` key naming the quantity. JSON
    has no NaN or infinity, so non-finite numbers are written as ``null``: every line is
    valid JSON (``json.loads`` with a strict ``parse_constant`` reads it).

    A :class:`~orthobook.batched.BatchedElmanRNN` of K models trains as K runs of ``train``
    would, side by side (Note [batched runs]): model k draws its own batches (seed
    ``batch_seeds[k]``, default ``config.seed + k``), and its loss, penalty
    (``config.penalty(models[k])``), clipping, probes and NaN guard are its own. A model
    whose loss, penalty or gradient norm becomes non-finite stops there (no optimizer moves
    it again; its History says where) and the others go on; ``on_nonfinite`` applies when the
    last one stops. The log's records carry ``"model": k``; checkpoints hold every model.

    Args:
        model: maps ``x`` (batch, T, input) to the output the task scores (batch, T, out), or
            a :class:`~orthobook.batched.BatchedElmanRNN` (inputs (K, batch, T, input)).
        task: samples batches and scores outputs (:class:`orthobook.tasks.Task`).
        optimizer: a torch optimizer, or a sequence of them holding disjoint parameters
            (stepped in order). A :class:`~orthobook.stiefel.StiefelParameter` that requires
            grad must sit in a retracting optimizer (:class:`~orthobook.optim.CayleyAdam`,
            :class:`~orthobook.optim.CayleySGD`) or in none.
        steps: total number of optimizer steps of the run (including resumed ones).
        config: how to run (:class:`TrainConfig`); ``None`` is ``TrainConfig()``.

    Returns:
        The :class:`History` of the run; for a BatchedElmanRNN, one per model (a list).

    Raises:
        TypeError: an argument has the wrong type, or an optimizer that does not retract
            holds a StiefelParameter of the model (checked before the first step).
        ValueError: ``steps`` is not positive, a parameter sits in two optimizers, the
            model has no parameters, or the checkpoint does not fit this run.
        TrainingDiverged: a quantity became non-finite and ``on_nonfinite="raise"`` (for a
            BatchedElmanRNN: when the last running model stopped).

    Example:
        >>> from orthobook.tasks import CopyTask
        >>> class Net(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.rnn, self.readout = nn.RNN(1, 8, batch_first=True), nn.Linear(8, 9)
        ...     def forward(self, x):
        ...         return self.readout(self.rnn(x)[0])
        >>> _ = torch.manual_seed(0)
        >>> model = Net()
        >>> history = train(model, CopyTask(3), torch.optim.Adam(model.parameters()), 5,
        ...                 TrainConfig(batch_size=4, clip=1.0, progress=False))
        >>> history.step
        [0, 1, 2, 3, 4]
    """
    config = TrainConfig() if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig or None, got {type(config).__name__}")
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    for method in ("sample", "loss", "accuracy"):
        if not callable(getattr(task, method, None)):
            raise TypeError(f"task must implement orthobook.tasks.Task; {type(task).__name__} has no method {method}()")
    _checks.positive_int(steps, "steps")
    optimizers = _optimizers(optimizer)
    _check_retraction(model, optimizers)
    runs = _Runs(model, optimizers, config)
    start = 0
    if config.checkpoint_path is not None and Path(config.checkpoint_path).exists():
        start = runs.resume(steps)
    if config.log_path is not None:
        runs.rewrite_log()
    with flushing_denormals(config.flush_denormal):
        runs.run(task, steps, start)
    return runs.histories if runs.batched else runs.histories[0]


def _progress_bar(config: TrainConfig, start: int, steps: int) -> tqdm:
    progress = config.progress
    if progress is None:
        progress = os.environ.get("TQDM_DISABLE", "").lower() not in ("1", "true", "yes")
    return tqdm(range(start, steps), initial=start, total=steps, desc=config.description, disable=not progress)


# Note [batched runs]
# ~~~~~~~~~~~~~~~~~~~
# train(batch, …) runs the K models of a BatchedElmanRNN as K runs of train would run them,
# side by side: model k draws its batches from its own generator (batch_seeds[k], default
# config.seed + k), its objective is task.loss(output[k], y_k) + config.penalty(models[k]),
# and its gradient norm is taken and clipped over its own parameters. The models share no
# parameter, so the backward pass of the sum of the K objectives gives each model the
# gradient of its own objective.
#
# The guard of Note [NaN guard] runs per model, on one host read per logged step (the K
# losses, penalties, accuracies and norms in one transfer) and on the device in between, with
# a flag per model (Note [device-side guard]). A model whose loss, penalty or gradient
# norm is non-finite is frozen: its gradients are set to None, so that no optimizer moves it
# (torch's and the Cayley optimizers skip a parameter without a gradient, its state and step
# count included), and its History records the step and the quantity; the other models go
# on. A frozen model still runs in the batched forward pass, and its output is not used.
# on_nonfinite applies when no model is left: "raise" raises TrainingDiverged for the last
# one, "stop" returns the K histories. The state check at checkpoints and at the end runs per
# model too (its parameters and its parameters' optimizer state); a model frozen there keeps
# its non-finite state in the checkpoints that follow, marked as stopped by its History, so a
# resumed run keeps it frozen.
#
# One model is a run of K = 1 through the same code (_Runs), except that its objective is
# backpropagated as it is (not as a sum of one), its log records have no "model" key, its
# checkpoint holds "model", "generator" and "history" (not "models", "generators",
# "histories"), and its state check reads the optimizers' whole state_dicts (a tensor is
# named by its place there, e.g. "optimizer[0] ['state'][5]['exp_avg']").

# The checkpoint keys of one model (False) and of a BatchedElmanRNN (True) besides these.
_SHARED_KEYS = ("step", "optimizers", "torch_rng", "cuda_rng")
_RUN_KEYS = {False: ("model", "generator", "history"), True: ("models", "generators", "histories")}


class _Runs:
    """The K runs of one call of :func:`train`: a BatchedElmanRNN's models, or one model."""

    def __init__(self, model: nn.Module, optimizers: tuple[torch.optim.Optimizer, ...], config: TrainConfig) -> None:
        self.batched = isinstance(model, BatchedElmanRNN)
        self.model, self.optimizers, self.config = model, optimizers, config
        self.models = list(model.models) if self.batched else [model]
        self.device = _device_of(model)
        seeds = model.batch_seeds if self.batched else None
        if seeds is None:
            seeds = tuple(config.seed + k for k in range(len(self.models)))
        # Note [drawing device] (tasks)
        self.generators = [torch.Generator(device=self.device).manual_seed(seed) for seed in seeds]
        self.histories = [History(probes={name: [] for name in config.probes}) for _ in seeds]

    def run(self, task: Task, steps: int, start: int) -> None:
        """Steps ``start`` to ``steps − 1``, then the last probes and checkpoint (Note [NaN guard])."""
        config, models, histories = self.config, self.models, self.histories
        parameters = [[p for p in model.parameters() if p.requires_grad] for model in models]
        max_norm = math.inf if config.clip is None else config.clip
        guard = _Guard(len(models), self.device, self.optimizers)

        def stop_failed(values: Sequence[float]) -> tuple | None:
            """Stop every model the device-side guard found failing; its last TrainingDiverged
            arguments, or None."""
            last = None
            for k, step, quantity, value, record in guard.failures(values):
                if histories[k].diverged_at is None:
                    if config.penalty is None:
                        record["penalty"] = None
                    last = self.stop(k, record, step, quantity, value)
            return last

        def confirmed() -> bool:
            """Read the guard if a masked step is unread; whether some model is still running."""
            if not guard.pending:
                return True
            last = stop_failed(_read(*guard.flags()))
            self.freeze()
            return not self.none_running(last)

        self.model.train()
        with _progress_bar(config, start, steps) as bar:
            for step in bar:
                batches = [task.sample(config.batch_size, generator, self.device) for generator in self.generators]
                _zero_grad(self.model, self.optimizers)
                output = _outputs(self.model, [x for x, _ in batches])
                live = self.running()
                losses = [task.loss(output[k], batches[k][1]) for k in live]
                penalties = [None if config.penalty is None else config.penalty(models[k]) for k in live]
                objectives = [loss if p is None else loss + p for loss, p in zip(losses, penalties)]
                (torch.stack(objectives).sum() if self.batched else objectives[0]).backward()
                grad_norms = [torch.nn.utils.clip_grad_norm_(parameters[k], max_norm) for k in live]
                self.freeze()
                if step % config.log_every != 0:  # Note [device-side guard]
                    guard.masked_step(
                        live, [parameters[k] for k in live], list(zip(losses, penalties, grad_norms)), step
                    )
                else:
                    accuracies = [task.accuracy(output[k].detach(), batches[k][1]) for k in live]
                    pending = guard.pending
                    values = _read(*losses, *penalties, *accuracies, *grad_norms, *(guard.flags() if pending else ()))
                    last = stop_failed(values[4 * len(live) :]) if pending else None
                    # values holds the K losses, then the K penalties, …: model i's are every len(live)-th.
                    records = {
                        k: dict(zip(_RECORD_KEYS, [step, *values[i : 4 * len(live) : len(live)]]))
                        for i, k in enumerate(live)
                        if histories[k].diverged_at is None
                    }
                    for k, record in records.items():
                        quantity = _nonfinite_quantity(record)
                        if quantity is not None:
                            last = self.stop(k, record, step, quantity, record[quantity])
                    self.freeze()
                    if self.none_running(last):
                        return
                    for opt in self.optimizers:
                        opt.step()
                    kept = {k: record for k, record in records.items() if histories[k].diverged_at is None}
                    for k, record in kept.items():
                        histories[k].append(record)
                        self.log(k, record)
                    if self.batched:
                        mean = sum(record["loss"] for record in kept.values()) / len(kept)
                        bar.set_postfix(loss=f"{mean:.4g}", running=f"{len(kept)}/{len(models)}", refresh=False)
                    else:
                        bar.set_postfix(loss=f"{kept[0]['loss']:.4g}", refresh=False)
                if config.probes and (step + 1) % config.probe_every == 0:
                    if not confirmed():
                        return
                    for k in self.running():
                        _probe(models[k], config.probes, step + 1, histories[k])
                if config.checkpoint_path is not None and (step + 1) % config.checkpoint_every == 0:
                    if not confirmed() or not self.save_if_finite(step):
                        return
        if not confirmed():
            return
        for k in self.running():
            if config.probes and _last_probe_step(histories[k]) != steps:
                _probe(models[k], config.probes, steps, histories[k])
        if config.checkpoint_path is not None:
            self.save_if_finite(steps - 1)
        else:
            self.stop_nonfinite_states(steps - 1)

    def running(self) -> list[int]:
        """The models that have not stopped on a non-finite quantity."""
        return [k for k, history in enumerate(self.histories) if history.diverged_at is None]

    def freeze(self) -> None:
        """Drop the gradients of every stopped model, so that no optimizer moves it."""
        for model, history in zip(self.models, self.histories):
            if history.diverged_at is not None:
                model.zero_grad(set_to_none=True)

    def stop(
        self, k: int, record: dict[str, Any] | None, step: int, quantity: str, value: object
    ) -> tuple[int, str, object, dict[str, Any] | None]:
        """Log model k's divergence and mark its history; return its TrainingDiverged arguments."""
        self.log(k, {**(record or {"step": step}), "diverged": quantity})
        history = self.histories[k]
        history.diverged_at, history.diverged_quantity = step, quantity
        return step, quantity, value, history.last_finite()

    def none_running(self, last: tuple | None) -> bool:
        """Whether every model has stopped; then raise for the last one if ``on_nonfinite="raise"``.

        ``last``: the :class:`TrainingDiverged` arguments of the model stopped last.
        """
        if self.running():
            return False
        if self.config.on_nonfinite == "raise":
            raise TrainingDiverged(*last)
        return True

    def stop_nonfinite_states(self, step: int) -> bool:
        """Stop every running model whose parameters or optimizer state hold a non-finite number
        (Note [NaN guard]); whether every model has stopped (see :meth:`none_running`)."""
        named: list[tuple[int, str, str, torch.Tensor]] = []
        for k in self.running():
            model = self.models[k]
            named += [(k, "parameters", name, t) for name, t in model.state_dict().items()]
            for i, opt in enumerate(self.optimizers):
                # Model k of a batch: its parameters' state; one model: the whole state_dict.
                if self.batched:
                    states = [(opt.state.get(p, {}), name) for name, p in model.named_parameters()]
                else:
                    states = [(opt.state_dict(), "")]
                for state, name in states:
                    named += [(k, "optimizer state", key, t) for key, t in _tensors(state, f"optimizer[{i}] {name}")]
        named = [entry for entry in named if isinstance(entry[3], torch.Tensor) and entry[3].is_floating_point()]
        last = None
        for (k, quantity, name, _), ok in zip(named, _finite_flags([entry[3] for entry in named])):
            if not ok and self.histories[k].diverged_at is None:
                last = self.stop(k, None, step, quantity, name)
        return self.none_running(last)

    def save_if_finite(self, step: int) -> bool:
        """Checkpoint after ``step`` unless no model is left running (then return False)."""
        if self.stop_nonfinite_states(step):
            return False
        model_key, generator_key, history_key = _RUN_KEYS[self.batched]
        generators = [generator.get_state() for generator in self.generators]
        histories = [dict(history.__dict__) for history in self.histories]
        state = {
            "step": step + 1,
            model_key: self.model.state_dict(),
            "optimizers": [opt.state_dict() for opt in self.optimizers],
            generator_key: generators if self.batched else generators[0],
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state(self.device) if self.device.type == "cuda" else None,
            history_key: histories if self.batched else histories[0],
        }
        path = Path(self.config.checkpoint_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")  # written, then renamed into place (atomic)
        torch.save(state, tmp)
        os.replace(tmp, path)
        return True

    def resume(self, steps: int) -> int:
        """Restore the run from its checkpoint; the number of steps it holds."""
        path, optimizers = self.config.checkpoint_path, self.optimizers
        model_key, generator_key, history_key = _RUN_KEYS[self.batched]
        # weights_only=False: probe values may be any picklable Python object. Load only your own runs.
        state = torch.load(path, map_location=self.device, weights_only=False)
        if not isinstance(state, dict) or set(state) != {*_SHARED_KEYS, *_RUN_KEYS[self.batched]}:
            run = "a BatchedElmanRNN run of " if self.batched else ""
            raise ValueError(
                f"{path} is not a checkpoint of {run}this version of orthobook.train; delete it to start afresh"
            )
        if len(state["optimizers"]) != len(optimizers):
            saved = len(state["optimizers"])
            raise ValueError(f"{path} holds {saved} optimizer states, but this run has {len(optimizers)} optimizers")
        if state["step"] > steps:
            raise ValueError(f"the checkpoint {path} holds {state['step']} steps, more than steps={steps}")
        generators, histories = state[generator_key], state[history_key]
        if not self.batched:
            generators, histories = [generators], [histories]
        if len(histories) != len(self.histories):
            raise ValueError(f"{path} holds {len(histories)} models, but this batch has {len(self.histories)}")
        self.model.load_state_dict(state[model_key])
        for generator, saved in zip(self.generators, generators):
            generator.set_state(saved.cpu())
        for opt, saved in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(saved)
        torch.set_rng_state(state["torch_rng"].cpu())
        if state["cuda_rng"] is not None and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"].cpu(), self.device)
        for history, saved in zip(self.histories, histories):
            saved = History(**saved)
            for name in history.probes:
                history.probes[name] = saved.probes.get(name, [])
            for record in saved.records():
                history.append(record)
            history.diverged_at, history.diverged_quantity = saved.diverged_at, saved.diverged_quantity
        return state["step"]

    def log(self, k: int, record: Mapping[str, Any]) -> None:
        """Append model k's record to the log (with ``"model": k`` for a batch)."""
        if self.config.log_path is not None:
            with Path(self.config.log_path).open("a") as f:
                f.write(_json_line({"model": k, **record} if self.batched else record))

    def rewrite_log(self) -> None:
        """Start the log afresh from the (possibly resumed) histories, step by step (model by
        model within a step), dropping lines past them."""
        records = [(r["step"], k, r) for k, history in enumerate(self.histories) for r in history.records()]
        records.sort(key=lambda entry: entry[:2])
        path = Path(self.config.log_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w") as f:
            f.writelines(_json_line({"model": k, **record} if self.batched else record) for _, k, record in records)


def _outputs(model: nn.Module, x: torch.Tensor | list[torch.Tensor]) -> Sequence[torch.Tensor]:
    """Model k's output for each k: of ``x[k]`` (a list, one input per model) or of ``x``."""
    if not isinstance(model, BatchedElmanRNN):
        return [model(x[0] if isinstance(x, list) else x)]
    return model(torch.stack(x) if isinstance(x, list) else x.expand(len(model), *x.shape))


@torch.no_grad()
def evaluate(
    model: nn.Module,
    task: Task,
    batch_size: int = 512,
    seed: int = 12345,
    *,
    chunk_size: int | None = 1000,
) -> dict[str, float | None] | list[dict[str, float | None]]:
    """Loss and accuracy of ``model`` on one fresh batch of ``batch_size`` sequences.

    The batch is drawn in one piece on the model's device (so it is the same for every
    ``chunk_size``) and fed to the model ``chunk_size`` sequences at a time. The
    result is the mean over the chunks weighted by their sizes, which equals the loss and
    accuracy of the whole batch at once for every task whose loss and accuracy are means
    over sequences of equal weight (all of :mod:`orthobook.tasks`).

    Args:
        model: the trained model; evaluated in ``eval()`` mode, which is restored after.
        task: the task.
        batch_size: sequences in the evaluation batch.
        seed: seed of the evaluation batch (different from training seeds by default).
        chunk_size: sequences per forward pass (``None``: the whole batch at once). The
            default of 1,000 bounds the memory of the activations whatever ``batch_size``:
            10,000 test images of 784 pixels through an unrolled ELU model (n = 128) keep
            about 12 GB at once (input drive, states, pre-activations: 4 GB each in
            float32), about 1.2 GB 1,000 at a time.

    Returns:
        ``{"loss": …, "accuracy": … or None}``; for a
        :class:`~orthobook.batched.BatchedElmanRNN`, a list of K of them, every model scored
        on the same batch.

    Raises:
        TypeError: ``batch_size``, ``seed`` or ``chunk_size`` is not an int.
        ValueError: ``batch_size`` or ``chunk_size`` is not positive, ``seed`` negative, or
            the model has no parameters.
    """
    _checks.positive_int(batch_size, "batch_size")
    _checks.non_negative_int(seed, "seed")
    chunk_size = batch_size if chunk_size is None else _checks.positive_int(chunk_size, "chunk_size")
    device = _device_of(model)
    x, y = task.sample(batch_size, torch.Generator().manual_seed(seed), device)
    K = len(model) if isinstance(model, BatchedElmanRNN) else 1
    loss_sums, accuracy_sums = [0.0] * K, [0.0] * K
    has_accuracy = True
    was_training = model.training
    model.eval()
    try:
        for begin in range(0, batch_size, chunk_size):
            x_chunk, y_chunk = x[begin : begin + chunk_size], y[begin : begin + chunk_size]
            output = _outputs(model, x_chunk)
            n = x_chunk.shape[0]
            losses = [task.loss(output[k], y_chunk) for k in range(K)]
            accuracies = [task.accuracy(output[k], y_chunk) for k in range(K)]
            values = _read(*losses, *accuracies)
            has_accuracy = accuracies[0] is not None
            for k in range(K):
                loss_sums[k] += n * values[k]
                accuracy_sums[k] += n * values[K + k] if has_accuracy else 0.0
    finally:
        model.train(was_training)
    results = [
        {"loss": loss / batch_size, "accuracy": accuracy / batch_size if has_accuracy else None}
        for loss, accuracy in zip(loss_sums, accuracy_sums)
    ]
    return results if isinstance(model, BatchedElmanRNN) else results[0]


@contextlib.contextmanager
def flushing_denormals(enabled: bool = True) -> Iterator[bool]:
    """Flush denormal numbers to zero on the CPU inside the ``with`` block (or keep them).

    ``torch.set_flush_denormal`` sets the mode and says whether this CPU supports it (x86
    with SSE3, AArch64), but torch has no getter: the mode in force before is read by
    multiplying the subnormal 2⁻¹⁰⁷⁰ by 1 in float64 (zero exactly when denormals are
    flushed) and set back on exit. GPU arithmetic is not affected.

    The mode is a per-thread register (MXCSR on x86): torch's intra-op worker threads that
    already exist keep theirs, so with ``torch.set_num_threads(k)`` only part of a large
    operation may be flushed. The book's chapters run on one thread, where it holds fully.

    Args:
        enabled: flush (``True``) or compute with denormals (``False``) inside the block.

    Yields:
        Whether denormals are flushed inside the block (``False`` also where the CPU does not
        support flushing).

    Raises:
        TypeError: ``enabled`` is not a bool.

    Example:
        >>> tiny = torch.tensor([1e-310], dtype=torch.float64)
        >>> with flushing_denormals() as flushed:
        ...     inside = (tiny * 1.0).item()
        >>> inside == (0.0 if flushed else 1e-310)
        True
        >>> (tiny * 1.0).item()  # the previous mode is back
        1e-310
    """
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {type(enabled).__name__}")
    previous = _flushes_denormals()
    supported = torch.set_flush_denormal(enabled)
    try:
        yield supported and enabled
    finally:
        if supported:
            torch.set_flush_denormal(previous)


def _flushes_denormals() -> bool:
    return (torch.tensor([2.0**-1070], dtype=torch.float64) * 1.0).item() == 0.0


def _optimizers(optimizer: object) -> tuple[torch.optim.Optimizer, ...]:
    optimizers = (optimizer,) if isinstance(optimizer, torch.optim.Optimizer) else optimizer
    if not isinstance(optimizers, Sequence) or isinstance(optimizers, str) or not optimizers:
        raise TypeError(f"optimizer must be a torch.optim.Optimizer or a non-empty sequence of them, got {optimizer!r}")
    for i, opt in enumerate(optimizers):
        if not isinstance(opt, torch.optim.Optimizer):
            raise TypeError(f"optimizer[{i}] must be a torch.optim.Optimizer, got {type(opt).__name__}")
    return tuple(optimizers)


def _check_retraction(model: nn.Module, optimizers: tuple[torch.optim.Optimizer, ...]) -> None:
    """Refuse a Euclidean optimizer for a StiefelParameter, and a parameter in two optimizers."""
    holder: dict[int, int] = {}
    for i, opt in enumerate(optimizers):
        for group in opt.param_groups:
            for p in group["params"]:
                if holder.setdefault(id(p), i) != i:
                    raise ValueError(
                        f"a parameter sits in optimizer[{holder[id(p)]}] and optimizer[{i}]: it would step twice"
                    )
    for name, p in model.named_parameters():
        i = holder.get(id(p))
        if isinstance(p, StiefelParameter) and p.requires_grad and i is not None:
            opt = optimizers[i]
            if not isinstance(opt, RetractingOptimizer):
                raise TypeError(
                    f"optimizer[{i}] ({type(opt).__name__}) would move the StiefelParameter {name!r} off the "
                    "Stiefel manifold: a Euclidean step does not keep YᵀY = I. Optimize it with "
                    "orthobook.optim.CayleyAdam or CayleySGD (they retract it), or freeze it with "
                    "requires_grad_(False)."
                )


def _device_of(model: nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    if parameter is None:
        raise ValueError("model must have at least one parameter (its device is where batches go)")
    return parameter.device


def _zero_grad(model: nn.Module, optimizers: tuple[torch.optim.Optimizer, ...]) -> None:
    model.zero_grad(set_to_none=True)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)


def _read(*values: torch.Tensor | float | None) -> list[float | None]:
    """The host values of 0-dim tensors (``None`` stays ``None``) in one transfer (Note [NaN guard])."""
    present = [v for v in values if v is not None]
    device = next((v.device for v in present if isinstance(v, torch.Tensor)), torch.device("cpu"))
    dtype = _host_dtype(device)
    stacked = torch.stack([torch.as_tensor(v, device=device).detach().reshape(()).to(dtype) for v in present])
    host = iter(stacked.tolist())
    return [None if v is None else next(host) for v in values]


def _host_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64  # MPS has no float64


class _Guard:
    """The NaN guard of K models between host reads (Note [device-side guard]).

    On the device: ``alive`` (K,) bool, ``bad_step`` (K,) the first failing step (−1 while
    none) and ``bad_values`` (K, 3) its loss, penalty (0 without one) and gradient norm.
    """

    def __init__(self, count: int, device: torch.device, optimizers: tuple[torch.optim.Optimizer, ...]) -> None:
        self.count, self.device, self.optimizers = count, device, optimizers
        self.owner = {id(p): opt for opt in optimizers for group in opt.param_groups for p in group["params"]}
        self.indices: dict[tuple[int, ...], torch.Tensor] = {}
        dtype = _host_dtype(device)
        self.alive = torch.ones(count, dtype=torch.bool, device=device)
        self.bad_step = torch.full((count,), -1.0, dtype=dtype, device=device)
        self.bad_values = torch.zeros(count, 3, dtype=dtype, device=device)
        self.pending = False  # a masked step since the last read

    def masked_step(
        self,
        running: Sequence[int],
        parameters: Sequence[Sequence[torch.Tensor]],
        quantities: Sequence[tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]],
        step: int,
    ) -> None:
        """Step every optimizer; model ``running[j]`` (its ``parameters[j]``) keeps the step
        only if its ``quantities[j]`` (loss, penalty, grad_norm) are finite and it was alive."""
        dtype = self.bad_values.dtype
        zero = torch.zeros((), dtype=dtype, device=self.device)
        values = torch.stack(
            [
                torch.stack([q.detach().reshape(()).to(dtype) if q is not None else zero for q in triple])
                for triple in quantities
            ]
        )
        key = tuple(running)
        if key not in self.indices:  # made once per set of running models, not per step
            self.indices[key] = torch.tensor(key, device=self.device)
        index = self.indices[key]
        alive = self.alive.index_select(0, index)
        finite = torch.isfinite(values).all(dim=1)
        newly_bad = alive & ~finite
        keep = alive & finite
        self.bad_step.index_copy_(0, index, torch.where(newly_bad, float(step), self.bad_step.index_select(0, index)))
        self.bad_values.index_copy_(
            0, index, torch.where(newly_bad.unsqueeze(1), values, self.bad_values.index_select(0, index))
        )
        self.alive.index_copy_(0, index, keep)
        self._select_step([(keep[j], group) for j, group in enumerate(parameters)])
        self.pending = True

    def flags(self) -> torch.Tensor:
        """What a host read appends: alive, bad_step, bad_values, flattened (5K values)."""
        dtype = self.bad_values.dtype
        return torch.cat([self.alive.to(dtype), self.bad_step, self.bad_values.flatten()])

    def failures(self, host: Sequence[float]) -> list[tuple[int, int, str, float, dict[str, Any]]]:
        """From the host values of :meth:`flags`: ``(k, step, quantity, value, record)`` for
        every model whose flag is down; marks the guard read."""
        K = self.count
        self.pending = False
        failed = []
        for k in range(K):
            if host[k]:
                continue
            step = int(host[K + k])
            loss, penalty, grad_norm = host[2 * K + 3 * k : 2 * K + 3 * k + 3]
            record = {"step": step, "loss": loss, "penalty": penalty, "accuracy": None, "grad_norm": grad_norm}
            quantity = _nonfinite_quantity(record)
            failed.append((k, step, quantity, record[quantity], record))
        return failed

    def _select_step(self, groups: Sequence[tuple[torch.Tensor, Sequence[torch.Tensor]]]) -> None:
        """Step the optimizers, then undo the step for every group whose flag is False."""
        saved = []
        for flag, parameters in groups:
            for p in parameters:
                opt = self.owner.get(id(p))
                if p.grad is None or opt is None:
                    continue
                old_state = {key: t.clone() for key, t in opt.state.get(p, {}).items() if _selectable(t, flag)}
                saved.append((flag, p, opt, p.detach().clone(), old_state))
        for opt in self.optimizers:
            opt.step()
        with torch.no_grad():
            for flag, p, opt, old, old_state in saved:
                p.copy_(torch.where(flag, p, old))
                state = opt.state.get(p, {})
                for key, t in state.items():
                    if _selectable(t, flag):
                        state[key] = torch.where(flag, t, old_state[key] if key in old_state else torch.zeros_like(t))


def _selectable(t: object, flag: torch.Tensor) -> bool:
    return isinstance(t, torch.Tensor) and t.device == flag.device


def _nonfinite_quantity(record: Mapping[str, Any]) -> str | None:
    return next((q for q in _GUARDED if record[q] is not None and not math.isfinite(record[q])), None)


def _finite_flags(tensors: Sequence[torch.Tensor]) -> list[bool]:
    """Whether each tensor is all finite, read back in one transfer per device."""
    finite = [True] * len(tensors)
    by_device: dict[torch.device, list[int]] = {}
    for i, t in enumerate(tensors):
        by_device.setdefault(t.device, []).append(i)
    for indices in by_device.values():  # one transfer per device: a flag per tensor
        flags = torch.stack([torch.isfinite(tensors[i]).all() for i in indices]).tolist()
        for i, flag in zip(indices, flags):
            finite[i] = flag
    return finite


def _tensors(state: object, prefix: str = "") -> Iterator[tuple[str, torch.Tensor]]:
    if isinstance(state, torch.Tensor):
        yield prefix, state
    elif isinstance(state, Mapping):
        for key, value in state.items():
            yield from _tensors(value, f"{prefix}[{key!r}]")
    elif isinstance(state, (list, tuple)):
        for i, value in enumerate(state):
            yield from _tensors(value, f"{prefix}[{i}]")


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


def _json_line(record: Mapping[str, Any]) -> str:
    """One JSON object; NaN and ±inf (which JSON lacks) are written as ``null``."""
    clean = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
    return json.dumps(clean, allow_nan=False) + "\n"


