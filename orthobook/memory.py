"""Memory of linear recurrent networks driven by noise: Fisher memory curve and SNR.

The network is linear with Gaussian noise, in the ``W h`` convention (Book: Eq. (mem-linear)):

    h_t = W h_{t-1} + v s_t + z_t,        z_t ~ N(0, ε I),

with ``W``: (n, n), ``v``: (n,) and a scalar input stream ``s_t``. Unrolled,
``h_t = Σ_k W^k v s_{t-k} + Σ_k W^k z_{t-k}``: the input ``k`` steps back reaches the state
along the direction ``u_k = W^k v`` and is blurred by Gaussian noise of covariance

    C = ε Σ_{k≥0} W^k (W^k)ᵀ                                  (Book: Eq. (mem-noise-cov)).

Ganguli, Huh & Sompolinsky (2008) measure how much the present state knows about the past
input by the Fisher information of ``h_t`` about ``s_{t-k}``, the Fisher memory curve

    J(k) = u_kᵀ C⁻¹ u_k = vᵀ (W^k)ᵀ C⁻¹ W^k v                   (Book: Eq. (mem-fmc)).

Its sum ``J_tot`` equals ``‖v‖² / ε`` for every stable normal ``W``, whatever its
eigenvalues, while non-normal ``W`` can store more, up to the bound ``n ‖v‖² / ε``: the chain
of :func:`orthobook.init.chain` fed at its source has ``J_tot = 1 + 1/2 + … + 1/n`` for α = 1
and approaches ``n`` as α grows (Ganguli et al. 2008; Orhan & Pitkow 2020). See
Note [J_tot of normal networks] in :func:`total_memory`.

Every computation runs in float64, whatever the dtype of the arguments. These are measurements
of a matrix, not training objectives: the arguments are detached and the results carry no
gradient.
"""

from __future__ import annotations

import torch

from orthobook import _checks

__all__ = ["noise_covariance", "fisher_memory_curve", "total_memory", "snr"]

_MAX_DOUBLINGS = 64


# Note [Lyapunov by doubling]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~
# The noise covariance C = ε Σ_{k≥0} W^k (W^k)ᵀ is the solution of the discrete Lyapunov
# equation C = W C Wᵀ + ε I. The vec/Kronecker form of that equation is an n²×n² solve,
# O(n⁶); we use instead Smith's doubling algorithm on the series itself. With
# X_j = Σ_{k<2^j} W^k Q (W^k)ᵀ and A_j = W^(2^j),
#
#     X_{j+1} = X_j + A_j X_j A_jᵀ,        A_{j+1} = A_j²,
#
# so j doublings sum 2^j terms at the cost of 3j matrix products. The tail left out after
# step j is Σ_{m≥1} A_j^m X_j (A_j^m)ᵀ, whose norm is at most ‖X_j‖ a²/(1 − a²) with
# a = ‖A_j‖₂ ≤ ‖A_j‖_F; we stop once ‖A_j‖_F² ≤ eps (float64), so the sum is complete to
# machine precision. When ρ(W) < 1, A_j → 0 quadratically once ‖A_j‖ < 1 (after transient
# growth for non-normal W); for a nilpotent W (the chain) A_j is exactly 0 once 2^j ≥ n, so
# the infinite sum is the finite one and comes out exactly. When ρ(W) ≥ 1 the series
# diverges: A_j then overflows (ρ > 1) or never shrinks (ρ = 1, e.g. orthogonal W), and we
# raise after _MAX_DOUBLINGS = 64 doublings (2^64 terms) or at the first non-finite A_j. The
# test is on A_j, not on X_j, so a rank-deficient Q (Q = v vᵀ) cannot hide a divergence.
#
# A finite horizon T (the state T steps after starting from rest, h_0 = 0) truncates the sum
# to k < T by definition; it is summed by the same doubling over the binary digits of T,
# using X_{a+b} = X_a + W^a X_b (W^a)ᵀ. That sum exists for every W, orthogonal included.


