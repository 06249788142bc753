"""Tests for orthobook.householder: reflectors (Book: Eq. (hh-reflector)), their compact WY
product (Book: Eq. (hh-wy)), the reflector decomposition of O(n) (Book: Eq. (hh-cartan)) and
the reach of k reflectors (Book: Eq. (hh-reach))."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.householder import (
    _thin_product,
    apply_reflectors,
    fit_reflectors,
    householder_product,
    recover_reflectors,
    reflector,
    reflector_distance_bound,
    wy_matrix,
)
from orthobook.init import orthogonal

F64 = torch.float64
SHAPES = [(1, 1), (5, 1), (6, 3), (7, 7), (4, 6)]  # (n, k): k < n, k = n and k > n


def tol(n: int, dtype: torch.dtype) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gaussian(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def naive_product(V: torch.Tensor) -> torch.Tensor:
    """The float64 oracle: H(u₁) H(u₂) … H(u_k), one explicit reflector at a time."""
    Q = torch.eye(V.shape[0], dtype=V.dtype)
    for i in range(V.shape[1]):
        Q = Q @ reflector(V[:, i])
    return Q


def orthogonality_error(Q: torch.Tensor) -> float:
    eye = torch.eye(Q.shape[-1], dtype=Q.dtype)
    return torch.linalg.matrix_norm(Q.mT @ Q - eye, ord=2).item()


# Reflectors: Book: Eq. (hh-reflector)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_reflector_is_symmetric_orthogonal_involution_with_det_minus_one(n: int) -> None:
    u = gaussian(n, seed=n)
    H = reflector(u)
    eye = torch.eye(n, dtype=F64)
    assert torch.allclose(H, H.T, rtol=0, atol=tol(n, F64))
    assert torch.allclose(H.T @ H, eye, rtol=0, atol=tol(n, F64))
    assert torch.allclose(H @ H, eye, rtol=0, atol=tol(n, F64))
    assert torch.linalg.det(H).item() == pytest.approx(-1.0, abs=tol(n, F64))


def test_reflector_flips_u_and_fixes_its_orthogonal_complement() -> None:
    u, w = gaussian(6, seed=1), gaussian(6, seed=2)
    w = w - (w @ u) / (u @ u) * u
    H = reflector(u)
    assert torch.allclose(H @ u, -u, rtol=0, atol=tol(6, F64) * u.norm().item())
    assert torch.allclose(H @ w, w, rtol=0, atol=tol(6, F64) * w.norm().item())


def test_reflector_is_scale_invariant() -> None:
    u = gaussian(5)
    assert torch.allclose(reflector(u), reflector(-3.5 * u), rtol=0, atol=tol(5, F64))




# Compact WY product: Book: Eq. (hh-wy)


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_wy_matrix_is_the_triangle_of_the_gram_matrix_with_half_its_diagonal(n: int, k: int) -> None:
    U = gaussian(n, k, seed=n + 2 * k)
    expected = torch.zeros(k, k, dtype=F64)
    for i in range(k):
        expected[i, i] = 0.5 * (U[:, i] @ U[:, i])
        for j in range(i + 1, k):
            expected[i, j] = U[:, i] @ U[:, j]
    S = wy_matrix(U)
    assert torch.allclose(S, expected, rtol=0, atol=tol(n, F64))
    assert torch.allclose(S + S.T, U.T @ U, rtol=0, atol=tol(n, F64))


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_wy_form_of_unnormalised_vectors_is_the_product_of_reflectors(n: int, k: int) -> None:
    # Eq. (hh-wy) holds for vectors of any scale, not only the unit ones the package passes.
    U = gaussian(n, k, seed=n * k + 1) * torch.logspace(-2, 2, k, dtype=F64)
    Q = torch.eye(n, dtype=F64) - U @ torch.linalg.solve(wy_matrix(U), U.T)
    assert torch.allclose(Q, naive_product(U), rtol=0, atol=tol(n, F64))


def test_wy_matrix_of_a_batch_is_each_items_matrix() -> None:
    U = gaussian(3, 6, 4)
    expected = torch.stack([wy_matrix(item) for item in U])
    assert torch.allclose(wy_matrix(U), expected, rtol=0, atol=tol(6, F64))


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_product_matches_reflectors_one_at_a_time(n: int, k: int) -> None:
    V = gaussian(n, k, seed=n + k)
    assert torch.allclose(householder_product(V), naive_product(V), rtol=0, atol=tol(n, F64))


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_thin_product_is_the_leading_columns(n: int, k: int) -> None:
    V = gaussian(n, k, seed=n * k)
    Q = naive_product(V)
    for p in sorted({1, (n + 1) // 2, n}):
        thin = householder_product(V, columns=p)
        assert thin.shape == (n, p)
        assert torch.allclose(thin, Q[:, :p], rtol=0, atol=tol(n, F64))


@pytest.mark.parametrize(("n", "k"), [(5, 1), (6, 3), (7, 7)])
def test_product_matches_torch_linalg_householder_product(n: int, k: int) -> None:
    # LAPACK form: unit diagonal, zeros above it, and τ = 2/‖v‖² makes H = I − τ v vᵀ = H(v).
    A = gaussian(n, n, seed=k).tril(-1) + torch.eye(n, dtype=F64)
    tau = 2.0 / (A[:, :k] ** 2).sum(0)
    V = A[:, :k]
    expected = torch.linalg.householder_product(A, tau)
    assert torch.allclose(householder_product(V), expected, rtol=0, atol=tol(n, F64))
    expected_thin = torch.linalg.householder_product(V, tau)
    assert torch.allclose(householder_product(V, columns=k), expected_thin, rtol=0, atol=tol(n, F64))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize(("n", "k", "p"), [(64, 64, None), (64, 16, None), (96, 96, 24), (33, 50, 5)])
def test_product_is_orthogonal_to_working_precision(
    dtype: torch.dtype, n: int, k: int, p: int | None
) -> None:
    Q = householder_product(gaussian(n, k, seed=3, dtype=dtype), columns=p)
    assert orthogonality_error(Q) <= tol(n, dtype)


def test_no_reflectors_give_the_identity() -> None:
    assert torch.equal(householder_product(torch.empty(4, 0, dtype=F64)), torch.eye(4, dtype=F64))
    assert torch.equal(householder_product(torch.empty(4, 0), columns=2), torch.eye(4, 2))


def test_product_is_invariant_to_the_scale_of_each_vector() -> None:
    V = gaussian(6, 4)
    scales = torch.tensor([1e-3, -2.0, 7.0, 1e3], dtype=F64)
    Q = householder_product(V)
    assert torch.allclose(householder_product(V * scales), Q, rtol=0, atol=tol(6, F64))


F32_SCALES = [1e-20, 1e-10, 1.0, 1e10, 1e19]


@pytest.mark.parametrize("scale", F32_SCALES)
def test_float32_product_is_invariant_to_extreme_vector_scales(scale: float) -> None:
    """H(c u) = H(u): the vectors are normalised before VᵀV (‖u‖² of 1e19 would overflow)."""
    V = gaussian(6, 4, dtype=torch.float32)
    Q = householder_product(V)
    Q_scaled = householder_product(scale * V)
    assert torch.isfinite(Q_scaled).all()
    assert torch.allclose(Q_scaled, Q, rtol=0, atol=tol(6, torch.float32))
    X = gaussian(6, 2, seed=3, dtype=torch.float32)
    assert torch.allclose(apply_reflectors(scale * V, X), Q @ X, rtol=0, atol=tol(6, torch.float32))
    assert torch.allclose(
        apply_reflectors(scale * V, X, transpose=True), Q.T @ X, rtol=0, atol=tol(6, torch.float32)
    )
    assert torch.allclose(reflector(scale * V[:, 0]), reflector(V[:, 0]), rtol=0, atol=tol(6, torch.float32))


def test_float32_product_with_columns_of_very_different_scales() -> None:
    V = gaussian(6, 5, dtype=torch.float32)
    scales = torch.tensor(F32_SCALES)
    Q = householder_product(V * scales)
    assert torch.allclose(Q, householder_product(V), rtol=0, atol=tol(6, torch.float32))
    assert orthogonality_error(Q) <= tol(6, torch.float32)


def test_batched_product_matches_each_item() -> None:
    V = gaussian(3, 5, 4)
    Q = householder_product(V, columns=3)
    for b in range(3):
        assert torch.allclose(Q[b], householder_product(V[b], columns=3), rtol=0, atol=tol(5, F64))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 12),
    k=st.integers(0, 12),
    seed=st.integers(0, 2**31 - 1),
    scale=st.floats(1e-6, 1e6),
)
def test_property_product_is_orthogonal_and_agrees_with_the_oracle(
    n: int, k: int, seed: int, scale: float
) -> None:
    V = scale * gaussian(n, k, seed=seed)
    Q = householder_product(V)
    assert orthogonality_error(Q) <= tol(max(n, k), F64)
    assert torch.allclose(Q, naive_product(V), rtol=0, atol=tol(max(n, k), F64))


def test_product_gradcheck() -> None:
    V = gaussian(4, 3, seed=7).requires_grad_()
    assert torch.autograd.gradcheck(householder_product, (V,))
    assert torch.autograd.gradcheck(lambda V: householder_product(V, columns=2), (V,))
    square = gaussian(3, 3, seed=8).requires_grad_()
    assert torch.autograd.gradcheck(householder_product, (square,))


# The hot path of householder_svd: unscaled vectors, hand-written backward (Note [WY backward])

THIN_CASES = [(1, 1, 1), (6, 6, 6), (7, 3, 2), (5, 5, 3), (4, 6, 4), (6, 2, 6)]  # (n, k, p)


@pytest.mark.parametrize(("n", "k", "p"), THIN_CASES)
def test_hot_path_thin_product_matches_reflectors_one_at_a_time(n: int, k: int, p: int) -> None:
    V = gaussian(n, k, seed=n + 10 * k + 100 * p)
    assert torch.allclose(_thin_product(V, p), naive_product(V)[:, :p], rtol=0, atol=tol(n, F64))


@pytest.mark.parametrize(("n", "k", "p"), THIN_CASES)
def test_hot_path_backward_equals_autograd_through_the_wy_form(n: int, k: int, p: int) -> None:
    """Note [WY backward] against autograd on the same unscaled Eq. (hh-wy) graph."""
    V = gaussian(n, k, seed=n + k + p).requires_grad_()
    weight = gaussian(n, p, seed=7)
    (grad,) = torch.autograd.grad((_thin_product(V, p) * weight).sum(), V)
    X = torch.linalg.solve_triangular(wy_matrix(V), V, upper=True, left=False)
    Q = torch.eye(n, p, dtype=F64) - X @ V[:p].T
    (expected,) = torch.autograd.grad((Q * weight).sum(), V)
    assert torch.allclose(grad, expected, rtol=0, atol=tol(n * n, F64) * (1 + expected.abs().max().item()))


@pytest.mark.parametrize(("n", "k", "p"), THIN_CASES)
def test_hot_path_gradcheck(n: int, k: int, p: int) -> None:
    V = gaussian(n, k, seed=3).requires_grad_()
    assert torch.autograd.gradcheck(lambda V: _thin_product(V, p), (V,))


def test_hot_path_of_a_batch_is_each_item_and_passes_gradcheck() -> None:
    V = gaussian(3, 5, 4, seed=4).requires_grad_()
    Q = _thin_product(V, 3)
    for i in range(3):
        assert torch.allclose(Q[i], naive_product(V[i].detach())[:, :3], rtol=0, atol=tol(5, F64))
    assert torch.autograd.gradcheck(lambda V: _thin_product(V, 3), (V,))


def test_hot_path_refuses_a_second_derivative() -> None:
    V = gaussian(4, 4, seed=5).requires_grad_()
    with pytest.raises(RuntimeError, match="no second derivative"):
        torch.autograd.grad(_thin_product(V, 4).sum(), V, create_graph=True)


def test_hot_path_keeps_the_device_of_v() -> None:
    V = torch.empty(5, 3, device="meta")
    assert _thin_product(V, 2).device.type == "meta"


def test_zero_reflector_vector_is_a_clear_error() -> None:
    V = gaussian(5, 3)
    V[:, 1] = 0
    with pytest.raises(ValueError, match=r"every reflector vector \(column of V\) must be non-zero"):
        householder_product(V)
    with pytest.raises(ValueError, match="must be non-zero"):
        apply_reflectors(V, gaussian(5, 2))
    assert torch.isnan(householder_product(V, check=False)).any()


# Applying reflectors without forming Q: Book: Eq. (hh-wy)


@pytest.mark.parametrize(("n", "k"), SHAPES)
def test_apply_matches_materialised_product(n: int, k: int) -> None:
    V, X = gaussian(n, k, seed=1), gaussian(n, 3, seed=2)
    Q = naive_product(V)
    assert torch.allclose(apply_reflectors(V, X), Q @ X, rtol=0, atol=tol(n, F64))
    assert torch.allclose(apply_reflectors(V, X, transpose=True), Q.T @ X, rtol=0, atol=tol(n, F64))
    x = X[:, 0]
    assert torch.allclose(apply_reflectors(V, x), Q @ x, rtol=0, atol=tol(n, F64))


def test_apply_order_is_last_reflector_first() -> None:
    V, x = gaussian(4, 2), gaussian(4, seed=5)
    expected = reflector(V[:, 0]) @ (reflector(V[:, 1]) @ x)
    assert torch.allclose(apply_reflectors(V, x), expected, rtol=0, atol=tol(4, F64))


def test_apply_broadcasts_a_batch_of_vectors() -> None:
    V, X = gaussian(6, 4), gaussian(2, 6, 3, seed=9)
    Y = apply_reflectors(V, X)
    assert Y.shape == (2, 6, 3)
    assert torch.allclose(Y, householder_product(V) @ X, rtol=0, atol=tol(6, F64))


def test_apply_gradcheck() -> None:
    V = gaussian(4, 2, seed=3).requires_grad_()
    X = gaussian(4, 2, seed=4).requires_grad_()
    assert torch.autograd.gradcheck(apply_reflectors, (V, X))
    assert torch.autograd.gradcheck(lambda V, X: apply_reflectors(V, X, transpose=True), (V, X))


# Every orthogonal matrix is a product of at most n reflectors: Book: Eq. (hh-cartan)


@pytest.mark.parametrize("dtype", [torch.float32, F64])
@pytest.mark.parametrize("n", [1, 2, 5, 16])
def test_recover_reflectors_rebuilds_a_haar_random_orthogonal_matrix(dtype: torch.dtype, n: int) -> None:
    for seed in range(3):
        Q = orthogonal(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)
        V = recover_reflectors(Q)
        m = V.shape[1]
        assert m <= n
        assert torch.allclose(householder_product(V), Q, rtol=0, atol=tol(n, dtype))
        assert torch.linalg.det(Q.double()).item() == pytest.approx((-1.0) ** m, abs=tol(n, dtype))
        assert torch.allclose(V.norm(dim=0), torch.ones(m, dtype=dtype), rtol=0, atol=tol(n, dtype))


def test_recover_reflectors_of_simple_matrices() -> None:
    assert recover_reflectors(torch.eye(3, dtype=F64)).shape == (3, 0)
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=F64)
    assert recover_reflectors(swap).shape == (2, 1)
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=F64))
    V = recover_reflectors(flip)
    assert V.shape == (3, 2)
    assert torch.allclose(householder_product(V), flip, rtol=0, atol=tol(3, F64))


# The reach of k reflectors: Book: Eq. (hh-reach)


def rotation(angle: float) -> torch.Tensor:
    c, s = math.cos(angle), math.sin(angle)
    return torch.tensor([[c, -s], [s, c]], dtype=F64)


BASIS = orthogonal(6, generator=torch.Generator().manual_seed(5), dtype=F64)
ANGLES = (0.3, 2.5, 1.2)


def rotation_blocks(angles: tuple[float, ...]) -> torch.Tensor:
    """Block-diagonal 2 × 2 rotations by ``angles`` in the random orthonormal basis ``BASIS``."""
    return BASIS @ torch.block_diag(*[rotation(a) for a in angles]) @ BASIS.T


def rotation_reflectors(block: int, angle: float) -> torch.Tensor:
    """Two reflector vectors whose product rotates the plane of ``block`` by ``angle``:
    H(b₁) H(cos(θ/2) b₁ − sin(θ/2) b₂) with b₁, b₂ the block's basis vectors."""
    b1, b2 = BASIS[:, 2 * block], BASIS[:, 2 * block + 1]
    return torch.stack([b1, math.cos(angle / 2) * b1 - math.sin(angle / 2) * b2], dim=1)


