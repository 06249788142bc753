"""The :class:`Task` protocol, the synthetic long-memory tasks, labelled sequences and text.

A task is a small object that samples batches on any device from a given generator and
knows its loss, its accuracy (where it has one) and the loss of the best strategy that
remembers nothing (the *baseline*: a model that does not beat it has learned nothing).
Models return one output per step, ``(batch, T, output_size)``; each task scores the
steps its loss reads (every step for :class:`CopyTask` and :class:`LanguageModelTask`, the
last for :class:`AddingTask` and :class:`ClassificationTask`). The exact definitions are on
the book's page "Data and tasks".
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
import torch.nn.functional as F

from orthobook import _checks

__all__ = [
    "Task",
    "CopyTask",
    "AddingTask",
    "ClassificationTask",
    "LanguageModelTask",
    "copy_baseline",
    "adding_baseline",
    "classification_baseline",
]

_COPY_LAYOUTS = ("scalar", "onehot")
_ADDING_TARGETS = ("sum", "mean")


@runtime_checkable
class Task(Protocol):
    """What :func:`~orthobook.train.train` and :func:`~orthobook.train.evaluate` need of a task.

    ``output`` is always what a model returns, one output per step, (batch, T,
    output_size); the task itself reads the steps its loss scores.

    Attributes:
        input_size: features per input step.
        output_size: outputs per step the model must produce (classes, or regression targets).
        baseline: the loss of the best memoryless predictor (Book: Eq. (tasks-memoryless)).
    """

    @property
    def input_size(self) -> int: ...

    @property
    def output_size(self) -> int: ...

    @property
    def baseline(self) -> float: ...

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``(x, y)``: ``x`` (batch, T, input_size), ``y`` the targets, both on ``device``."""
        ...

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The scalar loss of ``output`` (batch, T, output_size) against ``target``."""
        ...

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor | None:
        """A scalar accuracy in [0, 1], or ``None`` for a task without one."""
        ...


def _steps(output: object, output_size: int) -> torch.Tensor:
    """Raise unless ``output`` is a model's (batch, T, output_size) floating tensor."""
    out = _checks.floating(output, "output")
    if out.dim() != 3 or out.shape[-1] != output_size:
        raise ValueError(
            f"output must have shape (batch, T, {output_size}), one output per step, got {tuple(out.shape)}"
        )
    return out


def copy_baseline(delay: int, n_symbols: int = 8, n_copy: int = 10) -> float:
    """Cross-entropy per time step of the memoryless copy strategy.

    Predict a blank for the first ``delay + n_copy`` outputs and the uniform distribution
    over the ``n_symbols`` data symbols for the last ``n_copy``:
    ``n_copy · log(n_symbols) / (delay + 2 n_copy)`` (Book: Eq. (tasks-copy-baseline);
    Arjovsky, Shah & Bengio 2016).

    Args:
        delay: T, the number of steps between the end of the data and the recall cue.
        n_symbols: size of the data alphabet.
        n_copy: number of symbols to remember.

    Returns:
        The baseline loss in nats per step.
    """
    _checks.positive_int(delay, "delay")
    _checks.positive_int(n_symbols, "n_symbols")
    _checks.positive_int(n_copy, "n_copy")
    return n_copy * math.log(n_symbols) / (delay + 2 * n_copy)


def adding_baseline(target: str = "sum") -> float:
    """Mean squared error of the memoryless adding strategy (predict the mean target).

    For two numbers ``a, b ~ U(0, 1)``: ``Var(a + b) = 1/6 ≈ 0.167`` when the target is the
    sum and ``Var((a + b)/2) = 1/24`` when it is the mean (Book: Eq. (tasks-adding-baseline)).

    Args:
        target: ``"sum"`` (Le et al. 2015; Arjovsky et al. 2016) or ``"mean"``.
    """
    _checks.one_of(target, "target", _ADDING_TARGETS)
    return 1.0 / 6.0 if target == "sum" else 1.0 / 24.0


