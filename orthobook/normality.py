"""Non-normality of a recurrent matrix: Henrici index, Schur form, feedforward part, transients.

A matrix is normal (``W Wᵀ = Wᵀ W``) exactly when it is unitarily diagonalisable. Every
matrix has a Schur form ``W = Z T Zᴴ`` with ``Z`` unitary and ``T = Λ + N`` upper
triangular; ``Λ`` holds the eigenvalues and the strictly upper triangular ``N`` the
*feedforward* interactions between Schur modes, invisible in the spectrum (Book: Eq.
(nn-schur)). Since ``‖T‖_F = ‖W‖_F``, the size of ``N`` is Henrici's departure from normality
``‖N‖_F = sqrt(‖W‖_F² − Σ|λ_i|²)`` (Book: Eq. (nn-henrici)), zero iff ``W`` is normal. A chain
is pure ``N``; an orthogonal or symmetric matrix is pure ``Λ``.

Every computation runs in float64 / complex128, whatever the dtype of the argument. These are
measurements of a matrix, not training objectives: the arguments are detached and the results
carry no gradient.
"""

from __future__ import annotations

import math

import torch

from orthobook import _checks

__all__ = ["henrici", "schur", "feedforward_part", "transient_growth"]

_MAX_SWEEPS_PER_EIGENVALUE = 30


def henrici(W: torch.Tensor, normalized: bool = False) -> float:
    """Henrici's departure from normality ``d(W) = sqrt(‖W‖_F² − Σ_i |λ_i|²)``.

    It is the Frobenius norm of the strictly upper triangular part of any Schur form of ``W``
    (:func:`feedforward_part`), zero exactly for normal matrices. Round-off can make the
    difference slightly negative for normal ``W``; it is clipped to 0.

    Book: Eq. (nn-henrici).

    Args:
        W: (n, n) real or complex matrix.
        normalized: divide by ``‖W‖_F``, giving a number in ``[0, 1]`` (0 for ``W = 0``).

    Returns:
        ``d(W)`` (or ``d(W) / ‖W‖_F``) as a float.

    Raises:
        TypeError: if ``W`` is not a floating or complex tensor, or ``normalized`` not a bool.
        ValueError: if ``W`` is not square.

    Example:
        >>> from orthobook.init import chain
        >>> round(henrici(chain(5, alpha=0.5)), 12)  # α sqrt(n − 1)
        1.0
    """
    W = _square(W)
    _checks.flag(normalized, "normalized")
    fro2 = float(torch.sum(W.abs() ** 2))
    eig2 = float(torch.sum(torch.linalg.eigvals(W).abs() ** 2))
    d = math.sqrt(max(fro2 - eig2, 0.0))
    if normalized:
        return d / math.sqrt(fro2) if fro2 > 0 else 0.0
    return d


# Note [Schur form by shifted QR]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Neither torch nor numpy has a Schur decomposition. The tempting shortcut, eigenvectors V
# from torch.linalg.eig and V = Q R so that Qᴴ W Q = R Λ R⁻¹, breaks down exactly on the
# matrices this module is about: for a defective W (a chain is a single Jordan block) all
# computed eigenvectors are nearly parallel, R is singular, and Qᴴ W Q is far from
# triangular. We therefore run the textbook complex QR algorithm with Wilkinson shifts:
# A ← Qᴴ A Q with A − μI = Q R, μ the eigenvalue of the trailing 2×2 block of the active
# window nearest to its last diagonal entry. The last row of the window converges to
# (0, …, 0, λ) (quadratically, as shifted inverse iteration on Aᴴ); once its off-diagonal
# part is below eps ‖W‖_F it is set to zero (a backward error of that size) and the window
# shrinks by one. Each step is a LAPACK QR and products on the window, O(m³), about two
# or three steps per eigenvalue, so O(n⁴) in all (well under a second for n = 100 on one
# core, seconds for n = 300). If a window stalls (equal-modulus eigenvalues can make the
# shift cycle) an exceptional shift breaks the symmetry. Below-diagonal entries under
# eps² ‖W‖_F are zeroed after every step: far below the backward error, and left alone they
# decay into subnormal numbers, on which floating-point arithmetic is many times slower.
#
# Z is the product of the unitary factors, unitary to round-off; T is exactly upper
# triangular and W = Z T Zᴴ holds to O(n eps ‖W‖_F) however ill-conditioned the
# eigenvectors are. The eigenvalues on the diagonal come in no particular order. Backward
# stability is all one can ask: a Jordan block of size m perturbed by round-off of size eps
# has eigenvalues of size eps^(1/m), so a chain hidden by a rotation (Q chain Qᵀ, no longer
# exactly nilpotent in floating point) gets a diagonal of that size and a feedforward share
# slightly below 1. An exact chain stays exact: its shifts are 0 and each step deflates one
# unit.


def _square(W: object) -> torch.Tensor:
    if isinstance(W, torch.Tensor) and W.is_complex():
        if W.dim() != 2 or W.shape[0] != W.shape[1]:
            raise ValueError(f"W must be a square matrix of shape (n, n), got shape {tuple(W.shape)}")
        return W.detach().to(torch.complex128)
    return _checks.float64_square(W, "W")


def _wilkinson_shift(A: torch.Tensor) -> torch.Tensor:
    """The eigenvalue of the trailing 2×2 block of ``A`` nearest to ``A[-1, -1]``."""
    a, b, c, d = A[-2, -2], A[-2, -1], A[-1, -2], A[-1, -1]
    half_trace = 0.5 * (a + d)
    root = torch.sqrt((0.5 * (a - d)) ** 2 + b * c)
    mu1, mu2 = half_trace + root, half_trace - root
    return mu1 if (mu1 - d).abs() <= (mu2 - d).abs() else mu2


