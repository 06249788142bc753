"""Synthetic long-memory tasks (copy memory, adding problem) and their memoryless baselines.

A task is a small object that samples batches on any device from a given generator and
knows its loss, its accuracy (where it has one) and the loss of the best strategy that
remembers nothing (the *baseline*: a model that does not beat it has learned nothing).
The exact definitions are on the book's page "Data and tasks".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from orthobook import _checks

__all__ = ["CopyTask", "AddingTask", "copy_baseline", "adding_baseline"]

_COPY_LAYOUTS = ("scalar", "onehot")
_ADDING_TARGETS = ("sum", "mean")


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
    readout = "all"  # the loss reads every step

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
        """Draw a batch.

        Returns:
            ``x``: (batch, seq_len, input_size) float32; ``y``: (batch, seq_len) int64 symbol codes.
        """
        _checks.positive_int(batch_size, "batch_size")
        data = torch.randint(1, self.n_symbols + 1, (batch_size, self.n_copy), generator=generator)
        codes = torch.zeros(batch_size, self.seq_len, dtype=torch.long)
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
        """Mean cross-entropy per step; ``output``: (batch, seq_len, output_size) logits."""
        return F.cross_entropy(output.flatten(0, 1), target.flatten())

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Fraction of the ``n_copy`` recalled symbols that are right."""
        recall = output[:, -self.n_copy :].argmax(-1)
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
    readout = "last"  # the loss reads the last step only

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
        """Draw a batch.

        Returns:
            ``x``: (batch, seq_len, 2) float32; ``y``: (batch, 1) float32.
        """
        _checks.positive_int(batch_size, "batch_size")
        half = self.seq_len // 2
        values = torch.rand(batch_size, self.seq_len, generator=generator)
        first = torch.randint(0, half, (batch_size,), generator=generator)
        second = torch.randint(half, self.seq_len, (batch_size,), generator=generator)
        marks = torch.zeros(batch_size, self.seq_len)
        rows = torch.arange(batch_size)
        marks[rows, first] = 1.0
        marks[rows, second] = 1.0
        y = (values * marks).sum(1, keepdim=True)
        if self.target == "mean":
            y = y / 2
        return torch.stack([values, marks], -1).to(device), y.to(device)

    def loss(self, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean squared error; ``output``: (batch, 1)."""
        return F.mse_loss(output, target)

    def accuracy(self, output: torch.Tensor, target: torch.Tensor) -> None:
        """The adding problem has no accuracy."""
        return None
