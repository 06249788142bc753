"""Householder reflectors and their fast products.

A reflector ``H(u) = I − 2 u uᵀ / ‖u‖²`` (Book: Eq. (hh-reflector)) mirrors space in the
hyperplane orthogonal to ``u``. A product of ``k`` reflectors is orthogonal by construction,
and with ``k = n`` such products cover a whole connected component of O(n) (Book:
Eq. (hh-cartan)), which is why Spectral-RNN (Zhang, Lei & Dhillon 2018) parametrises the
singular vectors of ``W`` with them.

Throughout, the reflector vectors are the columns of ``V: (n, k)``: unnormalised and
non-zero, ``u_i = V[:, i]``. Products are taken left to right,
``Q = H(u₁) H(u₂) … H(u_k)``, so ``Q x = H(u₁)(H(u₂)(… H(u_k) x))``: the *last*
reflector acts first. Nothing here forms ``Q`` one reflector at a time; see
Note [compact WY].
"""

from __future__ import annotations

from typing import Any

import torch

from orthobook import _checks

__all__ = [
    "reflector",
    "wy_matrix",
    "apply_reflectors",
    "householder_product",
    "recover_reflectors",
    "reflector_distance_bound",
    "fit_reflectors",
]


# Note [compact WY]
# ~~~~~~~~~~~~~~~~~
# Claim: for U = [u₁ … u_k] (n × k, non-zero columns, not necessarily normalised),
#
#     H(u₁) H(u₂) … H(u_k) = I − U S⁻¹ Uᵀ,   S = striu(UᵀU) + ½ diag(UᵀU),      (hh-wy)
#
# where striu keeps the strictly upper triangle. S is upper triangular with diagonal
# ½‖u_i‖² > 0, so it is invertible, and S + Sᵀ = UᵀU.
#
# Proof by induction on k. For k = 1, S = ½‖u₁‖² and I − U S⁻¹ Uᵀ = H(u₁). Step: write
# U = [U' u], assume Q' = I − U' S'⁻¹ U'ᵀ, and multiply by H(u) = I − τ u uᵀ, τ = 2/‖u‖²:
#
#     Q' H(u) = I − U' S'⁻¹ U'ᵀ − τ u uᵀ + τ U' S'⁻¹ (U'ᵀ u) uᵀ.
#
# The new S is block upper triangular, S = [[S', U'ᵀu], [0, 1/τ]], whose inverse is
# [[S'⁻¹, −τ S'⁻¹ U'ᵀ u], [0, τ]]; expanding U S⁻¹ Uᵀ with it gives exactly the three
# terms above. (This is the "UT transform" of Joffrain et al. 2006; LAPACK stores T = S⁻¹.)
#
# Orthogonality can also be read off directly, for any U with non-zero columns:
# QᵀQ = I − U S⁻ᵀ (S + Sᵀ − UᵀU) S⁻¹ Uᵀ = I.
#
# Cost: one GEMM for G = UᵀU (n k²), one triangular solve X = U S⁻¹ (n k²), one GEMM for
# X Uᵀ (n² k). The thin product needs only the first p columns of Q,
# Q[:, :p] = I[:, :p] − X (U[:p, :])ᵀ (n k p), and applying Q to m vectors is
# X − U S⁻¹ (Uᵀ X) (n k m + k² m): never more than O(n k) work per column once S⁻¹ is
# at hand. All of it is BLAS-3 and differentiable by autograd, which is what makes it
# much faster than the reflector-by-reflector loop of torch.linalg.householder_product and
# its backward.
#
# Scale: H(c u) = H(u) for every c ≠ 0, so the vectors are made unit before UᵀU is formed.
# Without it, float32 vectors of norm 1e19 overflow ‖u‖² (> 3.4e38) and vectors of norm
# 1e-20 underflow it to zero or a subnormal; the columns are first divided by their largest
# entry, so that the norm itself cannot overflow or underflow either. With unit columns
# S = striu(UᵀU) + ½ I and every entry of S lies in [−1, 1].