@dataclass(frozen=True)
class CopyTask:
    """The copy-memory task: read ``n_copy`` symbols, wait ``delay`` steps, write them back.

    Symbols: ``0`` blank, ``1 … n_symbols`` data, ``n_symbols + 1`` the recall cue. An input
    sequence of length ``delay + 2·n_copy`` holds the data, ``delay − 1`` blanks, the cue and
    ``n_copy`` blanks; the target is ``delay + n_copy`` blanks followed by the data.

    Args:
        delay: T ≥ 1.
        n_symbols: data alphabet size (8 in Arjovsky et al. 2016).
        n_copy: how many symbols to copy (10).
        layout: ``"scalar"``: one input feature holding the symbol's integer code (the layout of
            Vorontsov et al. 2017); ``"onehot"``: ``n_symbols + 2`` one-hot features (the layout
            of Orhan & Pitkow 2020).

    Example:
        >>> task = CopyTask(delay=5)
        >>> x, y = task.sample(3, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape
        (torch.Size([3, 25, 1]), torch.Size([3, 25]))
    """

    delay: int
    n_symbols: int = 8
    n_copy: int = 10
    layout: str = "scalar"

    def __post_init__(self) -> None:
        _checks.positive_int(self.delay, "delay")
        _checks.positive_int(self.n_symbols, "n_symbols")
        _checks.positive_int(self.n_copy, "n_copy")
        _checks.one_of(self.layout, "layout", _COPY_LAYOUTS)

    @property
    def seq_len(self) -> int:
        return self.delay + 2 * self.n_copy

    @property
    def input_size(self) -> int:
        return 1 if self.layout == "scalar" else self.n_symbols + 2

    @property
    def output_size(self) -> int:
        """Blank plus the data symbols (the cue is never a target)."""
        return self.n_symbols + 1

    @property
    def baseline(self) -> float:
        return copy_baseline(self.delay, self.n_symbols, self.n_copy)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a batch from ``generator``, on the generator's device (Note [drawing device]).

        Returns:
            ``x``: (batch, seq_len, input_size) float32; ``y``: (batch, seq_len) int64 symbol
            codes, both on ``device``.

        Raises:
            TypeError, ValueError: ``batch_size`` is not a positive int, or ``device`` is not
                a device this machine has.
        """
        device, on = _sampling(batch_size, generator, device)
        data = torch.randint(1, self.n_symbols + 1, (batch_size, self.n_copy), generator=generator, device=on)
        codes = torch.zeros(batch_size, self.seq_len, dtype=torch.long, device=on)
        codes[:, : self.n_copy] = data
        codes[:, self.delay + self.n_copy - 1] = self.n_symbols + 1
        y = torch.zeros_like(codes)
        y[:, -self.n_copy :] = data
        if self.layout == "scalar":
            x = codes.unsqueeze(-1).float()
        else:
            x = F.one_hot(codes, self.n_symbols + 2).float()
        return x.to(device), y.to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over every step (Book: Eq. (tasks-copy-loss)).

        ``output``: (batch, seq_len, output_size) logits; ``target``: (batch, seq_len).
        """
        output = _steps(output, self.output_size)
        return F.cross_entropy(output.flatten(0, 1), target.flatten())

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fraction of the ``n_copy`` recalled symbols that are right."""
        recall = _steps(output, self.output_size)[:, -self.n_copy :].argmax(-1)
        return (recall == target[:, -self.n_copy :]).float().mean()


@dataclass(frozen=True)
class AddingTask:
    """The adding problem: two marked numbers among ``seq_len``; output their sum (or mean).

    Each step carries two features: a value ``U(0, 1)`` and a marker, 1 at one position in
    the first half and one in the second half, 0 elsewhere (the layout of Le et al. 2015 and
    Arjovsky et al. 2016; Hochreiter & Schmidhuber 1997 introduced the task with another one).

    Args:
        seq_len: T ≥ 2.
        target: ``"sum"`` (baseline MSE 1/6 ≈ 0.167) or ``"mean"`` (baseline 1/24).
    """

    seq_len: int
    target: str = "sum"

    def __post_init__(self) -> None:
        _checks.positive_int(self.seq_len, "seq_len")
        if self.seq_len < 2:
            raise ValueError(f"seq_len must be at least 2, got {self.seq_len}")
        _checks.one_of(self.target, "target", _ADDING_TARGETS)

    input_size = 2
    output_size = 1

    @property
    def baseline(self) -> float:
        return adding_baseline(self.target)

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw a batch from ``generator``, on the generator's device (Note [drawing device]).

        Returns:
            ``x``: (batch, seq_len, 2) float32; ``y``: (batch, 1) float32, both on ``device``.

        Raises:
            TypeError, ValueError: ``batch_size`` is not a positive int, or ``device`` is not
                a device this machine has.
        """
        device, on = _sampling(batch_size, generator, device)
        half = self.seq_len // 2
        values = torch.rand(batch_size, self.seq_len, generator=generator, device=on)
        first = torch.randint(0, half, (batch_size,), generator=generator, device=on)
        second = torch.randint(half, self.seq_len, (batch_size,), generator=generator, device=on)
        marks = torch.zeros(batch_size, self.seq_len, device=on)
        rows = torch.arange(batch_size, device=on)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        y = (values * marks).sum(1, keepdim=True)
        if self.target == "mean":
            y = y / 2
        return torch.stack([values, marks], -1).to(device), y.to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error of the last step's output (Book: Eq. (tasks-adding-loss)).

        ``output``: (batch, seq_len, 1); ``target``: (batch, 1).
        """
        return F.mse_loss(_steps(output, self.output_size)[:, -1], target)

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """The adding problem has no accuracy."""
        return None


def classification_baseline(labels: torch.Tensor, num_classes: int | None = None) -> float:
    """Cross-entropy of the memoryless classifier on these labels: the entropy of their frequencies.

    Predicting the class frequencies ``q_k`` of ``labels`` for every example is the best
    prediction that ignores the inputs, and its cross-entropy on these same labels is
    ``H(q) = −Σ_k q_k ln q_k`` (Book: Eq. (mnist-baseline)); on other data it is the
    cross-entropy between the two frequency tables, which is at least their entropy.

    Args:
        labels: (n,) int64 class labels, n ≥ 1.
        num_classes: number of classes (absent classes contribute nothing); default
            ``max(labels) + 1``.

    Returns:
        The baseline loss in nats per example.

    Raises:
        TypeError: ``labels`` is not an int64 tensor.
        ValueError: ``labels`` is not a non-empty 1-D tensor of values in ``0..num_classes − 1``.

    Example:
        >>> round(classification_baseline(torch.tensor([0, 1, 1, 1])), 4)  # H(1/4, 3/4)
        0.5623
    """
    return _label_entropy(_labels(labels, "labels"), _num_classes(labels, num_classes, "labels"))


def _labels(labels: object, name: str) -> torch.Tensor:
    t = _checks.tensor(labels, name)
    if t.dtype != torch.long:
        raise TypeError(f"{name} must be an int64 tensor of class labels, got dtype {t.dtype}")
    if t.dim() != 1 or t.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D tensor (n,), got shape {tuple(t.shape)}")
    if int(t.min()) < 0:
        raise ValueError(f"{name} must be non-negative class indices, found {int(t.min())}")
    return t


def _num_classes(labels: torch.Tensor, num_classes: int | None, name: str) -> int:
    largest = int(labels.max())
    if num_classes is None:
        return largest + 1
    _checks.positive_int(num_classes, "num_classes")
    if largest >= num_classes:
        raise ValueError(f"{name} must lie in 0..{num_classes - 1} for num_classes={num_classes}, found {largest}")
    return num_classes


def _label_entropy(labels: torch.Tensor, num_classes: int) -> float:
    q = torch.bincount(labels.cpu(), minlength=num_classes).double() / labels.numel()
    q = q[q > 0]
    return float(-(q * q.log()).sum())


class ClassificationTask:
    """Labelled sequences (e.g. sequential MNIST) as a :class:`Task`.

    Each batch is ``batch_size`` distinct examples drawn at random (without replacement within
    the batch) by the caller's generator, so ``evaluate(model, task, batch_size=len(task))``
    scores every example exactly once. The loss is the cross-entropy of the class read at the
    last step, ``output[:, -1]``, the accuracy the fraction of correct argmax classes there.
    The baseline is the entropy of the task's own label frequencies
    (:func:`classification_baseline`): the loss of predicting them for every example.

    Args:
        inputs: (n, T, input_size) float tensor, e.g. ``mnist_sequences(...).inputs``; it may
            live on the GPU (each batch is then an index selection there).
        targets: (n,) int64 class labels on the same device.
        num_classes: the number of classes, ``output_size`` (10 for MNIST); default
            ``max(targets) + 1``. Pass it when a split may lack the largest class, so that
            models built from the training and the test task agree.

    Raises:
        TypeError: ``inputs`` is not a floating tensor or ``targets`` not an int64 tensor.
        ValueError: wrong shapes, different lengths or devices, or labels outside
            ``0..num_classes − 1``.

    Example:
        >>> task = ClassificationTask(torch.zeros(10, 784, 1), torch.arange(10) % 2)
        >>> x, y = task.sample(4, torch.Generator().manual_seed(0))
        >>> x.shape, y.shape, task.output_size, round(task.baseline, 4)
        (torch.Size([4, 784, 1]), torch.Size([4]), 2, 0.6931)
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, num_classes: int | None = None) -> None:
        _checks.floating(inputs, "inputs")
        _checks.tensor(targets, "targets")
        if inputs.dim() != 3:
            raise ValueError(f"inputs must have shape (n, T, input_size), got {tuple(inputs.shape)}")
        if targets.dtype != torch.long:
            raise TypeError(f"targets must be an int64 tensor of class labels, got dtype {targets.dtype}")
        if targets.shape != inputs.shape[:1]:
            raise ValueError(
                f"targets must have shape ({inputs.shape[0]},) to match inputs, got {tuple(targets.shape)}"
            )
        if inputs.device != targets.device:
            raise ValueError(f"inputs and targets must be on one device, got {inputs.device} and {targets.device}")
        _labels(targets, "targets")
        self.inputs = inputs
        self.targets = targets
        self._num_classes = _num_classes(targets, num_classes, "targets")
        self._baseline = _label_entropy(targets, self._num_classes)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    @property
    def input_size(self) -> int:
        return self.inputs.shape[-1]

    @property
    def output_size(self) -> int:
        """The number of classes."""
        return self._num_classes

    @property
    def baseline(self) -> float:
        """Entropy of the label frequencies, in nats (Book: Eq. (mnist-baseline))."""
        return self._baseline

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch_size ≤ len(self)`` distinct examples and move them to ``device``.

        The indices are drawn from ``generator`` on its device (Note [drawing device]); the
        examples are selected where the data live.

        Returns:
            ``x``: (batch, T, input_size); ``y``: (batch,) int64.

        Raises:
            TypeError, ValueError: ``batch_size`` is not an int in ``1..len(self)``, or
                ``device`` is not a device this machine has.
        """
        device, idx = _distinct(batch_size, len(self), "examples", generator, device, self.inputs.device)
        return self.inputs[idx].to(device), self.targets[idx].to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of the last step; ``output``: (batch, T, classes) logits."""
        return F.cross_entropy(_steps(output, self.output_size)[:, -1], target)

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fraction of examples whose largest logit at the last step is the label."""
        return (_steps(output, self.output_size)[:, -1].argmax(-1) == target).float().mean()


# Note [drawing device]
# ~~~~~~~~~~~~~~~~~~~~~
# A batch is drawn where its generator lives and then moved to ``device``: train() seeds a
# generator on the model's device, so on a GPU the draws happen there and no batch is copied
# from the host at every step; with no generator, on ``device`` itself. A CUDA generator
# gives other numbers than a CPU one with the same seed, so a GPU run sees other batches than
# a CPU run; evaluate() draws its held-out batch on the CPU, the same sequences everywhere.
def _sampling(
    batch_size: object, generator: torch.Generator | None, device: object
) -> tuple[torch.device, torch.device]:
    """Check ``sample``'s arguments; the batch's device and the device it is drawn on."""
    _checks.positive_int(batch_size, "batch_size")
    device = _checks.device(device)
    return device, (device if generator is None else generator.device)


def _distinct(
    batch_size: object, count: int, unit: str, generator: torch.Generator | None, device: object, where: torch.device
) -> tuple[torch.device, torch.Tensor]:
    """Check ``sample``'s arguments and draw ``batch_size`` distinct indices below ``count``
    (Note [drawing device]), moved to ``where`` the data live; the batch's device and them."""
    device, on = _sampling(batch_size, generator, device)
    if batch_size > count:
        raise ValueError(f"batch_size must be at most the {count} {unit}, got {batch_size}")
    return device, torch.randperm(count, generator=generator, device=on)[:batch_size].to(where)


