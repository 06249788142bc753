"""Recurrent-matrix modules: each builds the hidden-to-hidden matrix ``W`` of an RNN.

A recurrence is an :class:`torch.nn.Module` whose ``forward()`` takes no input and
returns ``W`` of shape (hidden_size, hidden_size) for the ``h_t = f(W h_{t-1} + V x_t + b)``
convention (Book: Eq. (gp-recurrence)). A model calls it **once per forward pass** and hands
the matrix to the fused RNN kernel, so a constrained recurrence costs only the
construction of ``W``.
"""

from __future__ import annotations

import torch
from torch import nn

from orthobook import _checks
from orthobook import init as _init
from orthobook.householder import householder_product
from orthobook.stiefel import StiefelParameter, orthogonality_error

__all__ = [
    "Recurrence",
    "Plain",
    "margin_singular_values",
    "HouseholderSVD",
    "HouseholderSVDLinear",
    "SpectralMarginSVD",
    "soft_orthogonality_penalty",
    "singular_value_prior",
    "ResidualIdentity",
]

_PLAIN_INITS = ("glorot", "orthogonal", "identity")


class Recurrence(nn.Module):
    """Base class of recurrent-matrix modules.

    Subclasses set ``hidden_size`` and implement ``forward() -> W`` with ``W: (n, n)``.
    """

    hidden_size: int

    def forward(self) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}"


