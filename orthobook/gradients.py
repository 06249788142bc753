"""Gradient diagnostics: ‖∂L/∂h_t‖ over time, Jacobian products and their singular values.

For ``h_t = f(a_t)``, ``a_t = W h_{t-1} + V x_t + b`` the one-step Jacobian is
``∂h_t/∂h_{t-1} = D_t W`` with ``D_t = diag(f'(a_t))`` (Book: Eq. (gp-jacobian)), so

    ∂L/∂h_t = Σ_{s ≥ t} (∂h_s/∂h_t)ᵀ ∂ℓ_s/∂h_s,   ∂h_s/∂h_t = D_s W D_{s-1} W ⋯ D_{t+1} W

(Book: Eq. (gp-product)). These functions compute both sides of that identity.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from orthobook import _checks
from orthobook.models import NONLINEARITIES, ElmanRNN, derivative

__all__ = ["hidden_gradient_norms", "jacobian_product", "jacobian_singular_values", "linear_gradient_norms"]


def hidden_gradient_norms(
    model: ElmanRNN,
    x: torch.Tensor,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """``‖∂L/∂h_t‖`` for every step ``t``, averaged over the batch, by autograd.

    Args:
        model: an :class:`~orthobook.models.ElmanRNN` (its top layer's states are used).
        x: (batch, T, input_size) inputs.
        loss_fn: maps the model's output to the scalar loss ``L``.

    Returns:
        (T,) tensor: entry ``t`` is the mean over the batch of ``‖∂L/∂h_{t+1}‖₂``.
    """
    if not isinstance(model, ElmanRNN):
        raise TypeError(f"model must be an orthobook.models.ElmanRNN, got {type(model).__name__}")
    trajectory = model.unrolled(x)
    loss = loss_fn(trajectory.output)
    grads = torch.autograd.grad(loss, trajectory.states)
    return torch.stack([g.norm(dim=-1).mean() for g in grads]).detach()


def jacobian_product(W: torch.Tensor, preactivations: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """``∂h_s/∂h_t = D_s W D_{s-1} W ⋯ D_{t+1} W`` for one sequence (Book: Eq. (gp-product)).

    Args:
        W: (n, n) recurrent matrix.
        preactivations: (k, n) the pre-activations ``a_{t+1} … a_s`` of one sequence (k = s − t).
        nonlinearity: name of ``f`` (see :data:`orthobook.models.NONLINEARITIES`).

    Returns:
        (n, n) the Jacobian of ``h_s`` with respect to ``h_t``.
    """
    W = _checks.square(W, "W")
    _checks.floating(preactivations, "preactivations")
    _checks.one_of(nonlinearity, "nonlinearity", tuple(NONLINEARITIES))
    if preactivations.dim() != 2 or preactivations.shape[1] != W.shape[0]:
        raise ValueError(f"preactivations must have shape (k, {W.shape[0]}), got {tuple(preactivations.shape)}")
    J = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    for a in preactivations:
        J = derivative(nonlinearity, a).unsqueeze(1) * (W @ J)
    return J


def jacobian_singular_values(W: torch.Tensor, preactivations: torch.Tensor, nonlinearity: str) -> torch.Tensor:
    """Singular values of :func:`jacobian_product`, largest first: (n,).

    Their product is bounded by ``∏_k σ_max(D_k) σ_max(W)`` (Book: Eq. (gp-bound)).
    """
    return torch.linalg.svdvals(jacobian_product(W, preactivations, nonlinearity))


def linear_gradient_norms(W: torch.Tensor, g: torch.Tensor, lags: int) -> torch.Tensor:
    """``‖(Wᵀ)^k g‖`` for ``k = 0 … lags − 1``: the backward pass of a linear RNN.

    With ``f`` the identity, ``D_t = I`` and a loss at the last step only, the gradient
    ``k`` steps back is ``(Wᵀ)^k ∂L/∂h_T`` (Book: Eq. (gp-linear)).

    Args:
        W: (n, n) recurrent matrix.
        g: (n,) or (batch, n) gradient at the last step.
        lags: number of lags.

    Returns:
        (lags,) norms (mean over the batch when ``g`` is batched).
    """
    W = _checks.square(W, "W")
    _checks.floating(g, "g")
    _checks.positive_int(lags, "lags")
    if g.shape[-1] != W.shape[0]:
        raise ValueError(f"g must end in dimension {W.shape[0]}, got shape {tuple(g.shape)}")
    norms = []
    for _ in range(lags):
        norms.append(g.norm(dim=-1).mean())
        g = g @ W
    return torch.stack(norms)
