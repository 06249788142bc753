"""Tests of orthobook.gradients against the book's BPTT equations, in float64."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.gradients import (
    hidden_gradient_norms,
    jacobian_product,
    jacobian_singular_values,
    linear_gradient_norms,
)
from orthobook.models import LSTM, NONLINEARITIES, ElmanRNN, derivative
from orthobook.init import orthogonal

DTYPE = torch.float64
EPS = torch.finfo(DTYPE).eps


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _orthogonal(n: int, seed: int) -> torch.Tensor:
    Q, R = torch.linalg.qr(torch.randn(n, n, dtype=DTYPE, generator=_gen(seed)))
    return Q * torch.sign(torch.diagonal(R))


def _naive_run(W, h0, drives, nonlinearity):
    """h_k = f(W h_{k-1} + u_k) one step at a time; returns h_s and the pre-activations."""
    f = NONLINEARITIES[nonlinearity]
    h, preactivations = h0, []
    for u in drives:
        a = W @ h + u
        preactivations.append(a)
        h = f(a)
    return h, torch.stack(preactivations)


# jacobian_product (Book: Eq. (gp-product)) ---------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", sorted(NONLINEARITIES))
@pytest.mark.parametrize("k", [1, 2, 7])
def test_jacobian_product_equals_autograd(nonlinearity, k):
    """Book: Eq. (gp-product): ∂h_s/∂h_t = D_s W ⋯ D_{t+1} W equals autograd's Jacobian."""
    n = 5
    W = 1.1 * _orthogonal(n, 0)
    h_t = torch.randn(n, dtype=DTYPE, generator=_gen(1))
    drives = torch.randn(k, n, dtype=DTYPE, generator=_gen(2))
    _, a = _naive_run(W, h_t, drives, nonlinearity)
    expected = torch.autograd.functional.jacobian(lambda h: _naive_run(W, h, drives, nonlinearity)[0], h_t)
    result = jacobian_product(W, a, nonlinearity)
    assert result.shape == (n, n) and result.dtype == DTYPE
    scale = max(1.0, expected.abs().max().item())
    torch.testing.assert_close(result, expected, rtol=0, atol=10 * n * k * EPS * scale)


def test_jacobian_product_one_step_is_D_W():
    """Book: Eq. (gp-jacobian): one factor is diag(f'(a)) W."""
    W = torch.randn(4, 4, dtype=DTYPE, generator=_gen(3))
    a = torch.randn(1, 4, dtype=DTYPE, generator=_gen(4))
    expected = torch.diag(derivative("tanh", a[0])) @ W
    torch.testing.assert_close(jacobian_product(W, a, "tanh"), expected, rtol=0, atol=10 * 4 * EPS)


def test_jacobian_product_empty_is_identity():
    W = torch.randn(3, 3, dtype=DTYPE)
    assert torch.equal(jacobian_product(W, torch.zeros(0, 3, dtype=DTYPE), "tanh"), torch.eye(3, dtype=DTYPE))


def test_jacobian_singular_values_are_svdvals():
    W = torch.randn(4, 4, dtype=DTYPE, generator=_gen(5))
    a = torch.randn(6, 4, dtype=DTYPE, generator=_gen(6))
    s = jacobian_singular_values(W, a, "tanh")
    J = jacobian_product(W, a, "tanh")
    assert torch.all(s[:-1] >= s[1:]), "largest first"
    torch.testing.assert_close(s, torch.linalg.svdvals(J), rtol=0, atol=10 * 4 * EPS * s[0].item())


