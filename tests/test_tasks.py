"""Tests of orthobook.tasks: the copy and adding tasks, their layouts and memoryless baselines."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.tasks import AddingTask, CopyTask, adding_baseline, copy_baseline


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# CopyTask layouts -----------------------------------------------------------------------------------


def _check_copy_codes(task: CopyTask, codes: torch.Tensor, y: torch.Tensor) -> None:
    """The layout of the book's page "Data and tasks", position by position."""
    batch = codes.shape[0]
    data = codes[:, : task.n_copy]
    assert ((data >= 1) & (data <= task.n_symbols)).all()
    cue = task.delay + task.n_copy - 1
    expected = torch.zeros(batch, task.seq_len, dtype=torch.long)
    expected[:, : task.n_copy] = data
    expected[:, cue] = task.n_symbols + 1
    assert torch.equal(codes, expected)
    target = torch.cat([torch.zeros(batch, task.delay + task.n_copy, dtype=torch.long), data], 1)
    assert torch.equal(y, target)


def test_copy_scalar_layout():
    task = CopyTask(delay=5, n_symbols=8, n_copy=10, layout="scalar")
    x, y = task.sample(6, _gen())
    assert x.shape == (6, 25, 1) and x.dtype == torch.float32
    assert y.shape == (6, 25) and y.dtype == torch.int64
    assert task.seq_len == 25 and task.input_size == 1 and task.output_size == 9
    codes = x.squeeze(-1).long()
    assert torch.equal(codes.float(), x.squeeze(-1))
    _check_copy_codes(task, codes, y)


def test_copy_onehot_layout():
    task = CopyTask(delay=4, n_symbols=5, n_copy=3, layout="onehot")
    x, y = task.sample(7, _gen())
    assert x.shape == (7, 10, 7) and x.dtype == torch.float32
    assert task.input_size == 7
    assert torch.equal(x.sum(-1), torch.ones(7, 10)), "each step must be exactly one-hot"
    _check_copy_codes(task, x.argmax(-1), y)


def test_copy_layouts_carry_the_same_sequence():
    scalar, onehot = CopyTask(3, layout="scalar"), CopyTask(3, layout="onehot")
    xs, ys = scalar.sample(4, _gen(5))
    xo, yo = onehot.sample(4, _gen(5))
    assert torch.equal(xs.squeeze(-1).long(), xo.argmax(-1))
    assert torch.equal(ys, yo)


@settings(max_examples=25, deadline=None)
@given(
    delay=st.integers(1, 12),
    n_symbols=st.integers(1, 9),
    n_copy=st.integers(1, 6),
    layout=st.sampled_from(["scalar", "onehot"]),
    seed=st.integers(0, 2**16),
)
def test_copy_layout_property(delay, n_symbols, n_copy, layout, seed):
    task = CopyTask(delay, n_symbols, n_copy, layout)
    x, y = task.sample(3, _gen(seed))
    assert x.shape == (3, delay + 2 * n_copy, task.input_size)
    codes = x.squeeze(-1).long() if layout == "scalar" else x.argmax(-1)
    _check_copy_codes(task, codes, y)


def test_copy_delay_one_puts_cue_right_after_data():
    task = CopyTask(delay=1, n_symbols=3, n_copy=2)
    x, _ = task.sample(2, _gen())
    assert torch.equal(x[:, 2, 0], torch.full((2,), 4.0))


# Reproducibility and device -----------------------------------------------------------------------


@pytest.mark.parametrize("task", [CopyTask(4), CopyTask(4, layout="onehot"), AddingTask(12), AddingTask(12, "mean")])
def test_sample_is_seeded(task):
    x1, y1 = task.sample(5, _gen(3))
    state = torch.get_rng_state()
    x2, y2 = task.sample(5, _gen(3))
    assert torch.equal(torch.get_rng_state(), state), "sampling with a generator moved the global state"
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    x3, _ = task.sample(5, _gen(4))
    assert not torch.equal(x1, x3)