def reflector(u: torch.Tensor) -> torch.Tensor:
    """The Householder reflector ``H(u) = I − 2 u uᵀ / ‖u‖²`` as a dense matrix.

    ``H(u)`` is symmetric, orthogonal, an involution (``H² = I``) and has determinant −1
    (Book: Eq. (hh-reflector)). Meant for teaching and tests; products of reflectors go
    through :func:`householder_product`.

    Args:
        u: (n,) non-zero floating-point vector; its scale does not matter (it is normalised
            first, so entries from 1e-20 to 1e19 in float32 neither underflow nor overflow).

    Returns:
        ``H``: (n, n), same dtype and device as ``u``.

    Raises:
        TypeError: ``u`` is not a floating-point tensor.
        ValueError: ``u`` is not a non-empty vector, or ``u`` is zero.

    Example:
        >>> reflector(torch.tensor([1.0, 0.0]))
        tensor([[-1.,  0.],
                [ 0.,  1.]])
    """
    _checks.floating(u, "u")
    if u.dim() != 1 or u.shape[0] == 0:
        raise ValueError(f"u must be a non-empty vector of shape (n,), got shape {tuple(u.shape)}")
    scale = u.abs().amax()
    if scale == 0:
        raise ValueError("u must be non-zero: H(0) is undefined")
    u = u / scale  # see Note [compact WY], "Scale": ‖u‖² neither overflows nor underflows
    u = u / torch.linalg.vector_norm(u)
    return torch.eye(u.shape[0], dtype=u.dtype, device=u.device) - 2.0 * torch.outer(u, u)


def wy_matrix(U: torch.Tensor) -> torch.Tensor:
    """The triangular ``S = striu(UᵀU) + ½ diag(UᵀU)`` of the compact WY form.

    ``H(u₁) H(u₂) … H(u_k) = I − U S⁻¹ Uᵀ`` (Book: Eq. (hh-wy); Note [compact WY]), where
    ``striu`` keeps the strictly upper triangle. ``S`` is upper triangular with the diagonal
    ``½‖u_i‖²``, so it is invertible when no column is zero, and ``S + Sᵀ = UᵀU``.
    :func:`householder_product` and :func:`apply_reflectors` call it on unit columns, for
    which ``S = striu(UᵀU) + ½ I``.

    Args:
        U: (..., n, k) floating-point tensor whose columns are the reflector vectors
            ``u₁ … u_k``, of any scale; leading dimensions are a batch.

    Returns:
        ``S``: (..., k, k), upper triangular, same dtype and device as ``U``.

    Raises:
        TypeError: ``U`` is not a floating-point tensor.
        ValueError: ``U`` has fewer than 2 dimensions or ``n = 0``.

    Example:
        >>> wy_matrix(torch.tensor([[1.0, 1.0], [0.0, 1.0]]))  # u₁ = e₁, u₂ = e₁ + e₂
        tensor([[0.5000, 1.0000],
                [0.0000, 1.0000]])
    """
    _check_vectors(U, "U")
    G = U.mT @ U
    return G.triu() - 0.5 * torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))


def householder_product(
    V: torch.Tensor, *, columns: int | None = None, check: bool = True
) -> torch.Tensor:
    """The product ``Q = H(u₁) H(u₂) … H(u_k)`` of the reflectors with vectors ``V[:, i]``.

    Computed in the compact WY form ``Q = I − U S⁻¹ Uᵀ`` with
    ``S = striu(UᵀU) + ½ diag(UᵀU)`` (Book: Eq. (hh-wy); Note [compact WY]): two GEMMs and
    one triangular solve, differentiable. With ``columns=p`` only the thin factor
    ``Q[:, :p]`` is built, in O(n k p) work.

    Args:
        V: (..., n, k) floating-point tensor whose columns are the non-zero, unnormalised
            reflector vectors ``u₁ … u_k``; leading dimensions are a batch. ``k = 0`` gives
            the identity.
        columns: ``p`` with 1 ≤ p ≤ n to return only the first ``p`` columns of ``Q``;
            ``None`` (default) returns all of ``Q``.
        check: raise if a reflector vector is zero. The check reads one value back from the
            device (a synchronisation on a GPU); with ``check=False`` a zero vector silently
            yields NaN.

    Returns:
        ``Q``: (..., n, n), or (..., n, p) with ``columns=p``; orthogonal (orthonormal
        columns) to working precision.

    Raises:
        TypeError: ``V`` is not a floating-point tensor, or ``columns`` is not an int.
        ValueError: ``V`` has fewer than 2 dimensions or ``n = 0``, ``columns`` is out of
            range, or (with ``check``) some column of ``V`` is zero.

    Example:
        >>> V = torch.randn(5, 3, dtype=torch.float64)
        >>> Q = householder_product(V)
        >>> torch.allclose(Q.T @ Q, torch.eye(5, dtype=torch.float64))
        True
        >>> householder_product(V, columns=2).shape
        torch.Size([5, 2])
    """
    _check_vectors(V, "V")
    n = V.shape[-2]
    if columns is not None:
        _checks.positive_int(columns, "columns")
        if columns > n:
            raise ValueError(f"columns must satisfy 1 <= columns <= n = {n}, got {columns}")
    p = n if columns is None else columns
    U = _unit_columns(V, check)
    X = torch.linalg.solve_triangular(wy_matrix(U), U, upper=True, left=False)  # U S⁻¹
    eye = torch.eye(n, p, dtype=V.dtype, device=V.device)
    return eye - X @ U[..., :p, :].mT


