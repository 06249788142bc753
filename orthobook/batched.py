"""Many seeds in one run: K independent Elman RNNs trained as one batched computation.

A result over S seeds costs S training runs. On a CPU a small recurrent network leaves the
arithmetic units mostly idle (each step multiplies a (batch, n) state by an n × n matrix),
so :class:`BatchedElmanRNN` runs K models of one architecture side by side: at every time
step one batched matrix product moves all K states (Note [batched BPTT]), and a step of K
models costs a fraction of K steps of one (``benchmarks/run.py --only batched``). The K
models stay independent, each with its own parameters (and its own parametrization of
``W``), so different seeds, or different values of a hyperparameter such as the margin,
train together::

    models = BatchedElmanRNN([ElmanRNN(1, 64, 9, generator=torch.Generator().manual_seed(s))
                              for s in range(8)])
    histories = train(models, CopyTask(20), CayleyAdam(models.parameters(), lr=1e-3), 1000)

:func:`orthobook.train.train` accepts the batch where it accepts one model and returns one
:class:`~orthobook.train.History` per model; a model that diverges stops, the others go on.
Afterwards ``models.models[k]`` is an ordinary trained :class:`~orthobook.models.ElmanRNN`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from orthobook import _checks
from orthobook.models import ElmanRNN

__all__ = ["BatchedElmanRNN"]

# Note [batched BPTT]
# ~~~~~~~~~~~~~~~~~~~
# For model k, layer l and step t (the rows of x_t, h_t, y_t are the sequences of a batch):
#
#     a_t = b + x_t Vᵀ + h_{t-1} Wᵀ,   h_t = f(a_t),   y_t = c + h_t Rᵀ   (Eq. (gp-recurrence))
#
# with x_t the states of layer l − 1 above the first layer, y_t read from the last. With
# G_t = ∂L/∂y_t, backpropagation through time runs t = T … 1:
#
#     ∂L/∂h_t = G_t R (last layer) or δ^{l+1}_t V^{l+1} (below it), plus δ_{t+1} W
#     δ_t = ∂L/∂a_t = f'(a_t) ⊙ ∂L/∂h_t                                   (Eq. (gp-jacobian))
#     ∂L/∂W = Σ_t δ_tᵀ h_{t-1},  ∂L/∂V = Σ_t δ_tᵀ x_t,  ∂L/∂R = Σ_t G_tᵀ h_t,
#     ∂L/∂b, ∂L/∂c = the sums of δ_t, G_t over steps and rows,
#
# and f' is read off h_t itself: 1 − h_t² (tanh), [h_t > 0] (relu), h_t + 1 where h_t ≤ 0 and
# 1 elsewhere (elu), 1 (identity). _Elman computes both passes by hand, every product
# batched over the K models. Only the recurrence is sequential: per step, one batched product
# h_{t-1} Wᵀ (δ_{t+1} W backwards) into a contiguous (K, B, n) tensor and one elementwise f
# (f') from it into the (K, T, B, n) buffer. Everything else is one product over all T·B
# rows at once, read through views of that buffer: the input projection b + x_t Vᵀ and the
# readout before and after the forward loop, G_t R, ∂L/∂W, ∂L/∂V, ∂L/∂R and the bias sums
# after the backward one. (Writing a product straight into a strided (K, B, n) slice makes
# torch multiply model by model, at K times the overhead, hence the contiguous step tensor.)
# Measured on an idle 2-core CPU (one thread; n = 64, T = 100, B = 32; seconds per
# model-step of training, benchmarks/run.py, group "batched"): 8.4, 6.0, 4.5, 4.1, 3.3,
# 3.5 ms for K = 1, 2, 4, 8, 16, 32, against 16.4, 10.0, 6.6, 4.5, 4.9, 3.7 ms when the
# per-step slices were of a (T, K, B, n) buffer and every product was taken per step.

# f(a_t) and f'(a_t) ⊙ g (read off h_t = f(a_t)) written into a given tensor, which may be
# the argument itself: torch's own kernels, the derivatives as its autograd calls them.
_ACTIVATE: dict[str, Callable[[torch.Tensor, torch.Tensor], object]] = {
    "tanh": lambda a, out: torch.tanh(a, out=out),
    "relu": lambda a, out: torch.clamp_min(a, 0, out=out),
    "elu": lambda a, out: torch.ops.aten.elu.out(a, 1.0, 1.0, 1.0, out=out),
    "identity": lambda a, out: out.copy_(a),
}
_DERIVATIVE: dict[str, Callable[[torch.Tensor, torch.Tensor, torch.Tensor], object]] = {
    "tanh": lambda g, h, out: torch.ops.aten.tanh_backward.grad_input(g, h, grad_input=out),
    "relu": lambda g, h, out: torch.ops.aten.threshold_backward.grad_input(g, h, 0, grad_input=out),
    "elu": lambda g, h, out: torch.ops.aten.elu_backward.grad_input(g, 1.0, 1.0, 1.0, True, h, grad_input=out),
    "identity": lambda g, h, out: out.copy_(g),
}


def _steps(T: int, B: int, tensor: torch.Tensor) -> torch.Tensor:
    """(K, T·B, d) → (K, T, B, d), the step-major view every buffer is read through."""
    return tensor.view(tensor.shape[0], T, B, tensor.shape[-1])


def _rows(tensor: torch.Tensor) -> torch.Tensor:
    """(K, T, B, d) → (K, T·B, d): every step's rows as one matrix per model (a view)."""
    return tensor.flatten(1, 2)