def _complex_schur(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(T, Z)`` with ``W = Z T Zᴴ``; see Note [Schur form by shifted QR]."""
    n = W.shape[0]
    T = W.to(torch.complex128).clone()
    Z = torch.eye(n, dtype=torch.complex128, device=W.device)
    finfo = torch.finfo(torch.float64)
    tol = finfo.eps * max(float(torch.linalg.matrix_norm(T)), finfo.tiny)
    negligible = tol * finfo.eps
    strictly_lower = torch.ones(n, n, dtype=torch.bool, device=W.device).tril(-1)
    m = n
    stalled = 0
    while m > 1:
        if float(torch.linalg.vector_norm(T[m - 1, : m - 1])) <= tol:
            T[m - 1, : m - 1] = 0
            m -= 1
            stalled = 0
            continue
        stalled += 1
        if stalled > _MAX_SWEEPS_PER_EIGENVALUE:
            raise RuntimeError(f"the QR algorithm did not converge for W of size {n}")
        A = T[:m, :m]
        mu = _wilkinson_shift(A)
        if stalled % 10 == 0:
            mu = mu + 0.75 * A[m - 1, m - 2].abs() * (1 + 1j)
        Q, _ = torch.linalg.qr(A - mu * torch.eye(m, dtype=torch.complex128, device=W.device))
        T[:m, :] = Q.mH @ T[:m, :]
        T[:, :m] = T[:, :m] @ Q
        Z[:, :m] = Z[:, :m] @ Q
        window = T[:m, :m]
        window.masked_fill_(strictly_lower[:m, :m] & (window.abs() < negligible), 0)
    return torch.triu(T), Z


def schur(W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The complex Schur form ``W = Z T Zᴴ``.

    Computed by the shifted QR algorithm (Note [Schur form by shifted QR]), which stays
    backward stable for defective matrices such as a chain, where an eigenvector basis does
    not exist. The eigenvalues of ``W`` appear on the diagonal of ``T`` in no particular order.

    Book: Eq. (nn-schur).

    Args:
        W: (n, n) real or complex matrix.

    Returns:
        ``(T, Z)``: ``T`` (n, n) complex128 upper triangular, ``Z`` (n, n) complex128 unitary.

    Raises:
        TypeError: if ``W`` is not a floating or complex tensor.
        ValueError: if ``W`` is not square.
        RuntimeError: if the QR iteration does not converge (not observed in practice).

    Example:
        >>> W = torch.tensor([[0.0, -1.0], [1.0, 0.0]])
        >>> T, Z = schur(W)
        >>> torch.allclose(Z @ T @ Z.mH, W.to(torch.complex128))
        True
    """
    return _complex_schur(_square(W))


def feedforward_part(W: torch.Tensor) -> tuple[torch.Tensor, float]:
    """The feedforward part ``N`` of the Schur form ``T = Λ + N`` and its share ``‖N‖_F / ‖W‖_F``.

    ``N`` (strictly upper triangular) holds the interactions from Schur mode ``j`` to mode
    ``i < j`` that no eigenvalue records: a hidden chain-like (feedforward) motif shows up as a
    large share. The share equals ``henrici(W, normalized=True)``; it is 1 for a chain and 0
    for a normal matrix. For a nearly defective ``W`` (a chain seen in a rotated basis) the
    computed eigenvalues, and so the share, are only as accurate as the eigenvalues are well
    conditioned (Note [Schur form by shifted QR]).

    Book: Eq. (nn-schur).

    Args:
        W: (n, n) real or complex matrix.

    Returns:
        ``(N, share)``: ``N`` (n, n) complex128, ``share`` a float in ``[0, 1]`` (0 for ``W = 0``).

    Raises:
        TypeError: if ``W`` is not a floating or complex tensor.
        ValueError: if ``W`` is not square.

    Example:
        >>> from orthobook.init import chain
        >>> N, share = feedforward_part(chain(4))
        >>> round(share, 12)
        1.0
    """
    W = _square(W)
    T, _ = _complex_schur(W)
    N = torch.triu(T, diagonal=1)
    fro = float(torch.linalg.matrix_norm(W))
    share = float(torch.linalg.matrix_norm(N)) / fro if fro > 0 else 0.0
    return N, share


def transient_growth(W: torch.Tensor, k_max: int) -> torch.Tensor:
    """The spectral norms ``‖W^k‖₂`` for ``k = 0, …, k_max − 1``.

    For normal ``W`` this is ``ρ(W)^k``; a non-normal ``W`` can amplify for many steps
    before the eigenvalues take over (``‖W^k‖₂ ≥ ρ(W)^k``, with equality for normal ``W``
    only), so the spectrum alone does not tell how a signal evolves.

    Book: Eq. (nn-transient).

    Args:
        W: (n, n) real or complex matrix.
        k_max: number of powers, ≥ 1.

    Returns:
        (k_max,) float64, starting with ``‖W⁰‖₂ = 1``.

    Raises:
        TypeError: if ``W`` is not a floating or complex tensor or ``k_max`` not an int.
        ValueError: if ``W`` is not square or ``k_max < 1``.

    Example:
        >>> from orthobook.init import chain
        >>> transient_growth(chain(3), 4).tolist()
        [1.0, 1.0, 1.0, 0.0]
    """
    W = _square(W)
    _checks.positive_int(k_max, "k_max")
    norms = torch.empty(k_max, dtype=torch.float64, device=W.device)
    P = torch.eye(W.shape[0], dtype=W.dtype, device=W.device)
    for k in range(k_max):
        norms[k] = torch.linalg.matrix_norm(P, ord=2)
        P = W @ P
    return norms