def apply_reflectors(
    V: torch.Tensor, X: torch.Tensor, *, transpose: bool = False, check: bool = True
) -> torch.Tensor:
    """Apply ``Q = H(u₁) … H(u_k)`` (or ``Qᵀ``) to vectors without forming ``Q``.

    ``Q X = H(u₁)(H(u₂)(… H(u_k) X))`` is evaluated as ``X − U S⁻¹ (Uᵀ X)`` and
    ``Qᵀ X = H(u_k)(… H(u₁) X)`` as ``X − U S⁻ᵀ (Uᵀ X)`` (Book: Eq. (hh-wy)): O(n k) work per
    column of ``X`` plus O(n k²) once for ``S``.

    Args:
        V: (..., n, k) reflector vectors as columns, as in :func:`householder_product`.
        X: (..., n, m) or (n,) vectors to transform, same dtype as ``V``; batch dimensions
            broadcast with those of ``V``.
        transpose: apply ``Qᵀ = H(u_k) … H(u₁)`` (the inverse of ``Q``) instead of ``Q``.
        check: raise if a reflector vector is zero (a device synchronisation; see
            :func:`householder_product`).

    Returns:
        ``Q X`` (or ``Qᵀ X``): the shape of ``X`` broadcast with the batch of ``V``.

    Raises:
        TypeError: ``V`` or ``X`` is not a floating-point tensor, or their dtypes differ.
        ValueError: the shapes do not fit, or (with ``check``) a column of ``V`` is zero.

    Example:
        >>> V, X = torch.randn(6, 2), torch.randn(6, 3)
        >>> Y = apply_reflectors(V, X)
        >>> torch.allclose(apply_reflectors(V, Y, transpose=True), X, atol=1e-5)
        True
    """
    _check_vectors(V, "V")
    _checks.floating(X, "X")
    if X.dtype != V.dtype:
        raise TypeError(f"X must have the dtype of V ({V.dtype}), got {X.dtype}")
    n = V.shape[-2]
    if X.dim() == 0 or X.shape[-2 if X.dim() > 1 else 0] != n:
        raise ValueError(f"X must have shape (..., {n}, m) or ({n},), got {tuple(X.shape)}")
    vector = X.dim() == 1
    Y = X.unsqueeze(-1) if vector else X
    U = _unit_columns(V, check)
    S = wy_matrix(U)
    C = torch.linalg.solve_triangular(S.mT if transpose else S, U.mT @ Y, upper=not transpose)
    Z = Y - U @ C
    return Z.squeeze(-1) if vector else Z


