"""Tests of orthobook.tasks: the Task protocol, the copy and adding tasks, labelled sequences,
their layouts, the (batch, T, output_size) output convention and the memoryless baselines."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from orthobook.tasks import (
    AddingTask,
    ClassificationTask,
    CopyTask,
    LanguageModelTask,
    Task,
    adding_baseline,
    classification_baseline,
    copy_baseline,
)


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


def _labelled(n: int = 12, T: int = 5) -> ClassificationTask:
    inputs = torch.arange(n * T, dtype=torch.float32).reshape(n, T, 1)
    return ClassificationTask(inputs, torch.arange(n) % 3)


def _text(n: int = 41, T: int = 4) -> LanguageModelTask:
    """A stream whose token i is i mod 7, in windows of T + 1."""
    return LanguageModelTask(torch.arange(n) % 7, T)


TASKS = [CopyTask(4), AddingTask(12), _labelled(), _text()]


@pytest.mark.parametrize("task", TASKS, ids=type)
@pytest.mark.parametrize("device", ["cpu", torch.device("cpu"), "meta"])
def test_sample_device(task, device):
    x, y = task.sample(2, _gen(), device=device)
    assert x.device == torch.device(device)
    assert y.device == torch.device(device)


@pytest.mark.parametrize("task", TASKS, ids=type)
@pytest.mark.parametrize(
    ("device", "error", "match"),
    [
        ("nonsense", ValueError, "device must name a torch device"),
        ("cuda:0" if not torch.cuda.is_available() else "mps", ValueError, "not available here"),  # the other backend
        (0, TypeError, "device must be a str or a torch.device"),
    ],
)
def test_sample_validates_device(task, device, error, match):
    """Issue 16: a bad device is a ValueError/TypeError naming it, not a raw RuntimeError."""
    with pytest.raises(error, match=match):
        task.sample(2, _gen(), device=device)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("task", TASKS, ids=type)
def test_sample_on_cuda_matches_cpu(task):
    x, y = task.sample(3, _gen(1), device="cuda")
    xc, yc = task.sample(3, _gen(1))
    assert x.is_cuda and y.is_cuda and torch.equal(x.cpu(), xc) and torch.equal(y.cpu(), yc)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_classification_task_with_data_on_cuda():
    task = ClassificationTask(_labelled().inputs.cuda(), _labelled().targets.cuda())
    x, y = task.sample(4, _gen(2), device="cuda")
    xc, yc = _labelled().sample(4, _gen(2))
    assert x.is_cuda and torch.equal(x.cpu(), xc) and torch.equal(y.cpu(), yc)
    assert task.baseline == _labelled().baseline
    logits = torch.zeros(4, 5, 3, device="cuda")
    assert task.loss(logits, y).item() == pytest.approx(math.log(3), rel=4 * torch.finfo(torch.float32).eps)


# The Task protocol and the output convention ------------------------------------------------------


@pytest.mark.parametrize("task", TASKS, ids=type)
def test_every_task_satisfies_the_protocol(task):
    assert isinstance(task, Task)
    assert not hasattr(task, "readout"), "one mechanism: the task slices the steps it scores"
    x, y = task.sample(3, _gen())
    assert x.dim() == 3 and x.shape[-1] == task.input_size
    T = x.shape[1]
    output = torch.zeros(3, T, task.output_size, requires_grad=True)
    loss = task.loss(output, y)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    assert output.grad is not None
    accuracy = task.accuracy(output.detach(), y)
    assert accuracy is None or 0 <= accuracy.item() <= 1
    assert isinstance(task.baseline, float) and task.baseline > 0


@pytest.mark.parametrize("task", TASKS, ids=type)
def test_loss_and_accuracy_want_one_output_per_step(task):
    x, y = task.sample(3, _gen())
    for shape in [(3, task.output_size), (3, x.shape[1], task.output_size + 1)]:
        with pytest.raises(ValueError, match=r"output must have shape \(batch, T, "):
            task.loss(torch.zeros(shape), y)
    with pytest.raises(TypeError, match="output"):
        task.loss(torch.zeros(3, x.shape[1], task.output_size, dtype=torch.long), y)


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
    loss = task.loss(torch.full((n, task.seq_len, 1), mean_target), y).item()
    squared = (y.double() - mean_target) ** 2
    standard_error = squared.std().item() / math.sqrt(n)
    assert task.baseline == adding_baseline(target) == expected
    assert abs(loss - expected) <= 5 * standard_error


def test_adding_accuracy_is_none():
    task = AddingTask(5)
    x, y = task.sample(3, _gen())
    output = torch.cat([torch.zeros(3, 4, 1), y.unsqueeze(1)], 1)  # (batch, T, 1), right at the end
    assert task.accuracy(output, y) is None
    assert task.loss(output, y).item() == 0.0


def test_adding_loss_reads_the_last_step_only():
    """Book: Eq. (tasks-adding-loss): the MSE of the output at t = T."""
    task = AddingTask(6)
    _, y = task.sample(4, _gen(), device="cpu")
    output = torch.randn(4, 6, 1, generator=_gen(1), dtype=torch.float64)
    expected = ((output[:, -1] - y.double()) ** 2).mean().item()
    rel = 8 * torch.finfo(torch.float64).eps
    assert task.loss(output, y.double()).item() == pytest.approx(expected, rel=rel)
    output[:, :-1] = 1e6  # the earlier steps do not count
    assert task.loss(output, y.double()).item() == pytest.approx(expected, rel=rel)


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


# ClassificationTask -------------------------------------------------------------------------------


def test_classification_task_batches_are_distinct_examples():
    task = _labelled()
    x, y = task.sample(5, _gen(0))
    assert x.shape == (5, 5, 1) and y.shape == (5,) and task.input_size == 1 and len(task) == 12
    rows = (x[:, 0, 0] / 5).long()
    assert len(set(rows.tolist())) == 5, "no example twice in a batch"
    assert torch.equal(y, rows % 3), "inputs and labels stay paired"
    everything, labels = task.sample(12, _gen(1))
    assert sorted((everything[:, 0, 0] / 5).long().tolist()) == list(range(12))
    again, _ = task.sample(5, _gen(0))
    assert torch.equal(again, x)


def test_classification_task_reads_the_last_step():
    task = _labelled()
    last = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0], [0.0, 5.0, 0.0]])
    output = torch.randn(3, 4, 3, generator=_gen(2))
    output[:, -1] = last
    target = torch.tensor([0, 1, 2])
    assert task.accuracy(output, target).item() == pytest.approx(2 / 3)
    assert torch.equal(task.loss(output, target), F.cross_entropy(last, target))


def test_classification_output_size_from_labels_or_given():
    inputs = torch.zeros(4, 2, 1)
    assert ClassificationTask(inputs, torch.tensor([0, 3, 1, 3])).output_size == 4
    assert ClassificationTask(inputs, torch.tensor([0, 3, 1, 3]), num_classes=10).output_size == 10
    with pytest.raises(ValueError, match=r"targets must lie in 0..2 for num_classes=3, found 3"):
        ClassificationTask(inputs, torch.tensor([0, 3, 1, 3]), num_classes=3)
    with pytest.raises(ValueError, match="non-negative"):
        ClassificationTask(inputs, torch.tensor([0, -1, 1, 3]))
    with pytest.raises(TypeError, match="num_classes must be an int"):
        ClassificationTask(inputs, torch.tensor([0, 1, 1, 3]), num_classes=10.0)


@settings(max_examples=30, deadline=None)
@given(labels=st.lists(st.integers(0, 6), min_size=1, max_size=60), extra=st.integers(0, 3))
def test_classification_baseline_is_loss_of_predicting_the_label_frequencies(labels, extra):
    """Book: Eq. (mnist-baseline): the cross-entropy of predicting q on the data q was counted on is H(q)."""
    targets = torch.tensor(labels)
    num_classes = max(labels) + 1 + extra
    task = ClassificationTask(torch.zeros(len(labels), 3, 1), targets, num_classes=num_classes)
    q = torch.bincount(targets, minlength=num_classes).double() / len(labels)
    prior = q.log().expand(len(labels), 3, num_classes)  # the same prediction for every example
    loss = task.loss(prior, targets).item()
    tol = 10 * num_classes * torch.finfo(torch.float64).eps * max(1.0, math.log(num_classes))
    assert task.baseline == classification_baseline(targets, num_classes)
    assert abs(loss - task.baseline) <= tol
    assert 0 <= task.baseline <= math.log(num_classes) + tol


def test_classification_baseline_values():
    assert classification_baseline(torch.tensor([2, 2, 2])) == 0.0
    rel = 8 * torch.finfo(torch.float64).eps
    assert classification_baseline(torch.arange(10)) == pytest.approx(math.log(10), rel=rel)
    with pytest.raises(ValueError, match="non-empty"):
        classification_baseline(torch.zeros(0, dtype=torch.long))
    with pytest.raises(TypeError, match="int64"):
        classification_baseline(torch.tensor([0.0, 1.0]))


LABELS = torch.zeros(4, dtype=torch.long)


@pytest.mark.parametrize(
    "inputs, targets, error, match",
    [
        (torch.zeros(4, 3), LABELS, ValueError, r"inputs must have shape \(n, T, input_size\)"),
        (torch.zeros(4, 3, 1, dtype=torch.long), LABELS, TypeError, "inputs must be a floating-point"),
        (torch.zeros(4, 3, 1), torch.zeros(4), TypeError, "targets must be an int64 tensor"),
        (torch.zeros(4, 3, 1), torch.zeros(5, dtype=torch.long), ValueError, r"targets must have shape \(4,\)"),
        (torch.zeros(4, 3, 1), [0, 1, 2, 3], TypeError, "targets must be a torch.Tensor"),
        (torch.zeros(0, 3, 1), torch.zeros(0, dtype=torch.long), ValueError, "non-empty"),
    ],
)
def test_classification_task_errors(inputs, targets, error, match):
    with pytest.raises(error, match=match):
        ClassificationTask(inputs, targets)


def test_classification_task_batch_size_errors():
    task = _labelled()
    with pytest.raises(ValueError, match="batch_size must be at most the 12 examples"):
        task.sample(13)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        task.sample(0)
    with pytest.raises(TypeError, match="batch_size must be an int"):
        task.sample(True)


@pytest.mark.parametrize("task", [CopyTask(5, n_copy=3), AddingTask(10)], ids=["copy", "adding"])
def test_batches_are_drawn_on_the_generators_device_then_moved(task) -> None:
    # Note [drawing device]: a CPU generator draws on the CPU; without one the draws happen on
    # ``device`` itself (here meta, which holds no values, so nothing is drawn on the host).
    x, y = task.sample(4, torch.Generator().manual_seed(0), "meta")
    assert x.device.type == "meta" and y.device.type == "meta"
    x_meta, _ = task.sample(4, None, "meta")
    assert x_meta.device.type == "meta" and x_meta.shape == x.shape


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_generator_draws_on_the_gpu() -> None:
    x, y = AddingTask(10).sample(4, torch.Generator(device="cuda").manual_seed(0), "cuda")
    assert x.is_cuda and y.is_cuda


# LanguageModelTask ----------------------------------------------------------------------------


def test_language_model_windows_are_disjoint_and_targets_the_next_token():
    stream = torch.randint(0, 5, (43,), generator=_gen(3))
    task = LanguageModelTask(stream, T=6)
    assert len(task) == 7 and task.input_size == task.output_size == 5
    x, y = task.sample(len(task), _gen(4))
    assert x.shape == (7, 6, 5) and y.shape == (7, 6) and x.dtype == torch.float32
    read = x.argmax(-1)
    assert torch.equal(x.sum(-1), torch.ones(7, 6)), "one-hot inputs"
    starts = []
    for b in range(7):
        (start,) = [i for i in range(7) if torch.equal(read[b], stream[6 * i : 6 * i + 6])]
        assert torch.equal(y[b], stream[6 * start + 1 : 6 * start + 7])
        starts.append(start)
    assert sorted(starts) == list(range(7)), "a batch of len(task) windows is every window once"


def test_language_model_loss_scores_every_step_and_baseline_is_the_unigram_entropy():
    stream = torch.tensor([0, 1, 1, 2, 1, 1, 0, 1, 2])
    task = LanguageModelTask(stream, T=2, vocab_size=4)
    q = torch.bincount(stream, minlength=4).double() / len(stream)
    entropy = -(q[q > 0] * q[q > 0].log()).sum().item()
    assert task.baseline == pytest.approx(entropy) and task.output_size == 4
    x, y = task.sample(4, _gen(0))
    logits = torch.randn(4, 2, 4, generator=_gen(1))
    expected = F.cross_entropy(logits.reshape(8, 4), y.reshape(8))
    assert task.loss(logits, y).item() == pytest.approx(expected.item())
    perfect = F.one_hot(y, 4).float() * 10
    assert task.accuracy(perfect, y).item() == 1.0


@pytest.mark.parametrize(
    ("stream", "T", "vocab_size", "error", "match"),
    [
        (torch.arange(4), 4, None, ValueError, "at least T"),
        (torch.arange(10).float(), 2, None, TypeError, "int64"),
        (torch.arange(10).reshape(2, 5), 2, None, ValueError, "1-D"),
        (torch.arange(10), 2, 5, ValueError, r"0\.\.4"),
        (torch.arange(10), 0, None, ValueError, "T"),
    ],
)
def test_language_model_task_errors(stream, T, vocab_size, error, match):
    with pytest.raises(error, match=match):
        LanguageModelTask(stream, T, vocab_size)


def test_language_model_batch_size_errors():
    with pytest.raises(ValueError, match="at most the 10 windows"):
        _text().sample(11, _gen())
