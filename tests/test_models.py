"""Tests of orthobook.models: the Elman RNN (fused and unrolled), its nonlinearities, the LSTM."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from orthobook.models import LSTM, NONLINEARITIES, ElmanRNN, derivative
from orthobook.recurrent import Plain, Recurrence

DTYPE = torch.float64
EPS = torch.finfo(DTYPE).eps


class CountingPlain(Plain):
    """A plain recurrence that counts how often ``W`` is built."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.calls = 0

    def forward(self) -> torch.Tensor:
        self.calls += 1
        return super().forward()


def _model(nonlinearity="tanh", num_layers=1, readout="last", input_size=3, hidden_size=6, output_size=2, seed=0):
    torch.manual_seed(seed)
    recurrences = [
        Plain(hidden_size, "orthogonal", 0.9 + 0.1 * layer, generator=torch.Generator().manual_seed(seed + layer))
        for layer in range(num_layers)
    ]
    model = ElmanRNN(
        input_size,
        hidden_size,
        output_size,
        recurrence=recurrences,
        nonlinearity=nonlinearity,
        num_layers=num_layers,
        readout=readout,
    )
    return model.to(DTYPE)


def _x(batch=4, T=9, input_size=3, seed=1):
    return torch.randn(batch, T, input_size, dtype=DTYPE, generator=torch.Generator().manual_seed(seed))


def _tol(model: ElmanRNN, T: int) -> float:
    return 10 * model.hidden_size * T * model.num_layers * EPS


# Fused kernel against the step-by-step recurrence (Book: Eq. (gp-recurrence)) ------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_fused_equals_unrolled(nonlinearity, num_layers, readout):
    """Book: Eq. (gp-recurrence): the fused kernel and the Python loop compute the same network."""
    model = _model(nonlinearity, num_layers, readout)
    x = _x()
    fused = model(x)
    trajectory = model.unrolled(x)
    assert fused.shape == ((4, 2) if readout == "last" else (4, 9, 2))
    assert fused.dtype == DTYPE
    torch.testing.assert_close(fused, trajectory.output, rtol=0, atol=_tol(model, 9))


def _reference_rnn(model: ElmanRNN, nonlinearity: str) -> nn.RNN:
    """A plain ``torch.nn.RNN`` holding the model's weights, with ``weight_hh`` from the recurrences."""
    reference = nn.RNN(
        model.rnn.input_size, model.hidden_size, num_layers=model.num_layers, nonlinearity=nonlinearity, batch_first=True
    ).to(DTYPE)
    with torch.no_grad():
        for layer, W in enumerate(model.recurrent_matrices()):
            for name in ("weight_ih", "bias_ih", "bias_hh"):
                getattr(reference, f"{name}_l{layer}").copy_(getattr(model.rnn, f"{name}_l{layer}"))
            getattr(reference, f"weight_hh_l{layer}").copy_(W)
    return reference


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_fused_equals_torch_rnn(nonlinearity, num_layers):
    """Oracle: torch.nn.RNN with the same weights gives the same states and readout."""
    model = _model(nonlinearity, num_layers, "all")
    reference = _reference_rnn(model, nonlinearity)
    x = _x()
    states, _ = reference(x)
    expected = model.readout(states)
    torch.testing.assert_close(model(x), expected, rtol=0, atol=_tol(model, 9))


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu", "identity"])
def test_unrolled_equals_naive_loop(nonlinearity):
    """Book: Eq. (gp-recurrence), h_t = f(W h_{t-1} + V x_t + b), written out once more."""
    model = _model(nonlinearity, 1, "all")
    x = _x()
    W = model.recurrences[0]()
    V, b = model.rnn.weight_ih_l0, model.rnn.bias_ih_l0 + model.rnn.bias_hh_l0
    f = {"tanh": torch.tanh, "relu": torch.relu, "elu": nn.functional.elu, "identity": lambda a: a}[nonlinearity]
    h = torch.zeros(4, 6, dtype=DTYPE)
    states, preactivations = [], []
    for t in range(x.shape[1]):
        a = torch.stack([W @ h[i] + V @ x[i, t] + b for i in range(4)])
        h = f(a)
        states.append(h)
        preactivations.append(a)
    trajectory = model.unrolled(x)
    tol = _tol(model, 9)
    assert len(trajectory.states) == len(trajectory.preactivations) == 9
    for t in range(9):
        torch.testing.assert_close(trajectory.states[t], states[t], rtol=0, atol=tol)
        torch.testing.assert_close(trajectory.preactivations[t], preactivations[t], rtol=0, atol=tol)
    torch.testing.assert_close(model(x), model.readout(torch.stack(states, 1)), rtol=0, atol=tol)


