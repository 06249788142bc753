"""Tests of orthobook.train: the training loop, its config, log, checkpoints, NaN guard, probes,
clipping, several optimizers, the Stiefel check, denormal flushing and chunked evaluation.

The models are built here from a plain nn.RNN and a linear readout (one output per step, as the
book's models return), so that these tests depend on the loop and the tasks only."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from orthobook.init import glorot, orthogonal
from orthobook.optim import CayleyAdam, RetractingOptimizer
from orthobook.stiefel import StiefelParameter
from orthobook.tasks import AddingTask, CopyTask
from orthobook.train import History, TrainConfig, TrainingDiverged, _flushes_denormals, evaluate, train

KEYS = {"step", "loss", "penalty", "accuracy", "grad_norm"}
EPS32 = torch.finfo(torch.float32).eps
QUIET = TrainConfig(progress=False)


class Net(nn.Module):
    """nn.RNN + linear readout, returning (batch, T, output_size)."""

    def __init__(self, input_size=2, hidden_size=8, output_size=1, nonlinearity="tanh", dropout=0.0):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden_size, nonlinearity=nonlinearity, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x):
        return self.readout(self.dropout(self.rnn(x)[0]))


def _net(seed=0, **kwargs) -> Net:
    torch.manual_seed(seed)
    return Net(**kwargs)


def _copy_net(task, seed=0) -> Net:
    return _net(seed, input_size=task.input_size, output_size=task.output_size)


def _adam(model, lr=1e-2):
    return torch.optim.Adam(model.parameters(), lr=lr)


def _config(**kwargs) -> TrainConfig:
    return TrainConfig(progress=False, **kwargs)


def _refuse(constant):
    raise ValueError(f"{constant} is not JSON")


def _read_log(path) -> list[dict]:
    return [json.loads(line, parse_constant=_refuse) for line in path.read_text().splitlines()]


def _params(model) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


def _all_finite(state) -> bool:
    if isinstance(state, torch.Tensor):
        return not state.is_floating_point() or bool(torch.isfinite(state).all())
    if isinstance(state, dict):
        return all(_all_finite(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return all(_all_finite(v) for v in state)
    return not isinstance(state, float) or math.isfinite(state)


class Wrapped:
    """A task that delegates to ``task`` (subclasses poison one of its methods)."""

    def __init__(self, task, bad_step: int) -> None:
        self.task, self.bad_step, self.calls = task, bad_step, 0

    def __getattr__(self, name):
        return getattr(self.task, name)

    def sample(self, batch_size, generator=None, device="cpu"):
        return self.task.sample(batch_size, generator, device)

    def loss(self, output, target):
        return self.task.loss(output, target)

    def accuracy(self, output, target):
        return self.task.accuracy(output, target)


class InfLossAt(Wrapped):
    """The loss is +inf from call ``bad_step`` on (a deterministic divergence)."""

    def loss(self, output, target):
        loss = self.task.loss(output, target)
        self.calls += 1
        return loss + math.inf if self.calls > self.bad_step else loss


class PoisonedBatchAt(Wrapped):
    """The batch of step ``bad_step`` carries a NaN input."""

    def sample(self, batch_size, generator=None, device="cpu"):
        x, y = self.task.sample(batch_size, generator, device)
        if self.calls == self.bad_step:
            x = x.clone()
            x[0, 0, 0] = math.nan
        self.calls += 1
        return x, y


# Learning -----------------------------------------------------------------------------------------


def test_loss_decreases_on_easy_adding_task():
    task = AddingTask(4)
    model = _net(0, hidden_size=16)
    history = train(model, task, _adam(model), 150, _config(batch_size=32))
    start = sum(history.loss[:10]) / 10
    assert history.final_loss(20) < 0.5 * start
    assert history.final_loss(20) < task.baseline, "should beat the memoryless baseline on T = 4"
    assert history.diverged_at is None and history.diverged_quantity is None
    assert history.step == list(range(150))
    assert history.penalty == [None] * 150


def test_default_config():
    model = _net()
    history = train(model, AddingTask(4), _adam(model), 2, None)
    assert history.step == [0, 1]


# Config -------------------------------------------------------------------------------------------


def test_config_is_frozen_and_copies_its_probes():
    probes = {"a": lambda m: 1}
    config = TrainConfig(probes=probes)
    probes["b"] = lambda m: 2
    assert set(config.probes) == {"a"}
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 3
    assert dataclasses.replace(config, seed=3).seed == 3


BAD_CONFIGS = [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ({"batch_size": 2.0}, TypeError, "batch_size must be an int"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
    ({"seed": True}, TypeError, "seed must be an int"),
    ({"clip": 0}, ValueError, "clip must be positive"),
    ({"clip": -1.0}, ValueError, "clip must be positive"),
    ({"clip": math.inf}, ValueError, "clip must be finite, got inf"),
    ({"clip": math.nan}, ValueError, "clip must be finite, got nan"),
    ({"clip": "1"}, TypeError, "clip must be a real number"),
    ({"penalty": 0.1}, TypeError, "penalty must be a callable"),
    ({"on_nonfinite": "x"}, ValueError, "on_nonfinite must be one of 'raise', 'stop'"),
    ({"log_every": 0}, ValueError, "log_every must be a positive int"),
    ({"log_path": 3}, TypeError, "log_path must be a str, an os.PathLike or None"),
    ({"probes": [len]}, TypeError, "probes must be a mapping"),
    ({"probes": {"s": 1}}, TypeError, "probes must map str names to callables"),
    ({"probe_every": 0}, ValueError, "probe_every must be a positive int"),
    ({"progress": 1}, TypeError, "progress must be a bool or None"),
    ({"description": 1}, TypeError, "description must be a str or None"),
    ({"checkpoint_path": 1.0}, TypeError, "checkpoint_path must be a str"),
    ({"checkpoint_every": 0}, ValueError, "checkpoint_every must be a positive int"),
    ({"flush_denormal": 1}, TypeError, "flush_denormal must be a bool"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_CONFIGS, ids=[row[2] for row in BAD_CONFIGS])
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        TrainConfig(**kwargs)


BAD_CALLS = [
    (lambda m: (m, AddingTask(4), _adam(m), 0, QUIET), ValueError, "steps must be a positive int"),
    (lambda m: (m, AddingTask(4), _adam(m), 2.0, QUIET), TypeError, "steps must be an int"),
    (lambda m: (m, AddingTask(4), _adam(m), 2, {"batch_size": 4}), TypeError, "config must be a TrainConfig"),
    (lambda m: (m, AddingTask(4), [], 2, QUIET), TypeError, "optimizer must be a torch.optim.Optimizer or a non-empty"),
    (lambda m: (m, AddingTask(4), [_adam(m), "sgd"], 2, QUIET), TypeError, r"optimizer\[1\] must be a torch.optim"),
    (lambda m: (m, AddingTask(4), _adam, 2, QUIET), TypeError, "optimizer must be a torch.optim.Optimizer"),
    (lambda m: (m, AddingTask(4), [_adam(m), _adam(m)], 2, QUIET), ValueError, r"optimizer\[0\] and optimizer\[1\]"),
    (lambda m: (m, object(), _adam(m), 2, QUIET), TypeError, "task must implement orthobook.tasks.Task"),
    (lambda m: (m.state_dict(), AddingTask(4), _adam(m), 2, QUIET), TypeError, "model must be a torch.nn.Module"),
]


@pytest.mark.parametrize(("arguments", "error", "match"), BAD_CALLS, ids=[row[2] for row in BAD_CALLS])
def test_bad_arguments_train_nothing(arguments, error, match):
    model = _net()
    before = _params(model)
    with pytest.raises(error, match=match):
        train(*arguments(model))
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters())), "nothing trained before the check"


def test_model_without_parameters_is_a_clear_error():
    with pytest.raises(ValueError, match="model must have at least one parameter"):
        train(nn.Identity(), AddingTask(4), torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 1, QUIET)


# Several optimizers -------------------------------------------------------------------------------


def test_two_optimizers_step_like_one():
    task, config = AddingTask(5), _config(batch_size=8, seed=1)
    one, two = _net(3), _net(3)
    train(one, task, torch.optim.SGD(one.parameters(), lr=0.1), 5, config)
    optimizers = [torch.optim.SGD(two.rnn.parameters(), lr=0.1), torch.optim.SGD(two.readout.parameters(), lr=0.1)]
    train(two, task, optimizers, 5, config)
    for (name, p), q in zip(one.named_parameters(), two.parameters()):
        assert torch.equal(p, q), name


# Stiefel parameters need a retracting optimizer ----------------------------------------------------


class Framed(Net):
    """A Net whose hidden states pass through an orthogonal frame U before the readout."""

    def __init__(self):
        super().__init__()
        self.U = StiefelParameter(orthogonal(8, generator=torch.Generator().manual_seed(0)))

    def forward(self, x):
        return self.readout(self.rnn(x)[0] @ self.U)


class MarkedSGD(RetractingOptimizer, torch.optim.SGD):
    """Any optimizer marked as retracting passes the check (this one only for the check)."""


def test_euclidean_optimizer_on_a_stiefel_parameter_is_refused():
    torch.manual_seed(0)
    model = Framed()
    before = _params(model)
    with pytest.raises(TypeError, match=r"optimizer\[0\] \(Adam\) would move the StiefelParameter 'U' off") as info:
        train(model, AddingTask(4), _adam(model), 2, QUIET)
    assert "CayleyAdam" in str(info.value) and "CayleySGD" in str(info.value)
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))
    others = [p for name, p in model.named_parameters() if name != "U"]
    with pytest.raises(TypeError, match=r"optimizer\[1\] \(SGD\) would move the StiefelParameter 'U'"):
        train(model, AddingTask(4), [_adam_of(others), torch.optim.SGD([model.U], lr=0.1)], 2, QUIET)


def _adam_of(params):
    return torch.optim.Adam(params, lr=1e-2)


@pytest.mark.parametrize("case", ["cayley", "marked", "frozen", "not optimized"])
def test_stiefel_parameter_accepted_where_it_cannot_leave_the_manifold(case):
    torch.manual_seed(0)
    model = Framed()
    others = [p for name, p in model.named_parameters() if name != "U"]
    if case == "cayley":
        optimizer = CayleyAdam(model.parameters(), lr=0.01)
    elif case == "marked":
        optimizer = [MarkedSGD([model.U], lr=0.0), _adam_of(others)]
    elif case == "frozen":
        model.U.requires_grad_(False)
        optimizer = _adam(model)
    else:
        optimizer = _adam_of(others)
    history = train(model, AddingTask(4), optimizer, 3, _config(batch_size=4))
    assert history.step == [0, 1, 2]
    eye = torch.eye(8)
    assert torch.allclose(model.U.detach().T @ model.U.detach(), eye, rtol=0, atol=100 * EPS32)


# Log ----------------------------------------------------------------------------------------------


def test_log_has_one_record_per_logged_step(tmp_path):
    log = tmp_path / "logs" / "run.jsonl"
    task = CopyTask(2, n_symbols=3, n_copy=2)
    model = _copy_net(task)
    history = train(model, task, _adam(model), 10, _config(batch_size=4, log_every=3, log_path=log))
    records = _read_log(log)
    assert [r["step"] for r in records] == [0, 3, 6, 9]
    assert all(set(r) == KEYS for r in records)
    assert records == history.records()
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in records)
    assert all(r["grad_norm"] > 0 for r in records)


def test_log_is_rewritten_not_appended(tmp_path):
    log = tmp_path / "run.jsonl"
    log.write_text('{"step": 99, "loss": 0.0, "accuracy": null, "grad_norm": 0.0}\n')
    model = _net()
    train(model, AddingTask(4), _adam(model), 3, _config(batch_size=4, log_path=log))
    assert [r["step"] for r in _read_log(log)] == [0, 1, 2]


# Checkpoints --------------------------------------------------------------------------------------


def _optimizers(model, kind):
    if kind == "one":
        return _adam(model)
    return [torch.optim.Adam(model.rnn.parameters(), lr=1e-2), torch.optim.RMSprop(model.readout.parameters(), lr=1e-2)]


@pytest.mark.parametrize("kind", ["one", "two"])
def test_resume_continues_the_same_curve(tmp_path, kind):
    """Model, optimizers, batch generator, torch's RNG (dropout) and history all come back."""
    task = AddingTask(5)
    config = _config(batch_size=8, seed=3)

    straight_model = _net(0, dropout=0.2)
    straight_log = tmp_path / "straight.jsonl"
    straight = train(
        straight_model, task, _optimizers(straight_model, kind), 40, dataclasses.replace(config, log_path=straight_log)
    )

    checkpoint, log = tmp_path / "ck" / "run.pt", tmp_path / "resumed.jsonl"
    resumable = dataclasses.replace(config, checkpoint_path=checkpoint, log_path=log, checkpoint_every=7)
    first_model = _net(0, dropout=0.2)
    first = train(first_model, task, _optimizers(first_model, kind), 20, resumable)
    assert checkpoint.exists()
    assert first.loss == straight.loss[:20]

    torch.manual_seed(1234)  # as after a killed process: another global RNG state ...
    resumed_model = _net(1, dropout=0.2)  # ... other initial weights, fresh optimizers
    resumed = train(resumed_model, task, _optimizers(resumed_model, kind), 40, resumable)
    assert resumed.step == list(range(40))
    assert resumed.loss == straight.loss
    assert resumed.grad_norm == straight.grad_norm
    for (name, p), q in zip(straight_model.named_parameters(), resumed_model.parameters()):
        assert torch.equal(p, q), name
    assert [r["step"] for r in _read_log(log)] == list(range(40)), "the log after resume has each step once"
    assert _read_log(log) == _read_log(straight_log)


