"""Tests of orthobook.batched (BatchedElmanRNN) and of train/evaluate on a batch of models.

The oracle of every test is the single model: a BatchedElmanRNN of K models must compute
what the K ElmanRNNs compute one by one (Book: Eq. (gp-recurrence)), and a batched run of
train must follow the K separate runs with the same seeds, recurrence by recurrence (plain
Glorot and orthogonal starts, the chain start, spectral margin with CayleyAdam, Householder
SVD, the RIN's U + I), to rounding. The comparisons run in float64; the tolerances are
multiples of its eps scaled by the sizes and steps of the run."""

from __future__ import annotations

import copy
import dataclasses
import json
import math

import pytest
import torch
from torch import nn

from orthobook import init
from orthobook.batched import BatchedElmanRNN
from orthobook.models import ElmanRNN, rin
from orthobook.optim import CayleyAdam, CayleySGD
from orthobook.parametrizations import householder_svd, spectral_margin
from orthobook.tasks import AddingTask, CopyTask
from orthobook.train import TrainConfig, TrainingDiverged, evaluate, train

EPS64 = torch.finfo(torch.float64).eps
NONLINEARITIES = ("tanh", "relu", "elu", "identity")
K, N, STEPS = 3, 8, 5
COPY = CopyTask(2, n_symbols=3, n_copy=2)  # T = 6, 4 output classes
ADDING = AddingTask(6)


class Float64:
    """``task`` with float64 inputs (and float targets), for float64 models."""

    def __init__(self, task) -> None:
        self.task = task

    def __getattr__(self, name):
        return getattr(self.task, name)

    def sample(self, batch_size, generator=None, device="cpu"):
        x, y = self.task.sample(batch_size, generator, device)
        return x.double(), y.double() if y.is_floating_point() else y

    def loss(self, output, target):
        return self.task.loss(output, target)

    def accuracy(self, output, target):
        return self.task.accuracy(output, target)


class PoisonedAt(Float64):
    """The ``call``-th batch drawn (counting from 0) carries a NaN input."""

    def __init__(self, task, call: int) -> None:
        super().__init__(task)
        self.call, self.calls = call, 0

    def sample(self, batch_size, generator=None, device="cpu"):
        x, y = super().sample(batch_size, generator, device)
        if self.calls == self.call:
            x = x.clone()
            x[0, 0, 0] = math.nan
        self.calls += 1
        return x, y


def _config(**kwargs) -> TrainConfig:
    return TrainConfig(progress=False, **{"batch_size": 4, "seed": 7, **kwargs})


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _elman(task, seed, **kwargs) -> ElmanRNN:
    return ElmanRNN(task.input_size, N, task.output_size, generator=_generator(seed), dtype=torch.float64, **kwargs)


# The recurrences of the book, each as (task, model k, optimizer of some parameters).
def _glorot(k):
    return _elman(COPY, k)


def _orthogonal_relu(k):
    return _elman(ADDING, k, nonlinearity="relu", recurrent_init="orthogonal")


def _chain_identity(k):
    return _elman(COPY, k, nonlinearity="identity", recurrent_init=init.chain(N, 0.9, dtype=torch.float64))


def _spectral_margin_elu(k):
    model = _elman(COPY, k, nonlinearity="elu")
    spectral_margin(model.rnn, "weight_hh_l0", margin=(0.05, 0.1, 0.5)[k], generator=_generator(100 + k))
    return model


def _householder_tanh(k):
    model = _elman(ADDING, k)
    householder_svd(model.rnn, "weight_hh_l0", margin=0.1, generator=_generator(100 + k))
    return model


def _rin(k):
    return rin(ADDING.input_size, N, ADDING.output_size, std=0.1, generator=_generator(k), dtype=torch.float64)


def _two_layers(k):
    return _elman(ADDING, k, num_layers=2)


def _adam(parameters):
    return torch.optim.Adam(parameters, lr=1e-2)


def _cayley_adam(parameters):
    return CayleyAdam(parameters, lr=1e-2)


RECURRENCES = {
    "glorot tanh": (COPY, _glorot, _adam),
    "orthogonal relu": (ADDING, _orthogonal_relu, _adam),
    "chain identity": (COPY, _chain_identity, _adam),
    "spectral_margin elu, CayleyAdam": (COPY, _spectral_margin_elu, _cayley_adam),
    "householder_svd tanh": (ADDING, _householder_tanh, _adam),
    "rin (U + I, relu)": (ADDING, _rin, _adam),
    "two layers tanh": (ADDING, _two_layers, _adam),
}


