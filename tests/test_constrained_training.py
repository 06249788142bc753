"""Each constraint on a plain ``nn.RNN``, trained by ``CayleyAdam`` through ``train``: the constraint
holds after training and the model's state dict round-trips through ordinary PyTorch."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from orthobook import parametrizations as P
from orthobook.optim import CayleyAdam, CayleySGD
from orthobook.stiefel import StiefelParameter, orthogonality_error
from orthobook.tasks import AddingTask
from orthobook.train import TrainConfig, train

N = 12
F32 = torch.float32


class RNNModel(nn.Module):
    """A plain ``nn.RNN`` and a readout at every step, as a coursework model would be written."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.RNN(2, N, batch_first=True)
        self.readout = nn.Linear(N, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.nn.utils.parametrize.cached():
            states, _ = self.rnn(x)
        return self.readout(states)


CONSTRAINTS = {
    "spectral_margin": lambda m: P.spectral_margin(m, "weight_hh_l0", margin=0.1, generator=torch.Generator().manual_seed(1)),
    "householder_svd": lambda m: P.householder_svd(m, "weight_hh_l0", margin=0.1, generator=torch.Generator().manual_seed(1)),
    "residual_identity": lambda m: P.residual_identity(m, "weight_hh_l0", generator=torch.Generator().manual_seed(1)),
    "orthogonal": lambda m: P.orthogonal(m, "weight_hh_l0", generator=torch.Generator().manual_seed(1)),
}


def _constrained(name: str) -> RNNModel:
    model = RNNModel()
    CONSTRAINTS[name](model.rnn)
    return model


def _check_constraint(name: str, model: RNNModel) -> None:
    W = model.rnn.weight_hh_l0.detach()
    tol = 10 * N * torch.finfo(F32).eps
    sigma = torch.linalg.svdvals(W.double())
    if name in ("spectral_margin", "householder_svd"):
        assert ((sigma - 1).abs() <= 0.1 + tol).all(), sigma
    if name == "orthogonal":
        assert orthogonality_error(W) <= tol
    for param in model.parameters():
        if isinstance(param, StiefelParameter):
            assert orthogonality_error(param.detach()) <= tol


@pytest.mark.parametrize("name", list(CONSTRAINTS))
@pytest.mark.parametrize("optimizer", [CayleyAdam, CayleySGD])
def test_train_keeps_the_constraint_and_the_state_dict_round_trips(name, optimizer):
    model = _constrained(name)
    start = model.rnn.weight_hh_l0.detach().clone()
    opt = optimizer(model.parameters(), lr=1e-2)
    history = train(model, AddingTask(10), opt, 20, TrainConfig(batch_size=16, seed=0))
    assert len(history.loss) == 20
    assert not torch.equal(model.rnn.weight_hh_l0.detach(), start), "training moved W"
    _check_constraint(name, model)

    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    twin = _constrained(name)
    twin.load_state_dict(torch.load(buffer, weights_only=True))
    assert torch.equal(twin.rnn.weight_hh_l0, model.rnn.weight_hh_l0)
    x = torch.randn(3, 7, 2)
    assert torch.equal(twin(x), model(x))


def test_train_refuses_a_stiefel_parameter_in_a_plain_optimizer():
    model = _constrained("spectral_margin")
    with pytest.raises(TypeError, match="CayleyAdam"):
        train(model, AddingTask(10), torch.optim.Adam(model.parameters(), lr=1e-2), 2)
