"""What one experiment is: a frozen configuration, the paper's numbers, our deviations.

An :class:`Experiment` holds every hyperparameter that decides a run (the model, the
constraint, the start, the optimizers, the data, the number of steps, how the reported model
is selected), the numbers the paper reports for it (:class:`Reported`, each with the table or
figure it comes from) and a written note for each place where we depart from the paper
(:class:`Deviation`). Its :meth:`Experiment.config_hash` covers the fields that decide a run
and nothing else, so rewording a note does not invalidate stored results, while changing a
learning rate does (Note [configuration hash]).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass

import torch

__all__ = ["Deviation", "Experiment", "LRSchedule", "Reported", "RUN_FIELDS", "TASKS", "MODELS"]

TASKS = ("copy", "adding", "smnist", "pmnist", "psmnist", "ptb_char")
MODELS = ("rnn", "lstm", "rin", "irnn")
_RECURRENT = ("free", "spectral_margin", "householder_svd")
_INITS = ("glorot", "orthogonal", "identity", "chain", "fb_chain", "pytorch")
_OPTIMIZERS = ("rmsprop", "adam", "sgd")
_SELECT = ("best_validation", "last")
_SPLITS = ("fresh", "50k/10k/10k", "60k/10k", "pooled 80/20", "ptb")
_SCHEDULES = ("exponential", "step")


@dataclass(frozen=True)
class LRSchedule:
    """How the learning rate falls with the epochs: a torch scheduler stepped once per epoch.

    ``"exponential"`` multiplies every learning rate by ``gamma`` after each epoch
    (:class:`torch.optim.lr_scheduler.ExponentialLR`); ``"step"`` multiplies it by ``gamma``
    after every ``step_size`` epochs (:class:`~torch.optim.lr_scheduler.StepLR`). During epoch
    ``e`` (counted from 0) the rate is ``lr · factor(e)``.

    Attributes:
        kind: ``"exponential"`` or ``"step"``.
        gamma: the factor, in (0, 1].
        step_size: epochs between two factors (``"step"`` only).

    Example:
        >>> LRSchedule("exponential", 0.99).factor(100) == 0.99**100
        True
        >>> [LRSchedule("step", 0.5, step_size=2).factor(e) for e in range(5)]
        [1.0, 1.0, 0.5, 0.5, 0.25]
    """

    kind: str
    gamma: float
    step_size: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in _SCHEDULES:
            raise ValueError(f"kind must be one of {_SCHEDULES}, got {self.kind!r}")
        if not (isinstance(self.gamma, (int, float)) and not isinstance(self.gamma, bool) and 0 < self.gamma <= 1):
            raise ValueError(f"gamma must be a number in (0, 1], got {self.gamma!r}")
        if (self.kind == "step") != (self.step_size is not None):
            raise ValueError(f"step_size is given with kind 'step' and only then, got {self.step_size!r}")
        if self.step_size is not None and (
            not isinstance(self.step_size, int) or isinstance(self.step_size, bool) or self.step_size < 1
        ):
            raise ValueError(f"step_size must be a positive int, got {self.step_size!r}")

    def __str__(self) -> str:
        every = "epoch" if self.kind == "exponential" else f"{self.step_size} epochs"
        return f"×{self.gamma:g} per {every}"

    def factor(self, epoch: int) -> float:
        """The learning rate of epoch ``epoch`` (from 0) over the initial one."""
        if not isinstance(epoch, int) or isinstance(epoch, bool) or epoch < 0:
            raise ValueError(f"epoch must be a non-negative int, got {epoch!r}")
        decays = epoch if self.kind == "exponential" else epoch // self.step_size
        return self.gamma**decays

    def build(self, optimizer: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
        """The torch scheduler of ``optimizer`` (every parameter group decays alike)."""
        if self.kind == "exponential":
            return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=self.gamma)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=self.step_size, gamma=self.gamma)


@dataclass(frozen=True)
class Reported:
    """One number a paper reports for an experiment.

    Attributes:
        metric: what is measured, a key of the run summary's metrics (``"test_accuracy"``,
            ``"test_loss"``, ``"solved"``: 1 when the run reaches the task's success level).
        value: the paper's value, or ``None`` when the paper gives the outcome only as a
            curve or in words (then ``statement`` says what it shows).
        source: where it comes from, e.g. ``"Zhang et al. 2018, Table 2"``.
        statement: the paper's outcome in words (for curves), else ``""``.
        higher_is_better: the direction of the metric.
        tolerance: the difference from ``value`` still called agreement, in the metric's unit.
    """

    metric: str
    value: float | None
    source: str
    statement: str = ""
    higher_is_better: bool = True
    tolerance: float = 0.0


@dataclass(frozen=True)
class Deviation:
    """One deliberate difference from the paper: the field, the paper's value and why.

    ``paper`` is the value as the paper or its released code has it (a string when it is
    not a plain value, ``None`` when no source read for this configuration states it).
    """

    field: str
    paper: object
    why: str


@dataclass(frozen=True)
class Experiment:
    """One headline experiment of a paper, frozen: every hyperparameter of a run.

    Attributes (decide the run, Note [configuration hash]):
        task: one of :data:`TASKS`; ``T`` is the copy delay, the adding length, 784 for
            MNIST or the truncation length for PTB.
        model, hidden_size, num_layers, nonlinearity: the network (:data:`MODELS`).
        recurrent: ``"free"``, ``"spectral_margin"`` (Vorontsov) or ``"householder_svd"``
            (Zhang); ``margin`` (``None``: no bound) and ``reflectors`` (``None``: ``n``).
        init, init_scale, input_std: the start of ``W`` (α of a chain, β of an fb-chain, a
            gain otherwise) and the spread of ``V`` (``None``: PyTorch's default).
        optimizer, lr, weight_decay, momentum: the optimizer of the ordinary parameters.
        frame_lr: learning rate of plain geodesic SGD (:class:`~orthobook.optim.CayleySGD`)
            on the Stiefel factors ``U, V``; ``None``: they sit in the main optimizer's
            Cayley version.
        spectrum_lr_over_2m: divide the learning rate of the spectrum parameters ``p`` by
            ``2m`` (Vorontsov et al. 2017; ``s = 2m(σ(p) − ½) + 1`` has slope ``m/2`` at 0).
        clip: largest gradient norm (``None``: no clipping).
        batch_size, steps: the paper's batch and number of optimizer steps.
        lr_decay: the learning-rate schedule (an :class:`LRSchedule`, stepped every
            ``steps_per_epoch`` steps, for every optimizer), ``None``: a constant rate.
        steps_per_epoch: optimizer steps of one epoch (needed by ``lr_decay``).
        split: how the data are divided (``"fresh"``: synthetic batches drawn anew).
        select: ``"best_validation"`` (the model of the best validation loss is reported)
            or ``"last"``; ``early_stop_loss`` stops a run at that validation loss.
        eval_every, eval_size: steps between validation passes, sequences per pass.
        copy_layout, n_copy, adding_target: task options.

    Other attributes: ``name``, ``paper`` (a key of :data:`orthobook.experiments.PAPERS`),
    ``title``, ``reported``, ``deviations`` and ``sources`` (what was read to check the
    hyperparameters).
    """

    name: str
    paper: str
    title: str
    task: str
    T: int
    model: str
    hidden_size: int
    optimizer: str
    lr: float
    batch_size: int
    steps: int
    num_layers: int = 1
    nonlinearity: str = "tanh"
    recurrent: str = "free"
    margin: float | None = None
    reflectors: int | None = None
    init: str = "glorot"
    init_scale: float = 1.0
    input_std: float | None = None
    weight_decay: float = 0.0
    momentum: float = 0.0
    frame_lr: float | None = None
    spectrum_lr_over_2m: bool = False
    clip: float | None = None
    lr_decay: LRSchedule | None = None
    steps_per_epoch: int | None = None
    split: str = "fresh"
    select: str = "best_validation"
    early_stop_loss: float | None = None
    eval_every: int = 100
    eval_size: int = 1000
    copy_layout: str = "scalar"
    n_copy: int = 10
    adding_target: str = "sum"
    reported: tuple[Reported, ...] = ()
    deviations: tuple[Deviation, ...] = ()
    sources: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name, allowed in (
            ("task", TASKS),
            ("model", MODELS),
            ("recurrent", _RECURRENT),
            ("init", _INITS),
            ("optimizer", _OPTIMIZERS),
            ("select", _SELECT),
            ("split", _SPLITS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        for name in ("T", "hidden_size", "batch_size", "steps", "eval_every", "eval_size", "num_layers"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if not (isinstance(self.lr, (int, float)) and self.lr > 0):
            raise ValueError(f"lr must be a positive number, got {self.lr!r}")
        if self.spectrum_lr_over_2m and not self.margin:
            raise ValueError("spectrum_lr_over_2m needs a margin m > 0")
        if self.lr_decay is not None and not isinstance(self.lr_decay, LRSchedule):
            raise TypeError(f"lr_decay must be an LRSchedule or None, got {type(self.lr_decay).__name__}")
        if self.lr_decay is not None and self.steps_per_epoch is None:
            raise ValueError("lr_decay is stepped once per epoch: it needs steps_per_epoch")
        if self.recurrent != "free" and self.model != "rnn":
            raise ValueError(f"recurrent={self.recurrent!r} constrains an Elman RNN: model must be 'rnn'")
        known = {f.name for f in dataclasses.fields(self)}
        for deviation in self.deviations:
            if deviation.field not in known:
                raise ValueError(f"deviation names an unknown field {deviation.field!r}")

    def run_settings(self) -> dict[str, object]:
        """The fields that decide a run (:data:`RUN_FIELDS`), as a dict of JSON values (an
        :class:`LRSchedule` as the dict of its fields)."""
        settings = {name: getattr(self, name) for name in RUN_FIELDS}
        if self.lr_decay is not None:
            settings["lr_decay"] = dataclasses.asdict(self.lr_decay)
        return settings

    def config_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of :meth:`run_settings` as canonical JSON."""
        text = json.dumps(self.run_settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def paper_value(self, name: str) -> object:
        """The paper's value of field ``name``: the deviation's, else ours."""
        for deviation in self.deviations:
            if deviation.field == name:
                return deviation.paper
        return getattr(self, name)

    def deviation(self, name: str) -> Deviation | None:
        """The deviation on field ``name``, if any."""
        return next((d for d in self.deviations if d.field == name), None)


# Note [configuration hash]
# ~~~~~~~~~~~~~~~~~~~~~~~~~
# A stored summary carries the hash of the settings it ran with. Only the fields that change
# what a run computes go into it: the notes, the reported numbers and the sources can be
# corrected without throwing results away, while a changed learning rate or margin makes
# every stored summary of that configuration refused until it is run again. The name is in
# the hash so that two configurations that happen to agree never share results. A constant
# learning rate is `lr_decay = None`, as it was when the field held a plain decay factor, so
# the configurations without a schedule kept their hashes when LRSchedule came in.
RUN_FIELDS = tuple(
    f.name
    for f in dataclasses.fields(Experiment)
    if f.name not in ("paper", "title", "reported", "deviations", "sources")
)
