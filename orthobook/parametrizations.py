"""The book's constraints as :mod:`torch.nn.utils.parametrize` parametrizations.

Each public function constrains one 2-D parameter ``name`` of any module, in place, and
returns the module: afterwards ``module.<name>`` is computed from the parametrization's
originals (``module.parametrizations.<name>.original*``), which the optimizer trains.

- :func:`spectral_margin`: ``W = U diag(s) Vᵀ`` with Stiefel factors ``U``, ``V`` and every
  singular value in ``(1 − m, 1 + m)`` (Vorontsov et al. 2017; Book: Eq. (sm-svd)).
- :func:`householder_svd`: the same form with ``U``, ``V`` products of Householder
  reflectors (Zhang, Lei & Dhillon 2018; Book: Eq. (hh-svd)).
- :func:`residual_identity`: ``W = U + I`` (Hu et al. 2018; Book: Eq. (rin-recurrence)).
- :func:`orthogonal`: ``W`` itself an orthonormal frame (Book: Eq. (stiefel-manifold)).

The orthonormal factors are :class:`~orthobook.stiefel.StiefelParameter` s: a plain
optimizer would move them off the manifold, the Cayley optimizers of :mod:`orthobook.optim`
keep them on it. Assigning ``module.<name> = W`` sets the originals so that the constrained
tensor equals ``W`` where the construction reaches ``W``, and raises ``ValueError`` where it
does not. A model that reads the tensor several times per forward pass (``nn.RNN`` does)
should run under :func:`torch.nn.utils.parametrize.cached`, which builds it once.

Example:
    >>> from torch import nn
    >>> from torch.nn.utils import parametrize
    >>> rnn = spectral_margin(nn.RNN(3, 16), "weight_hh_l0", margin=0.1)
    >>> with parametrize.cached():
    ...     output, h = rnn(torch.randn(2, 5, 3))
    >>> s = torch.linalg.svdvals(rnn.weight_hh_l0)
    >>> bool(((s - 1).abs() <= 0.1 + 1e-6).all())
    True
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from orthobook import _checks
from orthobook import init as _init
from orthobook.householder import _thin_product, householder_product, recover_reflectors
from orthobook.stiefel import StiefelParameter, reorthonormalize

__all__ = [
    "spectral_margin",
    "householder_svd",
    "householder_svd_matrix",
    "residual_identity",
    "orthogonal",
    "margin_singular_values",
    "singular_values",
    "factors",
]


def margin_singular_values(p: torch.Tensor, margin: float) -> torch.Tensor:
    """Map free parameters ``p`` to singular values inside the margin.

    ``s = 2 m (σ(p) − ½) + 1``, so ``s ∈ (1 − m, 1 + m)`` for every real ``p``, and
    ``p = 0`` gives ``s = 1`` (Book: Eq. (sm-margin); Vorontsov et al. 2017).
    ``m = 0`` is hard orthogonality: every singular value is exactly 1.

    Args:
        p: (..., n) real parameters.
        margin: m ≥ 0, finite.

    Returns:
        ``s``: same shape as ``p``.

    Raises:
        TypeError: ``p`` is not a floating-point tensor or ``margin`` not a real number.
        ValueError: ``margin`` is negative or not finite.

    Example:
        >>> margin_singular_values(torch.tensor([-1e9, 0.0, 1e9]), 0.1)
        tensor([0.9000, 1.0000, 1.1000])
    """
    _checks.floating(p, "p")
    m = _checks.non_negative_float(margin, "margin")
    return 2.0 * m * (torch.sigmoid(p) - 0.5) + 1.0


# Note [registration starts at the paper's initialisation]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# register_parametrization creates the originals by calling right_inverse once, on the
# tensor the module holds. That tensor is PyTorch's default (Kaiming-uniform for nn.Linear,
# U(−1/√n, 1/√n) for nn.RNN), not the paper's start, and often out of reach (its singular
# values leave a narrow margin band). So each parametrization is built holding its initial
# originals, drawn by the public function, and hands them out at that first call; every
# later call (an assignment module.<name> = W) is the true right inverse. The draws are made
# on the CPU in float64 from the (CPU) generator and then cast to the tensor's dtype and
# moved to its device: a seed gives the same start on every device, and a float64 module
# gets factors orthonormal to float64 precision.


class _Parametrization(nn.Module):
    """Holds the initial originals until register_parametrization asks for them."""

    def __init__(self, start: tuple[torch.Tensor, ...]) -> None:
        super().__init__()
        self._start: tuple[torch.Tensor, ...] | None = start

    def right_inverse(self, W: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        if self._start is not None:
            # Note [registration starts at the paper's initialisation]
            start, self._start = self._start, None
            return start if len(start) > 1 else start[0]
        return self._invert(W)

    def _invert(self, W: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        raise NotImplementedError


# Note [spectral margin with Stiefel factors]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Vorontsov et al. (2017) keep the factors U and V of W = U diag(s) Vᵀ on the Stiefel
# manifold by moving them along Cayley curves (orthobook.optim's Cayley optimizers), not by
# building them from free parameters: U and V are the originals themselves, marked as
# StiefelParameter. An ordinary optimizer would move them off the manifold, and the singular
# values of W would leave the margin.


class _SpectralMargin(_Parametrization):
    """``W: (out, in) = U diag(s) Vᵀ`` from ``U: (out, r)``, ``V: (in, r)``, ``p: (r,)``."""

    def __init__(self, margin: float | None, start: tuple[torch.Tensor, ...]) -> None:
        super().__init__(start)
        self.margin = margin

    def forward(self, U: torch.Tensor, V: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        return (U * self.singular_values(p)) @ V.mT

    def singular_values(self, p: torch.Tensor) -> torch.Tensor:
        return p if self.margin is None else margin_singular_values(p, self.margin)

    def _invert(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Note [starting a spectral margin at a given matrix]
        U, sigma, Vh = torch.linalg.svd(_float64(W), full_matrices=False)
        p = sigma if self.margin is None else _inverse_margin(sigma, self.margin, W.dtype)
        return _like(W, U, Vh.mT, p)

    def extra_repr(self) -> str:
        return f"margin={self.margin}"


# Note [starting a spectral margin at a given matrix]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# W₀ = U diag(σ) Vᵀ (its thin SVD, computed in float64) gives the factors directly; the free
# parameters then invert the margin map of Eq. (sm-margin): p = logit((σ − 1)/(2m) + ½). That
# needs every σ strictly inside (1 − m, 1 + m): the sigmoid never reaches the edges. With
# m = 0 the map is constant, so W₀ must be orthogonal (σ = 1 to rounding; for a rectangular
# W₀, orthonormal columns or rows) and p = 0. With margin=None, p = σ. A Glorot draw has
# singular values spread over (0, 2) (the quarter-circle law), so only margin=None, and
# m ≥ 1 for a lucky draw, can start from one.


def _inverse_margin(sigma: torch.Tensor, margin: float, dtype: torch.dtype) -> torch.Tensor:
    """``p`` with ``s(p) = σ`` (Note [starting a spectral margin at a given matrix])."""
    if margin == 0:
        if (sigma - 1).abs().max() > 10 * sigma.shape[0] * torch.finfo(dtype).eps:
            raise ValueError("W must be orthogonal for margin=0 (every singular value 1)")
        return torch.zeros_like(sigma)
    if not bool(((sigma - 1).abs() < margin).all()):
        raise ValueError(
            f"W must have every singular value in the margin band ({1 - margin:g}, {1 + margin:g}); "
            f"its singular values span [{sigma.min().item():.4g}, {sigma.max().item():.4g}]"
        )
    return torch.logit((sigma - 1) / (2 * margin) + 0.5)


def spectral_margin(
    module: nn.Module,
    name: str = "weight",
    *,
    margin: float | None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Constrain ``module.<name>`` to ``W = U diag(s) Vᵀ`` with orthonormal ``U``, ``V``.

    For ``W: (out, in)`` and ``r = min(out, in)``, ``U: (out, r)`` and ``V: (in, r)`` are
    :class:`~orthobook.stiefel.StiefelParameter` s (``original0``, ``original1``), kept on
    the manifold by the Cayley optimizers (Note [spectral margin with Stiefel factors]), and
    ``s = 2m(σ(p) − ½) + 1`` from ``p: (r,)`` (``original2``) keeps every singular value of
    ``W`` in ``(1 − m, 1 + m)`` (Book: Eq. (sm-svd), Eq. (sm-margin); Vorontsov et al. 2017).
    ``margin=None`` is the paper's "no margin": ``s = p`` is free (the singular values are
    then ``|s|``). The start is Vorontsov's: independent Haar ``U`` and ``V`` and ``s = 1``
    (``p = 0``; ``p = 1`` for ``margin=None``), so ``W = U Vᵀ`` starts orthogonal.

    Assigning ``module.<name> = W₀`` starts at ``W₀`` instead: ``U``, ``V``, ``p`` come from
    its SVD (Note [starting a spectral margin at a given matrix]); ``torch.eye(n)`` gives the
    identity start, a Glorot draw needs ``margin=None``.

    Args:
        module: the module that holds the parameter.
        name: a 2-D floating-point parameter of ``module``, not yet parametrized.
        margin: m ≥ 0, finite (``m = 0``: ``W`` has orthonormal columns or rows), or
            ``None`` for free singular values.
        generator: optional CPU generator for a reproducible initial draw.

    Returns:
        ``module``, with ``module.<name>`` parametrized.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, ``name`` not a str, the parameter not
            floating point, ``margin`` not a real number or ``None``, or ``generator`` not a
            ``torch.Generator``.
        ValueError: ``name`` is not a 2-D parameter of ``module`` or is already
            parametrized, ``margin`` is negative or infinite, or ``generator`` is not a CPU
            generator. Assigning a ``W₀`` with a singular value outside the band raises it too.

    Example:
        >>> from torch import nn
        >>> layer = spectral_margin(nn.Linear(6, 4), margin=0.1,
        ...                         generator=torch.Generator().manual_seed(0))
        >>> layer.weight.shape
        torch.Size([4, 6])
        >>> torch.allclose(singular_values(layer), torch.ones(4))
        True
        >>> layer.weight = 1.05 * torch.eye(4, 6)
        >>> torch.allclose(layer.weight, 1.05 * torch.eye(4, 6))
        True
    """
    weight = _target(module, name)
    m = None if margin is None else _checks.non_negative_float(margin, "margin")
    _generator(generator)
    n_out, n_in = weight.shape
    r = min(n_out, n_in)
    U = _haar_frame(n_out, r, generator)
    V = _haar_frame(n_in, r, generator)
    p = torch.full((r,), 1.0 if m is None else 0.0, dtype=torch.float64)
    start = _like(weight, U, V, p)
    return _register(module, name, _SpectralMargin(m, start), stiefel=("original0", "original1"))