# hidden_gradient_norms (Book: Eq. (gp-bptt)) --------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_hidden_gradient_norms_follow_bptt(nonlinearity, num_layers):
    """Book: Eq. (gp-bptt): ∂L/∂h_t = ∂ℓ_t/∂h_t + (D_{t+1} W)ᵀ ∂L/∂h_{t+1}, with D_{t+1} W from
    jacobian_product, for a loss L = Σ_t ⟨C_t, R h_t + c⟩ read at every step (so ∂ℓ_t/∂h_t = Rᵀ C_t)."""
    batch, T, n = 3, 8, 5
    model = ElmanRNN(2, n, 2, nonlinearity=nonlinearity, num_layers=num_layers, generator=_gen(0), dtype=DTYPE)
    x = torch.randn(batch, T, 2, dtype=DTYPE, generator=_gen(1))
    C = torch.randn(batch, T, 2, dtype=DTYPE, generator=_gen(2))
    norms = hidden_gradient_norms(model, x, lambda output: (output * C).sum())

    W = model.recurrent_matrices()[-1].detach()
    R = model.readout.weight.detach()
    a = torch.stack(model.unrolled(x).preactivations, 1).detach()  # (batch, T, n), top layer
    expected = torch.zeros(T, dtype=DTYPE)
    for b in range(batch):
        g = C[b, T - 1] @ R
        expected[T - 1] += g.norm() / batch
        for t in range(T - 2, -1, -1):
            g = C[b, t] @ R + jacobian_product(W, a[b, t + 1 : t + 2], nonlinearity).T @ g
            expected[t] += g.norm() / batch
    assert norms.shape == (T,) and not norms.requires_grad
    torch.testing.assert_close(norms, expected, rtol=0, atol=10 * n * T * EPS * expected.max().item())


def test_hidden_gradient_norms_last_step_loss_uses_product():
    """Book: Eq. (gp-product) with a loss at T only: ∂L/∂h_t = (∂h_T/∂h_t)ᵀ ∂L/∂h_T."""
    T, n = 10, 4
    model = ElmanRNN(3, n, 1, nonlinearity="tanh", generator=_gen(1), dtype=DTYPE)
    x = torch.randn(1, T, 3, dtype=DTYPE, generator=_gen(3))
    norms = hidden_gradient_norms(model, x, lambda output: output[:, -1].sum())
    W = model.recurrent_matrices()[0].detach()
    a = torch.stack(model.unrolled(x).preactivations)[:, 0].detach()
    g_T = model.readout.weight.detach()[0]
    expected = torch.stack([(jacobian_product(W, a[t + 1 :], "tanh").T @ g_T).norm() for t in range(T)])
    torch.testing.assert_close(norms, expected, rtol=0, atol=10 * n * T * EPS * expected.max().item())


def test_hidden_gradient_norms_rejects_other_models():
    with pytest.raises(TypeError, match="model must be an orthobook.models.ElmanRNN, got LSTM"):
        hidden_gradient_norms(LSTM(2, 4, 1), torch.zeros(1, 3, 2), lambda output: output.sum())


# The bound (Book: Eq. (gp-bound)) ----------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    scale=st.floats(0.2, 3.0),
    k=st.integers(1, 12),
    nonlinearity=st.sampled_from(["tanh", "relu", "elu", "identity"]),
    seed=st.integers(0, 2**16),
)
def test_jacobian_norm_bound(scale, k, nonlinearity, seed):
    """Book: Eq. (gp-bound): σ_max(∂h_s/∂h_t) ≤ ∏_k max|f'(a_k)| · σ_max(W)^k."""
    n = 6
    W = scale * torch.randn(n, n, dtype=DTYPE, generator=_gen(seed)) / math.sqrt(n)
    drives = torch.randn(k, n, dtype=DTYPE, generator=_gen(seed + 1))
    h0 = torch.randn(n, dtype=DTYPE, generator=_gen(seed + 2))
    _, a = _naive_run(W, h0, drives, nonlinearity)
    sigma_max = jacobian_singular_values(W, a, nonlinearity)[0]
    gains = torch.stack([derivative(nonlinearity, a_k).abs().max() for a_k in a])
    bound = gains.prod() * torch.linalg.matrix_norm(W, 2) ** k
    assert sigma_max <= bound * (1 + 10 * n * k * EPS)


def test_jacobian_norm_bound_is_tight_for_orthogonal_identity():
    """Book: Eq. (gp-bound) holds with equality for orthogonal W and f the identity."""
    W = _orthogonal(5, 7)
    s = jacobian_singular_values(W, torch.randn(9, 5, dtype=DTYPE), "identity")
    torch.testing.assert_close(s, torch.ones(5, dtype=DTYPE), rtol=0, atol=10 * 5 * 9 * EPS)


# linear_gradient_norms (Book: Eq. (gp-linear)) -----------------------------------------------------


