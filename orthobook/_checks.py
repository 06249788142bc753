"""Argument checks shared by the public functions (one message style everywhere)."""

from __future__ import annotations

import math
import numbers

import torch


def positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int ≥ 1, else raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def non_negative_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int ≥ 0, else raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return value


def finite_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number, else raise naming ``name``.

    A ``TypeError`` for a value that is not an int or float (bools are refused), a
    ``ValueError`` for NaN and ±inf: no size, scale, margin or learning rate of the package
    means anything at infinity.
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    x = float(value)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {value}")
    return x


def step_size(value: object, name: str) -> float | torch.Tensor:
    """Return a finite real number as a float, a one-element floating tensor as a 0-dim view.

    Learning rates and step sizes, as torch optimizers allow them. A tensor's value is not
    read (that would synchronise with its device), so its finiteness is the caller's to check.
    """
    if isinstance(value, torch.Tensor):
        if value.numel() != 1 or not value.is_floating_point():
            raise ValueError(
                f"{name} must be a one-element floating tensor, "
                f"got {value.dtype} of shape {tuple(value.shape)}"
            )
        return value.reshape(())
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise TypeError(
            f"{name} must be a real number or a one-element tensor, got {type(value).__name__}"
        )
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return float(value)


def non_negative_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number ≥ 0, else raise naming ``name``."""
    x = finite_float(value, name)
    if x < 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return x


def positive_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a finite real number > 0, else raise naming ``name``."""
    x = finite_float(value, name)
    if x <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return x


def probability(value: object, name: str) -> float:
    """Return ``float(value)`` if it lies in [0, 1], else raise naming ``name``."""
    p = non_negative_float(value, name)
    if p > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return p


def flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool, else raise a TypeError naming ``name``."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def tensor(value: object, name: str) -> torch.Tensor:
    """Raise a TypeError naming ``name`` unless ``value`` is a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def floating(value: object, name: str) -> torch.Tensor:
    """Raise unless ``value`` is a floating-point tensor."""
    t = tensor(value, name)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")
    return t


def square(value: object, name: str) -> torch.Tensor:
    """Raise unless ``value`` is a floating-point square matrix of shape (n, n)."""
    W = floating(value, name)
    if W.dim() != 2 or W.shape[0] != W.shape[1]:
        raise ValueError(f"{name} must be a square matrix of shape (n, n), got shape {tuple(W.shape)}")
    return W


def float64_square(value: object, name: str) -> torch.Tensor:
    """A detached float64 copy of the square matrix ``value`` (checked as by :func:`square`)."""
    return square(value, name).detach().to(torch.float64)


def matching_vector(value: object, name: str, W: torch.Tensor) -> torch.Tensor:
    """``value: (n,)`` for ``W: (n, n)``, as a detached float64 vector on ``W``'s device."""
    v = floating(value, name)
    n = W.shape[0]
    if v.shape != (n,):
        raise ValueError(f"{name} must be a vector of shape (n,) = ({n},) to match W, got shape {tuple(v.shape)}")
    return v.detach().to(W.device, torch.float64)


def floating_dtype(value: object, name: str = "dtype") -> torch.dtype:
    """Return ``value`` if it is a real floating dtype, ``torch.get_default_dtype()`` if ``None``.

    torch's convention for factory functions: ``dtype=None`` means the default dtype (set by
    ``torch.set_default_dtype``). Integer, bool and complex dtypes raise a ``TypeError``
    naming ``name``.
    """
    if value is None:
        return torch.get_default_dtype()
    if not isinstance(value, torch.dtype):
        raise TypeError(f"{name} must be a torch.dtype or None, got {type(value).__name__}")
    if not value.is_floating_point:
        raise TypeError(f"{name} must be a real floating-point dtype such as torch.float32, got {value}")
    return value


def one_of(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]


def device(value: object, name: str = "device") -> torch.device:
    """Return ``torch.device(value)`` if this machine can use it, else raise naming ``name``.

    The one device validator of the package (tasks, data, models and :func:`pick_device`
    call it): a ``TypeError`` for a value that is not a str or ``torch.device``, a
    ``ValueError`` for a name torch does not know or a backend this build or machine lacks.
    The ``meta`` device is accepted (shape-only tests).
    """
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or a torch.device, got {type(value).__name__}")
    try:
        dev = torch.device(value)
    except RuntimeError as error:
        raise ValueError(f"{name} must name a torch device such as 'cpu' or 'cuda:0', got {value!r}") from error
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={str(value)!r} was asked for but CUDA is not available here")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError(f"{name}={str(value)!r} was asked for but MPS is not available here")
    if dev.type not in ("cpu", "cuda", "mps", "meta"):
        raise ValueError(f"{name}={str(value)!r}: orthobook runs on 'cpu', 'cuda', 'mps' or 'meta'")
    return dev
