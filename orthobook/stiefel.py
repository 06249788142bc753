"""Stiefel geometry: tangent spaces, gradients, Cayley and QR retractions, polar corrections.

The Stiefel manifold ``St(n, p) = {Y ∈ R^{n×p} : YᵀY = I_p}`` (``p ≤ n``) holds the
orthonormal frames; ``p = n`` is the orthogonal group O(n) (Book: Eq. (stiefel-manifold)).
Every function here works on a single frame ``Y: (n, p)`` or a batch ``Y: (..., n, p)``, in
float32 or float64, on any device, and accepts square (``p = n``) as well as tall (``p < n``)
frames.

:class:`StiefelParameter` marks a module parameter that must stay on the manifold; the
optimizers of :mod:`orthobook.optim` move it along Cayley curves (:func:`cayley_step`).
"""

from __future__ import annotations

import torch
from torch import nn

from orthobook import _checks

__all__ = [
    "StiefelParameter",
    "skew",
    "sym",
    "project_tangent",
    "riemannian_gradient",
    "cayley_step",
    "cayley_retraction_full",
    "cayley_retraction_lowrank",
    "cayley_retraction_square",
    "newton_schulz_step",
    "qr_retraction",
    "reorthonormalize",
    "orthogonality_error",
]


def _frame(Y: object, name: str) -> torch.Tensor:
    """Raise unless ``Y`` is a floating tensor of shape (..., n, p) with ``p ≤ n``."""
    Y = _checks.floating(Y, name)
    if Y.dim() < 2:
        raise ValueError(f"{name} must have shape (..., n, p) with p ≤ n, got shape {tuple(Y.shape)}")
    n, p = Y.shape[-2:]
    if p > n:
        raise ValueError(
            f"{name} must be a tall or square frame of shape (..., n, p) with p ≤ n; "
            f"got a non-tall frame with n={n} < p={p}"
        )
    return Y


def _like(Z: object, Y: torch.Tensor, name: str) -> torch.Tensor:
    """Raise unless ``Z`` is a tensor with the shape, dtype and device of the frame ``Y``."""
    Z = _checks.tensor(Z, name)
    if Z.shape != Y.shape:
        raise ValueError(f"{name} must have the shape of Y, {tuple(Y.shape)}; got {tuple(Z.shape)}")
    if Z.dtype != Y.dtype:
        raise TypeError(f"{name} must have the dtype of Y, {Y.dtype}; got {Z.dtype}")
    if Z.device != Y.device:
        raise ValueError(f"{name} must be on the device of Y, {Y.device}; got {Z.device}")
    return Z


def _square(A: object, name: str) -> torch.Tensor:
    """Raise unless ``A`` is a floating tensor of shape (..., n, n)."""
    A = _checks.floating(A, name)
    if A.dim() < 2 or A.shape[-1] != A.shape[-2]:
        raise ValueError(f"{name} must have shape (..., n, n), got shape {tuple(A.shape)}")
    return A


class StiefelParameter(nn.Parameter):
    """A parameter constrained to the Stiefel manifold: a frame ``Y: (..., n, p)``, ``p ≤ n``.

    It behaves like any :class:`torch.nn.Parameter` (it registers on modules, survives
    ``.to(device)``, ``copy.deepcopy``, ``torch.save`` and ``torch.load``); the class itself
    is the mark that :class:`orthobook.optim.CayleySGD` and :class:`orthobook.optim.CayleyAdam`
    read to move the parameter along Cayley curves instead of straight lines. The data is
    not projected: start it on the manifold (e.g. from :func:`orthobook.init.orthogonal`).

    Args:
        data: the initial frame, (..., n, p) with ``p ≤ n``.
        requires_grad: as for :class:`torch.nn.Parameter`.

    Raises:
        TypeError: ``data`` is not a floating-point tensor.
        ValueError: ``data`` is not of shape (..., n, p) with ``p ≤ n``.

    Example:
        >>> from orthobook.init import orthogonal
        >>> U = StiefelParameter(orthogonal(3))
        >>> isinstance(U, nn.Parameter)
        True
    """

    def __new__(cls, data: torch.Tensor, requires_grad: bool = True) -> StiefelParameter:
        # detach() makes a plain tensor of any input (a Parameter included), sharing storage.
        return super().__new__(cls, _frame(data, "data").detach(), requires_grad)

    def __repr__(self) -> str:
        return f"StiefelParameter containing:\n{self.data!r}"

    def __reduce_ex__(self, proto: int) -> tuple:
        # nn.Parameter pickles itself as a plain Parameter; keep the mark (hooks are not
        # serialised, as for Parameter).
        return (_rebuild_stiefel_parameter, (self.data, self.requires_grad))


