"""Backpropagation through time by hand: K stacked Elman RNNs, forward and backward in one function.

:func:`elman` runs K independent Elman RNNs of one architecture (K = 1: a single model) over
their own input sequences and returns their readouts. Its backward pass is written out
(Note [BPTT by hand]) instead of recorded by autograd step by step: per time step one
batched matrix product and one elementwise derivative, and every weight gradient one product
over all T·B rows at once. On a CPU that trains a single model faster than ``nn.RNN``'s
kernel (``benchmarks/run.py``, groups ``rnn`` and ``batched``), and K models for a fraction of
K steps of one. :class:`~orthobook.models.ElmanRNN` runs on it on the CPU (and for ``elu`` /
``identity`` everywhere); :class:`~orthobook.batched.BatchedElmanRNN` for its K models.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch.autograd.function import once_differentiable

__all__ = ["elman"]

# Note [BPTT by hand]
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
# rows at once, read through views of that buffer: the readout after the forward loop,
# ∂L/∂W, ∂L/∂V, ∂L/∂R and the bias sums after the backward one, and the input projection
# b + x_t Vᵀ of a layer with at least _NARROW input features before its loop. (Writing a
# product straight into a strided (K, B, n) slice makes torch multiply model by model, at K
# times the overhead, hence the contiguous step tensor.) A narrower input (the book's tasks
# read 1 to 10 features) is projected inside the loop, into the step tensor before the
# recurrent product is added to it, and G_t R likewise in the backward loop: over all T·B
# rows at once such thin products pass a (K, T, B, n) array through memory for little
# arithmetic, and torch's batched product runs shapes with an inner size of 1 (one input,
# one output) far below its speed (an elementwise outer product replaces it). Measured on
# an idle 2-core CPU (one thread; n = 64, T = 100, B = 32; seconds per model-step of
# training, benchmarks/run.py, group "batched"): 8.4, 6.0, 4.5, 4.1, 3.3, 3.5 ms for K = 1,
# 2, 4, 8, 16, 32, against 16.4, 10.0, 6.6, 4.5, 4.9, 3.7 ms when the per-step slices were
# of a (T, K, B, n) buffer and every product was taken per step; projecting the one input
# and G_t R inside the loops took K = 32 from 4.43 to 3.92 ms (medians of 11 interleaved
# steps, against 17.6 ms for 32 nn.RNN steps in turn).

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


# A layer with fewer input features than this projects its input step by step (Note [BPTT by hand]).
_NARROW = 16


def _narrow(V: torch.Tensor) -> bool:
    return V.shape[-1] < _NARROW


def _affine(bias: torch.Tensor | None, a: torch.Tensor, b: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``out = bias + a @ b`` (``a @ b`` when ``bias`` is None) for (K, m, k) @ (K, k, p):
    for k = 1 an elementwise outer product, several times faster than torch's batched
    product of such shapes."""
    if a.shape[-1] == 1:
        return torch.mul(a, b, out=out) if bias is None else torch.addcmul(bias, a, b, out=out)
    return torch.bmm(a, b, out=out) if bias is None else torch.baddbmm(bias, a, b, out=out)


class _Elman(torch.autograd.Function):
    """K stacked Elman RNNs with a readout, forward and backward by hand (Note [BPTT by hand]).

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
            Wt = W.mT.contiguous()  # products with a contiguous right operand are the fast ones
            if _narrow(V):  # b + x_t Vᵀ step by step, in the contiguous a_t
                H = X.new_empty(K, T, B, W.shape[-1])
                Vt = V.mT.contiguous()
                for t in range(T):
                    _affine(b, inputs[:, t], Vt, a)
                    if t:
                        a.baddbmm_(H[:, t - 1], Wt)
                    activate(a, H[:, t])
            else:  # b + x_t Vᵀ for every t in one product, then the steps
                H = _steps(T, B, torch.baddbmm(b, _rows(inputs), V.mT))
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
        G = G.contiguous()
        gR = _rows(G).mT @ _rows(states[-1])
        gc = _rows(G).sum(1, keepdim=True)
        above = None  # ∂L/∂h_t from the layer above, (K, T, B, n); the readout's G_t R at the top
        g = G.new_empty(*G.shape[:1], B, R.shape[-1])  # contiguous, as a in forward
        grads: list[torch.Tensor] = []
        gX = None
        for layer in range(depth - 1, -1, -1):
            V, _, W = triples[layer]
            H = states[layer]
            delta = torch.empty_like(H)
            for t in range(T - 1, -1, -1):
                if above is None:
                    _affine(None, G[:, t], R, g)
                    if t < T - 1:
                        g.baddbmm_(delta[:, t + 1], W)
                elif t < T - 1:
                    torch.baddbmm(above[:, t], delta[:, t + 1], W, out=g)
                else:
                    g.copy_(above[:, t])
                derivative(g, H[:, t], delta[:, t])  # δ_t
            inputs = X if layer == 0 else states[layer - 1]
            D = _rows(delta)
            gW = _rows(delta[:, 1:]).mT @ _rows(H[:, :-1])  # Σ_t δ_tᵀ h_{t-1}: one product
            gV = (_rows(inputs).mT @ D).mT if _narrow(V) else D.mT @ _rows(inputs)
            grads = [gV, D.sum(1, keepdim=True), gW, *grads]
            if layer:
                above = _steps(T, B, D @ V)  # ∂L/∂h_t of the layer below
            elif ctx.needs_input_grad[1]:
                gX = _steps(T, B, D @ V)
        return None, gX, gR, gc, *grads


def elman(
    nonlinearity: str,
    x: torch.Tensor,
    layers: Sequence[tuple[torch.Tensor, torch.Tensor, torch.Tensor]],
    readout: tuple[torch.Tensor, torch.Tensor],
) -> torch.Tensor:
    """K stacked Elman RNNs with a readout at every step (Book: Eq. (gp-recurrence)).

    Model k, layer l: ``h_t = f(W h_{t-1} + V x_t + b)`` from ``h_0 = 0``, the input of layer
    l + 1 the states of layer l, and ``y_t = R h_t + c`` read from the last layer. Forward
    and backward passes by hand (Note [BPTT by hand]); the backward pass is not itself
    differentiable (no double backward).

    Args:
        nonlinearity: ``"tanh"``, ``"relu"``, ``"elu"`` or ``"identity"``.
        x: (K, T, B, in), model k's input sequences ``x[k]``, step-major.
        layers: per layer ``(V, b, W)``: (K, n, in_l), (K, 1, n) (both biases summed) and
            (K, n, n).
        readout: ``(R, c)``: (K, out, n) and (K, 1, out).

    Returns:
        (K, T, B, out): ``y_t`` of every model, step and sequence.
    """
    R, c = readout
    return _Elman.apply(nonlinearity, x, R, c, *(p for layer in layers for p in layer))
