"""The command line: ``python -m orthobook.experiments list | run NAME | sweep NAME | report``.

::

    python -m orthobook.experiments list [PATTERN]
    python -m orthobook.experiments run NAME --seeds 0-4 --budget 500steps [--device cuda]
    python -m orthobook.experiments sweep 'orhan2020-copy-*' --seeds 0-9 --budget 10m
    python -m orthobook.experiments sweep NAME --backend ray --address ray://head:10001
    python -m orthobook.experiments report [PATTERN] [--faithfulness]

``--seeds``: ``0-4`` (a range, both ends included), ``0,3,7`` (a list) or ``5`` (seeds 0 to
4). ``--budget``: ``500steps``, ``10m``, ``90s``, ``2h``, both (``500steps+10m``), or
``paper`` (the paper's number of steps, the default). ``--out``: the store (default
``$ORTHOBOOK_RESULTS`` or ``results/``). A finished run is skipped; a killed one resumes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from orthobook.experiments import papers, report
from orthobook.experiments.runner import parse_budget, run_group
from orthobook.experiments.store import Store
from orthobook.experiments.sweep import default_workers, sweep

__all__ = ["main", "parse_seeds"]


def parse_seeds(text: str) -> list[int]:
    """``"0-4"`` → [0, 1, 2, 3, 4]; ``"0,3"`` → [0, 3]; ``"3"`` → [0, 1, 2].

    Raises:
        ValueError: any other form, or a negative or repeated seed.

    Example:
        >>> parse_seeds("2-4"), parse_seeds("1,5"), parse_seeds("2")
        ([2, 3, 4], [1, 5], [0, 1])
    """
    try:
        if "-" in text:
            first, last = (int(t) for t in text.split("-"))
            seeds = list(range(first, last + 1))
        elif "," in text:
            seeds = [int(t) for t in text.split(",")]
        else:
            seeds = list(range(int(text)))
    except ValueError:
        raise ValueError(f"--seeds must look like '0-4', '0,3,7' or '5', got {text!r}") from None
    if not seeds or min(seeds) < 0 or len(set(seeds)) != len(seeds):
        raise ValueError(f"--seeds must name distinct seeds >= 0, got {text!r}")
    return seeds


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m orthobook.experiments", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    listing = commands.add_parser("list", help="the registered configurations")
    listing.add_argument("pattern", nargs="?", default="*")
    for name, help_text in (("run", "run one configuration here"), ("sweep", "run configurations over seeds")):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("name", help="a configuration" + (" or a pattern like 'orhan2020-*'" if name == "sweep" else ""))
        command.add_argument("--seeds", default="1", type=parse_seeds)
        command.add_argument("--budget", default=None, type=parse_budget)
        command.add_argument("--device", default=None)
        command.add_argument("--out", default=None, help="the results store (default: results/)")
        command.add_argument("--no-batch", action="store_true", help="train seeds one by one, not batched")
        if name == "sweep":
            command.add_argument("--backend", choices=("local", "ray"), default="local")
            command.add_argument("--workers", type=int, default=None, help=f"local processes (default {default_workers()})")
            command.add_argument("--address", default=None, help="the Ray cluster's address")
            command.add_argument("--cpus-per-run", type=int, default=1)
            command.add_argument("--gpus", type=float, default=0.0, help="GPUs per Ray task")
    reporting = commands.add_parser("report", help="paper vs ours from the store")
    reporting.add_argument("pattern", nargs="?", default="*")
    reporting.add_argument("--out", default=None)
    reporting.add_argument("--faithfulness", action="store_true", help="the hyperparameters, paper vs ours")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = _parser().parse_args(argv)
    if args.command == "list":
        sys.stdout.write(report.listing(papers.select(args.pattern)) + "\n")
        return 0
    store = Store(args.out)
    if args.command == "report":
        experiments = papers.select(args.pattern)
        text = report.faithfulness_table(experiments) if args.faithfulness else report.comparison_table(experiments, store)
        sys.stdout.write(text + "\n")
        return 0
    options = dict(budget=args.budget or parse_budget(None), device=args.device, batch=not args.no_batch)
    if args.command == "run":
        run_group(papers.get(args.name), args.seeds, store, **options)
    else:
        sweep(
            papers.select(args.name),
            args.seeds,
            store,
            backend=args.backend,
            workers=args.workers,
            address=args.address,
            cpus_per_run=args.cpus_per_run,
            gpus=args.gpus,
            **options,
        )
    return 0
