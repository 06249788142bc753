"""Soft constraints: penalties added to a loss instead of a parametrization.

Soft orthogonality ``‖WᵀW − I‖²_F`` and a Gaussian prior on singular values are the soft
alternatives to the hard constraints of :mod:`orthobook.parametrizations` (Vorontsov et al.
2017). The L2 penalties on recurrent matrices are centred at the identity or at zero:

Weight decay pulls a parameter towards zero; where that zero lies in the space of recurrent
matrices depends on the parametrisation. For the recurrent identity network ``W = U + I``,
decay on ``U`` pulls ``W`` towards ``I``; decay on ``W`` itself pulls it towards ``0``. Both
are the penalty ``(λ/2) ‖W − C‖²_F`` with the centre ``C = I`` or ``C = 0``, whose gradient
with respect to ``U`` is ``λ (W − C)`` (Book: Eq. (rin-prior), Eq. (rin-decay-gradient)).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from orthobook import _checks

__all__ = ["CENTRES", "l2_to_centre", "RecurrentL2", "soft_orthogonality_penalty", "singular_value_prior"]

CENTRES = ("identity", "zero")


def l2_to_centre(W: torch.Tensor, centre: str = "identity") -> torch.Tensor:
    """``½ ‖W − C‖²_F`` with ``C = I`` (``centre="identity"``) or ``C = 0`` (``"zero"``).

    The negative log-density, up to a constant, of a Gaussian prior ``W_ij ~ N(C_ij, 1)``
    (Book: Eq. (rin-prior)). Its gradient is ``W − C``.

    Args:
        W: (..., n, n) square matrices.
        centre: ``"identity"`` or ``"zero"``.

    Returns:
        (...), one value per matrix (0-dim for a single matrix).

    Raises:
        TypeError: ``W`` is not a floating-point tensor.
        ValueError: ``W`` is not (..., n, n) or ``centre`` is unknown.

    Example:
        >>> float(l2_to_centre(torch.eye(3), "identity")), float(l2_to_centre(torch.eye(3), "zero"))
        (0.0, 1.5)
    """
    W = _checks.floating(W, "W")
    if W.dim() < 2 or W.shape[-1] != W.shape[-2]:
        raise ValueError(f"W must have shape (..., n, n), got {tuple(W.shape)}")
    _checks.one_of(centre, "centre", CENTRES)
    if centre == "identity":
        W = W - torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return 0.5 * W.square().sum(dim=(-2, -1))


@dataclass(frozen=True)
class RecurrentL2:
    """The penalty ``λ Σ_l ½ ‖W_l − C‖²_F`` over every layer's recurrent matrix ``W_l``.

    Called on a model (anything with ``recurrent_matrices()``, e.g.
    :class:`~orthobook.models.ElmanRNN`) it returns a 0-dim tensor to add to the loss;
    :func:`~orthobook.train.train` takes it as its penalty. For a
    :func:`~orthobook.parametrizations.residual_identity` layer its gradient with respect to ``U`` is
    (Book: Eq. (rin-decay-gradient))

    - ``centre="identity"``: ``λ U = λ (W − I)``, weight decay *on U*: the same step as an
      optimizer's ``weight_decay=λ`` on the parameter ``U`` (SGD, Adam), pulling ``W`` to ``I``;
    - ``centre="zero"``: ``λ (U + I) = λ W``, weight decay *on W_hh*, pulling ``W`` to ``0``,
      the same step as ``weight_decay=λ`` on an unconstrained ``W``.

    Args:
        weight: λ ≥ 0.
        centre: ``"identity"`` or ``"zero"``.

    Raises:
        TypeError: ``weight`` is not a real number, or the model has no ``recurrent_matrices``.
        ValueError: ``weight < 0`` or ``centre`` is unknown.

    Example:
        >>> from orthobook.models import rin
        >>> round(RecurrentL2(0.1, "zero")(rin(1, 4, 1, std=0.0)).item(), 6)
        0.2
    """

    weight: float
    centre: str = "identity"

    def __post_init__(self) -> None:
        _checks.non_negative_float(self.weight, "weight")
        _checks.one_of(self.centre, "centre", CENTRES)

    def __call__(self, model: nn.Module) -> torch.Tensor:
        build = getattr(model, "recurrent_matrices", None)
        if not callable(build):
            raise TypeError(f"model must have a recurrent_matrices() method, got {type(model).__name__}")
        return self.weight * sum(l2_to_centre(W, self.centre) for W in build())


def soft_orthogonality_penalty(W: torch.Tensor) -> torch.Tensor:
    """The soft orthogonality constraint ``‖WᵀW − I‖²_F`` (Book: Eq. (soft-orthogonality)).

    Added to a loss with a weight λ, it pulls every singular value σ of ``W`` towards 1:
    for a square ``W`` it equals ``Σ (σ² − 1)²``.

    Args:
        W: (..., n, k).

    Returns:
        (...), one penalty per matrix (0-dim for a single matrix).

    Raises:
        TypeError: ``W`` is not a floating-point tensor.
        ValueError: ``W`` has fewer than two dimensions.
    """
    W = _checks.floating(W, "W")
    if W.dim() < 2:
        raise ValueError(f"W must have shape (..., n, k), got shape {tuple(W.shape)}")
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (W.mT @ W - eye).square().sum(dim=(-2, -1))


def singular_value_prior(s: torch.Tensor, std: float) -> torch.Tensor:
    """The Gaussian prior on singular values, ``Σᵢ (sᵢ − 1)² / (2 std²)`` (Book: Eq. (sv-prior)).

    The negative log-density (up to a constant) of ``sᵢ ~ N(1, std²)``: a soft pull of the
    singular values towards 1, the alternative to the hard margin of
    :func:`~orthobook.parametrizations.spectral_margin`.

    Args:
        s: (..., n) singular values.
        std: the prior's standard deviation, > 0.

    Returns:
        (...), summed over the last dimension.

    Raises:
        TypeError: ``s`` is not a floating-point tensor or ``std`` not a real number.
        ValueError: ``s`` is 0-dimensional or ``std`` is not positive and finite.
    """
    s = _checks.floating(s, "s")
    if s.dim() < 1:
        raise ValueError("s must have shape (..., n), got a 0-dim tensor")
    sigma = _checks.non_negative_float(std, "std")
    if not 0 < sigma < float("inf"):
        raise ValueError(f"std must be positive and finite, got {std}")
    return (s - 1.0).square().sum(dim=-1) / (2.0 * sigma**2)
