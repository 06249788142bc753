"""Recurrent models: the Elman RNN with a pluggable recurrent matrix, and an LSTM baseline.

The Elman RNN computes (Book: Eq. (gp-recurrence))

    h_t = f(W h_{t-1} + V x_t + b),    y = R h_T + c   (or y_t = R h_t + c for every t),

where ``W`` comes from a :class:`~orthobook.recurrent.Recurrence`. ``W`` is built once per
forward pass; for ``tanh`` and ``relu`` the recurrence then runs in PyTorch's fused RNN
kernel with that matrix (``torch.func.functional_call`` on an ``nn.RNN`` whose own
``weight_hh`` was removed), so a constrained model pays only for building ``W``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from orthobook import _checks
from orthobook.recurrent import Plain, Recurrence, ResidualIdentity

__all__ = ["ElmanRNN", "LSTM", "Trajectory", "NONLINEARITIES", "derivative", "rin", "irnn"]

NONLINEARITIES: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "tanh": torch.tanh,
    "relu": torch.relu,
    "elu": F.elu,
    "identity": lambda a: a,
}
_FUSED = ("tanh", "relu")
_READOUTS = ("last", "all")


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
        output: the model's output, as from ``forward``.
        states: ``T`` tensors (batch, n): ``h_1 … h_T`` of the top layer, each a node of
            the autograd graph (so ``torch.autograd.grad(loss, states)`` gives ``∂L/∂h_t``).
        preactivations: ``T`` tensors (batch, n): ``a_t = W h_{t-1} + V x_t + b`` of the top layer.
    """

    output: torch.Tensor
    states: list[torch.Tensor]
    preactivations: list[torch.Tensor]


class ElmanRNN(nn.Module):
    """Elman RNN ``h_t = f(W h_{t-1} + V x_t + b)`` with a pluggable recurrent matrix ``W``.

    Args:
        input_size: features per step of the input ``x``.
        hidden_size: n, the state size.
        output_size: size of the linear readout.
        recurrence: the module that builds ``W`` (default: :class:`~orthobook.recurrent.Plain`
            with Glorot initialisation), or one per layer when ``num_layers > 1``.
        nonlinearity: ``"tanh"``, ``"relu"`` (both fused), ``"elu"`` or ``"identity"``.
        num_layers: depth of the stack; layer ``l + 1`` reads the states of layer ``l``.
        readout: ``"last"`` reads ``h_T`` only, ``"all"`` reads every ``h_t``.

    Shapes:
        ``x``: (batch, T, input_size) → (batch, output_size) for ``"last"``,
        (batch, T, output_size) for ``"all"``.

    Example:
        >>> model = ElmanRNN(2, 16, 1)
        >>> model(torch.zeros(4, 10, 2)).shape
        torch.Size([4, 1])
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        recurrence: Recurrence | Sequence[Recurrence] | None = None,
        nonlinearity: str = "tanh",
        num_layers: int = 1,
        readout: str = "last",
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, output_size, num_layers)
        self.nonlinearity = _checks.one_of(nonlinearity, "nonlinearity", tuple(NONLINEARITIES))
        self.readout_mode = _checks.one_of(readout, "readout", _READOUTS)
        self.recurrences = nn.ModuleList(_recurrences(recurrence, hidden_size, num_layers))
        # The fused kernel's module holds V and b; its own weight_hh is removed and W is passed
        # in at call time. For elu/identity it only holds V and b (its "tanh" is never used).
        self.rnn = nn.RNN(
            input_size,
            hidden_size,
            num_layers=num_layers,
            nonlinearity="tanh" if nonlinearity not in _FUSED else nonlinearity,
            batch_first=True,
        )
        for layer in range(num_layers):
            delattr(self.rnn, f"weight_hh_l{layer}")
        self.readout = nn.Linear(hidden_size, output_size)

    @property
    def hidden_size(self) -> int:
        return self.rnn.hidden_size

    @property
    def num_layers(self) -> int:
        return self.rnn.num_layers

    def recurrent_matrices(self) -> list[torch.Tensor]:
        """Build every layer's ``W`` (n, n), once."""
        return [recurrence() for recurrence in self.recurrences]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.rnn.input_size)
        if self.nonlinearity not in _FUSED:
            return self.unrolled(x).output
        weights = {f"weight_hh_l{layer}": W for layer, W in enumerate(self.recurrent_matrices())}
        states, _ = functional_call(self.rnn, weights, (x,))
        return self._read(states)

    def unrolled(self, x: torch.Tensor) -> Trajectory:
        """Run the recurrence step by step in Python (slow), keeping every state.

        Same parameters and same result as ``forward``; used for ``elu``/``identity`` and by
        the gradient diagnostics, which need each ``h_t`` as a node of the graph.
        """
        _check_input(x, self.rnn.input_size)
        f = NONLINEARITIES[self.nonlinearity]
        layer_input = x
        for layer, W in enumerate(self.recurrent_matrices()):
            drive = F.linear(
                layer_input,
                getattr(self.rnn, f"weight_ih_l{layer}"),
                getattr(self.rnn, f"bias_ih_l{layer}") + getattr(self.rnn, f"bias_hh_l{layer}"),
            )
            h = x.new_zeros(x.shape[0], self.hidden_size)
            states, preactivations = [], []
            for t in range(x.shape[1]):
                a = drive[:, t] + h @ W.T
                h = f(a)
                preactivations.append(a)
                states.append(h)
            layer_input = torch.stack(states, 1)
        return Trajectory(self._read(layer_input), states, preactivations)

    def _read(self, states: torch.Tensor) -> torch.Tensor:
        if self.readout_mode == "last":
            return self.readout(states[:, -1])
        return self.readout(states)


