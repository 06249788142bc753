"""The steps of the ``householder`` group of ``run.py``: a product of reflectors, then backward.

Each case builds ``Q = H(u₁) … H(u_k)`` from ``k`` reflector vectors (full ``n × n`` with
``k = n``, or the thin ``n × p`` factor with ``k = p``) and back-propagates ``⟨G, Q⟩`` for a
fixed random ``G``, with

* ``orthobook.householder.householder_product`` (compact WY, Note [compact WY]),
* ``torch.linalg.householder_product`` (LAPACK-style loop over reflectors and its backward),
* ``torch.nn.utils.parametrizations.orthogonal(..., orthogonal_map="householder")`` on an
  ``nn.Linear`` (the weight's construction through the parametrisation and its backward).

``run.py --only householder`` times them interleaved, with ``ratio = seconds / baseline_seconds``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from orthobook.householder import householder_product

THIN_SHAPES = ((512, 64), (1024, 128))
Device = str | torch.device


def _orthobook_step(n: int, p: int, device: Device, dtype: torch.dtype) -> Callable[[], None]:
    V = torch.randn(n, p, device=device, dtype=dtype, requires_grad=True)
    G = torch.randn(n, p, device=device, dtype=dtype)
    columns = None if p == n else p

    def step() -> None:
        (householder_product(V, columns=columns) * G).sum().backward()

    return step


def _linalg_step(n: int, p: int, device: Device, dtype: torch.dtype) -> Callable[[], None]:
    # LAPACK convention: implicit unit diagonal, τ = 2/‖v‖² makes each factor a reflector.
    A = torch.randn(n, p, device=device, dtype=dtype).tril(-1)
    A += torch.eye(n, p, device=device, dtype=dtype)
    tau = (2.0 / (A**2).sum(0)).requires_grad_()
    A.requires_grad_()
    G = torch.randn(n, p, device=device, dtype=dtype)

    def step() -> None:
        (torch.linalg.householder_product(A, tau) * G).sum().backward()

    return step


def _parametrization_step(n: int, p: int, device: Device, dtype: torch.dtype) -> Callable[[], None]:
    layer = orthogonal(nn.Linear(p, n, device=device, dtype=dtype), orthogonal_map="householder")
    G = torch.randn(n, p, device=device, dtype=dtype)

    def step() -> None:
        (layer.weight * G).sum().backward()

    return step
