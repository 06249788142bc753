"""Tests for orthobook.optim: geodesic steps against oracles, groups, checkpoints, float32 drift."""

from __future__ import annotations

import copy
import io

import pytest
import torch
from torch import nn

from orthobook.init import orthogonal
from orthobook.optim import GeodesicOptimizer, StiefelParameter
from orthobook.recurrent import SpectralMarginSVD
from orthobook.stiefel import cayley_step, orthogonality_error

F64 = torch.float64


def tol(dtype: torch.dtype, n: int) -> float:
    return 10 * n * torch.finfo(dtype).eps


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def frame(n: int, p: int, dtype: torch.dtype = F64, seed: int = 0) -> StiefelParameter:
    return StiefelParameter(orthogonal(n, generator=gen(seed), dtype=dtype)[:, :p])


@pytest.fixture
def one_thread():
    """Long loops of tiny matrices run fastest, and reproducibly, on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- the geodesic step against oracles (Book: Eq. (geodesic-sgd), Eq. (geodesic-rmsprop)) ---


@pytest.mark.parametrize("n,p", [(7, 2), (5, 5)])
def test_sgd_method_is_the_cayley_step(n, p):
    """Book: Eq. (geodesic-sgd): Y ← cayley_step(Y, ∂f/∂Y, τ)."""
    Y = frame(n, p)
    opt = GeodesicOptimizer([Y], lr=0.3)
    expected = Y.detach().clone()
    for seed in range(3):
        G = torch.randn(n, p, generator=gen(seed), dtype=F64)
        Y.grad = G.clone()
        opt.step()
        expected = cayley_step(expected, G, 0.3)
        assert torch.equal(Y.detach(), expected)


@pytest.mark.parametrize(
    "method,reference",
    [
        ("rmsprop", lambda x: torch.optim.RMSprop([x], lr=0.05, alpha=0.9, eps=1e-6)),
        ("adam", lambda x: torch.optim.Adam([x], lr=0.05, betas=(0.8, 0.95), eps=1e-6)),
    ],
)
def test_scaled_methods_use_the_torch_optimizers_direction(method, reference):
    """Book: Eq. (geodesic-rmsprop): the direction is what torch's RMSprop/Adam would subtract, over τ."""
    n, p, lr = 6, 2, 0.05
    Y = frame(n, p)
    opt = GeodesicOptimizer([Y], lr=lr, method=method, alpha=0.9, betas=(0.8, 0.95), eps=1e-6)
    x = torch.zeros(n, p, dtype=F64, requires_grad=True)
    ref = reference(x)
    expected = Y.detach().clone()
    for seed in range(4):
        G = torch.randn(n, p, generator=gen(seed), dtype=F64)
        Y.grad, x.grad = G.clone(), G.clone()
        before = x.detach().clone()
        opt.step()
        ref.step()
        direction = (before - x.detach()) / lr
        expected = cayley_step(expected, direction, lr)
        assert torch.allclose(Y.detach(), expected, atol=tol(F64, n) / lr)
        assert orthogonality_error(Y) <= tol(F64, n)


def test_euclidean_parameters_follow_the_base_optimizer_exactly():
    U, b = frame(5, 5), nn.Parameter(torch.randn(4, generator=gen(1), dtype=F64))
    opt = GeodesicOptimizer([U, b], lr=0.1, base=torch.optim.Adam, base_kwargs={"weight_decay": 0.01})
    b_ref = nn.Parameter(b.detach().clone())
    ref = torch.optim.Adam([b_ref], lr=0.1, weight_decay=0.01)
    for seed in range(3):
        U.grad = torch.randn(5, 5, generator=gen(seed), dtype=F64)
        b.grad = torch.randn(4, generator=gen(10 + seed), dtype=F64)
        b_ref.grad = b.grad.clone()
        opt.step()
        ref.step()
        assert torch.equal(b.detach(), b_ref.detach())