class _Elman(torch.autograd.Function):
    """K stacked Elman RNNs with a readout, forward and backward by hand (Note [batched BPTT]).

    ``apply(nonlinearity, X, R, c, V₀, b₀, W₀, V₁, b₁, W₁, …)`` with ``X``: (K, T, B, in),
    ``R``: (K, out, n), ``c``: (K, 1, out) and per layer ``V``: (K, n, in_l), ``b``: (K, 1, n),
    ``W``: (K, n, n); returns the outputs (K, T, B, out).
    """

    @staticmethod
    def forward(ctx, nonlinearity: str, X: torch.Tensor, R: torch.Tensor, c: torch.Tensor, *layers: torch.Tensor):
        activate = _ACTIVATE[nonlinearity]
        K, T, B, _ = X.shape
        inputs, states = X, []
        a = X.new_empty(K, B, layers[2].shape[-1])
        for V, b, W in (layers[i : i + 3] for i in range(0, len(layers), 3)):
            H = _steps(T, B, torch.baddbmm(b, _rows(inputs), V.mT))  # b + x_t Vᵀ for every t
            Wt = W.mT.contiguous()  # products with a contiguous right operand are the fast ones
            activate(H[:, 0], H[:, 0])
            for t in range(1, T):  # into a contiguous a_t: a strided product is a slow one
                activate(torch.baddbmm(H[:, t], H[:, t - 1], Wt, out=a), H[:, t])
            inputs = H
            states.append(H)
        ctx.nonlinearity = nonlinearity
        ctx.save_for_backward(X, R, *layers, *states)
        return _steps(T, B, torch.baddbmm(c, _rows(inputs), R.mT))

    @staticmethod
    @once_differentiable
    def backward(ctx, G: torch.Tensor):
        X, R, *rest = ctx.saved_tensors
        depth = len(rest) // 4
        triples = [rest[i : i + 3] for i in range(0, 3 * depth, 3)]
        states = rest[3 * depth :]
        derivative = _DERIVATIVE[ctx.nonlinearity]
        _, T, B, _ = X.shape
        G = _rows(G.contiguous())
        gR = G.mT @ _rows(states[-1])
        gc = G.sum(1, keepdim=True)
        delta = _steps(T, B, G @ R)  # ∂L/∂h_t from the readout; becomes δ_t in place
        g_t = G.new_empty(delta[:, 0].shape)  # contiguous, as a above
        grads: list[torch.Tensor] = []
        gX = None
        for layer in range(depth - 1, -1, -1):
            V, _, W = triples[layer]
            H = states[layer]
            derivative(delta[:, T - 1], H[:, T - 1], delta[:, T - 1])
            for t in range(T - 2, -1, -1):
                g = torch.baddbmm(delta[:, t], delta[:, t + 1], W, out=g_t)
                derivative(g, H[:, t], delta[:, t])
            inputs = X if layer == 0 else states[layer - 1]
            D = _rows(delta)
            gW = _rows(delta[:, 1:]).mT @ _rows(H[:, :-1])  # Σ_t δ_tᵀ h_{t-1}: one product
            grads = [D.mT @ _rows(inputs), D.sum(1, keepdim=True), gW, *grads]
            if layer:
                delta = _steps(T, B, D @ V)  # ∂L/∂h_t of the layer below
            elif ctx.needs_input_grad[1]:
                gX = _steps(T, B, D @ V)
        return None, gX, gR, gc, *grads


