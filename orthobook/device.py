"""Automatic device choice, seeding and deterministic mode.

Every chapter starts with ``device = pick_device(device)`` and ``seed_everything(seed)``
so that its stored outputs can be reproduced on the same kind of machine.
"""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from orthobook import _checks

__all__ = ["pick_device", "seed_everything", "seeds", "deterministic", "generator", "run_mode"]


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """Return the device to run on.

    Args:
        device: ``None`` for automatic choice (cuda, then mps, then cpu), or any
            string or :class:`torch.device` that torch accepts (``"cpu"``, ``"cuda:1"``).

    Returns:
        The :class:`torch.device`.

    Raises:
        TypeError: ``device`` is neither ``None``, a string nor a ``torch.device``.
        ValueError: the named device is not available on this machine.

    Example:
        >>> pick_device("cpu")
        device(type='cpu')
    """
    if device is None:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return _checks.device(device)


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (all devices') random number generators.

    Args:
        seed: a non-negative integer.

    Raises:
        TypeError: ``seed`` is not an int.
        ValueError: ``seed`` is negative.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must lie in [0, 2**32), got {seed}")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def seeds(seed: int, count: int) -> list[int]:
    """The ``count`` seeds of a chapter's multi-seed experiment for its ``seed`` parameter.

    Different values of ``seed`` give disjoint sets (``seed = 1`` reruns a chapter on seeds the
    stored run did not use), each experiment of a chapter uses the same set.

    Example:
        >>> seeds(0, 5), seeds(1, 5)
        ([0, 1, 2, 3, 4], [5, 6, 7, 8, 9])
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not isinstance(count, int) or isinstance(count, bool) or count < 1:
        raise ValueError(f"count must be a positive int, got {count!r}")
    return list(range(seed * count, (seed + 1) * count))


def deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic kernels (slower on GPU; used by the tests).

    Args:
        enabled: turn deterministic algorithms on or off.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    torch.backends.cudnn.benchmark = not enabled


def generator(seed: int, device: str | torch.device = "cpu") -> torch.Generator:
    """A fresh :class:`torch.Generator` seeded with ``seed`` on ``device``.

    Task generators and initialisers take one so that their draws do not
    depend on (or disturb) the global random state.
    """
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be non-negative, got {seed}")
    gen = torch.Generator(device=torch.device(device))
    gen.manual_seed(seed)
    return gen


def run_mode(quick: bool, full: bool) -> str:
    """The name of a chapter's run from its ``quick`` and ``full`` parameters.

    Returns:
        ``"quick"`` (smoke run in seconds), ``"full"`` (paper scale, for a GPU) or
        ``"book"`` (the default CPU run whose outputs the book stores).

    Raises:
        ValueError: both ``quick`` and ``full`` are set.
    """
    if not isinstance(quick, bool) or not isinstance(full, bool):
        raise TypeError(f"quick and full must be bools, got {quick!r} and {full!r}")
    if quick and full:
        raise ValueError("quick and full cannot both be True: pick the smoke run or the paper-scale run")
    return "quick" if quick else "full" if full else "book"