def recover_reflectors(Q: torch.Tensor) -> torch.Tensor:
    """Reflector vectors ``u₁ … u_m`` (m ≤ n) with ``Q = H(u₁) … H(u_m)`` exactly.

    The constructive proof that every orthogonal matrix is a product of at most ``n``
    reflectors (Book: Eq. (hh-cartan)): Householder QR that maps each working column ``x``
    onto ``+‖x‖ e_j`` with ``u = x − ‖x‖ e_j`` (Parlett's cancellation-free form of the
    first entry), skipping the step when ``x`` already equals ``‖x‖ e_j``. Because ``Q`` is
    orthogonal, the triangular factor that remains is the identity, so no sign matrix is
    left over; ``det Q = (−1)^m``.

    Args:
        Q: (n, n) orthogonal floating-point matrix (``‖QᵀQ − I‖₂ ≤ √eps`` of its dtype).

    Returns:
        ``V``: (n, m), unit columns with ``V[:j, j] = 0`` for the step ``j`` that produced
        them, such that ``householder_product(V)`` rebuilds ``Q`` to working precision.

    Raises:
        TypeError: ``Q`` is not a floating-point tensor.
        ValueError: ``Q`` is not square or not orthogonal.

    Example:
        >>> V = recover_reflectors(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
        >>> V.shape  # a swap of two coordinates is one reflection
        torch.Size([2, 1])
    """
    _checks.square(Q, "Q")
    n = Q.shape[0]
    eye = torch.eye(n, dtype=Q.dtype, device=Q.device)
    error = torch.linalg.matrix_norm(Q.mT @ Q - eye, ord=2)
    if not error <= torch.finfo(Q.dtype).eps ** 0.5:
        raise ValueError(f"Q must be orthogonal, got ‖QᵀQ − I‖₂ = {error.item():.3g}")
    A = Q.detach().clone()
    vectors = []
    for j in range(n):
        u = _reflector_onto_axis(A[j:, j])
        if u is None:
            continue
        A[j:, j:] -= 2.0 * torch.outer(u, u @ A[j:, j:])
        vectors.append(torch.cat([u.new_zeros(j), u]))
    if not vectors:
        return Q.new_zeros(n, 0)
    return torch.stack(vectors, dim=1)


# Note [reach of k reflectors]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Claim: for orthogonal Q (n × n) and any P = H(u₁) … H(u_k),
#
#     ‖Q − P‖_F ≥ (Σ_{i>k} σ_i(Q − I)²)^{1/2},  and ‖Q − P‖_F ≥ 2 when det Q ≠ (−1)^k,   (hh-reach)
#
# with σ₁ ≥ σ₂ ≥ … the singular values of Q − I, and the first bound is attained when
# det Q = (−1)^k.
#
# Rank: by Note [compact WY], P − I = −U S⁻¹ Uᵀ has rank ≤ k, so Q − P = (Q − I) − (P − I)
# is Q − I minus a matrix of rank ≤ k, and Eckart–Young bounds its Frobenius norm below by
# the tail of the singular values of Q − I.
# Parity: det P = (−1)^k. If det Q differs, R = QᵀP is orthogonal with det R = −1, so it has
# the eigenvalue −1 with a unit eigenvector x, and ‖Q − P‖_F = ‖I − R‖_F ≥ ‖(I − R)x‖ = 2.
# Attained: Q is normal, in a real Schur basis block diagonal with 2 × 2 rotations R(θ)
# and 1 × 1 blocks ±1. Q − I is normal too; a rotation block gives the singular value
# 2|sin(θ/2)| twice, a −1 gives 2, a +1 gives 0. When det Q = (−1)^k the number of −1
# blocks has the parity of k, so the k largest singular values fill whole blocks (pair up
# two −1 blocks, a rotation by π, if needed): two reflectors in a block's plane give its
# rotation exactly, one reflector gives a −1 block, H(u)H(u) = I pads. P equal to Q on
# those blocks and to I elsewhere leaves exactly the tail in Q − P.


def reflector_distance_bound(Q: torch.Tensor, k: int) -> torch.Tensor:
    """Lower bound on ``‖Q − H(u₁) … H(u_k)‖_F`` over all choices of ``k`` reflectors.

    ``max((Σ_{i>k} σ_i(Q − I)²)^{1/2}, 2·[det Q ≠ (−1)^k])`` (Book: Eq. (hh-reach); Note
    [reach of k reflectors]). The first term comes from the rank of ``P − I`` (at most
    ``k``), the second from the determinant. When ``det Q = (−1)^k`` the bound is the exact
    minimum.

    Args:
        Q: (n, n) orthogonal floating-point matrix.
        k: number of reflectors, ``k ≥ 0``.

    Returns:
        The bound, a 0-dim tensor of the dtype of ``Q``.

    Raises:
        TypeError: ``Q`` is not a floating-point tensor or ``k`` not an int.
        ValueError: ``Q`` is not square or ``k`` is negative.

    Example:
        >>> Q = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # a rotation by π: two reflectors
        >>> [round(float(reflector_distance_bound(Q, k)), 3) for k in range(3)]
        [2.828, 2.0, 0.0]
    """
    _checks.square(Q, "Q")
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"k must be an int, got {type(k).__name__}")
    if k < 0:
        raise ValueError(f"k must be non-negative, got {k}")
    n = Q.shape[0]
    s = torch.linalg.svdvals(Q - torch.eye(n, dtype=Q.dtype, device=Q.device))
    rank_bound = s[k:].square().sum().sqrt()
    wrong_parity = torch.linalg.det(Q) * (-1.0) ** k < 0
    return torch.where(wrong_parity, rank_bound.clamp(min=2.0), rank_bound)


