"""The papers' experiments as data, the run / sweep command line and the results store.

``python -m orthobook.experiments list | run NAME | sweep NAME | report``; see
:mod:`orthobook.experiments.cli`. Ray, for ``--backend ray``, is the optional extra
``orthobook[cluster]`` and is imported only when that backend is used.
"""

from orthobook.experiments.config import Deviation, Experiment, Reported
from orthobook.experiments.papers import PAPERS, REGISTRY, get, select
from orthobook.experiments.runner import Budget, parse_budget, run_group
from orthobook.experiments.store import StaleResult, Store

__all__ = [
    "Budget",
    "Deviation",
    "Experiment",
    "PAPERS",
    "REGISTRY",
    "Reported",
    "StaleResult",
    "Store",
    "get",
    "parse_budget",
    "run_group",
    "select",
]
