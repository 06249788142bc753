"""Tests of orthobook.device: device choice, seeding, deterministic mode, generators, run modes."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import torch

from orthobook.device import deterministic, generator, pick_device, run_mode, seed_everything


def _no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


# pick_device ------------------------------------------------------------------------------------


def test_pick_device_none_is_cpu_without_accelerator(monkeypatch):
    _no_accelerator(monkeypatch)
    assert pick_device(None) == torch.device("cpu")
    assert pick_device() == torch.device("cpu")


def test_pick_device_none_prefers_cuda_then_mps(monkeypatch):
    _no_accelerator(monkeypatch)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert pick_device(None) == torch.device("mps")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert pick_device(None) == torch.device("cuda")


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_pick_device_cpu(device):
    result = pick_device(device)
    assert isinstance(result, torch.device)
    assert result.type == "cpu"


@pytest.mark.parametrize("device", [0, 1.5, ["cpu"]])
def test_pick_device_bad_type(device):
    with pytest.raises(TypeError, match="device must be a str or a torch.device"):
        pick_device(device)


@pytest.mark.parametrize("device", ["cuda", "cuda:1", torch.device("cuda")])
def test_pick_device_unavailable_cuda(monkeypatch, device):
    _no_accelerator(monkeypatch)
    with pytest.raises(ValueError, match="CUDA is not available"):
        pick_device(device)


def test_pick_device_unavailable_mps(monkeypatch):
    _no_accelerator(monkeypatch)
    with pytest.raises(ValueError, match="MPS is not available"):
        pick_device("mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_pick_device_cuda_when_available():
    assert pick_device("cuda").type == "cuda"
    assert pick_device(None).type == "cuda"


# seed_everything ----------------------------------------------------------------------------------


def _draws() -> tuple[float, float, torch.Tensor]:
    return random.random(), float(np.random.rand()), torch.rand(5)


def test_seed_everything_reproduces_all_generators():
    seed_everything(123)
    first = _draws()
    seed_everything(123)
    second = _draws()
    assert first[0] == second[0]
    assert first[1] == second[1]
    assert torch.equal(first[2], second[2])


def test_seed_everything_different_seeds_differ():
    seed_everything(1)
    first = _draws()
    seed_everything(2)
    second = _draws()
    assert first[0] != second[0]
    assert first[1] != second[1]
    assert not torch.equal(first[2], second[2])


@pytest.mark.parametrize("seed", [1.0, "1", True, None])
def test_seed_everything_bad_type(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        seed_everything(seed)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seed_everything_out_of_range(seed):
    with pytest.raises(ValueError, match=r"seed must lie in \[0, 2\*\*32\)"):
        seed_everything(seed)


# deterministic ----------------------------------------------------------------------------------


@pytest.fixture
def restore_determinism(monkeypatch):
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG", raising=False)
    enabled = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    benchmark = torch.backends.cudnn.benchmark
    yield
    torch.use_deterministic_algorithms(enabled, warn_only=warn_only)
    torch.backends.cudnn.benchmark = benchmark


def test_deterministic_on_and_off(restore_determinism):
    deterministic(True)
    assert torch.are_deterministic_algorithms_enabled()
    assert torch.is_deterministic_algorithms_warn_only_enabled()
    assert torch.backends.cudnn.benchmark is False
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    deterministic(False)
    assert not torch.are_deterministic_algorithms_enabled()
    assert torch.backends.cudnn.benchmark is True


def test_deterministic_keeps_user_cublas_config(restore_determinism, monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", ":16:8")
    deterministic(True)
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":16:8"


# generator ----------------------------------------------------------------------------------------


def test_generator_is_reproducible_and_independent_of_global_state():
    torch.manual_seed(0)
    a = torch.rand(5, generator=generator(7))
    torch.manual_seed(99)
    state = torch.get_rng_state()
    b = torch.rand(5, generator=generator(7))
    assert torch.equal(a, b)
    assert torch.equal(torch.get_rng_state(), state), "drawing from the generator moved the global state"
    assert not torch.equal(a, torch.rand(5, generator=generator(8)))


def test_generator_device():
    gen = generator(3, "cpu")
    assert isinstance(gen, torch.Generator)
    assert gen.device == torch.device("cpu")
    assert gen.initial_seed() == 3


@pytest.mark.parametrize("seed", [1.5, "3", False])
def test_generator_bad_seed(seed):
    with pytest.raises(TypeError, match="seed must be an int"):
        generator(seed)


# run_mode -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("quick", "full", "mode"), [(True, False, "quick"), (False, True, "full"), (False, False, "book")])
def test_run_mode(quick, full, mode):
    assert run_mode(quick, full) == mode


def test_run_mode_both():
    with pytest.raises(ValueError, match="quick and full cannot both be True"):
        run_mode(True, True)


@pytest.mark.parametrize(("quick", "full"), [(1, False), (False, "yes"), (None, False)])
def test_run_mode_not_bool(quick, full):
    with pytest.raises(TypeError, match="quick and full must be bools"):
        run_mode(quick, full)


def test_bad_device_name_is_a_value_error():
    with pytest.raises(ValueError, match="device must name a torch device"):
        pick_device("gpu")


def test_generator_rejects_negative_seed():
    with pytest.raises(ValueError, match="seed must be non-negative"):
        generator(-1)


def test_seeds_of_two_chapter_seeds_are_disjoint() -> None:
    from orthobook.device import seeds

    assert seeds(0, 5) == [0, 1, 2, 3, 4]
    assert set(seeds(1, 20)).isdisjoint(seeds(0, 20)) and len(seeds(3, 20)) == 20
    for bad in ((-1, 5), (0, 0), (1.0, 5), (True, 5)):
        with pytest.raises(ValueError):
            seeds(*bad)
