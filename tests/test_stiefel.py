"""Tests for orthobook.stiefel against the book's equations (float64 oracles, properties)."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from orthobook.init import orthogonal
from orthobook.stiefel import (
    StiefelParameter,
    cayley_retraction_full,
    cayley_retraction_lowrank,
    cayley_retraction_square,
    cayley_step,
    newton_schulz_step,
    orthogonality_error,
    project_tangent,
    qr_retraction,
    reorthonormalize,
    riemannian_gradient,
    skew,
    sym,
)

F64 = torch.float64
DTYPES = (torch.float32, torch.float64)
# Acceptance bounds of the issue for the orthogonality error one Cayley step may add.
STEP_ORTH_TOL = {torch.float64: 1e-12, torch.float32: 1e-6}
SHAPES = [(9, 2), (10, 4), (7, 3), (6, 6), (4, 4), (5, 1)]


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def frame(n: int, p: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    """A Haar-random (n, p) frame."""
    return orthogonal(n, generator=torch.Generator().manual_seed(seed), dtype=dtype)[:, :p]


def randn(*shape: int, dtype: torch.dtype = F64, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def inner(A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
    return (A * B).sum()


def cayley_generator(Y: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The skew matrix A = G Yᵀ − Y Gᵀ of Book: Eq. (stiefel-cayley)."""
    return G @ Y.mT - Y @ G.mT


