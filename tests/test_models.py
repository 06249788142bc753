"""Tests of orthobook.models: the Elman RNN (fused and unrolled), its initial draws, RIN/IRNN, the LSTM."""

from __future__ import annotations

import inspect

import pytest
import torch
from torch import nn
from torch.nn.utils import parametrize

from orthobook.init import orthogonal
from orthobook.models import LSTM, NONLINEARITIES, ElmanRNN, derivative, irnn, rin

DTYPE = torch.float64
EPS = torch.finfo(DTYPE).eps


def seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _model(nonlinearity="tanh", num_layers=1, input_size=3, hidden_size=6, output_size=2, seed=0) -> ElmanRNN:
    W0 = 0.9 * orthogonal(hidden_size, generator=seeded(seed), dtype=DTYPE)
    return ElmanRNN(
        input_size,
        hidden_size,
        output_size,
        nonlinearity=nonlinearity,
        num_layers=num_layers,
        recurrent_init=W0,
        generator=seeded(seed),
        dtype=DTYPE,
    )


def _x(batch=4, T=9, input_size=3, seed=1) -> torch.Tensor:
    return torch.randn(batch, T, input_size, dtype=DTYPE, generator=seeded(seed))


def _tol(model: ElmanRNN, T: int) -> float:
    return 10 * model.hidden_size * T * model.num_layers * EPS


# Fused kernel against the step-by-step recurrence (Book: Eq. (gp-recurrence)) ------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_fused_equals_unrolled(nonlinearity, num_layers):
    """Book: Eq. (gp-recurrence): the fused kernel and the Python loop compute the same network."""
    model = _model(nonlinearity, num_layers)
    x = _x()
    fused = model(x)
    trajectory = model.unrolled(x)
    assert fused.shape == (4, 9, 2) and fused.dtype == DTYPE
    torch.testing.assert_close(fused, trajectory.output, rtol=0, atol=_tol(model, 9))
    assert len(trajectory.states) == len(trajectory.preactivations) == 9


@pytest.mark.parametrize("nonlinearity", list(NONLINEARITIES))
def test_model_is_the_recurrence_by_hand(nonlinearity):
    """h_t = f(W h_{t-1} + V x_t + b), y_t = R h_t + c, with the model's own tensors."""
    model = _model(nonlinearity)
    x = _x()
    f = NONLINEARITIES[nonlinearity]
    rnn = model.rnn
    h = torch.zeros(4, 6, dtype=DTYPE)
    outputs = []
    for t in range(x.shape[1]):
        h = f(x[:, t] @ rnn.weight_ih_l0.T + h @ rnn.weight_hh_l0.T + rnn.bias_ih_l0 + rnn.bias_hh_l0)
        outputs.append(model.readout(h))
    torch.testing.assert_close(model(x), torch.stack(outputs, 1), rtol=0, atol=_tol(model, 9))


def test_unrolled_backward_has_no_per_step_slices():
    """The loop reads its drive through one unbind: no (batch, T, n) zero-filled select per step."""
    model = _model("elu")
    output = model.unrolled(_x(T=20)).output
    names: list[str] = []
    seen, stack = set(), [output.grad_fn]
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.append(type(node).__name__)
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert names.count("UnbindBackward0") == 1
    assert not any(name.startswith(("SelectBackward", "SliceBackward")) for name in names)


def test_unrolled_graph_grows_linearly_in_T():
    def graph_size(T: int) -> int:
        output = _model("identity").unrolled(_x(T=T)).output
        seen, stack = set(), [output.grad_fn]
        while stack:
            node = stack.pop()
            if node is not None and node not in seen:
                seen.add(node)
                stack.extend(next_fn for next_fn, _ in node.next_functions)
        return len(seen)

    small, large = graph_size(10), graph_size(40)
    assert large - small == 3 * (graph_size(20) - small)


# Initial draws -----------------------------------------------------------------------------------------


def test_generator_makes_the_initial_draw_reproducible():
    a = ElmanRNN(3, 8, 2, generator=seeded(4))
    b = ElmanRNN(3, 8, 2, generator=seeded(4))
    c = ElmanRNN(3, 8, 2, generator=seeded(5))
    for (name, p), q, r in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        assert torch.equal(p, q), name
        assert not torch.equal(p, r), name


def test_generator_leaves_the_global_generator_alone():
    state = torch.get_rng_state()
    ElmanRNN(3, 8, 2, generator=seeded(0))
    LSTM(3, 8, 2, generator=seeded(0))
    rin(3, 8, 2, generator=seeded(0))
    assert torch.equal(torch.get_rng_state(), state)


def test_default_draws_are_pytorchs_ranges():
    model = ElmanRNN(3, 16, 2, generator=seeded(0))
    bound = 16**-0.5
    for name, p in [*model.rnn.named_parameters(), *model.readout.named_parameters()]:
        if name != "weight_hh_l0":
            assert p.abs().max() <= bound, name


@pytest.mark.parametrize("init", ["glorot", "orthogonal", "identity"])
def test_recurrent_init_names(init):
    W = ElmanRNN(2, 8, 1, recurrent_init=init, generator=seeded(1), dtype=DTYPE).recurrent_matrices()[0]
    eye = torch.eye(8, dtype=DTYPE)
    if init == "identity":
        assert torch.equal(W, eye)
    elif init == "orthogonal":
        assert torch.linalg.matrix_norm(W.T @ W - eye) <= 10 * 8 * EPS
    else:
        assert 0.1 < W.std() * 8**0.5 < 10


