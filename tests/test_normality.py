"""Tests for orthobook.normality: Henrici's departure from normality (Book: Eq. (nn-henrici)),
the Schur form and its feedforward part (Book: Eq. (nn-schur)) and transient growth (Book: Eq.
(nn-transient))."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.init import chain, fb_chain, orthogonal
from orthobook.normality import feedforward_part, henrici, schur, transient_growth

F64, C128 = torch.float64, torch.complex128


def tol(n: int, dtype: torch.dtype = F64) -> float:
    return 10 * n * torch.finfo(dtype).eps


def henrici_tol(W: torch.Tensor) -> float:
    """Henrici's index is the square root of a difference of O(‖W‖_F²) terms, so round-off
    of relative size tol(n) in the difference shows up as sqrt(tol(n)) ‖W‖_F."""
    return math.sqrt(tol(W.shape[0])) * torch.linalg.matrix_norm(W).item()


def gaussian(*shape: int, seed: int = 0, dtype: torch.dtype = F64) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def normal_matrices(n: int = 7) -> dict[str, torch.Tensor]:
    Q = orthogonal(n, generator=torch.Generator().manual_seed(1), dtype=F64)
    S = gaussian(n, n, seed=2)
    U, _ = torch.linalg.qr(gaussian(n, n, seed=3, dtype=C128))
    return {
        "orthogonal": Q,
        "symmetric": S + S.T,
        "skew": S - S.T,
        "diagonal": torch.diag(gaussian(n, seed=4)),
        "complex normal": U @ torch.diag(gaussian(n, seed=5, dtype=C128)) @ U.mH,
    }


def check_schur(W: torch.Tensor) -> None:
    T, Z = schur(W)
    n = W.shape[0]
    scale = max(torch.linalg.matrix_norm(W).item(), 1.0)
    assert T.dtype == C128 and Z.dtype == C128
    assert torch.equal(T, torch.triu(T))
    assert torch.linalg.matrix_norm(Z.mH @ Z - torch.eye(n, dtype=C128)).item() <= tol(n)
    assert torch.linalg.matrix_norm(Z @ T @ Z.mH - W.to(C128)).item() <= tol(n) * scale


# Henrici index: Book: Eq. (nn-henrici)


@pytest.mark.parametrize("name", ["orthogonal", "symmetric", "skew", "diagonal", "complex normal"])
def test_henrici_vanishes_for_normal_matrices(name):
    W = normal_matrices()[name]
    assert 0.0 <= henrici(W) <= henrici_tol(W)
    assert 0.0 <= henrici(W, normalized=True) <= henrici_tol(W) / torch.linalg.matrix_norm(W).item()


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), alpha=st.one_of(st.just(0.0), st.floats(1e-3, 3.0)))
def test_henrici_of_the_chain(n, alpha):
    W = chain(n, alpha, dtype=F64)
    assert henrici(W) == pytest.approx(alpha * math.sqrt(n - 1), rel=tol(n), abs=tol(n))
    assert henrici(W, normalized=True) == (1.0 if n > 1 and alpha > 0 else 0.0)


def test_henrici_is_invariant_under_unitary_similarity():
    W = gaussian(6, 6, seed=6)
    Q = orthogonal(6, generator=torch.Generator().manual_seed(7), dtype=F64)
    assert henrici(Q @ W @ Q.T) == pytest.approx(henrici(W), rel=1e-6)


def test_henrici_accepts_float32():
    assert henrici(chain(5, 0.5)) == pytest.approx(1.0, rel=tol(5, torch.float32))


# Schur form: Book: Eq. (nn-schur)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_schur_of_random_matrices(n, seed):
    W = gaussian(n, n, seed=seed)
    check_schur(W)
    T, _ = schur(W)
    distance = (torch.diagonal(T).unsqueeze(1) - torch.linalg.eigvals(W).unsqueeze(0)).abs()
    # The same eigenvalues in some order (random matrices have well-separated ones).
    assert distance.min(dim=0).values.max() <= 1e3 * tol(n) * torch.linalg.matrix_norm(W).item()
    assert distance.min(dim=1).values.max() <= 1e3 * tol(n) * torch.linalg.matrix_norm(W).item()


@pytest.mark.parametrize(
    "W",
    [
        chain(10, dtype=F64),
        chain(10, 0.5, dtype=F64).T,
        fb_chain(12, 0.3, dtype=F64),
        torch.roll(torch.eye(8, dtype=F64), 1, 0),  # a cyclic permutation: all |λ| = 1
        torch.eye(4, dtype=F64),
        torch.zeros(3, 3, dtype=F64),
        torch.tensor([[2.0]], dtype=F64),
        gaussian(6, 6, seed=8, dtype=C128),
    ],
    ids=["chain", "chain-T", "fb-chain", "permutation", "identity", "zero", "1x1", "complex"],
)
def test_schur_of_structured_matrices(W):
    check_schur(W)


def test_schur_of_a_chain_is_strictly_triangular():
    T, _ = schur(chain(15, 0.7, dtype=F64))
    assert torch.all(torch.diagonal(T) == 0)


# Feedforward part: Book: Eq. (nn-schur)


def test_feedforward_part_of_a_chain_is_the_whole_matrix():
    W = chain(20, 0.9, dtype=F64)
    N, share = feedforward_part(W)
    assert share == pytest.approx(1.0, rel=tol(20))
    assert torch.linalg.matrix_norm(N).item() == pytest.approx(torch.linalg.matrix_norm(W).item(), rel=tol(20))
    assert torch.equal(N, torch.triu(N, diagonal=1))


@pytest.mark.parametrize("name", ["orthogonal", "symmetric", "skew", "diagonal", "complex normal"])
def test_feedforward_part_of_a_normal_matrix_vanishes(name):
    W = normal_matrices()[name]
    N, share = feedforward_part(W)
    assert torch.linalg.matrix_norm(N).item() <= 1e3 * tol(7) * torch.linalg.matrix_norm(W).item()
    assert share <= 1e3 * tol(7)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(2, 10), seed=st.integers(0, 10_000))
def test_feedforward_share_is_the_normalized_henrici_index(n, seed):
    W = gaussian(n, n, seed=seed)
    _, share = feedforward_part(W)
    assert share == pytest.approx(henrici(W, normalized=True), abs=math.sqrt(tol(n)))


def test_feedforward_part_reveals_a_hidden_chain():
    """A chain seen in a random orthonormal basis has a full-looking W but the same share.

    The rotated chain is a Jordan block perturbed by round-off of size eps, which moves its
    eigenvalues by up to eps^(1/n) (Note [Schur form by shifted QR]): the share is 1 only up to
    that, about 0.05 here for each of the n eigenvalues.
    """
    n = 12
    Q = orthogonal(n, generator=torch.Generator().manual_seed(9), dtype=F64)
    W = Q @ chain(n, dtype=F64) @ Q.T
    assert torch.count_nonzero(W.abs() > 1e-3) > 100
    check_schur(W)
    eigenvalue_error = torch.finfo(F64).eps ** (1 / n)
    assert feedforward_part(W)[1] >= 1 - n * eigenvalue_error**2
    assert feedforward_part(torch.zeros(3, 3))[1] == 0.0


# Transient growth: Book: Eq. (nn-transient)


def test_transient_growth_matches_matrix_powers():
    W = fb_chain(10, 0.2, alpha=0.9, dtype=F64)
    g = transient_growth(W, 15)
    naive = torch.stack([torch.linalg.matrix_norm(torch.linalg.matrix_power(W, k), ord=2) for k in range(15)])
    assert torch.allclose(g, naive, rtol=tol(10) * 15, atol=0)
    rho = torch.linalg.eigvals(W).abs().max().item()
    assert torch.all(g >= rho ** torch.arange(15, dtype=F64) * (1 - tol(10) * 15))
    assert g.max() > 1.0 > rho  # non-normal amplification with a stable spectrum


def test_transient_growth_of_normal_and_chain_matrices():
    W = 0.8 * normal_matrices()["orthogonal"]
    assert torch.allclose(transient_growth(W, 6), 0.8 ** torch.arange(6, dtype=F64), rtol=tol(7) * 6, atol=0)
    g = transient_growth(chain(4, 0.5, dtype=F64), 6)
    assert torch.allclose(g, torch.tensor([1.0, 0.5, 0.25, 0.125, 0.0, 0.0], dtype=F64), rtol=tol(4), atol=0)


# Bad input


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="W must be a square matrix"):
        henrici(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="W must be a square matrix"):
        schur(torch.zeros(2, 3, dtype=C128))
    with pytest.raises(TypeError, match="W must be a torch.Tensor"):
        feedforward_part([[1.0]])
    with pytest.raises(TypeError, match="W must be a floating-point tensor"):
        schur(torch.eye(3, dtype=torch.int64))
    with pytest.raises(TypeError, match="normalized must be a bool"):
        henrici(torch.eye(2), normalized=1)
    with pytest.raises(ValueError, match="k_max must be a positive int"):
        transient_growth(torch.eye(2), 0)


def test_transient_growth_stays_on_the_device_of_W() -> None:
    """Shape-only run on the meta device: nothing is created on the CPU beside a device W."""
    norms = transient_growth(0.5 * torch.eye(4, device="meta"), 3)
    assert norms.device.type == "meta" and norms.shape == (3,)