def _lyapunov_series(W: torch.Tensor, Q: torch.Tensor, horizon: int | None) -> torch.Tensor:
    """``Σ_{k<T} W^k Q (W^k)ᵀ`` (T = ∞ when ``horizon`` is None); see Note [Lyapunov by doubling]."""
    if horizon is not None:
        return _truncated_series(W, Q, horizon)
    eps = torch.finfo(torch.float64).eps
    X, A = Q, W
    for _ in range(_MAX_DOUBLINGS):
        X = X + A @ X @ A.T
        A = A @ A
        a2 = torch.sum(A * A)
        if not torch.isfinite(a2):
            break
        if a2 <= eps:
            return 0.5 * (X + X.T)
    raise ValueError(
        "W must be stable (spectral radius < 1) for the infinite sum Σ_k W^k (W^k)ᵀ to "
        "converge; pass a finite horizon to use the state after `horizon` steps from rest"
    )


def _truncated_series(W: torch.Tensor, Q: torch.Tensor, horizon: int) -> torch.Tensor:
    """``Σ_{k<horizon} W^k Q (W^k)ᵀ`` by doubling over the binary digits of ``horizon``."""
    X_block, A_block = Q, W  # the sum of 2^j terms and W^(2^j)
    X, P = torch.zeros_like(Q), torch.eye(W.shape[0], dtype=W.dtype, device=W.device)  # the sum so far, W^r
    T = horizon
    while True:
        if T & 1:
            X = X + P @ X_block @ P.T
            P = P @ A_block
        T >>= 1
        if T == 0:
            break
        X_block = X_block + A_block @ X_block @ A_block.T
        A_block = A_block @ A_block
    if not torch.isfinite(X).all():
        raise ValueError(f"the sum over horizon={horizon} steps overflows float64; use a smaller horizon")
    return 0.5 * (X + X.T)


def _check_noise(noise: object) -> float:
    eps = _checks.non_negative_float(noise, "noise")
    if eps == 0:
        raise ValueError("noise must be positive: with ε = 0 the Fisher information is infinite")
    return eps


def _check_horizon(horizon: object) -> int | None:
    return None if horizon is None else _checks.positive_int(horizon, "horizon")


def noise_covariance(W: torch.Tensor, noise: float = 1.0, *, horizon: int | None = None) -> torch.Tensor:
    """The covariance of the noise in the state, ``C = ε Σ_{k<T} W^k (W^k)ᵀ``.

    With ``horizon=None`` the sum is infinite (T = ∞, the stationary covariance), the solution
    of the discrete Lyapunov equation ``C = W C Wᵀ + ε I``; it exists when ``W`` is stable
    (spectral radius < 1) or nilpotent. With a finite ``horizon`` T it is the covariance of
    ``h_T`` after T steps from rest (``h_0 = 0``), which exists for every ``W``. Both are
    computed by doubling (Note [Lyapunov by doubling]), never by summing term by term.

    Book: Eq. (mem-noise-cov).

    Args:
        W: (n, n) recurrent matrix, ``W h`` convention.
        noise: the noise variance ε > 0 per unit and step.
        horizon: number of steps T ≥ 1, or None for the stationary covariance.

    Returns:
        ``C``: (n, n) float64, symmetric positive definite (``C ⪰ ε I``).

    Raises:
        TypeError: if ``W`` is not a floating tensor or ``horizon`` not an int.
        ValueError: if ``W`` is not square, ``noise`` is not positive, or ``horizon`` is None
            and ``W`` is not stable.

    Example:
        >>> C = noise_covariance(0.5 * torch.eye(2))
        >>> torch.allclose(C, torch.eye(2, dtype=torch.float64) / 0.75)
        True
    """
    W = _checks.float64_square(W, "W")
    eps = _check_noise(noise)
    horizon = _check_horizon(horizon)
    Q = eps * torch.eye(W.shape[0], dtype=torch.float64, device=W.device)
    return _lyapunov_series(W, Q, horizon)


def _signal_directions(W: torch.Tensor, v: torch.Tensor, k_max: int) -> torch.Tensor:
    """The columns ``u_k = W^k v`` for ``k < k_max``: (n, k_max)."""
    U = torch.empty(W.shape[0], k_max, dtype=torch.float64, device=W.device)
    u = v
    for k in range(k_max):
        U[:, k] = u
        u = W @ u
    return U


def _whitened_energy(S: torch.Tensor, U: torch.Tensor) -> torch.Tensor:
    """``diag(Uᵀ S⁻¹ U)`` for symmetric positive definite ``S``, by a Cholesky solve: (k,)."""
    L = torch.linalg.cholesky(S)
    Y = torch.linalg.solve_triangular(L, U, upper=False)
    return torch.sum(Y * Y, dim=0)