@pytest.mark.parametrize("task", [CopyTask(4), AddingTask(12)])
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "meta"])
def test_sample_device(task, device):
    x, y = task.sample(2, _gen(), device=device)
    assert x.device == torch.device(device)
    assert y.device == torch.device(device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_sample_on_cuda_matches_cpu():
    task = CopyTask(4)
    x, y = task.sample(3, _gen(1), device="cuda")
    xc, yc = task.sample(3, _gen(1))
    assert x.is_cuda and torch.equal(x.cpu(), xc) and torch.equal(y.cpu(), yc)


# Copy baseline and accuracy -----------------------------------------------------------------------


def _memoryless_copy_logits(task: CopyTask, batch: int) -> torch.Tensor:
    """Blank with certainty for the first delay + n_copy steps, uniform over data afterwards."""
    logits = torch.full((batch, task.seq_len, task.output_size), -math.inf, dtype=torch.float64)
    logits[:, : task.delay + task.n_copy, 0] = 0.0
    logits[:, task.delay + task.n_copy :, 1:] = 0.0
    return logits


@settings(max_examples=25, deadline=None)
@given(delay=st.integers(1, 60), n_symbols=st.integers(1, 12), n_copy=st.integers(1, 12))
def test_copy_baseline_is_loss_of_memoryless_strategy(delay, n_symbols, n_copy):
    """Book: Eq. (tasks-copy-baseline), against the loss of the strategy it describes."""
    task = CopyTask(delay, n_symbols, n_copy)
    _, y = task.sample(4, _gen())
    loss = task.loss(_memoryless_copy_logits(task, 4), y)
    assert task.baseline == copy_baseline(delay, n_symbols, n_copy)
    tol = 10 * task.seq_len * torch.finfo(torch.float64).eps * max(1.0, math.log(n_symbols))
    assert abs(loss.item() - task.baseline) <= tol


def test_copy_baseline_paper_value():
    """Arjovsky et al. 2016: 10 log 8 / (T + 20)."""
    assert copy_baseline(100) == pytest.approx(10 * math.log(8) / 120, rel=4 * torch.finfo(torch.float64).eps)


def test_copy_accuracy():
    task = CopyTask(5, n_symbols=4, n_copy=3)
    _, y = task.sample(8, _gen())
    perfect = torch.nn.functional.one_hot(y, task.output_size).float()
    assert task.accuracy(perfect, y).item() == 1.0
    blanks = torch.zeros_like(perfect)
    blanks[..., 0] = 1.0
    assert task.accuracy(blanks, y).item() == 0.0, "a blank is never a data symbol"
    # One recalled symbol wrong out of batch · n_copy; the blank outputs before the recall do not count.
    wrong = perfect.clone()
    wrong[0, -1] = blanks[0, -1]
    wrong[:, 0] = wrong[:, 0].roll(1, -1)
    assert task.accuracy(wrong, y).item() == pytest.approx(1 - 1 / (8 * 3))


# AddingTask ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("seq_len", [2, 3, 10, 31])
@pytest.mark.parametrize("target", ["sum", "mean"])
def test_adding_layout(seq_len, target):
    task = AddingTask(seq_len, target)
    x, y = task.sample(64, _gen(seq_len))
    assert x.shape == (64, seq_len, 2) and x.dtype == torch.float32
    assert y.shape == (64, 1) and y.dtype == torch.float32
    values, marks = x[..., 0], x[..., 1]
    assert ((values >= 0) & (values < 1)).all()
    assert set(marks.unique().tolist()) <= {0.0, 1.0}
    half = seq_len // 2
    assert torch.equal(marks[:, :half].sum(1), torch.ones(64)), "one marker in the first half"
    assert torch.equal(marks[:, half:].sum(1), torch.ones(64)), "one marker in the second half"
    for b in range(64):
        i, j = marks[b].nonzero().flatten().tolist()
        expected = values[b, i] + values[b, j]
        if target == "mean":
            expected = expected / 2
        assert y[b, 0].item() == pytest.approx(expected.item(), abs=4 * torch.finfo(torch.float32).eps)


def test_adding_markers_cover_both_halves():
    x, _ = AddingTask(8).sample(2000, _gen())
    positions = x[..., 1].nonzero()[:, 1]
    assert set(positions.tolist()) == set(range(8))


@pytest.mark.parametrize(("target", "expected"), [("sum", 1 / 6), ("mean", 1 / 24)])
def test_adding_baseline_monte_carlo(target, expected):
    """Book: Eq. (tasks-adding-baseline): the MSE of predicting the mean target is Var(target)."""
    task = AddingTask(20, target)
    n = 200_000
    _, y = task.sample(n, _gen(11))
    mean_target = 1.0 if target == "sum" else 0.5
    loss = task.loss(torch.full_like(y, mean_target), y).item()
    squared = (y.double() - mean_target) ** 2
    standard_error = squared.std().item() / math.sqrt(n)
    assert task.baseline == adding_baseline(target) == expected
    assert abs(loss - expected) <= 5 * standard_error


def test_adding_accuracy_is_none():
    task = AddingTask(5)
    x, y = task.sample(3, _gen())
    assert task.accuracy(y, y) is None
    assert task.loss(y, y).item() == 0.0


# Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda: CopyTask(delay=0), ValueError, "delay must be a positive int"),
        (lambda: CopyTask(delay=2.0), TypeError, "delay must be an int"),
        (lambda: CopyTask(3, n_symbols=0), ValueError, "n_symbols"),
        (lambda: CopyTask(3, n_copy=0), ValueError, "n_copy"),
        (lambda: CopyTask(3, layout="x"), ValueError, "layout must be one of 'scalar', 'onehot'"),
        (lambda: AddingTask(seq_len=1), ValueError, "seq_len must be at least 2"),
        (lambda: AddingTask(seq_len=0), ValueError, "seq_len must be a positive int"),
        (lambda: AddingTask(10, target="max"), ValueError, "target must be one of 'sum', 'mean'"),
        (lambda: CopyTask(3).sample(0), ValueError, "batch_size must be a positive int"),
        (lambda: AddingTask(4).sample(0), ValueError, "batch_size must be a positive int"),
        (lambda: AddingTask(4).sample(2.0), TypeError, "batch_size must be an int"),
        (lambda: copy_baseline(0), ValueError, "delay"),
        (lambda: adding_baseline("max"), ValueError, "target must be one of"),
    ],
)
def test_bad_input(make, error, match):
    with pytest.raises(error, match=match):
        make()
