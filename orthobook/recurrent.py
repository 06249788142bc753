"""Recurrent-matrix modules: each builds the hidden-to-hidden matrix ``W`` of an RNN.

A recurrence is an :class:`torch.nn.Module` whose ``forward()`` takes no input and
returns ``W`` of shape (hidden_size, hidden_size) for the ``h_t = f(W h_{t-1} + V x_t + b)``
convention (Book: Eq. (gp-recurrence)). A model calls it **once per forward pass** and hands
the matrix to the fused RNN kernel, so a constrained recurrence costs only the
construction of ``W``.
"""

from __future__ import annotations

import torch
from torch import nn

from orthobook import _checks
from orthobook import init as _init

__all__ = ["Recurrence", "Plain", "margin_singular_values"]

_PLAIN_INITS = ("glorot", "orthogonal", "identity")


class Recurrence(nn.Module):
    """Base class of recurrent-matrix modules.

    Subclasses set ``hidden_size`` and implement ``forward() -> W`` with ``W: (n, n)``.
    """

    hidden_size: int

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}"


class Plain(Recurrence):
    """An unconstrained recurrent matrix ``W``, itself the parameter.

    Args:
        hidden_size: n.
        init: ``"glorot"``, ``"orthogonal"`` (Haar ``λQ``), ``"identity"`` (``λI``), or an
            (n, n) tensor to start from.
        scale: λ for the orthogonal and identity initialisations.
        generator: optional generator for a reproducible initial draw.

    Example:
        >>> W = Plain(4, init="identity")()
        >>> W.shape
        torch.Size([4, 4])
    """

    def __init__(
        self,
        hidden_size: int,
        init: str | torch.Tensor = "glorot",
        scale: float = 1.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.weight = nn.Parameter(_initial_matrix(hidden_size, init, scale, generator))

    def forward(self) -> torch.Tensor:
        return self.weight


def _initial_matrix(
    n: int, init: str | torch.Tensor, scale: float, generator: torch.Generator | None
) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        W = _checks.square(init, "init")
        if W.shape[0] != n:
            raise ValueError(f"init must have shape ({n}, {n}), got {tuple(W.shape)}")
        return W.detach().clone().float()
    _checks.one_of(init, "init", _PLAIN_INITS)
    if init == "glorot":
        return _init.glorot(n, generator=generator)
    if init == "orthogonal":
        return _init.orthogonal(n, scale, generator=generator)
    return _init.identity(n, scale)


def margin_singular_values(p: torch.Tensor, margin: float) -> torch.Tensor:
    """Map free parameters ``p`` to singular values inside the margin.

    ``s = 2 m (σ(p) − ½) + 1``, so ``s ∈ (1 − m, 1 + m)`` for every real ``p``, and
    ``p = 0`` gives ``s = 1`` (Book: Eq. (sm-margin); Vorontsov et al. 2017).
    ``m = 0`` is hard orthogonality: every singular value is exactly 1.

    Args:
        p: (..., n) real parameters.
        margin: m ≥ 0.

    Returns:
        ``s``: same shape as ``p``.

    Raises:
        ValueError: ``margin`` is negative.
    """
    _checks.floating(p, "p")
    m = _checks.non_negative_float(margin, "margin")
    return 2.0 * m * (torch.sigmoid(p) - 0.5) + 1.0
