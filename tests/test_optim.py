"""Tests for orthobook.optim: CayleySGD / CayleyAdam against float64 oracles of their equations,
bit-equality with torch for ordinary parameters, schedulers, checkpoints, hooks, bad input,
float32 drift."""

from __future__ import annotations

import copy
import io
import math

import numpy as np
import pytest
import torch
from torch import nn

from orthobook.init import orthogonal
from orthobook.optim import (
    REORTHONORMALIZE_EVERY,
    CayleyAdam,
    CayleySGD,
    RetractingOptimizer,
    StiefelParameter,
    cayley_adam_step,
    cayley_sgd_step,
)
from orthobook.stiefel import cayley_step, orthogonality_error

F64 = torch.float64
F32 = torch.float32
SHAPES = [(7, 2), (5, 5), (6, 4)]  # low-rank, square and full-solve forms of cayley_step


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def frame(n: int, p: int, dtype: torch.dtype = F64, seed: int = 0) -> StiefelParameter:
    return StiefelParameter(orthogonal(n, generator=gen(seed), dtype=dtype)[:, :p])


def grads(n: int, p: int, steps: int, dtype: torch.dtype = F64, seed: int = 0) -> list[torch.Tensor]:
    return [torch.randn(n, p, generator=gen(seed + k), dtype=dtype) for k in range(steps)]


@pytest.fixture
def one_thread():
    """Long loops of tiny matrices run fastest, and reproducibly, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- naive float64 references of the equations --------------------------------------------


def proj(Y: torch.Tensor, Z: torch.Tensor) -> torch.Tensor:
    """P_Y(Z) = Z − Y sym(YᵀZ) (Book: Eq. (stiefel-tangent))."""
    return Z - Y @ (Y.mT @ Z + Z.mT @ Y) / 2


def naive_cayley(Y: torch.Tensor, D: torch.Tensor, lr: float) -> torch.Tensor:
    """(I + τ/2 A)⁻¹ (I − τ/2 A) Y with A = D Yᵀ − Y Dᵀ and an explicit inverse (Book: Eq. (geodesic-sgd))."""
    A = D @ Y.mT - Y @ D.mT
    eye = torch.eye(Y.shape[0], dtype=Y.dtype)
    return torch.linalg.inv(eye + lr / 2 * A) @ (eye - lr / 2 * A) @ Y


def sgd_reference(Y, Gs, lr, momentum=0.0, dampening=0.0, nesterov=False, maximize=False):
    """torch's SGD on the tangent part of the gradient, buffer transported by projection."""
    b = None
    for G in Gs:
        g = proj(Y, -G if maximize else G)
        if momentum:
            b = g if b is None else momentum * b + (1 - dampening) * g
            D = g + momentum * b if nesterov else b
        else:
            D = g
        Y = naive_cayley(Y, D, lr)
        b = None if b is None else proj(Y, b)
    return Y, b


def adam_reference(Y, Gs, lr, betas=(0.9, 0.999), eps=1e-8, amsgrad=False, maximize=False):
    """geoopt's RiemannianAdam with the Cayley retraction, written out (Book: Eq. (geodesic-rmsprop))."""
    b1, b2 = betas
    m = v = v_max = torch.zeros_like(Y)
    for t, G in enumerate(Gs, start=1):
        g = proj(Y, -G if maximize else G)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        v_max = torch.maximum(v_max, v)
        v_used = v_max if amsgrad else v
        D = (m / (1 - b1**t)) / ((v_used / (1 - b2**t)).sqrt() + eps)
        Y = naive_cayley(Y, D, lr)
        m = proj(Y, m)
    return Y, m


def tangency_error(Y: torch.Tensor, Z: torch.Tensor) -> float:
    return torch.linalg.matrix_norm(Y.mT @ Z + Z.mT @ Y).item()


# --- CayleySGD / CayleyAdam on frames against the oracles ------------------------------------