def tangency_error(Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """‖YᵀZ + ZᵀY‖_F: zero iff Z is tangent at Y (Book: Eq. (stiefel-tangent))."""
    return torch.linalg.matrix_norm(Y.mT @ Z + Z.mT @ Y)


# --- skew, sym, tangent space ------------------------------------------------------------


def test_skew_and_sym_split_a_matrix():
    A = randn(2, 5, 5)
    assert torch.allclose(skew(A) + sym(A), A, atol=tol(F64, 5))
    assert torch.equal(skew(A).mT, -skew(A))
    assert torch.equal(sym(A).mT, sym(A))


@pytest.mark.parametrize("n,p", SHAPES)
def test_project_tangent_is_an_orthogonal_projection(n, p):
    """Book: Eq. (stiefel-tangent): P_Y(Z) is tangent, P_Y is idempotent, Z − P_Y(Z) = Y S."""
    Y, Z = frame(n, p), randn(n, p, seed=1)
    P = project_tangent(Y, Z)
    assert tangency_error(Y, P) <= tol(F64, n)
    assert torch.allclose(project_tangent(Y, P), P, atol=tol(F64, n))
    S = Y.mT @ (Z - P)
    assert torch.allclose(Y @ S, Z - P, atol=tol(F64, n))
    assert torch.allclose(S, S.mT, atol=tol(F64, n))


@pytest.mark.parametrize("n,p", SHAPES)
def test_riemannian_gradient_represents_df_in_the_canonical_metric(n, p):
    """Book: Eq. (stiefel-canonical-gradient): ⟨∇_c f, ξ⟩_c = ⟨G, ξ⟩ for every tangent ξ, and ∇_c f = A Y."""
    Y, G = frame(n, p), randn(n, p, seed=1)
    grad = riemannian_gradient(Y, G)
    assert tangency_error(Y, grad) <= tol(F64, n)
    assert torch.allclose(grad, cayley_generator(Y, G) @ Y, atol=tol(F64, n))
    metric = torch.eye(n, dtype=F64) - 0.5 * Y @ Y.mT
    for seed in range(3):
        xi = project_tangent(Y, randn(n, p, seed=10 + seed))
        assert torch.isclose(inner(grad, metric @ xi), inner(G, xi), atol=tol(F64, n))


# --- Cayley retraction -------------------------------------------------------------------


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize("on_manifold", [True, False])
def test_lowrank_and_full_cayley_agree(n, p, on_manifold):
    """Book: Eq. (stiefel-cayley-lowrank) = Eq. (stiefel-cayley) to 1e-10, on and off the manifold."""
    Y = frame(n, p) if on_manifold else randn(n, p, seed=2)
    G = randn(n, p, seed=1)
    for lr in (1e-3, 0.3, 5.0):
        full = cayley_retraction_full(Y, G, lr)
        low = cayley_retraction_lowrank(Y, G, lr)
        assert (full - low).abs().max() <= 1e-10


def test_cayley_step_is_the_naive_formula():
    """Book: Eq. (stiefel-cayley) against (I + τ/2 A)⁻¹ (I − τ/2 A) Y with an explicit inverse."""
    for n, p in SHAPES:
        Y, G, lr = frame(n, p), randn(n, p, seed=1), 0.7
        A = cayley_generator(Y, G)
        eye = torch.eye(n, dtype=F64)
        naive = torch.linalg.inv(eye + lr / 2 * A) @ (eye - lr / 2 * A) @ Y
        assert torch.allclose(cayley_step(Y, G, lr), naive, atol=tol(F64, n))


@pytest.mark.parametrize("dtype", DTYPES)
def test_cayley_step_is_batched(dtype):
    Y = torch.stack([frame(8, 3, dtype, seed) for seed in range(4)]).reshape(2, 2, 8, 3)
    G = randn(2, 2, 8, 3, dtype=dtype, seed=1)
    for step in (cayley_step, cayley_retraction_full, cayley_retraction_lowrank):
        batched = step(Y, G, 0.5)
        looped = torch.stack([step(y, g, 0.5) for y, g in zip(Y.reshape(4, 8, 3), G.reshape(4, 8, 3))])
        assert torch.allclose(batched.reshape(4, 8, 3), looped, atol=tol(dtype, 8))
    assert orthogonality_error(batched).shape == (2, 2)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p", SHAPES + [(16, 5), (16, 16)])
def test_cayley_step_stays_on_the_manifold(dtype, n, p):
    """Book: Eq. (stiefel-cayley): YᵀY is preserved; one step adds ≤ 1e-12 (float64), ≤ 1e-6 (float32).

    The float32 bound is on what the step adds to the error of its input (a float32 frame of
    size 16 is already 5e-7 off) for a unit gradient and τ ≤ 3; float32 rounding in the solve
    grows with τ‖A‖, the condition number of I + τ/2 A.
    """
    Y = frame(n, p, dtype)
    before = orthogonality_error(Y)
    for seed, lr in enumerate((1e-3, 0.1, 1.0, 3.0)):
        G = randn(n, p, dtype=dtype, seed=seed)
        Y1 = cayley_step(Y, G / torch.linalg.matrix_norm(G), lr)
        assert Y1.dtype == dtype and Y1.shape == (n, p)
        assert orthogonality_error(Y1) <= before + STEP_ORTH_TOL[dtype]


@pytest.mark.parametrize("n,p", SHAPES)
def test_long_cayley_steps_stay_on_the_manifold_in_float64(n, p):
    Y = frame(n, p)
    for seed, lr in enumerate((10.0, 1e3)):
        assert orthogonality_error(cayley_step(Y, randn(n, p, seed=seed), lr)) <= STEP_ORTH_TOL[F64]


@pytest.mark.parametrize("n", [1, 4, 7])
def test_square_cayley_is_the_full_solve_on_the_manifold(n):
    """Y − τ Y (I + τ/2 Ω)⁻¹ Ω with Ω = YᵀG − GᵀY equals Book: Eq. (stiefel-cayley) for Y ∈ O(n)."""
    Y, G = frame(n, n), randn(n, n, seed=1)
    A = cayley_generator(Y, G)
    eye = torch.eye(n, dtype=F64)
    for lr in (1e-3, 0.3, 5.0):
        square = cayley_retraction_square(Y, G, lr)
        naive = torch.linalg.inv(eye + lr / 2 * A) @ (eye - lr / 2 * A) @ Y
        assert torch.allclose(square, naive, atol=tol(F64, n) * (1 + lr))
        assert torch.allclose(square, cayley_retraction_full(Y, G, lr), atol=tol(F64, n) * (1 + lr))


def test_square_cayley_keeps_the_orthogonality_error_off_the_manifold():
    """Off O(n) the square form is Y times an orthogonal Cayley factor: Y Yᵀ and ‖YᵀY − I‖_F are kept."""
    Y, G = frame(6, 6) + 0.1 * randn(6, 6, seed=2), randn(6, 6, seed=3)
    Y1 = cayley_retraction_square(Y, G, 0.7)
    assert torch.allclose(Y1 @ Y1.mT, Y @ Y.mT, atol=tol(F64, 6))
    assert torch.isclose(orthogonality_error(Y1), orthogonality_error(Y), atol=tol(F64, 6))


def test_cayley_step_picks_the_form_by_shape():
    for (n, p), form in {(6, 6): cayley_retraction_square, (9, 2): cayley_retraction_lowrank, (6, 4): cayley_retraction_full}.items():
        Y, G = frame(n, p), randn(n, p, seed=1)
        assert torch.equal(cayley_step(Y, G, 0.4), form(Y, G, 0.4))


@pytest.mark.parametrize("dtype", DTYPES)
def test_square_cayley_is_batched(dtype):
    Y = torch.stack([frame(5, 5, dtype, seed) for seed in range(3)])
    G = randn(3, 5, 5, dtype=dtype, seed=1)
    looped = torch.stack([cayley_retraction_square(y, g, 0.5) for y, g in zip(Y, G)])
    assert torch.allclose(cayley_retraction_square(Y, G, 0.5), looped, atol=tol(dtype, 5))


def test_a_tensor_step_size_is_its_value():
    Y, G = frame(7, 3), randn(7, 3, seed=1)
    for step in (cayley_step, cayley_retraction_full, cayley_retraction_lowrank):
        assert torch.equal(step(Y, G, torch.tensor(0.3, dtype=F64)), step(Y, G, 0.3))
        assert torch.equal(step(Y, G, torch.tensor([0.3], dtype=F64)), step(Y, G, 0.3))


@pytest.mark.parametrize("n,p", [(5, 2), (3, 3), (4, 1)])
def test_cayley_gradcheck(n, p):
    """gradcheck (float64) of both forms of Book: Eq. (stiefel-cayley) w.r.t. Y and G."""
    Y = frame(n, p).requires_grad_()
    G = randn(n, p, seed=1).requires_grad_()
    assert torch.autograd.gradcheck(lambda Y, G: cayley_retraction_lowrank(Y, G, 0.4), (Y, G))
    assert torch.autograd.gradcheck(lambda Y, G: cayley_retraction_full(Y, G, 0.4), (Y, G))
    if n == p:
        assert torch.autograd.gradcheck(lambda Y, G: cayley_retraction_square(Y, G, 0.4), (Y, G))


# --- descent -------------------------------------------------------------------------------


def quadratic_problem(n: int, p: int, seed: int):
    """f(Y) = ⟨C, Y⟩ + ½ tr(Yᵀ M Y) with symmetric M, and its Euclidean gradient C + M Y."""
    C, B = randn(n, p, seed=seed), randn(n, n, seed=seed + 1)
    M = B + B.mT

    def f(Y: torch.Tensor) -> torch.Tensor:
        return inner(C, Y) + 0.5 * inner(Y, M @ Y)

    return f, (lambda Y: C + M @ Y), torch.linalg.matrix_norm(M)


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 9),
    p_fraction=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_cayley_step_is_a_descent_direction(n, p_fraction, seed):
    """Book: Eq. (stiefel-cayley-descent): d/dτ f(Y(τ))|₀ = ⟨G, −A Y⟩ = −½‖A‖²_F, and f decreases."""
    p = max(1, round(p_fraction * n))
    f, grad, norm_M = quadratic_problem(n, p, seed)
    Y = frame(n, p, seed=seed)
    G = grad(Y)
    A = cayley_generator(Y, G)
    rate = 0.5 * torch.linalg.matrix_norm(A) ** 2
    assert torch.isclose(inner(G, -A @ Y), -rate, rtol=1e-10, atol=tol(F64, n) * (1 + rate))
    if rate <= 1e-8:  # Y is (nearly) a critical point, e.g. n = p = 1: nothing to descend
        return
    tau = 1e-3 / (1 + torch.linalg.matrix_norm(G) + norm_M).item()
    assert f(cayley_step(Y, G, tau)) < f(Y)
    tau = 1e-7 / (1 + torch.linalg.matrix_norm(A)).item()
    slope = (f(cayley_step(Y, G, tau)) - f(Y)) / tau
    assert torch.isclose(slope, -rate, rtol=1e-4, atol=1e-6)


