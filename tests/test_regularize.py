"""Tests for orthobook.regularize: L2 penalties centred at the identity or at zero, and the
gradients they give a residual-identity (``W = U + I``) and a plain (``W``) recurrence
(Book: Eq. (rin-prior), Eq. (rin-decay-gradient))."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.models import ElmanRNN, rin
from orthobook.recurrent import Plain, ResidualIdentity
from orthobook.regularize import RecurrentL2, l2_to_centre

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
    assert torch.allclose(l2_to_centre(W, "identity"), l2_to_centre(U, "zero"), rtol=tol(F64, n * n), atol=0)
    assert l2_to_centre(W, "identity") >= 0


def test_l2_to_centre_gradient_is_W_minus_C():
    W = torch.randn(4, 4, dtype=F64, generator=gen(1), requires_grad=True)
    (g,) = torch.autograd.grad(l2_to_centre(W, "identity"), W)
    assert torch.allclose(g, W.detach() - torch.eye(4, dtype=F64), rtol=0, atol=tol(F64, 4))
    assert torch.autograd.gradcheck(lambda A: l2_to_centre(A, "zero"), (W,))


# --- RecurrentL2: the documented gradients --------------------------------------------------------


def _rin(seed: int = 2, layers: int = 1) -> ElmanRNN:
    return rin(2, 5, 1, num_layers=layers, std=0.3, generator=gen(seed)).double()


@pytest.mark.parametrize("layers", [1, 2])
def test_gradient_on_U_of_the_two_centres(layers):
    """Identity centre: λ U (decay on U, W pulled to I). Zero centre: λ (U + I) = λ W (decay on W_hh)."""
    lam = 0.3
    model = _rin(layers=layers)
    Us = [r.U for r in model.recurrences]
    eye = torch.eye(5, dtype=F64)
    on_U = torch.autograd.grad(RecurrentL2(lam, "identity")(model), Us)
    on_W = torch.autograd.grad(RecurrentL2(lam, "zero")(model), Us)
    for U, g_U, g_W in zip(Us, on_U, on_W):
        assert torch.allclose(g_U, lam * U.detach(), rtol=0, atol=tol(F64, 5))
        assert torch.allclose(g_W, lam * (U.detach() + eye), rtol=0, atol=tol(F64, 5))


def test_gradient_on_a_plain_W():
    lam = 0.2
    model = ElmanRNN(2, 4, 1, recurrence=Plain(4, init="orthogonal", generator=gen(3))).double()
    W = model.recurrences[0].weight
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
    decayed = optimizer([{"params": [a.recurrences[0].U], "weight_decay": lam}], lr=lr)
    penalised = optimizer([b.recurrences[0].U], lr=lr)
    a(x).square().mean().backward()
    (b(x).square().mean() + RecurrentL2(lam, "identity")(b)).backward()
    decayed.step()
    penalised.step()
    assert torch.allclose(a.recurrences[0](), b.recurrences[0](), rtol=0, atol=tol(F64, 25))


def test_zero_centre_equals_weight_decay_on_a_plain_W():
    """Decay on W_hh: the RIN with the zero-centred penalty takes the step of a Plain W with weight decay."""
    lam, lr = 0.05, 0.1
    x = torch.randn(3, 6, 2, dtype=F64, generator=gen(5))
    residual = _rin()
    plain = ElmanRNN(2, 5, 1, recurrence=Plain(5), nonlinearity="relu").double()
    with torch.no_grad():
        plain.recurrences[0].weight.copy_(residual.recurrences[0]())
    plain.rnn.load_state_dict(residual.rnn.state_dict())
    plain.readout.load_state_dict(residual.readout.state_dict())
    assert torch.equal(plain(x), residual(x))
    sgd_residual = torch.optim.SGD([residual.recurrences[0].U], lr=lr)
    sgd_plain = torch.optim.SGD([{"params": [plain.recurrences[0].weight], "weight_decay": lam}], lr=lr)
    (residual(x).square().mean() + RecurrentL2(lam, "zero")(residual)).backward()
    plain(x).square().mean().backward()
    sgd_residual.step()
    sgd_plain.step()
    assert torch.allclose(residual.recurrences[0](), plain.recurrences[0](), rtol=0, atol=tol(F64, 25))


def test_decay_alone_shrinks_U_and_keeps_W_near_I():
    """Without data, decay on U moves W = I + (1 − ηλ)^k U towards I; decay on W_hh moves it towards 0."""
    lam, lr, k = 0.5, 0.1, 20
    for centre, limit in (("identity", torch.eye(4, dtype=F64)), ("zero", torch.zeros(4, 4, dtype=F64))):
        rec = ResidualIdentity(4, std=0.3, generator=gen(6)).double()
        start = rec().detach()
        sgd = torch.optim.SGD(rec.parameters(), lr=lr)
        for _ in range(k):
            sgd.zero_grad()
            (lam * l2_to_centre(rec(), centre)).backward()
            sgd.step()
        expected = limit + (1 - lr * lam) ** k * (start - limit)
        assert torch.allclose(rec().detach(), expected, rtol=0, atol=tol(F64, 4 * k))


def test_penalty_value_and_repr():
    model = rin(1, 4, 1, num_layers=2, std=0.0)
    assert RecurrentL2(0.1, "zero")(model).item() == pytest.approx(0.1 * 2 * 2.0)
    assert RecurrentL2(0.1)(model).item() == 0.0
    assert "centre='zero'" in repr(RecurrentL2(0.1, "zero"))


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