@pytest.mark.parametrize("n,p", SHAPES)
def test_cayley_sgd_without_momentum_is_the_cayley_step(n, p):
    """Book: Eq. (geodesic-sgd): Y ← cayley_step(Y, ∂f/∂Y, τ), bit for bit, and the naive formula."""
    Y = frame(n, p)
    opt = CayleySGD([Y], lr=0.3)
    expected = Y.detach().clone()
    for G in grads(n, p, 4):
        Y.grad = G.clone()
        opt.step()
        expected = cayley_step(expected, G, 0.3)
        assert torch.equal(Y.detach(), expected)
    reference, _ = sgd_reference(frame(n, p).detach(), grads(n, p, 4), 0.3)
    assert torch.allclose(Y.detach(), reference, atol=tol(F64, n))


SGD_OPTIONS = [
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.5, "dampening": 0.3},
    {"momentum": 0.9, "maximize": True},
    {"maximize": True},
]


@pytest.mark.parametrize("options", SGD_OPTIONS, ids=str)
@pytest.mark.parametrize("n,p", SHAPES)
def test_cayley_sgd_follows_its_equations(n, p, options):
    """Momentum on P_Y(G), Cayley step, buffer transported by projection: the buffer is tangent after each step."""
    Y = frame(n, p)
    opt = CayleySGD([Y], lr=0.2, **options)
    Gs = grads(n, p, 5)
    for G in Gs:
        Y.grad = G.clone()
        opt.step()
        assert orthogonality_error(Y.detach()) <= tol(F64, n)
        if "momentum_buffer" in opt.state[Y]:
            assert tangency_error(Y.detach(), opt.state[Y]["momentum_buffer"]) <= tol(F64, n)
    reference, buffer = sgd_reference(frame(n, p).detach(), Gs, 0.2, **options)
    assert torch.allclose(Y.detach(), reference, atol=tol(F64, n))
    if buffer is not None:
        assert torch.allclose(opt.state[Y]["momentum_buffer"], buffer, atol=tol(F64, n))


ADAM_OPTIONS = [{}, {"amsgrad": True}, {"maximize": True}, {"betas": (0.8, 0.95), "eps": 1e-6}]


@pytest.mark.parametrize("options", ADAM_OPTIONS, ids=str)
@pytest.mark.parametrize("n,p", SHAPES)
def test_cayley_adam_follows_its_equations(n, p, options):
    """Adam's moments of P_Y(G), bias corrections, Cayley step, first moment transported (tangent)."""
    Y = frame(n, p)
    opt = CayleyAdam([Y], lr=0.05, **options)
    Gs = grads(n, p, 6)
    for G in Gs:
        Y.grad = G.clone()
        opt.step()
        assert orthogonality_error(Y.detach()) <= tol(F64, n)
        assert tangency_error(Y.detach(), opt.state[Y]["exp_avg"]) <= tol(F64, n)
    reference, m = adam_reference(frame(n, p).detach(), Gs, 0.05, **options)
    assert torch.allclose(Y.detach(), reference, atol=tol(F64, n))
    assert torch.allclose(opt.state[Y]["exp_avg"], m, atol=tol(F64, n))
    keys = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if options.get("amsgrad") else set())
    assert set(opt.state[Y]) == keys and opt.state[Y]["step"] == len(Gs)


def test_the_functional_steps_leave_their_input_alone_and_fill_the_state():
    Y = frame(6, 3).detach()
    before = Y.clone()
    state = {}
    Y1 = cayley_sgd_step(Y, torch.ones(6, 3, dtype=F64), state, lr=0.1, momentum=0.9)
    assert torch.equal(Y, before) and not torch.equal(Y1, Y)
    assert set(state) == {"step", "momentum_buffer"} and state["step"] == 1
    assert state["step"].device.type == "cpu"
    state = {}
    cayley_adam_step(Y, torch.ones(6, 3, dtype=F64), state, lr=0.1, amsgrad=True)
    assert set(state) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}


