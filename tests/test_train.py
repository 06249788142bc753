"""Tests of orthobook.train: the training loop, its log, checkpoints, NaN guard, probes, clipping."""

from __future__ import annotations

import json
import math

import pytest
import torch

from orthobook.models import ElmanRNN
from orthobook.tasks import AddingTask, CopyTask
from orthobook.train import History, TrainingDiverged, evaluate, train

KEYS = {"step", "loss", "accuracy", "grad_norm"}


def _model(seed: int = 0, hidden_size: int = 8, input_size: int = 2, output_size: int = 1, readout="last") -> ElmanRNN:
    torch.manual_seed(seed)
    return ElmanRNN(input_size, hidden_size, output_size, readout=readout)


def _adam(model, lr=1e-2):
    return torch.optim.Adam(model.parameters(), lr=lr)


class InfAt:
    """Wraps a task so that its loss is +inf from call ``bad_step`` on (a deterministic divergence)."""

    def __init__(self, task, bad_step: int) -> None:
        self.task, self.bad_step, self.calls = task, bad_step, 0

    def sample(self, batch_size, generator=None, device="cpu"):
        return self.task.sample(batch_size, generator, device)

    def loss(self, output, target):
        loss = self.task.loss(output, target)
        self.calls += 1
        return loss + math.inf if self.calls > self.bad_step else loss

    def accuracy(self, output, target):
        return self.task.accuracy(output, target)


def _read_log(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


# Learning -----------------------------------------------------------------------------------------


def test_loss_decreases_on_easy_adding_task():
    task = AddingTask(4)
    model = _model(0, hidden_size=16)
    history = train(model, task, _adam(model), 150, batch_size=32, seed=0, progress=False)
    start = sum(history.loss[:10]) / 10
    assert history.final_loss(20) < 0.5 * start
    assert history.final_loss(20) < task.baseline, "should beat the memoryless baseline on T = 4"
    assert history.diverged_at is None
    assert history.step == list(range(150))


# Log ----------------------------------------------------------------------------------------------


def test_log_has_one_record_per_logged_step(tmp_path):
    log = tmp_path / "logs" / "run.jsonl"
    task = CopyTask(2, n_symbols=3, n_copy=2)
    model = ElmanRNN(1, 8, task.output_size, readout="all")
    history = train(model, task, _adam(model), 10, batch_size=4, log_every=3, log_path=log, progress=False)
    records = _read_log(log)
    assert [r["step"] for r in records] == [0, 3, 6, 9]
    assert all(set(r) == KEYS for r in records)
    assert records == history.records()
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in records)
    assert all(r["grad_norm"] > 0 for r in records)