def paper_code_step(W: torch.Tensor, G: torch.Tensor, lr: float) -> torch.Tensor:
    """The update of the paper's released code, A = GᵀW − WᵀG: the counter-example only."""
    A = G.mT @ W - W.mT @ G
    eye = torch.eye(W.shape[-1], dtype=W.dtype)
    return torch.linalg.solve(eye + lr / 2 * A, (eye - lr / 2 * A) @ W)


def test_paper_code_variant_ascends_at_the_identity():
    """Note [Cayley descent direction]: at W = I, A = GᵀW − WᵀG gives slope +½‖G − Gᵀ‖²_F > 0."""
    n = 6
    C = randn(n, n, seed=3)  # f(W) = ⟨C, W⟩, so G = C, not symmetric
    W = torch.eye(n, dtype=F64)
    tau = 1e-3

    def f(X: torch.Tensor) -> torch.Tensor:
        return inner(C, X)

    assert f(paper_code_step(W, C, tau)) > f(W)
    assert f(cayley_step(W, C, tau)) < f(W)
    slope = (f(paper_code_step(W, C, 1e-7)) - f(W)) / 1e-7
    assert torch.isclose(slope, 0.5 * torch.linalg.matrix_norm(C - C.mT) ** 2, rtol=1e-5)


def test_paper_code_variant_is_not_a_descent_direction_on_random_instances():
    """On Haar W and quadratic losses the paper-code slope ⟨G, −A W⟩ takes both signs; ours is always < 0."""
    n, slopes = 5, []
    for seed in range(30):
        f, grad, _ = quadratic_problem(n, n, seed)
        W = frame(n, n, seed=seed)
        G = grad(W)
        A_paper = G.mT @ W - W.mT @ G
        slopes.append(inner(G, -A_paper @ W).item())
        assert inner(G, -cayley_generator(W, G) @ W) < 0
    ascents = [s for s in slopes if s > 0]
    assert ascents and len(ascents) < len(slopes)


