"""Benchmarks: orthobook against a reference measured in the same run.

Each comparison times one orthobook implementation and one or more baselines on the same
data, interleaved inside every repeat (A B A B …) so that a drifting machine load falls on
all of them alike; after ``--warmup`` untimed rounds the median of ``--repeats`` rounds is
kept. Every record compares orthobook with one baseline:

    ratio = seconds / baseline_seconds      (below 1: orthobook is faster)

Groups of comparisons live in a registry (``GROUPS``; ``--only`` selects some). To add a
group, write a generator of :class:`Comparison` s that takes the :class:`Settings` and
decorate it with ``@group("name", "one-line description")``.

Run ``python benchmarks/run.py --help`` for the options; ``benchmarks/README.md`` lists the
targets.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import orthogonal

import householder_cases
from orthobook.batched import BatchedElmanRNN
from orthobook.device import pick_device
from orthobook.init import orthogonal as haar_orthogonal
from orthobook import parametrizations
from orthobook.models import ElmanRNN, rin
from orthobook.optim import CayleyAdam
from orthobook.parametrizations import householder_svd, spectral_margin
from orthobook.stiefel import cayley_retraction_full, cayley_retraction_lowrank
from orthobook.timing import interleaved_seconds

Step = Callable[[], None]
RECORD_KEYS = ("case", "n", "T", "batch", "seconds", "baseline", "baseline_seconds", "ratio")

SIZES = (64, 128, 256, 512)
SEQ_LENS = (100, 784)
BATCH = 64
REPEATS = 10
WARMUP = 2
QUICK = {"sizes": (8,), "seq_lens": (5,), "batch": 4, "repeats": 2, "warmup": 1}
QUICK_THIN_SHAPES = ((16, 4),)
LEARNING_RATE = 1e-3


@dataclass(frozen=True)
class Settings:
    """What every group reads: where to run and which sizes to build."""

    device: torch.device
    sizes: tuple[int, ...]
    seq_lens: tuple[int, ...]
    batch: int
    quick: bool


@dataclass
class Comparison:
    """One orthobook step and the baselines it is compared with, timed together.

    ``T`` and ``batch`` are None for cases without a sequence (a matrix construction). Each
    step trains ``models`` models, so the records give seconds per model-step.
    """

    case: str
    n: int
    T: int | None
    batch: int | None
    ours: Step
    baselines: dict[str, Step]
    models: int = 1


Group = Callable[[Settings], Iterator[Comparison]]
GROUPS: dict[str, tuple[Group, str]] = {}


def group(name: str, description: str) -> Callable[[Group], Group]:
    """Register a generator of comparisons under ``name`` (selected by ``--only name``)."""

    def register(build: Group) -> Group:
        GROUPS[name] = (build, description)
        return build

    return register


# ---------------------------------------------------------------------------------------------
# Training steps of recurrent networks

class TorchRNN(nn.Module):
    """The reference: ``nn.RNN`` (tanh or relu) and an ``nn.Linear`` readout at every step,
    the computation of :class:`~orthobook.models.ElmanRNN` written with torch alone."""

    def __init__(self, input_size: int, hidden_size: int, output_size: int, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        states, _ = self.rnn(x)
        return self.readout(states)


def training_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    context: Callable[[], AbstractContextManager] = nullcontext,
) -> Step:
    """One step of MSE training on the last output: forward, backward, ``optimizer.step()``."""

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with context():
            loss = F.mse_loss(model(x)[:, -1], y)
        loss.backward()
        optimizer.step()

    return step


def _sequence_data(settings: Settings, T: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(T)
    x = torch.randn(settings.batch, T, 1, generator=g)
    y = torch.randn(settings.batch, 1, generator=g)
    return x.to(settings.device), y.to(settings.device)


def _adam(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)


def _cayley_adam(model: nn.Module) -> torch.optim.Optimizer:
    return CayleyAdam(model.parameters(), lr=LEARNING_RATE)


def _same_start(model: ElmanRNN) -> TorchRNN:
    """``nn.RNN`` + ``nn.Linear`` holding ``model``'s initial weights, its (possibly
    parametrized) ``W`` included, so that both steps compute with the same numbers.

    Different starting weights would make the two steps compute with different numbers:
    tiny ones underflow into subnormal floats, slow on CPUs unless flushed, and saturated
    tanh units change the work of nothing but the numbers; with one start the ratio is the
    code's.
    """
    reference = TorchRNN(model.rnn.input_size, model.hidden_size, model.readout.out_features, model.nonlinearity)
    reference = reference.to(dtype=model.readout.weight.dtype)
    with torch.no_grad():
        reference.rnn.weight_hh_l0.copy_(model.recurrent_matrices()[0])
        for name in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
            getattr(reference.rnn, name).copy_(getattr(model.rnn, name))
    reference.readout.load_state_dict(model.readout.state_dict())
    return reference


def _elman_steps(
    n: int,
    x: torch.Tensor,
    y: torch.Tensor,
    constraint: Callable[[nn.Module, str], nn.Module] | None = None,
    optimizer: Callable[[nn.Module], torch.optim.Optimizer] = _adam,
    nonlinearity: str = "tanh",
) -> tuple[Step, Step]:
    """A training step of ``ElmanRNN(1, n, 1)``, its ``W`` under ``constraint`` when given,
    and the step of ``nn.RNN`` from the same start (:func:`_same_start`)."""
    model = ElmanRNN(1, n, 1, nonlinearity=nonlinearity, generator=torch.Generator().manual_seed(n))
    if constraint is not None:
        constraint(model.rnn, "weight_hh_l0")
    reference = _same_start(model).to(x.device)
    model = model.to(x.device)
    return training_step(model, optimizer(model), x, y), training_step(reference, _adam(reference), x, y)


def _rnn_grid(settings: Settings) -> Iterator[tuple[int, int, torch.Tensor, torch.Tensor]]:
    for T in settings.seq_lens:
        x, y = _sequence_data(settings, T)
        for n in settings.sizes:
            torch.manual_seed(n)
            yield n, T, x, y


@group("rnn", "training step of ElmanRNN (tanh) vs nn.RNN + nn.Linear from the same weights; target ratio <= 1.05")
def rnn_cases(settings: Settings) -> Iterator[Comparison]:
    for n, T, x, y in _rnn_grid(settings):
        ours, reference = _elman_steps(n, x, y)
        yield Comparison("ElmanRNN", n, T, settings.batch, ours, {"nn.RNN": reference})


def _householder(module: nn.Module, name: str) -> nn.Module:
    return householder_svd(module, name, margin=0.01)


def _margin(module: nn.Module, name: str) -> nn.Module:
    return spectral_margin(module, name, margin=0.01)


@group(
    "householder_rnn",
    "training step of ElmanRNN + householder_svd (Adam) vs nn.RNN from the same weights; "
    "target <= 1.10 at n <= 256, <= 1.20 at n = 512 (T = 100), <= 1.03 at T = 784",
)
def householder_rnn_cases(settings: Settings) -> Iterator[Comparison]:
    for n, T, x, y in _rnn_grid(settings):
        ours, reference = _elman_steps(n, x, y, _householder)
        yield Comparison("ElmanRNN householder_svd", n, T, settings.batch, ours, {"nn.RNN": reference})


@group(
    "spectral",
    "training step of ElmanRNN + spectral_margin (CayleyAdam) vs nn.RNN from the same weights; "
    "target <= 1.10 at n <= 256, <= 1.20 at n = 512 (T = 100), <= 1.03 at T = 784",
)
def spectral_cases(settings: Settings) -> Iterator[Comparison]:
    for n, T, x, y in _rnn_grid(settings):
        ours, reference = _elman_steps(n, x, y, _margin, optimizer=_cayley_adam)
        yield Comparison("ElmanRNN spectral_margin", n, T, settings.batch, ours, {"nn.RNN": reference})


UNROLLED_SIZES = (64, 128)


@group(
    "unrolled",
    "training step of ElmanRNN (elu, once the unrolled loop, now orthobook.bptt) vs nn.RNN (tanh, the "
    "fused kernel) from the same weights; n = 64, 128; target <= 1.5 at n = 64, T = 784, B = 64",
)
def unrolled_cases(settings: Settings) -> Iterator[Comparison]:
    sizes = settings.sizes if settings.quick else UNROLLED_SIZES
    for T in settings.seq_lens:
        x, y = _sequence_data(settings, T)
        for n in sizes:
            model = ElmanRNN(1, n, 1, nonlinearity="elu", generator=torch.Generator().manual_seed(n))
            reference = _same_start(ElmanRNN(1, n, 1, generator=torch.Generator().manual_seed(n))).to(x.device)
            ours = training_step(model.to(x.device), _adam(model), x, y)
            baseline = {"nn.RNN tanh (fused)": training_step(reference, _adam(reference), x, y)}
            yield Comparison("ElmanRNN elu", n, T, settings.batch, ours, baseline)


# ---------------------------------------------------------------------------------------------
# Peers: other libraries' orthogonal constraints on the same nn.RNN step

GEOTORCH_LAMBDA = 0.01  # almost_orthogonal's band: singular values in [1 − λ, 1 + λ], the margin


def _peer_libraries() -> tuple[Any, Any] | None:
    """``(geotorch, geoopt)``, or None when the optional ``bench`` extra is not installed."""
    try:
        with warnings.catch_warnings():
            # geoopt decorates functions with torch.jit.script at import, deprecated in torch 2.x.
            warnings.simplefilter("ignore", DeprecationWarning)
            import geoopt
            import geotorch
    except ImportError:
        return None
    return geotorch, geoopt


def _peer_steps(model: ElmanRNN, x: torch.Tensor, y: torch.Tensor, libraries: tuple[Any, Any]) -> dict[str, Step]:
    """Each peer's constraint on ``nn.RNN``'s ``weight_hh_l0``, started at ``model``'s W."""
    geotorch, geoopt = libraries
    start = model.recurrent_matrices()[0].detach()
    steps: dict[str, Step] = {}
    reference = _same_start(model).to(x.device)
    steps["nn.RNN"] = training_step(reference, _adam(reference), x, y)
    for orthogonal_map in ("cayley", "matrix_exp"):
        peer = _same_start(model)
        orthogonal(peer.rnn, "weight_hh_l0", orthogonal_map=orthogonal_map)
        peer.rnn.weight_hh_l0 = start
        peer = peer.to(x.device)
        # Without the cache nn.RNN reads its parametrised weight twice per forward.
        steps[f"torch orthogonal({orthogonal_map})"] = training_step(peer, _adam(peer), x, y, parametrize.cached)
    for name, constrain in (
        ("geotorch orthogonal", geotorch.orthogonal),
        ("geotorch almost_orthogonal", lambda m, w: geotorch.almost_orthogonal(m, w, lam=GEOTORCH_LAMBDA)),
    ):
        peer = _same_start(model)
        constrain(peer.rnn, "weight_hh_l0")
        peer.rnn.weight_hh_l0 = start
        peer = peer.to(x.device)
        steps[name] = training_step(peer, _adam(peer), x, y, parametrize.cached)
    peer = _same_start(model)
    del peer.rnn.weight_hh_l0
    peer.rnn.weight_hh_l0 = geoopt.ManifoldParameter(start.clone(), manifold=geoopt.Stiefel())
    peer.rnn._init_flat_weights()
    peer = peer.to(x.device)
    steps["geoopt Stiefel + RiemannianAdam"] = training_step(
        peer, geoopt.optim.RiemannianAdam(peer.parameters(), lr=LEARNING_RATE), x, y
    )
    return steps


