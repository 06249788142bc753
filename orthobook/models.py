"""Recurrent models as PyTorch modules: an ``nn.RNN`` (or its unrolled cell) plus a readout.

The Elman RNN computes (Book: Eq. (gp-recurrence))

    h_t = f(W h_{t-1} + V x_t + b),    y_t = R h_t + c   for every t,

with ``W = rnn.weight_hh_l0`` an ordinary ``nn.RNN`` weight. A constraint is one call on that
tensor, the PyTorch way (:mod:`orthobook.parametrizations`)::

    model = ElmanRNN(1, 128, 10, nonlinearity="relu")
    spectral_margin(model.rnn, "weight_hh_l0", margin=0.1)

``forward`` builds a constrained ``W`` once per pass (under
:func:`torch.nn.utils.parametrize.cached`) and runs the recurrence on
:func:`orthobook.bptt.elman`, whose backward pass is written out by hand and trains faster than
``nn.RNN``'s kernel on a CPU; on a GPU ``tanh`` and ``relu`` run PyTorch's fused kernel (cuDNN)
on the same parameters. Every model returns ``(batch, T, out)``; a task scores the steps it
needs (the adding task and sequential MNIST read the last one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from orthobook import _checks, bptt
from orthobook import init as _init
from orthobook.parametrizations import residual_identity

__all__ = ["ElmanRNN", "LSTM", "Trajectory", "NONLINEARITIES", "derivative", "rin", "irnn"]

NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "identity": lambda a: a,
}
_FUSED = ("tanh", "relu")
_RECURRENT_INITS = ("glorot", "orthogonal", "identity")


def derivative(nonlinearity: str, a: torch.Tensor) -> torch.Tensor:
    """``f'(a)``, the diagonal of ``D_t`` in the Jacobian ``∂h_t/∂h_{t-1} = D_t W``.

    Book: Eq. (gp-jacobian). ``a``: (..., n) pre-activations; returns the same shape.
    """
    _checks.one_of(nonlinearity, "nonlinearity", tuple(NONLINEARITIES))
    if nonlinearity == "tanh":
        return 1.0 - torch.tanh(a) ** 2
    if nonlinearity == "relu":
        return (a > 0).to(a.dtype)
    if nonlinearity == "elu":
        return torch.where(a > 0, torch.ones_like(a), torch.exp(a))
    return torch.ones_like(a)


class Trajectory(NamedTuple):
    """What :meth:`ElmanRNN.unrolled` returns.

    Attributes:
        output: the model's output (batch, T, out), as from ``forward``.
        states: ``T`` tensors (batch, n): ``h_1 … h_T`` of the top layer, each a node of
            the autograd graph (so ``torch.autograd.grad(loss, states)`` gives ``∂L/∂h_t``).
        preactivations: ``T`` tensors (batch, n): ``a_t = W h_{t-1} + V x_t + b`` of the top layer.
    """

    output: torch.Tensor
    states: list[torch.Tensor]
    preactivations: list[torch.Tensor]


class ElmanRNN(nn.Module):
    """Elman RNN ``h_t = f(W h_{t-1} + V x_t + b)`` with a linear readout at every step.

    The parameters live in ``self.rnn`` (an ``nn.RNN``: ``weight_hh_l{k}`` is ``W`` of layer
    ``k``, ``weight_ih_l{k}`` is ``V``) and ``self.readout`` (an ``nn.Linear``). Every initial
    value is drawn from ``generator`` (torch's global generator when ``None``): ``V``, the
    biases and the readout as PyTorch draws them, ``U(−1/√n, 1/√n)``; ``W`` as
    ``recurrent_init`` says.

    Args:
        input_size: features per step of the input ``x``.
        hidden_size: n, the state size.
        output_size: size of the linear readout.
        nonlinearity: ``"tanh"``, ``"relu"`` (both fused on a GPU), ``"elu"`` or ``"identity"``.
        num_layers: depth of the stack; layer ``l + 1`` reads the states of layer ``l``.
        recurrent_init: ``"glorot"``, ``"orthogonal"`` (Haar), ``"identity"``, or an (n, n)
            tensor, for every layer's ``W``.
        input_init: ``None`` (PyTorch's uniform draw), a standard deviation ``std ≥ 0`` for
            ``V ~ N(0, std²)``, or an (n, input_size) tensor, for the first layer's ``V``.
        generator: the generator of every initial draw.
        dtype: floating dtype of the parameters (``None``: torch's default dtype).

    Shapes:
        ``x``: (batch, T, input_size) → (batch, T, output_size).

    Example:
        >>> model = ElmanRNN(2, 16, 1, generator=torch.Generator().manual_seed(0))
        >>> model(torch.zeros(4, 10, 2)).shape
        torch.Size([4, 10, 1])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        nonlinearity: str = "tanh",
        num_layers: int = 1,
        recurrent_init: str | torch.Tensor = "glorot",
        input_init: float | torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, output_size, num_layers)
        dtype = _checks.floating_dtype(dtype)
        self.nonlinearity = _checks.one_of(nonlinearity, "nonlinearity", tuple(NONLINEARITIES))
        # For elu/identity the module only holds the parameters (its "tanh" is never run).
        self.rnn = _uninitialised(
            nn.RNN,
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity=nonlinearity if nonlinearity in _FUSED else "tanh",
            batch_first=True,
            dtype=dtype,
        )
        self.readout = _uninitialised(nn.Linear, hidden_size, output_size, dtype=dtype)
        W0 = _recurrent_matrix(recurrent_init, hidden_size, generator, dtype)
        with torch.no_grad():
            for name, param in [*self.rnn.named_parameters(), *self.readout.named_parameters()]:
                if not name.startswith("weight_hh"):
                    _uniform_(param, hidden_size, generator)
                elif W0 is None:
                    param.copy_(_init.glorot(hidden_size, generator=generator, dtype=dtype))
                else:
                    param.copy_(W0)
            if input_init is not None:
                self.rnn.weight_ih_l0.copy_(_input_matrix(input_init, hidden_size, input_size, generator, dtype))

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    def recurrent_matrices(self) -> list[torch.Tensor]:
        """Every layer's ``W`` (n, n), built once (a constrained ``W`` from its parametrization)."""
        with parametrize.cached():
            return [getattr(self.rnn, f"weight_hh_l{layer}") for layer in range(self.num_layers)]

    def layer_parameters(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Every layer's ``(V, b, W)``: (n, in_l), (1, n) (``bias_ih + bias_hh``) and (n, n),
        ``W`` built once (a constrained ``W`` from its parametrization)."""
        with parametrize.cached():
            return [
                (
                    getattr(self.rnn, f"weight_ih_l{layer}"),
                    (getattr(self.rnn, f"bias_ih_l{layer}") + getattr(self.rnn, f"bias_hh_l{layer}")).unsqueeze(0),
                    getattr(self.rnn, f"weight_hh_l{layer}"),
                )
                for layer in range(self.num_layers)
            ]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.rnn.input_size)
        if self.nonlinearity in _FUSED and x.device.type != "cpu":
            with parametrize.cached():
                states, _ = self.rnn(x)  # the fused kernel (cuDNN on a GPU)
            return self.readout(states)
        layers = [tuple(p.unsqueeze(0) for p in layer) for layer in self.layer_parameters()]
        readout = (self.readout.weight.unsqueeze(0), self.readout.bias.view(1, 1, -1))
        X = x.transpose(0, 1).unsqueeze(0).contiguous()  # (1, T, batch, in): a batch of one model
        return bptt.elman(self.nonlinearity, X, layers, readout)[0].transpose(0, 1)

    def unrolled(self, x: torch.Tensor) -> Trajectory:
        """Run the recurrence step by step in Python, keeping every state.

        Same parameters and same result as ``forward``; used by the gradient diagnostics,
        which need each ``h_t`` as a node of the graph (and a graph that can be differentiated
        again, which ``forward``'s is not on the CPU). The loop
        iterates over ``drive.unbind(1)``, so its backward pass is linear in T (indexing
        ``drive[:, t]`` would add a (batch, T, n) zero tensor per step).
        """
        _check_input(x, self.rnn.input_size)
        f = NONLINEARITIES[self.nonlinearity]
        layer_input = x
        for V, b, W in self.layer_parameters():
            drive = F.linear(layer_input, V, b.squeeze(0))
            h = x.new_zeros(x.shape[0], self.hidden_size)
            states, preactivations = [], []
            for drive_t in drive.unbind(1):
                a = torch.addmm(drive_t, h, W.T)
                h = f(a)
                preactivations.append(a)
                states.append(h)
            layer_input = torch.stack(states, 1)
        return Trajectory(self.readout(layer_input), states, preactivations)


class LSTM(nn.Module):
    """LSTM baseline (Hochreiter & Schmidhuber 1997) with a linear readout at every step.

    Args:
        input_size, hidden_size, output_size, num_layers, generator, dtype: as for
            :class:`ElmanRNN` (every weight drawn as PyTorch draws it, from ``generator``).
        forget_bias: initial bias of the forget gate (1.0, Jozefowicz et al. 2015).

    Shapes:
        ``x``: (batch, T, input_size) → (batch, T, output_size).

    Example:
        >>> LSTM(2, 8, 3)(torch.zeros(4, 5, 2)).shape
        torch.Size([4, 5, 3])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int = 1,
        forget_bias: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, output_size, num_layers)
        dtype = _checks.floating_dtype(dtype)
        self.lstm = _uninitialised(nn.LSTM, input_size, hidden_size, num_layers=num_layers, batch_first=True, dtype=dtype)
        self.readout = _uninitialised(nn.Linear, hidden_size, output_size, dtype=dtype)
        with torch.no_grad():
            for param in [*self.lstm.parameters(), *self.readout.parameters()]:
                _uniform_(param, hidden_size, generator)
            for layer in range(num_layers):
                # PyTorch orders the gates (input, forget, cell, output); b_ih + b_hh is the bias.
                getattr(self.lstm, f"bias_ih_l{layer}")[hidden_size : 2 * hidden_size].fill_(forget_bias)
                getattr(self.lstm, f"bias_hh_l{layer}")[hidden_size : 2 * hidden_size].zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.lstm.input_size)
        states, _ = self.lstm(x)
        return self.readout(states)


def rin(
    input_size: int,
    hidden_size: int,
    output_size: int,
    *,
    num_layers: int = 1,
    std: float = 1e-3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> ElmanRNN:
    """The recurrent identity network (RIN) of Hu et al. (2018), a stack of ReLU layers.

    Each layer computes ``h_t = relu((U + I) h_{t-1} + V x_t + b)`` (Book: Eq. (rin-recurrence)):
    ``weight_hh_l{k}`` carries :func:`~orthobook.parametrizations.residual_identity`, so only
    ``U`` is learned. The paper's initialisation: ``U`` and the first layer's ``V`` drawn
    ``N(0, std²)`` (``std = 1e-3``), every bias 0.

    Args:
        input_size, hidden_size, output_size, num_layers, generator, dtype: as for
            :class:`ElmanRNN` (the paper stacks 1 to 3 layers).
        std: standard deviation ≥ 0 of the initial ``U`` and ``V``.

    Returns:
        An :class:`ElmanRNN` with ``nonlinearity="relu"``.

    Example:
        >>> model = rin(2, 16, 1, num_layers=2)
        >>> model(torch.zeros(4, 10, 2)).shape
        torch.Size([4, 10, 1])
    """
    model = _identity_relu(input_size, hidden_size, output_size, num_layers, std, generator, dtype)
    for layer in range(num_layers):
        residual_identity(model.rnn, f"weight_hh_l{layer}", std=std, generator=generator)
    return model


def irnn(
    input_size: int,
    hidden_size: int,
    output_size: int,
    *,
    num_layers: int = 1,
    std: float = 1e-3,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> ElmanRNN:
    """The IRNN of Le, Jaitly & Hinton (2015): ReLU units, ``W`` initialised to ``I``, ``b = 0``.

    ``W`` is learned as a whole, so at the start the IRNN computes the same function as
    :func:`rin` with ``U = 0``; they differ in what is learned and where an L2 penalty pulls
    (Book: Eq. (rin-prior)). Same signature as :func:`rin`; ``std`` is the spread of ``V``.

    Returns:
        An :class:`ElmanRNN` with ``nonlinearity="relu"``.

    Example:
        >>> torch.equal(irnn(2, 4, 1).recurrent_matrices()[0], torch.eye(4))
        True
    """
    return _identity_relu(input_size, hidden_size, output_size, num_layers, std, generator, dtype)


def _identity_relu(
    input_size: int,
    hidden_size: int,
    output_size: int,
    num_layers: int,
    std: float,
    generator: torch.Generator | None,
    dtype: torch.dtype | None,
) -> ElmanRNN:
    """ReLU layers with ``W = I``, every ``V ~ N(0, std²)`` and zero biases."""
    _checks.positive_int(num_layers, "num_layers")
    _checks.non_negative_float(std, "std")
    model = ElmanRNN(
        input_size,
        hidden_size,
        output_size,
        nonlinearity="relu",
        num_layers=num_layers,
        recurrent_init="identity",
        generator=generator,
        dtype=dtype,
    )
    with torch.no_grad():
        for layer in range(num_layers):
            V = getattr(model.rnn, f"weight_ih_l{layer}")
            V.copy_(std * torch.randn(V.shape, generator=generator, dtype=V.dtype))
            getattr(model.rnn, f"bias_ih_l{layer}").zero_()
            getattr(model.rnn, f"bias_hh_l{layer}").zero_()
    return model


def _uninitialised(module_cls: type[nn.Module], *args: object, **kwargs: object) -> nn.Module:
    """``module_cls(*args, **kwargs)`` with uninitialised CPU parameters.

    Built on the meta device, so PyTorch's own initial draw does not consume torch's global
    generator: every value is then drawn from the caller's ``generator``.
    """
    return module_cls(*args, **kwargs, device="meta").to_empty(device="cpu")


def _uniform_(param: torch.Tensor, hidden_size: int, generator: torch.Generator | None) -> None:
    """PyTorch's own draw for RNN, LSTM and readout weights: ``U(−1/√n, 1/√n)``."""
    bound = 1.0 / math.sqrt(hidden_size)
    param.uniform_(-bound, bound, generator=generator)


def _recurrent_matrix(
    init: str | torch.Tensor, n: int, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor | None:
    """The initial ``W`` (``None`` for Glorot, drawn per layer)."""
    if isinstance(init, torch.Tensor):
        W = _checks.square(init, "recurrent_init")
        if W.shape[0] != n:
            raise ValueError(f"recurrent_init must have shape ({n}, {n}), got {tuple(W.shape)}")
        return W.detach().to(dtype)
    _checks.one_of(init, "recurrent_init", _RECURRENT_INITS)
    if init == "orthogonal":
        return _init.orthogonal(n, generator=generator, dtype=dtype)
    if init == "identity":
        return _init.identity(n, dtype=dtype)
    return None


def _input_matrix(
    init: float | torch.Tensor, n: int, input_size: int, generator: torch.Generator | None, dtype: torch.dtype
) -> torch.Tensor:
    if isinstance(init, torch.Tensor):
        V = _checks.floating(init, "input_init")
        if V.shape != (n, input_size):
            raise ValueError(f"input_init must have shape ({n}, {input_size}), got {tuple(V.shape)}")
        return V.detach().to(dtype)
    std = _checks.non_negative_float(init, "input_init")
    return std * torch.randn(n, input_size, generator=generator, dtype=dtype)


def _check_sizes(input_size: int, hidden_size: int, output_size: int, num_layers: int) -> None:
    _checks.positive_int(input_size, "input_size")
    _checks.positive_int(hidden_size, "hidden_size")
    _checks.positive_int(output_size, "output_size")
    _checks.positive_int(num_layers, "num_layers")


def _check_input(x: torch.Tensor, input_size: int) -> None:
    _checks.floating(x, "x")
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape (batch, T, {input_size}), got {tuple(x.shape)}")
