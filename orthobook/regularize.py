"""L2 penalties on recurrent matrices, centred at the identity or at zero.

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

__all__ = ["CENTRES", "l2_to_centre", "RecurrentL2"]

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
    :func:`~orthobook.train.train` takes it as ``penalty=``. For a
    :class:`~orthobook.recurrent.ResidualIdentity` layer its gradient with respect to ``U`` is
    (Book: Eq. (rin-decay-gradient))

    - ``centre="identity"``: ``λ U = λ (W − I)``, weight decay *on U*: the same step as an
      optimizer's ``weight_decay=λ`` on the parameter ``U`` (SGD, Adam), pulling ``W`` to ``I``;
    - ``centre="zero"``: ``λ (U + I) = λ W``, weight decay *on W_hh*, pulling ``W`` to ``0``,
      the same step as ``weight_decay=λ`` on a :class:`~orthobook.recurrent.Plain` ``W``.

    Args:
        weight: λ ≥ 0.
        centre: ``"identity"`` or ``"zero"``.

    Raises:
        TypeError: ``weight`` is not a real number, or the model has no ``recurrent_matrices``.
        ValueError: ``weight < 0`` or ``centre`` is unknown.

    Example:
        >>> from orthobook.models import rin
        >>> float(RecurrentL2(0.1, "zero")(rin(1, 4, 1, std=0.0)))
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
