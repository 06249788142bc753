"""Many seeds in one run: K independent Elman RNNs trained as one batched computation.

A result over S seeds costs S training runs. On a CPU a small recurrent network leaves the
arithmetic units mostly idle (each step multiplies a (batch, n) state by an n × n matrix),
so :class:`BatchedElmanRNN` runs K models of one architecture side by side: at every time
step one batched matrix product moves all K states (Note [BPTT by hand]), and a step of K
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

from collections.abc import Sequence

import torch
from torch import nn

from orthobook import _checks, bptt
from orthobook.models import ElmanRNN

__all__ = ["BatchedElmanRNN"]

class BatchedElmanRNN(nn.Module):
    """K independent :class:`~orthobook.models.ElmanRNN` s of one architecture run as one.

    Model k computes ``h_t = f(W_k h_{t-1} + V_k x_t + b_k)``, ``y_t = R_k h_t + c_k`` on its
    own input sequences (Book: Eq. (gp-recurrence)), exactly what ``models[k](x[k])``
    computes, to rounding; the K models share no parameter, and their forward and backward
    passes are batched over k (Note [BPTT by hand]). Each model keeps its parameters, so
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
        per_model = [model.layer_parameters() for model in self.models]  # each W_k built once
        layers = [
            tuple(torch.stack([model[layer][i] for model in per_model]) for i in range(3))
            for layer in range(self.num_layers)
        ]
        R = torch.stack([model.readout.weight for model in self.models])
        c = torch.stack([model.readout.bias for model in self.models]).unsqueeze(1)
        X = x.transpose(1, 2).contiguous()  # (K, T, B, in): step t's rows are X[:, t]
        return bptt.elman(self.nonlinearity, X, layers, (R, c)).transpose(1, 2)

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