def test_periodic_checkpoint(tmp_path):
    checkpoint = tmp_path / "run.pt"
    model = _net()
    train(model, AddingTask(4), _adam(model), 7, _config(batch_size=4, checkpoint_path=checkpoint, checkpoint_every=3))
    state = torch.load(checkpoint, weights_only=False)
    # The keys of every checkpoint written so far: a changed set would refuse them on resume.
    assert set(state) == {"step", "model", "optimizers", "generator", "torch_rng", "cuda_rng", "history"}
    assert state["step"] == 7
    assert state["history"]["step"] == list(range(7))
    assert len(state["optimizers"]) == 1
    assert not (tmp_path / "run.pt.tmp").exists()


def test_resume_of_finished_run_does_nothing(tmp_path):
    config = _config(batch_size=4, checkpoint_path=tmp_path / "run.pt")
    model = _net()
    first = train(model, AddingTask(4), _adam(model), 5, config)
    before = _params(model)
    again = train(model, AddingTask(4), _adam(model), 5, config)
    assert again.loss == first.loss
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters()))


def test_checkpoint_that_does_not_fit_the_run(tmp_path):
    config = _config(batch_size=4, checkpoint_path=tmp_path / "run.pt")
    model = _net()
    train(model, AddingTask(4), _adam(model), 5, config)
    with pytest.raises(ValueError, match="holds 5 steps, more than steps=3"):
        train(_net(), AddingTask(4), _adam(model), 3, config)
    with pytest.raises(ValueError, match="holds 1 optimizer states, but this run has 2 optimizers"):
        train(model, AddingTask(4), _optimizers(model, "two"), 5, config)
    torch.save({"step": 1}, tmp_path / "run.pt")
    with pytest.raises(ValueError, match="is not a checkpoint of this version"):
        train(model, AddingTask(4), _adam(model), 5, config)