def test_weight_decay_on_a_frame_would_do_nothing():
    """The reason weight_decay is refused on frames: λY is normal to the manifold, P_Y(λY) = 0."""
    Y = frame(6, 3).detach()
    assert torch.linalg.matrix_norm(proj(Y, 0.1 * Y)) <= tol(F64, 6)


@pytest.mark.parametrize("optimizer", [CayleySGD, CayleyAdam])
def test_many_steps_stay_on_the_manifold(optimizer):
    """Book: Eq. (stiefel-orth-error) after 300 float64 steps (with momentum)."""
    Y = frame(9, 3)
    opt = optimizer([Y], lr=0.05, **({"momentum": 0.9} if optimizer is CayleySGD else {}))
    for G in grads(9, 3, 300):
        Y.grad = G
        opt.step()
    assert orthogonality_error(Y.detach()) <= tol(F64, 9)


def test_a_tensor_learning_rate_steps_as_its_value():
    Y, Z = frame(5, 2), frame(5, 2)
    a = CayleySGD([Y], lr=torch.tensor(0.25), momentum=0.9)
    b = CayleySGD([Z], lr=0.25, momentum=0.9)
    for G in grads(5, 2, 3):
        Y.grad, Z.grad = G.clone(), G.clone()
        a.step()
        b.step()
    assert torch.equal(Y, Z)


# --- ordinary parameters: torch's own step, bit for bit ---------------------------------------


def euclidean_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2))


def drive(model: nn.Module, opt: torch.optim.Optimizer, steps: int = 4) -> None:
    for k in range(steps):
        for i, param in enumerate(model.parameters()):
            param.grad = torch.randn(param.shape, generator=gen(100 * k + i), dtype=param.dtype)
        opt.step()


def assert_same_run(model_a, opt_a, model_b, opt_b) -> None:
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    state_a, state_b = opt_a.state_dict()["state"], opt_b.state_dict()["state"]
    assert state_a.keys() == state_b.keys()
    for key in state_a:
        assert state_a[key].keys() == state_b[key].keys()
        for name in state_a[key]:
            assert torch.equal(state_a[key][name], state_b[key][name]), (key, name)


SGD_TORCH_OPTIONS = [
    {},
    {"momentum": 0.9},
    {"momentum": 0.9, "nesterov": True},
    {"momentum": 0.9, "dampening": 0.2},
    {"weight_decay": 0.01, "momentum": 0.5},
    {"maximize": True, "momentum": 0.9},
    {"foreach": True, "momentum": 0.9},
    {"foreach": False, "momentum": 0.9},
]
ADAM_TORCH_OPTIONS = [
    {},
    {"amsgrad": True},
    {"weight_decay": 0.01},
    {"weight_decay": 0.01, "decoupled_weight_decay": True},
    {"maximize": True},
    {"betas": (0.8, 0.9), "eps": 1e-6},
    {"foreach": True, "amsgrad": True},
    {"fused": True},
]
PAIRS = [(CayleySGD, torch.optim.SGD, o) for o in SGD_TORCH_OPTIONS] + [
    (CayleyAdam, torch.optim.Adam, o) for o in ADAM_TORCH_OPTIONS
]


@pytest.mark.parametrize("ours,theirs,options", PAIRS, ids=[f"{t.__name__}{o}" for _, t, o in PAIRS])
def test_ordinary_parameters_move_exactly_as_under_torch(ours, theirs, options):
    model_a, model_b = euclidean_model(), euclidean_model()
    opt_a, opt_b = ours(model_a.parameters(), lr=0.1, **options), theirs(model_b.parameters(), lr=0.1, **options)
    drive(model_a, opt_a)
    drive(model_b, opt_b)
    assert_same_run(model_a, opt_a, model_b, opt_b)
    assert isinstance(opt_a, theirs) and isinstance(opt_a, RetractingOptimizer)