def _models(build) -> list[ElmanRNN]:
    return [build(k) for k in range(K)]


def _tolerance(task, steps: int, eps: float = EPS64) -> float:
    """Rounding of a run: each step sums O(T · n) products per entry; steps add up."""
    T = task.sample(1, _generator(0))[0].shape[1]
    return steps * T * N * eps


def _max_difference(a, b) -> float:
    return max((torch.as_tensor(p) - torch.as_tensor(q)).abs().max().item() for p, q in zip(a, b))


def _separate_runs(task, build, make_optimizer, steps, config):
    """K runs of train, model k with seed config.seed + k, as the batched run should go."""
    models = _models(build)
    histories = [
        train(model, task, make_optimizer(model.parameters()), steps, dataclasses.replace(config, seed=config.seed + k))
        for k, model in enumerate(models)
    ]
    return models, histories


def _assert_same_runs(batch, batched, models, separate, tolerance):
    for k, (model, history) in enumerate(zip(models, separate)):
        assert batched[k].step == history.step, k
        assert _max_difference(batched[k].loss, history.loss) <= tolerance, k
        assert _max_difference(batched[k].grad_norm, history.grad_norm) <= tolerance, k
        assert batched[k].accuracy == history.accuracy, k
        assert (batched[k].diverged_at, batched[k].diverged_quantity) == (history.diverged_at, history.diverged_quantity)
        assert _max_difference(batch.models[k].parameters(), model.parameters()) <= tolerance, k


# Forward and backward pass ------------------------------------------------------------------------


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_forward_and_gradients_equal_the_single_models(nonlinearity, num_layers):
    """Eq. (gp-recurrence) for each model: batch(x)[k] = models[k](x[k]), and the gradients of
    Note [BPTT by hand] are autograd's through the single models' Python loop (unrolled)."""
    models = _models(lambda k: _elman(ADDING, k, nonlinearity=nonlinearity, num_layers=num_layers))
    batch = BatchedElmanRNN(copy.deepcopy(models))
    x = torch.randn(K, 5, 7, ADDING.input_size, generator=_generator(0), dtype=torch.float64)
    output = batch(x)
    assert output.shape == (K, 5, 7, ADDING.output_size)
    output.square().sum().backward()
    tolerance = 10 * 7 * N * EPS64
    for k, model in enumerate(models):
        single = model.unrolled(x[k]).output
        assert _max_difference([output[k]], [single]) <= tolerance
        single.square().sum().backward()
        for (name, p), q in zip(model.named_parameters(), batch.models[k].parameters()):
            assert _max_difference([q.grad], [p.grad]) <= tolerance * max(1.0, p.grad.abs().max().item()), name


def test_constrained_recurrences_build_each_model_through_its_parametrization():
    models = [_spectral_margin_elu(k) for k in range(K)]
    batch = BatchedElmanRNN(copy.deepcopy(models))
    x = torch.randn(K, 2, 6, COPY.input_size, generator=_generator(2), dtype=torch.float64)
    output = batch(x)
    for k, model in enumerate(models):
        assert _max_difference([output[k]], [model(x[k])]) <= 10 * 6 * N * EPS64
    margins = [m.rnn.parametrizations.weight_hh_l0[0].margin for m in batch.models]
    assert margins == [0.05, 0.1, 0.5]


def test_trained_models_are_ordinary_elman_rnns():
    """models[k]'s state dict loads into a fresh ElmanRNN with the same parametrization."""
    batch = BatchedElmanRNN(_models(_householder_tanh))
    train(batch, Float64(ADDING), _adam(batch.parameters()), 2, _config())
    fresh = _householder_tanh(9)
    fresh.load_state_dict(batch.models[1].state_dict())
    x = torch.randn(3, 6, 2, generator=_generator(3), dtype=torch.float64)
    assert torch.equal(fresh(x), batch.models[1](x))


