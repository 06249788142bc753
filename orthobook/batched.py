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
# batched over the K models (torch.baddbmm on (K, B, n) states). Autograd of the same loop
# records a handful of nodes per step, and its backward multiplies by transposed operands
# and stacks the per-step gradients into a (K, B, T, n) tensor; here every step reads and
# writes contiguous (K, B, n) slices of (T, K, B, n) buffers, and the input projection, the
# readout and the parameter gradients are taken inside the step, while the slice is in
# cache. Measured in one run on a shared 2-core CPU (one thread; n = 64, T = 100, B = 32), a
# training step of K models took 0.43 (K = 8) and 0.40 (K = 32) of the time of K separate
# ElmanRNN steps with autograd of the batched loop, 0.30 and 0.24 with this one
# (benchmarks/run.py, group "batched", measures it).

# In-place f (the forward overwrites the buffer holding a_t) and the product f'(a_t) ⊙ g
# from h_t = f(a_t): torch's own derivative kernels, as its autograd calls them.
_ACTIVATE: dict[str, Callable[[torch.Tensor], object]] = {
    "tanh": torch.Tensor.tanh_,
    "relu": torch.Tensor.relu_,
    "elu": F.elu_,
    "identity": lambda a: a,
}
_BACKWARD: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "tanh": torch.ops.aten.tanh_backward,
    "relu": lambda g, h: torch.ops.aten.threshold_backward(g, h, 0),
    "elu": lambda g, h: torch.ops.aten.elu_backward(g, 1.0, 1.0, 1.0, True, h),
    "identity": lambda g, h: g,
}


class _Elman(torch.autograd.Function):
    """K stacked Elman RNNs with a readout, forward and backward by hand (Note [batched BPTT]).

    ``apply(nonlinearity, X, R, c, V₀, b₀, W₀, V₁, b₁, W₁, …)`` with ``X``: (T, K, B, in),
    ``R``: (K, out, n), ``c``: (K, 1, out) and per layer ``V``: (K, n, in_l), ``b``: (K, 1, n),
    ``W``: (K, n, n); returns the outputs (T, K, B, out).
    """

    @staticmethod
    def forward(ctx, nonlinearity: str, X: torch.Tensor, R: torch.Tensor, c: torch.Tensor, *layers: torch.Tensor):
        activate = _ACTIVATE[nonlinearity]
        T, K, B, _ = X.shape
        triples = [layers[i : i + 3] for i in range(0, len(layers), 3)]
        # Products with contiguous right operands are the fast ones: transpose once per pass.
        Vts = [V.mT.contiguous() for V, _, _ in triples]
        Wts = [W.mT.contiguous() for _, _, W in triples]
        Rt = R.mT.contiguous()
        states = [X.new_empty(T, K, B, W.shape[-1]) for _, _, W in triples]
        output = X.new_empty(T, K, B, R.shape[1])
        for t in range(T):
            inputs = X[t]
            for (_, b, _), Vt, Wt, H in zip(triples, Vts, Wts, states):
                a = torch.baddbmm(b, inputs, Vt, out=H[t])
                if t:
                    a.baddbmm_(H[t - 1], Wt)
                activate(a)
                inputs = a
            torch.baddbmm(c, inputs, Rt, out=output[t])
        ctx.nonlinearity = nonlinearity
        ctx.save_for_backward(X, R, *layers, *states)
        return output

    @staticmethod
    @once_differentiable
    def backward(ctx, G: torch.Tensor):
        X, R, *rest = ctx.saved_tensors
        depth = len(rest) // 4
        triples = [rest[i : i + 3] for i in range(0, 3 * depth, 3)]
        states = rest[3 * depth :]
        derivative = _BACKWARD[ctx.nonlinearity]
        T = X.shape[0]
        gX = torch.empty_like(X) if ctx.needs_input_grad[1] else None
        gR = torch.zeros_like(R)
        gVts = [V.new_zeros(V.shape[0], V.shape[2], V.shape[1]) for V, _, _ in triples]  # ∂L/∂Vᵀ
        gb_rows = [torch.zeros_like(H[0]) for H in states]  # Σ_t δ_t, summed over rows at the end
        gWs = [torch.zeros_like(W) for _, _, W in triples]
        deltas: list[torch.Tensor | None] = [None] * depth  # δ_{t+1} of each layer
        for t in range(T - 1, -1, -1):
            g = torch.bmm(G[t], R)
            gR.baddbmm_(G[t].mT, states[-1][t])
            for layer in range(depth - 1, -1, -1):
                V, _, W = triples[layer]
                if deltas[layer] is not None:
                    g.baddbmm_(deltas[layer], W)
                delta = derivative(g, states[layer][t])
                inputs = X[t] if layer == 0 else states[layer - 1][t]
                gb_rows[layer].add_(delta)
                gVts[layer].baddbmm_(inputs.mT, delta)
                if t:
                    gWs[layer].baddbmm_(delta.mT, states[layer][t - 1])
                deltas[layer] = delta
                if layer:
                    g = torch.bmm(delta, V)
                elif gX is not None:
                    torch.bmm(delta, V, out=gX[t])
        gc = G.sum((0, 2)).unsqueeze(1)
        grads = []
        for gVt, gb, gW in zip(gVts, gb_rows, gWs):
            grads += [gVt.mT, gb.sum(1, keepdim=True), gW]
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
        ``x[k]``; the result is a view of a (T, K, batch, output_size) tensor.

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
        X = x.permute(2, 0, 1, 3).contiguous()  # (T, K, B, in): a contiguous (K, B, in) slice per step
        return _Elman.apply(self.nonlinearity, X, R, c, *layers).permute(1, 2, 0, 3)

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