def fit_reflectors(
    Q: torch.Tensor,
    k: int,
    *,
    starts: int = 4,
    steps: int = 500,
    lr: float = 0.05,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fit ``k`` reflectors to ``Q`` by minimising ``‖Q − H(u₁) … H(u_k)‖²_F`` with Adam.

    All ``starts`` Gaussian starting points are optimised together as one batch
    (:func:`householder_product` takes a batch of ``V``). Gradient descent gives an upper
    bound on the best approximation; :func:`reflector_distance_bound` gives the lower one
    (Book: Eq. (hh-reach)).

    Args:
        Q: (n, n) target matrix, floating point (float64 advised).
        k: number of reflectors, ``k ≥ 1``.
        starts: independent random starts.
        steps: Adam steps.
        lr: Adam learning rate.
        generator: optional generator for reproducible starts.

    Returns:
        ``(V, errors)``: ``V: (n, k)`` the reflector vectors of the best start and
        ``errors: (starts,)`` the final ``‖Q − H(u₁) … H(u_k)‖_F`` of every start.

    Raises:
        TypeError: ``Q`` is not a floating-point tensor, or an integer argument is not an int.
        ValueError: ``Q`` is not square, or ``k``, ``starts``, ``steps`` is not positive, or
            ``lr`` is not positive and finite.

    Example:
        >>> Q = householder_product(torch.randn(4, 2, dtype=torch.float64))
        >>> V, errors = fit_reflectors(Q, 2, starts=2, steps=300)
        >>> bool(errors.min() < 1e-3)
        True
    """
    _checks.square(Q, "Q")
    _checks.positive_int(k, "k")
    _checks.positive_int(starts, "starts")
    _checks.positive_int(steps, "steps")
    _checks.positive_float(lr, "lr")
    n = Q.shape[0]
    target = Q.detach()
    V = torch.randn(starts, n, k, generator=generator, dtype=Q.dtype).to(Q.device).requires_grad_()
    optimizer = torch.optim.Adam([V], lr=lr)
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        # The starts are independent, so the gradient of the sum is each start's own gradient.
        (householder_product(V, check=False) - target).square().sum().backward()
        optimizer.step()
    with torch.no_grad():
        errors = torch.linalg.matrix_norm(householder_product(V, check=False) - target)
    best = V.detach()[errors.argmin()]
    return best, errors


def _reflector_onto_axis(x: torch.Tensor) -> torch.Tensor | None:
    """Unit ``u`` with ``H(u) x = ‖x‖ e₁``, or None when ``x`` is already ``‖x‖ e₁``."""
    tail2 = x[1:] @ x[1:]
    if tail2 == 0 and x[0] >= 0:
        return None
    norm = torch.sqrt(x[0] ** 2 + tail2)
    # x₀ − ‖x‖ cancels when x₀ > 0; x₀² − ‖x‖² = −‖x_tail‖² gives it without cancellation.
    head = -tail2 / (x[0] + norm) if x[0] > 0 else x[0] - norm
    u = torch.cat([head.reshape(1), x[1:]])
    return u / torch.linalg.vector_norm(u)


# Note [WY backward]
# ~~~~~~~~~~~~~~~~~~
# A training step of householder_svd builds Q[:, :p] = I[:, :p] − X V[:p]ᵀ, X = V S⁻¹, for
# both factors and backpropagates through it. Autograd's backward of that graph takes five
# GEMMs and a triangular solve, and allocates a dozen (n, k) and (k, k) temporaries (the
# transposes, the triu/diagonal pieces of S, the sums of partial gradients), which on a CPU
# cost as much as the products at n ≥ 128. The gradient has a closed form with four GEMMs.
# With Ḡ = ∂L/∂Q[:, :p] (n, p):
#
#     dQ = −dX V[:p]ᵀ − X dV[:p]ᵀ,   dX = dV S⁻¹ − X dS S⁻¹,   dS = A(dVᵀV + VᵀdV),
#
# where A keeps the strict upper triangle and halves the diagonal (a self-adjoint mask). So
# ∂L/∂X = −Ḡ V[:p], and with Z = Ḡ V[:p] S⁻ᵀ (one triangular solve) and M = Xᵀ Z,
#
#     ∂L/∂V = V (N + Nᵀ) − Z − [Ḡᵀ X; 0],   N = A(M),  N + Nᵀ = triu(M) + striu(M)ᵀ,
#
# the last term filling the first p rows. The vectors enter unnormalised (S = striu(VᵀV) +
# ½ diag(VᵀV), Eq. (hh-wy) for any scale): the hot path skips the scaling of Note [compact
# WY], which only matters for vectors near 1e±19 in float32, far from where a parametrization's
# vectors live (a Gaussian start; the gradient of Q is orthogonal to each u_i, so steps grow
# ‖u_i‖ only at second order). tests/test_householder.py checks the values against the
# reflectors one by one and the gradient by gradcheck in float64.


class _ThinWY(torch.autograd.Function):
    """``Q[:, :p] = I[:, :p] − X V[:p]ᵀ``, ``X = V S⁻¹``, with the backward of Note [WY backward]."""

    @staticmethod
    def forward(V: torch.Tensor, p: int) -> torch.Tensor:
        G = V.mT @ V
        S = G.triu() - 0.5 * torch.diag_embed(torch.diagonal(G, dim1=-2, dim2=-1))
        X = torch.linalg.solve_triangular(S, V, upper=True, left=False)
        eye = torch.eye(V.shape[-2], p, dtype=V.dtype, device=V.device)
        return eye - X @ V[..., :p, :].mT, S, X

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple, output: tuple) -> None:
        V, p = inputs
        _, S, X = output
        ctx.p = p
        ctx.save_for_backward(V, S, X)
        ctx.mark_non_differentiable(S, X)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor, *_: object) -> tuple[torch.Tensor, None]:
        if torch.is_grad_enabled():  # create_graph=True: this backward is not differentiable
            raise RuntimeError(
                "householder_svd's hand-written backward (Note [WY backward]) has no second "
                "derivative; differentiate householder.householder_product twice instead"
            )
        V, S, X = ctx.saved_tensors
        p = ctx.p
        Z = torch.linalg.solve_triangular(S.mT, grad @ V[..., :p, :], upper=False, left=False)
        M = X.mT @ Z
        grad_V = V @ (M.triu() + M.triu(1).mT)
        grad_V -= Z
        grad_V[..., :p, :] -= grad.mT @ X
        return grad_V, None


def _thin_product(V: torch.Tensor, p: int) -> torch.Tensor:
    """``Q[:, :p]`` of ``Q = H(u₁) … H(u_k)`` for the training hot path (Note [WY backward]).

    Internal: no argument checks, no scaling of the vectors, a hand-written backward.
    ``V``: (..., n, k) non-zero vectors as columns; ``1 ≤ p ≤ n``; returns (..., n, p).
    """
    return _ThinWY.apply(V, p)[0]


def _check_vectors(V: object, name: str) -> None:
    _checks.floating(V, name)
    if V.dim() < 2 or V.shape[-2] == 0:
        raise ValueError(
            f"{name} must have shape (..., n, k) with n >= 1 (reflector vectors as columns), "
            f"got shape {tuple(V.shape)}"
        )


def _unit_columns(V: torch.Tensor, check: bool) -> torch.Tensor:
    """The columns of ``V`` scaled to unit norm (Note [compact WY], "Scale")."""
    scale = V.abs().amax(dim=-2, keepdim=True)
    if check and bool((scale == 0).any()):
        raise ValueError("every reflector vector (column of V) must be non-zero; H(0) is undefined")
    U = V / scale
    return U / torch.linalg.vector_norm(U, dim=-2, keepdim=True)