class LSTM(nn.Module):
    """LSTM baseline (Hochreiter & Schmidhuber 1997) with the same readouts as :class:`ElmanRNN`.

    Args:
        input_size, hidden_size, output_size, num_layers, readout: as for :class:`ElmanRNN`.
        forget_bias: initial bias of the forget gate (1.0, Jozefowicz et al. 2015).

    Shapes:
        ``x``: (batch, T, input_size) → (batch, output_size) or (batch, T, output_size).
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        output_size: int,
        *,
        num_layers: int = 1,
        readout: str = "last",
        forget_bias: float = 1.0,
    ) -> None:
        super().__init__()
        _check_sizes(input_size, hidden_size, output_size, num_layers)
        self.readout_mode = _checks.one_of(readout, "readout", _READOUTS)
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        with torch.no_grad():
            for layer in range(num_layers):
                # PyTorch orders the gates (input, forget, cell, output); b_ih + b_hh is the bias.
                getattr(self.lstm, f"bias_ih_l{layer}")[hidden_size : 2 * hidden_size].fill_(forget_bias)
                getattr(self.lstm, f"bias_hh_l{layer}")[hidden_size : 2 * hidden_size].zero_()
        self.readout = nn.Linear(hidden_size, output_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.lstm.input_size)
        states, _ = self.lstm(x)
        if self.readout_mode == "last":
            return self.readout(states[:, -1])
        return self.readout(states)


def rin(
    input_size: int,
    hidden_size: int,
    output_size: int,
    *,
    num_layers: int = 1,
    readout: str = "last",
    std: float = 1e-3,
    generator: torch.Generator | None = None,
) -> ElmanRNN:
    """The recurrent identity network (RIN) of Hu et al. (2018), a stack of ReLU layers.

    Each layer computes ``h_t = relu((U + I) h_{t-1} + V x_t + b)`` (Book: Eq. (rin-recurrence))
    with a :class:`~orthobook.recurrent.ResidualIdentity` recurrence, and the paper's
    initialisation: ``U`` and ``V`` drawn ``N(0, std²)`` (``std = 1e-3``), ``b = 0``.

    Args:
        input_size, hidden_size, output_size, num_layers, readout: as for :class:`ElmanRNN`
            (the paper stacks 1 to 3 layers).
        std: standard deviation ≥ 0 of the initial ``U`` and ``V``.
        generator: optional generator for a reproducible initial draw.

    Returns:
        An :class:`ElmanRNN` with ``nonlinearity="relu"``.

    Example:
        >>> model = rin(2, 16, 1, num_layers=2)
        >>> model(torch.zeros(4, 10, 2)).shape
        torch.Size([4, 1])
    """
    _checks.positive_int(num_layers, "num_layers")
    _checks.non_negative_float(std, "std")
    recurrences = [ResidualIdentity(hidden_size, std, generator=generator) for _ in range(num_layers)]
    model = ElmanRNN(
        input_size, hidden_size, output_size, recurrence=recurrences, nonlinearity="relu", num_layers=num_layers, readout=readout
    )
    _small_inputs_zero_biases(model, std, generator)
    return model


def irnn(
    input_size: int,
    hidden_size: int,
    output_size: int,
    *,
    num_layers: int = 1,
    readout: str = "last",
    input_std: float = 1e-3,
    generator: torch.Generator | None = None,
) -> ElmanRNN:
    """The IRNN of Le, Jaitly & Hinton (2015): ReLU units, ``W`` initialised to ``I``, ``b = 0``.

    ``W`` is a :class:`~orthobook.recurrent.Plain` matrix learned as a whole, so at the start
    the IRNN computes the same function as :func:`rin` with ``U = 0``; they differ in what is
    learned and where an L2 penalty pulls (Book: Eq. (rin-prior)). Input weights ``V`` start
    ``N(0, input_std²)``.

    Args:
        input_size, hidden_size, output_size, num_layers, readout: as for :class:`ElmanRNN`.
        input_std: standard deviation ≥ 0 of the initial ``V``.
        generator: optional generator for a reproducible initial draw.

    Returns:
        An :class:`ElmanRNN` with ``nonlinearity="relu"``.
    """
    _checks.positive_int(num_layers, "num_layers")
    _checks.non_negative_float(input_std, "input_std")
    recurrences = [Plain(hidden_size, init="identity") for _ in range(num_layers)]
    model = ElmanRNN(
        input_size, hidden_size, output_size, recurrence=recurrences, nonlinearity="relu", num_layers=num_layers, readout=readout
    )
    _small_inputs_zero_biases(model, input_std, generator)
    return model


@torch.no_grad()
def _small_inputs_zero_biases(model: ElmanRNN, std: float, generator: torch.Generator | None) -> None:
    for layer in range(model.num_layers):
        V = getattr(model.rnn, f"weight_ih_l{layer}")
        V.copy_(std * torch.randn(V.shape, generator=generator))
        getattr(model.rnn, f"bias_ih_l{layer}").zero_()
        getattr(model.rnn, f"bias_hh_l{layer}").zero_()


def _recurrences(
    recurrence: Recurrence | Sequence[Recurrence] | None, hidden_size: int, num_layers: int
) -> list[Recurrence]:
    if recurrence is None:
        return [Plain(hidden_size) for _ in range(num_layers)]
    layers = [recurrence] if isinstance(recurrence, nn.Module) else list(recurrence)
    if len(layers) != num_layers:
        raise ValueError(f"recurrence must give one module per layer: got {len(layers)} for num_layers={num_layers}")
    for layer, module in enumerate(layers):
        if not isinstance(module, Recurrence):
            raise TypeError(f"recurrence[{layer}] must be an orthobook.recurrent.Recurrence, got {type(module).__name__}")
        if module.hidden_size != hidden_size:
            raise ValueError(f"recurrence[{layer}] has hidden_size={module.hidden_size}, the model has {hidden_size}")
    return layers


def _check_sizes(input_size: int, hidden_size: int, output_size: int, num_layers: int) -> None:
    _checks.positive_int(input_size, "input_size")
    _checks.positive_int(hidden_size, "hidden_size")
    _checks.positive_int(output_size, "output_size")
    _checks.positive_int(num_layers, "num_layers")


def _check_input(x: torch.Tensor, input_size: int) -> None:
    _checks.floating(x, "x")
    if x.dim() != 3 or x.shape[-1] != input_size:
        raise ValueError(f"x must have shape (batch, T, {input_size}), got {tuple(x.shape)}")
