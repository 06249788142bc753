"""Tests for orthobook.decoding: the noisy network (Book: Eq. (dec-noisy)), the ridge readout
(Book: Eq. (dec-ridge)) and held-out decoding R², which for a linear network approaches
SNR / (1 + SNR) of Book: Eq. (mem-snr) (Book: Eq. (dec-r2))."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.decoding import decoding_r2, noisy_states, ridge_readout
from orthobook.init import chain, orthogonal
from orthobook.memory import noise_covariance, snr
from orthobook.models import ElmanRNN

F64 = torch.float64


def tol(n: int, dtype: torch.dtype = F64) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gaussian(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def e1(n: int) -> torch.Tensor:
    v = torch.zeros(n, dtype=F64)
    v[0] = 1.0
    return v


# ---------------------------------------------------------------- noisy_states (dec-noisy)


def test_noiseless_linear_states_are_the_unrolled_sum() -> None:
    # Oracle: h_t = Σ_{k≤t} W^k v s_{t-k}, summed term by term (Book: Eq. (mem-linear) with z = 0).
    n, T = 5, 12
    W = 0.7 * gaussian(n, n, seed=1) / n**0.5
    v, s = gaussian(n, seed=2), gaussian(T, seed=3)
    H = noisy_states(W, v, s, noise=0.0)
    for t in range(T):
        expected = sum(torch.linalg.matrix_power(W, k) @ v * s[t - k] for k in range(t + 1))
        assert torch.allclose(H[t], expected, atol=tol(n * T), rtol=0)


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
def test_noiseless_states_match_the_elman_rnn(nonlinearity: str) -> None:
    n, T = 6, 9
    W, v, s = 0.9 * orthogonal(n, dtype=F64, generator=torch.Generator().manual_seed(0)), gaussian(n, seed=1), gaussian(T, seed=2)
    model = ElmanRNN(1, n, 1, nonlinearity=nonlinearity, recurrent_init=W, input_init=v.unsqueeze(1), dtype=F64)
    with torch.no_grad():
        model.rnn.bias_ih_l0.zero_()
        model.rnn.bias_hh_l0.zero_()
    states = torch.cat(model.unrolled(s.view(1, T, 1)).states).detach()
    assert torch.allclose(noisy_states(W, v, s, 0.0, nonlinearity=nonlinearity), states, atol=tol(n * T), rtol=0)


def test_noise_covariance_of_the_states_matches_the_lyapunov_sum() -> None:
    # Statistical: with s = 0 the stationary covariance is ε Σ_k W^k (W^k)ᵀ (Book: Eq. (mem-noise-cov)).
    n, T, eps = 4, 40_000, 0.5
    W = chain(n, 0.8, dtype=F64)
    H = noisy_states(W, e1(n), torch.zeros(T, dtype=F64), eps, generator=torch.Generator().manual_seed(0))
    empirical = torch.cov(H[n:].T)
    expected = noise_covariance(W, eps)
    assert torch.allclose(empirical, expected, atol=0.05 * float(expected.max()), rtol=0)


def test_noise_is_reproducible_with_a_generator() -> None:
    W, v, s = chain(3, dtype=F64), e1(3), gaussian(20)
    a = noisy_states(W, v, s, 1.0, generator=torch.Generator().manual_seed(5))
    b = noisy_states(W, v, s, 1.0, generator=torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_noisy_states_rejects_bad_arguments() -> None:
    W, v, s = chain(3, dtype=F64), e1(3), gaussian(5)
    with pytest.raises(ValueError, match="v must"):
        noisy_states(W, e1(4), s)
    with pytest.raises(ValueError, match="s must"):
        noisy_states(W, v, s.view(1, 5))
    with pytest.raises(ValueError, match="noise"):
        noisy_states(W, v, s, -1.0)
    with pytest.raises(ValueError, match="nonlinearity"):
        noisy_states(W, v, s, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="W"):
        noisy_states(torch.eye(3, dtype=torch.long), v, s)


# ---------------------------------------------------------------- ridge_readout (dec-ridge)


def test_ridge_zero_is_least_squares() -> None:
    X, Y = gaussian(50, 6, seed=0), gaussian(50, 3, seed=1)
    expected = torch.linalg.lstsq(X, Y).solution
    assert torch.allclose(ridge_readout(X, Y, 0.0), expected, atol=1e3 * tol(6), rtol=0)


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 8), st.floats(1e-3, 10.0), st.integers(0, 10_000))
def test_ridge_solves_the_augmented_least_squares_problem(n: int, lam: float, seed: int) -> None:
    # Oracle: min ‖Xw − y‖² + λ‖w‖² is least squares for [X; √λ I] w ≈ [y; 0].
    X, y = gaussian(20, n, seed=seed), gaussian(20, seed=seed + 1)
    A = torch.cat([X, lam**0.5 * torch.eye(n, dtype=F64)])
    b = torch.cat([y, torch.zeros(n, dtype=F64)])
    expected = torch.linalg.lstsq(A, b.unsqueeze(1)).solution.squeeze(1)
    w = ridge_readout(X, y, lam)
    assert w.shape == (n,)
    assert torch.allclose(w, expected, atol=1e4 * tol(n) * (1 + float(expected.abs().max())), rtol=0)


def test_ridge_readout_rejects_bad_arguments() -> None:
    X = gaussian(10, 3)
    with pytest.raises(ValueError, match="Y must"):
        ridge_readout(X, gaussian(9), 0.1)
    with pytest.raises(ValueError, match="X must"):
        ridge_readout(gaussian(10), gaussian(10), 0.1)
    with pytest.raises(ValueError, match="ridge"):
        ridge_readout(X, gaussian(10), -1.0)


# ---------------------------------------------------------------- decoding_r2 (dec-r2)


def test_a_perfect_memory_decodes_with_r2_one_and_nothing_beyond() -> None:
    # A noiseless chain of n units holds exactly the last n inputs.
    n, T = 4, 2_000
    s = gaussian(T)
    H = noisy_states(chain(n, dtype=F64), e1(n), s, 0.0)
    r2 = decoding_r2(H, s, n + 3, ridge=0.0)
    assert torch.allclose(r2[:n], torch.ones(n, dtype=F64), atol=1e3 * tol(n), rtol=0)
    assert r2[n:].abs().max() < 0.02


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["chain", "orthogonal"])
def test_linear_decoding_approaches_the_snr_bound(kind: str) -> None:
    # Statistical: R²(k) → m(k) = SNR(k) / (1 + SNR(k)) for a linear network (Book: Eq. (dec-r2)).
    n, T, k_max = 6, 60_000, 10
    W = chain(n, 1.0, dtype=F64) if kind == "chain" else orthogonal(n, 0.9, dtype=F64, generator=torch.Generator().manual_seed(0))
    v = e1(n)
    s = gaussian(T, seed=1)
    H = noisy_states(W, v, s, 0.5, generator=torch.Generator().manual_seed(2))
    r2 = decoding_r2(H, s, k_max, burn_in=200)
    ratio = snr(W, v, k_max, 0.5)
    assert torch.allclose(r2, ratio / (1 + ratio), atol=0.02, rtol=0)


def test_decoding_r2_rejects_bad_arguments() -> None:
    H, s = gaussian(50, 3), gaussian(50)
    with pytest.raises(ValueError, match="s must"):
        decoding_r2(H, s[:-1], 3)
    with pytest.raises(ValueError, match="train_fraction"):
        decoding_r2(H, s, 3, train_fraction=1.0)
    with pytest.raises(ValueError, match="burn_in"):
        decoding_r2(H, s, 3, burn_in=-1)
    with pytest.raises(ValueError, match="too few rows"):
        decoding_r2(H, s, 49)
    with pytest.raises(TypeError, match="k_max"):
        decoding_r2(H, s, 2.5)


def test_results_stay_on_the_device_of_their_inputs() -> None:
    """Shape-only run on the meta device: nothing is created on the CPU beside a device W."""
    W, v = 0.5 * torch.eye(4, device="meta"), torch.ones(4, device="meta")
    H = noisy_states(W, v, torch.ones(50, device="meta"), 0.1, generator=torch.Generator().manual_seed(0))
    assert H.device.type == "meta" and H.shape == (50, 4)
    assert ridge_readout(torch.ones(6, 4, device="meta"), torch.ones(6, device="meta"), 0.1).device.type == "meta"
    assert decoding_r2(H, torch.ones(50, device="meta"), 3).device.type == "meta"
