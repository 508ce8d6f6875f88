"""Expressions: the grammar, the candidates it generates, and what they compile to.

The data's path starts here: the operator table (:mod:`.ops`) and the registry of named
activations (:mod:`.registry`) → the restricted parser (:mod:`.parser`) and the grammar of search
spaces (:mod:`.grammar`) → a sympy-backed :class:`Candidate` (canonical form, equivalence key,
degeneracy) → PyTorch source and modules (:mod:`.printing`), exported modules (:mod:`.export`) and
plots (:mod:`.plots`). Nothing here trains.
"""
from __future__ import annotations

from .activations import (
    ActivationSpec, activation_hint, describe_activations, get_activation, list_activations, make_activation,
    resolve_activation_name,
)
from .candidate import PROBE_GRID, PROBE_RANGE, Candidate, X, beta_symbol
from .export import export_source, write_module
from .grammar import DEFAULT_SPACE, SPACES_DIR, Space, list_spaces, load_space, space_from_dict
from .ops import EPS, OPS, PAPER_BINARY, PAPER_UNARY, Op, c_forms, torch_forms
from .parser import MAX_DEPTH, MAX_LENGTH, parse
from .plots import PLOT_SUFFIXES, plot_function, plot_functions, pyplot, save_figure
from .registry import ACTIVATIONS, CALLABLE, Activation, canonical_name, families, lookup, references, twin_names

__all__ = [
    "Op", "OPS", "PAPER_UNARY", "PAPER_BINARY", "EPS", "torch_forms", "c_forms",
    "Activation", "ACTIVATIONS", "CALLABLE", "canonical_name", "lookup", "references", "families", "twin_names",
    "parse", "MAX_LENGTH", "MAX_DEPTH",
    "Candidate", "X", "beta_symbol", "PROBE_RANGE", "PROBE_GRID",
    "Space", "load_space", "list_spaces", "space_from_dict", "SPACES_DIR", "DEFAULT_SPACE",
    "get_activation", "make_activation", "list_activations", "describe_activations", "resolve_activation_name",
    "activation_hint", "ActivationSpec",
    "write_module", "export_source", "plot_function", "plot_functions", "pyplot", "save_figure", "PLOT_SUFFIXES",
]