def test_distance_bound_is_attained_by_the_largest_rotation_blocks() -> None:
    Q = rotation_blocks(ANGLES)
    by_size = sorted(range(len(ANGLES)), key=lambda i: -ANGLES[i])
    for blocks in range(len(ANGLES) + 1):
        kept = by_size[:blocks]
        V = torch.cat([BASIS.new_zeros(6, 0)] + [rotation_reflectors(i, ANGLES[i]) for i in kept], dim=1)
        error = torch.linalg.matrix_norm(Q - householder_product(V)).item()
        assert error == pytest.approx(reflector_distance_bound(Q, 2 * blocks).item(), abs=tol(6, F64))
        # each block left out contributes its singular value 2|sin(θ/2)| twice
        expected = math.sqrt(sum(2 * (2 * math.sin(ANGLES[i] / 2)) ** 2 for i in by_size[blocks:]))
        assert error == pytest.approx(expected, abs=tol(6, F64))


def test_distance_bound_of_the_wrong_parity_is_two() -> None:
    eye = torch.eye(5, dtype=F64)
    assert reflector_distance_bound(eye, 0).item() == 0.0
    assert reflector_distance_bound(eye, 1).item() == pytest.approx(2.0)
    # ‖I − H(u)‖_F = ‖2 u uᵀ‖_F = 2 for a unit u: the parity bound is attained.
    assert torch.linalg.matrix_norm(eye - reflector(gaussian(5))).item() == pytest.approx(2.0, abs=tol(5, F64))


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 8), k=st.integers(0, 9), seed=st.integers(0, 2**31 - 1))
def test_property_no_product_of_k_reflectors_beats_the_bound(n: int, k: int, seed: int) -> None:
    Q = orthogonal(n, generator=torch.Generator().manual_seed(seed), dtype=F64)
    P = householder_product(gaussian(n, k, seed=seed + 1))
    assert torch.linalg.matrix_norm(Q - P).item() >= reflector_distance_bound(Q, k).item() - tol(n, F64)


