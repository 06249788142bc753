"""Every initialiser of the book, each returning a matrix for the ``W h`` convention.

PyTorch applies a recurrent matrix as ``h_t = f(W h_{t-1} + ...)`` (``nn.RNN`` stores
``weight_hh`` and computes ``h @ weight_hh.T``), so entry ``W[i, j]`` is the weight
*from* unit ``j`` *to* unit ``i``. All initialisers here follow that convention.
"""

from __future__ import annotations

import math

import torch

from orthobook import _checks

__all__ = ["orthogonal", "identity", "glorot"]


def orthogonal(
    n: int,
    scale: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """A Haar-random orthogonal matrix times ``scale``: ``W = λ Q``.

    ``Q`` comes from the QR decomposition of a standard Gaussian matrix, with the
    signs of ``diag(R)`` folded into ``Q`` so that ``Q`` is Haar distributed on O(n)
    (Mezzadri 2007).

    Args:
        n: size of the square matrix.
        scale: the factor λ ≥ 0.
        generator: optional generator for reproducible draws.
        dtype: floating dtype of the result.

    Returns:
        ``W``: (n, n) with all singular values equal to ``scale``.

    Example:
        >>> W = orthogonal(4, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(W @ W.T, torch.eye(4), atol=1e-6)
        True
    """
    _checks.positive_int(n, "n")
    _checks.non_negative_float(scale, "scale")
    A = torch.randn(n, n, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R)).unsqueeze(0)
    return (scale * Q).to(dtype)


def identity(n: int, scale: float = 1.0, *, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The scaled identity ``W = λ I`` (Le, Jaitly & Hinton 2015 use λ = 1 with ReLU).

    Args:
        n: size of the square matrix.
        scale: the factor λ ≥ 0.
        dtype: floating dtype of the result.

    Returns:
        ``W``: (n, n).
    """
    _checks.positive_int(n, "n")
    _checks.non_negative_float(scale, "scale")
    return scale * torch.eye(n, dtype=dtype)


def glorot(
    n_out: int,
    n_in: int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Glorot (Xavier) uniform initialisation, ``W_ij ~ U(−a, a)``, ``a = sqrt(6 / (n_in + n_out))``.

    Args:
        n_out: number of rows.
        n_in: number of columns (defaults to ``n_out``: a square recurrent matrix).
        generator: optional generator for reproducible draws.
        dtype: floating dtype of the result.

    Returns:
        ``W``: (n_out, n_in).
    """
    _checks.positive_int(n_out, "n_out")
    n_in = n_out if n_in is None else _checks.positive_int(n_in, "n_in")
    bound = math.sqrt(6.0 / (n_in + n_out))
    U = torch.rand(n_out, n_in, generator=generator, dtype=dtype)
    return (2.0 * U - 1.0) * bound