class BatchedElmanRNN(nn.Module):
    """K independent :class:`~orthobook.models.ElmanRNN` s of one architecture run as one.

    Model k computes ``h_t = f(W_k h_{t-1} + V_k x_t + b_k)``, ``y_t = R_k h_t + c_k`` on its
    own input sequences (Book: Eq. (gp-recurrence)), exactly what ``models[k](x[k])``
    computes, to rounding; the K models share no parameter, and their forward and backward
    passes are batched over k (Note [batched BPTT]). Each model keeps its parameters, so
    ``W_k`` is built by the model's own parametrization (a different margin per model, say)
    once per forward pass, and one optimizer over ``self.parameters()`` (Adam, SGD,
    :class:`~orthobook.optim.CayleyAdam`, :class:`~orthobook.optim.CayleySGD`, whose updates
    are elementwise or per tensor) trains the K models exactly as K optimizers would. A
    learning rate per model is one parameter group per model:
    ``CayleyAdam([{"params": m.parameters(), "lr": lr} for m, lr in zip(batch.models, lrs)])``.

    :func:`orthobook.train.train` trains the batch (one :class:`~orthobook.train.History`
    per model, per-model clipping and NaN guard); :func:`orthobook.train.evaluate` scores
    every model on one evaluation batch. The backward pass is computed by hand and is not
    itself differentiable (no double backward); the gradient diagnostics of
    :mod:`orthobook.gradients` take the single models. The forward pass keeps every state
    for the backward pass, ``num_layers · T · K · batch · n`` numbers, as the K single
    models together would.

    Args:
        models: K ≥ 1 distinct ElmanRNNs with the same ``input_size``, ``hidden_size``,
            ``output_size``, ``num_layers``, ``nonlinearity``, dtype and device, sharing no
            parameter; their parametrizations may differ.
        batch_seeds: the seed of each model's batch generator in :func:`~orthobook.train.train`
            (K ints ≥ 0, e.g. ``[0] * K`` to show every model the same batches); ``None``:
            model k draws from ``config.seed + k``.

    Attributes:
        models: the K models (an ``nn.ModuleList``), trained in place.
        batch_seeds: the seeds given, as a tuple, or ``None``.

    Shapes:
        ``x``: (K, batch, T, input_size) → (K, batch, T, output_size), model k reading
        ``x[k]``; the result is a view of a (K, T, batch, output_size) tensor.

    Raises:
        TypeError: ``models`` is not a sequence of ElmanRNNs, or ``batch_seeds`` not a
            sequence of ints.
        ValueError: ``models`` is empty, two models differ in one of the attributes above
            (the message names it) or share a parameter, or ``batch_seeds`` has not K
            non-negative entries.

    Example:
        >>> seeds = range(3)
        >>> rnns = [ElmanRNN(2, 16, 1, generator=torch.Generator().manual_seed(s)) for s in seeds]
        >>> batch = BatchedElmanRNN(rnns)
        >>> x = torch.randn(3, 4, 10, 2)
        >>> batch(x).shape
        torch.Size([3, 4, 10, 1])
        >>> torch.allclose(batch(x)[1], rnns[1](x[1]), atol=1e-6)
        True
    """

    def __init__(self, models: Sequence[ElmanRNN], *, batch_seeds: Sequence[int] | None = None) -> None:
        super().__init__()
        _check_models(models)
        self.models = nn.ModuleList(models)
        self.batch_seeds = None if batch_seeds is None else _check_seeds(batch_seeds, len(models))

    def __len__(self) -> int:
        return len(self.models)

    @property
    def input_size(self) -> int:
        return self.models[0].rnn.input_size

    @property
    def hidden_size(self) -> int:
        return self.models[0].hidden_size

    @property
    def output_size(self) -> int:
        return self.models[0].readout.out_features

    @property
    def num_layers(self) -> int:
        return self.models[0].num_layers

    @property
    def nonlinearity(self) -> str:
        return self.models[0].nonlinearity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input(x)
        layers = []
        for layer in range(self.num_layers):
            rnns = [model.rnn for model in self.models]
            layers += [
                torch.stack([getattr(rnn, f"weight_ih_l{layer}") for rnn in rnns]),
                torch.stack(
                    [getattr(rnn, f"bias_ih_l{layer}") + getattr(rnn, f"bias_hh_l{layer}") for rnn in rnns]
                ).unsqueeze(1),
                torch.stack([getattr(rnn, f"weight_hh_l{layer}") for rnn in rnns]),  # W_k built once
            ]
        R = torch.stack([model.readout.weight for model in self.models])
        c = torch.stack([model.readout.bias for model in self.models]).unsqueeze(1)
        X = x.transpose(1, 2).contiguous()  # (K, T, B, in): step t's rows are X[:, t]
        return _Elman.apply(self.nonlinearity, X, R, c, *layers).transpose(1, 2)

    def _check_input(self, x: torch.Tensor) -> None:
        _checks.floating(x, "x")
        K, size = len(self), self.input_size
        if x.dim() != 4 or x.shape[0] != K or x.shape[-1] != size:
            raise ValueError(f"x must have shape ({K}, batch, T, {size}), one batch per model, got {tuple(x.shape)}")
        dtype = self.models[0].readout.weight.dtype
        if x.dtype != dtype:
            raise TypeError(f"x must have the models' dtype {dtype}, got {x.dtype}")