@group(
    "peers",
    "training step of ElmanRNN + orthobook orthogonal (CayleyAdam) vs nn.RNN (same weights) and the "
    "same nn.RNN step under torch orthogonal (cayley, matrix_exp), geotorch orthogonal and "
    f"almost_orthogonal (lam={GEOTORCH_LAMBDA}), geoopt Stiefel + RiemannianAdam (the bench extra; "
    "skipped with a message without it)",
)
def peer_cases(settings: Settings) -> Iterator[Comparison]:
    libraries = _peer_libraries()
    if libraries is None:
        print("# peers: skipped, geotorch and geoopt are not installed (pip install 'orthobook[bench]')", flush=True)
        return
    for n, T, x, y in _rnn_grid(settings):
        model = ElmanRNN(1, n, 1, generator=torch.Generator().manual_seed(n))
        parametrizations.orthogonal(model.rnn, "weight_hh_l0", generator=torch.Generator().manual_seed(n))
        baselines = _peer_steps(model, x, y, libraries)
        model = model.to(x.device)
        ours = training_step(model, _cayley_adam(model), x, y)
        yield Comparison("ElmanRNN orthogonal (CayleyAdam)", n, T, settings.batch, ours, baselines)


# ---------------------------------------------------------------------------------------------
# Householder products (the cases of benchmarks/householder_cases.py)

