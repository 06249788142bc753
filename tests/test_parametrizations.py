"""Tests for orthobook.parametrizations: the book's constraints as torch parametrizations.

``spectral_margin`` (Book: Eq. (sm-svd), Eq. (sm-margin)), ``householder_svd`` (Book:
Eq. (hh-svd), Eq. (hh-wy)), ``residual_identity`` (Book: Eq. (rin-recurrence)) and
``orthogonal`` (Book: Eq. (stiefel-manifold), Eq. (stiefel-polar)), checked in float64
against naive references."""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from orthobook.householder import reflector
from orthobook.parametrizations import (
    factors,
    householder_svd,
    householder_svd_matrix,
    margin_singular_values,
    orthogonal,
    residual_identity,
    singular_values,
    spectral_margin,
)
from orthobook.stiefel import StiefelParameter, orthogonality_error

F64 = torch.float64
SHAPES = [(1, 1), (5, 5), (6, 6), (7, 3), (3, 7)]


def tol(n: int, dtype: torch.dtype = F64) -> float:
    return 10 * n * torch.finfo(dtype).eps


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear(n_out: int, n_in: int, dtype: torch.dtype = F64) -> nn.Linear:
    return nn.Linear(n_in, n_out, dtype=dtype)


def plist(module: nn.Module, name: str = "weight") -> parametrize.ParametrizationList:
    return module.parametrizations[name]


def naive_product(V: torch.Tensor) -> torch.Tensor:
    """The float64 oracle: H(u₁) … H(u_k), one explicit reflector at a time."""
    Q = torch.eye(V.shape[0], dtype=V.dtype)
    for i in range(V.shape[1]):
        Q = Q @ reflector(V[:, i])
    return Q