MIXED = [
    (CayleySGD, torch.optim.SGD, {"momentum": 0.9, "weight_decay": 0.01}),
    (CayleySGD, torch.optim.SGD, {"momentum": 0.9, "nesterov": True, "foreach": True}),
    (CayleyAdam, torch.optim.Adam, {"weight_decay": 0.01}),
    (CayleyAdam, torch.optim.Adam, {"amsgrad": True, "foreach": True}),
    (CayleyAdam, torch.optim.Adam, {"fused": True}),
]


@pytest.mark.parametrize("ours,theirs,options", MIXED, ids=[f"{t.__name__}{o}" for _, t, o in MIXED])
def test_ordinary_parameters_beside_frames_move_exactly_as_under_torch(ours, theirs, options):
    """The frames in a group of their own (weight_decay=0 there), the model's parameters in another."""
    model_a, model_b = euclidean_model(), euclidean_model()
    U = frame(4, 4, F32)
    groups = [{"params": [U], "weight_decay": 0.0}, {"params": list(model_a.parameters())}]
    opt_a, opt_b = ours(groups, lr=0.1, **options), theirs(model_b.parameters(), lr=0.1, **options)
    for k in range(3):
        U.grad = torch.randn(4, 4, generator=gen(k))
        drive(model_a, opt_a, 1)
        drive(model_b, opt_b, 1)
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    assert orthogonality_error(U.detach()) <= tol(F32, 4) and opt_a.state[U]["step"] == 3


def test_frames_without_gradient_are_left_alone_and_their_gradients_restored():
    U, V, b = frame(4, 2), frame(4, 2, seed=1), nn.Parameter(torch.zeros(3, dtype=F64))
    opt = CayleyAdam([U, V, b], lr=0.1)
    G = torch.ones(4, 2, dtype=F64)
    U.grad, b.grad = G, torch.ones(3, dtype=F64)
    before = V.detach().clone()
    opt.step()
    assert torch.equal(V.detach(), before) and V not in opt.state
    assert U.grad is G and opt.state[U]["step"] == 1


def test_closure_and_zero_grad():
    U, b = frame(5, 2), nn.Parameter(torch.ones(2, dtype=F64))
    opt = CayleySGD([U, b], lr=0.1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (U @ b).square().sum()
        loss.backward()
        return loss

    with torch.no_grad():
        loss = opt.step(closure)
    assert loss.item() > 0 and U.grad is not None and opt.state[U]["step"] == 1
    opt.zero_grad(set_to_none=True)
    assert U.grad is None and b.grad is None


def test_hooks_run_once_per_step():
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)  # torch wraps SGD.step with its hooks
    U, b = frame(4, 4), nn.Parameter(torch.zeros(2, dtype=F64))
    opt = CayleySGD([U, b], lr=0.1)
    calls = []
    opt.register_step_pre_hook(lambda *_: calls.append("pre"))
    opt.register_step_post_hook(lambda *_: calls.append("post"))
    for _ in range(2):
        U.grad, b.grad = torch.ones(4, 4, dtype=F64), torch.ones(2, dtype=F64)
        opt.step()
    assert calls == ["pre", "post", "pre", "post"]


def test_a_grad_scaler_unscales_the_frames_of_a_fused_optimizer():
    """A fused optimizer would unscale only its ordinary gradients; the frames' step must see unscaled ones."""
    U, V = frame(4, 4, F32), frame(4, 4, F32)
    scaled = CayleyAdam([U], lr=0.01, fused=True)
    plain = CayleyAdam([V], lr=0.01)
    scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    scaler.scale(U.sum()).backward()
    V.sum().backward()
    scaler.step(scaled)
    plain.step()
    assert torch.equal(U, V)