@group("householder", "householder_product (materialise + backward) vs torch.linalg and parametrizations")
def householder_product_cases(settings: Settings) -> Iterator[Comparison]:
    thin = QUICK_THIN_SHAPES if settings.quick else householder_cases.THIN_SHAPES
    shapes = [(n, n) for n in settings.sizes] + list(thin)
    device, dtype = settings.device, torch.float32
    for n, p in shapes:
        torch.manual_seed(n + p)
        case = f"householder {n}x{n}" if p == n else f"householder thin {n}x{p}"
        baselines = {
            "torch.linalg.householder_product": householder_cases._linalg_step(n, p, device, dtype),
            "parametrizations.orthogonal(householder)": householder_cases._parametrization_step(n, p, device, dtype),
        }
        yield Comparison(case, n, None, None, householder_cases._orthobook_step(n, p, device, dtype), baselines)


# ---------------------------------------------------------------------------------------------
# The recurrent identity network (U + I, relu)

@group("residual", "training step of the RIN (ElmanRNN, residual_identity U + I, relu) vs nn.RNN(relu); target <= 1.05")
def residual_cases(settings: Settings) -> Iterator[Comparison]:
    for n, T, x, y in _rnn_grid(settings):
        model = rin(1, n, 1)
        reference = _same_start(model).to(x.device)
        model = model.to(x.device)
        ours = training_step(model, _adam(model), x, y)
        baseline = {"nn.RNN(relu)": training_step(reference, _adam(reference), x, y)}
        yield Comparison("RIN residual_identity", n, T, settings.batch, ours, baseline)