# One optimizer for K models -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda ps: torch.optim.Adam(ps, lr=1e-2),
        lambda ps: torch.optim.SGD(ps, lr=1e-2, momentum=0.9, nesterov=True),
        lambda ps: CayleyAdam(ps, lr=1e-2),
        lambda ps: CayleySGD(ps, lr=1e-2, momentum=0.9),
    ],
    ids=["Adam", "SGD", "CayleyAdam", "CayleySGD"],
)
def test_one_optimizer_steps_each_model_as_its_own_would(make_optimizer):
    """Their updates are elementwise or per tensor: bit for bit, over 12 steps (Newton–Schulz
    corrections of the Cayley optimizers included)."""
    one = BatchedElmanRNN(_models(_spectral_margin_elu))
    apart = _models(_spectral_margin_elu)
    shared = make_optimizer(one.parameters())
    own = [make_optimizer(model.parameters()) for model in apart]
    g = _generator(4)
    for _ in range(12):
        for p, q in zip(one.parameters(), (q for model in apart for q in model.parameters())):
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
            q.grad = p.grad.clone()
        shared.step()
        for opt in own:
            opt.step()
    for k, model in enumerate(apart):
        for p, q in zip(one.models[k].parameters(), model.parameters()):
            assert torch.equal(p, q)


# Training: a batched run equals K separate runs ----------------------------------------------------


@pytest.mark.parametrize("recurrence", list(RECURRENCES))
def test_batched_run_equals_separate_runs(recurrence):
    task, build, make_optimizer = RECURRENCES[recurrence]
    task, config = Float64(task), _config(clip=10.0)
    models, separate = _separate_runs(task, build, make_optimizer, STEPS, config)
    batch = BatchedElmanRNN(_models(build))
    batched = train(batch, task, make_optimizer(batch.parameters()), STEPS, config)
    assert len(batched) == K
    _assert_same_runs(batch, batched, models, separate, _tolerance(task, STEPS))


def test_learning_rate_per_model_is_a_parameter_group_per_model():
    task, rates = Float64(COPY), (1e-3, 1e-2, 1e-1)
    config = _config()
    batch = BatchedElmanRNN(_models(_spectral_margin_elu))
    groups = [{"params": model.parameters(), "lr": lr} for model, lr in zip(batch.models, rates)]
    batched = train(batch, task, CayleySGD(groups, momentum=0.9), STEPS, config)
    models = _models(_spectral_margin_elu)
    separate = [
        train(model, task, CayleySGD(model.parameters(), lr=lr, momentum=0.9), STEPS, dataclasses.replace(config, seed=7 + k))
        for k, (model, lr) in enumerate(zip(models, rates))
    ]
    _assert_same_runs(batch, batched, models, separate, _tolerance(task, STEPS))


def test_clipping_is_per_model():
    """Clip below every model's gradient norm: each is scaled by its own clip / ‖g_k‖, and the
    recorded norms are each model's before clipping."""
    task, config = Float64(ADDING), _config(clip=1e-3)
    make_optimizer = lambda ps: torch.optim.SGD(ps, lr=0.1)  # noqa: E731
    models, separate = _separate_runs(task, _orthogonal_relu, make_optimizer, STEPS, config)
    assert min(min(h.grad_norm) for h in separate) > 10 * config.clip, "clipping must be active"
    batch = BatchedElmanRNN(_models(_orthogonal_relu))
    batched = train(batch, task, make_optimizer(batch.parameters()), STEPS, config)
    _assert_same_runs(batch, batched, models, separate, _tolerance(task, STEPS))
    assert len({h.grad_norm[0] for h in batched}) == K


def test_penalty_and_probes_are_per_model():
    task = Float64(COPY)
    config = _config(
        penalty=lambda m: 0.1 * m.rnn.weight_hh_l0.square().sum(),
        probes={"W norm": lambda m: torch.linalg.matrix_norm(m.rnn.weight_hh_l0)},
        probe_every=2,
    )
    models, separate = _separate_runs(task, _glorot, _adam, STEPS, config)
    batch = BatchedElmanRNN(_models(_glorot))
    batched = train(batch, task, _adam(batch.parameters()), STEPS, config)
    tolerance = _tolerance(task, STEPS)
    _assert_same_runs(batch, batched, models, separate, tolerance)
    for ours, theirs in zip(batched, separate):
        assert _max_difference(ours.penalty, theirs.penalty) <= tolerance
        assert [s for s, _ in ours.probes["W norm"]] == [2, 4, 5]
        assert _max_difference([v for _, v in ours.probes["W norm"]], [v for _, v in theirs.probes["W norm"]]) <= tolerance


