"""Tests for orthobook.regularize: L2 penalties centred at the identity or at zero, and the
gradients they give a residual-identity (``W = U + I``) and a plain (``W``) recurrence
(Book: Eq. (rin-prior), Eq. (rin-decay-gradient))."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.init import orthogonal
from orthobook.models import ElmanRNN, rin
from orthobook.parametrizations import residual_identity
from orthobook.regularize import RecurrentL2, l2_to_centre, singular_value_prior, soft_orthogonality_penalty

F64 = torch.float64


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- l2_to_centre --------------------------------------------------------------------------------


@pytest.mark.parametrize("centre", ["identity", "zero"])
def test_l2_to_centre_matches_a_naive_sum(centre):
    W = torch.randn(3, 5, 5, dtype=F64, generator=gen(0))
    naive = torch.zeros(3, dtype=F64)
    for b in range(3):
        for i in range(5):
            for j in range(5):
                c = 1.0 if centre == "identity" and i == j else 0.0
                naive[b] += 0.5 * (W[b, i, j] - c) ** 2
    value = l2_to_centre(W, centre)
    assert value.shape == (3,)
    assert torch.allclose(value, naive, rtol=tol(F64, 25), atol=0)
    assert l2_to_centre(W[0], centre).shape == ()


def test_l2_to_centre_of_the_identity():
    assert l2_to_centre(torch.eye(4), "identity").item() == 0.0
    assert l2_to_centre(torch.eye(4), "zero").item() == 2.0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 8), seed=st.integers(0, 2**16))
def test_identity_centre_is_the_zero_centre_of_the_residual(n, seed):
    """½‖W − I‖² = ½‖U‖² for W = U + I: the prior on W centred at I is the prior on U centred at 0."""
    U = torch.randn(n, n, dtype=F64, generator=gen(seed))
    W = U + torch.eye(n, dtype=F64)
    # W − I rounds each entry of U by eps·|W_ij|: the squares differ by at most 2 eps ‖U‖ ‖W‖.
    bound = tol(F64, n * n) * torch.linalg.matrix_norm(U) * torch.linalg.matrix_norm(W)
    assert torch.allclose(l2_to_centre(W, "identity"), l2_to_centre(U, "zero"), rtol=tol(F64, n * n), atol=float(bound))
    assert l2_to_centre(W, "identity") >= 0


def test_l2_to_centre_gradient_is_W_minus_C():
    W = torch.randn(4, 4, dtype=F64, generator=gen(1), requires_grad=True)
    (g,) = torch.autograd.grad(l2_to_centre(W, "identity"), W)
    assert torch.allclose(g, W.detach() - torch.eye(4, dtype=F64), rtol=0, atol=tol(F64, 4))
    assert torch.autograd.gradcheck(lambda A: l2_to_centre(A, "zero"), (W,))


# --- RecurrentL2: the documented gradients --------------------------------------------------------


def _rin(seed: int = 2, layers: int = 1) -> ElmanRNN:
    return rin(2, 5, 1, num_layers=layers, std=0.3, generator=gen(seed), dtype=F64)


def _U(model: ElmanRNN, layer: int = 0) -> torch.Tensor:
    """The learned residual ``U`` of a RIN layer (the parametrization's original)."""
    return model.rnn.parametrizations[f"weight_hh_l{layer}"].original


@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_on_U_of_the_two_centres(layers):
    """Identity centre: λ U (decay on U, W pulled to I). Zero centre: λ (U + I) = λ W (decay on W_hh)."""
    lam = 0.3
    model = _rin(layers=layers)
    Us = [_U(model, layer) for layer in range(layers)]
    eye = torch.eye(5, dtype=F64)
    on_U = torch.autograd.grad(RecurrentL2(lam, "identity")(model), Us)
    on_W = torch.autograd.grad(RecurrentL2(lam, "zero")(model), Us)
    for U, g_U, g_W in zip(Us, on_U, on_W):
        assert torch.allclose(g_U, lam * U.detach(), rtol=0, atol=tol(F64, 5))
        assert torch.allclose(g_W, lam * (U.detach() + eye), rtol=0, atol=tol(F64, 5))


def test_gradient_on_a_plain_W():
    lam = 0.2
    model = ElmanRNN(2, 4, 1, recurrent_init="orthogonal", generator=gen(3), dtype=F64)
    W = model.rnn.weight_hh_l0
    (to_I,) = torch.autograd.grad(RecurrentL2(lam, "identity")(model), W)
    (to_0,) = torch.autograd.grad(RecurrentL2(lam, "zero")(model), W)
    assert torch.allclose(to_I, lam * (W.detach() - torch.eye(4, dtype=F64)), rtol=0, atol=tol(F64, 4))
    assert torch.allclose(to_0, lam * W.detach(), rtol=0, atol=tol(F64, 4))


@pytest.mark.parametrize("optimizer", [torch.optim.SGD, torch.optim.Adam])
def test_identity_centre_equals_optimizer_weight_decay_on_U(optimizer):
    """One step with weight_decay=λ on U is one step with the identity-centred penalty."""
    lam, lr = 0.05, 0.1
    x = torch.randn(3, 6, 2, dtype=F64, generator=gen(4))
    a, b = _rin(), _rin()
    b.load_state_dict(a.state_dict())
    decayed = optimizer([{"params": [_U(a)], "weight_decay": lam}], lr=lr)
    penalised = optimizer([_U(b)], lr=lr)
    a(x).square().mean().backward()
    (b(x).square().mean() + RecurrentL2(lam, "identity")(b)).backward()
    decayed.step()
    penalised.step()
    assert torch.allclose(a.recurrent_matrices()[0], b.recurrent_matrices()[0], rtol=0, atol=tol(F64, 25))


def test_zero_centre_equals_weight_decay_on_a_plain_W():
    """Decay on W_hh: the RIN with the zero-centred penalty takes the step of a free W with weight decay."""
    lam, lr = 0.05, 0.1
    x = torch.randn(3, 6, 2, dtype=F64, generator=gen(5))
    residual = _rin()
    plain = ElmanRNN(2, 5, 1, nonlinearity="relu", recurrent_init=residual.recurrent_matrices()[0], dtype=F64)
    with torch.no_grad():
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(plain.rnn, name).copy_(getattr(residual.rnn, name))
    plain.readout.load_state_dict(residual.readout.state_dict())
    assert torch.equal(plain(x), residual(x))
    sgd_residual = torch.optim.SGD([_U(residual)], lr=lr)
    sgd_plain = torch.optim.SGD([{"params": [plain.rnn.weight_hh_l0], "weight_decay": lam}], lr=lr)
    (residual(x).square().mean() + RecurrentL2(lam, "zero")(residual)).backward()
    plain(x).square().mean().backward()
    sgd_residual.step()
    sgd_plain.step()
    assert torch.allclose(residual.recurrent_matrices()[0], plain.recurrent_matrices()[0], rtol=0, atol=tol(F64, 25))


def test_decay_alone_shrinks_U_and_keeps_W_near_I():
    """Without data, decay on U moves W = I + (1 − ηλ)^k U towards I; decay on W_hh moves it towards 0."""
    lam, lr, k = 0.5, 0.1, 20
    for centre, limit in (("identity", torch.eye(4, dtype=F64)), ("zero", torch.zeros(4, 4, dtype=F64))):
        layer = residual_identity(torch.nn.Linear(4, 4, dtype=F64), std=0.3, generator=gen(6))
        start = layer.weight.detach()
        sgd = torch.optim.SGD([layer.parametrizations.weight.original], lr=lr)
        for _ in range(k):
            sgd.zero_grad()
            (lam * l2_to_centre(layer.weight, centre)).backward()
            sgd.step()
        expected = limit + (1 - lr * lam) ** k * (start - limit)
        assert torch.allclose(layer.weight.detach(), expected, rtol=0, atol=tol(F64, 4 * k))


def test_penalty_value_and_repr():
    model = rin(1, 4, 1, num_layers=2, std=0.0)
    assert RecurrentL2(0.1, "zero")(model).item() == pytest.approx(0.1 * 2 * 2.0)
    assert RecurrentL2(0.1)(model).item() == 0.0
    assert "centre='zero'" in repr(RecurrentL2(0.1, "zero"))


# --- soft constraints (Vorontsov et al. 2017) ------------------------------------------------------


def test_soft_orthogonality_penalty_oracle():
    """Book: Eq. (soft-orthogonality): ‖WᵀW − I‖²_F = Σ (σ² − 1)² for square W; 0 on O(n)."""
    W = torch.randn(3, 5, 5, generator=gen(0), dtype=F64)
    sigma = torch.linalg.svdvals(W)
    expected = (sigma.square() - 1).square().sum(-1)
    assert torch.allclose(soft_orthogonality_penalty(W), expected, rtol=tol(F64, 5))
    assert soft_orthogonality_penalty(orthogonal(6, dtype=F64)) <= tol(F64, 6) ** 2 * 36
    tall = torch.randn(6, 2, generator=gen(1), dtype=F64)
    naive = sum((tall[:, i] @ tall[:, j] - float(i == j)) ** 2 for i in range(2) for j in range(2))
    assert torch.isclose(soft_orthogonality_penalty(tall), naive)


def test_singular_value_prior_oracle():
    """Book: Eq. (sv-prior): Σ (s − 1)² / (2 std²)."""
    s = torch.tensor([[0.5, 1.0, 2.0], [1.0, 1.0, 1.0]], dtype=F64)
    expected = torch.tensor([(0.25 + 0.0 + 1.0) / (2 * 0.04), 0.0], dtype=F64)
    assert torch.allclose(singular_value_prior(s, 0.2), expected, rtol=tol(F64, 3))


def test_gradcheck_of_the_penalties():
    W = torch.randn(4, 3, generator=gen(0), dtype=F64, requires_grad=True)
    s = torch.randn(5, generator=gen(1), dtype=F64, requires_grad=True)
    assert torch.autograd.gradcheck(soft_orthogonality_penalty, (W,))
    assert torch.autograd.gradcheck(lambda s: singular_value_prior(s, 0.3), (s,))


def test_bad_penalty_arguments():
    with pytest.raises(ValueError, match=r"W must have shape \(\.\.\., n, k\)"):
        soft_orthogonality_penalty(torch.ones(3))
    with pytest.raises(TypeError, match="W must be a floating-point tensor"):
        soft_orthogonality_penalty(torch.eye(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="std must be positive and finite"):
        singular_value_prior(torch.ones(3), 0.0)
    with pytest.raises(TypeError, match="std must be a real number"):
        singular_value_prior(torch.ones(3), None)
    with pytest.raises(ValueError, match="s must have shape"):
        singular_value_prior(torch.tensor(1.0), 1.0)


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda: l2_to_centre(torch.zeros(3, 4)), ValueError, r"W must have shape \(\.\.\., n, n\)"),
        (lambda: l2_to_centre(torch.zeros(3)), ValueError, r"W must have shape \(\.\.\., n, n\)"),
        (lambda: l2_to_centre(torch.zeros(3, 3, dtype=torch.long)), TypeError, "W must be a floating-point tensor"),
        (lambda: l2_to_centre([[1.0]]), TypeError, "W must be a torch.Tensor"),
        (lambda: l2_to_centre(torch.eye(3), "one"), ValueError, "centre must be one of 'identity', 'zero'"),
        (lambda: RecurrentL2(-1.0), ValueError, "weight must be non-negative"),
        (lambda: RecurrentL2("big"), TypeError, "weight must be a real number"),
        (lambda: RecurrentL2(0.1, "I"), ValueError, "centre must be one of"),
        (lambda: RecurrentL2(0.1)(torch.nn.Linear(2, 2)), TypeError, "model must have a recurrent_matrices"),
    ],
)
def test_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
