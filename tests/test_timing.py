"""Tests of orthobook.timing: interleaved medians of training-step times, under the numerics of
training (denormals flushed on the CPU unless asked otherwise)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from orthobook.tasks import AddingTask
from orthobook.timing import step_seconds
from orthobook.train import _flushes_denormals


class Net(nn.Module):
    """nn.RNN + linear readout, returning (batch, T, output_size)."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.rnn, self.readout = nn.RNN(2, hidden_size, batch_first=True), nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.readout(self.rnn(x)[0])


def _run(hidden_size: int = 4) -> tuple[Net, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = Net(hidden_size)
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


@pytest.mark.parametrize("flush_denormal", [True, False])
def test_steps_run_under_the_asked_denormal_mode_and_restore_it(flush_denormal: bool) -> None:
    previous = _flushes_denormals()
    if not torch.set_flush_denormal(previous):
        pytest.skip("this CPU cannot flush denormals")
    model, optimizer = _run()
    seen = []
    optimizer.register_step_post_hook(lambda *args: seen.append(_flushes_denormals()))
    try:
        torch.set_flush_denormal(not flush_denormal)
        step_seconds({"a": (model, optimizer)}, AddingTask(6), repeats=2, warmup=0, flush_denormal=flush_denormal)
        assert seen == [flush_denormal, flush_denormal]
        assert _flushes_denormals() is (not flush_denormal)
    finally:
        torch.set_flush_denormal(previous)


BAD_INPUTS = [
    ({"runs": {}}, ValueError, "runs must hold"),
    ({"warmup": -1}, ValueError, "warmup must be a non-negative int"),
    ({"warmup": 1.0}, TypeError, "warmup must be an int"),
    ({"repeats": 0}, ValueError, "repeats must be a positive int"),
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ({"batch_size": math.inf}, TypeError, "batch_size must be an int"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ({"flush_denormal": "yes"}, TypeError, "flush_denormal must be a bool"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_INPUTS, ids=[row[2] for row in BAD_INPUTS])
def test_rejects_bad_arguments(kwargs, error, match) -> None:
    arguments = {"runs": {"a": _run()}, **kwargs}
    with pytest.raises(error, match=match):
        step_seconds(arguments.pop("runs"), AddingTask(6), **arguments)
