"""Tests for orthobook.memory: the noise covariance (Book: Eq. (mem-noise-cov)), the Fisher
memory curve (Book: Eq. (mem-fmc)), its total (Book: Eq. (mem-jtot)) and the readout SNR
(Book: Eq. (mem-snr)), against float64 oracles and the closed forms of the book."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.init import chain, orthogonal
from orthobook.memory import fisher_memory_curve, noise_covariance, snr, total_memory

F64 = torch.float64
EPS = torch.finfo(F64).eps


def tol(n: int, dtype: torch.dtype = F64) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def stable(n: int, radius: float, seed: int = 0) -> torch.Tensor:
    """A random non-normal matrix rescaled to spectral radius ``radius``."""
    A = gaussian(n, n, seed=seed)
    return radius * A / torch.linalg.eigvals(A).abs().max()


def unit(n: int, seed: int = 0) -> torch.Tensor:
    v = gaussian(n, seed=seed)
    return v / torch.linalg.vector_norm(v)


def naive_series(W: torch.Tensor, noise: float, terms: int) -> torch.Tensor:
    """The float64 oracle: ε Σ_{k<terms} W^k (W^k)ᵀ, one term at a time."""
    C = torch.zeros_like(W)
    P = torch.eye(W.shape[0], dtype=F64)
    for _ in range(terms):
        C = C + noise * P @ P.T
        P = W @ P
    return C


def naive_fmc(W: torch.Tensor, v: torch.Tensor, C: torch.Tensor, k_max: int) -> torch.Tensor:
    """The float64 oracle: J(k) by a full n×n solve per lag."""
    directions = [torch.linalg.matrix_power(W, k) @ v for k in range(k_max)]
    return torch.stack([u @ torch.linalg.solve(C, u) for u in directions])


def normal_matrices(n: int = 8) -> dict[str, torch.Tensor]:
    """Stable normal matrices: scaled orthogonal, symmetric, and complex-eigenvalued normal."""
    Q = orthogonal(n, generator=torch.Generator().manual_seed(3), dtype=F64)
    S = gaussian(n, n, seed=4)
    S = S + S.T
    S = 0.95 * S / torch.linalg.eigvalsh(S).abs().max()
    blocks = []
    for j, r in enumerate(torch.linspace(0.3, 0.97, n // 2, dtype=F64)):
        c, s = math.cos(0.4 + j), math.sin(0.4 + j)
        blocks.append(r * torch.tensor([[c, -s], [s, c]], dtype=F64))
    rotations = Q @ torch.block_diag(*blocks) @ Q.T
    return {"scaled orthogonal": 0.9 * Q, "symmetric": S, "complex normal": rotations}


# Noise covariance: Book: Eq. (mem-noise-cov)


def test_noise_covariance_matches_truncated_sum_and_solves_lyapunov():
    n, noise = 12, 0.7
    W = stable(n, 0.8)
    C = noise_covariance(W, noise)
    terms = math.ceil(math.log(EPS) / math.log(0.8)) * 4  # past the transient, tail < eps
    C_ref = naive_series(W, noise, terms)
    scale = torch.linalg.matrix_norm(C_ref).item()
    assert torch.linalg.matrix_norm(C - C_ref).item() <= tol(n) * scale * 10
    residual = C - W @ C @ W.T - noise * torch.eye(n, dtype=F64)
    assert torch.linalg.matrix_norm(residual).item() <= tol(n) * scale
    assert torch.equal(C, C.T)


@settings(max_examples=20, deadline=None)
@given(horizon=st.integers(1, 40), seed=st.integers(0, 10_000))
def test_noise_covariance_horizon_is_the_truncated_sum(horizon, seed):
    n = 5
    W = orthogonal(n, generator=torch.Generator().manual_seed(seed), dtype=F64)  # ρ = 1: only a horizon works
    C = noise_covariance(W, 2.0, horizon=horizon)
    C_ref = naive_series(W, 2.0, horizon)
    assert torch.linalg.matrix_norm(C - C_ref).item() <= tol(n) * horizon * torch.linalg.matrix_norm(C_ref).item()


def test_noise_covariance_of_the_nilpotent_chain_is_the_finite_sum():
    n, alpha = 9, 0.8
    C = noise_covariance(chain(n, alpha, dtype=F64))
    i = torch.arange(n, dtype=F64)
    expected = torch.diag((1 - alpha ** (2 * (i + 1))) / (1 - alpha**2))  # C_ii = Σ_{k≤i} α^{2k}
    assert torch.allclose(C, expected, rtol=tol(n), atol=0)


def test_noise_covariance_accepts_float32_and_returns_float64():
    C = noise_covariance(0.5 * torch.eye(3))
    assert C.dtype == F64
    assert torch.allclose(C, torch.eye(3, dtype=F64) / 0.75, rtol=tol(3), atol=0)


# Fisher memory curve: Book: Eq. (mem-fmc)


@pytest.mark.parametrize("alpha", [0.5, 0.9, 1.0, 1.5])
@pytest.mark.parametrize("noise", [1.0, 0.3])
def test_chain_fmc_closed_form(alpha, noise):
    """Book: Eq. (mem-chain-fmc): J(k) = α^{2k}(1 − α²) / (ε (1 − α^{2(k+1)})) for k < n, then 0."""
    n, k_max = 20, 26
    e0 = torch.zeros(n, dtype=F64)
    e0[0] = 1.0
    J = fisher_memory_curve(chain(n, alpha, dtype=F64), e0, k_max, noise)
    k = torch.arange(n, dtype=F64)
    if alpha == 1.0:
        inside = 1 / (k + 1)
    else:
        inside = alpha ** (2 * k) * (1 - alpha**2) / (1 - alpha ** (2 * (k + 1)))
    expected = torch.cat([inside / noise, torch.zeros(k_max - n, dtype=F64)])
    assert torch.allclose(J, expected, rtol=tol(n), atol=0)


def test_fmc_matches_full_solve_oracle():
    n, k_max, noise = 10, 30, 0.5
    W, v = stable(n, 0.9, seed=1), unit(n, seed=2)
    C = naive_series(W, noise, 2000)
    J = fisher_memory_curve(W, v, k_max, noise)
    assert torch.allclose(J, naive_fmc(W, v, C, k_max), rtol=1e3 * tol(n), atol=tol(n) * J.max().item())


def test_fmc_of_a_diagonal_matrix():
    """For W = diag(λ): J(k) = Σ_i v_i² λ_i^{2k} (1 − λ_i²) / ε (Note [J_tot of normal networks])."""
    lam = torch.tensor([0.9, -0.5, 0.2, 0.0], dtype=F64)
    v = torch.tensor([1.0, 2.0, -1.0, 0.5], dtype=F64)
    J = fisher_memory_curve(torch.diag(lam), v, 12, 0.25)
    k = torch.arange(12, dtype=F64).unsqueeze(1)
    expected = torch.sum(v**2 * lam ** (2 * k) * (1 - lam**2), dim=1) / 0.25
    assert torch.allclose(J, expected, rtol=tol(4), atol=tol(4) * expected.max().item())


def test_fmc_with_horizon_is_zero_beyond_it_and_sums_to_total_memory():
    n, T = 6, 7
    W, v = orthogonal(n, generator=torch.Generator().manual_seed(5), dtype=F64), unit(n)
    J = fisher_memory_curve(W, v, 10, horizon=T)
    assert torch.all(J[T:] == 0)
    assert J.sum().item() == pytest.approx(total_memory(W, v, horizon=T), rel=tol(n) * T)
    # Orthogonal W with a horizon: each eigen-direction keeps 1/T of its Fisher information.
    assert torch.allclose(J[:T], torch.full((T,), 1.0 / T, dtype=F64), rtol=tol(n) * T, atol=0)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 12),
    radius=st.floats(0.0, 0.99),
    seed=st.integers(0, 10_000),
    noise=st.floats(1e-3, 10.0),
)
def test_fmc_is_non_negative_and_finite(n, radius, seed, noise):
    W, v = stable(n, radius, seed=seed), gaussian(n, seed=seed + 1)
    J = fisher_memory_curve(W, v, 15, noise)
    assert J.shape == (15,) and J.dtype == F64
    assert torch.isfinite(J).all() and torch.all(J >= 0)
    assert J.sum().item() <= n * v.dot(v).item() / noise * (1 + tol(n))  # J_tot ≤ n ‖v‖² / ε


def test_fmc_is_stable_for_a_few_hundred_units():
    n = 200
    W, v = stable(n, 0.95, seed=6), unit(n, seed=7)
    J = fisher_memory_curve(W, v, 50)
    assert torch.isfinite(J).all() and torch.all(J >= 0)
    assert fisher_memory_curve(chain(n, dtype=F64), torch.eye(n, dtype=F64)[0], 3).tolist() == pytest.approx(
        [1.0, 0.5, 1 / 3], rel=tol(n)
    )


# Total memory: Book: Eq. (mem-jtot)


@pytest.mark.parametrize("name", ["scaled orthogonal", "symmetric", "complex normal"])
def test_total_memory_of_normal_networks_is_one(name):
    W = normal_matrices()[name]
    assert torch.allclose(W @ W.T, W.T @ W, atol=tol(8))  # the matrices are normal
    assert total_memory(W, unit(8, seed=9)) == pytest.approx(1.0, abs=1e-8)


@pytest.mark.parametrize("name", ["scaled orthogonal", "symmetric", "complex normal"])
def test_total_memory_of_normal_networks_is_norm_over_noise(name):
    """The general statement (Note [J_tot of normal networks]): J_tot = ‖v‖² / ε."""
    W, v, noise = normal_matrices()[name], 3.0 * gaussian(8, seed=10), 0.4
    assert total_memory(W, v, noise) == pytest.approx(v.dot(v).item() / noise, rel=1e-8)


def test_total_memory_of_an_orthogonal_network_over_a_horizon_is_one():
    W = orthogonal(8, generator=torch.Generator().manual_seed(11), dtype=F64)
    for T in (1, 5, 64):
        assert total_memory(W, unit(8), horizon=T) == pytest.approx(1.0, abs=1e-8)


def test_total_memory_of_the_chain_is_the_harmonic_number():
    n = 16
    harmonic = sum(1 / (k + 1) for k in range(n))
    assert total_memory(chain(n, dtype=F64), torch.eye(n, dtype=F64)[0]) == pytest.approx(harmonic, rel=tol(n))


@pytest.mark.parametrize("alpha", [3.0, 30.0])
def test_total_memory_of_an_amplifying_chain_approaches_the_bound(alpha):
    """Each J(k) ≥ 1 − 1/α² for k < n, so n (1 − 1/α²) ≤ J_tot ≤ n."""
    n = 10
    J_tot = total_memory(chain(n, alpha, dtype=F64), torch.eye(n, dtype=F64)[0])
    assert n * (1 - 1 / alpha**2) <= J_tot <= n


def test_total_memory_matches_the_sum_of_the_curve():
    n = 10
    W, v = stable(n, 0.85, seed=12), unit(n, seed=13)
    J = fisher_memory_curve(W, v, 600)
    assert total_memory(W, v) == pytest.approx(J.sum().item(), rel=1e3 * tol(n))


# SNR: Book: Eq. (mem-snr)


def test_snr_matches_direct_solve_oracle():
    n, k_max, noise, signal = 8, 12, 0.5, 2.0
    W, v = stable(n, 0.8, seed=14), gaussian(n, seed=15)
    C = naive_series(W, noise, 2000)
    C_v = torch.zeros(n, n, dtype=F64)
    u = v.clone()
    for _ in range(2000):
        C_v = C_v + torch.outer(u, u)
        u = W @ u
    expected = []
    u = v.clone()
    for _ in range(k_max):
        R = C + signal * (C_v - torch.outer(u, u))
        expected.append(signal * u @ torch.linalg.solve(R, u))
        u = W @ u
    got = snr(W, v, k_max, noise, signal=signal)
    assert torch.allclose(got, torch.stack(expected), rtol=1e4 * tol(n), atol=tol(n))


def test_snr_is_below_fisher_and_tends_to_it_for_weak_signals():
    n = 8
    W, v = stable(n, 0.9, seed=16), unit(n, seed=17)
    J = fisher_memory_curve(W, v, 20)
    assert torch.all(snr(W, v, 20, signal=1.0) <= J * (1 + tol(n)))
    weak = 1e-6
    assert torch.allclose(snr(W, v, 20, signal=weak) / weak, J, rtol=1e-5, atol=0)


def test_snr_with_horizon_and_zero_signal():
    W, v = orthogonal(4, generator=torch.Generator().manual_seed(18), dtype=F64), unit(4)
    s = snr(W, v, 6, horizon=3)
    assert torch.all(s[:3] > 0) and torch.all(s[3:] == 0)
    assert torch.all(snr(0.5 * W, v, 6, signal=0.0) == 0)


# Bad input


def test_bad_input_raises_clear_errors():
    W, v = 0.5 * torch.eye(3, dtype=F64), torch.ones(3, dtype=F64)
    with pytest.raises(ValueError, match="W must be a square matrix"):
        fisher_memory_curve(torch.zeros(3, 4, dtype=F64), v, 2)
    with pytest.raises(TypeError, match="W must be a floating-point tensor"):
        total_memory(torch.eye(3, dtype=torch.int64), v)
    with pytest.raises(ValueError, match=r"v must be a vector of shape \(n,\) = \(3,\)"):
        fisher_memory_curve(W, torch.ones(4, dtype=F64), 2)
    with pytest.raises(ValueError, match="v must be a vector"):
        snr(W, torch.ones(3, 1, dtype=F64), 2)
    with pytest.raises(ValueError, match="k_max must be a positive int"):
        fisher_memory_curve(W, v, 0)
    with pytest.raises(TypeError, match="k_max must be an int"):
        snr(W, v, 2.0)
    with pytest.raises(ValueError, match="noise must be non-negative"):
        noise_covariance(W, -1.0)
    with pytest.raises(ValueError, match="noise must be positive"):
        fisher_memory_curve(W, v, 2, 0.0)
    with pytest.raises(ValueError, match="signal must be non-negative"):
        snr(W, v, 2, signal=-1.0)
    with pytest.raises(ValueError, match="horizon must be a positive int"):
        noise_covariance(W, horizon=0)


@pytest.mark.parametrize("scale", [1.0, 1.2])
def test_unstable_W_without_horizon_raises(scale):
    W = scale * orthogonal(4, generator=torch.Generator().manual_seed(19), dtype=F64)
    v = unit(4)
    for call in (lambda: noise_covariance(W), lambda: fisher_memory_curve(W, v, 3), lambda: total_memory(W, v)):
        with pytest.raises(ValueError, match=r"W must be stable \(spectral radius < 1\).*horizon"):
            call()


def test_overflowing_horizon_raises():
    with pytest.raises(ValueError, match="overflows float64"):
        noise_covariance(10.0 * torch.eye(2, dtype=F64), horizon=400)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (the Lyapunov sums read values on the host)")
def test_memory_on_cuda_matches_the_cpu() -> None:
    W, v = 0.9 * chain(6), torch.ones(6) / 6**0.5
    J = fisher_memory_curve(W.cuda(), v.cuda(), 8)
    assert J.device.type == "cuda"
    torch.testing.assert_close(J.cpu(), fisher_memory_curve(W, v, 8))
    torch.testing.assert_close(snr(W.cuda(), v.cuda(), 4).cpu(), snr(W, v, 4))