def fisher_memory_curve(
    W: torch.Tensor,
    v: torch.Tensor,
    k_max: int,
    noise: float = 1.0,
    *,
    horizon: int | None = None,
) -> torch.Tensor:
    """The Fisher memory curve ``J(k) = vᵀ (W^k)ᵀ C⁻¹ W^k v`` for ``k = 0, …, k_max − 1``.

    ``J(k)`` is the Fisher information that the state ``h_t`` holds about the input
    ``s_{t-k}`` (Ganguli, Huh & Sompolinsky 2008). ``C`` is :func:`noise_covariance`; it is
    factored once by Cholesky and ``C⁻¹ W^k v`` is a triangular solve, never an inverse, so
    ``J(k) ≥ 0`` by construction. With a finite ``horizon`` T the state holds only the last
    T inputs and ``J(k) = 0`` for ``k ≥ T``.

    Book: Eq. (mem-fmc).

    Args:
        W: (n, n) recurrent matrix, ``W h`` convention.
        v: (n,) input vector.
        k_max: number of lags, ≥ 1.
        noise: the noise variance ε > 0.
        horizon: number of steps T ≥ 1 since rest, or None for the stationary state.

    Returns:
        ``J``: (k_max,) float64.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``W`` is not square, ``v`` does not match it, ``k_max < 1``,
            ``noise ≤ 0``, or ``horizon`` is None and ``W`` is not stable.

    Example:
        >>> from orthobook.init import chain
        >>> J = fisher_memory_curve(chain(3), torch.tensor([1.0, 0.0, 0.0]), 4)
        >>> [round(x, 6) for x in J.tolist()]  # 1 / (k + 1) along the chain, then nothing
        [1.0, 0.5, 0.333333, 0.0]
    """
    W = _checks.float64_square(W, "W")
    v = _checks.matching_vector(v, "v", W)
    _checks.positive_int(k_max, "k_max")
    C = noise_covariance(W, noise, horizon=horizon)
    k_in = k_max if horizon is None else min(k_max, horizon)
    J = torch.zeros(k_max, dtype=torch.float64, device=W.device)
    J[:k_in] = _whitened_energy(C, _signal_directions(W, v, k_in))
    return J


def total_memory(
    W: torch.Tensor,
    v: torch.Tensor,
    noise: float = 1.0,
    *,
    horizon: int | None = None,
) -> float:
    """The total Fisher memory ``J_tot = Σ_k J(k)``, summed in closed form.

    ``J_tot = Σ_k u_kᵀ C⁻¹ u_k = tr(C⁻¹ C_v)`` with ``C_v = Σ_k W^k v vᵀ (W^k)ᵀ``, the
    solution of ``C_v = W C_v Wᵀ + v vᵀ``; both series are summed by doubling (Note
    [Lyapunov by doubling]) over all ``k ≥ 0``, or ``k < horizon``.

    Book: Eq. (mem-jtot).

    Args:
        W: (n, n) recurrent matrix, ``W h`` convention.
        v: (n,) input vector.
        noise: the noise variance ε > 0.
        horizon: number of steps T ≥ 1 since rest, or None for the stationary state.

    Returns:
        ``J_tot``, a float in ``[0, n ‖v‖² / ε]``; exactly ``‖v‖² / ε`` when ``W`` is normal.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``W`` is not square, ``v`` does not match it, ``noise ≤ 0``, or
            ``horizon`` is None and ``W`` is not stable.

    Example:
        >>> round(total_memory(0.5 * torch.eye(3), torch.tensor([1.0, 0.0, 0.0])), 12)
        1.0
    """
    # Note [J_tot of normal networks]
    # ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
    # Let W = U Λ Uᴴ be normal (U unitary) with |λ_i| < 1, and ṽ = Uᴴ v. Then
    # C = ε U diag(1 / (1 − |λ_i|²)) Uᴴ and W^k v = U Λ^k ṽ, so
    #     J(k) = Σ_i |ṽ_i|² |λ_i|^{2k} (1 − |λ_i|²) / ε,
    # and summing the geometric series over k ≥ 0 gives J_tot = Σ_i |ṽ_i|² / ε = ‖v‖² / ε,
    # independent of the eigenvalues. With a horizon T the factor becomes
    # (1 − |λ_i|²) / (1 − |λ_i|^{2T}) (or 1/T when |λ_i| = 1) and the sum over k < T is again
    # ‖v‖² / ε: the statement holds for orthogonal W too. For any W, v vᵀ ⪯ ‖v‖² I gives
    # C_v ⪯ (‖v‖² / ε) C, hence J_tot = tr(C⁻¹ C_v) ≤ n ‖v‖² / ε (Ganguli et al. 2008 state
    # both with ‖v‖ = ε = 1: J_tot = 1 for normal networks, ≤ n for all).
    W = _checks.float64_square(W, "W")
    v = _checks.matching_vector(v, "v", W)
    eps = _check_noise(noise)
    horizon = _check_horizon(horizon)
    n = W.shape[0]
    C = _lyapunov_series(W, eps * torch.eye(n, dtype=torch.float64, device=W.device), horizon)
    C_v = _lyapunov_series(W, torch.outer(v, v), horizon)
    L = torch.linalg.cholesky(C)
    Y = torch.linalg.solve_triangular(L, C_v, upper=False)
    Z = torch.linalg.solve_triangular(L, Y.T, upper=False)
    return float(torch.trace(Z))


