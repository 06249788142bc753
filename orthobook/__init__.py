"""orthobook: the package behind the book on orthogonal, spectrally bounded, identity-residual
and non-normal recurrent networks.

The modules hold one concept each; the names most chapters use are re-exported here::

    from orthobook import ElmanRNN, Plain, CopyTask, train
"""

from orthobook.device import pick_device, run_mode, seed_everything
from orthobook.householder import householder_product
from orthobook.memory import fisher_memory_curve, total_memory
from orthobook.models import LSTM, ElmanRNN
from orthobook.normality import henrici
from orthobook.optim import GeodesicOptimizer
from orthobook.recurrent import HouseholderSVD, Plain, Recurrence, SpectralMarginSVD, margin_singular_values
from orthobook.stiefel import StiefelParameter, cayley_step, orthogonality_error
from orthobook.tasks import AddingTask, CopyTask
from orthobook.train import History, TrainingDiverged, evaluate, train

__version__ = "0.1.0"

__all__ = [
    "AddingTask",
    "CopyTask",
    "ElmanRNN",
    "GeodesicOptimizer",
    "History",
    "HouseholderSVD",
    "LSTM",
    "Plain",
    "Recurrence",
    "SpectralMarginSVD",
    "StiefelParameter",
    "TrainingDiverged",
    "cayley_step",
    "evaluate",
    "fisher_memory_curve",
    "henrici",
    "householder_product",
    "margin_singular_values",
    "orthogonality_error",
    "pick_device",
    "run_mode",
    "seed_everything",
    "total_memory",
    "train",
]