# --- QR retraction, re-orthonormalisation, orthogonality error -----------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,p", SHAPES)
def test_qr_retraction(dtype, n, p):
    """Book: Eq. (stiefel-qr): Y + Z = Q R with R upper triangular, diag(R) > 0; R_Y(0) = Y."""
    Y, Z = frame(n, p, dtype), 0.3 * randn(n, p, dtype=dtype, seed=1)
    Q = qr_retraction(Y, Z)
    assert orthogonality_error(Q) <= tol(dtype, n)
    R = Q.mT @ (Y + Z)
    assert torch.allclose(Q @ R, Y + Z, atol=tol(dtype, n))
    assert torch.allclose(torch.tril(R, -1), torch.zeros_like(R), atol=tol(dtype, n))
    assert (torch.diagonal(R) > 0).all()
    assert torch.allclose(qr_retraction(Y, torch.zeros_like(Y)), Y, atol=tol(dtype, n))


@pytest.mark.parametrize("n,p", SHAPES)
def test_reorthonormalize_is_the_polar_factor(n, p):
    """Book: Eq. (stiefel-polar): for Y = Q S with S symmetric positive definite, the result is Q."""
    Q = frame(n, p)
    E = randn(p, p, seed=1)
    S = torch.eye(p, dtype=F64) + 1e-3 * (E + E.mT)
    X = reorthonormalize(Q @ S)
    assert torch.allclose(X, Q, atol=tol(F64, n))
    assert orthogonality_error(X) <= tol(F64, n)