@pytest.mark.parametrize("n,p", SHAPES)
@pytest.mark.parametrize(
    "optimizer,options",
    [(CayleySGD, {"momentum": 0.9, "nesterov": True}), (CayleyAdam, {"amsgrad": True})],
)
def test_a_step_reads_nothing_back_from_the_device(optimizer, options, n, p):
    """On the meta device any read of a value raises: the steps (re-orthonormalisation included) read
    only the CPU step counter, so they never wait for an accelerator (no .item(), no solve check)."""
    U = StiefelParameter(torch.empty(n, p, device="meta"))
    b = nn.Parameter(torch.empty(3, device="meta"))
    opt = optimizer([U, b], lr=0.1, reorthonormalize_every=2, **options)
    for _ in range(3):
        U.grad, b.grad = torch.empty(n, p, device="meta"), torch.empty(3, device="meta")
        opt.step()
    assert U.device.type == "meta" and opt.state[U]["step"].device.type == "cpu"


# --- groups and learning-rate schedulers ----------------------------------------------------------


def test_step_lr_drives_the_frames():
    """StepLR halves group['lr']; the Cayley steps take the scheduled τ (bit-equal to cayley_step)."""
    U, b = frame(6, 2), nn.Parameter(torch.zeros(3, dtype=F64))
    opt = CayleySGD([U, b], lr=0.4)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    expected = U.detach().clone()
    for G, lr in zip(grads(6, 2, 3), (0.4, 0.2, 0.1)):
        U.grad, b.grad = G.clone(), torch.ones(3, dtype=F64)
        opt.step()
        scheduler.step()
        expected = cayley_step(expected, G, lr)
        assert torch.equal(U.detach(), expected)


def test_lambda_lr_drives_the_frames_of_adam():
    U = frame(5, 5)
    opt = CayleyAdam([U], lr=0.02)
    scheduler = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1 / (k + 1))
    expected, state = U.detach().clone(), {}
    for k, G in enumerate(grads(5, 5, 4)):
        lr = opt.param_groups[0]["lr"]
        assert math.isclose(lr, 0.02 / (k + 1))
        U.grad = G.clone()
        opt.step()
        scheduler.step()
        expected = cayley_adam_step(expected, G, state, lr=lr)
        assert torch.equal(U.detach(), expected)


def test_group_options_and_defaults():
    U1, U2, b = frame(4, 4), frame(4, 2, seed=1), nn.Parameter(torch.zeros(3, dtype=F64))
    opt = CayleySGD(
        [{"params": [U1], "lr": 0.5, "reorthonormalize_every": None}, {"params": [U2, b], "momentum": 0.9}],
        lr=0.1,
    )
    first, second = opt.param_groups
    assert (first["lr"], first["reorthonormalize_every"], first["momentum"]) == (0.5, None, 0)
    assert (second["lr"], second["reorthonormalize_every"], second["momentum"]) == (0.1, REORTHONORMALIZE_EVERY, 0.9)
    opt.add_param_group({"params": [nn.Parameter(torch.zeros(2))], "weight_decay": 0.1, "lr": np.float32(0.5)})
    assert opt.param_groups[2]["reorthonormalize_every"] == REORTHONORMALIZE_EVERY
    assert type(opt.param_groups[2]["lr"]) is float  # a numpy number stored as a float: it saves with weights_only


# --- re-orthonormalisation ----------------------------------------------------------------------


def test_reorthonormalize_every_k_steps_pulls_a_frame_back():
    """Off the manifold by 1e-3, Cayley steps keep YᵀY; each 4th step squares the error (Newton–Schulz)."""
    U = StiefelParameter(orthogonal(5, generator=gen(0), dtype=F64)[:, :3] * (1 + 1e-3))
    opt = CayleySGD([U], lr=0.1, momentum=0.9, reorthonormalize_every=4)
    errors = []
    for G in grads(5, 3, 8):
        U.grad = G
        opt.step()
        errors.append(orthogonality_error(U.detach()).item())
        buffer = opt.state[U]["momentum_buffer"]  # tangent up to the frame's own error
        assert tangency_error(U.detach(), buffer) <= 2 * errors[-1] * torch.linalg.matrix_norm(buffer) + tol(F64, 5)
    assert all(abs(e - errors[0]) <= 1e-9 for e in errors[:3]) and errors[0] > 3e-3
    assert errors[3] <= errors[0] ** 2 and errors[7] <= errors[3] ** 2  # quadratic convergence