# NaN guard ----------------------------------------------------------------------------------------


def _exploding_net() -> Net:
    """The classic exploding case: tanh, W_hh = 4 × Glorot (ρ(W) ≈ 4)."""
    model = _net(0, hidden_size=32)
    with torch.no_grad():
        model.rnn.weight_hh_l0.copy_(4 * glorot(32, generator=torch.Generator().manual_seed(0)))
    return model


def test_exploding_gradient_is_caught_before_the_step(tmp_path):
    """T = 300 overflows the backward pass in float32 although the loss is finite; clip = 1
    cannot help (it rescales by clip/‖g‖), and no step is taken."""
    model = _exploding_net()
    optimizer = _adam(model)
    before = _params(model)
    log, checkpoint = tmp_path / "run.jsonl", tmp_path / "run.pt"
    config = _config(batch_size=8, clip=1.0, log_path=log, checkpoint_path=checkpoint, checkpoint_every=1)
    with pytest.raises(TrainingDiverged, match=r"grad_norm became (nan|inf) at step 0") as info:
        train(model, AddingTask(300), optimizer, 10, config)
    error = info.value
    assert (error.step, error.quantity, error.last_finite) == (0, "grad_norm", None)
    message = str(error)
    assert "learning rate" in message and "inputs" in message and "spectral radius" in message
    assert "clipping cannot help" in message and "clip=" not in message
    assert all(torch.equal(p, q) for p, q in zip(before, model.parameters())), "no step was taken"
    assert optimizer.state_dict()["state"] == {}, "the optimizer never saw the gradients"
    assert all(p.grad is None for p in model.parameters()), "non-finite gradients are not left behind"
    assert not checkpoint.exists()
    (line,) = _read_log(log)
    assert line["diverged"] == "grad_norm" and line["grad_norm"] is None and math.isfinite(line["loss"])


