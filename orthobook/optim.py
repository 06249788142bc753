"""Geodesic optimizers: Cayley steps for Stiefel parameters beside an ordinary torch optimizer.

A model mixes parameters that must stay orthonormal (:class:`StiefelParameter`, e.g. the
``U`` and ``V`` of :class:`orthobook.recurrent.SpectralMarginSVD`) with ordinary ones (input
weights, biases, a readout, free singular values). :class:`GeodesicOptimizer` takes them all:
each Stiefel parameter moves along the Cayley curve of :func:`orthobook.stiefel.cayley_step`,
every other parameter is handed to a torch optimizer of the user's choice.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer

from orthobook import _checks
from orthobook.stiefel import StiefelParameter, cayley_step, reorthonormalize

__all__ = ["GeodesicOptimizer", "RetractingOptimizer", "StiefelParameter"]

_METHODS = ("sgd", "rmsprop", "adam")


class RetractingOptimizer:
    """Marker mixin: an optimizer that keeps every :class:`StiefelParameter` on the manifold."""


class GeodesicOptimizer(Optimizer):
    """Geodesic descent for :class:`StiefelParameter` s, any torch optimizer for the rest.

    A Stiefel parameter ``Y`` with Euclidean gradient ``G`` moves to
    ``Y ← cayley_step(Y, D, lr)`` (Book: Eq. (geodesic-sgd)), with the direction ``D``:

    * ``method="sgd"``: ``D = G``, plain geodesic gradient descent (Wen & Yin 2013;
      Vorontsov et al. 2017);
    * ``method="rmsprop"``: ``v ← α v + (1 − α) G²``, ``D = G / (√v + ε)``;
    * ``method="adam"``: Adam's bias-corrected moments ``m̂``, ``v̂`` of ``G``, ``D = m̂ / (√v̂ + ε)``
      (Book: Eq. (geodesic-rmsprop)).

    The scaled variants are a heuristic: the moments are kept elementwise in the ambient
    space (never transported between tangent spaces), and ``D`` is no longer the gradient, so
    the step need not descend as fast; but the Cayley curve keeps ``YᵀY`` unchanged for any
    ``D``, so every step stays on the manifold. ``reorthonormalize_every=k`` replaces ``Y`` by
    its nearest frame (:func:`orthobook.stiefel.reorthonormalize`) every ``k`` steps, which
    removes the slow drift of float32 rounding.

    Every other parameter goes to ``base``: an optimizer class, built here as
    ``base(groups, lr=lr, **base_kwargs)``, or an optimizer instance that already holds them
    (parameters it holds are skipped when listed in ``params``).

    Parameter groups: ``params`` may be an iterable of tensors or of dicts as for any torch
    optimizer. In a group, ``"stiefel_lr"`` sets the geodesic step size, ``"lr"`` sets both
    step sizes unless ``"stiefel_lr"`` is given too, and every other key goes to the base
    optimizer; a group's keys win over the constructor's. ``param_groups`` lists the Stiefel
    groups first, then the base optimizer's groups (the same dicts), so one LR scheduler
    drives both. Per-parameter state lives in ``self.stiefel.state`` and ``self.base.state``.

    Args:
        params: parameters or parameter groups.
        lr: step size of the base optimizer, and of the geodesic steps unless ``stiefel_lr``.
        stiefel_lr: geodesic step size τ (defaults to ``lr``).
        method: ``"sgd"``, ``"rmsprop"`` or ``"adam"`` (the geodesic direction, above).
        base: the optimizer class or instance for the non-Stiefel parameters.
        base_kwargs: extra keyword arguments for a ``base`` class (e.g. ``{"momentum": 0.9}``).
        alpha: RMSprop decay α ∈ [0, 1).
        betas: Adam decays (β₁, β₂) ∈ [0, 1)².
        eps: ε > 0 in the denominators.
        reorthonormalize_every: ``None`` or a positive number of steps.

    Raises:
        TypeError: an argument has the wrong type (``base`` not an optimizer class or instance).
        ValueError: an argument is out of range, ``base_kwargs`` comes with a ``base``
            instance, the ``base`` instance holds Stiefel parameters, or ``params`` is empty.

    Example:
        >>> from torch import nn
        >>> from orthobook.init import orthogonal
        >>> model = nn.Module()
        >>> model.U, model.b = StiefelParameter(orthogonal(4)), nn.Parameter(torch.zeros(4))
        >>> opt = GeodesicOptimizer(model.parameters(), lr=0.1, base=torch.optim.Adam)
        >>> (model.U.sum() + model.b.sum()).backward()
        >>> opt.step()
    """

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict[str, Any]],
        lr: float,
        *,
        stiefel_lr: float | None = None,
        method: str = "sgd",
        base: type[Optimizer] | Optimizer = torch.optim.SGD,
        base_kwargs: dict[str, Any] | None = None,
        alpha: float = 0.99,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        reorthonormalize_every: int | None = None,
    ) -> None:
        lr = _learning_rate(lr, "lr")
        stiefel_lr = lr if stiefel_lr is None else _learning_rate(stiefel_lr, "stiefel_lr")
        defaults = {
            "lr": stiefel_lr,
            "method": _checks.one_of(method, "method", _METHODS),
            "alpha": _decay(alpha, "alpha"),
            "betas": _betas(betas),
            "eps": _positive(eps, "eps"),
            "reorthonormalize_every": (
                None
                if reorthonormalize_every is None
                else _checks.positive_int(reorthonormalize_every, "reorthonormalize_every")
            ),
        }
        self.stiefel: Optimizer | None = None
        self.base, self._base_factory = _base_optimizer(base, base_kwargs, lr)
        super().__init__(params, defaults)
        if not self.param_groups:
            raise ValueError("params must hold at least one parameter to optimize")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group: its Stiefel parameters to the geodesic steps, the rest to ``base``.

        Args:
            param_group: ``{"params": ..., **options}`` as for a torch optimizer; see the class
                docstring for which options go where.

        Raises:
            TypeError: ``param_group`` is not a dict, or its params are a set.
            ValueError: a parameter appears in more than one group.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, set):
            raise TypeError("param_group['params'] must be an ordered collection, not a set")
        params = [params] if isinstance(params, torch.Tensor) else list(params)
        options = {k: v for k, v in param_group.items() if k not in ("params", "stiefel_lr")}
        frames = [p for p in params if isinstance(p, StiefelParameter)]
        others = [p for p in params if not isinstance(p, StiefelParameter)]
        if frames:
            key = "stiefel_lr" if "stiefel_lr" in param_group else "lr"
            lr = _learning_rate(param_group.get(key, self.defaults["lr"]), f"param_group[{key!r}]")
            self._add_frames({"params": frames, "lr": lr})
        if others:
            self._add_others({**options, "params": others})
        self._sync_groups()

    def _add_frames(self, group: dict[str, Any]) -> None:
        if self.stiefel is None:
            self.stiefel = _CayleyOptimizer([group], self.defaults)
        else:
            self.stiefel.add_param_group(group)

    def _add_others(self, group: dict[str, Any]) -> None:
        if self.base is None:
            self.base = self._base_factory([group])
            return
        if self._base_factory is None:  # the user's instance: skip what it already holds
            held = {id(p) for g in self.base.param_groups for p in g["params"]}
            group["params"] = [p for p in group["params"] if id(p) not in held]
            if not group["params"]:
                return
        self.base.add_param_group(group)

    def _sync_groups(self) -> None:
        # One list, updated in place, so that a scheduler holding it sees every group.
        self.param_groups[:] = [
            *(self.stiefel.param_groups if self.stiefel is not None else []),
            *(self.base.param_groups if self.base is not None else []),
        ]

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One step of the base optimizer and one geodesic step of every Stiefel parameter.

        Args:
            closure: optional callable that recomputes and returns the loss (evaluated once,
                before the steps).

        Returns:
            The loss returned by ``closure``, or ``None``.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self.base is not None:
            self.base.step()
        if self.stiefel is not None:
            self.stiefel.step()
        return loss

    def state_dict(self) -> dict[str, Any]:
        """The state of both halves: ``{"stiefel": ..., "base": ...}`` (``None`` for an empty half).

        Each half is the ``state_dict()`` of a torch optimizer, so the result saves with
        ``torch.save`` and loads with ``torch.load(..., weights_only=True)``.
        """
        return {
            "stiefel": self.stiefel.state_dict() if self.stiefel is not None else None,
            "base": self.base.state_dict() if self.base is not None else None,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state saved by :meth:`state_dict` from an optimizer built the same way.

        Args:
            state_dict: the dict returned by :meth:`state_dict`.

        Raises:
            ValueError: ``state_dict`` does not come from an optimizer with the same kinds of
                parameters (torch's own checks apply within each half).
        """
        if not isinstance(state_dict, dict) or set(state_dict) != {"stiefel", "base"}:
            raise ValueError("state_dict must be a dict with keys 'stiefel' and 'base'")
        for key, half in (("stiefel", self.stiefel), ("base", self.base)):
            saved = state_dict[key]
            if (saved is None) != (half is None):
                raise ValueError(
                    f"state_dict[{key!r}] is {'empty' if saved is None else 'not empty'} but "
                    f"this optimizer has {'no' if half is None else 'some'} {key} parameters"
                )
            if half is not None:
                half.load_state_dict(saved)
        self._sync_groups()

    def __getstate__(self) -> dict[str, Any]:
        return {
            **super().__getstate__(),
            "stiefel": self.stiefel,
            "base": self.base,
            "_base_factory": self._base_factory,
        }