def test_reorthonormalize_repairs_float32_drift():
    Y = frame(12, 5, torch.float32) + 1e-4 * randn(12, 5, dtype=torch.float32, seed=4)
    assert orthogonality_error(Y) > 1e-5
    assert orthogonality_error(reorthonormalize(Y)) <= tol(torch.float32, 12)


@pytest.mark.parametrize("n,p", SHAPES)
def test_newton_schulz_step_maps_singular_values(n, p):
    """Book: Eq. (stiefel-polar): Y = P Σ Qᵀ becomes P diag(σ (3 − σ²)/2) Qᵀ, against the SVD."""
    Y = randn(n, p, seed=1) / n**0.5 + frame(n, p)
    P, sigma, Qt = torch.linalg.svd(Y, full_matrices=False)
    expected = P @ torch.diag(sigma * (3 - sigma**2) / 2) @ Qt
    assert torch.allclose(newton_schulz_step(Y), expected, atol=tol(F64, n) * (1 + sigma.max().item() ** 3))


def near_frame(scale: float, dtype: torch.dtype) -> torch.Tensor:
    """A (12, 5) frame stretched by I + scale (E + Eᵀ): ‖YᵀY − I‖_F about 10 scale."""
    E = randn(5, 5, dtype=dtype, seed=1)
    return frame(12, 5, dtype) @ (torch.eye(5, dtype=dtype) + scale * (E + E.mT))


@pytest.mark.parametrize("scale", [1e-3, 1e-5])
def test_newton_schulz_step_converges_quadratically(scale):
    """From ‖YᵀY − I‖_F = δ one step gives at most about ¾ δ² (float64)."""
    Y = near_frame(scale, F64)
    delta, after = orthogonality_error(Y).item(), orthogonality_error(newton_schulz_step(Y)).item()
    assert 0.1 * delta**2 <= after <= 0.8 * delta**2
    assert newton_schulz_step(Y.expand(2, 12, 5)).shape == (2, 12, 5)


def test_newton_schulz_step_removes_float32_drift():
    Y = near_frame(1e-6, torch.float32)
    assert orthogonality_error(Y) > 1e-5
    assert orthogonality_error(newton_schulz_step(Y)) <= tol(torch.float32, 12)


def test_orthogonality_error_oracle():
    """Book: Eq. (stiefel-orth-error) against an explicit double sum."""
    Y = randn(3, 6, 4, seed=5)
    naive = torch.stack(
        [
            sum(((y[:, i] @ y[:, j]) - float(i == j)) ** 2 for i in range(4) for j in range(4)).sqrt()
            for y in Y
        ]
    )
    assert torch.allclose(orthogonality_error(Y), naive, atol=tol(F64, 6))
    assert orthogonality_error(2 * torch.eye(4, dtype=F64)) == 6.0  # sqrt(4 · 3²)
    assert orthogonality_error(frame(7, 7)) <= tol(F64, 7)


# --- devices --------------------------------------------------------------------------------


DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES)
def test_functions_run_on_every_device(device):
    Y, G = frame(9, 3).to(device), randn(9, 3, seed=1).to(device)
    for out in (
        cayley_step(Y, G, 0.2),
        qr_retraction(Y, project_tangent(Y, G)),
        reorthonormalize(Y),
        newton_schulz_step(Y),
        riemannian_gradient(Y, G),
        cayley_retraction_square(frame(4, 4).to(device), randn(4, 4).to(device), 0.2),
    ):
        assert out.device.type == device
    assert orthogonality_error(cayley_step(Y, G, 0.2)).item() <= 1e-12


# --- StiefelParameter -------------------------------------------------------------------------


def module_with_frame() -> nn.Module:
    module = nn.Module()
    module.U = StiefelParameter(frame(5, 3, torch.float32))
    return module


def test_stiefel_parameter_is_a_parameter():
    module = module_with_frame()
    assert isinstance(module.U, nn.Parameter) and module.U.requires_grad
    assert [name for name, _ in module.named_parameters()] == ["U"]
    assert "StiefelParameter" in repr(module.U)