@pytest.mark.parametrize("n", [3, 4, 7])
def test_distance_bound_vanishes_with_n_reflectors_of_the_right_parity(n: int) -> None:
    Q = orthogonal(n, generator=torch.Generator().manual_seed(n), dtype=F64)
    k = n if torch.linalg.det(Q).item() * (-1) ** n > 0 else n - 1
    assert reflector_distance_bound(Q, k).item() <= tol(n, F64)
    assert reflector_distance_bound(Q, k + 1).item() == pytest.approx(2.0)


def test_fit_reaches_the_bound_when_the_parity_matches() -> None:
    Q = rotation_blocks(ANGLES)
    for k in (2, 4):
        V, errors = fit_reflectors(Q, k, starts=3, steps=400, generator=torch.Generator().manual_seed(0))
        bound = reflector_distance_bound(Q, k).item()
        assert V.shape == (6, k) and errors.shape == (3,)
        assert errors.min().item() == pytest.approx(bound, abs=1e-3)
        assert (errors >= bound - tol(6, F64)).all()
        best = torch.linalg.matrix_norm(Q - householder_product(V)).item()
        assert best == pytest.approx(errors.min().item(), abs=tol(6, F64))


# Bad input: one row per (call, error, message)

BAD_INPUTS = [
    (lambda: reflector(torch.zeros(3)), ValueError, "u must be non-zero"),
    (lambda: reflector(torch.ones(2, 2)), ValueError, r"u must be a non-empty vector of shape \(n,\)"),
    (lambda: reflector(torch.ones(3, dtype=torch.int64)), TypeError, "u must be a floating-point tensor"),
    (lambda: wy_matrix(gaussian(5)), ValueError, r"U must have shape \(\.\.\., n, k\)"),
    (lambda: wy_matrix(torch.ones(3, 2, dtype=torch.int64)), TypeError, "U must be a floating-point tensor"),
    (lambda: householder_product(gaussian(5)), ValueError, r"V must have shape \(\.\.\., n, k\)"),
    (lambda: householder_product(torch.empty(0, 2)), ValueError, r"V must have shape \(\.\.\., n, k\) with n >= 1"),
    (lambda: householder_product(torch.ones(3, 2, dtype=torch.int64)), TypeError, "V must be a floating-point tensor"),
    (lambda: householder_product([[1.0]]), TypeError, "V must be a torch.Tensor"),
    (lambda: householder_product(gaussian(5, 3), columns=6), ValueError, "columns must satisfy 1 <= columns <= n = 5"),
    (lambda: householder_product(gaussian(5, 3), columns=0), ValueError, "columns must be a positive int"),
    (lambda: householder_product(gaussian(5, 3), columns=2.0), TypeError, "columns must be an int"),
    (lambda: apply_reflectors(gaussian(5, 3), gaussian(4, 2)), ValueError, r"X must have shape \(\.\.\., 5, m\) or \(5,\)"),
    (lambda: apply_reflectors(gaussian(5, 3), gaussian(4)), ValueError, "X must have shape"),
    (lambda: apply_reflectors(gaussian(5, 3), torch.ones(5, 2)), TypeError, "X must have the dtype of V"),
    (
        lambda: apply_reflectors(gaussian(5, 3), torch.ones(5, 2, dtype=torch.int64)),
        TypeError,
        "X must be a floating-point tensor",
    ),
    (lambda: recover_reflectors(2.0 * torch.eye(3)), ValueError, "Q must be orthogonal"),
    (lambda: recover_reflectors(torch.ones(3, 2)), ValueError, r"Q must be a square matrix of shape \(n, n\)"),
    (lambda: recover_reflectors(torch.eye(3, dtype=torch.int64)), TypeError, "Q must be a floating-point tensor"),
    (lambda: reflector_distance_bound(torch.eye(3), -1), ValueError, "k must be non-negative"),
    (lambda: reflector_distance_bound(torch.eye(3), 1.0), TypeError, "k must be an int"),
    (lambda: reflector_distance_bound(torch.ones(3, 2), 1), ValueError, "Q must be a square matrix"),
    (lambda: fit_reflectors(torch.eye(3), 1, lr=0.0), ValueError, "lr must be positive"),
    (lambda: fit_reflectors(torch.eye(3), 1, lr=math.inf), ValueError, "lr must be finite, got inf"),
    (lambda: fit_reflectors(torch.eye(3), 1, lr=math.nan), ValueError, "lr must be finite, got nan"),
    (lambda: fit_reflectors(torch.eye(3), 1, lr="0.1"), TypeError, "lr must be a real number"),
    (lambda: fit_reflectors(torch.eye(3), 0), ValueError, "k must be a positive int"),
    (lambda: fit_reflectors(torch.eye(3), 1, starts=0), ValueError, "starts must be a positive int"),
    (lambda: fit_reflectors(torch.eye(3), 1, steps=0), ValueError, "steps must be a positive int"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS, ids=[row[2] for row in BAD_INPUTS])
def test_bad_input_raises_clear_errors(call, error, match) -> None:
    with pytest.raises(error, match=match):
        call()