def snr(
    W: torch.Tensor,
    v: torch.Tensor,
    k_max: int,
    noise: float = 1.0,
    *,
    signal: float = 1.0,
    horizon: int | None = None,
) -> torch.Tensor:
    """The signal-to-noise ratio of the best linear readout of ``s_{t-k}`` from ``h_t``.

    The inputs ``s_t`` are i.i.d. with variance σ² (``signal``). A linear readout ``wᵀ h_t``
    of the input ``k`` steps back sees it with gain ``wᵀ u_k`` (``u_k = W^k v``) and is
    corrupted by the noise and by every *other* input, of total covariance
    ``R_k = C + σ² (C_v − u_k u_kᵀ)`` (``C``: :func:`noise_covariance`, ``C_v`` as in
    :func:`total_memory`). The best ``w ∝ R_k⁻¹ u_k`` achieves

        SNR(k) = σ² u_kᵀ R_k⁻¹ u_k = m(k) / (1 − m(k)),   m(k) = σ² u_kᵀ Σ⁻¹ u_k,

    with ``Σ = C + σ² C_v`` the covariance of ``h_t`` (Sherman–Morrison); ``m(k) ∈ [0, 1)``
    is the squared correlation between ``s_{t-k}`` and its best linear estimate. Relation to
    the Fisher memory curve: the Fisher information treats the other inputs as known, so
    ``SNR(k) ≤ σ² J(k)``, with ``SNR(k) / σ² → J(k)`` as ``σ² → 0`` (weak signals, where the
    noise dominates the interference).

    Book: Eq. (mem-snr).

    Args:
        W: (n, n) recurrent matrix, ``W h`` convention.
        v: (n,) input vector.
        k_max: number of lags, ≥ 1.
        noise: the noise variance ε > 0.
        signal: the input variance σ² ≥ 0.
        horizon: number of steps T ≥ 1 since rest, or None for the stationary state; inputs
            older than T are not in the state and have SNR 0.

    Returns:
        ``SNR``: (k_max,) float64, non-negative.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if ``W`` is not square, ``v`` does not match it, ``k_max < 1``,
            ``noise ≤ 0``, ``signal < 0``, or ``horizon`` is None and ``W`` is not stable.

    Example:
        >>> s = snr(0.5 * torch.eye(1), torch.tensor([1.0]), 2)
        >>> [round(x, 6) for x in s.tolist()]  # C = 4/3, C_v = 4/3: SNR(0) = 1 / (4/3 + 1/3)
        [0.6, 0.103448]
    """
    W = _checks.float64_square(W, "W")
    v = _checks.matching_vector(v, "v", W)
    _checks.positive_int(k_max, "k_max")
    eps = _check_noise(noise)
    sigma2 = _checks.non_negative_float(signal, "signal")
    horizon = _check_horizon(horizon)
    n = W.shape[0]
    Q = eps * torch.eye(n, dtype=torch.float64, device=W.device) + sigma2 * torch.outer(v, v)
    Sigma = _lyapunov_series(W, Q, horizon)
    k_in = k_max if horizon is None else min(k_max, horizon)
    m = sigma2 * _whitened_energy(Sigma, _signal_directions(W, v, k_in))
    out = torch.zeros(k_max, dtype=torch.float64, device=W.device)
    out[:k_in] = m / (1.0 - m)
    return out
