"""Tests for the spectral-margin recurrence and the soft spectral penalties of orthobook.recurrent."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from orthobook.init import glorot, orthogonal
from orthobook.optim import GeodesicOptimizer
from orthobook.recurrent import (
    Recurrence,
    SpectralMarginSVD,
    singular_value_prior,
    soft_orthogonality_penalty,
)
from orthobook.stiefel import StiefelParameter

F64 = torch.float64


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def spectral(n: int, margin: float | None, seed: int = 0, init: str = "orthogonal") -> SpectralMarginSVD:
    return SpectralMarginSVD(n, margin=margin, init=init, generator=gen(seed), dtype=F64)


# --- construction -------------------------------------------------------------------------------


def test_parameters_and_initial_matrix():
    rec = SpectralMarginSVD(5, margin=0.1, generator=gen(0))
    assert isinstance(rec, Recurrence) and rec.hidden_size == 5
    assert type(rec.U) is StiefelParameter and type(rec.V) is StiefelParameter
    assert [name for name, _ in rec.named_parameters()] == ["U", "V", "p"]
    assert torch.equal(rec.p, torch.zeros(5))
    W = rec()
    assert W.shape == (5, 5) and W.dtype == torch.float32
    assert torch.allclose(W @ W.mT, torch.eye(5), atol=tol(torch.float32, 5))
    assert max(rec.orthogonality_errors()) <= tol(torch.float32, 5)
    assert "margin=0.1" in repr(rec)


def test_identity_init_and_free_singular_values():
    """init="identity" gives W = I; margin=None starts the free s = p at 1."""
    assert torch.equal(SpectralMarginSVD(4, margin=0.3, init="identity")(), torch.eye(4))
    free = SpectralMarginSVD(4, margin=None, init="identity")
    assert torch.equal(free.p, torch.ones(4)) and torch.equal(free(), torch.eye(4))
    with torch.no_grad():
        free.p.mul_(3.0)
    assert torch.equal(free.singular_values(), free.p) and torch.equal(free(), 3 * torch.eye(4))


def test_generator_makes_the_draw_reproducible():
    a, b = SpectralMarginSVD(6, generator=gen(7)), SpectralMarginSVD(6, generator=gen(7))
    assert torch.equal(a(), b()) and not torch.equal(a.U, a.V)


def test_survives_double_deepcopy_and_save():
    rec = SpectralMarginSVD(3, margin=0.1, generator=gen(0))
    for other in (copy.deepcopy(rec), copy.deepcopy(rec).double()):
        assert type(other.U) is StiefelParameter and type(other.V) is StiefelParameter
    buffer = io.BytesIO()
    torch.save(rec, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded.U) is StiefelParameter and torch.equal(loaded(), rec())


def test_starts_at_a_given_glorot_matrix_without_a_margin():
    """init=W₀ with margin=None: W = U diag(s) Vᵀ reproduces W₀ and s are its singular values."""
    W0 = glorot(6, generator=gen(3), dtype=F64)
    rec = SpectralMarginSVD(6, margin=None, init=W0, dtype=F64)
    assert type(rec.U) is StiefelParameter and type(rec.V) is StiefelParameter
    assert torch.allclose(rec(), W0, atol=tol(F64, 6))
    assert torch.allclose(rec.singular_values(), torch.linalg.svdvals(W0), atol=tol(F64, 6))
    assert max(rec.orthogonality_errors()) <= tol(F64, 6)


@pytest.mark.parametrize("margin", [0.0, 0.2])
def test_starts_at_a_given_matrix_inside_the_margin(margin):
    """Book: Eq. (sm-margin) inverted: p = logit((σ − 1)/(2m) + ½) gives back W₀."""
    Q = orthogonal(5, generator=gen(4), dtype=F64)
    sigma = torch.tensor([1.0, 0.9, 1.1, 0.85, 1.19], dtype=F64) if margin else torch.ones(5, dtype=F64)
    W0 = (Q * sigma) @ orthogonal(5, generator=gen(5), dtype=F64).mT
    rec = SpectralMarginSVD(5, margin=margin, init=W0, dtype=F64)
    assert torch.allclose(rec(), W0, atol=tol(F64, 5))


def test_given_matrix_outside_the_margin_is_refused():
    W0 = glorot(8, generator=gen(6))
    with pytest.raises(ValueError, match=r"init must have every singular value in the margin band \(0.9, 1.1\)"):
        SpectralMarginSVD(8, margin=0.1, init=W0)
    with pytest.raises(ValueError, match="init must be orthogonal for margin=0"):
        SpectralMarginSVD(8, margin=0.0, init=W0)
    with pytest.raises(ValueError, match=r"init must have shape \(4, 4\)"):
        SpectralMarginSVD(4, margin=None, init=W0)
    with pytest.raises(TypeError, match="init must be a floating-point tensor"):
        SpectralMarginSVD(2, margin=None, init=torch.eye(2, dtype=torch.int64))


# --- the margin (Book: Eq. (sm-svd), Eq. (sm-margin)) ----------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 8),
    margin=st.floats(0.0, 1.0),
    p=st.lists(
        st.one_of(st.floats(-1e3, 1e3), st.sampled_from([-1e3, 1e3, 0.0])),
        min_size=8,
        max_size=8,
    ),
    seed=st.integers(0, 1000),
)
def test_singular_values_stay_in_the_margin(n, margin, p, seed):
    """Book: Eq. (sm-margin): every singular value of W lies in [1 − m, 1 + m], for any p."""
    rec = spectral(n, margin, seed)
    with torch.no_grad():
        rec.p.copy_(torch.tensor(p[:n], dtype=F64))
    sigma = torch.linalg.svdvals(rec())
    assert (sigma >= 1 - margin - tol(F64, n)).all() and (sigma <= 1 + margin + tol(F64, n)).all()
    expected = torch.sort(rec.singular_values(), descending=True).values
    assert torch.allclose(sigma, expected, atol=tol(F64, n))


def test_extreme_parameters_reach_the_edges_of_the_margin():
    rec = spectral(3, 0.25)
    with torch.no_grad():
        rec.p.copy_(torch.tensor([-1e3, 0.0, 1e3], dtype=F64))
    assert torch.equal(rec.singular_values(), torch.tensor([0.75, 1.0, 1.25], dtype=F64))


def test_zero_margin_is_hard_orthogonality():
    rec = spectral(5, 0.0)
    with torch.no_grad():
        rec.p.normal_(generator=gen(1))
    W = rec()
    assert torch.allclose(W.mT @ W, torch.eye(5, dtype=F64), atol=tol(F64, 5))


def test_forward_is_u_diag_s_v_transpose():
    """Book: Eq. (sm-svd) against the explicit product U diag(s) Vᵀ."""
    rec = spectral(4, 0.5)
    with torch.no_grad():
        rec.p.normal_(generator=gen(2))
    s = rec.singular_values()
    assert torch.allclose(rec(), rec.U @ torch.diag(s) @ rec.V.mT, atol=tol(F64, 4))


@pytest.mark.parametrize("margin", [0.3, None])
def test_gradcheck_of_the_margin_parametrisation(margin):
    """gradcheck (float64) of W(p, U, V) = U diag(s(p)) Vᵀ, Book: Eq. (sm-svd) and Eq. (sm-margin)."""
    rec = spectral(4, margin)
    p = torch.randn(4, generator=gen(3), dtype=F64, requires_grad=True)
    U = orthogonal(4, generator=gen(4), dtype=F64).requires_grad_()
    V = orthogonal(4, generator=gen(5), dtype=F64).requires_grad_()

    def W(p: torch.Tensor, U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
        return functional_call(rec, {"p": p, "U": U, "V": V}, ())

    assert torch.autograd.gradcheck(W, (p, U, V))


def test_geodesic_training_keeps_the_factors_orthogonal():
    """Trained with GeodesicOptimizer, U and V stay on O(n) and W keeps its margin."""
    rec = spectral(6, 0.05)
    opt = GeodesicOptimizer(rec.parameters(), lr=0.1, method="rmsprop", base=torch.optim.Adam)
    target = 2 * orthogonal(6, generator=gen(1), dtype=F64)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = (rec() - target).square().sum()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert max(rec.orthogonality_errors()) <= 1e-12
    sigma = torch.linalg.svdvals(rec())
    assert ((sigma - 1).abs() <= 0.05 + tol(F64, 6)).all()


# --- soft penalties ---------------------------------------------------------------------------------


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


# --- bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"hidden_size": 4, "margin": -0.1}, ValueError, "margin must be non-negative"),
        ({"hidden_size": 4, "margin": "0.1"}, TypeError, "margin must be a real number"),
        ({"hidden_size": 4, "init": "glorot"}, ValueError, "init must be one of 'orthogonal', 'identity'"),
        ({"hidden_size": 0}, ValueError, "hidden_size must be a positive int"),
        ({"hidden_size": 4.0}, TypeError, "hidden_size must be an int"),
        ({"hidden_size": 4, "dtype": torch.int32}, TypeError, "dtype must be a floating torch.dtype"),
    ],
)
def test_bad_constructor_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        SpectralMarginSVD(**kwargs)


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