class Plain(Recurrence):
    """An unconstrained recurrent matrix ``W``, itself the parameter.

    Args:
        hidden_size: n.
        init: ``"glorot"``, ``"orthogonal"`` (Haar ``λQ``), ``"identity"`` (``λI``), or an
            (n, n) tensor to start from.
        scale: λ for the orthogonal and identity initialisations.
        generator: optional generator for a reproducible initial draw.

    Example:
        >>> W = Plain(4, init="identity")()
        >>> W.shape
        torch.Size([4, 4])
    """

    def __init__(
        self,
        hidden_size: int,
        init: str | torch.Tensor = "glorot",
        scale: float = 1.0,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.weight = nn.Parameter(_initial_matrix(hidden_size, init, scale, generator))

    def forward(self) -> torch.Tensor:
        return self.weight


def _initial_matrix(
    n: int, init: str | torch.Tensor, scale: float, generator: torch.Generator | None
) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        W = _checks.square(init, "init")
        if W.shape[0] != n:
            raise ValueError(f"init must have shape ({n}, {n}), got {tuple(W.shape)}")
        return W.detach().clone().float()
    _checks.one_of(init, "init", _PLAIN_INITS)
    if init == "glorot":
        return _init.glorot(n, generator=generator)
    if init == "orthogonal":
        return _init.orthogonal(n, scale, generator=generator)
    return _init.identity(n, scale)


def margin_singular_values(p: torch.Tensor, margin: float) -> torch.Tensor:
    """Map free parameters ``p`` to singular values inside the margin.

    ``s = 2 m (σ(p) − ½) + 1``, so ``s ∈ (1 − m, 1 + m)`` for every real ``p``, and
    ``p = 0`` gives ``s = 1`` (Book: Eq. (sm-margin); Vorontsov et al. 2017).
    ``m = 0`` is hard orthogonality: every singular value is exactly 1.

    Args:
        p: (..., n) real parameters.
        margin: m ≥ 0.

    Returns:
        ``s``: same shape as ``p``.

    Raises:
        ValueError: ``margin`` is negative.
    """
    _checks.floating(p, "p")
    m = _checks.non_negative_float(margin, "margin")
    return 2.0 * m * (torch.sigmoid(p) - 0.5) + 1.0


# Note [Householder SVD reach]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Each reflector has determinant −1, so U = H(u₁)…H(u_k) and V = H(v₁)…H(v_k) both have
# determinant (−1)^k and a square W = U diag(s) Vᵀ always has det W = ∏ s > 0. With k = n,
# U and V each range over a whole component of O(n) (every orthogonal matrix is a product
# of at most n reflectors, and H(u)H(u) = I pads a shorter product to the same parity), so
# W ranges over *all* matrices with positive determinant whose singular values lie in the
# margin band. The other half, det W < 0, is out of reach of any continuous parametrisation
# from a connected parameter space: reaching it takes a fixed ±1 sign (one row of U flipped),
# a discrete choice that gradient descent could not make anyway. A rectangular W
# (out ≠ in) has no such restriction: the larger factor has room for one more reflector
# that leaves its first min(out, in) columns alone.


class HouseholderSVD(Recurrence):
    """Spectral-RNN's recurrent matrix ``W = U diag(s) Vᵀ`` with Householder factors.

    ``U = H(u₁) … H(u_k)`` and ``V = H(v₁) … H(v_k)`` are products of ``k`` reflectors
    built in the compact WY form (Book: Eq. (hh-wy)); ``s = 2m(σ(p) − ½) + 1`` keeps every
    singular value of ``W`` in ``(1 − m, 1 + m)`` (Book: Eq. (sm-margin)), so
    ``W = U diag(s) Vᵀ`` (Book: Eq. (hh-svd); Zhang, Lei & Dhillon 2018). With ``k = n``
    the parametrisation reaches every ``W`` with ``det W > 0`` and singular values in the
    band (Note [Householder SVD reach]). The reflector vectors start Gaussian and ``p`` at
    0, so the initial ``W`` is orthogonal.

    Parameters: ``U_vectors: (n, k)``, ``V_vectors: (n, k)``, ``p: (n,)``. ``forward()``
    does not check for a zero reflector vector (that would synchronise the device every
    step); a zero vector, a measure-zero event, makes ``W`` NaN.

    Args:
        hidden_size: n.
        reflectors: k with 1 ≤ k ≤ n reflectors per factor (default n).
        margin: m ≥ 0; ``m = 0`` makes ``W`` exactly orthogonal.
        generator: optional generator for a reproducible initial draw.

    Example:
        >>> rec = HouseholderSVD(8, margin=0.1, generator=torch.Generator().manual_seed(0))
        >>> W = rec()
        >>> W.shape
        torch.Size([8, 8])
        >>> bool(((rec.singular_values() - 1).abs() <= 0.1).all())
        True
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        reflectors: int | None = None,
        margin: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.margin = _checks.non_negative_float(margin, "margin")
        self.U_vectors, self.V_vectors, self.p = _householder_svd_parameters(
            hidden_size, hidden_size, reflectors, generator
        )

    def forward(self) -> torch.Tensor:
        """``W: (n, n) = U diag(s) Vᵀ`` (Book: Eq. (hh-svd))."""
        return _householder_svd(self.U_vectors, self.V_vectors, self.singular_values())

    def singular_values(self) -> torch.Tensor:
        """``s: (n,)``, the singular values of ``W`` (unsorted; Book: Eq. (sm-margin))."""
        return margin_singular_values(self.p, self.margin)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, reflectors={self.U_vectors.shape[1]}, margin={self.margin}"


class HouseholderSVDLinear(nn.Module):
    """A linear layer ``y = x Wᵀ + b`` whose ``W: (out, in)`` is a Householder SVD.

    ``W = U[:, :r] diag(s) V[:, :r]ᵀ`` with ``r = min(out, in)``, ``U = H(u₁) … H(u_k)``
    (out × out), ``V = H(v₁) … H(v_k)`` (in × in) and ``s = 2m(σ(p) − ½) + 1``: all ``r``
    singular values of ``W`` lie in ``(1 − m, 1 + m)`` (Book: Eq. (hh-svd), Eq. (sm-margin)).
    Spectral-RNN's parametrisation for the rectangular weights of an MLP; only the thin
    factors are built (Book: Eq. (hh-wy)).

    Args:
        in_features: number of inputs.
        out_features: number of outputs.
        bias: learn an additive bias ``b: (out,)`` (initialised to zero).
        reflectors: k with 1 ≤ k ≤ min(out, in) reflectors per factor (default
            min(out, in)).
        margin: m ≥ 0.
        generator: optional generator for a reproducible initial draw.

    Example:
        >>> layer = HouseholderSVDLinear(6, 3)
        >>> layer(torch.randn(5, 6)).shape
        torch.Size([5, 3])
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        bias: bool = True,
        reflectors: int | None = None,
        margin: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.in_features = _checks.positive_int(in_features, "in_features")
        self.out_features = _checks.positive_int(out_features, "out_features")
        self.margin = _checks.non_negative_float(margin, "margin")
        self.U_vectors, self.V_vectors, self.p = _householder_svd_parameters(
            out_features, in_features, reflectors, generator
        )
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None

    @property
    def weight(self) -> torch.Tensor:
        """``W: (out, in) = U[:, :r] diag(s) V[:, :r]ᵀ`` (Book: Eq. (hh-svd))."""
        return _householder_svd(self.U_vectors, self.V_vectors, self.singular_values())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``y: (..., out) = x Wᵀ + b`` for ``x: (..., in)``."""
        return nn.functional.linear(x, self.weight, self.bias)

    def singular_values(self) -> torch.Tensor:
        """``s: (min(out, in),)``, the singular values of ``W`` (unsorted)."""
        return margin_singular_values(self.p, self.margin)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"reflectors={self.U_vectors.shape[1]}, margin={self.margin}, bias={self.bias is not None}"
        )


def _householder_svd_parameters(
    n_out: int, n_in: int, reflectors: int | None, generator: torch.Generator | None
) -> tuple[nn.Parameter, nn.Parameter, nn.Parameter]:
    r = min(n_out, n_in)
    k = r if reflectors is None else _checks.positive_int(reflectors, "reflectors")
    if k > r:
        raise ValueError(f"reflectors must satisfy 1 <= reflectors <= {r}, got {k}")
    U_vectors = torch.randn(n_out, k, generator=generator)
    V_vectors = torch.randn(n_in, k, generator=generator)
    return nn.Parameter(U_vectors), nn.Parameter(V_vectors), nn.Parameter(torch.zeros(r))


def _householder_svd(U_vectors: torch.Tensor, V_vectors: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    r = s.shape[0]
    U = householder_product(U_vectors, columns=r, check=False)
    V = householder_product(V_vectors, columns=r, check=False)
    return (U * s) @ V.mT


# Note [spectral margin with Stiefel factors]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Vorontsov et al. (2017) keep the factors U and V of W = U diag(s) Vᵀ on O(n) by moving them
# along Cayley curves (orthobook.optim.GeodesicOptimizer), not by building them from free
# parameters: U and V are the parameters themselves, marked as StiefelParameter. An ordinary
# optimizer would move them off O(n), and the singular values of W would leave the margin.


class SpectralMarginSVD(Recurrence):
    """Vorontsov et al.'s recurrent matrix ``W = U diag(s) Vᵀ`` with orthogonal ``U``, ``V``.

    ``U`` and ``V`` are n×n :class:`~orthobook.stiefel.StiefelParameter` s, kept orthogonal by
    the geodesic steps of :class:`~orthobook.optim.GeodesicOptimizer` (Note [spectral margin
    with Stiefel factors]); ``s = 2m(σ(p) − ½) + 1`` keeps every singular value of ``W`` in
    ``(1 − m, 1 + m)`` (Book: Eq. (sm-svd), Eq. (sm-margin)). ``margin=None`` is the paper's
    "no margin": ``s = p`` is free, starting at 1 (the singular values are then ``|s|``).
    Either way ``s`` starts at 1, so the initial ``W = U Vᵀ`` is orthogonal: Haar distributed
    for ``init="orthogonal"``, the identity for ``init="identity"``. Given a matrix ``W₀`` as
    ``init``, the model starts at ``W₀`` itself: ``U``, ``V`` and ``s`` come from the SVD of
    ``W₀`` (Note [starting a spectral margin at a given matrix]).

    Parameters: ``U: (n, n)``, ``V: (n, n)``, ``p: (n,)``.

    Args:
        hidden_size: n.
        margin: m ≥ 0 (``m = 0``: ``W`` exactly orthogonal), or ``None`` for free singular values.
        init: ``"orthogonal"`` (independent Haar ``U`` and ``V``), ``"identity"`` (``U = V = I``),
            or an (n, n) tensor ``W₀`` whose singular values lie in the margin band (any ``W₀``
            for ``margin=None``, e.g. a Glorot draw).
        generator: optional generator for a reproducible initial draw.
        dtype: floating dtype of the parameters. Build in float64 for float64 work: ``.double()``
            of a float32 module keeps ``U``, ``V`` only float32-orthogonal (error ~1e-7).

    Raises:
        TypeError: ``hidden_size`` is not an int, ``margin`` not a real number or ``None``, or
            ``dtype`` not a floating dtype.
        ValueError: ``hidden_size < 1``, ``margin < 0``, an unknown ``init``, or an ``init``
            matrix of the wrong shape or with a singular value outside the margin band.

    Example:
        >>> rec = SpectralMarginSVD(8, margin=0.1, generator=torch.Generator().manual_seed(0))
        >>> W = rec()
        >>> W.shape
        torch.Size([8, 8])
        >>> bool(((torch.linalg.svdvals(W) - 1).abs() <= 0.1 + 1e-6).all())
        True
    """

    def __init__(
        self,
        hidden_size: int,
        *,
        margin: float | None = 0.01,
        init: str | torch.Tensor = "orthogonal",
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        super().__init__()
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.margin = None if margin is None else _checks.non_negative_float(margin, "margin")
        if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        if isinstance(init, torch.Tensor):
            U, V, p = _factors_of(init, hidden_size, self.margin)
            self.U, self.V = StiefelParameter(U.to(dtype)), StiefelParameter(V.to(dtype))
            self.p = nn.Parameter(p.to(dtype))
            return
        _checks.one_of(init, "init", ("orthogonal", "identity"))
        self.U = StiefelParameter(_orthogonal_factor(hidden_size, init, generator, dtype))
        self.V = StiefelParameter(_orthogonal_factor(hidden_size, init, generator, dtype))
        start = 0.0 if self.margin is not None else 1.0
        self.p = nn.Parameter(torch.full((hidden_size,), start, dtype=dtype))

    def forward(self) -> torch.Tensor:
        """``W: (n, n) = U diag(s) Vᵀ`` (Book: Eq. (sm-svd))."""
        return (self.U * self.singular_values()) @ self.V.mT

    def singular_values(self) -> torch.Tensor:
        """``s: (n,)``, the singular values of ``W`` while ``U``, ``V`` are orthogonal (unsorted;
        Book: Eq. (sm-margin)); with ``margin=None`` they are ``|s|``."""
        if self.margin is None:
            return self.p
        return margin_singular_values(self.p, self.margin)

    def orthogonality_errors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(‖UᵀU − I‖_F, ‖VᵀV − I‖_F)`` as 0-dim tensors (Book: Eq. (stiefel-orth-error))."""
        with torch.no_grad():
            return orthogonality_error(self.U), orthogonality_error(self.V)

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, margin={self.margin}"


# Note [starting a spectral margin at a given matrix]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# W₀ = U diag(σ) Vᵀ (its SVD, computed in float64) gives the factors directly; the free
# parameters then invert the margin map of Eq. (sm-margin): p = logit((σ − 1)/(2m) + ½). That
# needs every σ strictly inside (1 − m, 1 + m): the sigmoid never reaches the edges. With
# m = 0 the map is constant, so W₀ must be orthogonal (σ = 1 to rounding) and p = 0. With
# margin=None, p = σ. A Glorot draw has singular values spread over (0, 2) (the quarter-circle
# law), so only margin=None, and m ≥ 1 for a lucky draw, can start from one.


def _factors_of(
    W0: torch.Tensor, n: int, margin: float | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(U, V, p)`` with ``U diag(s(p)) Vᵀ = W₀`` (Note [starting a spectral margin at a given matrix])."""
    W0 = _checks.square(W0, "init")
    if W0.shape[0] != n:
        raise ValueError(f"init must have shape ({n}, {n}), got {tuple(W0.shape)}")
    U, sigma, Vh = torch.linalg.svd(W0.detach().to("cpu", torch.float64))
    if margin is None:
        return U, Vh.mT, sigma
    if margin == 0:
        if (sigma - 1).abs().max() > 10 * n * torch.finfo(W0.dtype).eps:
            raise ValueError("init must be orthogonal for margin=0 (every singular value 1)")
        return U, Vh.mT, torch.zeros(n, dtype=torch.float64)
    if not bool(((sigma - 1).abs() < margin).all()):
        raise ValueError(
            f"init must have every singular value in the margin band ({1 - margin:g}, {1 + margin:g}); "
            f"its singular values span [{sigma.min().item():.4g}, {sigma.max().item():.4g}]"
        )
    return U, Vh.mT, torch.logit((sigma - 1) / (2 * margin) + 0.5)


def _orthogonal_factor(
    n: int, init: str, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    if init == "orthogonal":
        return _init.orthogonal(n, generator=generator, dtype=dtype)
    return _init.identity(n, dtype=dtype)


def soft_orthogonality_penalty(W: torch.Tensor) -> torch.Tensor:
    """The soft orthogonality constraint ``‖WᵀW − I‖²_F`` (Book: Eq. (soft-orthogonality)).

    Added to a loss with a weight λ, it pulls every singular value σ of ``W`` towards 1:
    for a square ``W`` it equals ``Σ (σ² − 1)²``.

    Args:
        W: (..., n, k).

    Returns:
        (...), one penalty per matrix (0-dim for a single matrix).

    Raises:
        TypeError: ``W`` is not a floating-point tensor.
        ValueError: ``W`` has fewer than two dimensions.
    """
    W = _checks.floating(W, "W")
    if W.dim() < 2:
        raise ValueError(f"W must have shape (..., n, k), got shape {tuple(W.shape)}")
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (W.mT @ W - eye).square().sum(dim=(-2, -1))


def singular_value_prior(s: torch.Tensor, std: float) -> torch.Tensor:
    """The Gaussian prior on singular values, ``Σᵢ (sᵢ − 1)² / (2 std²)`` (Book: Eq. (sv-prior)).

    The negative log-density (up to a constant) of ``sᵢ ~ N(1, std²)``: a soft pull of the
    singular values towards 1, the alternative to the hard margin of :class:`SpectralMarginSVD`.

    Args:
        s: (..., n) singular values.
        std: the prior's standard deviation, > 0.

    Returns:
        (...), summed over the last dimension.

    Raises:
        TypeError: ``s`` is not a floating-point tensor or ``std`` not a real number.
        ValueError: ``s`` is 0-dimensional or ``std`` is not positive and finite.
    """
    s = _checks.floating(s, "s")
    if s.dim() < 1:
        raise ValueError("s must have shape (..., n), got a 0-dim tensor")
    sigma = _checks.non_negative_float(std, "std")
    if not 0 < sigma < float("inf"):
        raise ValueError(f"std must be positive and finite, got {std}")
    return (s - 1.0).square().sum(dim=-1) / (2.0 * sigma**2)


class ResidualIdentity(Recurrence):
    """The recurrent identity network's matrix ``W = U + I`` (Hu et al. 2018).

    With ``f = relu`` the Elman step becomes ``h_t = relu((U + I) h_{t-1} + V x_t + b)``
    (Book: Eq. (rin-recurrence)): the identity is a fixed part of the recurrence and only the
    residual ``U`` is learned, so the backward factor is ``(U + I)ᵀ D_k`` (Book: Eq.
    (rin-jacobian)) and an L2 penalty or weight decay on ``U`` is a prior centred at ``W = I``
    (Book: Eq. (rin-prior)). ``U`` starts ``N(0, std²)``, the paper's ``std = 1e-3``;
    ``std = 0`` starts exactly at the identity (the IRNN's initial matrix). ``forward()``
    builds ``W`` once per call (one (n, n) addition); the model then runs the fused kernel.

    Parameters: ``U: (n, n)``.

    Args:
        hidden_size: n.
        std: standard deviation ≥ 0 of the initial entries of ``U``.
        generator: optional generator for a reproducible initial draw.

    Raises:
        TypeError: ``hidden_size`` is not an int or ``std`` not a real number.
        ValueError: ``hidden_size < 1`` or ``std < 0``.

    Example:
        >>> rec = ResidualIdentity(4, std=0.0)
        >>> torch.equal(rec(), torch.eye(4))
        True
    """

    def __init__(self, hidden_size: int, std: float = 1e-3, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.hidden_size = _checks.positive_int(hidden_size, "hidden_size")
        self.std = _checks.non_negative_float(std, "std")
        self.U = nn.Parameter(self.std * torch.randn(hidden_size, hidden_size, generator=generator))
        # Not in the state dict: I is a constant, moved and cast with the module.
        self.register_buffer("identity", torch.eye(hidden_size), persistent=False)

    def forward(self) -> torch.Tensor:
        """``W: (n, n) = U + I`` (Book: Eq. (rin-recurrence))."""
        return self.U + self.identity

    def extra_repr(self) -> str:
        return f"hidden_size={self.hidden_size}, std={self.std}"