def svdvals(W: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(W.detach().double())


def in_band(n_out: int, n_in: int, margin: float, seed: int, *, positive_det: bool = True) -> torch.Tensor:
    """A float64 (n_out, n_in) matrix with every singular value inside (1 − m, 1 + m)."""
    g = seeded(seed)
    r = min(n_out, n_in)
    U = torch.linalg.qr(torch.randn(n_out, n_out, generator=g, dtype=F64)).Q[:, :r]
    V = torch.linalg.qr(torch.randn(n_in, n_in, generator=g, dtype=F64)).Q[:, :r]
    s = 1 + 0.9 * margin * (2 * torch.rand(r, generator=g, dtype=F64) - 1)
    W = (U * s) @ V.T
    if positive_det and n_out == n_in and torch.linalg.det(W) < 0:
        W[0] = -W[0]
    return W


CONSTRUCTIONS: dict[str, Callable[..., nn.Module]] = {
    "spectral_margin": lambda m, name, g=None: spectral_margin(m, name, margin=0.2, generator=g),
    "spectral_margin_none": lambda m, name, g=None: spectral_margin(m, name, margin=None, generator=g),
    "householder_svd": lambda m, name, g=None: householder_svd(m, name, margin=0.2, generator=g),
    "orthogonal": lambda m, name, g=None: orthogonal(m, name, generator=g),
}
SQUARE_CONSTRUCTIONS = {
    **CONSTRUCTIONS,
    "residual_identity": lambda m, name, g=None: residual_identity(m, name, std=0.1, generator=g),
}


# --- margin_singular_values (Book: Eq. (sm-margin)) ---------------------------------------


def test_margin_map_starts_at_one_and_stays_in_the_open_band() -> None:
    p = torch.tensor([-1e30, -3.0, 0.0, 3.0, 1e30], dtype=F64)
    s = margin_singular_values(p, 0.25)
    assert s[2] == 1
    assert torch.equal(s, 2 * 0.25 * (torch.sigmoid(p) - 0.5) + 1)
    assert ((s >= 0.75) & (s <= 1.25)).all()


def test_margin_map_rejects_bad_arguments() -> None:
    with pytest.raises(TypeError, match="p must be a floating-point tensor"):
        margin_singular_values(torch.zeros(3, dtype=torch.long), 0.1)
    with pytest.raises(ValueError, match="margin must be non-negative"):
        margin_singular_values(torch.zeros(3), -0.1)
    with pytest.raises(ValueError, match="margin must be finite"):
        margin_singular_values(torch.zeros(3), math.inf)
    with pytest.raises(TypeError, match="margin must be a real number"):
        margin_singular_values(torch.zeros(3), "0.1")


# --- spectral_margin (Book: Eq. (sm-svd), Eq. (sm-margin)) ---------------------------------


@pytest.mark.parametrize(("n_out", "n_in"), SHAPES)
def test_spectral_margin_starts_at_vorontsovs_initialisation(n_out: int, n_in: int) -> None:
    layer = spectral_margin(linear(n_out, n_in), margin=0.1, generator=seeded(1))
    U, V, p = plist(layer).original0, plist(layer).original1, plist(layer).original2
    r = min(n_out, n_in)
    assert isinstance(U, StiefelParameter) and isinstance(V, StiefelParameter)
    assert U.shape == (n_out, r) and V.shape == (n_in, r) and p.shape == (r,)
    assert U.dtype == V.dtype == p.dtype == F64
    assert orthogonality_error(U) <= tol(n_out) and orthogonality_error(V) <= tol(n_in)
    assert torch.equal(p, torch.zeros(r, dtype=F64))
    W = layer.weight
    assert W.shape == (n_out, n_in)
    assert torch.allclose(svdvals(W), torch.ones(r, dtype=F64), rtol=0, atol=tol(max(n_out, n_in)))


def test_spectral_margin_factors_are_independent_haar_draws_from_the_generator() -> None:
    layer = spectral_margin(linear(4, 4), margin=0.1, generator=seeded(3))
    again = spectral_margin(linear(4, 4), margin=0.1, generator=seeded(3))
    U, V = plist(layer).original0, plist(layer).original1
    assert torch.equal(U, plist(again).original0) and torch.equal(V, plist(again).original1)
    assert not torch.allclose(U, V)
    assert torch.allclose(U.det().abs(), torch.ones((), dtype=F64))


def test_spectral_margin_without_a_margin_starts_with_free_singular_values_at_one() -> None:
    layer = spectral_margin(linear(3, 5), margin=None, generator=seeded(0))
    assert torch.equal(plist(layer).original2, torch.ones(3, dtype=F64))
    with torch.no_grad():
        plist(layer).original2.copy_(torch.tensor([3.0, -0.5, 0.0]))
    assert torch.allclose(svdvals(layer.weight), torch.tensor([3.0, 0.5, 0.0], dtype=F64), atol=tol(5))


@pytest.mark.parametrize(("n_out", "n_in"), SHAPES)
def test_spectral_margin_equals_the_naive_product(n_out: int, n_in: int) -> None:
    layer = spectral_margin(linear(n_out, n_in), margin=0.3, generator=seeded(n_out))
    p = plist(layer).original2
    with torch.no_grad():
        p.copy_(torch.randn(p.shape, generator=seeded(1), dtype=F64))
    U, V = plist(layer).original0, plist(layer).original1
    s = 2 * 0.3 * (torch.sigmoid(p) - 0.5) + 1
    assert torch.allclose(layer.weight, U @ torch.diag(s) @ V.T, rtol=0, atol=tol(max(n_out, n_in)))


@settings(max_examples=30, deadline=None)
@given(
    shape=st.sampled_from(SHAPES),
    margin=st.floats(0.0, 0.99),
    p=st.lists(
        st.floats(-1e4, 1e4, allow_subnormal=False) | st.sampled_from([-1e30, 1e30]),
        min_size=7,
        max_size=7,
    ),
    kind=st.sampled_from(["spectral_margin", "householder_svd"]),
)
def test_property_singular_values_stay_in_the_margin_band(
    shape: tuple[int, int], margin: float, p: list[float], kind: str
) -> None:
    n_out, n_in = shape
    r = min(shape)
    construct = spectral_margin if kind == "spectral_margin" else householder_svd
    layer = construct(linear(n_out, n_in), margin=margin, generator=seeded(r))
    with torch.no_grad():
        plist(layer).original2.copy_(torch.tensor(p[:r], dtype=F64))
    s = svdvals(layer.weight)
    eps = tol(max(shape))
    assert ((s >= 1 - margin - eps) & (s <= 1 + margin + eps)).all()
    expected = singular_values(layer).detach().sort(descending=True).values
    assert torch.allclose(s, expected, rtol=0, atol=eps)


@pytest.mark.parametrize(("n_out", "n_in"), SHAPES)
def test_spectral_margin_right_inverse_round_trips(n_out: int, n_in: int) -> None:
    layer = spectral_margin(linear(n_out, n_in), margin=0.3, generator=seeded(0))
    U = plist(layer).original0
    W = in_band(n_out, n_in, 0.3, seed=n_out + n_in, positive_det=False)
    layer.weight = W
    assert plist(layer).original0 is U and isinstance(plist(layer).original1, StiefelParameter)
    assert torch.allclose(layer.weight, W, rtol=0, atol=tol(max(n_out, n_in)))
    assert orthogonality_error(plist(layer).original0) <= tol(n_out)


def test_spectral_margin_assignment_sets_the_identity_and_a_glorot_start() -> None:
    layer = spectral_margin(linear(6, 6), margin=0.1)
    layer.weight = torch.eye(6, dtype=F64)
    assert torch.allclose(layer.weight, torch.eye(6, dtype=F64), rtol=0, atol=tol(6))
    free = spectral_margin(linear(6, 6), margin=None)
    glorot = torch.empty(6, 6, dtype=F64)
    nn.init.xavier_uniform_(glorot, generator=seeded(0))
    free.weight = glorot
    assert torch.allclose(free.weight, glorot, rtol=0, atol=tol(6))


def test_spectral_margin_assignment_out_of_the_band_raises() -> None:
    layer = spectral_margin(linear(4, 4), margin=0.1)
    with pytest.raises(ValueError, match=r"margin band \(0.9, 1.1\)"):
        layer.weight = 1.2 * torch.eye(4, dtype=F64)
    with pytest.raises(ValueError, match="margin band"):
        layer.weight = 1.1 * torch.eye(4, dtype=F64)  # the edge is never reached
    hard = spectral_margin(linear(4, 3), margin=0.0)
    with pytest.raises(ValueError, match="orthogonal for margin=0"):
        hard.weight = 0.99 * torch.eye(4, 3, dtype=F64)
    hard.weight = torch.eye(4, 3, dtype=F64)
    assert torch.equal(plist(hard).original2, torch.zeros(3, dtype=F64))


def test_spectral_margin_zero_is_exact_orthogonality_whatever_p() -> None:
    layer = spectral_margin(linear(8, 8), margin=0.0, generator=seeded(2))
    with torch.no_grad():
        plist(layer).original2.copy_(10 * torch.randn(8, generator=seeded(0), dtype=F64))
    W = layer.weight
    assert torch.allclose(W.T @ W, torch.eye(8, dtype=F64), rtol=0, atol=tol(8))


def test_spectral_margin_float32_module_gets_float32_factors() -> None:
    layer = spectral_margin(nn.Linear(5, 5), margin=0.1, generator=seeded(0))
    reference = spectral_margin(linear(5, 5), margin=0.1, generator=seeded(0))
    U = plist(layer).original0
    assert U.dtype == torch.float32 and layer.weight.dtype == torch.float32
    assert torch.allclose(U.double(), plist(reference).original0, rtol=0, atol=torch.finfo(torch.float32).eps)


# --- householder_svd (Book: Eq. (hh-svd), Eq. (hh-wy)) -----------------------------------


@pytest.mark.parametrize(("n_out", "n_in", "k"), [(1, 1, 1), (6, 6, 6), (6, 6, 2), (7, 3, 3), (3, 7, 2)])
def test_householder_svd_equals_the_naive_reflector_product(n_out: int, n_in: int, k: int) -> None:
    layer = householder_svd(linear(n_out, n_in), margin=0.3, reflectors=k, generator=seeded(n_out))
    U_vectors, V_vectors, p = plist(layer).original0, plist(layer).original1, plist(layer).original2
    assert U_vectors.shape == (n_out, k) and V_vectors.shape == (n_in, k)
    assert type(U_vectors) is nn.Parameter  # any optimizer keeps the constraint
    with torch.no_grad():
        p.copy_(torch.randn(p.shape, generator=seeded(1), dtype=F64))
    r = min(n_out, n_in)
    s = 2 * 0.3 * (torch.sigmoid(p) - 0.5) + 1
    U, V = naive_product(U_vectors)[:, :r], naive_product(V_vectors)[:, :r]
    expected = U @ torch.diag(s) @ V.T
    assert torch.allclose(layer.weight, expected, rtol=0, atol=tol(max(n_out, n_in)))
    A, s_out, B = factors(layer)
    assert torch.allclose(A, U, rtol=0, atol=tol(n_out)) and torch.allclose(B, V, rtol=0, atol=tol(n_in))
    assert torch.allclose(s_out, s, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("n_out", "n_in", "k", "j", "r"),
    [(1, 1, 1, 1, 1), (6, 6, 6, 6, 6), (6, 6, 2, 5, 6), (7, 3, 3, 2, 3), (3, 7, 4, 7, 2)],
)
def test_householder_svd_matrix_equals_the_naive_reflector_product(
    n_out: int, n_in: int, k: int, j: int, r: int
) -> None:
    g = seeded(n_out + n_in)
    U_vectors = torch.randn(n_out, k, generator=g, dtype=F64)
    V_vectors = torch.randn(n_in, j, generator=g, dtype=F64)
    s = 1 + 0.5 * torch.randn(r, generator=g, dtype=F64)
    expected = naive_product(U_vectors)[:, :r] @ torch.diag(s) @ naive_product(V_vectors)[:, :r].T
    W = householder_svd_matrix(U_vectors, V_vectors, s)
    assert W.shape == (n_out, n_in)
    assert torch.allclose(W, expected, rtol=0, atol=tol(max(n_out, n_in)))


def test_householder_svd_builds_its_tensor_with_householder_svd_matrix() -> None:
    layer = householder_svd(linear(5, 4), margin=0.3, generator=seeded(2))
    originals = plist(layer)
    with torch.no_grad():
        originals.original2.copy_(torch.randn(4, generator=seeded(3), dtype=F64))
    s = singular_values(layer)
    W = householder_svd_matrix(originals.original0, originals.original1, s)
    assert torch.equal(layer.weight, W)


def test_householder_svd_matrix_gradcheck() -> None:
    g = seeded(4)
    shapes = ((4, 3), (3, 2), (3,))
    args = tuple(torch.randn(*shape, generator=g, dtype=F64).requires_grad_() for shape in shapes)
    assert torch.autograd.gradcheck(householder_svd_matrix, args)


def test_householder_svd_matrix_rejects_bad_arguments() -> None:
    U, V = torch.randn(4, 4, dtype=F64), torch.randn(3, 3, dtype=F64)
    s = torch.ones(3, dtype=F64)
    with pytest.raises(TypeError, match="U_vectors must be a floating-point tensor"):
        householder_svd_matrix(U.long(), V, s)
    with pytest.raises(TypeError, match="s must be a torch.Tensor"):
        householder_svd_matrix(U, V, [1.0, 1.0, 1.0])
    with pytest.raises(TypeError, match=r"V_vectors must have the dtype of s \(torch.float64\)"):
        householder_svd_matrix(U, V.float(), s)
    with pytest.raises(ValueError, match=r"U_vectors must be a matrix of shape \(out, k\)"):
        householder_svd_matrix(U[0], V, s)
    with pytest.raises(ValueError, match=r"V_vectors must be a matrix of shape \(in, j\)"):
        householder_svd_matrix(U, V[None], s)
    for bad in (torch.ones(4, dtype=F64), torch.ones(0, dtype=F64), torch.ones(3, 1, dtype=F64)):
        with pytest.raises(ValueError, match=r"s must have shape \(r,\) with 1 <= r <= min\(out, in\) = 3"):
            householder_svd_matrix(U, V, bad)


def test_householder_svd_starts_orthogonal_with_positive_determinant() -> None:
    layer = householder_svd(nn.Linear(16, 16), margin=0.1, generator=seeded(3))
    W = layer.weight.detach()
    assert torch.allclose(W.T @ W, torch.eye(16), rtol=0, atol=tol(16, torch.float32))
    assert torch.linalg.det(W.double()).item() > 0  # Note [Householder SVD reach]
    assert torch.equal(plist(layer).original2, torch.zeros(16))


def test_householder_svd_generator_makes_the_start_reproducible() -> None:
    first = householder_svd(nn.Linear(5, 4), margin=0.1, generator=seeded(7)).weight
    second = householder_svd(nn.Linear(5, 4), margin=0.1, generator=seeded(7)).weight
    assert torch.equal(first, second)


@pytest.mark.parametrize(("n_out", "n_in"), [(1, 1), (2, 2), (5, 5), (6, 6), (7, 3), (3, 7), (1, 4), (4, 1)])
@pytest.mark.parametrize("seed", range(3))
def test_householder_svd_right_inverse_round_trips(n_out: int, n_in: int, seed: int) -> None:
    layer = householder_svd(linear(n_out, n_in), margin=0.3, generator=seeded(seed))
    W = in_band(n_out, n_in, 0.3, seed=seed, positive_det=True)
    layer.weight = W
    assert torch.allclose(layer.weight, W, rtol=0, atol=tol(max(n_out, n_in)))
    assert plist(layer).original0.shape == (n_out, min(n_out, n_in))


@pytest.mark.parametrize(("n_out", "n_in"), [(4, 4), (5, 5), (4, 2), (2, 4)])
def test_householder_svd_reaches_the_identity_frame(n_out: int, n_in: int) -> None:
    # recover_reflectors needs no reflector at all here: padding supplies every one of them.
    layer = householder_svd(linear(n_out, n_in), margin=0.1)
    eye = torch.eye(n_out, n_in, dtype=F64)
    layer.weight = eye
    assert torch.allclose(layer.weight, eye, rtol=0, atol=tol(max(n_out, n_in)))


def test_householder_svd_rectangular_reaches_both_determinant_signs() -> None:
    # Note [Householder SVD reach]: the larger factor's determinant is free.
    for sign in (1.0, -1.0):
        W = torch.diag(torch.tensor([1.0, 1.0, sign], dtype=F64))[:, :3]
        W = torch.cat([W, torch.zeros(2, 3, dtype=F64)])  # (5, 3)
        layer = householder_svd(linear(5, 3), margin=0.1)
        layer.weight = W
        assert torch.allclose(layer.weight, W, rtol=0, atol=tol(5))


def test_householder_svd_unreachable_assignments_raise() -> None:
    layer = householder_svd(linear(4, 4), margin=0.3)
    with pytest.raises(ValueError, match="positive determinant"):
        layer.weight = torch.diag(torch.tensor([1.0, 1.0, 1.0, -1.0], dtype=F64))
    few = householder_svd(linear(4, 4), margin=0.3, reflectors=2)
    with pytest.raises(ValueError, match="reflectors = min"):
        few.weight = torch.eye(4, dtype=F64)
    with pytest.raises(ValueError, match="margin band"):
        layer.weight = 2 * torch.eye(4, dtype=F64)


def test_householder_svd_zero_margin_is_exact_orthogonality_whatever_p() -> None:
    layer = householder_svd(linear(8, 8), margin=0.0, generator=seeded(2))
    with torch.no_grad():
        plist(layer).original2.copy_(10 * torch.randn(8, generator=seeded(0), dtype=F64))
    W = layer.weight
    assert torch.allclose(W.T @ W, torch.eye(8, dtype=F64), rtol=0, atol=tol(8))


# --- residual_identity (Book: Eq. (rin-recurrence)) ---------------------------------------


def test_residual_identity_with_zero_std_is_exactly_the_identity() -> None:
    cell = residual_identity(nn.RNNCell(3, 4), "weight_hh", std=0.0)
    assert torch.equal(cell.weight_hh, torch.eye(4))


def test_residual_identity_starts_at_a_scaled_gaussian_from_the_generator() -> None:
    layer = residual_identity(linear(5, 5), std=1e-3, generator=seeded(4))
    expected = 1e-3 * torch.randn(5, 5, generator=seeded(4), dtype=F64)
    assert torch.equal(plist(layer).original, expected)
    assert torch.equal(layer.weight, expected + torch.eye(5, dtype=F64))


def test_residual_identity_right_inverse_is_w_minus_identity() -> None:
    layer = residual_identity(linear(4, 4))
    W = torch.randn(4, 4, generator=seeded(0), dtype=F64)
    layer.weight = W
    assert torch.equal(plist(layer).original, W - torch.eye(4, dtype=F64))
    assert torch.allclose(layer.weight, W, rtol=0, atol=tol(4))


def test_residual_identity_follows_the_module_dtype_and_keeps_it_out_of_the_state_dict() -> None:
    layer = residual_identity(nn.Linear(3, 3), std=0.0).double()
    assert layer.weight.dtype == F64 and plist(layer)[0].identity.dtype == F64
    assert all("identity" not in key for key in layer.state_dict())


def test_residual_identity_needs_a_square_matrix() -> None:
    with pytest.raises(ValueError, match="weight must be a square matrix"):
        residual_identity(nn.Linear(3, 4))


# --- orthogonal (Book: Eq. (stiefel-manifold), Eq. (stiefel-polar)) -----------------------


@pytest.mark.parametrize(("n_out", "n_in"), SHAPES)
def test_orthogonal_is_a_haar_frame_stored_tall(n_out: int, n_in: int) -> None:
    layer = orthogonal(linear(n_out, n_in), generator=seeded(0))
    Y = plist(layer).original
    assert isinstance(Y, StiefelParameter)
    assert Y.shape == (max(n_out, n_in), min(n_out, n_in))
    W = layer.weight
    frame = W if n_out >= n_in else W.T
    assert orthogonality_error(frame) <= tol(max(n_out, n_in))
    assert torch.equal(frame, Y)


@pytest.mark.parametrize(("n_out", "n_in"), [(5, 5), (6, 3), (3, 6)])
def test_orthogonal_assignment_stores_the_polar_factor(n_out: int, n_in: int) -> None:
    layer = orthogonal(linear(n_out, n_in))
    Y = plist(layer).original
    W0 = torch.randn(n_out, n_in, generator=seeded(1), dtype=F64)
    layer.weight = W0
    P, _, Qh = torch.linalg.svd(W0, full_matrices=False)
    assert plist(layer).original is Y
    assert torch.allclose(layer.weight, P @ Qh, rtol=0, atol=tol(max(n_out, n_in)))
    frame = in_band(n_out, n_in, 0.0, seed=2, positive_det=False)
    layer.weight = frame
    assert torch.allclose(layer.weight, frame, rtol=0, atol=tol(max(n_out, n_in)))


# --- helpers -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["spectral_margin", "householder_svd"])
@pytest.mark.parametrize(("n_out", "n_in"), [(5, 5), (7, 3), (3, 7)])
def test_factors_rebuild_w_and_singular_values_are_those_of_w(kind: str, n_out: int, n_in: int) -> None:
    layer = CONSTRUCTIONS[kind](linear(n_out, n_in), "weight", seeded(0))
    with torch.no_grad():
        plist(layer).original2.copy_(torch.randn(min(n_out, n_in), generator=seeded(1), dtype=F64))
    U, s, V = factors(layer)
    r = min(n_out, n_in)
    assert U.shape == (n_out, r) and s.shape == (r,) and V.shape == (n_in, r)
    assert torch.allclose((U * s) @ V.T, layer.weight, rtol=0, atol=tol(max(n_out, n_in)))
    assert torch.equal(s, singular_values(layer))
    assert s.requires_grad


def test_helpers_reject_tensors_without_a_margin() -> None:
    with pytest.raises(ValueError, match="not constrained by spectral_margin or householder_svd"):
        singular_values(nn.Linear(3, 3))
    with pytest.raises(ValueError, match="not constrained"):
        factors(residual_identity(nn.Linear(3, 3)))
    with pytest.raises(ValueError, match="not constrained"):
        singular_values(orthogonal(nn.Linear(3, 3)))
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        singular_values(torch.eye(3))
    with pytest.raises(TypeError, match="name must be a str"):
        factors(nn.Linear(3, 3), 0)


# --- gradcheck of every construction's forward ----------------------------------------------


def test_gradcheck_every_forward() -> None:
    g = seeded(5)

    def randn(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, generator=g, dtype=F64).requires_grad_()

    margin = plist(spectral_margin(linear(4, 3), margin=0.5))[0]
    assert torch.autograd.gradcheck(margin, (randn(4, 3), randn(3, 3), randn(3)))
    free = plist(spectral_margin(linear(3, 4), margin=None))[0]
    assert torch.autograd.gradcheck(free, (randn(3, 3), randn(4, 3), randn(3)))
    householder = plist(householder_svd(linear(4, 3), margin=0.5, reflectors=2))[0]
    assert torch.autograd.gradcheck(householder, (randn(4, 2), randn(3, 2), randn(3)))
    residual = plist(residual_identity(linear(3, 3)))[0]
    assert torch.autograd.gradcheck(residual, (randn(3, 3),))
    wide = plist(orthogonal(linear(2, 4)))[0]
    assert torch.autograd.gradcheck(wide, (randn(4, 2),))


# --- any module: nn.RNN, nn.RNNCell, nn.Linear, nn.LSTM, nn.GRU -----------------------------

MODULES: list[tuple[str, Callable[[], nn.Module], str]] = [
    ("rnn_hh", lambda: nn.RNN(3, 5, dtype=F64), "weight_hh_l0"),
    ("rnn_ih", lambda: nn.RNN(7, 5, dtype=F64), "weight_ih_l0"),
    ("rnn_ih_tall", lambda: nn.RNN(2, 5, dtype=F64), "weight_ih_l0"),
    ("rnncell_hh", lambda: nn.RNNCell(3, 4, dtype=F64), "weight_hh"),
    ("lstm_hh", lambda: nn.LSTM(3, 4, dtype=F64), "weight_hh_l0"),
    ("gru_hh", lambda: nn.GRU(3, 4, dtype=F64), "weight_hh_l0"),
    ("linear_wide", lambda: nn.Linear(6, 3, dtype=F64), "weight"),
    ("linear_tall", lambda: nn.Linear(3, 6, dtype=F64), "weight"),
]


def _run(module: nn.Module) -> torch.Tensor:
    if isinstance(module, nn.Linear):
        return module(torch.randn(2, module.in_features, generator=seeded(9), dtype=F64))
    if isinstance(module, nn.RNNCell):
        return module(torch.randn(2, module.input_size, generator=seeded(9), dtype=F64))
    return module(torch.randn(2, 4, module.input_size, generator=seeded(9), dtype=F64))[0]


CASES = [
    pytest.param(kind, build, name, id=f"{kind}-{label}")
    for kind in SQUARE_CONSTRUCTIONS
    for label, build, name in MODULES
    if kind != "residual_identity" or label in ("rnn_hh", "rnncell_hh")  # W = U + I is square
]


@pytest.mark.parametrize(("kind", "build", "name"), CASES)
def test_every_construction_works_on_every_module(kind: str, build: Callable[[], nn.Module], name: str) -> None:
    module = build()
    shape = getattr(module, name).shape
    constrained = SQUARE_CONSTRUCTIONS[kind](module, name, seeded(0))
    assert constrained is module and parametrize.is_parametrized(module, name)
    W = getattr(module, name)
    assert W.shape == shape and W.dtype == F64
    if kind != "residual_identity":  # every other construction starts at a frame
        s = svdvals(W)[: min(shape)]
        assert torch.allclose(s, torch.ones_like(s), rtol=0, atol=tol(max(shape)))
    with parametrize.cached():
        _run(module).square().sum().backward()
    for key, param in module.named_parameters():
        if key.startswith("parametrizations."):
            assert param.grad is not None and torch.isfinite(param.grad).all(), key


@pytest.mark.parametrize("kind", list(SQUARE_CONSTRUCTIONS))
def test_state_dict_round_trips_through_plain_pytorch(kind: str) -> None:
    source = SQUARE_CONSTRUCTIONS[kind](nn.RNN(3, 5, dtype=F64), "weight_hh_l0", seeded(1))
    target = SQUARE_CONSTRUCTIONS[kind](nn.RNN(3, 5, dtype=F64), "weight_hh_l0", seeded(2))
    assert not torch.equal(source.weight_hh_l0, target.weight_hh_l0)
    stiefel = [type(p) for p in target.parameters()]
    target.load_state_dict(source.state_dict())
    assert torch.equal(target.weight_hh_l0, source.weight_hh_l0)
    assert [type(p) for p in target.parameters()] == stiefel


def test_fused_rnn_with_a_parametrization_equals_the_unrolled_loop() -> None:
    rnn = householder_svd(nn.RNN(3, 5, batch_first=True, dtype=F64), "weight_hh_l0", margin=0.3)
    with torch.no_grad():
        plist(rnn, "weight_hh_l0").original2.copy_(torch.randn(5, generator=seeded(0), dtype=F64))
    x = torch.randn(2, 6, 3, generator=seeded(1), dtype=F64)
    output, h_last = rnn(x)
    W, V = rnn.weight_hh_l0, rnn.weight_ih_l0
    h = torch.zeros(2, 5, dtype=F64)
    steps = []
    for t in range(6):
        h = torch.tanh(x[:, t] @ V.T + rnn.bias_ih_l0 + h @ W.T + rnn.bias_hh_l0)
        steps.append(h)
    expected = torch.stack(steps, dim=1)
    assert torch.allclose(output, expected, rtol=0, atol=tol(30))
    assert torch.allclose(h_last[0], h, rtol=0, atol=tol(30))


@pytest.mark.parametrize("kind", list(SQUARE_CONSTRUCTIONS))
def test_cached_builds_the_matrix_once_per_rnn_forward(kind: str) -> None:
    rnn = SQUARE_CONSTRUCTIONS[kind](nn.RNN(3, 4, dtype=F64), "weight_hh_l0")
    calls = []
    plist(rnn, "weight_hh_l0")[0].register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(5, 2, 3, dtype=F64)
    with parametrize.cached():
        rnn(x)
    assert len(calls) == 1


# --- bad inputs ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(SQUARE_CONSTRUCTIONS))
def test_every_construction_validates_its_target(kind: str) -> None:
    construct = SQUARE_CONSTRUCTIONS[kind]
    with pytest.raises(TypeError, match="module must be a torch.nn.Module"):
        construct(torch.eye(3), "weight")
    with pytest.raises(TypeError, match="name must be a str"):
        construct(nn.Linear(3, 3), 1)
    with pytest.raises(ValueError, match="'missing' is not a parameter"):
        construct(nn.Linear(3, 3), "missing")
    with pytest.raises(ValueError, match="bias must be a matrix"):
        construct(nn.Linear(3, 3), "bias")
    holder = nn.Module()
    holder.register_buffer("weight", torch.eye(3))
    with pytest.raises(ValueError, match="'weight' is a buffer"):
        construct(holder, "weight")
    integer = nn.Module()
    integer.weight = nn.Parameter(torch.ones(3, 3, dtype=torch.long), requires_grad=False)
    with pytest.raises(TypeError, match="weight must be a floating-point tensor"):
        construct(integer, "weight")
    done = construct(nn.Linear(3, 3), "weight")
    with pytest.raises(ValueError, match="already parametrized"):
        construct(done, "weight")
    with pytest.raises(TypeError, match="generator must be a torch.Generator"):
        construct(nn.Linear(3, 3), "weight", 0)


@pytest.mark.parametrize("construct", [spectral_margin, householder_svd])
def test_margins_must_be_finite_non_negative_reals(construct: Callable[..., nn.Module]) -> None:
    for bad in (math.inf, -0.1, math.nan):
        with pytest.raises(ValueError, match="margin must be"):
            construct(nn.Linear(3, 3), margin=bad)
    with pytest.raises(TypeError, match="margin must be a real number"):
        construct(nn.Linear(3, 3), margin="0.1")
    if construct is householder_svd:
        with pytest.raises(TypeError, match="margin must be a real number"):
            construct(nn.Linear(3, 3), margin=None)


def test_householder_svd_validates_the_number_of_reflectors() -> None:
    for bad in (0, 4):
        with pytest.raises(ValueError, match="reflectors must"):
            householder_svd(nn.Linear(3, 5), margin=0.1, reflectors=bad)
    with pytest.raises(TypeError, match="reflectors must be an int"):
        householder_svd(nn.Linear(3, 5), margin=0.1, reflectors=True)


def test_residual_identity_validates_std() -> None:
    for bad in (math.inf, -1e-3):
        with pytest.raises(ValueError, match="std must be"):
            residual_identity(nn.Linear(3, 3), std=bad)


def test_repr_names_the_construction() -> None:
    text = repr(householder_svd(nn.Linear(4, 4), margin=0.1, reflectors=2))
    assert "_HouseholderSVD(margin=0.1, reflectors=2)" in text
    assert "_SpectralMargin(margin=None)" in repr(spectral_margin(nn.Linear(4, 4), margin=None))


def test_casting_the_module_keeps_the_stiefel_originals() -> None:
    rnn = spectral_margin(nn.RNN(2, 4), "weight_hh_l0", margin=0.1).double()
    originals = plist(rnn, "weight_hh_l0")
    assert isinstance(originals.original0, StiefelParameter) and originals.original0.dtype == F64
    layer = orthogonal(nn.Linear(3, 5)).to(F64)
    assert isinstance(plist(layer).original, StiefelParameter) and layer.weight.dtype == F64