@pytest.mark.parametrize("on_nonfinite", ["raise", "stop"])
def test_poisoned_batch(tmp_path, on_nonfinite):
    """A NaN input at step 5: the loss is NaN, the weights are those after 5 clean steps, and
    the last checkpoint (after step 4) and the optimizer state are finite."""
    task, bad_step = AddingTask(6), 5
    clean_model = _net(2)
    train(clean_model, task, _adam(clean_model), bad_step, _config(batch_size=8))

    model = _net(2)
    optimizer = _adam(model)
    log, checkpoint = tmp_path / "run.jsonl", tmp_path / "run.pt"
    config = _config(
        batch_size=8, log_path=log, checkpoint_path=checkpoint, checkpoint_every=2, on_nonfinite=on_nonfinite
    )
    if on_nonfinite == "raise":
        with pytest.raises(TrainingDiverged, match="loss became nan at step 5") as info:
            train(model, PoisonedBatchAt(task, bad_step), optimizer, 20, config)
        assert (info.value.step, info.value.quantity) == (bad_step, "loss")
        assert info.value.last_finite["step"] == bad_step - 1
        assert set(info.value.last_finite) == KEYS
        assert "inputs" in str(info.value)
    else:
        history = train(model, PoisonedBatchAt(task, bad_step), optimizer, 20, config)
        assert (history.diverged_at, history.diverged_quantity) == (bad_step, "loss")
        assert history.step == list(range(bad_step))
    for (name, p), q in zip(clean_model.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name
    assert _all_finite(optimizer.state_dict())
    state = torch.load(checkpoint, weights_only=False)
    assert state["step"] == 4 and _all_finite(state)
    records = _read_log(log)
    assert [r["step"] for r in records] == list(range(bad_step + 1))
    assert records[-1]["diverged"] == "loss" and records[-1]["loss"] is None


def test_infinite_penalty_names_the_penalty():
    model = _net()
    calls = []

    def penalty(m):
        calls.append(1)
        weight = math.inf if len(calls) > 3 else 1e-3
        return weight * m.rnn.weight_hh_l0.square().sum()

    optimizer = _adam(model)
    with pytest.raises(TrainingDiverged, match="penalty became inf at step 3") as info:
        train(model, AddingTask(4), optimizer, 10, _config(batch_size=4, penalty=penalty))
    assert info.value.quantity == "penalty" and "weight" in str(info.value)
    assert info.value.last_finite["step"] == 2 and info.value.last_finite["penalty"] > 0
    assert _all_finite(optimizer.state_dict()) and _all_finite(model.state_dict())


def test_nonfinite_loss_raises_with_step_and_last_record():
    model = _net()
    with pytest.raises(TrainingDiverged, match=r"loss became inf at step 5") as info:
        train(model, InfLossAt(AddingTask(4), bad_step=5), _adam(model), 20, _config(batch_size=4))
    assert info.value.step == 5
    assert info.value.last_finite is not None and info.value.last_finite["step"] == 4
    assert math.isfinite(info.value.last_finite["loss"])
    assert isinstance(info.value, FloatingPointError)


def test_nonfinite_loss_at_first_step_has_no_last_record():
    model = _net()
    with pytest.raises(TrainingDiverged, match="at step 0") as info:
        train(model, InfLossAt(AddingTask(4), bad_step=0), _adam(model), 5, _config(batch_size=4))
    assert info.value.last_finite is None


def test_huge_learning_rate_diverges():
    model = _net(0, hidden_size=16, nonlinearity="relu")
    with pytest.raises(TrainingDiverged, match="became (nan|inf) at step") as info:
        train(model, AddingTask(10), torch.optim.SGD(model.parameters(), lr=1e3), 50, QUIET)
    assert 0 < info.value.step < 50
    assert info.value.last_finite["step"] == info.value.step - 1


def test_nonfinite_loss_stop_skips_final_probe():
    model = _net()
    calls = []
    config = _config(
        batch_size=4, on_nonfinite="stop", probes={"calls": lambda m: calls.append(1) or len(calls)}, probe_every=4
    )
    history = train(model, InfLossAt(AddingTask(4), bad_step=6), _adam(model), 20, config)
    assert history.diverged_at == 6
    assert history.step == list(range(6))
    assert all(math.isfinite(loss) for loss in history.loss)
    assert history.probes["calls"] == [(4, 1)], "no final probe after a divergence"


class OverflowingSGD(torch.optim.SGD):
    """SGD that then writes inf into the readout bias (or into its own state): the kind of
    overflow that finite gradients can still cause."""

    def __init__(self, params, where):
        super().__init__(params, lr=0.01, momentum=0.9)
        self.where = where

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        p = self.param_groups[0]["params"][-1]
        target = p if self.where == "parameters" else self.state[p]["momentum_buffer"]
        target.fill_(math.inf)


@pytest.mark.parametrize("where", ["parameters", "optimizer state"])
@pytest.mark.parametrize("checkpointed", [True, False])
def test_nonfinite_state_never_reaches_a_checkpoint(tmp_path, where, checkpointed):
    model = _net()
    checkpoint = tmp_path / "run.pt" if checkpointed else None
    config = _config(batch_size=4, checkpoint_path=checkpoint, checkpoint_every=1)
    match = f"{where} became .* after the update of step 0; no checkpoint was written"
    with pytest.raises(TrainingDiverged, match=match) as info:
        train(model, AddingTask(4), OverflowingSGD(model.parameters(), where), 1, config)
    assert (info.value.step, info.value.quantity) == (0, where)
    assert "readout.bias" in str(info.value) if where == "parameters" else "momentum_buffer" in str(info.value)
    assert not checkpointed or not checkpoint.exists()


def test_one_host_read_per_step(host_reads):
    """Note [NaN guard]: loss, penalty, accuracy and gradient norm come back in one transfer."""
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # torch's Adam reads its step count on the CPU
    config = _config(batch_size=4, penalty=lambda m: m.rnn.weight_hh_l0.square().sum())
    train(model, AddingTask(4), optimizer, 6, config)
    # The denormal mode in force before the run, one read per step, the state check at the end.
    assert host_reads == ["item"] + ["tolist"] * 6 + ["tolist"]


@pytest.mark.parametrize(("log_every", "checkpoint_every"), [(3, 500), (4, 500), (10, 7)])
def test_divergence_on_an_unlogged_step_is_found_with_its_step(tmp_path, log_every, checkpoint_every):
    """Note [device-side guard]: a NaN batch at step 5, which is not logged, stops the run at
    the next host read with step 5 itself; the weights and the optimizer state are those after
    5 clean steps, the log ends with step 5's record, and no checkpoint holds the NaN."""
    task, bad_step = AddingTask(6), 5
    clean = _net(2)
    clean_optimizer = _adam(clean)
    train(clean, task, clean_optimizer, bad_step, _config(batch_size=8))
    model = _net(2)
    optimizer = _adam(model)
    log, checkpoint = tmp_path / "run.jsonl", tmp_path / "run.pt"
    config = _config(
        batch_size=8, log_every=log_every, log_path=log, checkpoint_path=checkpoint, checkpoint_every=checkpoint_every
    )
    with pytest.raises(TrainingDiverged, match="loss became nan at step 5") as info:
        train(model, PoisonedBatchAt(task, bad_step), optimizer, 20, config)
    assert (info.value.step, info.value.quantity) == (bad_step, "loss")
    assert info.value.last_finite["step"] == max(s for s in range(bad_step) if s % log_every == 0)
    for (name, p), q in zip(clean.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name
    for p, q in zip(clean.parameters(), model.parameters()):
        ours, theirs = optimizer.state[q], clean_optimizer.state[p]
        assert set(ours) == set(theirs) and all(torch.equal(ours[key], theirs[key]) for key in ours)
    assert all(p.grad is None for p in model.parameters())
    records = _read_log(log)
    assert [r["step"] for r in records] == [s for s in range(bad_step) if s % log_every == 0] + [bad_step]
    assert records[-1]["diverged"] == "loss" and records[-1]["loss"] is None and records[-1]["accuracy"] is None
    assert not checkpoint.exists(), "the first checkpoint step comes after the divergence"


def test_stop_on_an_unlogged_step_returns_the_history_up_to_there():
    model = _net()
    config = _config(batch_size=4, on_nonfinite="stop", log_every=4)
    history = train(model, InfLossAt(AddingTask(4), bad_step=6), _adam(model), 20, config)
    assert (history.diverged_at, history.diverged_quantity) == (6, "loss")
    assert history.step == [0, 4]
    assert _all_finite(model.state_dict())


def test_no_host_read_on_unlogged_steps(host_reads):
    """Note [device-side guard]: with log_every = 3, six steps read back at steps 0 and 3
    (the second with the guard's flags) and at the end (the flags of the masked steps 4 and 5,
    then the state check)."""
    model = _net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    config = _config(batch_size=4, penalty=lambda m: m.rnn.weight_hh_l0.square().sum(), log_every=3)
    history = train(model, AddingTask(4), optimizer, 6, config)
    assert host_reads == ["item"] + ["tolist"] * 2 + ["tolist"] * 2
    assert history.step == [0, 3]


def test_masked_steps_train_as_logged_steps_do():
    """Steps that are not logged take the same optimizer steps, bit for bit."""
    logged, masked = _net(3), _net(3)
    train(logged, AddingTask(5), _adam(logged), 7, _config(batch_size=4))
    train(masked, AddingTask(5), _adam(masked), 7, _config(batch_size=4, log_every=5))
    assert all(torch.equal(p, q) for p, q in zip(logged.parameters(), masked.parameters()))


# Probes -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("steps", "expected"), [(10, [4, 8, 10]), (8, [4, 8])])
def test_probes_at_probe_every_and_end(steps, expected):
    model = _net()
    grad_enabled = []

    def singular_values(m):
        grad_enabled.append(torch.is_grad_enabled())
        return torch.linalg.svdvals(m.rnn.weight_hh_l0)

    history = train(
        model, AddingTask(4), _adam(model), steps, _config(batch_size=4, probes={"s": singular_values}, probe_every=4)
    )
    assert [step for step, _ in history.probes["s"]] == expected
    assert grad_enabled == [False] * len(expected), "probes run under no_grad"
    _, value = history.probes["s"][-1]
    assert isinstance(value, list) and len(value) == 8
    assert value == pytest.approx(torch.linalg.svdvals(model.rnn.weight_hh_l0.detach()).tolist())


# Clipping -----------------------------------------------------------------------------------------


def _moved(model, before) -> float:
    moved = [(p.detach() - q).flatten() for p, q in zip(model.parameters(), before)]
    return torch.linalg.vector_norm(torch.cat(moved)).item()


def _rounding(before) -> float:
    """The float32 update θ − lr·g is rounded entrywise: up to eps/2 · |θ_i| each."""
    return EPS32 * torch.linalg.vector_norm(torch.cat([q.flatten() for q in before])).item()


def test_clip_records_preclip_norm_and_bounds_the_step():
    task, seed, batch_size, lr, clip = AddingTask(6), 5, 16, 0.1, 1e-3
    model = _net(2)
    before = _params(model)

    reference = _net(2)
    x, y = task.sample(batch_size, torch.Generator().manual_seed(seed))
    task.loss(reference(x), y).backward()
    preclip = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in reference.parameters()])).item()
    assert preclip > 10 * clip, "the test needs clipping to be active"

    config = _config(batch_size=batch_size, seed=seed, clip=clip)
    history = train(model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, config)
    assert history.grad_norm[0] == pytest.approx(preclip, rel=100 * EPS32)
    moved = _moved(model, before)
    assert moved <= lr * clip * (1 + 10 * EPS32) + _rounding(before)
    # clip_grad_norm_ scales by clip / (norm + 1e-6): the step reaches the limit, not less.
    assert moved >= lr * clip * (1 - 10 * EPS32 - 1e-6 / preclip) - _rounding(before)


