"""The cells that only the paper-scale run executes (``if mode == "full":``), run on real data.

The quick and default runs skip these cells, so without this test their code would first run
on a reader's GPU. Each chapter runs in quick mode in this process; then every full-only cell
runs with ``mode = "full"``, MNIST replaced by the committed real slice and training cut to
two steps: what is checked is that the code runs and prints its table, not its accuracy.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import jupytext
import matplotlib
import pytest
import torch

import orthobook.mnist
from conftest import chapter_sources
from orthobook.train import TrainConfig, train

FULL_ONLY = 'if mode == "full":'
CHAPTERS = [path for path in chapter_sources() if FULL_ONLY in path.read_text()]


def _slice_as_mnist(*args: object, **kwargs: object) -> orthobook.mnist.MNISTArrays:
    images, labels = orthobook.mnist.load_mnist_slice()
    return orthobook.mnist.MNISTArrays(images[:64], labels[:64], images[:32], labels[:32])


def _two_steps(model, task, optimizer, steps, config=None):
    return train(model, task, optimizer, 2, dataclasses.replace(config or TrainConfig(), batch_size=8))


@pytest.fixture
def chapter_process(monkeypatch: pytest.MonkeyPatch):
    """Agg figures, the slice for MNIST, and torch's global state restored afterwards."""
    matplotlib.use("Agg")
    monkeypatch.setattr("matplotlib.pyplot.show", lambda *args, **kwargs: None)
    monkeypatch.setattr(orthobook.mnist, "load_mnist", _slice_as_mnist)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
    torch.set_flush_denormal(False)
    matplotlib.pyplot.close("all")


def test_some_chapter_has_full_only_cells() -> None:
    assert CHAPTERS, f"no chapter has a cell with {FULL_ONLY!r}: update this test"


@pytest.mark.notebooks
@pytest.mark.parametrize("source", CHAPTERS, ids=[path.stem for path in CHAPTERS])
def test_full_only_cells_run(source: Path, chapter_process, capsys: pytest.CaptureFixture[str]) -> None:
    cells = [
        cell
        for cell in jupytext.read(source).cells
        if cell.cell_type == "code" and "remove-cell" not in cell.metadata.get("tags", [])
    ]
    namespace: dict[str, object] = {"__name__": "__chapter__"}
    cwd = os.getcwd()
    os.chdir(source.parent)
    try:
        full_cells = 0
        for cell in cells:
            if "parameters" in cell.metadata.get("tags", []):
                exec(cell.source, namespace)
                namespace.update(quick=True, device="cpu")
            elif FULL_ONLY in cell.source:
                capsys.readouterr()
                exec(cell.source, {**namespace, "mode": "full", "train": _two_steps})
                assert capsys.readouterr().out, "a full-only cell prints its results"
                full_cells += 1
            else:
                exec(cell.source, namespace)
    finally:
        os.chdir(cwd)
    assert full_cells, f"{source.name} has no cell with {FULL_ONLY!r}"