class LanguageModelTask:
    """Next-token prediction on a token stream (the Penn Treebank's characters) as a :class:`Task`.

    The stream is cut into ``len(self)`` disjoint windows of ``T + 1`` tokens (window i
    starts at token i·T, so consecutive windows share one token). A model reads the first T
    tokens of a window as one-hot vectors and predicts, at every step t, token t + 1. Each
    batch is ``batch_size`` distinct windows drawn at random by the caller's generator, so
    ``evaluate(model, task, batch_size=len(task))`` scores the whole stream once (each
    window from a zero state: no state is carried from one window to the next). The loss is
    the mean cross-entropy over every step, in nats per token
    (:func:`orthobook.ptb.nats_to_bits` turns it into bits per character); the accuracy the
    fraction of next tokens whose largest logit is right; the baseline the entropy of the
    stream's own token frequencies, the loss of predicting them at every step.

    Args:
        stream: (n,) int64 token indices, ``n ≥ T + 1``, e.g. ``load_ptb(level="char").train``.
        T: tokens read per window, ≥ 1.
        vocab_size: the number of tokens, ``input_size`` and ``output_size``; default
            ``max(stream) + 1``. Pass it (``len(corpus.vocab)``) so that the tasks of the
            three splits agree.

    Raises:
        TypeError: ``stream`` is not an int64 tensor.
        ValueError: ``stream`` is not 1-D, holds fewer than ``T + 1`` tokens, or tokens outside
            ``0..vocab_size − 1``.

    Example:
        >>> task = LanguageModelTask(torch.arange(21) % 5, T=4)
        >>> x, y = task.sample(2, torch.Generator().manual_seed(0))
        >>> len(task), x.shape, y.shape, task.output_size
        (5, torch.Size([2, 4, 5]), torch.Size([2, 4]), 5)
        >>> bool((x.argmax(-1)[:, 1:] == y[:, :-1]).all())  # the target is the next input
        True
    """

    def __init__(self, stream: torch.Tensor, T: int, vocab_size: int | None = None) -> None:
        _checks.positive_int(T, "T")
        stream = _labels(stream, "stream")
        if stream.numel() < T + 1:
            raise ValueError(f"stream must hold at least T + 1 = {T + 1} tokens, got {stream.numel()}")
        self.stream = stream
        self.T = T
        self._vocab_size = _num_classes(stream, vocab_size, "stream")
        self._baseline = _label_entropy(stream, self._vocab_size)

    def __len__(self) -> int:
        return (self.stream.numel() - 1) // self.T

    @property
    def input_size(self) -> int:
        return self._vocab_size

    @property
    def output_size(self) -> int:
        return self._vocab_size

    @property
    def baseline(self) -> float:
        """Entropy of the stream's token frequencies, in nats per token."""
        return self._baseline

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, device: str | torch.device = "cpu"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Draw ``batch_size ≤ len(self)`` distinct windows and move them to ``device``.

        The window indices are drawn from ``generator`` on its device (Note [drawing
        device]); the windows are cut where the stream lives.

        Returns:
            ``x``: (batch, T, vocab_size) float32 one-hot; ``y``: (batch, T) int64 next tokens.

        Raises:
            TypeError, ValueError: ``batch_size`` is not an int in ``1..len(self)``, or
                ``device`` is not a device this machine has.
        """
        device, starts = _distinct(batch_size, len(self), "windows", generator, device, self.stream.device)
        windows = self.stream[starts.unsqueeze(1) * self.T + torch.arange(self.T + 1, device=starts.device)]
        x = F.one_hot(windows[:, :-1], self._vocab_size).float()
        return x.to(device), windows[:, 1:].to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over every step, nats per token; ``output``: (batch, T, vocab) logits."""
        return F.cross_entropy(_steps(output, self.output_size).flatten(0, 1), target.flatten())

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fraction of steps whose largest logit is the next token."""
        return (_steps(output, self.output_size).argmax(-1) == target).float().mean()