def test_no_clip_moves_by_full_gradient():
    task, lr = AddingTask(6), 0.1
    model = _net(2)
    before = _params(model)
    history = train(model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, _config(batch_size=16, seed=5))
    assert _moved(model, before) == pytest.approx(lr * history.grad_norm[0], rel=10 * EPS32, abs=_rounding(before))


# Penalty ------------------------------------------------------------------------------------------


def test_penalty_adds_its_gradient_and_is_logged_apart():
    task, lr, lam, seed = AddingTask(5), 0.1, 0.5, 3
    model, reference = _net(4), _net(4)
    x, y = task.sample(16, torch.Generator().manual_seed(seed))
    loss = task.loss(reference(x), y)
    W = reference.rnn.weight_hh_l0
    penalty_value = lam * W.square().sum()
    (loss + penalty_value).backward()
    expected = W.detach() - lr * W.grad

    def penalty(m):
        return lam * m.rnn.weight_hh_l0.square().sum()

    config = _config(batch_size=16, seed=seed, penalty=penalty)
    history = train(model, task, torch.optim.SGD(model.parameters(), lr=lr), 1, config)
    assert history.loss[0] == pytest.approx(loss.item(), rel=10 * EPS32), "the loss is the task's"
    assert history.penalty[0] == pytest.approx(penalty_value.item(), rel=10 * EPS32)
    assert torch.allclose(model.rnn.weight_hh_l0, expected, rtol=0, atol=100 * EPS32)


