"""Sweeps: the runs of one or more configurations over seeds, on this machine or on Ray.

The local backend runs the groups (a group is one seed, or the seeds of an Elman-type
configuration batched as one model) in worker processes, one per core, or one per GPU on
a machine that has GPUs, each worker on its share of the cores. The Ray backend submits one
Ray task per group, each requesting its CPUs (and a GPU with ``gpus=1``), and every task
writes into the same store (a folder all nodes see). Ray is imported only here and only for
``backend="ray"``: the optional extra ``orthobook[cluster]``.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import os
import threading
import time
from typing import Any

import torch

from orthobook.experiments import build
from orthobook.experiments.config import Experiment
from orthobook.experiments.runner import Budget, run_group
from orthobook.experiments.store import Store

__all__ = ["groups", "sweep", "default_workers"]


def default_workers() -> int:
    """One worker per GPU when there are GPUs, else one per core."""
    return torch.cuda.device_count() or os.cpu_count() or 1


def groups(experiments: list[Experiment], seeds: list[int], workers: int, batch: bool) -> list[tuple[Experiment, list[int]]]:
    """The units of work: per configuration, its seeds split into at most ``workers`` batches
    (Elman-type models with ``batch``), else one seed each."""
    units = []
    for e in experiments:
        if batch and build.batchable(e):
            k = max(1, min(workers, len(seeds)))
            units += [(e, seeds[i::k]) for i in range(k) if seeds[i::k]]
        else:
            units += [(e, [s]) for s in seeds]
    return units


def _exit_with_parent(parent: int, poll: float = 1.0) -> None:
    """End this worker process once ``parent`` (the sweep that started it) is gone, even
    killed by SIGKILL: an orphaned worker would go on writing into the store. Its run
    resumes from its last checkpoint when the sweep is started again."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="orthobook-parent-watch", daemon=True).start()


def _work(
    experiment: Experiment,
    seeds: list[int],
    root: str,
    budget: Budget,
    device: str | None,
    threads: int,
    parent: int | None = None,
) -> list[dict[str, Any]]:
    if parent is not None:
        _exit_with_parent(parent)
    torch.set_num_threads(threads)
    return run_group(experiment, seeds, Store(root), budget=budget, device=device, progress=False)


def sweep(
    experiments: list[Experiment],
    seeds: list[int],
    store: Store,
    *,
    budget: Budget = Budget(),
    backend: str = "local",
    workers: int | None = None,
    device: str | None = None,
    batch: bool = True,
    address: str | None = None,
    cpus_per_run: int = 1,
    gpus: float = 0.0,
) -> list[dict[str, Any]]:
    """Run every configuration of ``experiments`` for ``seeds`` into ``store``.

    Finished runs are skipped (their summaries are read), unfinished ones resume.

    Args:
        experiments, seeds, store, budget, device, batch: as for
            :func:`~orthobook.experiments.runner.run_group`.
        backend: ``"local"`` (processes) or ``"ray"``.
        workers: local worker processes (default :func:`default_workers`).
        address: the Ray cluster (``None``: an instance already started by ``ray.init``
            in this process, or a new local one).
        cpus_per_run, gpus: what each Ray task requests.

    Returns:
        Every summary, configuration by configuration, seed by seed.

    Raises:
        ValueError: unknown ``backend``.
        ModuleNotFoundError: ``backend="ray"`` without Ray installed (``pip install orthobook[cluster]``).
    """
    workers = default_workers() if workers is None else workers
    units = groups(experiments, seeds, workers, batch)
    if backend == "local":
        _local(units, store, budget, device, workers)
    elif backend == "ray":
        _ray(units, store, budget, device, address, cpus_per_run, gpus)
    else:
        raise ValueError(f"backend must be 'local' or 'ray', got {backend!r}")
    return [store.summary(e, s) for e in experiments for s in seeds]


def _local(units: list[tuple[Experiment, list[int]]], store: Store, budget: Budget, device: str | None, workers: int) -> None:
    if workers == 1 or len(units) == 1:
        for e, seeds in units:
            run_group(e, seeds, store, budget=budget, device=device)
        return
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")  # no forked torch state in the workers
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [
            pool.submit(_work, e, seeds, str(store.root), budget, device, threads, os.getpid()) for e, seeds in units
        ]
        for future in concurrent.futures.as_completed(futures):
            future.result()


def _ray(
    units: list[tuple[Experiment, list[int]]],
    store: Store,
    budget: Budget,
    device: str | None,
    address: str | None,
    cpus: int,
    gpus: float,
) -> None:
    try:
        import ray
    except ImportError as error:
        raise ModuleNotFoundError(
            "the Ray backend needs Ray: pip install 'orthobook[cluster]'", name="ray"
        ) from error
    if not ray.is_initialized():
        ray.init(address=address)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus)(_work)
    root = str(store.root.resolve())
    ray.get([task.remote(e, seeds, root, budget, device, cpus) for e, seeds in units])