# Note [Householder SVD reach]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# An orthogonal Q (n × n) is a product of exactly k reflectors iff rank(Q − I) ≤ k and
# det Q = (−1)^k: Householder QR writes it as rank(Q − I) of them (Book: Eq. (hh-reach)), and
# H(u)H(u) = I pads the product by pairs. So with k = r = min(out, in) reflectors a factor
# reaches every frame for its first r columns, with one restriction: a *square* factor
# (n = r) has the fixed determinant (−1)^k. A square W = U diag(s) Vᵀ therefore always has
# det W = ∏ s > 0, and W ranges over *all* matrices with positive determinant whose singular
# values lie in the margin band. The other half, det W < 0, is out of reach of any continuous
# parametrisation from a connected parameter space: reaching it takes a fixed ±1 sign (one
# row of U flipped), a discrete choice that gradient descent could not make anyway.
# A rectangular W (out ≠ in) has no such restriction: the larger factor has room for one
# more reflector that leaves its first r columns alone, so its determinant is free.
#
# right_inverse builds the reflectors from the thin SVD W = A diag(σ) Bᵀ. Flipping column j
# of A and of B together leaves W unchanged; one such paired flip gives the square factor(s)
# det = (−1)^k (for a square W both at once, which works iff det A · det B = sign det W > 0).
# recover_reflectors then writes each factor as ≤ r reflectors: a square factor directly; a
# tall frame A (n × r) completed to an orthogonal [A, C] by a full QR, whose reflectors from
# the steps j ≥ r vanish on the first r coordinates (they fix e₁ … e_r, so they are dropped
# without changing the first r columns). A parity still missing in a tall factor is made up
# by H(e_{r+1}), which fixes the first r columns too, and pairs H(e₁)H(e₁) fill up to k.
# With k < r a factor reaches only the measure-zero set rank(Q − I) ≤ k, so right_inverse
# refuses.