def test_batch_seeds_choose_each_models_batches():
    """batch_seeds=[s] * K: every model sees the batches of seed s (identical models then
    follow identical curves)."""
    task = Float64(ADDING)
    batch = BatchedElmanRNN([_orthogonal_relu(0) for _ in range(K)], batch_seeds=[5] * K)
    histories = train(batch, task, _adam(batch.parameters()), 3, _config())
    assert histories[0].loss == histories[1].loss == histories[2].loss
    single = _orthogonal_relu(0)
    history = train(single, task, _adam(single.parameters()), 3, _config(seed=5))
    assert _max_difference(histories[0].loss, history.loss) <= _tolerance(task, 3)


def test_float32_run_follows_the_separate_runs():
    """The default dtype: the same runs to float32 rounding."""
    config = _config(clip=1.0)
    build = lambda k: ElmanRNN(2, N, 1, generator=_generator(k))  # noqa: E731
    models = [build(k) for k in range(K)]
    separate = [
        train(m, ADDING, _adam(m.parameters()), STEPS, dataclasses.replace(config, seed=7 + k)) for k, m in enumerate(models)
    ]
    batch = BatchedElmanRNN([build(k) for k in range(K)])
    batched = train(batch, ADDING, _adam(batch.parameters()), STEPS, config)
    tolerance = _tolerance(ADDING, STEPS, torch.finfo(torch.float32).eps)
    _assert_same_runs(batch, batched, models, separate, tolerance)


# NaN guard per model ------------------------------------------------------------------------------


def _poisoned_runs(bad_model, bad_step, steps, config):
    """Model ``bad_model``'s batch of step ``bad_step`` holds a NaN: the batched run (its
    batch, optimizer and histories) and the K separate runs it must follow (model k with seed
    ``config.seed + k``, stopping where it diverges, without the log), as
    ``(batch, optimizer, batched, models, separate)``."""
    batch = BatchedElmanRNN(_models(_glorot))
    optimizer = _adam(batch.parameters())
    batched = train(batch, PoisonedAt(COPY, bad_step * K + bad_model), optimizer, steps, config)
    models = _models(_glorot)
    separate = []
    for k, model in enumerate(models):
        task = PoisonedAt(COPY, bad_step if k == bad_model else -1)
        run = dataclasses.replace(config, seed=config.seed + k, on_nonfinite="stop", log_path=None)
        separate.append(train(model, task, _adam(model.parameters()), steps, run))
    return batch, optimizer, batched, models, separate


@pytest.mark.parametrize("on_nonfinite", ["raise", "stop"])
def test_a_diverging_model_stops_and_the_others_go_on(tmp_path, on_nonfinite):
    """Model 1's batch of step 2 holds a NaN: it stops there, with the weights of 2 clean
    steps, and models 0 and 2 follow their separate runs to the end, whatever on_nonfinite."""
    bad_model, bad_step, steps = 1, 2, STEPS
    log = tmp_path / "run.jsonl"
    config = _config(on_nonfinite=on_nonfinite, log_path=log)
    batch, optimizer, batched, models, separate = _poisoned_runs(bad_model, bad_step, steps, config)
    assert (batched[bad_model].diverged_at, batched[bad_model].diverged_quantity) == (bad_step, "loss")
    assert batched[bad_model].step == [0, 1]
    _assert_same_runs(batch, batched, models, separate, _tolerance(COPY, steps))
    frozen = [p for p in batch.models[bad_model].parameters()]
    assert all(int(optimizer.state[p]["step"]) == bad_step for p in frozen), "the optimizer skipped it"
    lines = [json.loads(line, parse_constant=_refuse) for line in log.read_text().splitlines()]
    (stop,) = [line for line in lines if "diverged" in line]
    assert (stop["model"], stop["step"], stop["diverged"], stop["loss"]) == (bad_model, bad_step, "loss", None)
    assert [(line["step"], line["model"]) for line in lines if "diverged" not in line] == [
        (s, k) for s in range(steps) for k in range(K) if k != bad_model or s < bad_step
    ]


