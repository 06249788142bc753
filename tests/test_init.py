"""Tests for orthobook.init: every initialiser of the book in the ``W h`` convention, including
the chain (Book: Eq. (mem-chain)) and the chain with feedback (Book: Eq. (mem-fb-chain))."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.init import chain, fb_chain, glorot, identity, orthogonal, source_input

F64 = torch.float64


def tol(n: int, dtype: torch.dtype = F64) -> float:
    return 10 * n * torch.finfo(dtype).eps


def pulse(n: int) -> torch.Tensor:
    h = torch.zeros(n, dtype=F64)
    h[0] = 1.0
    return h


# Orthogonal


@settings(max_examples=20, deadline=None)
@given(n=st.integers(1, 40), scale=st.floats(0.0, 3.0), seed=st.integers(0, 10_000))
def test_orthogonal_is_scaled_orthogonal(n, scale, seed):
    W = orthogonal(n, scale, generator=torch.Generator().manual_seed(seed), dtype=F64)
    assert W.shape == (n, n) and W.dtype == F64
    assert torch.allclose(W @ W.T, scale**2 * torch.eye(n, dtype=F64), rtol=0, atol=tol(n) * max(scale**2, 1.0))


def test_orthogonal_is_haar():
    """Under Haar measure on O(n), E[tr Q] = 0 and Var(tr Q) = 1 (n ≥ 2); without the sign
    correction of diag(R), QR of a Gaussian matrix biases the diagonal of Q."""
    g = torch.Generator().manual_seed(0)
    draws = 4000
    traces = torch.tensor([torch.trace(orthogonal(3, generator=g, dtype=F64)).item() for _ in range(draws)])
    standard_error = 1 / math.sqrt(draws)
    assert abs(traces.mean().item()) < 4 * standard_error
    assert traces.var().item() == pytest.approx(1.0, abs=0.1)
    dets = torch.tensor([torch.linalg.det(orthogonal(3, generator=g, dtype=F64)).item() for _ in range(200)])
    assert (dets > 0).any() and (dets < 0).any()  # both components of O(n)


def test_orthogonal_is_reproducible_and_float32_by_default():
    a = orthogonal(5, generator=torch.Generator().manual_seed(1))
    b = orthogonal(5, generator=torch.Generator().manual_seed(1))
    assert a.dtype == torch.float32 and torch.equal(a, b)
    assert torch.allclose(a @ a.T, torch.eye(5), atol=tol(5, torch.float32))


# Identity and Glorot


def test_identity():
    assert torch.equal(identity(4, 0.5, dtype=F64), 0.5 * torch.eye(4, dtype=F64))
    assert identity(3).dtype == torch.float32


@pytest.mark.parametrize("shape", [(7, None), (5, 9), (1, 1)])
def test_glorot_bounds_and_variance(shape):
    n_out, n_in = shape
    W = glorot(n_out, n_in, generator=torch.Generator().manual_seed(2), dtype=F64)
    cols = n_out if n_in is None else n_in
    assert W.shape == (n_out, cols)
    bound = math.sqrt(6.0 / (n_out + cols))
    assert W.abs().max().item() <= bound
    big = glorot(300, 200, generator=torch.Generator().manual_seed(3), dtype=F64)
    assert big.var().item() == pytest.approx(2.0 / 500, rel=0.02)  # Var U(−a, a) = a² / 3
    assert big.abs().max().item() <= math.sqrt(6.0 / 500)


# Chain and chain with feedback: Book: Eq. (mem-chain), Eq. (mem-fb-chain)


@pytest.mark.parametrize("alpha", [1.0, 0.7])
def test_chain_moves_a_pulse_forward(alpha):
    n = 6
    W = chain(n, alpha, dtype=F64)
    expected = torch.zeros(n, n, dtype=F64)
    for i in range(1, n):
        expected[i, i - 1] = alpha  # unit i receives from unit i − 1
    assert torch.equal(W, expected)
    h = pulse(n)
    for k in range(n):
        at_unit_k = alpha**k * torch.eye(n, dtype=F64)[k]
        assert torch.allclose(h, at_unit_k, rtol=tol(n), atol=0)
        h = W @ h
    assert torch.all(h == 0)  # and has left the chain after n steps: W is nilpotent


def test_chain_of_one_unit_and_default_dtype():
    assert torch.equal(chain(1), torch.zeros(1, 1))
    assert chain(3).dtype == torch.float32


def test_fb_chain_structure():
    n = 7
    W = fb_chain(n, 0.3, alpha=0.9, dtype=F64)
    assert torch.equal(torch.diagonal(W, -1), torch.full((n - 1,), 0.9, dtype=F64))
    assert torch.equal(torch.diagonal(W, 1), torch.full((n - 1,), 0.3, dtype=F64))
    assert torch.count_nonzero(W) == 2 * (n - 1)
    assert torch.equal(fb_chain(n, 0.0, alpha=0.8, dtype=F64), chain(n, 0.8, dtype=F64))
    S = fb_chain(n, 0.5, alpha=0.5, dtype=F64)
    assert torch.equal(S, S.T)
    j = torch.arange(1, n + 1, dtype=F64)
    expected = torch.sort(2 * 0.5 * torch.cos(math.pi * j / (n + 1))).values
    assert torch.allclose(torch.linalg.eigvalsh(S), expected, atol=tol(n))


@pytest.mark.parametrize("beta", [0.1, 0.3, 0.5])
def test_fb_chain_moves_a_pulse_mostly_forward(beta):
    """With feedback β < α the activity spreads both ways but its centre moves forward."""
    n = 20
    W = fb_chain(n, beta, dtype=F64)
    h = pulse(n)
    centres = []
    for _ in range(n // 2):
        p = h**2 / torch.sum(h**2)
        centres.append(torch.sum(p * torch.arange(n, dtype=F64)).item())
        h = W @ h
    assert all(b > a for a, b in zip(centres, centres[1:]))


def test_source_input():
    V = source_input(5, 2, dtype=F64)
    expected = torch.zeros(5, 2, dtype=F64)
    expected[0, 0] = expected[1, 1] = 0.9
    assert torch.equal(V, expected)
    assert torch.equal(source_input(3, 3, scale=1.0), torch.eye(3))
    # The input enters at the source of the chain and travels down it.
    W = chain(5, dtype=F64)
    assert torch.equal(W @ W @ V[:, 0], 0.9 * torch.eye(5, dtype=F64)[2])


# Default dtype: torch's convention, dtype=None → torch.get_default_dtype()


INITIALISERS = {
    "orthogonal": lambda dtype: orthogonal(3, dtype=dtype),
    "identity": lambda dtype: identity(3, dtype=dtype),
    "glorot": lambda dtype: glorot(3, dtype=dtype),
    "chain": lambda dtype: chain(3, 0.5, dtype=dtype),
    "fb_chain": lambda dtype: fb_chain(3, 0.5, dtype=dtype),
    "source_input": lambda dtype: source_input(3, 1, dtype=dtype),
}


@pytest.fixture
def float64_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(F64)
    yield
    torch.set_default_dtype(previous)


@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_default_dtype_follows_torch(name, float64_default):
    assert INITIALISERS[name](None).dtype == F64


@pytest.mark.parametrize("name", sorted(INITIALISERS))
@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.bool, torch.complex64])
def test_non_real_floating_dtypes_are_refused(name, dtype):
    with pytest.raises(TypeError, match="dtype must be a real floating-point dtype"):
        INITIALISERS[name](dtype)


@pytest.mark.parametrize("name", sorted(INITIALISERS))
def test_explicit_dtype_is_kept(name):
    assert INITIALISERS[name](torch.float16).dtype == torch.float16


# Bad input: one row per (call, error, message)

BAD_INPUTS = [
    (lambda: orthogonal(0), ValueError, "n must be a positive int"),
    (lambda: identity(2.0), TypeError, "n must be an int"),
    (lambda: chain(True), TypeError, "n must be an int"),
    (lambda: orthogonal(3, -1.0), ValueError, "scale must be non-negative"),
    (lambda: orthogonal(3, math.inf), ValueError, "scale must be finite, got inf"),
    (lambda: orthogonal(3, math.nan), ValueError, "scale must be finite, got nan"),
    (lambda: orthogonal(3, dtype="float32"), TypeError, "dtype must be a torch.dtype or None"),
    (lambda: identity(3, -math.inf), ValueError, "scale must be finite"),
    (lambda: identity(3, math.nan), ValueError, "scale must be finite"),
    (lambda: glorot(3, 0), ValueError, "n_in must be a positive int"),
    (lambda: glorot("3"), TypeError, "n_out must be an int"),
    (lambda: glorot(3, 2.5), TypeError, "n_in must be an int"),
    (lambda: chain(3, -0.5), ValueError, "alpha must be non-negative"),
    (lambda: chain(3, math.inf), ValueError, "alpha must be finite"),
    (lambda: fb_chain(3, "0.5"), TypeError, "beta must be a real number"),
    (lambda: fb_chain(3, 0.1, alpha=-1.0), ValueError, "alpha must be non-negative"),
    (lambda: fb_chain(3, math.nan), ValueError, "beta must be finite"),
    (lambda: fb_chain(3, 0.1, alpha=math.inf), ValueError, "alpha must be finite"),
    (lambda: source_input(3, 4), ValueError, "d must be at most n = 3"),
    (lambda: source_input(3, 0), ValueError, "d must be a positive int"),
    (lambda: source_input(3, 1, scale=-0.9), ValueError, "scale must be non-negative"),
    (lambda: source_input(3, 1, scale=math.inf), ValueError, "scale must be finite"),
]


@pytest.mark.parametrize(("call", "error", "match"), BAD_INPUTS, ids=[row[2] for row in BAD_INPUTS])
def test_bad_input_raises_clear_errors(call, error, match):
    with pytest.raises(error, match=match):
        call()
