"""Every initialiser of the book, each returning a matrix for the ``W h`` convention.

PyTorch applies a recurrent matrix as ``h_t = f(W h_{t-1} + ...)`` (``nn.RNN`` stores
``weight_hh`` and computes ``h @ weight_hh.T``), so entry ``W[i, j]`` is the weight
*from* unit ``j`` *to* unit ``i``. All initialisers here follow that convention.

For the non-normal initialisers of Orhan & Pitkow (2020) the convention decides the
direction of flow. In :func:`chain`, ``W[i, i-1] = α``: unit ``i`` receives from unit
``i − 1``, so under ``h ← W h`` a pulse at the *source* unit 0 moves to unit 1, 2, … and
:func:`source_input` feeds the inputs into the first units. Code written for the row-vector
convention ``h ← h W`` (where ``W[i, j]`` goes from ``i`` to ``j``) uses the transpose; fed to
the ``W h`` convention unchanged, such a matrix runs the chain backwards, from the last unit
to the first, away from where the inputs enter.
"""

from __future__ import annotations

import math

import torch

from orthobook import _checks

__all__ = ["orthogonal", "identity", "glorot", "chain", "fb_chain", "source_input"]


def orthogonal(
    n: int,
    scale: float = 1.0,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """A Haar-random orthogonal matrix times ``scale``: ``W = λ Q``.

    ``Q`` comes from the QR decomposition of a standard Gaussian matrix, with the
    signs of ``diag(R)`` folded into ``Q`` so that ``Q`` is Haar distributed on O(n)
    (Mezzadri 2007).

    Args:
        n: size of the square matrix.
        scale: the factor λ ≥ 0.
        generator: optional generator for reproducible draws.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``W``: (n, n) with all singular values equal to ``scale``.

    Raises:
        TypeError: ``n`` is not an int, ``scale`` not a real number, or ``dtype`` not a real
            floating dtype.
        ValueError: ``n`` is not positive or ``scale`` is negative, NaN or infinite.

    Example:
        >>> W = orthogonal(4, generator=torch.Generator().manual_seed(0))
        >>> torch.allclose(W @ W.T, torch.eye(4), atol=1e-6)
        True
    """
    _checks.positive_int(n, "n")
    _checks.non_negative_float(scale, "scale")
    dtype = _checks.floating_dtype(dtype)
    A = torch.randn(n, n, generator=generator, dtype=torch.float64)
    Q, R = torch.linalg.qr(A)
    Q = Q * torch.sign(torch.diagonal(R)).unsqueeze(0)
    return (scale * Q).to(dtype)


def identity(n: int, scale: float = 1.0, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The scaled identity ``W = λ I`` (Le, Jaitly & Hinton 2015 use λ = 1 with ReLU).

    Args:
        n: size of the square matrix.
        scale: the factor λ ≥ 0.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``W``: (n, n).

    Raises:
        TypeError: ``n`` is not an int, ``scale`` not a real number, or ``dtype`` not a real
            floating dtype.
        ValueError: ``n`` is not positive or ``scale`` is negative, NaN or infinite.
    """
    _checks.positive_int(n, "n")
    _checks.non_negative_float(scale, "scale")
    dtype = _checks.floating_dtype(dtype)
    return scale * torch.eye(n, dtype=dtype)


def glorot(
    n_out: int,
    n_in: int | None = None,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """Glorot (Xavier) uniform initialisation, ``W_ij ~ U(−a, a)``, ``a = sqrt(6 / (n_in + n_out))``.

    Args:
        n_out: number of rows.
        n_in: number of columns (defaults to ``n_out``: a square recurrent matrix).
        generator: optional generator for reproducible draws.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``W``: (n_out, n_in).

    Raises:
        TypeError: ``n_out`` or ``n_in`` is not an int, or ``dtype`` not a real floating dtype.
        ValueError: ``n_out`` or ``n_in`` is not positive.
    """
    _checks.positive_int(n_out, "n_out")
    n_in = n_out if n_in is None else _checks.positive_int(n_in, "n_in")
    dtype = _checks.floating_dtype(dtype)
    bound = math.sqrt(6.0 / (n_in + n_out))
    U = torch.rand(n_out, n_in, generator=generator, dtype=dtype)
    return (2.0 * U - 1.0) * bound


def chain(n: int, alpha: float = 1.0, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The chain (delay line) ``W_ij = α δ_{j,i−1}``: unit ``i`` receives from unit ``i − 1``.

    Nilpotent (all eigenvalues 0) yet maximally non-normal: under ``h ← W h`` a pulse at the
    source unit 0 travels one unit per step, scaled by α, and leaves after n steps (Orhan &
    Pitkow 2020; Ganguli, Huh & Sompolinsky 2008). Book: Eq. (mem-chain).

    Args:
        n: number of units.
        alpha: the feedforward weight α ≥ 0.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``W``: (n, n), non-zero only on the first subdiagonal.

    Raises:
        TypeError: ``n`` is not an int, ``alpha`` not a real number, or ``dtype`` not a real
            floating dtype.
        ValueError: ``n`` is not positive or ``alpha`` is negative, NaN or infinite.

    Example:
        >>> W = chain(3)
        >>> (W @ torch.tensor([1.0, 0.0, 0.0])).tolist()
        [0.0, 1.0, 0.0]
    """
    _checks.positive_int(n, "n")
    alpha = _checks.non_negative_float(alpha, "alpha")
    dtype = _checks.floating_dtype(dtype)
    return torch.diag(torch.full((n - 1,), alpha, dtype=dtype), -1)


def fb_chain(n: int, beta: float, alpha: float = 0.99, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The chain with feedback, ``W_ij = α δ_{j,i−1} + β δ_{j,i+1}``.

    Forward weights α from unit ``i − 1`` to unit ``i`` (as in :func:`chain`) and backward
    weights β from unit ``i + 1``; ``β = 0`` is the chain, ``β = α`` a symmetric (normal)
    tridiagonal matrix with eigenvalues ``2 α cos(π j / (n + 1))``. Book: Eq. (mem-fb-chain).

    Args:
        n: number of units.
        beta: the feedback weight β ≥ 0.
        alpha: the feedforward weight α ≥ 0.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``W``: (n, n) tridiagonal with zero diagonal.

    Raises:
        TypeError: ``n`` is not an int, ``alpha`` or ``beta`` not a real number, or
            ``dtype`` not a real floating dtype.
        ValueError: ``n`` is not positive or ``alpha``, ``beta`` is negative, NaN or infinite.

    Example:
        >>> fb_chain(3, beta=0.5, alpha=1.0).tolist()
        [[0.0, 0.5, 0.0], [1.0, 0.0, 0.5], [0.0, 1.0, 0.0]]
    """
    _checks.positive_int(n, "n")
    beta = _checks.non_negative_float(beta, "beta")
    alpha = _checks.non_negative_float(alpha, "alpha")
    dtype = _checks.floating_dtype(dtype)
    forward = torch.diag(torch.full((n - 1,), alpha, dtype=dtype), -1)
    return forward + torch.diag(torch.full((n - 1,), beta, dtype=dtype), 1)


def source_input(n: int, d: int, scale: float = 0.9, *, dtype: torch.dtype | None = None) -> torch.Tensor:
    """The input matrix that feeds ``d`` inputs into the source units of a chain: ``V = λ [I_d; 0]``.

    Input ``j`` drives unit ``j`` only, so the inputs enter where :func:`chain` and
    :func:`fb_chain` start (Orhan & Pitkow 2020 use λ = 0.9).

    Args:
        n: number of units (rows).
        d: number of inputs (columns), ``1 ≤ d ≤ n``.
        scale: the input weight λ ≥ 0.
        dtype: real floating dtype of the result; ``None`` (default) is
            ``torch.get_default_dtype()``, as for torch's factory functions.

    Returns:
        ``V``: (n, d), ``V[:d] = λ I_d`` and zero below.

    Raises:
        TypeError: ``n`` or ``d`` is not an int, ``scale`` not a real number, or ``dtype``
            not a real floating dtype.
        ValueError: ``n`` or ``d`` is not positive, ``d > n``, or ``scale`` is negative, NaN
            or infinite.

    Example:
        >>> source_input(3, 1).tolist()
        [[0.8999999761581421], [0.0], [0.0]]
    """
    _checks.positive_int(n, "n")
    _checks.positive_int(d, "d")
    scale = _checks.non_negative_float(scale, "scale")
    dtype = _checks.floating_dtype(dtype)
    if d > n:
        raise ValueError(f"d must be at most n = {n} (one source unit per input), got {d}")
    V = torch.zeros(n, d, dtype=dtype)
    V[:d] = scale * torch.eye(d, dtype=dtype)
    return V