# Progress bar -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("env", "shown"), [("1", False), ("", True)])
def test_progress_bar_follows_tqdm_disable_by_default(monkeypatch, capsys, env, shown):
    monkeypatch.setenv("TQDM_DISABLE", env)
    model = _net(hidden_size=4)
    train(model, AddingTask(4), _adam(model), 3, TrainConfig(batch_size=4, description="bar-under-test"))
    assert ("bar-under-test" in capsys.readouterr().err) is shown


# Denormals ----------------------------------------------------------------------------------------


@pytest.fixture
def flush_supported():
    previous = _flushes_denormals()
    if not torch.set_flush_denormal(previous):
        pytest.skip("this CPU cannot flush denormals")
    yield
    torch.set_flush_denormal(previous)


@pytest.mark.parametrize("outside", [False, True])
@pytest.mark.parametrize("inside", [False, True])
def test_flush_denormal_holds_during_the_run_and_is_restored(flush_supported, outside, inside):
    torch.set_flush_denormal(outside)
    model = _net()
    probes = {"flushing": lambda m: _flushes_denormals()}
    config = _config(batch_size=4, flush_denormal=inside, probes=probes, probe_every=1)
    history = train(model, AddingTask(4), _adam(model), 2, config)
    assert [value for _, value in history.probes["flushing"]] == [inside, inside]
    assert _flushes_denormals() is outside


