"""Linear decoding of past inputs from the states of a noisy recurrent network.

The Fisher memory curve of :mod:`orthobook.memory` is exact but needs a linear network. For
any network, linear or not, one can instead *measure* memory: drive it with a scalar input
stream and noise (Book: Eq. (dec-noisy)),

    h_t = f(W h_{t-1} + v s_t + z_t),        z_t ~ N(0, ε I),

and ask how well a linear readout ``wᵀ h_t`` recovers the input ``s_{t-k}`` from ``k`` steps
back. The readout is fitted by ridge regression in closed form (Book: Eq. (dec-ridge)) on one
stretch of the run and scored by the fraction of variance it explains (R²) on a later stretch.
For a linear network and Gaussian inputs the population R² of the best readout is
``m(k) = SNR(k) / (1 + SNR(k))`` of :func:`orthobook.memory.snr` (Book: Eq. (dec-r2)), which
ties the measurement to the theory.

Every computation runs in float64. These are measurements, not training objectives: the
arguments are detached and the results carry no gradient.
"""

from __future__ import annotations

import torch

from orthobook import _checks
from orthobook.models import NONLINEARITIES

__all__ = ["noisy_states", "ridge_readout", "decoding_r2"]


def noisy_states(
    W: torch.Tensor,
    v: torch.Tensor,
    s: torch.Tensor,
    noise: float = 1.0,
    *,
    nonlinearity: str = "identity",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Run ``h_t = f(W h_{t-1} + v s_t + z_t)`` from rest (``h_0 = 0``) and return every state.

    The noise ``z_t ~ N(0, ε I)`` enters before the nonlinearity, as in the linear model of
    :mod:`orthobook.memory` (Book: Eq. (mem-linear)) when ``f`` is the identity.

    Book: Eq. (dec-noisy).

    Args:
        W: (n, n) recurrent matrix, ``W h`` convention.
        v: (n,) input vector.
        s: (T,) scalar input stream.
        noise: the noise variance ε ≥ 0 per unit and step.
        nonlinearity: ``"identity"``, ``"tanh"``, ``"relu"`` or ``"elu"``.
        generator: optional generator for reproducible noise.

    Returns:
        ``H``: (T, n) float64, row ``t`` the state after input ``s[t]``.

    Raises:
        TypeError: if a tensor argument is not floating point.
        ValueError: if the shapes do not match, ``noise < 0``, or ``nonlinearity`` is unknown.

    Example:
        >>> from orthobook.init import chain
        >>> H = noisy_states(chain(3), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 2.0, 3.0]), noise=0.0)
        >>> H.tolist()  # the inputs move down the chain
        [[1.0, 0.0, 0.0], [2.0, 1.0, 0.0], [3.0, 2.0, 1.0]]
    """
    W = _checks.float64_square(W, "W")
    n = W.shape[0]
    v = _checks.matching_vector(v, "v", W)
    s = _checks.floating(s, "s")
    if s.dim() != 1 or s.shape[0] < 1:
        raise ValueError(f"s must be a non-empty vector of shape (T,), got shape {tuple(s.shape)}")
    eps = _checks.non_negative_float(noise, "noise")
    f = NONLINEARITIES[_checks.one_of(nonlinearity, "nonlinearity", tuple(NONLINEARITIES))]
    T = s.shape[0]
    device = W.device
    drive = torch.outer(s.detach().to(device, torch.float64), v)
    if eps > 0:
        # Drawn by the (CPU) generator, then moved: the same noise on every device.
        noise_draw = torch.randn(T, n, generator=generator, dtype=torch.float64)
        drive = drive + eps**0.5 * noise_draw.to(device)
    H = torch.empty(T, n, dtype=torch.float64, device=device)
    h = torch.zeros(n, dtype=torch.float64, device=device)
    Wt = W.T.contiguous()
    for t in range(T):
        h = f(drive[t] + h @ Wt)
        H[t] = h
    return H


def ridge_readout(X: torch.Tensor, Y: torch.Tensor, ridge: float) -> torch.Tensor:
    """The ridge-regression readout ``w = (XᵀX + λ I)⁻¹ XᵀY``, by one linear solve.

    It minimises ``‖X w − Y‖² + λ ‖w‖²``. There is no intercept: centre ``X`` and ``Y`` first
    (as :func:`decoding_r2` does). With ``λ = 0`` it is ordinary least squares and needs
    ``X`` of full column rank.

    Book: Eq. (dec-ridge).

    Args:
        X: (m, n) features, one row per sample.
        Y: (m,) or (m, p) targets.
        ridge: the penalty λ ≥ 0.

    Returns:
        ``w``: (n,) or (n, p) float64, matching ``Y``.

    Raises:
        TypeError: if ``X`` or ``Y`` is not floating point or ``ridge`` not a number.
        ValueError: if the shapes do not match or ``ridge < 0``.
        torch.linalg.LinAlgError: if ``λ = 0`` and ``XᵀX`` is singular.

    Example:
        >>> X = torch.tensor([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
        >>> w = ridge_readout(X, X @ torch.tensor([3.0, -1.0]), 0.0)
        >>> [round(x, 9) for x in w.tolist()]
        [3.0, -1.0]
    """
    X = _checks.floating(X, "X")
    Y = _checks.floating(Y, "Y")
    if X.dim() != 2:
        raise ValueError(f"X must be a matrix of shape (m, n), got shape {tuple(X.shape)}")
    if Y.dim() not in (1, 2) or Y.shape[0] != X.shape[0]:
        raise ValueError(f"Y must have shape ({X.shape[0]},) or ({X.shape[0]}, p) to match X, got {tuple(Y.shape)}")
    lam = _checks.non_negative_float(ridge, "ridge")
    X = X.detach().to(torch.float64)
    Y = Y.detach().to(X.device, torch.float64)
    G = X.T @ X + lam * torch.eye(X.shape[1], dtype=torch.float64, device=X.device)
    return torch.linalg.solve(G, X.T @ Y)


def decoding_r2(
    H: torch.Tensor,
    s: torch.Tensor,
    k_max: int,
    *,
    ridge: float = 1e-6,
    train_fraction: float = 0.5,
    burn_in: int = 0,
) -> torch.Tensor:
    """How well a linear readout of ``h_t`` recovers ``s_{t-k}``: held-out R² for ``k < k_max``.

    The rows ``t ≥ max(burn_in, k_max − 1)`` are split in time: the first ``train_fraction``
    fit one ridge readout per lag (all lags in one solve, Book: Eq. (dec-ridge)), the rest
    score it by ``R² = 1 − Σ (s − ŝ)² / Σ (s − s̄)²``. Features and targets are centred with
    the training means, and the penalty is ``ridge`` per training sample (λ = ``ridge`` · m),
    so its effect does not depend on the length of the run. For a linear network the R²
    approaches ``SNR(k) / (1 + SNR(k))`` (Book: Eq. (dec-r2)).

    Args:
        H: (T, n) states, row ``t`` after input ``s[t]`` (e.g. from :func:`noisy_states`).
        s: (T,) the input stream.
        k_max: number of lags, ``1 ≤ k_max < T``.
        ridge: penalty per training sample, ≥ 0.
        train_fraction: share of the rows used to fit, in (0, 1).
        burn_in: leading steps to drop (the transient from rest).

    Returns:
        ``R²``: (k_max,) float64; at most 1, negative when the readout is worse than the mean.

    Raises:
        TypeError: if an argument has the wrong type.
        ValueError: if the shapes do not match, or too few rows are left to fit and score.

    Example:
        >>> s = torch.randn(400, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        >>> H = torch.stack([s, torch.roll(s, 1)], dim=1)  # remembers exactly one step back
        >>> [round(x, 6) for x in decoding_r2(H, s, 3).tolist()[:2]]
        [1.0, 1.0]
    """
    H = _checks.floating(H, "H")
    s = _checks.floating(s, "s")
    if H.dim() != 2:
        raise ValueError(f"H must be a matrix of shape (T, n), got shape {tuple(H.shape)}")
    T = H.shape[0]
    if s.shape != (T,):
        raise ValueError(f"s must have shape (T,) = ({T},) to match H, got shape {tuple(s.shape)}")
    _checks.positive_int(k_max, "k_max")
    fraction = _checks.probability(train_fraction, "train_fraction")
    if not 0 < fraction < 1:
        raise ValueError(f"train_fraction must lie in (0, 1), got {train_fraction}")
    if not isinstance(burn_in, int) or isinstance(burn_in, bool) or burn_in < 0:
        raise ValueError(f"burn_in must be a non-negative int, got {burn_in!r}")
    start = max(burn_in, k_max - 1)
    rows = T - start
    m = int(fraction * rows)
    if m < 2 or rows - m < 2:
        raise ValueError(
            f"too few rows to fit and score: {rows} after burn_in={burn_in} and k_max={k_max} of T={T}"
        )
    H = H.detach().to(torch.float64)
    s = s.detach().to(H.device, torch.float64)
    X = H[start:]
    Y = torch.stack([s[start - k : T - k] for k in range(k_max)], dim=1)  # Y[:, k] = s_{t-k}
    X_mean, Y_mean = X[:m].mean(0), Y[:m].mean(0)
    X, Y = X - X_mean, Y - Y_mean
    w = ridge_readout(X[:m], Y[:m], ridge * m)
    residual = Y[m:] - X[m:] @ w
    spread = Y[m:] - Y[m:].mean(0)
    return 1.0 - residual.pow(2).sum(0) / spread.pow(2).sum(0)
