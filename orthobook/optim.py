"""Optimizers that keep Stiefel parameters on the manifold: :class:`CayleySGD`, :class:`CayleyAdam`.

A model mixes parameters that must stay orthonormal (:class:`StiefelParameter`) with ordinary
ones (input weights, biases, a readout, free singular values). :class:`CayleySGD` and
:class:`CayleyAdam` are :class:`torch.optim.SGD` and :class:`torch.optim.Adam` (geoopt's
shape): they take all of a model's parameters, update the ordinary ones by torch's own step,
bit for bit, and move every Stiefel parameter along a Cayley curve
(:func:`orthobook.stiefel.cayley_step`) by :func:`cayley_sgd_step` or
:func:`cayley_adam_step`, which keeps it on the manifold. Both are
:class:`RetractingOptimizer` s, the mark :func:`orthobook.train.train` looks for.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from orthobook import _checks
from orthobook.stiefel import (
    StiefelParameter,
    _frame,
    _like,
    cayley_step,
    newton_schulz_step,
    project_tangent,
)

__all__ = [
    "REORTHONORMALIZE_EVERY",
    "CayleyAdam",
    "CayleySGD",
    "RetractingOptimizer",
    "StiefelParameter",
    "cayley_adam_step",
    "cayley_sgd_step",
]

#: Default number of steps between two Newton–Schulz corrections of a frame (Note [drift]).
REORTHONORMALIZE_EVERY = 10

# Note [drift]
# A Cayley step keeps YᵀY exactly in exact arithmetic, but storing each new frame rounds
# every entry afresh, so in float32 ‖YᵀY − I‖_F grows like a random walk, about ε √(p k)
# after k steps (stiefel.py, Note [Cayley in increment form]): 64×64 frames reach 3e-5 to
# 4e-5 after 10⁴ steps, converging or not. Every `reorthonormalize_every` steps the
# optimizers therefore replace the frame by one Newton–Schulz step towards its polar
# factor, Y − ½ Y (YᵀY − I), which squares the error (stiefel.newton_schulz_step): two
# matrix products, no SVD, no host synchronisation, and it moves Y only by the drift it
# removes. With the default of 10 steps the error stays at the level ten steps add, about
# 2e-6 for 64×64 frames (9e-6 with steps that turn the frame by about a radian each). The
# first moment (momentum buffer, exp_avg) is projected onto the new tangent space after it,
# as after every step.


def cayley_sgd_step(
    Y: torch.Tensor,
    G: torch.Tensor,
    state: dict[str, Any],
    *,
    lr: float | torch.Tensor,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    maximize: bool = False,
) -> torch.Tensor:
    """One step of :class:`CayleySGD` for one frame: torch's SGD along a Cayley curve.

    With ``g = P_Y(G)`` the tangent part of the gradient (``P_Y(−G)`` with ``maximize``;
    :func:`orthobook.stiefel.project_tangent`, Book: Eq. (stiefel-tangent)), momentum μ
    and dampening d::

        b ← g at the first step,  b ← μ b + (1 − d) g after     (torch's buffer)
        D = g + μ b (nesterov),   D = b (otherwise),   D = g (μ = 0)
        Y⁺ = cayley_step(Y, D, τ)                               (Book: Eq. (geodesic-sgd))
        b ← P_{Y⁺}(b)                                   (Book: Eq. (geodesic-momentum))

    The buffer lives in the tangent space at ``Y``; after the step the projection carries
    it to the tangent space at ``Y⁺`` (the vector transport of geoopt's
    ``RiemannianSGD``), so it is tangent wherever it is used. Without momentum the step is
    Book: Eq. (geodesic-sgd) itself (``P_Y(G)`` and ``G`` give the same skew matrix).

    Args:
        Y: (..., n, p) frame on the manifold, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient ``∂f/∂Y``.
        state: the frame's optimizer state, updated in place: ``"step"`` (steps taken, a
            CPU scalar tensor) and, with momentum, ``"momentum_buffer"`` (..., n, p).
            Start with ``{}``.
        lr: the step size τ ≥ 0: a finite real number or a one-element floating tensor.
        momentum: μ ≥ 0.
        dampening: d, a real number.
        nesterov: use ``D = g + μ b`` (needs μ > 0 and d = 0, as in torch).
        maximize: ascend instead of descend.

    Returns:
        ``Y⁺``: (..., n, p), the new frame (``Y`` itself is not modified).

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range, or ``nesterov`` without μ > 0 and d = 0.

    Example:
        >>> from orthobook.init import orthogonal
        >>> Y, G, state = orthogonal(5)[:, :2], torch.ones(5, 2), {}
        >>> for _ in range(3):
        ...     Y = cayley_sgd_step(Y, G, state, lr=0.1, momentum=0.9)
        >>> sorted(state), int(state["step"])
        (['momentum_buffer', 'step'], 3)
    """
    _check_frame_step(Y, G, state)
    _sgd_options(lr, momentum, dampening, nesterov, maximize)
    _count_step(state)
    if momentum == 0:
        return cayley_step(Y, -G if maximize else G, lr)  # it projects G itself
    g = project_tangent(Y, -G if maximize else G)
    buffer = state.get("momentum_buffer")
    if buffer is None:
        buffer = g.clone()
    else:
        buffer = buffer.mul(momentum).add_(g, alpha=1 - dampening)
    D = g.add(buffer, alpha=momentum) if nesterov else buffer
    Y_new = cayley_step(Y, D, lr)
    state["momentum_buffer"] = project_tangent(Y_new, buffer)
    return Y_new


def cayley_adam_step(
    Y: torch.Tensor,
    G: torch.Tensor,
    state: dict[str, Any],
    *,
    lr: float | torch.Tensor,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    amsgrad: bool = False,
    maximize: bool = False,
) -> torch.Tensor:
    """One step of :class:`CayleyAdam` for one frame: Adam's direction along a Cayley curve.

    geoopt's ``RiemannianAdam`` with the Cayley retraction. With ``g = P_Y(G)`` the tangent
    part of the gradient (``P_Y(−G)`` with ``maximize``) and ``t`` the step count::

        m ← β₁ m + (1 − β₁) g
        v ← β₂ v + (1 − β₂) g ⊙ g                      (Book: Eq. (geodesic-rmsprop))
        v ← v_max = max(v_max, v)  with amsgrad
        D = (m / (1 − β₁ᵗ)) / (√v / √(1 − β₂ᵗ) + ε)    (Adam's bias corrections)
        Y⁺ = cayley_step(Y, D, τ)                      (Book: Eq. (geodesic-sgd))
        m ← P_{Y⁺}(m)                                  (transport by projection)

    The first moment is a tangent vector and is transported to the new tangent space by
    projection; the second moment is an elementwise scale and is kept as it is, as in
    geoopt. ``D`` is not tangent (the elementwise division bends it), but the Cayley curve
    stays on the manifold for any ``D``; it is a heuristic direction, not the gradient.

    Args:
        Y: (..., n, p) frame on the manifold, ``p ≤ n``.
        G: (..., n, p) Euclidean gradient ``∂f/∂Y``.
        state: the frame's optimizer state, updated in place with torch's Adam keys
            ``"step"`` (a CPU scalar tensor), ``"exp_avg"``, ``"exp_avg_sq"`` and, with
            ``amsgrad``, ``"max_exp_avg_sq"``. Start with ``{}``.
        lr: the step size τ ≥ 0: a finite real number or a one-element floating tensor.
        betas: (β₁, β₂) in [0, 1), numbers or one-element tensors as torch allows.
        eps: ε ≥ 0.
        amsgrad: use the running maximum of the second moment.
        maximize: ascend instead of descend.

    Returns:
        ``Y⁺``: (..., n, p), the new frame (``Y`` itself is not modified).

    Raises:
        TypeError: an argument has the wrong type.
        ValueError: an argument is out of range.

    Example:
        >>> from orthobook.init import orthogonal
        >>> Y, state = orthogonal(4, dtype=torch.float64), {}
        >>> Y = cayley_adam_step(Y, torch.randn(4, 4, dtype=torch.float64), state, lr=0.01)
        >>> sorted(state)
        ['exp_avg', 'exp_avg_sq', 'step']
    """
    _check_frame_step(Y, G, state)
    _adam_options(lr, betas, eps, amsgrad, maximize)
    g = project_tangent(Y, -G if maximize else G)
    t = _count_step(state)
    for key in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if amsgrad else ()):
        if key not in state:
            state[key] = torch.zeros_like(g)
    beta1, beta2 = betas
    m, v = state["exp_avg"], state["exp_avg_sq"]
    m.lerp_(g, 1 - beta1)
    v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    if amsgrad:
        v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
    bias_correction1 = 1 - beta1**t
    bias_correction2_sqrt = (1 - beta2**t) ** 0.5
    denominator = v.sqrt().div_(bias_correction2_sqrt).add_(eps)
    # The curve depends on τ D only: step τ / (1 − β₁ᵗ) along m / denominator, as torch does.
    Y_new = cayley_step(Y, m / denominator, lr / bias_correction1)
    m.copy_(project_tangent(Y_new, m))
    return Y_new


def _count_step(state: dict[str, Any]) -> float:
    """Add one to ``state["step"]``, a CPU scalar tensor as torch's Adam keeps it; the count."""
    if "step" not in state:
        state["step"] = torch.tensor(0.0)
    state["step"] += 1
    # A CPU scalar: reading it synchronises nothing (after load_state_dict into a capturable
    # or fused group torch moves it to the parameter's device, and this read then waits).
    return float(state["step"])


class RetractingOptimizer:
    """Marker mixin: an optimizer whose step keeps every :class:`StiefelParameter` on the manifold.

    :func:`orthobook.train.train` refuses an optimizer that holds a Stiefel parameter unless it
    is one of these; :class:`CayleySGD` and :class:`CayleyAdam` are.
    """


class _Cayley(RetractingOptimizer):
    """What :class:`CayleySGD` and :class:`CayleyAdam` share: torch's step for ordinary
    parameters, one Cayley step per frame, the checks of frame groups, the drift correction."""

    _torch_optimizer: type[Optimizer]
    _first_moment: str  # the state key of the tangent vector that is transported
    _frame_update: Callable[..., torch.Tensor]  # cayley_sgd_step or cayley_adam_step
    _frame_keys: tuple[str, ...]  # the group keys it takes, by the same names

    def _finish_init(self, reorthonormalize_every: int | None) -> None:
        every = _every(reorthonormalize_every, "reorthonormalize_every")
        self.defaults["reorthonormalize_every"] = every
        for group in self.param_groups:
            self._check_group(group)
        # A GradScaler lets an optimizer that says it supports AMP scaling (torch's fused
        # ones) unscale its gradients itself, which the frames' step would not do; without
        # the flag the scaler unscales every gradient, frames included, before the step.
        self._step_supports_amp_scaling = False

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group as torch does, then check it (Raises: as the constructor)."""
        super().add_param_group(param_group)  # type: ignore[misc]
        if "reorthonormalize_every" in self.defaults:  # during __init__, _finish_init checks
            self._check_group(self.param_groups[-1])

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        every = self.defaults.setdefault("reorthonormalize_every", REORTHONORMALIZE_EVERY)
        for group in self.param_groups:
            group.setdefault("reorthonormalize_every", every)

    def _check_group(self, group: dict[str, Any]) -> None:
        group.setdefault("reorthonormalize_every", self.defaults["reorthonormalize_every"])
        group["lr"] = _learning_rate(group["lr"], "param_group['lr']")
        _every(group["reorthonormalize_every"], "param_group['reorthonormalize_every']")
        has_frames = any(isinstance(p, StiefelParameter) for p in group["params"])
        if has_frames and group["weight_decay"] != 0:
            raise ValueError(
                "weight_decay must be 0 in a parameter group holding StiefelParameters: "
                "‖Y‖²_F = p is constant on St(n, p), so the L2 penalty's gradient λY is normal "
                "to the manifold and cannot change a frame's step; put the frames in a group "
                f"of their own with weight_decay=0 (got {group['weight_decay']})"
            )

    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One step: torch's step for the ordinary parameters, a Cayley step for each frame.

        Args:
            closure: optional callable that recomputes and returns the loss (evaluated once,
                before the step, with gradients enabled).

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with_grad = [
            (group, p) for group in self.param_groups for p in group["params"] if p.grad is not None
        ]
        frames = [(group, Y) for group, Y in with_grad if isinstance(Y, StiefelParameter)]
        if len(frames) < len(with_grad):  # torch's step has ordinary parameters to update
            grads = [Y.grad for _, Y in frames]
            for _, Y in frames:
                Y.grad = None  # torch's step leaves parameters without a gradient alone
            try:
                _unhooked(self._torch_optimizer.step)(self)
            finally:
                for (_, Y), G in zip(frames, grads):
                    Y.grad = G
        with torch.no_grad():
            for group, Y in frames:
                state = self.state[Y]
                options = {key: group[key] for key in self._frame_keys}
                Y.copy_(self._frame_update(Y, Y.grad, state, **options))
                every = group["reorthonormalize_every"]
                if every is not None and int(state["step"]) % every == 0:  # Note [drift]
                    Y.copy_(newton_schulz_step(Y))
                    moment = state.get(self._first_moment)
                    if moment is not None:
                        moment.copy_(project_tangent(Y, moment))
        return loss


def _unhooked(step: Callable[..., Any]) -> Callable[..., Any]:
    # Optimizer wraps the step of each optimizer class once with its pre/post hooks and marks
    # the wrapper `hooked` (functools.wraps keeps the original as __wrapped__). Our own step
    # is wrapped, so calling torch's wrapped step inside it would run every hook twice.
    return step.__wrapped__ if getattr(step, "hooked", False) else step


class CayleySGD(_Cayley, torch.optim.SGD):
    """:class:`torch.optim.SGD` that moves every :class:`StiefelParameter` along a Cayley curve.

    Give it all of a model's parameters. Ordinary parameters are updated by torch's own SGD
    step, bit for bit as :class:`torch.optim.SGD` would. A Stiefel parameter ``Y`` moves by
    :func:`cayley_sgd_step`: torch's momentum (and Nesterov) on the tangent part of the
    gradient, the buffer transported by projection, and the Cayley step of Book: Eq.
    (geodesic-sgd), so ``Y`` stays on the manifold; every ``reorthonormalize_every`` steps one
    Newton–Schulz step removes the float32 drift (Note [drift]).

    The group keys for frames: ``lr``, ``momentum``, ``dampening``, ``nesterov`` and
    ``maximize`` are honoured; ``weight_decay`` must be 0 (``‖Y‖²_F`` is constant on the
    manifold: the penalty cannot move a frame, so a nonzero value is refused rather than
    silently ignored); ``foreach``, ``fused`` and ``differentiable`` choose torch's
    implementation of the ordinary parameters' step only (the frames' step is never
    differentiable). ``reorthonormalize_every`` is a group key too. ``state_dict()``,
    ``load_state_dict()``, ``zero_grad()``, hooks and LR schedulers are torch's; a frame's
    state has ``"step"`` and, with momentum, ``"momentum_buffer"``.

    Args:
        params: parameters or parameter groups, as for :class:`torch.optim.SGD`.
        lr: learning rate τ: a finite real number ≥ 0 or a one-element tensor, as torch allows.
        momentum, dampening, weight_decay, nesterov, maximize, foreach, differentiable, fused:
            as for :class:`torch.optim.SGD`.
        reorthonormalize_every: steps between two Newton–Schulz corrections of a frame
            (``None``: never); ``REORTHONORMALIZE_EVERY`` by default.

    Raises:
        TypeError: ``lr`` or a group's ``lr`` is not a real number or tensor,
            ``reorthonormalize_every`` is not an int or None.
        ValueError: ``lr`` is negative or not finite, a group holding frames has a nonzero
            ``weight_decay``, ``reorthonormalize_every`` is < 1, or torch's own checks fail.

    Example:
        >>> from torch import nn
        >>> from orthobook.init import orthogonal
        >>> model = nn.Module()
        >>> model.U, model.b = StiefelParameter(orthogonal(4)), nn.Parameter(torch.zeros(4))
        >>> opt = CayleySGD(model.parameters(), lr=0.1, momentum=0.9)
        >>> (model.U.sum() + model.b.sum()).backward()
        >>> opt.step()
        >>> torch.equal(model.b.detach(), torch.full((4,), -0.1))
        True
    """

    _torch_optimizer = torch.optim.SGD
    _first_moment = "momentum_buffer"
    _frame_update = staticmethod(cayley_sgd_step)
    _frame_keys = ("lr", "momentum", "dampening", "nesterov", "maximize")

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        momentum: float = 0,
        dampening: float = 0,
        weight_decay: float | torch.Tensor = 0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        reorthonormalize_every: int | None = REORTHONORMALIZE_EVERY,
    ) -> None:
        super().__init__(
            params,
            _learning_rate(lr, "lr"),
            momentum,
            dampening,
            weight_decay,
            nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
        )
        self._finish_init(reorthonormalize_every)


class CayleyAdam(_Cayley, torch.optim.Adam):
    """:class:`torch.optim.Adam` that moves every :class:`StiefelParameter` along a Cayley curve.

    Give it all of a model's parameters. Ordinary parameters are updated by torch's own Adam
    step, bit for bit as :class:`torch.optim.Adam` would. A Stiefel parameter ``Y`` moves by
    :func:`cayley_adam_step` (geoopt's ``RiemannianAdam`` convention): moments of the tangent
    part of the gradient, the first one transported by projection, the second elementwise
    (Book: Eq. (geodesic-rmsprop)), Adam's bias corrections, and a Cayley step, so ``Y`` stays
    on the manifold; every ``reorthonormalize_every`` steps one Newton–Schulz step removes the
    float32 drift (Note [drift]).

    The group keys for frames: ``lr``, ``betas``, ``eps``, ``amsgrad`` and ``maximize`` are
    honoured; ``weight_decay`` must be 0 (``‖Y‖²_F`` is constant on the manifold: the penalty
    cannot move a frame, and its projected gradient is zero, so a nonzero value is refused
    rather than silently ignored; ``decoupled_weight_decay`` then has nothing to decouple);
    ``foreach``, ``fused``, ``capturable`` and ``differentiable`` choose torch's
    implementation of the ordinary parameters' step only (the frames' step is never
    differentiable, and their ``"step"`` stays on the CPU). ``reorthonormalize_every`` is a
    group key too. ``state_dict()``, ``load_state_dict()``, ``zero_grad()``, hooks and LR
    schedulers are torch's; a frame's state has torch's Adam keys.

    Args:
        params: parameters or parameter groups, as for :class:`torch.optim.Adam`.
        lr: learning rate τ: a finite real number ≥ 0 or a one-element tensor, as torch allows.
        betas, eps, weight_decay, amsgrad, foreach, maximize, capturable, differentiable,
            fused, decoupled_weight_decay: as for :class:`torch.optim.Adam`.
        reorthonormalize_every: steps between two Newton–Schulz corrections of a frame
            (``None``: never); ``REORTHONORMALIZE_EVERY`` by default.

    Raises:
        TypeError, ValueError: as for :class:`CayleySGD`.

    Example:
        >>> from torch import nn
        >>> from orthobook.init import orthogonal
        >>> from orthobook.stiefel import orthogonality_error
        >>> model = nn.Module()
        >>> model.U, model.b = StiefelParameter(orthogonal(4)), nn.Parameter(torch.zeros(4))
        >>> opt = CayleyAdam(model.parameters(), lr=0.01)
        >>> for _ in range(5):
        ...     opt.zero_grad()
        ...     (model.U[0] @ model.b.add(1)).backward()
        ...     opt.step()
        >>> float(orthogonality_error(model.U.detach())) < 1e-5
        True
    """

    _torch_optimizer = torch.optim.Adam
    _first_moment = "exp_avg"
    _frame_update = staticmethod(cayley_adam_step)
    _frame_keys = ("lr", "betas", "eps", "amsgrad", "maximize")

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float | torch.Tensor = 1e-3,
        betas: tuple[float | torch.Tensor, float | torch.Tensor] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        reorthonormalize_every: int | None = REORTHONORMALIZE_EVERY,
    ) -> None:
        super().__init__(
            params,
            _learning_rate(lr, "lr"),
            betas,
            eps,
            weight_decay,
            amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
        )
        self._finish_init(reorthonormalize_every)


def _learning_rate(value: object, name: str) -> float | torch.Tensor:
    """A finite learning rate ≥ 0: a real number as a float, a one-element tensor as it is."""
    # A tensor's value is read once, when a group is checked, never in a step.
    x = float(_checks.step_size(value, name))
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value}")
    if x < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return value if isinstance(value, torch.Tensor) else x


def _every(value: object, name: str) -> int | None:
    return None if value is None else _checks.positive_int(value, name)


def _check_frame_step(Y: object, G: object, state: object) -> None:
    _like(G, _frame(Y, "Y"), "G")
    if not isinstance(state, dict):
        raise TypeError(f"state must be a dict (start with {{}}), got {type(state).__name__}")


def _hyperparameter(
    value: object, name: str, low: float | None = None, high: float | None = None
) -> None:
    """Raise unless ``value`` is a finite real number in [low, high) or a one-element tensor.

    A tensor's value is not read: that would synchronise with its device at every step.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(
                f"{name} must be a number or a one-element tensor, got shape {tuple(value.shape)}"
            )
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if high is not None and not low <= value < high:
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}), got {value}")
    if low is not None and value < low:
        raise ValueError(f"{name} must be non-negative, got {value}")


def _sgd_options(
    lr: object, momentum: object, dampening: object, nesterov: object, maximize: object
) -> None:
    _hyperparameter(lr, "lr", 0.0)
    _hyperparameter(momentum, "momentum", 0.0)
    _hyperparameter(dampening, "dampening")
    _checks.flag(nesterov, "nesterov")
    _checks.flag(maximize, "maximize")
    if nesterov and (momentum <= 0 or dampening != 0):
        raise ValueError("nesterov needs momentum > 0 and dampening = 0")


def _adam_options(
    lr: object, betas: object, eps: object, amsgrad: object, maximize: object
) -> None:
    _hyperparameter(lr, "lr", 0.0)
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    _hyperparameter(betas[0], "betas[0]", 0.0, 1.0)
    _hyperparameter(betas[1], "betas[1]", 0.0, 1.0)
    _hyperparameter(eps, "eps", 0.0)
    _checks.flag(amsgrad, "amsgrad")
    _checks.flag(maximize, "maximize")