class _HouseholderSVD(_Parametrization):
    """``W: (out, in) = U[:, :r] diag(s) V[:, :r]ᵀ`` from reflector vectors and ``p: (r,)``."""

    def __init__(self, margin: float, reflectors: int, start: tuple[torch.Tensor, ...]) -> None:
        super().__init__(start)
        self.margin = margin
        self.reflectors = reflectors

    def forward(self, U_vectors: torch.Tensor, V_vectors: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
        # Checked once, when registered; each forward skips the checks (Note [WY backward]).
        return _householder_svd_matrix(U_vectors, V_vectors, self.singular_values(p))

    def singular_values(self, p: torch.Tensor) -> torch.Tensor:
        return margin_singular_values(p, self.margin)

    def _invert(self, W: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # Note [Householder SVD reach]
        n_out, n_in = W.shape
        r, k = min(n_out, n_in), self.reflectors
        if k < r:
            raise ValueError(
                f"W can be assigned only with reflectors = min(out, in) = {r}: {k} reflectors "
                "per factor reach only a measure-zero set of matrices"
            )
        A, sigma, Bh = torch.linalg.svd(_float64(W), full_matrices=False)
        B = Bh.mT.clone()
        p = _inverse_margin(sigma, self.margin, W.dtype)
        if n_out == n_in and torch.linalg.det(A) * torch.linalg.det(B) < 0:
            raise ValueError(
                "W must have a positive determinant: a square Householder SVD has det W = ∏ s > 0"
            )
        square = A if n_out == r else B
        if torch.linalg.det(square) * (-1) ** k < 0:
            A[:, -1] = -A[:, -1]
            B[:, -1] = -B[:, -1]
        return _like(W, _reflectors_of_frame(A, k), _reflectors_of_frame(B, k), p)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, reflectors={self.reflectors}"


def _reflectors_of_frame(F: torch.Tensor, k: int) -> torch.Tensor:
    """``(n, k)`` vectors with ``H(u₁) … H(u_k)[:, :r] = F`` (Note [Householder SVD reach])."""
    n, r = F.shape
    Q = F if n == r else torch.cat([F, torch.linalg.qr(F, mode="complete").Q[:, r:]], dim=1)
    vectors = recover_reflectors(Q)
    vectors = vectors[:, (vectors[:r] != 0).any(dim=0)]
    pad = []
    if (k - vectors.shape[1]) % 2:
        pad.append(torch.eye(n, dtype=F.dtype)[:, r])
    e1 = torch.eye(n, dtype=F.dtype)[:, 0]
    pad += [e1] * (k - vectors.shape[1] - len(pad))
    return torch.cat([vectors, *(u.unsqueeze(1) for u in pad)], dim=1)


def householder_svd(
    module: nn.Module,
    name: str = "weight",
    *,
    margin: float,
    reflectors: int | None = None,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Constrain ``module.<name>`` to Spectral-RNN's ``W = U[:, :r] diag(s) V[:, :r]ᵀ``.

    For ``W: (out, in)`` and ``r = min(out, in)``, ``U = H(u₁) … H(u_k)`` (out × out) and
    ``V = H(v₁) … H(v_k)`` (in × in) are products of ``k`` reflectors, of which only the
    first ``r`` columns are built, in the compact WY form (Book: Eq. (hh-wy)); ``s =
    2m(σ(p) − ½) + 1`` keeps every singular value of ``W`` in ``(1 − m, 1 + m)`` (Book:
    Eq. (hh-svd), Eq. (sm-margin); Zhang, Lei & Dhillon 2018). The originals are plain
    parameters, ``U_vectors: (out, k)`` (``original0``), ``V_vectors: (in, k)``
    (``original1``) and ``p: (r,)`` (``original2``), so any optimizer keeps the constraint.
    The vectors start Gaussian and ``p`` at 0, so the initial ``W`` has orthonormal columns
    or rows (for a square ``W``, orthogonal with ``det W = 1``). The forward does not check
    for a zero reflector vector (that would synchronise the device every step); a zero
    vector, a measure-zero event, makes ``W`` NaN.

    With ``k = r`` the construction reaches every ``W`` with singular values in the band,
    except, for a square ``W``, those with ``det W < 0`` (Note [Householder SVD reach]), and
    assigning ``module.<name> = W₀`` starts there; an unreachable ``W₀`` raises.

    Args:
        module: the module that holds the parameter.
        name: a 2-D floating-point parameter of ``module``, not yet parametrized.
        margin: m ≥ 0, finite; ``m = 0`` gives orthonormal columns or rows.
        reflectors: k with 1 ≤ k ≤ min(out, in) reflectors per factor (default min(out, in)).
        generator: optional CPU generator for a reproducible initial draw.

    Returns:
        ``module``, with ``module.<name>`` parametrized.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, ``name`` not a str, the parameter not
            floating point, ``margin`` not a real number, ``reflectors`` not an int, or
            ``generator`` not a ``torch.Generator``.
        ValueError: ``name`` is not a 2-D parameter of ``module`` or is already
            parametrized, ``margin`` is negative or infinite, ``reflectors`` out of range, or
            ``generator`` not a CPU generator. Assigning an unreachable ``W₀`` raises it too.

    Example:
        >>> from torch import nn
        >>> rnn = householder_svd(nn.RNN(2, 8), "weight_hh_l0", margin=0.1,
        ...                       generator=torch.Generator().manual_seed(0))
        >>> W = rnn.weight_hh_l0
        >>> torch.allclose(W @ W.T, torch.eye(8), atol=1e-5)
        True
        >>> bool(torch.linalg.det(W) > 0)
        True
    """
    weight = _target(module, name)
    m = _checks.non_negative_float(margin, "margin")
    _generator(generator)
    n_out, n_in = weight.shape
    r = min(n_out, n_in)
    k = r if reflectors is None else _checks.positive_int(reflectors, "reflectors")
    if k > r:
        raise ValueError(f"reflectors must satisfy 1 <= reflectors <= min(out, in) = {r}, got {k}")
    U_vectors = torch.randn(n_out, k, generator=generator, dtype=torch.float64)
    V_vectors = torch.randn(n_in, k, generator=generator, dtype=torch.float64)
    p = torch.zeros(r, dtype=torch.float64)
    start = _like(weight, U_vectors, V_vectors, p)
    return _register(module, name, _HouseholderSVD(m, k, start))


def householder_svd_matrix(
    U_vectors: torch.Tensor, V_vectors: torch.Tensor, s: torch.Tensor
) -> torch.Tensor:
    """Spectral-RNN's ``W = U[:, :r] diag(s) V[:, :r]ᵀ`` from reflector vectors.

    ``U = H(u₁) … H(u_k)`` and ``V = H(v₁) … H(v_j)`` are the products of the reflectors
    whose vectors are the columns of ``U_vectors`` and ``V_vectors``; only their first
    ``r = len(s)`` columns are built, in the compact WY form (Book: Eq. (hh-svd),
    Eq. (hh-wy)). :func:`householder_svd` builds its tensor with it, ``s`` from the margin
    map (Book: Eq. (hh-margin)). Zero vectors are not looked for (that would synchronise the
    device at every forward pass): one makes ``W`` NaN. The vectors are used as they are,
    not rescaled, and the backward pass is hand-written (householder.py, Note [WY backward]):
    the cheaper form for training; :func:`~orthobook.householder.householder_product` rescales
    them first, for vectors of extreme scale.

    Args:
        U_vectors: (out, k) floating-point tensor, the non-zero vectors ``u₁ … u_k`` as
            columns, of any scale whose squared norm neither overflows nor underflows.
        V_vectors: (in, j) the vectors ``v₁ … v_j``, same dtype.
        s: (r,) the singular values, same dtype, ``1 ≤ r ≤ min(out, in)``.

    Returns:
        ``W``: (out, in); its singular values are ``|s|`` to working precision.

    Raises:
        TypeError: an argument is not a floating-point tensor, or the dtypes differ.
        ValueError: ``U_vectors`` or ``V_vectors`` is not a matrix, or ``s`` is not a vector
            of length ``1 ≤ r ≤ min(out, in)``.

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> U_vectors = torch.randn(4, 4, generator=g, dtype=torch.float64)
        >>> V_vectors = torch.randn(3, 3, generator=g, dtype=torch.float64)
        >>> s = torch.tensor([1.1, 1.0, 0.9], dtype=torch.float64)
        >>> W = householder_svd_matrix(U_vectors, V_vectors, s)
        >>> W.shape, torch.allclose(torch.linalg.svdvals(W), s)
        (torch.Size([4, 3]), True)
    """
    _check_householder_svd_arguments(U_vectors, V_vectors, s)
    return _householder_svd_matrix(U_vectors, V_vectors, s)


def _householder_svd_matrix(U_vectors: torch.Tensor, V_vectors: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """:func:`householder_svd_matrix` without the checks: the forward pass of householder_svd,
    with the thin WY products of householder.Note [WY backward]."""
    r = s.shape[0]
    if U_vectors.shape == V_vectors.shape:  # both factors as one batch: half the products
        U, V = _thin_product(torch.stack([U_vectors, V_vectors]), r)  # Eq. (hh-wy)
    else:
        U, V = _thin_product(U_vectors, r), _thin_product(V_vectors, r)
    return (U * s) @ V.mT


def _check_householder_svd_arguments(U_vectors: object, V_vectors: object, s: object) -> None:
    _checks.floating(U_vectors, "U_vectors")
    _checks.floating(V_vectors, "V_vectors")
    _checks.floating(s, "s")
    for value, name in ((U_vectors, "U_vectors"), (V_vectors, "V_vectors")):
        if value.dtype != s.dtype:
            raise TypeError(f"{name} must have the dtype of s ({s.dtype}), got {value.dtype}")
    for value, name, shape in ((U_vectors, "U_vectors", "(out, k)"), (V_vectors, "V_vectors", "(in, j)")):
        if value.dim() != 2:
            raise ValueError(f"{name} must be a matrix of shape {shape}, got shape {tuple(value.shape)}")
    bound = min(U_vectors.shape[0], V_vectors.shape[0])
    if s.dim() != 1 or not 1 <= s.shape[0] <= bound:
        raise ValueError(
            f"s must have shape (r,) with 1 <= r <= min(out, in) = {bound}, got shape {tuple(s.shape)}"
        )


class _ResidualIdentity(_Parametrization):
    """``W: (n, n) = U + I`` from ``U: (n, n)``."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__((start,))
        # Not in the state dict: I is a constant, moved and cast with the module.
        n = start.shape[0]
        eye = torch.eye(n, dtype=start.dtype, device=start.device)
        self.register_buffer("identity", eye, persistent=False)

    def forward(self, U: torch.Tensor) -> torch.Tensor:
        return U + self.identity

    def _invert(self, W: torch.Tensor) -> torch.Tensor:
        return W - self.identity


def residual_identity(
    module: nn.Module,
    name: str = "weight",
    *,
    std: float = 1e-3,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Constrain the square ``module.<name>`` to the recurrent identity network's ``W = U + I``.

    With ``f = relu`` the Elman step becomes ``h_t = relu((U + I) h_{t-1} + V x_t + b)``
    (Book: Eq. (rin-recurrence); Hu et al. 2018): the identity is a fixed part of the
    recurrence and only the residual ``U: (n, n)`` (``original``) is learned, so an L2
    penalty or weight decay on ``U`` is a prior centred at ``W = I`` (Book: Eq. (rin-prior)).
    ``U`` starts ``N(0, std²)``, the paper's ``std = 1e-3``; ``std = 0`` starts exactly at
    the identity (the IRNN's initial matrix). ``I`` is a non-persistent buffer of the
    parametrization, so it follows the module's ``.to(device, dtype)``. Assigning
    ``module.<name> = W₀`` sets ``U = W₀ − I``.

    Args:
        module: the module that holds the parameter.
        name: a square floating-point parameter of ``module``, not yet parametrized.
        std: standard deviation ≥ 0, finite, of the initial entries of ``U``.
        generator: optional CPU generator for a reproducible initial draw.

    Returns:
        ``module``, with ``module.<name>`` parametrized.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, ``name`` not a str, the parameter not
            floating point, ``std`` not a real number, or ``generator`` not a
            ``torch.Generator``.
        ValueError: ``name`` is not a square parameter of ``module`` or is already
            parametrized, ``std`` is negative or infinite, or ``generator`` not a CPU
            generator.

    Example:
        >>> from torch import nn
        >>> cell = residual_identity(nn.RNNCell(3, 4), "weight_hh", std=0.0)
        >>> torch.equal(cell.weight_hh, torch.eye(4))
        True
    """
    weight = _target(module, name)
    if weight.shape[0] != weight.shape[1]:
        raise ValueError(f"{name} must be a square matrix for W = U + I, got shape {tuple(weight.shape)}")
    sigma = _checks.non_negative_float(std, "std")
    _generator(generator)
    n = weight.shape[0]
    (U,) = _like(weight, sigma * torch.randn(n, n, generator=generator, dtype=torch.float64))
    return _register(module, name, _ResidualIdentity(U))


class _Orthogonal(_Parametrization):
    """``W: (out, in)`` an orthonormal frame stored as ``Y = W`` (tall) or ``Y = Wᵀ`` (wide)."""

    def __init__(self, wide: bool, start: torch.Tensor) -> None:
        super().__init__((start,))
        self.wide = wide

    def forward(self, Y: torch.Tensor) -> torch.Tensor:
        return Y.mT if self.wide else Y

    def _invert(self, W: torch.Tensor) -> torch.Tensor:
        Y = reorthonormalize(_float64(W.mT if self.wide else W))
        (Y,) = _like(W, Y)
        return Y

    def extra_repr(self) -> str:
        return f"wide={self.wide}"


def orthogonal(
    module: nn.Module,
    name: str = "weight",
    *,
    generator: torch.Generator | None = None,
) -> nn.Module:
    """Constrain ``module.<name>`` to an orthonormal frame: ``WᵀW = I`` or ``W Wᵀ = I``.

    For ``W: (out, in)`` with ``out ≥ in`` the columns are orthonormal and the original is
    ``Y = W``; for a wide ``W`` the rows are, and the original is ``Y = Wᵀ``. Either way
    ``Y: (max, min)`` is a :class:`~orthobook.stiefel.StiefelParameter` (``original``) on
    ``St(max, min)`` (Book: Eq. (stiefel-manifold)), moved by the Cayley optimizers of
    :mod:`orthobook.optim`; the constraint costs nothing in the forward pass. ``Y`` starts
    Haar distributed. Assigning ``module.<name> = W₀`` stores the nearest frame, the polar
    factor of ``W₀`` (Book: Eq. (stiefel-polar)).

    Args:
        module: the module that holds the parameter.
        name: a 2-D floating-point parameter of ``module``, not yet parametrized.
        generator: optional CPU generator for a reproducible initial draw.

    Returns:
        ``module``, with ``module.<name>`` parametrized.

    Raises:
        TypeError: ``module`` is not an ``nn.Module``, ``name`` not a str, the parameter not
            floating point, or ``generator`` not a ``torch.Generator``.
        ValueError: ``name`` is not a 2-D parameter of ``module`` or is already
            parametrized, or ``generator`` not a CPU generator.

    Example:
        >>> from torch import nn
        >>> layer = orthogonal(nn.Linear(6, 3, dtype=torch.float64))
        >>> W = layer.weight
        >>> torch.allclose(W @ W.T, torch.eye(3, dtype=torch.float64))
        True
        >>> type(layer.parametrizations.weight.original).__name__
        'StiefelParameter'
    """
    weight = _target(module, name)
    _generator(generator)
    n_out, n_in = weight.shape
    wide = n_out < n_in
    (Y,) = _like(weight, _haar_frame(max(n_out, n_in), min(n_out, n_in), generator))
    return _register(module, name, _Orthogonal(wide, Y), stiefel=("original",))


def singular_values(module: nn.Module, name: str = "weight") -> torch.Tensor:
    """The singular values ``s: (r,)`` of a tensor constrained by a margin parametrization.

    ``s = 2m(σ(p) − ½) + 1`` from the parametrization's ``p`` (Book: Eq. (sm-margin)), or
    ``s = p`` for :func:`spectral_margin` with ``margin=None`` (the singular values are then
    ``|s|``); unsorted and differentiable, so a prior on them (e.g.
    :func:`orthobook.regularize.singular_value_prior`) trains ``p``. They are the singular
    values of ``W`` while ``U`` and ``V`` are orthonormal.

    Args:
        module: a module whose ``name`` was constrained by :func:`spectral_margin` or
            :func:`householder_svd`.
        name: the constrained tensor.

    Returns:
        ``s``: (min(out, in),).

    Raises:
        TypeError: ``module`` is not an ``nn.Module`` or ``name`` not a str.
        ValueError: ``module.<name>`` is not constrained by one of those two.

    Example:
        >>> from torch import nn
        >>> layer = householder_svd(nn.Linear(5, 3), margin=0.2)
        >>> singular_values(layer)
        tensor([1., 1., 1.], grad_fn=<AddBackward0>)
    """
    parametrization, originals = _margin_parametrization(module, name)
    return parametrization.singular_values(originals[2])


def factors(module: nn.Module, name: str = "weight") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The factors ``(U, s, V)`` of ``W = U diag(s) Vᵀ`` for a margin parametrization.

    For :func:`spectral_margin` ``U`` and ``V`` are the Stiefel originals themselves (Book:
    Eq. (sm-svd)); for :func:`householder_svd` the first ``r`` columns of the reflector
    products (Book: Eq. (hh-svd)). ``s`` is :func:`singular_values`. All are differentiable.

    Args:
        module: a module whose ``name`` was constrained by :func:`spectral_margin` or
            :func:`householder_svd`.
        name: the constrained tensor, ``W: (out, in)``.

    Returns:
        ``(U, s, V)`` with ``U: (out, r)``, ``s: (r,)``, ``V: (in, r)``, ``r = min(out, in)``.

    Raises:
        TypeError: ``module`` is not an ``nn.Module`` or ``name`` not a str.
        ValueError: ``module.<name>`` is not constrained by one of those two.

    Example:
        >>> from torch import nn
        >>> layer = spectral_margin(nn.Linear(5, 3), margin=0.2)
        >>> U, s, V = factors(layer)
        >>> U.shape, s.shape, V.shape
        (torch.Size([3, 3]), torch.Size([3]), torch.Size([5, 3]))
        >>> torch.allclose((U * s) @ V.T, layer.weight)
        True
    """
    parametrization, (A, B, p) = _margin_parametrization(module, name)
    if isinstance(parametrization, _HouseholderSVD):
        r = p.shape[0]
        A = householder_product(A, columns=r, check=False)
        B = householder_product(B, columns=r, check=False)
    return A, parametrization.singular_values(p), B


def _margin_parametrization(
    module: nn.Module, name: str
) -> tuple[_SpectralMargin | _HouseholderSVD, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if parametrize.is_parametrized(module, name):
        plist = module.parametrizations[name]
        if len(plist) == 1 and isinstance(plist[0], (_SpectralMargin, _HouseholderSVD)):
            return plist[0], (plist.original0, plist.original1, plist.original2)
    raise ValueError(f"module.{name} is not constrained by spectral_margin or householder_svd")


def _target(module: object, name: object) -> torch.Tensor:
    """The parameter ``module.<name>``, checked to be a 2-D floating tensor, not parametrized."""
    if not isinstance(module, nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if parametrize.is_parametrized(module, name):
        raise ValueError(f"module.{name} is already parametrized")
    weight = module._parameters.get(name)
    if weight is None:
        kind = "a buffer" if name in module._buffers else "not a parameter"
        raise ValueError(f"name must name a parameter of {type(module).__name__}; {name!r} is {kind}")
    _checks.floating(weight, name)
    if weight.dim() != 2:
        raise ValueError(f"{name} must be a matrix of shape (out, in), got shape {tuple(weight.shape)}")
    return weight


def _generator(generator: object) -> None:
    if generator is None:
        return
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
    if generator.device.type != "cpu":
        raise ValueError(
            f"generator must be a CPU generator (the start is drawn on the CPU), got one on {generator.device}"
        )


def _haar_frame(n: int, r: int, generator: torch.Generator | None) -> torch.Tensor:
    """The first ``r`` columns of a Haar orthogonal (n × n): Haar on ``St(n, r)``, float64."""
    return _init.orthogonal(n, generator=generator, dtype=torch.float64)[:, :r]


def _float64(W: torch.Tensor) -> torch.Tensor:
    # CPU float64: every backend has it there, and right_inverse runs once, not per step.
    return W.detach().to("cpu", torch.float64)


def _like(weight: torch.Tensor, *tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Fresh contiguous copies in the dtype and on the device of ``weight``."""
    return tuple(
        t.to(device=weight.device, dtype=weight.dtype, memory_format=torch.contiguous_format, copy=True)
        for t in tensors
    )


def _register(
    module: nn.Module, name: str, parametrization: _Parametrization, stiefel: tuple[str, ...] = ()
) -> nn.Module:
    parametrize.register_parametrization(module, name, parametrization)
    plist = module.parametrizations[name]
    for attr in stiefel:
        original = getattr(plist, attr)
        setattr(plist, attr, StiefelParameter(original.detach(), original.requires_grad))
    return module