def test_a_model_diverging_on_an_unlogged_step_stops_there():
    """Note [device-side guard]: model 1's NaN batch at step 2 (log_every = 3, so not logged)
    is found at step 3's read with step 2 itself; it keeps the weights of 2 clean steps, its
    optimizer state the step count 2, and the others follow their separate runs."""
    bad_model, bad_step, steps = 1, 2, 7
    batch, optimizer, batched, models, separate = _poisoned_runs(bad_model, bad_step, steps, _config(log_every=3))
    assert (batched[bad_model].diverged_at, batched[bad_model].diverged_quantity) == (bad_step, "loss")
    assert (separate[bad_model].diverged_at, batched[bad_model].step) == (bad_step, [0])
    _assert_same_runs(batch, batched, models, separate, _tolerance(COPY, steps))
    assert all(int(optimizer.state[p]["step"]) == bad_step for p in batch.models[bad_model].parameters())


def _refuse(constant):
    raise ValueError(f"{constant} is not JSON")


@pytest.mark.parametrize("on_nonfinite", ["raise", "stop"])
def test_when_every_model_has_stopped_on_nonfinite_decides(on_nonfinite):
    """Models 0 and 1 stop at step 1, model 2 at step 3: then the run raises, or returns."""
    calls = {1 * K + 0, 1 * K + 1, 3 * K + 2}

    class Poisoned(Float64):
        calls_made = 0

        def sample(self, batch_size, generator=None, device="cpu"):
            x, y = super().sample(batch_size, generator, device)
            if Poisoned.calls_made in calls:
                x = torch.full_like(x, math.nan)
            Poisoned.calls_made += 1
            return x, y

    batch = BatchedElmanRNN(_models(_glorot))
    config = _config(on_nonfinite=on_nonfinite)
    if on_nonfinite == "raise":
        with pytest.raises(TrainingDiverged, match="loss became nan at step 3") as info:
            train(batch, Poisoned(COPY), _adam(batch.parameters()), 10, config)
        assert info.value.last_finite["step"] == 2
        assert all(p.grad is None for p in batch.parameters())
    else:
        histories = train(batch, Poisoned(COPY), _adam(batch.parameters()), 10, config)
        assert [h.diverged_at for h in histories] == [1, 1, 3]
        assert [len(h.step) for h in histories] == [1, 1, 3]


def test_exploding_model_stops_on_its_gradient_norm():
    """float32, T = 300, W = 4 × Glorot for model 1 only: its backward pass overflows (a
    finite loss, a non-finite gradient), the other two train on."""
    task = AddingTask(300)

    def build(k):
        model = ElmanRNN(2, 32, 1, generator=_generator(k))
        if k == 1:
            with torch.no_grad():
                model.rnn.weight_hh_l0.copy_(4 * init.glorot(32, generator=_generator(0)))
        return model

    batch = BatchedElmanRNN([build(k) for k in range(K)])
    histories = train(batch, task, _adam(batch.parameters()), 2, _config(batch_size=8, clip=1.0))
    assert [(h.diverged_at, h.diverged_quantity) for h in histories] == [(None, None), (0, "grad_norm"), (None, None)]
    assert [len(h.step) for h in histories] == [2, 0, 2]


class InfAfterStep(torch.optim.SGD):
    """SGD that writes inf into the readout bias after its step (finite gradients, a
    non-finite parameter: the state check finds it)."""

    @torch.no_grad()
    def step(self, closure=None):
        super().step(closure)
        self.param_groups[0]["params"][-1].fill_(math.inf)


def test_a_model_with_nonfinite_parameters_stops_at_the_state_check(tmp_path):
    checkpoint = tmp_path / "run.pt"
    task = Float64(ADDING)
    batch = BatchedElmanRNN(_models(_orthogonal_relu))
    optimizers = [torch.optim.SGD(batch.models[0].parameters(), lr=0.01), InfAfterStep(batch.models[1].parameters(), lr=0.01)]
    optimizers.append(torch.optim.SGD(batch.models[2].parameters(), lr=0.01))
    config = _config(checkpoint_path=checkpoint, checkpoint_every=1)
    histories = train(batch, task, optimizers, 3, config)
    assert (histories[1].diverged_at, histories[1].diverged_quantity) == (0, "parameters")
    assert histories[1].step == [0], "step 0 was taken with finite gradients, then its state was found"
    assert histories[0].step == histories[2].step == [0, 1, 2]
    saved = torch.load(checkpoint, weights_only=False)
    assert saved["step"] == 3 and saved["histories"][1]["diverged_quantity"] == "parameters"