def test_flush_denormal_is_restored_after_a_divergence(flush_supported):
    torch.set_flush_denormal(False)
    model = _net()
    with pytest.raises(TrainingDiverged):
        train(model, InfLossAt(AddingTask(4), bad_step=1), _adam(model), 3, _config(batch_size=4))
    assert _flushes_denormals() is False


# evaluate -----------------------------------------------------------------------------------------


def test_evaluate_copy_task():
    task = CopyTask(2, n_symbols=3, n_copy=2)
    model = _copy_net(task)
    model.train()
    result = evaluate(model, task, batch_size=32, seed=7)
    x, y = task.sample(32, torch.Generator().manual_seed(7))
    with torch.no_grad():
        output = model(x)
    assert set(result) == {"loss", "accuracy"}
    assert result["loss"] == pytest.approx(task.loss(output, y).item(), rel=10 * EPS32)
    assert result["accuracy"] == task.accuracy(output, y).item()
    assert model.training, "evaluate restores the training mode"
    model.eval()
    evaluate(model, task, batch_size=4)
    assert not model.training


@pytest.mark.parametrize("chunk_size", [1, 7, 50, 100, 1000])
@pytest.mark.parametrize("task", [CopyTask(3, n_symbols=3, n_copy=2), AddingTask(6)], ids=["copy", "adding"])
def test_chunked_evaluation_equals_one_batch(task, chunk_size):
    model = _copy_net(task) if isinstance(task, CopyTask) else _net()
    whole = evaluate(model, task, batch_size=100, seed=1)
    chunked = evaluate(model, task, batch_size=100, seed=1, chunk_size=chunk_size)
    # float32 means of up to m = 100 × T terms, summed pairwise by torch (rounding error of
    # order log2(m) · eps each) and in a different grouping; the chunks are combined in float64.
    tolerance = 10 * math.log2(100 * task.seq_len) * EPS32
    assert chunked["loss"] == pytest.approx(whole["loss"], rel=tolerance)
    if whole["accuracy"] is None:
        assert chunked["accuracy"] is None
    else:
        assert chunked["accuracy"] == pytest.approx(whole["accuracy"], rel=tolerance)