@pytest.mark.parametrize("nonlinearity", ["elu", "identity"])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_unfused_nonlinearities_run_unrolled(nonlinearity, readout):
    model = _model(nonlinearity, 2, readout)
    x = _x()
    out = model(x)
    assert out.shape == ((4, 2) if readout == "last" else (4, 9, 2))
    assert torch.equal(out, model.unrolled(x).output)
    # They differ from what the tanh kernel that holds V and b would give.
    tanh_states, _ = _reference_rnn(model, "tanh")(x)
    assert not torch.allclose(model.readout(tanh_states) if readout == "all" else model.readout(tanh_states[:, -1]), out)


# The recurrence is built once per forward -----------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "elu"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_recurrence_called_once_per_forward(nonlinearity, num_layers):
    recurrences = [CountingPlain(5) for _ in range(num_layers)]
    model = ElmanRNN(2, 5, 1, recurrence=recurrences, nonlinearity=nonlinearity, num_layers=num_layers)
    x = torch.randn(3, 12, 2)
    model(x)
    assert [r.calls for r in recurrences] == [1] * num_layers
    model(x).sum().backward()
    assert [r.calls for r in recurrences] == [2] * num_layers


def test_one_recurrence_per_layer():
    first, second = Plain(4, "identity", 0.5), Plain(4, "orthogonal")
    model = ElmanRNN(2, 4, 1, recurrence=[first, second], num_layers=2)
    assert model.recurrences[0] is first and model.recurrences[1] is second
    Ws = model.recurrent_matrices()
    assert torch.equal(Ws[0], first.weight) and torch.equal(Ws[1], second.weight)
    default = ElmanRNN(2, 4, 1, num_layers=3)
    assert len(default.recurrences) == 3
    assert all(isinstance(r, Plain) for r in default.recurrences)
    assert len({id(r) for r in default.recurrences}) == 3, "each layer needs its own W"


def test_single_recurrence_module_accepted():
    recurrence = Plain(4)
    model = ElmanRNN(2, 4, 1, recurrence=recurrence)
    assert list(model.recurrences) == [recurrence]


def test_no_weight_hh_parameter():
    """W lives in the recurrence only; the fused module holds V and b."""
    model = ElmanRNN(2, 4, 1, num_layers=2)
    names = {name for name, _ in model.named_parameters()}
    assert not any("weight_hh" in name for name in names)
    assert {"recurrences.0.weight", "recurrences.1.weight", "rnn.weight_ih_l0", "rnn.weight_ih_l1"} <= names


def test_properties():
    model = ElmanRNN(3, 7, 2, num_layers=2)
    assert model.hidden_size == 7 and model.num_layers == 2


# Errors -------------------------------------------------------------------------------------------


class NotARecurrence(nn.Module):
    hidden_size = 4

    def forward(self):
        return torch.eye(4)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"recurrence": NotARecurrence()}, TypeError, r"recurrence\[0\] must be an orthobook.recurrent.Recurrence"),
        ({"recurrence": Plain(5)}, ValueError, r"recurrence\[0\] has hidden_size=5, the model has 4"),
        ({"recurrence": [Plain(4)], "num_layers": 2}, ValueError, "one module per layer: got 1 for num_layers=2"),
        ({"recurrence": [Plain(4)] * 3, "num_layers": 2}, ValueError, "got 3 for num_layers=2"),
        ({"nonlinearity": "sigmoid"}, ValueError, "nonlinearity must be one of"),
        ({"readout": "first"}, ValueError, "readout must be one of 'last', 'all'"),
        ({"num_layers": 0}, ValueError, "num_layers must be a positive int"),
    ],
)
def test_constructor_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ElmanRNN(2, 4, 1, **kwargs)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.zeros(3, 5), ValueError, r"x must have shape \(batch, T, 2\), got \(3, 5\)"),
        (torch.zeros(3, 5, 4), ValueError, r"x must have shape \(batch, T, 2\), got \(3, 5, 4\)"),
        (torch.zeros(3, 5, 2, dtype=torch.long), TypeError, "x must be a floating-point tensor"),
        ([[0.0, 0.0]], TypeError, "x must be a torch.Tensor"),
    ],
)
@pytest.mark.parametrize("method", ["forward", "unrolled"])
def test_input_errors(x, error, match, method):
    model = ElmanRNN(2, 4, 1)
    with pytest.raises(error, match=match):
        getattr(model, method)(x)