# Checkpoints, log, host reads ---------------------------------------------------------------------


def test_resume_continues_the_same_curves(tmp_path):
    task = Float64(COPY)
    config = _config(clip=1.0)
    straight_log = tmp_path / "straight.jsonl"
    straight_batch = BatchedElmanRNN(_models(_spectral_margin_elu))
    straight = train(
        straight_batch, task, _cayley_adam(straight_batch.parameters()), 12, dataclasses.replace(config, log_path=straight_log)
    )

    checkpoint, log = tmp_path / "ck" / "run.pt", tmp_path / "resumed.jsonl"
    resumable = dataclasses.replace(config, checkpoint_path=checkpoint, log_path=log, checkpoint_every=4)
    first = BatchedElmanRNN(_models(_spectral_margin_elu))
    train(first, task, _cayley_adam(first.parameters()), 6, resumable)
    saved = torch.load(checkpoint, weights_only=False)
    # The keys of every checkpoint written so far: a changed set would refuse them on resume.
    assert set(saved) == {"step", "models", "optimizers", "generators", "torch_rng", "cuda_rng", "histories"}
    assert saved["step"] == 6 and len(saved["histories"]) == len(saved["generators"]) == K

    torch.manual_seed(1234)  # as after a killed process: another global RNG state ...
    resumed_batch = BatchedElmanRNN(_models(_spectral_margin_elu))
    with torch.no_grad():  # ... other weights, fresh optimizers
        for p in resumed_batch.parameters():
            p.add_(0.5)
    resumed = train(resumed_batch, task, _cayley_adam(resumed_batch.parameters()), 12, resumable)
    for ours, theirs in zip(resumed, straight):
        assert ours.step == list(range(12))
        assert ours.loss == theirs.loss and ours.grad_norm == theirs.grad_norm
    for p, q in zip(resumed_batch.parameters(), straight_batch.parameters()):
        assert torch.equal(p, q)
    assert log.read_text() == straight_log.read_text()


def test_checkpoint_that_does_not_fit_the_batch(tmp_path):
    checkpoint = tmp_path / "run.pt"
    config = _config(checkpoint_path=checkpoint)
    task = Float64(ADDING)
    batch = BatchedElmanRNN(_models(_orthogonal_relu))
    train(batch, task, _adam(batch.parameters()), 2, config)
    smaller = BatchedElmanRNN(_models(_orthogonal_relu)[:2])
    with pytest.raises(ValueError, match="holds 3 models, but this batch has 2"):
        train(smaller, task, _adam(smaller.parameters()), 2, config)
    single = _orthogonal_relu(0)
    with pytest.raises(ValueError, match="is not a checkpoint of this version"):
        train(single, task, _adam(single.parameters()), 2, config)
    single_checkpoint = tmp_path / "single.pt"
    train(single, task, _adam(single.parameters()), 2, _config(checkpoint_path=single_checkpoint))
    with pytest.raises(ValueError, match="is not a checkpoint of a BatchedElmanRNN run"):
        train(batch, task, _adam(batch.parameters()), 2, _config(checkpoint_path=single_checkpoint))


def test_one_host_read_per_step(host_reads):
    """Note [batched runs]: the K losses, penalties, accuracies and norms in one transfer."""
    batch = BatchedElmanRNN(_models(_glorot))
    optimizer = torch.optim.SGD(batch.parameters(), lr=0.01)
    config = _config(penalty=lambda m: m.rnn.weight_hh_l0.square().sum(), clip=1.0)
    train(batch, Float64(COPY), optimizer, 4, config)
    # The denormal mode in force before the run, one read per step, the state check at the end.
    assert host_reads == ["item"] + ["tolist"] * 4 + ["tolist"]
    host_reads.clear()
    train(batch, Float64(COPY), optimizer, 4, dataclasses.replace(config, log_every=2))
    # Steps 0 and 2 (with the guard's flags), the flags of the masked step 3, the state check.
    assert host_reads == ["item"] + ["tolist"] * 2 + ["tolist"] * 2