def test_parameters_without_gradient_are_left_alone():
    U, V = frame(4, 2), frame(4, 2, seed=1)
    opt = GeodesicOptimizer([U, V], lr=0.1)
    U.grad = torch.ones(4, 2, dtype=F64)
    before = V.detach().clone()
    opt.step()
    assert torch.equal(V.detach(), before)
    assert opt.stiefel.state[U]["step"] == 1 and V not in opt.stiefel.state


# --- groups, schedulers, closure, zero_grad ------------------------------------------------------


def test_group_options_go_to_the_right_half():
    U1, U2 = frame(4, 4), frame(4, 4, seed=1)
    b1, b2 = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(3))
    opt = GeodesicOptimizer(
        [
            {"params": [U1, b1], "lr": 0.5},
            {"params": [U2], "stiefel_lr": 0.01},
            {"params": [b2], "weight_decay": 0.1},
        ],
        lr=0.1,
        stiefel_lr=0.2,
    )
    groups = opt.param_groups
    assert [g["params"] for g in groups] == [[U1], [U2], [b1], [b2]]
    assert [g["lr"] for g in groups] == [0.5, 0.01, 0.5, 0.1]
    assert groups[1]["method"] == "sgd" and groups[3]["weight_decay"] == 0.1
    assert groups[2:] == opt.base.param_groups and groups[:2] == opt.stiefel.param_groups


def test_a_scheduler_drives_both_halves():
    U, b = frame(4, 4), nn.Parameter(torch.zeros(3, dtype=F64))
    opt = GeodesicOptimizer([U, b], lr=0.4, stiefel_lr=0.2)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        U.grad, b.grad = torch.ones(4, 4, dtype=F64), torch.ones(3, dtype=F64)
        opt.step()
        scheduler.step()
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.1]


def test_closure_and_zero_grad():
    U, b = frame(5, 2), nn.Parameter(torch.ones(2, dtype=F64))
    opt = GeodesicOptimizer([U, b], lr=0.1)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = (U @ b).square().sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() > 0 and U.grad is not None and b.grad is not None
    opt.zero_grad(set_to_none=True)
    assert U.grad is None and b.grad is None


def test_base_instance_holding_the_euclidean_parameters():
    model = SpectralMarginSVD(4, margin=0.1, generator=gen(0))
    base = torch.optim.Adam([model.p], lr=0.01)
    opt = GeodesicOptimizer(model.parameters(), lr=0.1, base=base)
    assert opt.base is base and base.param_groups[0]["params"] == [model.p]
    assert opt.param_groups[0]["params"] == [model.U, model.V]


def test_only_stiefel_or_only_euclidean_parameters():
    U = frame(4, 4)
    stiefel_only = GeodesicOptimizer([U], lr=0.1)
    assert stiefel_only.base is None and stiefel_only.state_dict()["base"] is None
    b = nn.Parameter(torch.zeros(2))
    euclidean_only = GeodesicOptimizer([b], lr=0.1, base=torch.optim.Adam)
    assert euclidean_only.stiefel is None and isinstance(euclidean_only.base, torch.optim.Adam)
    euclidean_only.add_param_group({"params": [U], "stiefel_lr": 0.3})
    assert euclidean_only.param_groups[0]["params"] == [U] and euclidean_only.param_groups[0]["lr"] == 0.3


# --- checkpoints -----------------------------------------------------------------------------------