def test_log_is_rewritten_not_appended(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text('{"step": 99, "loss": 0.0, "accuracy": null, "grad_norm": 0.0}\n')
    model = _model()
    train(model, AddingTask(4), _adam(model), 3, batch_size=4, log_path=log, progress=False)
    assert [r["step"] for r in _read_log(log)] == [0, 1, 2]


# Checkpoints --------------------------------------------------------------------------------------


def test_resume_continues_the_same_curve(tmp_path):
    task = AddingTask(5)
    kwargs = dict(batch_size=8, seed=3, progress=False)

    straight_model = _model(0)
    straight_log = tmp_path / "straight.jsonl"
    straight = train(straight_model, task, _adam(straight_model), 40, log_path=straight_log, **kwargs)

    checkpoint, log = tmp_path / "ck" / "run.pt", tmp_path / "resumed.jsonl"
    first_model = _model(0)
    first = train(first_model, task, _adam(first_model), 20, checkpoint_path=checkpoint, log_path=log, **kwargs)
    assert checkpoint.exists()
    assert first.loss == straight.loss[:20]

    # A fresh model (different initial weights) and optimizer, as after a killed process.
    resumed_model = _model(1)
    resumed = train(resumed_model, task, _adam(resumed_model), 40, checkpoint_path=checkpoint, log_path=log, **kwargs)
    assert resumed.step == list(range(40))
    assert resumed.loss == straight.loss
    assert resumed.grad_norm == straight.grad_norm
    for (name, p), q in zip(straight_model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(p, q), name
    steps = [r["step"] for r in _read_log(log)]
    assert steps == list(range(40)), "the log after resume has each step once"
    assert _read_log(log) == _read_log(straight_log)


def test_periodic_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = _model()
    train(model, AddingTask(4), _adam(model), 7, batch_size=4, checkpoint_path=checkpoint, checkpoint_every=3, progress=False)
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 7
    assert state["history"]["step"] == list(range(7))
    assert not (tmp_path / "run.pt.tmp").exists()


def test_resume_of_finished_run_does_nothing(tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = _model()
    first = train(model, AddingTask(4), _adam(model), 5, batch_size=4, checkpoint_path=checkpoint, progress=False)
    before = [p.clone() for p in model.parameters()]
    again = train(model, AddingTask(4), _adam(model), 5, batch_size=4, checkpoint_path=checkpoint, progress=False)
    assert again.loss == first.loss
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


# Non-finite loss ----------------------------------------------------------------------------------


def test_nonfinite_loss_raises_with_step_and_last_record():
    model = _model()
    task = InfAt(AddingTask(4), bad_step=5)
    with pytest.raises(TrainingDiverged, match=r"loss became inf at step 5") as info:
        train(model, task, _adam(model), 20, batch_size=4, progress=False)
    assert info.value.step == 5
    assert info.value.last_finite is not None and info.value.last_finite["step"] == 4
    assert set(info.value.last_finite) == KEYS and math.isfinite(info.value.last_finite["loss"])
    assert isinstance(info.value, FloatingPointError)


def test_huge_learning_rate_diverges():
    torch.manual_seed(0)
    model = ElmanRNN(2, 16, 1, nonlinearity="identity")
    with pytest.raises(TrainingDiverged, match="loss became (nan|inf) at step") as info:
        train(model, AddingTask(10), torch.optim.SGD(model.parameters(), lr=1e3), 50, progress=False)
    assert 0 < info.value.step < 50
    assert info.value.last_finite["step"] == info.value.step - 1


def test_nonfinite_loss_at_first_step_has_no_last_record():
    model = _model()
    with pytest.raises(TrainingDiverged, match="at step 0") as info:
        train(model, InfAt(AddingTask(4), bad_step=0), _adam(model), 5, batch_size=4, progress=False)
    assert info.value.last_finite is None


def test_nonfinite_loss_stop(tmp_path):
    model = _model()
    calls = []
    history = train(
        model,
        InfAt(AddingTask(4), bad_step=6),
        _adam(model),
        20,
        batch_size=4,
        on_nonfinite="stop",
        probes={"calls": lambda m: calls.append(1) or len(calls)},
        probe_every=4,
        progress=False,
    )
    assert history.diverged_at == 6
    assert history.step == list(range(6))
    assert all(math.isfinite(loss) for loss in history.loss)
    assert history.probes["calls"] == [(4, 1)], "no final probe after a divergence"


# Probes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "expected"), [(10, [4, 8, 10]), (8, [4, 8])])
def test_probes_at_probe_every_and_end(steps, expected):
    model = _model()
    grad_enabled = []

    def singular_values(m):
        grad_enabled.append(torch.is_grad_enabled())
        return torch.linalg.svdvals(m.recurrences[0]())

    history = train(
        model, AddingTask(4), _adam(model), steps, batch_size=4, probes={"s": singular_values}, probe_every=4, progress=False
    )
    assert [step for step, _ in history.probes["s"]] == expected
    assert grad_enabled == [False] * len(expected), "probes run under no_grad"
    step, value = history.probes["s"][-1]
    assert isinstance(value, list) and len(value) == 8
    assert value == pytest.approx(torch.linalg.svdvals(model.recurrences[0]().detach()).tolist())


# Clipping -----------------------------------------------------------------------------------------


def test_clip_records_preclip_norm_and_bounds_the_step():
    task, seed, batch_size, lr, clip = AddingTask(6), 5, 16, 0.1, 1e-3
    model = _model(2)
    before = [p.detach().clone() for p in model.parameters()]

    reference = _model(2)
    x, y = task.sample(batch_size, torch.Generator().manual_seed(seed))
    task.loss(reference(x), y).backward()
    preclip = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in reference.parameters()])).item()
    assert preclip > 10 * clip, "the test needs clipping to be active"

    history = train(
        model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, batch_size=batch_size, seed=seed, clip=clip, progress=False
    )
    eps = torch.finfo(torch.float32).eps
    assert history.grad_norm[0] == pytest.approx(preclip, rel=100 * eps)
    moved = torch.linalg.vector_norm(torch.cat([(p.detach() - q).flatten() for p, q in zip(model.parameters(), before)]))
    # The float32 update θ - lr·g is rounded entrywise: up to eps/2 · |θ_i| each.
    rounding = eps * torch.linalg.vector_norm(torch.cat([q.flatten() for q in before])).item()
    assert moved.item() <= lr * clip * (1 + 10 * eps) + rounding
    # clip_grad_norm_ scales by clip / (norm + 1e-6): the step reaches the limit, not less.
    assert moved.item() >= lr * clip * (1 - 10 * eps - 1e-6 / preclip) - rounding


