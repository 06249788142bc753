"""Tests for the recurrent identity network: ``ResidualIdentity`` (``W = U + I``) of
orthobook.recurrent and the ``rin`` / ``irnn`` constructors of orthobook.models."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.gradients import jacobian_product
from orthobook.models import ElmanRNN, irnn, rin
from orthobook.recurrent import Plain, Recurrence, ResidualIdentity

F64 = torch.float64


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# --- W = U + I (Book: Eq. (rin-recurrence)) ------------------------------------------------------


def test_matrix_is_U_plus_identity_exactly():
    rec = ResidualIdentity(6, std=0.5, generator=gen(0))
    assert isinstance(rec, Recurrence) and rec.hidden_size == 6
    assert [name for name, _ in rec.named_parameters()] == ["U"]
    W = rec()
    naive = rec.U.detach().clone()
    for i in range(6):
        naive[i, i] += 1.0
    assert W.shape == (6, 6) and W.dtype == torch.float32
    assert torch.equal(W, naive)
    assert "std=0.5" in repr(rec)


def test_identity_is_a_constant_outside_the_state_dict():
    rec = ResidualIdentity(4, generator=gen(1))
    assert list(rec.state_dict()) == ["U"]
    other = ResidualIdentity(4, generator=gen(2))
    other.load_state_dict(rec.state_dict())
    assert torch.equal(other(), rec())
    double = rec.double()
    assert double().dtype == F64 and torch.equal(double() - double.U, torch.eye(4, dtype=F64))


def test_zero_std_starts_at_the_identity():
    assert torch.equal(ResidualIdentity(5, std=0.0)(), torch.eye(5))


def test_initial_U_has_the_requested_spread_and_is_reproducible():
    n, std = 300, 1e-3
    U = ResidualIdentity(n, std, generator=gen(3)).U.detach().double()
    # n² = 90,000 draws: the sample std is within 2 % of std (about 4.5 standard errors).
    assert U.std().item() == pytest.approx(std, rel=0.02)
    assert abs(U.mean().item()) < 5 * std / n
    assert torch.equal(ResidualIdentity(7, generator=gen(4)).U, ResidualIdentity(7, generator=gen(4)).U)


def test_gradient_with_respect_to_U_is_the_gradient_with_respect_to_W():
    """∂L/∂U = ∂L/∂W: the identity adds nothing to the gradient (Book: Eq. (rin-jacobian))."""
    rec = ResidualIdentity(4, std=0.3, generator=gen(5)).double()
    G = torch.randn(4, 4, dtype=F64, generator=gen(6))
    (rec() * G).sum().backward()
    assert torch.equal(rec.U.grad, G)
    assert torch.autograd.gradcheck(lambda U: U + rec.identity, (rec.U.detach().clone().requires_grad_(),))


# --- the ReLU cell with U = 0 (Book: Eq. (rin-identity-map)) -----------------------------------------


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_relu_step_with_zero_U_is_the_identity_on_non_negative_states(n, seed):
    W = ResidualIdentity(n, std=0.0)().double()
    h = torch.rand(5, n, dtype=F64, generator=gen(seed)) * 10
    h[:, ::2] = 0.0  # exact zeros stay zero
    assert torch.equal(torch.relu(h @ W.T), h)


def test_rin_with_zero_U_integrates_non_negative_drives():
    """With U = 0, b = 0 and V x_t ≥ 0 the state is the running sum Σ_s V x_s."""
    n, T = 6, 9
    model = rin(2, n, 1, std=0.0).double()
    V = torch.rand(n, 2, dtype=F64, generator=gen(7))
    with torch.no_grad():
        model.rnn.weight_ih_l0.copy_(V)
    x = torch.rand(3, T, 2, dtype=F64, generator=gen(8))
    states = torch.stack(model.unrolled(x).states, 1)
    expected = torch.cumsum(x @ V.T, dim=1)
    assert torch.allclose(states, expected, rtol=tol(F64, T), atol=0)
    assert torch.allclose(model(x), model.readout(expected[:, -1]), rtol=tol(F64, n), atol=tol(F64, n))


def test_one_step_jacobian_is_D_times_U_plus_I():
    """∂h_t/∂h_{t-1} = D_t (U + I) against autograd in float64 (Book: Eq. (rin-jacobian))."""
    n = 5
    rec = ResidualIdentity(n, std=0.4, generator=gen(9)).double()
    W = rec().detach()
    drive = torch.randn(n, dtype=F64, generator=gen(10))
    h = torch.randn(n, dtype=F64, generator=gen(11)).abs()
    J = torch.autograd.functional.jacobian(lambda v: torch.relu(W @ v + drive), h)
    a = (W @ h + drive).unsqueeze(0)
    expected = (a[0] > 0).to(F64).unsqueeze(1) * (rec.U.detach() + torch.eye(n, dtype=F64))
    assert torch.allclose(J, expected, atol=tol(F64, n), rtol=0)
    assert torch.allclose(jacobian_product(W, a, "relu"), expected, atol=tol(F64, n), rtol=0)


# --- models: rin, irnn, stacks ------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2, 3])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_rin_stack_shapes_and_initialisation(num_layers, readout):
    model = rin(3, 10, 4, num_layers=num_layers, readout=readout, generator=gen(12))
    assert isinstance(model, ElmanRNN) and model.nonlinearity == "relu" and model.num_layers == num_layers
    assert all(isinstance(r, ResidualIdentity) for r in model.recurrences)
    assert len({id(r.U) for r in model.recurrences}) == num_layers, "one U per layer"
    for layer in range(num_layers):
        assert torch.equal(getattr(model.rnn, f"bias_ih_l{layer}"), torch.zeros(10))
        assert torch.equal(getattr(model.rnn, f"bias_hh_l{layer}"), torch.zeros(10))
        assert getattr(model.rnn, f"weight_ih_l{layer}").abs().max().item() < 6e-3
    x = torch.randn(2, 7, 3)
    expected = (2, 4) if readout == "last" else (2, 7, 4)
    assert model(x).shape == expected


@pytest.mark.parametrize("num_layers", [1, 3])
def test_rin_fused_equals_unrolled(num_layers):
    model = rin(2, 6, 1, num_layers=num_layers, std=0.3, generator=gen(13)).double()
    x = torch.randn(4, 11, 2, dtype=F64, generator=gen(14))
    assert torch.allclose(model(x), model.unrolled(x).output, atol=tol(F64, 6 * 11), rtol=0)


def test_rin_gradcheck_through_U_and_V():
    model = rin(2, 4, 1, std=0.3, generator=gen(15)).double()
    x = torch.randn(2, 5, 2, dtype=F64, generator=gen(16))
    U, V = model.recurrences[0].U, model.rnn.weight_ih_l0

    def output(U_: torch.Tensor, V_: torch.Tensor) -> torch.Tensor:
        weights = {"recurrences.0.U": U_, "rnn.weight_ih_l0": V_}
        return torch.func.functional_call(model, weights, (x,))

    assert torch.autograd.gradcheck(output, (U.detach().clone().requires_grad_(), V.detach().clone().requires_grad_()))


def test_irnn_starts_as_the_rin_with_zero_U():
    a, b = irnn(2, 8, 1, num_layers=2, generator=gen(17)), rin(2, 8, 1, num_layers=2, std=0.0, generator=gen(18))
    assert all(isinstance(r, Plain) and torch.equal(r(), torch.eye(8)) for r in a.recurrences)
    b.rnn.load_state_dict(a.rnn.state_dict())
    b.readout.load_state_dict(a.readout.state_dict())
    x = torch.randn(3, 6, 2)
    assert torch.equal(a(x), b(x))
    assert [n for n, _ in a.named_parameters() if n.startswith("recurrences")] == ["recurrences.0.weight", "recurrences.1.weight"]


def test_constructors_are_reproducible_with_a_generator():
    for build in (rin, irnn):
        a, b = build(2, 5, 1, generator=gen(19)), build(2, 5, 1, generator=gen(19))
        assert all(torch.equal(p, q) for (_, p), (_, q) in zip(a.rnn.named_parameters(), b.rnn.named_parameters()))


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "build, error, match",
    [
        (lambda: ResidualIdentity(0), ValueError, "hidden_size must be a positive int"),
        (lambda: ResidualIdentity(4.0), TypeError, "hidden_size must be an int"),
        (lambda: ResidualIdentity(4, std=-1.0), ValueError, "std must be non-negative"),
        (lambda: ResidualIdentity(4, std="small"), TypeError, "std must be a real number"),
        (lambda: rin(2, 4, 1, num_layers=0), ValueError, "num_layers must be a positive int"),
        (lambda: rin(2, 4, 1, std=-0.1), ValueError, "std must be non-negative"),
        (lambda: rin(2, 4, 1, readout="first"), ValueError, "readout must be one of"),
        (lambda: rin(0, 4, 1), ValueError, "input_size must be a positive int"),
        (lambda: irnn(2, 4, 1, input_std=-1.0), ValueError, "input_std must be non-negative"),
        (lambda: irnn(2, 4, 1, num_layers=1.5), TypeError, "num_layers must be an int"),
    ],
)
def test_constructor_errors(build, error, match):
    with pytest.raises(error, match=match):
        build()


def test_bad_input_is_named():
    model = rin(2, 4, 1)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 2\)"):
        model(torch.zeros(3, 5, 3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        model(torch.zeros(3, 5, 2, dtype=torch.long))