class _CayleyOptimizer(Optimizer):
    """The geodesic half of :class:`GeodesicOptimizer`: Stiefel parameters only."""

    @torch.no_grad()
    def step(self, closure: None = None) -> None:
        for group in self.param_groups:
            every = group["reorthonormalize_every"]
            for Y in group["params"]:
                if Y.grad is None:
                    continue
                state = self.state[Y]
                state["step"] = state.get("step", 0) + 1
                Y.copy_(cayley_step(Y, _direction(Y.grad, state, group), group["lr"]))
                if every is not None and state["step"] % every == 0:
                    Y.copy_(reorthonormalize(Y))


def _direction(G: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> torch.Tensor:
    """The (rescaled) Euclidean gradient fed to the Cayley step (Book: Eq. (geodesic-rmsprop))."""
    method, eps = group["method"], group["eps"]
    if method == "sgd":
        return G
    if method == "rmsprop":
        alpha = group["alpha"]
        v = state.setdefault("square_avg", torch.zeros_like(G))
        v.mul_(alpha).addcmul_(G, G, value=1.0 - alpha)
        return G / (v.sqrt() + eps)
    beta1, beta2 = group["betas"]
    m = state.setdefault("exp_avg", torch.zeros_like(G))
    v = state.setdefault("exp_avg_sq", torch.zeros_like(G))
    m.lerp_(G, 1.0 - beta1)
    v.mul_(beta2).addcmul_(G, G, value=1.0 - beta2)
    t = state["step"]
    m_hat = m / (1.0 - beta1**t)
    v_hat = v / (1.0 - beta2**t)
    return m_hat / (v_hat.sqrt() + eps)


def _base_optimizer(
    base: object, base_kwargs: object, lr: float
) -> tuple[Optimizer | None, Callable[[list[dict[str, Any]]], Optimizer] | None]:
    """The base instance (or ``None`` until needed) and the factory that builds it."""
    if isinstance(base, Optimizer):
        if base_kwargs is not None:
            raise ValueError("base_kwargs must be None when base is an optimizer instance")
        if any(isinstance(p, StiefelParameter) for g in base.param_groups for p in g["params"]):
            raise ValueError("base must not hold StiefelParameters: they take geodesic steps")
        return base, None
    if not (isinstance(base, type) and issubclass(base, Optimizer)):
        raise TypeError(
            f"base must be a torch.optim.Optimizer subclass or instance, got {base!r}"
        )
    if base_kwargs is None:
        base_kwargs = {}
    if not isinstance(base_kwargs, dict):
        raise TypeError(f"base_kwargs must be a dict or None, got {type(base_kwargs).__name__}")
    return None, functools.partial(base, **{"lr": lr, **base_kwargs})


def _learning_rate(value: object, name: str) -> float:
    lr = _checks.non_negative_float(value, name)
    if not math.isfinite(lr):
        raise ValueError(f"{name} must be finite, got {value}")
    return lr


def _positive(value: object, name: str) -> float:
    x = _learning_rate(value, name)
    if x == 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return x


def _decay(value: object, name: str) -> float:
    x = _checks.non_negative_float(value, name)
    if x >= 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value}")
    return x


def _betas(value: object) -> tuple[float, float]:
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {value!r}")
    return (_decay(value[0], "betas[0]"), _decay(value[1], "betas[1]"))
