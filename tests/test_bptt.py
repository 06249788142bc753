"""Tests of orthobook.bptt: the hand-written forward and backward passes of K Elman RNNs.

The oracles are finite differences (gradcheck) and autograd through the Python loop of
:meth:`ElmanRNN.unrolled`, in float64."""

from __future__ import annotations

import pytest
import torch

from orthobook import bptt
from orthobook.bptt import elman
from orthobook.models import ElmanRNN
from orthobook.parametrizations import spectral_margin

NONLINEARITIES = ("tanh", "relu", "elu", "identity")
EPS64 = torch.finfo(torch.float64).eps


@pytest.mark.parametrize(
    ("nonlinearity", "d", "n", "out"),
    [(f, 2, 5, 3) for f in NONLINEARITIES] + [("tanh", 1, 5, 1), ("elu", bptt._NARROW, 5, 2)],
)
def test_gradcheck_two_layers_with_input_gradient(nonlinearity, d, n, out):
    """Note [BPTT by hand] against finite differences, every argument (the input x too):
    inputs narrower than bptt._NARROW projected step by step, one feature and one output
    (outer products), and a first layer as wide as the threshold, projected in one product."""
    g = torch.Generator().manual_seed(1)
    K, T, B = 2, 4, 3

    def tensor(*shape, scale=1.0):
        return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()

    arguments = [tensor(K, T, B, d), tensor(K, out, n), tensor(K, 1, out)]
    arguments += [tensor(K, n, d), tensor(K, 1, n), tensor(K, n, n, scale=0.5)]
    arguments += [tensor(K, n, n), tensor(K, 1, n), tensor(K, n, n, scale=0.5)]

    def run(x, R, c, *layers):
        return elman(nonlinearity, x, [layers[:3], layers[3:]], (R, c))

    assert torch.autograd.gradcheck(run, arguments)


@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_elman_rnn_forward_and_gradients_equal_the_python_loop(nonlinearity, num_layers):
    """On the CPU ElmanRNN.forward runs bptt.elman: output, parameter and input gradients
    equal autograd's through unrolled, for every nonlinearity and a constrained W."""
    model = ElmanRNN(2, 6, 3, nonlinearity=nonlinearity, num_layers=num_layers, dtype=torch.float64,
                     generator=torch.Generator().manual_seed(0))
    spectral_margin(model.rnn, "weight_hh_l0", margin=0.2)
    x = torch.randn(4, 9, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1), requires_grad=True)
    results = []
    for run in (model, lambda x: model.unrolled(x).output):
        model.zero_grad()
        x.grad = None
        y = run(x)
        y.square().sum().backward()
        results.append([y, x.grad, *(p.grad for p in model.parameters())])
    for hand, loop in zip(*results):
        torch.testing.assert_close(hand, loop, rtol=0, atol=1e3 * EPS64 * max(1.0, loop.abs().max().item()))


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_off_the_cpu_every_nonlinearity_runs(nonlinearity):
    """Away from the CPU tanh and relu take nn.RNN's fused kernel, elu and identity bptt.elman;
    on the meta device both give the shapes of the CPU run."""
    model = ElmanRNN(1, 4, 2, nonlinearity=nonlinearity).to("meta")
    y = model(torch.ones(3, 5, 1, device="meta"))
    assert y.device.type == "meta" and y.shape == (3, 5, 2)
    y.sum().backward()
    assert model.rnn.weight_hh_l0.grad.shape == (4, 4)
