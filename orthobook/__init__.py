"""orthobook: the package behind the book on orthogonal, spectrally bounded, identity-residual
and non-normal recurrent networks.

The modules hold one concept each; the names most chapters use are re-exported here::

    from orthobook import CayleyAdam, CopyTask, ElmanRNN, spectral_margin, train

    model = ElmanRNN(1, 64, 9, nonlinearity="identity")
    spectral_margin(model.rnn, "weight_hh_l0", margin=0.1)
    history = train(model, CopyTask(20), CayleyAdam(model.parameters(), lr=1e-3), 1000)
"""

from orthobook.batched import BatchedElmanRNN
from orthobook.device import pick_device, run_mode, seed_everything
from orthobook.householder import householder_product
from orthobook.memory import fisher_memory_curve, total_memory
from orthobook.models import LSTM, ElmanRNN, irnn, rin
from orthobook.normality import henrici
from orthobook.optim import CayleyAdam, CayleySGD
from orthobook.parametrizations import householder_svd, residual_identity, spectral_margin
from orthobook.stiefel import StiefelParameter, cayley_step, orthogonality_error
from orthobook.tasks import AddingTask, ClassificationTask, CopyTask, LanguageModelTask, Task
from orthobook.train import History, TrainConfig, TrainingDiverged, evaluate, train

__version__ = "0.1.0"

__all__ = [
    "AddingTask",
    "BatchedElmanRNN",
    "CayleyAdam",
    "CayleySGD",
    "ClassificationTask",
    "CopyTask",
    "ElmanRNN",
    "History",
    "LSTM",
    "LanguageModelTask",
    "StiefelParameter",
    "Task",
    "TrainConfig",
    "TrainingDiverged",
    "cayley_step",
    "evaluate",
    "fisher_memory_curve",
    "henrici",
    "householder_product",
    "householder_svd",
    "irnn",
    "orthogonality_error",
    "pick_device",
    "residual_identity",
    "rin",
    "run_mode",
    "seed_everything",
    "spectral_margin",
    "total_memory",
    "train",
]
