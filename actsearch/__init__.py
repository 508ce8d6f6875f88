"""actsearch: automatic search for activation functions (Ramachandran, Zoph & Le, 2017).

The subpackages follow the data's path, and import only down it:

- :mod:`actsearch.expressions` — operator table, activation registry, parser, grammar, sympy
  candidates, printers (torch, C), export, plots;
- :mod:`actsearch.evaluation` — datasets, child networks, fidelity presets, tasks (what a search
  scores: a preset, or your own data, model, loss and metric), the trainers (one network, a
  stacked population) and the fused CPU kernels;
- :mod:`actsearch.search` — Optuna: settings, storage, samplers, a batch of trials, the driver,
  distributed workers;
- :mod:`actsearch.analysis` — leaderboard, verification, paired comparisons, shape analysis,
  the Swish rediscovery;
- :mod:`actsearch.cli` — the ``actsearch`` command; :mod:`actsearch.lecture` — the lecture's
  experiments.

``import actsearch`` loads only the expressions layer (and torch, sympy); the evaluation names
below are loaded on first use.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ._version import __version__
from .errors import (
    ActsearchError,
    CandidateFailed,
    ParseError,
    SpaceError,
    StudyNotFoundError,
    UnknownActivationError,
    UnknownOperatorError,
)
from .expressions import Candidate, Space, get_activation, list_activations, load_space, make_activation, parse, write_module

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
    "Task",
    "load_task",
    "ActsearchError",
    "CandidateFailed",
    "ParseError",
    "SpaceError",
    "StudyNotFoundError",
    "UnknownActivationError",
    "UnknownOperatorError",
    "__version__",
]

#: Names of the evaluation layer, imported when first used (PEP 562): the trainers pull in the
#: population engine and the C kernel builder, which `actsearch show` or `import actsearch` to
#: parse an expression never need (start-up time).
_EVALUATION = {"load_dataset", "Dataset", "train_one", "train_population", "TrainResult", "Fidelity",
               "FIDELITIES", "get_fidelity", "Task", "load_task"}


def __getattr__(name: str) -> Any:
    if name in _EVALUATION:
        import importlib  # start-up time: see _EVALUATION

        value = getattr(importlib.import_module(".evaluation", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | _EVALUATION)


def to_module(expr: str | Candidate, num_channels: int | None = None) -> nn.Module:
    """An ``nn.Module`` for an expression ("x*sigmoid(beta*x)") or a candidate."""
    cand = parse(expr) if isinstance(expr, str) else expr
    return cand.to_module(num_channels)