class Tiny(nn.Module):
    """A small Elman RNN with a spectral-margin recurrence and a linear readout."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.recurrence = SpectralMarginSVD(6, margin=0.2, generator=gen(seed))
        self.readout = nn.Linear(6, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        W = self.recurrence()
        h = torch.zeros(x.shape[0], 6)
        for x_t in x.unbind(1):
            h = torch.tanh(h @ W.mT + x_t)
        return self.readout(h)


def make_run(seed: int, method: str):
    model = Tiny(seed)
    opt = GeodesicOptimizer(
        model.parameters(),
        lr=0.05,
        method=method,
        base=torch.optim.Adam,
        reorthonormalize_every=3,
    )
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    return model, opt, scheduler


def train(model: nn.Module, opt: GeodesicOptimizer, scheduler, steps: int) -> list[float]:
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


@pytest.mark.parametrize("method", ["sgd", "rmsprop", "adam"])
def test_checkpoint_round_trip_reproduces_the_next_steps(method):
    model, opt, scheduler = make_run(0, method)
    train(model, opt, scheduler, 3)
    buffer = io.BytesIO()
    torch.save(
        {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": scheduler.state_dict()},
        buffer,
    )
    continued = train(model, opt, scheduler, 4)

    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=True)
    model2, opt2, scheduler2 = make_run(1, method)
    model2.load_state_dict(checkpoint["model"])
    opt2.load_state_dict(checkpoint["optimizer"])
    scheduler2.load_state_dict(checkpoint["scheduler"])
    resumed = train(model2, opt2, scheduler2, 4)

    assert resumed == continued
    for (name, a), (_, b) in zip(model.named_parameters(), model2.named_parameters()):
        assert torch.equal(a, b), name
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in opt2.param_groups]
    assert max(model2.recurrence.orthogonality_errors()) <= tol(torch.float32, 6)
    assert continued[-1] < train(*make_run(0, method), 1)[0]  # it learns


def test_deepcopy_of_model_and_optimizer_continues_identically():
    model, opt, scheduler = make_run(0, "adam")
    train(model, opt, scheduler, 2)
    model2, opt2 = copy.deepcopy((model, opt))
    scheduler2 = torch.optim.lr_scheduler.StepLR(opt2, step_size=2, gamma=0.7)
    scheduler2.load_state_dict(scheduler.state_dict())
    assert train(model, opt, scheduler, 3) == train(model2, opt2, scheduler2, 3)
    assert opt2.param_groups[0]["params"][0] is model2.recurrence.U


def test_load_state_dict_rejects_a_foreign_state():
    stiefel_only = GeodesicOptimizer([frame(4, 4)], lr=0.1)
    mixed = GeodesicOptimizer([frame(4, 4), nn.Parameter(torch.zeros(2))], lr=0.1)
    with pytest.raises(ValueError, match=r"state_dict\['base'\] is empty"):
        mixed.load_state_dict(stiefel_only.state_dict())
    with pytest.raises(ValueError, match="keys 'stiefel' and 'base'"):
        mixed.load_state_dict(mixed.stiefel.state_dict())


# --- float32 drift and re-orthonormalisation -----------------------------------------------------


def drift_after(steps: int, n: int, p: int, every: int | None, problem: str) -> float:
    """Run geodesic SGD in float32 on a random problem; return the final ‖UᵀU − I‖_F."""
    U = frame(n, p, torch.float32, seed=1)
    opt = GeodesicOptimizer([U], lr=0.1, reorthonormalize_every=every)
    T = orthogonal(n, generator=gen(2))[:, :p] + 0.3 * torch.randn(n, p, generator=gen(3))
    B = torch.randn(n, n, generator=gen(4)) / n**0.5
    M, N = B + B.mT, torch.diag(torch.linspace(1.0, 2.0, p))
    for _ in range(steps):
        Y = U.detach()
        # Procrustes ½‖U − T‖² or Brockett tr(UᵀMUN): their Euclidean gradients, without autograd.
        U.grad = Y - T if problem == "procrustes" else 2 * M @ Y @ N
        opt.step()
    return orthogonality_error(U).item()


@pytest.mark.slow
def test_ten_thousand_float32_steps_stay_orthonormal(one_thread):
    """Book: Eq. (stiefel-orth-error) after 10,000 geodesic steps (increment form, no re-orthonormalisation).

    Drift in float32 is a random walk of rounding errors; on a converging problem it stops
    (Note [Cayley in increment form]). A square problem that keeps moving reaches a few
    1e-5: that is what ``reorthonormalize_every`` is for (next test).
    """
    assert drift_after(10_000, 32, 8, None, "procrustes") <= 1e-5


@pytest.mark.slow
def test_reorthonormalize_every_bounds_the_float32_drift(one_thread):
    assert drift_after(10_000, 16, 16, 100, "brockett") <= 1e-5


def test_float32_drift_short_run(one_thread):
    assert drift_after(500, 16, 4, None, "procrustes") <= 1e-5
    assert drift_after(500, 8, 8, 50, "brockett") <= tol(torch.float32, 8)


def test_reorthonormalize_every_k_steps():
    """Off the manifold by 1e-3, Cayley steps keep YᵀY; the k-th step snaps back to a frame."""
    U = StiefelParameter(orthogonal(5, generator=gen(0), dtype=F64)[:, :3] * (1 + 1e-3))
    opt = GeodesicOptimizer([U], lr=0.1, method="adam", reorthonormalize_every=4)
    errors = []
    for seed in range(8):
        U.grad = torch.randn(5, 3, generator=gen(seed), dtype=F64)
        opt.step()
        errors.append(orthogonality_error(U).item())
    assert all(e > 1e-3 for e in errors[:3]) and errors[3] <= tol(F64, 5) and errors[7] <= tol(F64, 5)


# --- bad input ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,error,match",
    [
        ({"lr": -0.1}, ValueError, "lr must be non-negative"),
        ({"lr": "0.1"}, TypeError, "lr must be a real number"),
        ({"lr": float("inf")}, ValueError, "lr must be finite"),
        ({"lr": 0.1, "stiefel_lr": -1.0}, ValueError, "stiefel_lr must be non-negative"),
        ({"lr": 0.1, "method": "newton"}, ValueError, "method must be one of 'sgd', 'rmsprop', 'adam'"),
        ({"lr": 0.1, "alpha": 1.0}, ValueError, r"alpha must lie in \[0, 1\)"),
        ({"lr": 0.1, "betas": (0.9,)}, TypeError, "betas must be a pair"),
        ({"lr": 0.1, "betas": (0.9, 1.5)}, ValueError, r"betas\[1\] must lie in \[0, 1\)"),
        ({"lr": 0.1, "eps": 0.0}, ValueError, "eps must be positive"),
        ({"lr": 0.1, "reorthonormalize_every": 0}, ValueError, "reorthonormalize_every must be a positive"),
        ({"lr": 0.1, "base": "adam"}, TypeError, "base must be a torch.optim.Optimizer subclass or instance"),
        ({"lr": 0.1, "base_kwargs": [0.9]}, TypeError, "base_kwargs must be a dict or None"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, error, match):
    with pytest.raises(error, match=match):
        GeodesicOptimizer([frame(4, 4), nn.Parameter(torch.zeros(2))], **kwargs)


def test_bad_base_instances_and_params_are_rejected():
    U, b = frame(4, 4), nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="base_kwargs must be None when base is an optimizer instance"):
        GeodesicOptimizer([U], lr=0.1, base=torch.optim.SGD([b], lr=0.1), base_kwargs={})
    with pytest.raises(ValueError, match="base must not hold StiefelParameters"):
        GeodesicOptimizer([U], lr=0.1, base=torch.optim.SGD([U], lr=0.1))
    with pytest.raises(ValueError, match="empty parameter list"):
        GeodesicOptimizer([], lr=0.1)
    with pytest.raises(ValueError, match="params must hold at least one parameter"):
        GeodesicOptimizer([{"params": []}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        GeodesicOptimizer([{"params": [U]}, {"params": [U]}], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        GeodesicOptimizer([{"params": [b]}, {"params": [b]}], lr=0.1)
    with pytest.raises(TypeError, match="must be an ordered collection"):
        GeodesicOptimizer([{"params": {U}}], lr=0.1)
    with pytest.raises(ValueError, match=r"param_group\['stiefel_lr'\] must be non-negative"):
        GeodesicOptimizer([{"params": [U], "stiefel_lr": -1.0}], lr=0.1)