@pytest.mark.parametrize("lam", [0.9, 1.0, 1.1])
def test_linear_gradient_norms_scaled_orthogonal(lam):
    """Book: Eq. (gp-linear): for W = λQ, ‖(Wᵀ)^k g‖ = λ^k ‖g‖ exactly."""
    n, lags = 6, 30
    W = lam * _orthogonal(n, 0)
    g = torch.randn(n, dtype=DTYPE, generator=_gen(1))
    g = g / g.norm()
    norms = linear_gradient_norms(W, g, lags)
    expected = lam ** torch.arange(lags, dtype=DTYPE)
    assert norms.shape == (lags,)
    torch.testing.assert_close(norms, expected, rtol=10 * n * lags * EPS, atol=0)


def test_linear_gradient_norms_matrix_power_oracle():
    """Book: Eq. (gp-linear) against explicit matrix powers, for a batched g (mean of norms)."""
    n, lags = 5, 8
    W = torch.randn(n, n, dtype=DTYPE, generator=_gen(2)) / math.sqrt(n)
    g = torch.randn(3, n, dtype=DTYPE, generator=_gen(3))
    expected = torch.stack(
        [torch.stack([(torch.linalg.matrix_power(W.T, k) @ g_b).norm() for g_b in g]).mean() for k in range(lags)]
    )
    norms = linear_gradient_norms(W, g, lags)
    torch.testing.assert_close(norms, expected, rtol=10 * n * lags * EPS, atol=0)


def test_linear_gradient_norms_equal_identity_rnn_autograd():
    """The linear network's backward pass (ElmanRNN with f = identity) gives the same norms."""
    T, n = 12, 4
    W0 = 1.05 * orthogonal(n, generator=_gen(4), dtype=DTYPE)
    model = ElmanRNN(2, n, 1, nonlinearity="identity", recurrent_init=W0, generator=_gen(4), dtype=DTYPE)
    x = torch.randn(1, T, 2, dtype=DTYPE, generator=_gen(5))
    norms = hidden_gradient_norms(model, x, lambda output: output[:, -1].sum())
    W = model.recurrent_matrices()[0].detach()
    g_T = model.readout.weight.detach()[0]
    expected = linear_gradient_norms(W, g_T, T).flip(0)
    torch.testing.assert_close(norms, expected, rtol=10 * n * T * EPS, atol=0)


# Errors -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: jacobian_product(torch.zeros(3, 4), torch.zeros(2, 3), "tanh"), ValueError, "W must be a square matrix"),
        (lambda: jacobian_product(torch.zeros(3, 3, dtype=torch.long), torch.zeros(2, 3), "tanh"), TypeError, "W must be a floating-point"),
        (lambda: jacobian_product(torch.eye(3), torch.zeros(2, 4), "tanh"), ValueError, r"preactivations must have shape \(k, 3\)"),
        (lambda: jacobian_product(torch.eye(3), torch.zeros(3), "tanh"), ValueError, "preactivations must have shape"),
        (lambda: jacobian_product(torch.eye(3), torch.zeros(2, 3), "softsign"), ValueError, "nonlinearity must be one of"),
        (lambda: linear_gradient_norms(torch.eye(3), torch.ones(4), 5), ValueError, "g must end in dimension 3"),
        (lambda: linear_gradient_norms(torch.eye(3), torch.ones(3), 0), ValueError, "lags must be a positive int"),
        (lambda: linear_gradient_norms(torch.eye(3), [1.0, 1.0, 1.0], 2), TypeError, "g must be a torch.Tensor"),
        (lambda: jacobian_singular_values("W", torch.zeros(2, 3), "tanh"), TypeError, "W must be a torch.Tensor"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_jacobian_product_checks_the_nonlinearity_even_for_zero_steps():
    W = torch.eye(3, dtype=torch.float64)
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        jacobian_product(W, torch.zeros(0, 3, dtype=torch.float64), "bogus")


def test_diagnostics_stay_on_the_device_of_their_inputs() -> None:
    """Shape-only run on the meta device: nothing is created on the CPU beside a device W."""
    W, a = torch.eye(4, device="meta"), torch.ones(3, 4, device="meta")
    J = jacobian_product(W, a, "tanh")
    assert J.device.type == "meta" and J.shape == (4, 4)
    norms = linear_gradient_norms(W, torch.ones(2, 4, device="meta"), 5)
    assert norms.device.type == "meta" and norms.shape == (5,)
    model = ElmanRNN(1, 4, 1, nonlinearity="elu").to("meta")
    hidden = hidden_gradient_norms(model, torch.ones(2, 6, 1, device="meta"), lambda y: y.sum())
    assert hidden.device.type == "meta" and hidden.shape == (6,)