# Evaluation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("task", "build"), [(COPY, _glorot), (ADDING, _rin)], ids=["copy", "adding"])
@pytest.mark.parametrize("chunk_size", [None, 7])
def test_evaluate_scores_each_model_on_the_same_batch(task, build, chunk_size):
    models = _models(build)
    batch = BatchedElmanRNN(copy.deepcopy(models))
    batch.eval()
    scores = evaluate(batch, Float64(task), batch_size=20, seed=3, chunk_size=chunk_size)
    assert batch.training is False, "the mode is restored"
    for score, model in zip(scores, models):
        alone = evaluate(model, Float64(task), batch_size=20, seed=3)
        assert score["loss"] == pytest.approx(alone["loss"], rel=100 * EPS64)
        if alone["accuracy"] is None:
            assert score["accuracy"] is None
        else:  # accuracies are float32 means (tasks.py), weighted by chunk sizes here
            assert score["accuracy"] == pytest.approx(alone["accuracy"], rel=10 * torch.finfo(torch.float32).eps)


# Bad input ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("odd", "match"),
    [
        (lambda: ElmanRNN(2, N, 1, generator=_generator(0), dtype=torch.float64), "input_size=2 but models\\[0\\] has input_size=1"),
        (lambda: ElmanRNN(1, N + 1, 1, dtype=torch.float64), f"hidden_size={N + 1} but models\\[0\\] has hidden_size={N}"),
        (lambda: ElmanRNN(1, N, 2, dtype=torch.float64), "output_size=2"),
        (lambda: ElmanRNN(1, N, 1, num_layers=2, dtype=torch.float64), "num_layers=2"),
        (lambda: ElmanRNN(1, N, 1, nonlinearity="relu", dtype=torch.float64), "nonlinearity=relu but models\\[0\\] has nonlinearity=tanh"),
        (lambda: ElmanRNN(1, N, 1), "dtype=torch.float32 but models\\[0\\] has dtype=torch.float64"),
    ],
    ids=["input_size", "hidden_size", "output_size", "num_layers", "nonlinearity", "dtype"],
)
def test_models_of_different_architectures_are_refused(odd, match):
    models = [ElmanRNN(1, N, 1, dtype=torch.float64), odd()]
    with pytest.raises(ValueError, match=f"models\\[1\\] has {match}"):
        BatchedElmanRNN(models)


@pytest.mark.parametrize(
    ("models", "kwargs", "error", "match"),
    [
        ([], {}, ValueError, "at least one"),
        (ElmanRNN(1, 4, 1), {}, TypeError, "sequence of ElmanRNNs"),
        ([ElmanRNN(1, 4, 1), nn.RNN(1, 4)], {}, TypeError, r"models\[1\] must be an orthobook.models.ElmanRNN"),
        ("rnn", {}, TypeError, "sequence of ElmanRNNs"),
        ([ElmanRNN(1, 4, 1)] * 2, {}, ValueError, r"models\[1\] shares a parameter with models\[0\]"),
        ([ElmanRNN(1, 4, 1)], {"batch_seeds": [0, 1]}, ValueError, "one seed per model"),
        ([ElmanRNN(1, 4, 1)], {"batch_seeds": [-1]}, ValueError, r"batch_seeds\[0\] must be a non-negative int"),
        ([ElmanRNN(1, 4, 1)], {"batch_seeds": 0}, TypeError, "batch_seeds must be a sequence"),
        ([ElmanRNN(1, 4, 1)], {"batch_seeds": [0.5]}, TypeError, r"batch_seeds\[0\] must be an int"),
    ],
)
def test_bad_arguments(models, kwargs, error, match):
    with pytest.raises(error, match=match):
        BatchedElmanRNN(models, **kwargs)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.zeros(2, 4, 5, 1), ValueError, r"x must have shape \(3, batch, T, 1\)"),
        (torch.zeros(3, 4, 5, 2), ValueError, r"x must have shape \(3, batch, T, 1\)"),
        (torch.zeros(4, 5, 1), ValueError, "one batch per model"),
        (torch.zeros(3, 4, 5, 1, dtype=torch.float64), TypeError, "dtype torch.float32"),
        (torch.zeros(3, 4, 5, 1, dtype=torch.long), TypeError, "x must be"),
    ],
)
def test_bad_input(x, error, match):
    batch = BatchedElmanRNN([ElmanRNN(1, 4, 1) for _ in range(3)])
    with pytest.raises(error, match=match):
        batch(x)
