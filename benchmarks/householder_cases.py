"""Benchmark cases for orthobook.householder: materialise a product of reflectors, then backward.

Each case builds ``Q = H(u₁) … H(u_k)`` from ``k`` reflector vectors (full ``n × n`` with
``k = n``, or the thin ``n × p`` factor with ``k = p``) and back-propagates ``⟨G, Q⟩`` for a
fixed random ``G``, with

* ``orthobook.householder.householder_product`` (compact WY, Note [compact WY]),
* ``torch.linalg.householder_product`` (LAPACK-style loop over reflectors and its backward),
* ``torch.nn.utils.parametrizations.orthogonal(..., orthogonal_map="householder")`` on an
  ``nn.Linear`` (the weight's construction through the parametrisation and its backward).

Every record compares orthobook with one baseline measured in the same run:
``ratio = baseline_seconds / seconds`` (above 1: orthobook is faster).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn
from torch.nn.utils.parametrizations import orthogonal

from orthobook.householder import householder_product

SQUARE_SIZES = (64, 128, 256, 512)
THIN_SHAPES = ((512, 64), (1024, 128))
Device = str | torch.device


def householder_cases(
    repeats: int = 5, *, device: Device = "cpu", dtype: torch.dtype = torch.float32
) -> list[dict]:
    """Time materialise + backward of Householder products against both baselines.

    Args:
        repeats: timed runs per measurement (after one warm-up run); the median is kept.
        device: where the tensors live.
        dtype: floating dtype of the reflector vectors.

    Returns:
        One record per (case, baseline): ``{"case", "n", "T", "batch", "seconds", "baseline",
        "baseline_seconds", "ratio"}`` with ``T`` and ``batch`` None and
        ``ratio = baseline_seconds / seconds``.
    """
    shapes = [(n, n) for n in SQUARE_SIZES] + list(THIN_SHAPES)
    records = []
    for n, p in shapes:
        case = f"householder {n}x{n}" if p == n else f"householder thin {n}x{p}"
        ours = _median_seconds(_orthobook_step(n, p, device, dtype), repeats, device)
        baselines = {
            "torch.linalg.householder_product": _linalg_step(n, p, device, dtype),
            "parametrizations.orthogonal(householder)": _parametrization_step(n, p, device, dtype),
        }
        for name, step in baselines.items():
            seconds = _median_seconds(step, repeats, device)
            records.append(
                {
                    "case": case,
                    "n": n,
                    "T": None,
                    "batch": None,
                    "seconds": ours,
                    "baseline": name,
                    "baseline_seconds": seconds,
                    "ratio": seconds / ours,
                }
            )
    return records


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


def _median_seconds(step: Callable[[], None], repeats: int, device: Device) -> float:
    synchronize = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    step()
    times = []
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steadiest when shared)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{'case':<28} {'baseline':<42} {'orthobook ms':>12} {'baseline ms':>12} {'ratio':>8}")
    for r in householder_cases(args.repeats, device=args.device):
        print(
            f"{r['case']:<28} {r['baseline']:<42} {1e3 * r['seconds']:>12.3f} "
            f"{1e3 * r['baseline_seconds']:>12.3f} {r['ratio']:>8.1f}"
        )
