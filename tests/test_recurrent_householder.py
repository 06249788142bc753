"""Tests for the Householder SVD recurrences of orthobook.recurrent (Spectral-RNN):
``W = U diag(s) Vᵀ`` (Book: Eq. (hh-svd)) with ``s`` in the margin band (Book: Eq. (sm-margin))."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.func import functional_call

from orthobook.householder import reflector
from orthobook.recurrent import HouseholderSVD, HouseholderSVDLinear, Recurrence, margin_singular_values

F64 = torch.float64


def tol(n: int, dtype: torch.dtype) -> float:
    return 10 * n * torch.finfo(dtype).eps


def seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def naive_product(V: torch.Tensor) -> torch.Tensor:
    """The float64 oracle: H(u₁) … H(u_k), one explicit reflector at a time."""
    Q = torch.eye(V.shape[0], dtype=V.dtype)
    for i in range(V.shape[1]):
        Q = Q @ reflector(V[:, i])
    return Q


def naive_weight(module: HouseholderSVD | HouseholderSVDLinear) -> torch.Tensor:
    s = margin_singular_values(module.p, module.margin)
    r = s.shape[0]
    U, V = naive_product(module.U_vectors), naive_product(module.V_vectors)
    return U[:, :r] @ torch.diag(s) @ V[:, :r].T


def singular_values(W: torch.Tensor) -> torch.Tensor:
    return torch.linalg.svdvals(W.detach().double())


@pytest.mark.parametrize(("n", "k"), [(1, 1), (6, 6), (6, 2)])
def test_weight_matches_the_naive_svd_product(n: int, k: int) -> None:
    rec = HouseholderSVD(n, reflectors=k, margin=0.3, generator=seeded(n)).double()
    with torch.no_grad():
        rec.p.copy_(torch.randn(n, generator=seeded(1), dtype=F64))
    W = rec()
    assert isinstance(rec, Recurrence)
    assert W.shape == (n, n)
    assert torch.allclose(W, naive_weight(rec), rtol=0, atol=tol(n, F64))


def test_initial_weight_is_orthogonal_with_positive_determinant() -> None:
    W = HouseholderSVD(16, generator=seeded(3))().detach()
    assert torch.allclose(W.T @ W, torch.eye(16), rtol=0, atol=tol(16, torch.float32))
    assert torch.linalg.det(W.double()).item() > 0  # Note [Householder SVD reach]


def test_generator_makes_the_initial_draw_reproducible() -> None:
    W1 = HouseholderSVD(5, generator=seeded(7))()
    W2 = HouseholderSVD(5, generator=seeded(7))()
    assert torch.equal(W1, W2)


def test_zero_margin_is_exact_orthogonality_whatever_p() -> None:
    rec = HouseholderSVD(8, margin=0.0, generator=seeded(2)).double()
    with torch.no_grad():
        rec.p.copy_(10 * torch.randn(8, generator=seeded(0), dtype=F64))
    W = rec()
    assert torch.allclose(W.T @ W, torch.eye(8, dtype=F64), rtol=0, atol=tol(8, F64))


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 8),
    margin=st.floats(0.0, 0.99),
    p=st.lists(
        st.floats(-1e4, 1e4, allow_subnormal=False) | st.sampled_from([-1e30, 1e30]),
        min_size=8,
        max_size=8,
    ),
)
def test_property_singular_values_stay_in_the_margin_band(n: int, margin: float, p: list[float]) -> None:
    rec = HouseholderSVD(n, margin=margin, generator=seeded(n)).double()
    with torch.no_grad():
        rec.p.copy_(torch.tensor(p[:n], dtype=F64))
    s = singular_values(rec())
    assert (s >= 1 - margin - tol(n, F64)).all() and (s <= 1 + margin + tol(n, F64)).all()
    expected = rec.singular_values().detach().sort(descending=True).values
    assert torch.allclose(s, expected, rtol=0, atol=tol(n, F64))


def test_forward_gradcheck() -> None:
    rec = HouseholderSVD(3, reflectors=2, margin=0.5, generator=seeded(4)).double()
    names = [name for name, _ in rec.named_parameters()]
    params = tuple(torch.randn_like(param).requires_grad_() for _, param in rec.named_parameters())

    def weight(*values: torch.Tensor) -> torch.Tensor:
        return functional_call(rec, dict(zip(names, values)), ())

    assert torch.autograd.gradcheck(weight, params)


def test_gradients_reach_every_parameter() -> None:
    rec = HouseholderSVD(5, margin=0.1, generator=seeded(5))
    rec().square().sum().backward()
    for name, param in rec.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all(), name


def test_extra_repr_names_the_shape_and_margin() -> None:
    assert "hidden_size=4, reflectors=2, margin=0.1" in repr(HouseholderSVD(4, reflectors=2, margin=0.1))


def test_householder_svd_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        HouseholderSVD(0)
    with pytest.raises(ValueError, match="reflectors must satisfy 1 <= reflectors <= 4"):
        HouseholderSVD(4, reflectors=5)
    with pytest.raises(TypeError, match="reflectors must be an int"):
        HouseholderSVD(4, reflectors=2.0)
    with pytest.raises(ValueError, match="margin must be non-negative"):
        HouseholderSVD(4, margin=-0.1)


# Rectangular weights: HouseholderSVDLinear


@pytest.mark.parametrize(("n_in", "n_out"), [(7, 3), (3, 7), (5, 5)])
def test_linear_weight_is_a_thin_svd_in_the_margin_band(n_in: int, n_out: int) -> None:
    layer = HouseholderSVDLinear(n_in, n_out, margin=0.2, generator=seeded(n_in)).double()
    with torch.no_grad():
        layer.p.copy_(5 * torch.randn(min(n_in, n_out), generator=seeded(0), dtype=F64))
    W = layer.weight
    n = max(n_in, n_out)
    assert W.shape == (n_out, n_in)
    assert torch.allclose(W, naive_weight(layer), rtol=0, atol=tol(n, F64))
    s = singular_values(W)
    assert s.shape == (min(n_in, n_out),)
    assert (s >= 0.8 - tol(n, F64)).all() and (s <= 1.2 + tol(n, F64)).all()


def test_linear_forward_is_x_w_transpose_plus_b() -> None:
    layer = HouseholderSVDLinear(4, 6, generator=seeded(1)).double()
    with torch.no_grad():
        layer.bias.copy_(torch.arange(6, dtype=F64))
    x = torch.randn(2, 3, 4, generator=seeded(2), dtype=F64)
    assert torch.allclose(layer(x), x @ layer.weight.T + layer.bias, rtol=0, atol=tol(6, F64))
    assert HouseholderSVDLinear(4, 6, bias=False).bias is None


def test_linear_gradcheck() -> None:
    layer = HouseholderSVDLinear(3, 2, reflectors=1, margin=0.5, generator=seeded(6)).double()
    x = torch.randn(2, 3, generator=seeded(7), dtype=F64)
    names = [name for name, _ in layer.named_parameters()]
    params = tuple(torch.randn_like(param).requires_grad_() for _, param in layer.named_parameters())

    def output(*values: torch.Tensor) -> torch.Tensor:
        return functional_call(layer, dict(zip(names, values)), (x,))

    assert torch.autograd.gradcheck(output, params)


def test_linear_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="in_features must be a positive int"):
        HouseholderSVDLinear(0, 3)
    with pytest.raises(TypeError, match="out_features must be an int"):
        HouseholderSVDLinear(3, "4")
    with pytest.raises(ValueError, match="reflectors must satisfy 1 <= reflectors <= 3"):
        HouseholderSVDLinear(3, 8, reflectors=4)