def test_stiefel_parameter_survives_copies_and_conversions():
    module = module_with_frame()
    for moved in (copy.deepcopy(module), module.to("cpu"), copy.deepcopy(module).double()):
        assert type(moved.U) is StiefelParameter
    assert copy.deepcopy(module).double().U.dtype == F64
    buffer = io.BytesIO()
    torch.save(module, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert type(loaded.U) is StiefelParameter and loaded.U.requires_grad
    assert torch.equal(loaded.U, module.U)


def test_stiefel_parameter_state_dict_round_trip():
    module, other = module_with_frame(), module_with_frame()
    with torch.no_grad():
        other.U.zero_()
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    other.load_state_dict(torch.load(buffer, weights_only=True))
    assert type(other.U) is StiefelParameter and torch.equal(other.U, module.U)


# --- bad input ------------------------------------------------------------------------------


def test_non_tall_frames_are_rejected():
    wide = randn(2, 5)
    with pytest.raises(ValueError, match=r"Y must be a tall or square frame .* non-tall"):
        cayley_step(wide, wide, 0.1)
    with pytest.raises(ValueError, match="non-tall"):
        orthogonality_error(wide)
    with pytest.raises(ValueError, match="data must be a tall or square frame"):
        StiefelParameter(wide)
    with pytest.raises(ValueError, match=r"Y must have shape \(\.\.\., n, p\)"):
        reorthonormalize(randn(5))
    with pytest.raises(ValueError, match=r"Y must have shape \(\.\.\., n, p\)"):
        newton_schulz_step(randn(5))
    with pytest.raises(ValueError, match=r"Y must be a square frame"):
        cayley_retraction_square(frame(5, 2), randn(5, 2), 0.1)


def test_wrong_dtypes_are_rejected():
    Y = frame(5, 2)
    with pytest.raises(TypeError, match="Y must be a floating-point tensor"):
        cayley_step(torch.ones(5, 2, dtype=torch.int64), Y, 0.1)
    with pytest.raises(TypeError, match="G must have the dtype of Y"):
        cayley_step(Y, Y.float(), 0.1)
    with pytest.raises(TypeError, match="G must be a torch.Tensor"):
        riemannian_gradient(Y, Y.numpy())
    with pytest.raises(TypeError, match="data must be a floating-point tensor"):
        StiefelParameter(torch.eye(3, dtype=torch.int32))
    with pytest.raises(TypeError, match="A must be a floating-point tensor"):
        skew(torch.eye(3, dtype=torch.int32))


def test_mismatched_shapes_and_devices_are_rejected():
    Y = frame(5, 2)
    with pytest.raises(ValueError, match=r"G must have the shape of Y, \(5, 2\); got \(5, 3\)"):
        cayley_step(Y, randn(5, 3), 0.1)
    with pytest.raises(ValueError, match="Z must have the shape of Y"):
        project_tangent(Y, randn(2, 5, 2))
    with pytest.raises(ValueError, match="G must be on the device of Y"):
        cayley_step(Y, torch.empty(5, 2, dtype=F64, device="meta"), 0.1)
    with pytest.raises(ValueError, match=r"A must have shape \(\.\.\., n, n\)"):
        sym(randn(3, 4))


@pytest.mark.parametrize(
    "lr,error,match",
    [
        (float("nan"), ValueError, "lr must be finite"),
        (float("inf"), ValueError, "lr must be finite"),
        ("0.1", TypeError, "lr must be a real number"),
        (True, TypeError, "lr must be a real number"),
        (torch.ones(2, dtype=F64), ValueError, "lr must be a one-element floating tensor"),
        (torch.tensor(1), ValueError, "lr must be a one-element floating tensor"),
    ],
)
def test_bad_step_sizes_are_rejected(lr, error, match):
    Y = frame(5, 2)
    with pytest.raises(error, match=match):
        cayley_step(Y, Y, lr)
