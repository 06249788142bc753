"""The results store: one folder per configuration, one per seed, small files.

Layout under the store's root (``results/`` in the repository)::

    NAME/seed-S/summary.json   final and selected metrics, steps, wall time, seed, device,
                               versions, git commit, the configuration hash
    NAME/seed-S/log.jsonl      the training log (every tenth evaluation interval's step)
    NAME/seed-S/eval.jsonl     the validation scores the model selection saw
    NAME/_work/...             checkpoints and progress of unfinished runs (not committed)

A summary is only ever read through :meth:`Store.summary`, which refuses one whose
configuration hash differs from the registered configuration's (:class:`StaleResult`), so
a changed hyperparameter can never be reported with results of the old one.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from orthobook.experiments.config import Experiment

__all__ = ["Store", "StaleResult", "default_root", "find_root", "provenance"]


class StaleResult(ValueError):
    """A stored summary was made with other settings than the registered configuration."""


def default_root() -> Path:
    """``$ORTHOBOOK_RESULTS``, else ``results/`` in the current folder."""
    return Path(os.environ.get("ORTHOBOOK_RESULTS", "results"))


def find_root(start: str | os.PathLike | None = None) -> Path | None:
    """The store a reader of the book has: ``$ORTHOBOOK_RESULTS``, else the nearest
    ``results/`` holding a summary in ``start`` (default: the current folder) or a folder
    above it (a chapter runs in ``book/``, the store is ``results/`` beside it); ``None``
    when there is none (a notebook on its own, on Colab say)."""
    if "ORTHOBOOK_RESULTS" in os.environ:
        return Path(os.environ["ORTHOBOOK_RESULTS"])
    here = Path.cwd() if start is None else Path(start)
    for folder in (here, *here.resolve().parents):
        candidate = folder / "results"
        if next(candidate.glob("*/seed-*/summary.json"), None) is not None:
            return candidate
    return None


class Store:
    """A results store rooted at ``root`` (see the module docstring for the layout).

    Args:
        root: the folder; created on the first write.
    """

    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = Path(default_root() if root is None else root)

    def run_dir(self, experiment: Experiment, seed: int) -> Path:
        return self.root / experiment.name / f"seed-{seed}"

    def work_dir(self, experiment: Experiment, seeds: Iterable[int]) -> Path:
        """The folder of a group's checkpoint and progress (named by the hash and the seeds)."""
        label = "-".join(str(s) for s in seeds)
        path = self.root / experiment.name / "_work" / f"{experiment.config_hash()}-seeds-{label}"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def summary(self, experiment: Experiment, seed: int) -> dict[str, Any] | None:
        """The stored summary of ``experiment`` and ``seed``, or ``None`` when there is none.

        Raises:
            StaleResult: the summary's configuration hash is not ``experiment.config_hash()``.
        """
        path = self.run_dir(experiment, seed) / "summary.json"
        if not path.exists():
            return None
        summary = json.loads(path.read_text())
        if summary.get("config_hash") != experiment.config_hash():
            raise StaleResult(
                f"{path} was made with configuration hash {summary.get('config_hash')}, but the registered "
                f"{experiment.name} has {experiment.config_hash()}: its settings changed since the run. "
                f"Delete {path.parent} and run it again."
            )
        return summary

    def summaries(self, experiment: Experiment) -> list[dict[str, Any]]:
        """Every stored summary of ``experiment``, by seed (each checked as :meth:`summary`)."""
        folder = self.root / experiment.name
        seeds = sorted(int(p.name.removeprefix("seed-")) for p in folder.glob("seed-*")) if folder.exists() else []
        found = [self.summary(experiment, s) for s in seeds]
        return [s for s in found if s is not None]

    def log(self, experiment: Experiment, seed: int, kind: str = "log") -> list[dict[str, Any]]:
        """The records of ``log.jsonl`` (``kind="log"``) or ``eval.jsonl`` (``"eval"``)."""
        self.summary(experiment, seed)  # refuses a stale run
        path = self.run_dir(experiment, seed) / f"{kind}.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def write_run(
        self,
        experiment: Experiment,
        seed: int,
        summary: dict[str, Any],
        log: list[dict[str, Any]],
        evals: list[dict[str, Any]],
    ) -> None:
        """Write a finished run: the logs first, the summary last (its presence means done)."""
        folder = self.run_dir(experiment, seed)
        folder.mkdir(parents=True, exist_ok=True)
        for name, records in (("log.jsonl", log), ("eval.jsonl", evals)):
            (folder / name).write_text("".join(json.dumps(r, allow_nan=False) + "\n" for r in records))
        tmp = folder / "summary.json.tmp"
        tmp.write_text(json.dumps(summary, indent=1, allow_nan=False) + "\n")
        os.replace(tmp, folder / "summary.json")


def provenance(device: torch.device) -> dict[str, Any]:
    """Where and with what a run was made: device and its name, versions, git commit."""
    from orthobook import __version__

    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = _cpu_name()
    return {
        "device": device.type,
        "device_name": name,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "orthobook": __version__,
        "python": platform.python_version(),
        "git_commit": _git_commit(),
    }


def _cpu_name() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    """The commit of the package's checkout (with ``+dirty`` when it has changes), if any."""
    here = Path(__file__).resolve().parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "") if commit else None