def _check_models(models: object) -> None:
    if isinstance(models, nn.Module) or not isinstance(models, Sequence) or isinstance(models, str):
        raise TypeError(f"models must be a sequence of ElmanRNNs, got {type(models).__name__}")
    if not models:
        raise ValueError("models must hold at least one ElmanRNN")
    for k, model in enumerate(models):
        if not isinstance(model, ElmanRNN):
            raise TypeError(f"models[{k}] must be an orthobook.models.ElmanRNN, got {type(model).__name__}")
    reference = _architecture(models[0])
    owner: dict[int, int] = {}
    for k, model in enumerate(models):
        for name, value in _architecture(model).items():
            if value != reference[name]:
                raise ValueError(
                    f"models[{k}] has {name}={value} but models[0] has {name}={reference[name]}: "
                    "a BatchedElmanRNN holds models of one architecture"
                )
        for p in model.parameters():
            if owner.setdefault(id(p), k) != k:
                raise ValueError(
                    f"models[{k}] shares a parameter with models[{owner[id(p)]}]: the models of a "
                    "BatchedElmanRNN must be independent (build each one, or copy.deepcopy it)"
                )


def _architecture(model: ElmanRNN) -> dict[str, object]:
    weight = model.readout.weight
    return {
        "input_size": model.rnn.input_size,
        "hidden_size": model.hidden_size,
        "output_size": model.readout.out_features,
        "num_layers": model.num_layers,
        "nonlinearity": model.nonlinearity,
        "dtype": weight.dtype,
        "device": weight.device,
    }


def _check_seeds(seeds: object, K: int) -> tuple[int, ...]:
    if not isinstance(seeds, Sequence) or isinstance(seeds, str):
        raise TypeError(f"batch_seeds must be a sequence of ints or None, got {type(seeds).__name__}")
    if len(seeds) != K:
        raise ValueError(f"batch_seeds must hold one seed per model ({K}), got {len(seeds)}")
    return tuple(_checks.non_negative_int(s, f"batch_seeds[{i}]") for i, s in enumerate(seeds))