def test_lstm_input_error():
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 2\)"):
        LSTM(2, 4, 1)(torch.zeros(3, 5, 3))


# Derivatives of the nonlinearities (Book: Eq. (gp-jacobian)) ---------------------------------------


@pytest.mark.parametrize("nonlinearity", sorted(NONLINEARITIES))
def test_derivative_matches_autograd(nonlinearity):
    """Book: Eq. (gp-jacobian): D_t = diag(f'(a_t)), checked against autograd."""
    a = (3 * torch.randn(5, 40, dtype=DTYPE, generator=torch.Generator().manual_seed(2))).requires_grad_()
    (expected,) = torch.autograd.grad(NONLINEARITIES[nonlinearity](a).sum(), a)
    result = derivative(nonlinearity, a.detach())
    assert result.shape == a.shape and result.dtype == DTYPE
    torch.testing.assert_close(result, expected, rtol=0, atol=4 * EPS)


def test_derivative_bad_name():
    with pytest.raises(ValueError, match="nonlinearity must be one of"):
        derivative("softplus", torch.zeros(3))


# LSTM ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("readout", ["last", "all"])
@pytest.mark.parametrize("num_layers", [1, 2])
def test_lstm_shapes(readout, num_layers):
    model = LSTM(3, 8, 2, num_layers=num_layers, readout=readout)
    out = model(torch.randn(4, 6, 3))
    assert out.shape == ((4, 2) if readout == "last" else (4, 6, 2))


@pytest.mark.parametrize("forget_bias", [1.0, 2.5])
def test_lstm_forget_bias(forget_bias):
    n = 5
    model = LSTM(3, n, 1, num_layers=2, forget_bias=forget_bias)
    for layer in range(2):
        total = getattr(model.lstm, f"bias_ih_l{layer}") + getattr(model.lstm, f"bias_hh_l{layer}")
        # Gates in PyTorch's order (input, forget, cell, output): the forget block is the second.
        torch.testing.assert_close(total[n : 2 * n], torch.full((n,), forget_bias), rtol=0, atol=0)
        assert not torch.allclose(total[:n], torch.full((n,), forget_bias))


def test_lstm_errors():
    with pytest.raises(ValueError, match="readout must be one of"):
        LSTM(2, 4, 1, readout="mean")
    with pytest.raises(ValueError, match="hidden_size must be a positive int"):
        LSTM(2, 0, 1)


# Gradients ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu", "elu"])
def test_gradients_reach_recurrence(nonlinearity):
    """The fused kernel backpropagates into W, and agrees with the unrolled loop's gradient."""
    model = _model(nonlinearity, 2, "all")
    x = _x()
    grads = {}
    for path in ("fused", "unrolled"):
        model.zero_grad()
        out = model(x) if path == "fused" else model.unrolled(x).output
        (out**2).sum().backward()
        grads[path] = [r.weight.grad.clone() for r in model.recurrences]
    for fused, unrolled in zip(grads["fused"], grads["unrolled"]):
        assert fused.abs().max() > 0
        torch.testing.assert_close(fused, unrolled, rtol=0, atol=100 * _tol(model, 9))


def test_gradcheck_fused_forward():
    """The fused kernel's backward pass with respect to the input, against finite differences."""
    model = _model("tanh", 2, "all", input_size=2, hidden_size=3, output_size=1)
    x = _x(batch=2, T=4, input_size=2).requires_grad_()
    assert torch.autograd.gradcheck(model, (x,))


class ScaledRecurrence(Recurrence):
    """A recurrence whose W is a function of a parameter (not the parameter itself)."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.hidden_size = n
        self.base = nn.Parameter(torch.linalg.qr(torch.randn(n, n))[0])
        self.log_scale = nn.Parameter(torch.tensor(-0.1))

    def forward(self) -> torch.Tensor:
        return self.log_scale.exp() * self.base


def test_gradcheck_through_recurrence_parameters():
    torch.manual_seed(3)
    recurrence = ScaledRecurrence(3).to(DTYPE)
    model = ElmanRNN(2, 3, 1, recurrence=recurrence).to(DTYPE)
    x = _x(batch=2, T=5, input_size=2)

    def f(base, log_scale):
        params = {"recurrences.0.base": base, "recurrences.0.log_scale": log_scale}
        return torch.func.functional_call(model, params, (x,))

    inputs = (recurrence.base.detach().clone().requires_grad_(), recurrence.log_scale.detach().clone().requires_grad_())
    assert torch.autograd.gradcheck(f, inputs)
