"""Tests of orthobook.timing: interleaved medians of training-step times."""

from __future__ import annotations

import pytest
import torch

from orthobook.models import ElmanRNN
from orthobook.tasks import AddingTask
from orthobook.timing import step_seconds


def _run(hidden_size: int = 4) -> tuple[ElmanRNN, torch.optim.Optimizer]:
    model = ElmanRNN(2, hidden_size, 1)
    return model, torch.optim.SGD(model.parameters(), lr=0.01)


def test_every_label_gets_a_positive_median() -> None:
    times = step_seconds({"a": _run(), "b": _run(8)}, AddingTask(6), batch_size=3, repeats=3, warmup=1)
    assert set(times) == {"a", "b"}
    assert all(t > 0 for t in times.values())


def test_each_round_takes_one_optimizer_step() -> None:
    model, optimizer = _run()
    calls = []
    optimizer.register_step_post_hook(lambda *args: calls.append(1))
    step_seconds({"a": (model, optimizer)}, AddingTask(6), batch_size=2, repeats=4, warmup=2)
    assert len(calls) == 6


def test_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError, match="runs must hold"):
        step_seconds({}, AddingTask(6))
    with pytest.raises(ValueError, match="warmup must be a non-negative int"):
        step_seconds({"a": _run()}, AddingTask(6), warmup=-1)
    with pytest.raises(ValueError, match="repeats"):
        step_seconds({"a": _run()}, AddingTask(6), repeats=0)
