"""actsearch: automatic search for activation functions (Ramachandran, Zoph & Le, 2017).

The data's path: grammar (``grammar``, ``ops``) → candidate (``candidate``, sympy) → compiled
module (``compiler``) → evaluation (``train``, ``population``) → search (``search``, Optuna) →
results (``export``, ``shape``).
"""
from __future__ import annotations


from torch import nn

from .activations import get_activation, list_activations, make_activation
from .candidate import Candidate
from .data import Dataset, load_dataset
from .errors import (
    ActsearchError,
    CandidateFailed,
    ParseError,
    SpaceError,
    StudyNotFoundError,
    UnknownActivationError,
    UnknownOperatorError,
)
from .export import write_module
from .grammar import Space, load_space
from .parser import parse
from .population import train_population
from .train import FIDELITIES, Fidelity, TrainResult, get_fidelity, train_one

__version__ = "0.1.0"

__all__ = [
    "parse",
    "to_module",
    "get_activation",
    "make_activation",
    "list_activations",
    "load_space",
    "write_module",
    "Candidate",
    "Space",
    "load_dataset",
    "Dataset",
    "train_one",
    "train_population",
    "TrainResult",
    "Fidelity",
    "FIDELITIES",
    "get_fidelity",
    "ActsearchError",
    "CandidateFailed",
    "ParseError",
    "SpaceError",
    "StudyNotFoundError",
    "UnknownActivationError",
    "UnknownOperatorError",
    "__version__",
]


def to_module(expr: str | Candidate, num_channels: int | None = None) -> nn.Module:
    """An ``nn.Module`` for an expression ("x*sigmoid(beta*x)") or a candidate."""
    cand = parse(expr) if isinstance(expr, str) else expr
    return cand.to_module(num_channels)