def _rebuild_stiefel_parameter(data: torch.Tensor, requires_grad: bool) -> StiefelParameter:
    return StiefelParameter(data, requires_grad)


def skew(A: torch.Tensor) -> torch.Tensor:
    """The skew-symmetric part ``skew(A) = (A − Aᵀ) / 2``.

    Args:
        A: (..., n, n).

    Returns:
        (..., n, n), skew-symmetric.

    Raises:
        TypeError: ``A`` is not a floating-point tensor.
        ValueError: ``A`` is not square in its last two dimensions.
    """
    A = _square(A, "A")
    return 0.5 * (A - A.mT)


def sym(A: torch.Tensor) -> torch.Tensor:
    """The symmetric part ``sym(A) = (A + Aᵀ) / 2``.

    Args:
        A: (..., n, n).

    Returns:
        (..., n, n), symmetric.

    Raises:
        TypeError: ``A`` is not a floating-point tensor.
        ValueError: ``A`` is not square in its last two dimensions.
    """
    A = _square(A, "A")
    return 0.5 * (A + A.mT)


def project_tangent(Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """Orthogonal (Euclidean-metric) projection of ``Z`` onto the tangent space at ``Y``.

    ``P_Y(Z) = Z − Y sym(YᵀZ)``, which satisfies ``YᵀP + PᵀY = 0`` when ``YᵀY = I``
    (Book: Eq. (stiefel-tangent)).

    Args:
        Y: (..., n, p) frame on the manifold, ``p ≤ n``.
        Z: (..., n, p) any matrix.

    Returns:
        (..., n, p), the tangent vector.

    Raises:
        TypeError: ``Y`` or ``Z`` is not a tensor of floating dtype (or dtypes differ).
        ValueError: ``Y`` is not a frame with ``p ≤ n``, or ``Z`` differs in shape or device.
    """
    Y = _frame(Y, "Y")
    Z = _like(Z, Y, "Z")
    YtZ = Y.mT @ Z
    return Z.sub(Y @ (YtZ + YtZ.mT), alpha=0.5)


def riemannian_gradient(Y: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """The Riemannian gradient under the canonical metric, ``∇_c f = G − Y Gᵀ Y``.

    With ``G`` the Euclidean gradient of ``f`` at ``Y``, this is the tangent vector that
    represents ``df`` in the canonical metric ``⟨ξ, η⟩_c = tr(ξᵀ (I − ½ Y Yᵀ) η)``
    (Edelman, Arias & Smith 1998); it equals ``A Y`` with ``A = G Yᵀ − Y Gᵀ``, the velocity of
    the Cayley curve of :func:`cayley_step` (Book: Eq. (stiefel-canonical-gradient)).

    Args:
        Y: (..., n, p) frame on the manifold, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient ``∂f/∂Y``.

    Returns:
        (..., n, p), tangent at ``Y``.

    Raises:
        TypeError: ``Y`` or ``G`` is not a tensor of floating dtype (or dtypes differ).
        ValueError: ``Y`` is not a frame with ``p ≤ n``, or ``G`` differs in shape or device.
    """
    Y = _frame(Y, "Y")
    G = _like(G, Y, "G")
    return G - Y @ (G.mT @ Y)


# Note [Cayley descent direction]
# Wen & Yin (2013) move Y along Y(τ) = (I + τ/2 A)⁻¹ (I − τ/2 A) Y with the skew matrix
# A = G Yᵀ − Y Gᵀ. Since A is skew, the Cayley factor is orthogonal, so Y(τ)ᵀY(τ) = YᵀY for
# every τ. Its velocity at τ = 0 is Y'(0) = −A Y = −(G − Y GᵀY) when YᵀY = I, and
#     d/dτ f(Y(τ)) at τ=0  =  ⟨G, −A Y⟩  =  −½ ‖A‖²_F  ≤ 0,
# so the curve descends whenever A ≠ 0. The sign matters: A = G Yᵀ − Y Gᵀ, Euclidean gradient
# on the left of Yᵀ. The code released with Vorontsov et al. (2017) builds A = GᵀW − WᵀG
# instead and applies it on the left of W; then ⟨G, −A W⟩ has no fixed sign, and at W = I
# (the identity initialisation) it equals +½ ‖G − Gᵀ‖²_F: an ascent direction
# (tests/test_stiefel.py shows it).

# Note [low-rank Cayley]
# A = G Yᵀ − Y Gᵀ = U Vᵀ with U = [G, Y] and V = [Y, −G], both (n, 2p). By the
# Sherman–Morrison–Woodbury identity, (I + τ/2 U Vᵀ)⁻¹ = I − τ/2 U (I + τ/2 VᵀU)⁻¹ Vᵀ, which
# turns the Cayley curve into Y(τ) = Y − τ U (I + τ/2 VᵀU)⁻¹ Vᵀ Y: a 2p×2p solve and
# O(n p²) products instead of an n×n solve. Both forms are the same rational function of
# (Y, G, τ) for any Y, on or off the manifold; the low-rank one is cheaper when 2p < n.

# Note [Cayley in increment form]
# All forms compute Y(τ) as Y minus an increment, Y − τ (I + τ/2 A)⁻¹ A Y, rather than as
# the solve (I + τ/2 A)⁻¹ (I − τ/2 A) Y: the rounding error of the computed increment is
# then relative to the increment, not to Y. That needs small factors too: near a critical
# point A = G Yᵀ − Y Gᵀ vanishes while G need not (G → Y S with S symmetric), and the
# low-rank increment U (…)⁻¹ Vᵀ Y would be a cancelling product of large factors. A is
# unchanged when G is replaced by G + Y S for any symmetric S (Y S Yᵀ − Y Sᵀ Yᵀ = 0), so
# the full and low-rank forms first replace G by its tangent part P_Y(G) = G − Y sym(YᵀG),
# which tends to 0 at a critical point; the curve is exactly the same. (The square form
# needs no projection: its Ω = YᵀG − GᵀY is already blind to Y S and small there.)
# What no form avoids is the rounding of the sum itself: storing Y − τ X rounds every entry
# of Y to its precision, an error of up to half a unit in the last place whatever the size
# of τ X (an entry is left exactly as it was only when its increment is below half a unit).
# So every step that moves Y, large or small, adds a fresh error of relative size ε to its
# entries, and ‖YᵀY − I‖_F grows like a random walk, of the order of ε √(p k) after k
# moving steps. Small steps near a critical point do not add less, and they do not stop:
# rounding leaves the computed A at a noise floor of about ε ‖G‖, so the iterates keep
# moving by about one unit in the last place per step. Measured in float32 on a 64×64
# frame: 3e-5 to 4e-5 after 10⁴ steps, on random gradients and on a converging Procrustes
# loss alike (which reaches its noise floor within 10³ steps and 2e-5 there). The optimizers
# of orthobook.optim therefore pull Y back with a Newton–Schulz step (newton_schulz_step)
# every few steps.


def cayley_step(
    Y: torch.Tensor, G: torch.Tensor, lr: float | torch.Tensor
) -> torch.Tensor:
    """One geodesic descent step: the Cayley curve from ``Y`` for the Euclidean gradient ``G``.

    ``Y(τ) = (I + τ/2 A)⁻¹ (I − τ/2 A) Y`` with ``A = G Yᵀ − Y Gᵀ`` and ``τ = lr``
    (Book: Eq. (stiefel-cayley); Wen & Yin 2013). ``A`` is skew, so ``Y(τ)ᵀY(τ) = YᵀY``: the
    step stays on the manifold. For small ``τ`` it decreases ``f`` at the rate
    ``½ ‖A‖²_F`` (Book: Eq. (stiefel-cayley-descent); see Note [Cayley descent direction]).
    Computed by :func:`cayley_retraction_square` for square frames, by
    :func:`cayley_retraction_lowrank` when ``2p < n`` and by :func:`cayley_retraction_full`
    otherwise, all as an increment of ``Y`` (Note [Cayley in increment form]).

    Args:
        Y: (..., n, p) frame on the manifold, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient ``∂f/∂Y`` (or any descent-scaled version of it).
        lr: the step size τ: a finite real number, or a one-element floating tensor (as torch
            optimizers allow; its finiteness is not checked, which would read it back to the
            host).

    Returns:
        ``Y(τ)``: (..., n, p).

    Raises:
        TypeError: ``Y``/``G`` are not floating tensors of one dtype, or ``lr`` is not a number.
        ValueError: ``Y`` is not a frame with ``p ≤ n``, ``G`` differs in shape or device, or
            ``lr`` is not finite (or a tensor of more than one element).

    Example:
        >>> from orthobook.init import orthogonal
        >>> Y = orthogonal(6, dtype=torch.float64)[:, :2]
        >>> Y1 = cayley_step(Y, torch.ones(6, 2, dtype=torch.float64), 0.1)
        >>> float(orthogonality_error(Y1)) < 1e-12
        True
    """
    n, p = _frame(Y, "Y").shape[-2:]
    if p == n:
        return cayley_retraction_square(Y, G, lr)
    if 2 * p < n:
        return cayley_retraction_lowrank(Y, G, lr)
    return cayley_retraction_full(Y, G, lr)


def _cayley_args(
    Y: object, G: object, lr: object
) -> tuple[torch.Tensor, torch.Tensor, float | torch.Tensor]:
    Y = _frame(Y, "Y")
    return Y, _like(G, Y, "G"), _checks.step_size(lr, "lr")


def cayley_retraction_full(
    Y: torch.Tensor, G: torch.Tensor, lr: float | torch.Tensor
) -> torch.Tensor:
    """The Cayley curve of :func:`cayley_step`, always through the full n×n solve.

    ``Y(τ) = (I + τ/2 A)⁻¹ (I − τ/2 A) Y = Y − τ (I + τ/2 A)⁻¹ A Y`` with
    ``A = G Yᵀ − Y Gᵀ``: O(n³) work (Book: Eq. (stiefel-cayley)). ``G`` is first
    replaced by its tangent part :func:`project_tangent`, which leaves ``A`` unchanged
    (Note [Cayley in increment form]).

    Args:
        Y: (..., n, p) frame, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient.
        lr: the step size τ, as for :func:`cayley_step`.

    Returns:
        ``Y(τ)``: (..., n, p).

    Raises:
        TypeError, ValueError: as for :func:`cayley_step`.

    Example:
        >>> Y, G = torch.eye(3), torch.ones(3, 3)  # G symmetric: Y is a critical point
        >>> torch.equal(cayley_retraction_full(Y, G, 0.5), Y)
        True
    """
    Y, G, lr = _cayley_args(Y, G, lr)
    G = project_tangent(Y, G)
    GYt = G @ Y.mT
    A = GYt - GYt.mT  # exactly skew in floating point, unlike G Yᵀ − Y Gᵀ
    eye = torch.eye(Y.shape[-2], dtype=Y.dtype, device=Y.device)
    # I + τ/2 A is invertible for skew A: solve_ex skips the check (a host sync on GPUs).
    return Y - lr * torch.linalg.solve_ex(eye + (0.5 * lr) * A, A @ Y).result


def cayley_retraction_lowrank(
    Y: torch.Tensor, G: torch.Tensor, lr: float | torch.Tensor
) -> torch.Tensor:
    """The Cayley curve of :func:`cayley_step`, always through the 2p×2p Woodbury solve.

    ``Y(τ) = Y − τ U (I + τ/2 VᵀU)⁻¹ Vᵀ Y`` with ``U = [G, Y]``, ``V = [Y, −G]``:
    O(n p²) work (Book: Eq. (stiefel-cayley-lowrank); see Note [low-rank Cayley]). It
    equals :func:`cayley_retraction_full` for every input; it is the cheaper one when
    ``2p < n``. ``G`` is first replaced by its tangent part, as there.

    Args:
        Y: (..., n, p) frame, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient.
        lr: the step size τ, as for :func:`cayley_step`.

    Returns:
        ``Y(τ)``: (..., n, p).

    Raises:
        TypeError, ValueError: as for :func:`cayley_step`.

    Example:
        >>> from orthobook.init import orthogonal
        >>> Y, G = orthogonal(8, dtype=torch.float64)[:, :2], torch.ones(8, 2).double()
        >>> low = cayley_retraction_lowrank(Y, G, 0.3)
        >>> bool(torch.allclose(low, cayley_retraction_full(Y, G, 0.3)))
        True
    """
    Y, G, lr = _cayley_args(Y, G, lr)
    G = project_tangent(Y, G)
    U = torch.cat([G, Y], dim=-1)
    V = torch.cat([Y, -G], dim=-1)
    eye = torch.eye(U.shape[-1], dtype=Y.dtype, device=Y.device)
    # I + τ/2 VᵀU is invertible with I + τ/2 A (equal determinants): no check, no sync.
    small = torch.linalg.solve_ex(eye + (0.5 * lr) * (V.mT @ U), V.mT @ Y).result
    return Y - lr * (U @ small)


def cayley_retraction_square(
    Y: torch.Tensor, G: torch.Tensor, lr: float | torch.Tensor
) -> torch.Tensor:
    """The Cayley curve of :func:`cayley_step` for a square frame, in its own basis.

    For ``Y ∈ O(n)`` (``p = n``, ``Y Yᵀ = I``), ``A = G Yᵀ − Y Gᵀ = Y Ω Yᵀ`` with the
    skew ``Ω = YᵀG − GᵀY``, so ``(I + τ/2 A)⁻¹ A Y = Y (I + τ/2 Ω)⁻¹ Ω`` and

        ``Y(τ) = Y − τ Y (I + τ/2 Ω)⁻¹ Ω``        (Book: Eq. (stiefel-cayley-square)):

    two matrix products and one n×n solve, where :func:`cayley_retraction_full` needs
    four products and the tangent projection besides its solve. ``Ω`` is blind to
    ``G → G + Y S`` for symmetric ``S`` and tends to 0 at a critical point, so no
    projection is needed (Note [Cayley in increment form]). It equals the full form on
    the manifold; off it, it is ``Y`` times the orthogonal Cayley transform of ``Ω``,
    which keeps ``Y Yᵀ`` and the singular values of ``Y``, hence ``‖YᵀY − I‖_F``.

    Args:
        Y: (..., n, n) frame on the manifold (an orthogonal matrix).
        G: (..., n, n) Euclidean gradient.
        lr: the step size τ, as for :func:`cayley_step`.

    Returns:
        ``Y(τ)``: (..., n, n).

    Raises:
        TypeError: as for :func:`cayley_step`.
        ValueError: as for :func:`cayley_step`, or ``Y`` is not square.

    Example:
        >>> from orthobook.init import orthogonal
        >>> Y, G = orthogonal(5, dtype=torch.float64), torch.ones(5, 5).double()
        >>> square = cayley_retraction_square(Y, G, 0.3)
        >>> bool(torch.allclose(square, cayley_retraction_full(Y, G, 0.3)))
        True
    """
    Y, G, lr = _cayley_args(Y, G, lr)
    if Y.shape[-1] != Y.shape[-2]:
        raise ValueError(f"Y must be a square frame (..., n, n), got shape {tuple(Y.shape)}")
    YtG = Y.mT @ G
    Omega = YtG - YtG.mT  # exactly skew in floating point
    eye = torch.eye(Y.shape[-1], dtype=Y.dtype, device=Y.device)
    return Y - lr * (Y @ torch.linalg.solve_ex(eye + (0.5 * lr) * Omega, Omega).result)


def newton_schulz_step(Y: torch.Tensor) -> torch.Tensor:
    """One Newton–Schulz step towards the polar factor: ``Y − ½ Y (YᵀY − I)``.

    With ``Y = P Σ Qᵀ`` the step maps every singular value σ to ``σ (3 − σ²) / 2`` and
    keeps ``P`` and ``Q``: one step of the Newton–Schulz iteration for the polar factor
    ``P Qᵀ`` (Book: Eq. (stiefel-newton-schulz), Eq. (stiefel-polar); Higham 2008,
    *Functions of Matrices*, ch. 8).
    Near the manifold it converges quadratically, ``‖YᵀY − I‖_F = δ`` becoming at most
    about ``¾ δ²``, so from the slow float32 drift of Cayley steps (Note [Cayley in
    increment form]) one step lands at rounding level. It costs two matrix products,
    O(n p²), with no SVD and no host synchronisation. It converges for singular values
    in ``(0, √3)``; far from the manifold use :func:`reorthonormalize`.

    Args:
        Y: (..., n, p) near-orthonormal frame, ``p ≤ n``.

    Returns:
        (..., n, p), closer to orthonormal.

    Raises:
        TypeError: ``Y`` is not a floating-point tensor.
        ValueError: ``Y`` is not a frame with ``p ≤ n``.

    Example:
        >>> Y = (1 + 1e-4) * torch.eye(3, dtype=torch.float64)
        >>> float(orthogonality_error(newton_schulz_step(Y))) < 1e-7
        True
    """
    Y = _frame(Y, "Y")
    eye = torch.eye(Y.shape[-1], dtype=Y.dtype, device=Y.device)
    return Y - 0.5 * (Y @ (Y.mT @ Y - eye))


def qr_retraction(Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """The QR retraction ``R_Y(Z) = qf(Y + Z)``.

    ``qf`` is the Q factor of the reduced QR decomposition with the signs chosen so that
    ``diag(R) > 0``, which makes it unique (Book: Eq. (stiefel-qr); Absil et al. 2008).

    Args:
        Y: (..., n, p) frame, ``p ≤ n``.
        Z: (..., n, p) tangent step.

    Returns:
        (..., n, p), an orthonormal frame.

    Raises:
        TypeError: ``Y`` or ``Z`` is not a tensor of floating dtype (or dtypes differ).
        ValueError: ``Y`` is not a frame with ``p ≤ n``, or ``Z`` differs in shape or device.
    """
    Y = _frame(Y, "Y")
    Z = _like(Z, Y, "Z")
    return _qf(Y + Z)


def _qf(X: torch.Tensor) -> torch.Tensor:
    Q, R = torch.linalg.qr(X)
    signs = torch.sign(torch.diagonal(R, dim1=-2, dim2=-1))
    signs = torch.where(signs == 0, torch.ones_like(signs), signs)
    return Q * signs.unsqueeze(-2)


def reorthonormalize(Y: torch.Tensor) -> torch.Tensor:
    """The nearest orthonormal frame to ``Y``: its polar factor ``P Qᵀ`` from ``Y = P Σ Qᵀ``.

    It minimises ``‖X − Y‖_F`` over frames ``X`` (Book: Eq. (stiefel-polar)), so it undoes the
    slow float32 drift off the manifold while moving ``Y`` as little as possible.

    Args:
        Y: (..., n, p) near-orthonormal frame, ``p ≤ n``.

    Returns:
        (..., n, p) with ``XᵀX = I`` to rounding.

    Raises:
        TypeError: ``Y`` is not a floating-point tensor.
        ValueError: ``Y`` is not a frame with ``p ≤ n``.
    """
    Y = _frame(Y, "Y")
    P, _, Qt = torch.linalg.svd(Y, full_matrices=False)
    return P @ Qt


def orthogonality_error(Y: torch.Tensor) -> torch.Tensor:
    """Distance from orthonormality, ``‖YᵀY − I‖_F`` (Book: Eq. (stiefel-orth-error)).

    Args:
        Y: (..., n, p), ``p ≤ n``.

    Returns:
        (...), one error per frame (a 0-dim tensor for a single frame).

    Raises:
        TypeError: ``Y`` is not a floating-point tensor.
        ValueError: ``Y`` is not a frame with ``p ≤ n``.
    """
    Y = _frame(Y, "Y")
    eye = torch.eye(Y.shape[-1], dtype=Y.dtype, device=Y.device)
    return torch.linalg.matrix_norm(Y.mT @ Y - eye)