def test_recurrent_init_tensor_and_input_init():
    W0 = torch.randn(5, 5, dtype=DTYPE)
    V0 = torch.randn(5, 2, dtype=DTYPE)
    model = ElmanRNN(2, 5, 1, recurrent_init=W0, input_init=V0, num_layers=2, dtype=DTYPE)
    assert all(torch.equal(W, W0) for W in model.recurrent_matrices())
    assert torch.equal(model.rnn.weight_ih_l0, V0)
    model = ElmanRNN(2, 400, 1, input_init=0.25, generator=seeded(2))
    assert abs(model.rnn.weight_ih_l0.std().item() - 0.25) < 0.02


def test_dtype_follows_torch_default():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert ElmanRNN(2, 4, 1).rnn.weight_hh_l0.dtype == torch.float64
        assert LSTM(2, 4, 1).readout.weight.dtype == torch.float64
    finally:
        torch.set_default_dtype(previous)


# Constraints on the model's W --------------------------------------------------------------------------


class _Counting(nn.Module):
    """An identity parametrization that counts how often it is evaluated."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return X


@pytest.mark.parametrize("nonlinearity", ["tanh", "elu"])
def test_constrained_W_is_built_once_per_forward(nonlinearity):
    model = _model(nonlinearity)
    counter = _Counting()
    parametrize.register_parametrization(model.rnn, "weight_hh_l0", counter)
    counter.calls = 0  # registration evaluates it once to check its output
    model(_x()).sum().backward()
    assert counter.calls == 1


# RIN and IRNN (Book: Eq. (rin-recurrence)) ---------------------------------------------------------------


def test_rin_and_irnn_share_one_signature():
    assert inspect.signature(rin) == inspect.signature(irnn)


def test_rin_is_U_plus_identity_and_irnn_starts_at_identity():
    model = rin(2, 6, 1, std=0.0, generator=seeded(0), dtype=DTYPE)
    twin = irnn(2, 6, 1, std=0.0, generator=seeded(0), dtype=DTYPE)
    assert torch.equal(model.recurrent_matrices()[0], torch.eye(6, dtype=DTYPE))
    assert torch.equal(twin.recurrent_matrices()[0], torch.eye(6, dtype=DTYPE))
    x = _x(input_size=2)
    torch.testing.assert_close(model(x), twin(x), rtol=0, atol=0)
    assert model.nonlinearity == twin.nonlinearity == "relu"
    assert all(getattr(model.rnn, f"bias_{k}_l0").abs().max() == 0 for k in ("ih", "hh"))


def test_rin_draws_small_U_and_V():
    model = rin(2, 200, 1, std=1e-3, generator=seeded(3))
    U = model.recurrent_matrices()[0] - torch.eye(200)
    assert abs(U.std().item() - 1e-3) < 1e-4
    assert abs(model.rnn.weight_ih_l0.std().item() - 1e-3) < 2e-4


# LSTM, derivative, bad inputs -----------------------------------------------------------------------------


def test_lstm_shapes_and_forget_bias():
    model = LSTM(3, 5, 2, forget_bias=1.0, generator=seeded(0))
    assert model(torch.zeros(4, 7, 3)).shape == (4, 7, 2)
    bias = model.lstm.bias_ih_l0 + model.lstm.bias_hh_l0
    assert torch.equal(bias[5:10], torch.ones(5))


@pytest.mark.parametrize("nonlinearity", list(NONLINEARITIES))
def test_derivative_matches_autograd(nonlinearity):
    """Book: Eq. (gp-jacobian): D_t = diag(f'(a_t))."""
    a = torch.linspace(-2, 2, 9, dtype=DTYPE).add(0.01).requires_grad_()
    (grad,) = torch.autograd.grad(NONLINEARITIES[nonlinearity](a).sum(), a)
    torch.testing.assert_close(derivative(nonlinearity, a.detach()), grad, rtol=0, atol=10 * EPS)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"input_size": 0}, ValueError, "input_size"),
        ({"hidden_size": 2.0}, TypeError, "hidden_size"),
        ({"nonlinearity": "sigmoid"}, ValueError, "nonlinearity"),
        ({"recurrent_init": "haar"}, ValueError, "recurrent_init"),
        ({"recurrent_init": torch.eye(3)}, ValueError, "recurrent_init"),
        ({"input_init": torch.zeros(4, 1)}, ValueError, "input_init"),
        ({"input_init": -1.0}, ValueError, "input_init"),
        ({"dtype": torch.int64}, TypeError, "dtype"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"input_size": 2, "hidden_size": 4, "output_size": 1, **kwargs}
    with pytest.raises(error, match=match):
        ElmanRNN(args.pop("input_size"), args.pop("hidden_size"), args.pop("output_size"), **args)


def test_bad_input_shape():
    with pytest.raises(ValueError, match="x must have shape"):
        ElmanRNN(2, 4, 1)(torch.zeros(3, 5, 3))
    with pytest.raises(TypeError, match="x must be a floating-point tensor"):
        LSTM(2, 4, 1)(torch.zeros(3, 5, 2, dtype=torch.long))