def test_reorthonormalize_every_none_is_the_plain_cayley_step():
    U = frame(6, 6, F32)
    opt = CayleySGD([U], lr=0.1, reorthonormalize_every=None)
    expected = U.detach().clone()
    for G in grads(6, 6, 2 * REORTHONORMALIZE_EVERY, F32):
        U.grad = G
        opt.step()
        expected = cayley_step(expected, G, 0.1)
    assert torch.equal(U.detach(), expected)


def drift(shapes: list[tuple[int, int]], optimizer: type, lr: float, steps: int, **options) -> list[float]:
    """Largest ‖UᵀU − I‖_F of each frame over a float32 run on random gradients (one optimizer
    for all frames), read just before each correction."""
    frames = [frame(n, p, F32, seed=1) for n, p in shapes]
    opt = optimizer(frames, lr=lr, **options)
    g, worst = gen(2), [0.0] * len(frames)
    for k in range(1, steps + 1):
        for U in frames:
            U.grad = torch.randn(U.shape, generator=g)
        opt.step()
        if k % REORTHONORMALIZE_EVERY == REORTHONORMALIZE_EVERY - 1:
            worst = [max(w, orthogonality_error(U.detach()).item()) for w, U in zip(worst, frames)]
    return worst


@pytest.mark.slow
@pytest.mark.parametrize("optimizer", [CayleySGD, CayleyAdam])
def test_ten_thousand_float32_steps_stay_orthonormal_by_default(one_thread, optimizer):
    """Book: Eq. (stiefel-orth-error) ≤ 1e-5 over 10,000 float32 steps with default settings, for a
    square (64×64) and a tall (128×16) frame (Note [drift]).

    Without the Newton–Schulz correction the same runs reach 3e-5 to 4e-5 (square) and 6e-6 to
    1e-5 (tall).
    """
    square, tall = drift([(64, 64), (128, 16)], optimizer, 0.01, 10_000)
    assert square <= 1e-5 and tall <= 1e-5


def test_float32_drift_short_run(one_thread):
    assert max(drift([(16, 16), (24, 4)], CayleySGD, 0.1, 300)) <= tol(F32, 24)
    assert max(drift([(16, 16), (24, 4)], CayleyAdam, 0.01, 300)) <= tol(F32, 24)


# --- checkpoints -----------------------------------------------------------------------------