def test_evaluate_adding_task_has_no_accuracy():
    result = evaluate(_net(), AddingTask(4), batch_size=16)
    assert result["accuracy"] is None and math.isfinite(result["loss"])


BAD_EVALUATIONS = [
    ({"batch_size": 0}, ValueError, "batch_size must be a positive int"),
    ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
    ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int"),
    ({"seed": -1}, ValueError, "seed must be a non-negative int"),
]


@pytest.mark.parametrize(("kwargs", "error", "match"), BAD_EVALUATIONS, ids=[row[2] for row in BAD_EVALUATIONS])
def test_evaluate_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        evaluate(_net(), AddingTask(4), **kwargs)


# History ------------------------------------------------------------------------------------------


def test_history_helpers():
    history = History()
    history.append({"step": 0, "loss": 2.0, "penalty": None, "accuracy": None, "grad_norm": 1.0})
    history.append({"step": 1, "loss": 3.0, "penalty": None, "accuracy": None, "grad_norm": math.nan})
    history.append({"step": 2, "loss": 4.0, "penalty": math.inf, "accuracy": None, "grad_norm": 1.0})
    assert history.final_loss(window=1) == 4.0
    assert history.last_finite()["step"] == 0
    assert History().last_finite() is None
    history.append({"step": 3, "loss": 1.0, "grad_norm": 1.0})
    assert history.records()[-1] == {"step": 3, "loss": 1.0, "penalty": None, "accuracy": None, "grad_norm": 1.0}


def test_final_loss_of_an_empty_history_is_a_clear_error():
    with pytest.raises(ValueError, match="history is empty"):
        History().final_loss()
