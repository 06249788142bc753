"""Argument checks shared by the public functions (one message style everywhere)."""

from __future__ import annotations

import torch


def positive_int(value: object, name: str) -> int:
    """Return ``value`` if it is an int ≥ 1, else raise naming ``name``."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < 1:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def non_negative_float(value: object, name: str) -> float:
    """Return ``float(value)`` if it is a real number ≥ 0, else raise naming ``name``."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    if not value >= 0:
        raise ValueError(f"{name} must be non-negative, got {value}")
    return float(value)


def probability(value: object, name: str) -> float:
    """Return ``float(value)`` if it lies in [0, 1], else raise naming ``name``."""
    p = non_negative_float(value, name)
    if p > 1:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    return p


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


def one_of(value: object, name: str, choices: tuple[str, ...]) -> str:
    """Raise unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value  # type: ignore[return-value]