class Framed(nn.Module):
    """A square and a tall frame, free singular values and a readout: W = U diag(s) Vᵀ, h ↦ tanh(W h + x)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.U = StiefelParameter(orthogonal(6, generator=gen(seed)))
        self.V = StiefelParameter(orthogonal(6, generator=gen(seed + 1))[:, :4])
        self.s = nn.Parameter(torch.ones(4))
        self.readout = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        W = self.U[:, :4] @ torch.diag(self.s) @ self.V.mT
        h = torch.zeros(x.shape[0], 6)
        for x_t in x.unbind(1):
            h = torch.tanh(h @ W.mT + x_t)
        return self.readout(h)


MAKERS = {
    "sgd": lambda model: CayleySGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, reorthonormalize_every=3),
    "adam": lambda model: CayleyAdam(model.parameters(), lr=0.01, amsgrad=True, reorthonormalize_every=3),
}


def make_run(seed: int, kind: str):
    model = Framed(seed)
    opt = MAKERS[kind](model)
    return model, opt, torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)


def train(model: nn.Module, opt: torch.optim.Optimizer, scheduler, steps: int) -> list[float]:
    x = torch.randn(8, 5, 6, generator=gen(123))
    y = torch.randn(8, 2, generator=gen(321))
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        scheduler.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("kind", list(MAKERS))
def test_checkpoint_round_trip_continues_bit_identically(kind):
    model, opt, scheduler = make_run(0, kind)
    train(model, opt, scheduler, 4)
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()}, buffer)
    continued = train(model, opt, scheduler, 5)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    model2, opt2, scheduler2 = make_run(1, kind)
    model2.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    assert train(model2, opt2, scheduler2, 5) == continued
    assert_same_run(model, opt, model2, opt2)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt.param_groups]
    assert continued[-1] < train(*make_run(0, kind), 1)[0]  # it learns


def test_state_dict_uses_torchs_keys():
    model, opt, scheduler = make_run(0, "adam")
    train(model, opt, scheduler, 1)
    saved = opt.state_dict()
    assert saved["param_groups"][0]["reorthonormalize_every"] == 3
    for index in (0, 1):  # U and V
        assert set(saved["state"][index]) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    sgd_model, sgd, sgd_scheduler = make_run(0, "sgd")
    train(sgd_model, sgd, sgd_scheduler, 1)
    assert set(sgd.state_dict()["state"][0]) == {"step", "momentum_buffer"}
    assert set(sgd.state_dict()["state"][2]) == {"momentum_buffer"}  # s: torch's own SGD state


def test_a_state_without_reorthonormalize_every_loads_with_the_optimizers_default():
    model, opt, _ = make_run(0, "sgd")
    saved = opt.state_dict()
    del saved["param_groups"][0]["reorthonormalize_every"]
    opt.load_state_dict(saved)
    assert opt.param_groups[0]["reorthonormalize_every"] == opt.defaults["reorthonormalize_every"] == 3


def test_deepcopy_of_model_and_optimizer_continues_identically():
    model, opt, scheduler = make_run(0, "adam")
    train(model, opt, scheduler, 2)
    model2, opt2 = copy.deepcopy((model, opt))
    scheduler2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.7)
    scheduler2.load_state_dict(scheduler.state_dict())
    assert train(model, opt, scheduler, 3) == train(model2, opt2, scheduler2, 3)
    assert opt2.param_groups[0]["params"][0] is model2.U


# --- bad input ------------------------------------------------------------------------------------


BAD_LR = [
    (-0.1, ValueError, "lr must be non-negative"),
    (float("nan"), ValueError, "lr must be finite"),
    (float("inf"), ValueError, "lr must be finite"),
    ("0.1", TypeError, "lr must be a real number or a one-element tensor"),
    (True, TypeError, "lr must be a real number"),
    (None, TypeError, "lr must be a real number"),
    (torch.tensor([0.1, 0.2]), ValueError, "lr must be a one-element floating tensor"),
    (torch.tensor(1), ValueError, "lr must be a one-element floating tensor"),
    (torch.tensor(-1.0), ValueError, "lr must be non-negative"),
]


@pytest.mark.parametrize("optimizer", [CayleySGD, CayleyAdam])
@pytest.mark.parametrize("lr,error,match", BAD_LR, ids=[repr(x[0]) for x in BAD_LR])
def test_bad_learning_rates_are_rejected(optimizer, lr, error, match):
    with pytest.raises(error, match=match):
        optimizer([frame(4, 4)], lr=lr)
    with pytest.raises(error, match=r"param_group\['lr'\] must"):
        optimizer([{"params": [frame(4, 4)], "lr": lr}], lr=0.1)


@pytest.mark.parametrize("lr", [np.float32(0.1), np.float64(0.1), 1, torch.tensor(0.1), torch.tensor([0.1])])
def test_good_learning_rates_are_accepted(lr):
    opt = CayleyAdam([frame(4, 4)], lr=lr)
    stored = opt.param_groups[0]["lr"]
    assert isinstance(stored, torch.Tensor) or type(stored) is float
    assert math.isclose(float(stored), float(lr))


@pytest.mark.parametrize("optimizer", [CayleySGD, CayleyAdam])
def test_weight_decay_on_frames_is_rejected_and_allowed_elsewhere(optimizer):
    U, b = frame(4, 4), nn.Parameter(torch.zeros(2, dtype=F64))
    with pytest.raises(ValueError, match="weight_decay must be 0 in a parameter group holding StiefelParameters"):
        optimizer([U, b], lr=0.1, weight_decay=1e-4)
    opt = optimizer([{"params": [U], "weight_decay": 0.0}, {"params": [b]}], lr=0.1, weight_decay=1e-4)
    with pytest.raises(ValueError, match="weight_decay must be 0"):
        opt.add_param_group({"params": [frame(3, 3)]})


@pytest.mark.parametrize(
    "every,error,match",
    [
        (0, ValueError, "reorthonormalize_every must be a positive int"),
        (2.5, TypeError, "reorthonormalize_every must be an int"),
        ("10", TypeError, "reorthonormalize_every must be an int"),
    ],
)
def test_bad_reorthonormalize_every_is_rejected(every, error, match):
    with pytest.raises(error, match=match):
        CayleySGD([frame(4, 4)], lr=0.1, reorthonormalize_every=every)
    with pytest.raises(error, match=r"param_group\['reorthonormalize_every'\]"):
        CayleyAdam([{"params": [frame(4, 4)], "reorthonormalize_every": every}], lr=0.1)


def test_torchs_own_checks_still_apply():
    with pytest.raises(ValueError, match="Invalid momentum value"):
        CayleySGD([frame(4, 4)], lr=0.1, momentum=-1.0)
    with pytest.raises(ValueError, match="Nesterov momentum requires a momentum"):
        CayleySGD([frame(4, 4)], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        CayleyAdam([frame(4, 4)], lr=0.1, betas=(0.9, 1.0))
    with pytest.raises(ValueError, match="empty parameter list"):
        CayleyAdam([], lr=0.1)


@pytest.mark.parametrize(
    "step,kwargs,error,match",
    [
        (cayley_sgd_step, {"lr": -1.0}, ValueError, "lr must be non-negative"),
        (cayley_sgd_step, {"lr": 0.1, "momentum": float("nan")}, ValueError, "momentum must be finite"),
        (cayley_sgd_step, {"lr": 0.1, "dampening": "0"}, TypeError, "dampening must be a real number"),
        (cayley_sgd_step, {"lr": 0.1, "nesterov": True}, ValueError, "nesterov needs momentum > 0"),
        (cayley_sgd_step, {"lr": 0.1, "maximize": 1}, TypeError, "maximize must be a bool"),
        (cayley_adam_step, {"lr": 0.1, "betas": 0.9}, TypeError, "betas must be a pair"),
        (cayley_adam_step, {"lr": 0.1, "betas": (0.9, 1.0)}, ValueError, r"betas\[1\] must lie in \[0, 1\)"),
        (cayley_adam_step, {"lr": 0.1, "eps": -1e-8}, ValueError, "eps must be non-negative"),
        (cayley_adam_step, {"lr": 0.1, "amsgrad": None}, TypeError, "amsgrad must be a bool"),
        (cayley_adam_step, {"lr": torch.ones(2)}, ValueError, "lr must be a number or a one-element tensor"),
    ],
)
def test_bad_arguments_of_the_functional_steps_are_rejected(step, kwargs, error, match):
    Y = frame(4, 2).detach()
    with pytest.raises(error, match=match):
        step(Y, torch.ones(4, 2, dtype=F64), {}, **kwargs)


def test_bad_frames_and_states_of_the_functional_steps_are_rejected():
    Y = frame(4, 2).detach()
    with pytest.raises(TypeError, match="state must be a dict"):
        cayley_sgd_step(Y, Y, None, lr=0.1)
    with pytest.raises(ValueError, match="G must have the shape of Y"):
        cayley_adam_step(Y, torch.ones(4, 3, dtype=F64), {}, lr=0.1)
    with pytest.raises(TypeError, match="G must have the dtype of Y"):
        cayley_sgd_step(Y, Y.float(), {}, lr=0.1)