# ---------------------------------------------------------------------------------------------
# Cayley retractions (one geodesic step of a Stiefel parameter)

# Tall frames n×(n/TALL_RATIO): the shape where the low-rank form should win (2p < n).
TALL_RATIO = 8


def _cayley_step(retraction: Callable, n: int, p: int, device: torch.device) -> Step:
    """One Cayley step ``retraction(Y, G, lr)`` of a fixed frame ``Y: (n, p)``."""
    g = torch.Generator().manual_seed(n + p)
    Y = haar_orthogonal(n, generator=g)[:, :p].to(device)
    G = torch.randn(n, p, generator=g).to(device)
    return lambda: retraction(Y, G, LEARNING_RATE)


@group("cayley", "Cayley step: low-rank (Woodbury, 2p x 2p solve) vs full (n x n solve), square and tall n x n/8")
def cayley_cases(settings: Settings) -> Iterator[Comparison]:
    for n in settings.sizes:
        for p in dict.fromkeys((n, max(1, n // TALL_RATIO))):  # square, then tall (once if equal)
            case = f"cayley low-rank {n}x{p}"
            ours = _cayley_step(cayley_retraction_lowrank, n, p, settings.device)
            baseline = {"cayley full": _cayley_step(cayley_retraction_full, n, p, settings.device)}
            yield Comparison(case, n, None, None, ours, baseline)


# ---------------------------------------------------------------------------------------------
# Many models at once (orthobook.batched): K seeds at the price of one?

BATCHED_MODELS = (1, 2, 4, 8, 16, 32)
BATCHED_SIZES = (64, 128)
BATCHED_T = 100
BATCHED_BATCH = 32
QUICK_BATCHED_MODELS = (1, 2)


def _batched_step(models: list[ElmanRNN], x: torch.Tensor, y: torch.Tensor) -> Step:
    """One training step of the K models as a BatchedElmanRNN: x (K, B, T, 1), y (K, B, 1);
    the sum of the K losses, one Adam over every parameter (what train does, without its
    bookkeeping)."""
    batch = BatchedElmanRNN(models)
    optimizer = _adam(batch)

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        F.mse_loss(batch(x)[:, :, -1], y, reduction="none").mean((1, 2)).sum().backward()
        optimizer.step()

    return step


def _sequential_steps(models: list[nn.Module], x: torch.Tensor, y: torch.Tensor) -> Step:
    """One training step of each of the K models in turn, each with its own Adam."""
    steps = [training_step(model, _adam(model), x[k], y[k]) for k, model in enumerate(models)]

    def step() -> None:
        for one in steps:
            one()

    return step


@group(
    "batched",
    "training step of K ElmanRNNs (tanh) as one BatchedElmanRNN vs K nn.RNN steps and K ElmanRNN steps "
    "in turn (one ElmanRNN runs orthobook.bptt too, K = 1); seconds per model-step; K = 1..32, n = 64, 128, "
    "T = 100, B = 32 (--quick: K = 1, 2 at the quick sizes); target <= 0.30 at K = 8, <= 0.15 at K = 32 "
    "(n = 64) against nn.RNN",
)
def batched_cases(settings: Settings) -> Iterator[Comparison]:
    if settings.quick:
        counts, sizes, T, B = QUICK_BATCHED_MODELS, settings.sizes, settings.seq_lens[0], settings.batch
    else:
        counts, sizes, T, B = BATCHED_MODELS, BATCHED_SIZES, BATCHED_T, BATCHED_BATCH
    g = torch.Generator().manual_seed(T)
    for n in sizes:
        for K in counts:
            x = torch.randn(K, B, T, 1, generator=g).to(settings.device)
            y = torch.randn(K, B, 1, generator=g).to(settings.device)

            def build() -> list[ElmanRNN]:
                return [ElmanRNN(1, n, 1, generator=torch.Generator().manual_seed(k)).to(settings.device) for k in range(K)]

            ours = _batched_step(build(), x, y)
            baseline = {
                f"{K} x nn.RNN in turn": _sequential_steps([_same_start(m).to(settings.device) for m in build()], x, y),
                f"{K} x ElmanRNN in turn": _sequential_steps(build(), x, y),
            }
            yield Comparison(f"BatchedElmanRNN K={K}", n, T, B, ours, baseline, models=K)


# ---------------------------------------------------------------------------------------------
# Timing and reporting

def measure(comparison: Comparison, repeats: int, warmup: int, device: torch.device) -> list[dict]:
    """One record (keys ``RECORD_KEYS``) per baseline of ``comparison``, all timed interleaved."""
    names = list(comparison.baselines)
    steps = {"ours": comparison.ours, **{f"baseline {name}": step for name, step in comparison.baselines.items()}}
    times = interleaved_seconds(steps, repeats=repeats, warmup=warmup, device=device).values()
    ours, *theirs = (seconds / comparison.models for seconds in times)
    return [
        {
            "case": comparison.case,
            "n": comparison.n,
            "T": comparison.T,
            "batch": comparison.batch,
            "seconds": ours,
            "baseline": name,
            "baseline_seconds": seconds,
            "ratio": ours / seconds,
        }
        for name, seconds in zip(names, theirs)
    ]


def git_commit() -> str:
    """The short commit of the checkout, with ``+dirty`` when tracked files differ from it."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=root).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def header(device: torch.device, threads: int) -> str:
    return (
        f"# orthobook benchmarks | device {device} | threads {threads} | torch {torch.__version__} "
        f"| python {platform.python_version()} | commit {git_commit()} | denormals flushed on the CPU"
    )


_COLUMNS = f"{'case':<34} {'n':>5} {'T':>5} {'batch':>5} {'seconds':>10} {'baseline':<42} {'baseline_seconds':>16} {'ratio':>6}"


def _dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def row(record: dict) -> str:
    return (
        f"{record['case']:<34} {record['n']:>5} {_dash(record['T']):>5} {_dash(record['batch']):>5} "
        f"{record['seconds']:>10.5f} {record['baseline']:<42} {record['baseline_seconds']:>16.5f} "
        f"{record['ratio']:>6.3f}"
    )


def _positive_ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


def _groups(text: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in GROUPS]
    if not names or unknown:
        raise argparse.ArgumentTypeError(f"unknown group(s) {unknown or text!r}; known: {', '.join(GROUPS)}")
    return names


def _available_threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def parser() -> argparse.ArgumentParser:
    groups = "\n".join(f"  {name:<16} {description}" for name, (_, description) in GROUPS.items())
    p = argparse.ArgumentParser(
        description="Time orthobook against baselines measured in the same run; "
        "ratio = seconds / baseline_seconds (below 1: orthobook is faster).",
        epilog=f"groups:\n{groups}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--only",
        type=_groups,
        default=None,
        help="comma-separated groups (default: all)",
    )
    p.add_argument("--device", default=None, help="cuda, mps, cpu, cuda:1, ... (default: cuda, then mps, then cpu)")
    p.add_argument("--threads", type=_at_least(1), default=_available_threads(), help="torch CPU threads (default: all available)")
    p.add_argument("--sizes", type=_positive_ints, default=None, help=f"hidden sizes n (default: {','.join(map(str, SIZES))})")
    p.add_argument("--seq-lens", type=_positive_ints, default=None, help=f"sequence lengths T (default: {','.join(map(str, SEQ_LENS))})")
    p.add_argument("--batch", type=_at_least(1), default=None, help=f"batch size B (default: {BATCH})")
    p.add_argument("--repeats", type=_at_least(1), default=None, help=f"timed rounds; the median is kept (default: {REPEATS})")
    p.add_argument("--warmup", type=_at_least(0), default=None, help=f"untimed rounds first (default: {WARMUP})")
    p.add_argument(
        "--quick",
        action="store_true",
        help=f"smoke run: sizes {QUICK['sizes']}, T {QUICK['seq_lens']}, batch {QUICK['batch']}, "
        f"{QUICK['repeats']} repeats (explicit options still win)",
    )
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the records as one JSON list of objects with keys " + ", ".join(RECORD_KEYS),
    )
    p.add_argument(
        "--record",
        type=Path,
        default=None,
        metavar="DIR",
        help="also write the run with its commit, date and machine as DIR/<device>-threads-<k>.json "
        "and rebuild DIR/table.md from every run there (the book's page: --record benchmarks/results)",
    )
    p.add_argument("--note", default=None, help="a sentence recorded with the run (e.g. that the machine was shared)")
    return p


def main(argv: Sequence[str] | None = None) -> list[dict]:
    """Run the selected groups, print the table and return (and optionally write) the records."""
    args = parser().parse_args(argv)
    defaults = QUICK if args.quick else {"sizes": SIZES, "seq_lens": SEQ_LENS, "batch": BATCH, "repeats": REPEATS, "warmup": WARMUP}
    chosen = {key: defaults[key] if getattr(args, key) is None else getattr(args, key) for key in defaults}
    torch.set_num_threads(args.threads)
    settings = Settings(pick_device(args.device), chosen["sizes"], chosen["seq_lens"], chosen["batch"], args.quick)

    print(header(settings.device, torch.get_num_threads()), flush=True)
    print(_COLUMNS, flush=True)
    records: list[dict] = []
    for name in args.only or tuple(GROUPS):
        build, _ = GROUPS[name]
        for comparison in build(settings):
            for record in measure(comparison, chosen["repeats"], chosen["warmup"], settings.device):
                records.append(record)
                print(row(record), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(records, indent=1) + "\n")
    if args.record is not None:
        run = {**run_metadata(settings.device, torch.get_num_threads(), args.note), "records": records}
        write_record(args.record, run)
    return records


# ---------------------------------------------------------------------------------------------
# Recorded runs: the results page of the book (book/benchmarks.md includes table.md)

def machine() -> str:
    """The CPU's model name and its logical cores (``platform`` where /proc/cpuinfo is absent)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
        model = next(line.split(":", 1)[1].strip() for line in lines if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine()
    return f"{model}, {os.cpu_count()} logical cores, {platform.system()}"


def run_metadata(device: torch.device, threads: int, note: str | None) -> dict[str, Any]:
    """What a recorded run says about itself (keys ``RUN_KEYS`` less ``records``)."""
    return {
        "commit": git_commit(),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "device": str(device),
        "threads": threads,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "note": note,
    }


RUN_KEYS = ("commit", "date", "machine", "device", "threads", "torch", "python", "note", "records")


def write_record(directory: Path, run: dict[str, Any]) -> Path:
    """Write ``run`` as ``directory/<device>-threads-<k>.json`` and rebuild ``directory/table.md``
    from every run recorded there; the path of the JSON file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{run['device'].replace(':', '-')}-threads-{run['threads']}.json"
    path.write_text(json.dumps(run, indent=1) + "\n")
    runs = [json.loads(p.read_text()) for p in sorted(directory.glob("*-threads-*.json"))]
    runs.sort(key=lambda r: (r["device"], r["threads"]))
    (directory / "table.md").write_text(markdown(runs))
    return path


def markdown(runs: Sequence[dict[str, Any]]) -> str:
    """The recorded runs as MyST markdown: per run, a line of what it ran on and a table."""
    parts = [
        "<!-- Generated by benchmarks/run.py --record; do not edit. -->",
        "",
        "ratio = seconds / baseline seconds, both measured in the same run, interleaved "
        "(below 1: orthobook is faster); medians of the repeats; denormals flushed to zero "
        "on the CPU.",
    ]
    for run in runs:
        threads = f"{run['threads']} thread" + ("s" if run["threads"] != 1 else "")
        parts += [
            "",
            f"**{run['device']}, {threads}**: commit `{run['commit']}`, {run['date']}, "
            f"{run['machine']}, torch {run['torch']}, Python {run['python']}."
            + (f" {run['note']}" if run["note"] else ""),
            "",
            "| case | n | T | batch | seconds | baseline | baseline seconds | ratio |",
            "|:-----|--:|--:|------:|--------:|:---------|-----------------:|------:|",
        ]
        for r in run["records"]:
            parts.append(
                f"| {r['case']} | {r['n']} | {_dash(r['T'])} | {_dash(r['batch'])} | {r['seconds']:.4g} "
                f"| {r['baseline']} | {r['baseline_seconds']:.4g} | {r['ratio']:.3f} |"
            )
    return "\n".join(parts) + "\n"


if __name__ == "__main__":
    main()