def test_no_clip_moves_by_full_gradient():
    task, lr = AddingTask(6), 0.1
    model = _model(2)
    before = [p.detach().clone() for p in model.parameters()]
    history = train(model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, batch_size=16, seed=5, progress=False)
    moved = torch.linalg.vector_norm(torch.cat([(p.detach() - q).flatten() for p, q in zip(model.parameters(), before)]))
    eps = torch.finfo(torch.float32).eps
    rounding = eps * torch.linalg.vector_norm(torch.cat([q.flatten() for q in before])).item()
    assert moved.item() == pytest.approx(lr * history.grad_norm[0], rel=10 * eps, abs=rounding)


# evaluate -----------------------------------------------------------------------------------------


def test_evaluate_copy_task():
    task = CopyTask(2, n_symbols=3, n_copy=2)
    model = _model(readout="all", input_size=1, output_size=task.output_size)
    model.train()
    result = evaluate(model, task, batch_size=32, seed=7)
    x, y = task.sample(32, torch.Generator().manual_seed(7))
    with torch.no_grad():
        output = model(x)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(task.loss(output, y).item(), rel=10 * torch.finfo(torch.float32).eps)
    assert result["accuracy"] == task.accuracy(output, y).item()
    assert model.training, "evaluate restores the training mode"
    model.eval()
    evaluate(model, task, batch_size=4)
    assert not model.training


def test_evaluate_adding_task_has_no_accuracy():
    result = evaluate(_model(), AddingTask(4), batch_size=16)
    assert result["accuracy"] is None and math.isfinite(result["loss"])


def test_evaluate_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        evaluate(_model(), AddingTask(4), batch_size=0)


# History ------------------------------------------------------------------------------------------


def test_history_helpers():
    history = History()
    history.append({"step": 0, "loss": 2.0, "accuracy": None, "grad_norm": 1.0})
    history.append({"step": 1, "loss": math.nan, "accuracy": None, "grad_norm": 1.0})
    history.append({"step": 2, "loss": 4.0, "accuracy": None, "grad_norm": 1.0})
    assert history.final_loss(window=1) == 4.0
    assert history.last_finite()["step"] == 2
    assert History().last_finite() is None


# Bad arguments ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"steps": 0}, ValueError, "steps must be a positive int"),
        ({"steps": 2.0}, TypeError, "steps must be an int"),
        ({"clip": 0}, ValueError, "clip must be positive"),
        ({"clip": -1.0}, ValueError, "clip must be non-negative"),
        ({"clip": "1"}, TypeError, "clip must be a real number"),
        ({"on_nonfinite": "x"}, ValueError, "on_nonfinite must be one of 'raise', 'stop'"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
        ({"log_every": 0}, ValueError, "log_every must be a positive int"),
        ({"probe_every": 0}, ValueError, "probe_every must be a positive int"),
        ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be a positive int"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    model = _model()
    arguments = {"steps": 3, **kwargs}
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(error, match=match):
        train(model, AddingTask(4), _adam(model), progress=False, **arguments)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters())), "nothing trained before the check"


def test_final_loss_of_an_empty_history_is_a_clear_error():
    with pytest.raises(ValueError, match="history is empty"):
        History().final_loss()


@pytest.mark.parametrize(("env", "shown"), [("1", False), ("", True)])
def test_progress_bar_follows_tqdm_disable_by_default(monkeypatch, capsys, env, shown):
    monkeypatch.setenv("TQDM_DISABLE", env)
    model = ElmanRNN(2, 4, 1)
    train(model, AddingTask(4), _adam(model), 3, batch_size=4, description="bar-under-test")
    assert ("bar-under-test" in capsys.readouterr().err) is shown


# Penalty -------------------------------------------------------------------------------------------


def test_penalty_adds_its_gradient_and_is_not_logged():
    task, lr, lam, seed = AddingTask(5), 0.1, 0.5, 3
    model, reference = _model(4), _model(4)
    x, y = task.sample(16, torch.Generator().manual_seed(seed))
    loss = task.loss(reference(x), y)
    W = reference.recurrences[0].weight
    (loss + lam * W.square().sum()).backward()
    expected = W.detach() - lr * W.grad

    def penalty(m):
        return lam * m.recurrences[0].weight.square().sum()

    history = train(model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, batch_size=16, seed=seed, penalty=penalty, progress=False)
    eps = torch.finfo(torch.float32).eps
    assert history.loss[0] == pytest.approx(loss.item(), rel=10 * eps), "the log holds the task's loss"
    assert torch.allclose(model.recurrences[0].weight, expected, rtol=0, atol=100 * eps)


def test_penalty_must_be_callable():
    model = _model()
    with pytest.raises(TypeError, match="penalty must be a callable"):
        train(model, AddingTask(4), _adam(model), 2, penalty=0.1, progress=False)
