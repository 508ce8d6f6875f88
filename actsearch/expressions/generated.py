"""Importable homes for the modules compiled from candidates (``actsearch.to_module``).

A candidate's ``nn.Module`` class is generated source executed in memory. ``torch.compile``
(Dynamo imports the module a function's globals belong to) and pickle (a class pickles as
"module name + class name", imported again on load) both need that module to be importable, in
this process and in a fresh one — a ``torch.save(model)`` file, a DataLoader or DDP worker
started with ``spawn``. So each generated module is named after its *recipe*:

    actsearch.expressions.generated._x_sigmoid_beta_x__<code>

where ``<code>`` encodes the candidate's sympy tree (only the operator table's classes, numbers
and symbols), its β names and initial values and its β layout. Importing such a name — what
unpickling does — returns the live module if one exists, else rebuilds it from the code, through
the same printer: the same source, the same class. Nothing in the name is ever evaluated as
Python; a name that does not decode to a recipe is an ImportError.

Modules are held weakly (a long search compiles thousands): one lives while anything made from
it does, or once it was imported (pickled, compiled), in ``sys.modules``. A process that unpickles
rebuilds with its own actsearch: the same version makes the same parameters.

Why an importable module rather than pickling instances by recipe (``__reduce__``): the same
name serves Dynamo, pickle of instances *and* of classes, every pickle protocol, copy and spawn,
with no rule of our own in any of them.
"""
from __future__ import annotations

import base64
import importlib.abc
import importlib.machinery
import json
import keyword
import re
import sys
import threading
import weakref
import zlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping

import sympy as sp

from ..errors import CompileError
from .ops import torch_forms
from .printing.torch import Printable, load_source, module_source, python_name

__all__ = ["PREFIX", "module_name", "recipe", "compiled_members", "import_generated"]

#: This module is a package: its submodules are the generated modules, made by the finder below.
__path__: list[str] = []

#: Every generated module's name starts with this.
PREFIX = __name__ + "."
_FORMAT = 1  # the recipe layout: bump it (and keep decoding the old one) if it ever changes
_MAX_RECIPE = 1 << 16  # bytes of JSON one name may decode to: a name is not a zip bomb

# The sympy classes a recipe may name: arithmetic plus the primitives of the operator table.
_CLASSES: dict[str, type] = {c.__name__: c for c in (sp.Add, sp.Mul, sp.Pow, sp.Max, sp.Min, *torch_forms())}
_CONSTANTS: dict[str, sp.Expr] = {"pi": sp.pi, "E": sp.E}
_RESERVED = {"x", "self", "torch", "F", "nn", "math", "EPS", "shape", "num_channels", "inplace"}


@dataclass
class _Recipe:
    """What the printer needs to print a candidate's module (a :class:`Printable`)."""

    expr: sp.Expr
    betas: dict[str, float]
    beta_trainable: bool = True
    beta_per_channel: bool = True
    x: sp.Symbol = field(default_factory=lambda: sp.Symbol("x", real=True))

    @property
    def text(self) -> str:
        return str(self.expr)

    @property
    def latex(self) -> str:
        return sp.latex(self.expr)


# ------------------------------------------------------------------------------- tree <-> JSON
def _encode_tree(e: sp.Expr, betas: Mapping[str, float]) -> Any:
    if e.is_Symbol:
        if e.name != "x" and e.name not in betas:
            raise CompileError(f"unknown symbol {e} in the expression")
        return ["s", e.name]
    if e.is_Integer:
        return int(e)
    if e.is_Rational:
        return ["q", int(e.p), int(e.q)]
    if e.is_Float:
        return ["f", [int(v) for v in e._mpf_], int(e._prec)]
    for name, const in _CONSTANTS.items():
        if e == const:
            return ["c", name]
    cls = type(e).__name__
    if _CLASSES.get(cls) is not type(e):
        raise CompileError(f"no importable form for {cls} (in {e})")
    return [cls, *(_encode_tree(a, betas) for a in e.args)]


def _decode_tree(t: Any, symbols: Mapping[str, sp.Symbol]) -> sp.Expr:
    if isinstance(t, bool):
        raise ValueError("a boolean is not an expression")
    if isinstance(t, int):
        return sp.Integer(t)
    if not isinstance(t, list) or not t or not isinstance(t[0], str):
        raise ValueError(f"malformed node {t!r}")
    head, args = t[0], t[1:]
    if head == "s" and len(args) == 1 and args[0] in symbols:
        return symbols[args[0]]
    if head == "q" and len(args) == 2 and all(type(a) is int for a in args) and args[1] > 0:
        return sp.Rational(args[0], args[1])
    if head == "f" and len(args) == 2 and isinstance(args[0], list) and len(args[0]) == 4 \
            and all(type(v) is int for v in args[0]) and type(args[1]) is int and 1 <= args[1] <= 4096:
        return sp.Float._new(tuple(args[0]), args[1])
    if head == "c" and len(args) == 1 and args[0] in _CONSTANTS:
        return _CONSTANTS[args[0]]
    cls = _CLASSES.get(head)
    if cls is None or not args:
        raise ValueError(f"unknown node {head!r}")
    return cls(*(_decode_tree(a, symbols) for a in args), evaluate=False)


def _valid_beta(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name) \
        and name not in _RESERVED and name.isascii()


# ------------------------------------------------------------------------------ recipe <-> name
def module_name(cand: Printable) -> str:
    """The importable name of the module compiled from ``cand`` (a function of its recipe alone)."""
    bad = [b for b in cand.betas if not _valid_beta(b)]
    if bad:
        raise CompileError(f"β name(s) {bad} cannot be Python identifiers in generated code")
    data = [_FORMAT, _encode_tree(cand.expr, cand.betas), [[b, float(v)] for b, v in cand.betas.items()],
            bool(cand.beta_trainable), bool(cand.beta_per_channel)]
    raw = json.dumps(data, separators=(",", ":"), allow_nan=False).encode()
    code = base64.b32encode(zlib.compress(raw, 9)).decode().rstrip("=").lower()
    return f"{PREFIX}_{python_name(cand.text)[:40]}__{code}"


def recipe(name: str) -> Printable:
    """The recipe a module name encodes (what :func:`module_name` was given, as far as the module's
    source goes); ValueError if it encodes none, or is not exactly this name."""
    if not name.startswith(PREFIX + "_") or "__" not in name:
        raise ValueError("not a generated module's name")
    code = name.rsplit("__", 1)[1]
    if not re.fullmatch(r"[a-z2-7]+", code):
        raise ValueError("malformed code")
    packed = base64.b32decode(code.upper() + "=" * (-len(code) % 8))
    inflate = zlib.decompressobj()
    raw = inflate.decompress(packed, _MAX_RECIPE)
    if inflate.unconsumed_tail or not inflate.eof:
        raise ValueError("the code is truncated or too long")
    data = json.loads(raw)
    if not (isinstance(data, list) and len(data) == 5 and data[0] == _FORMAT):
        raise ValueError("unknown recipe format")
    _, tree, betas, trainable, per_channel = data
    if not (isinstance(betas, list) and all(isinstance(b, list) and len(b) == 2 and _valid_beta(b[0])
                                            and isinstance(b[1], (int, float)) for b in betas)):
        raise ValueError("malformed β list")
    if not (isinstance(trainable, bool) and isinstance(per_channel, bool)):
        raise ValueError("malformed β layout")
    symbols = {"x": sp.Symbol("x", real=True), **{b: sp.Symbol(b, real=True) for b, _ in betas}}
    decoded = _Recipe(_decode_tree(tree, symbols), {b: float(v) for b, v in betas}, trainable, per_channel)
    if module_name(decoded) != name:  # one module per recipe: no second spelling of the same one
        raise ValueError("the name is not the canonical one of its recipe")
    return decoded


# ----------------------------------------------------------------------------- modules, live ones
_live: weakref.WeakValueDictionary[str, ModuleType] = weakref.WeakValueDictionary()
_building = threading.RLock()  # two threads making one recipe's module must get one class


def _module(name: str, cand: Printable | None = None) -> ModuleType:
    """The live module called ``name``, else one built from ``cand`` (or the recipe in the name)."""
    with _building:
        module = _live.get(name) or sys.modules.get(name)
        if module is None:
            cand = cand or recipe(name)
            source = module_source([cand], ["activation"])
            module = load_source(source, label=cand.text[:40], name=name)
            module.__package__ = __name__
            _live[name] = module
        return module


def compiled_members(cand: Printable) -> tuple[Callable[..., object], type]:
    """The (function, module class) pair for one candidate, from its importable module."""
    mod = _module(module_name(cand), cand)
    return mod.activation, mod.Activation


def import_generated(name: str) -> ModuleType:
    """The generated module called ``name`` (what ``import`` and unpickling reach)."""
    try:
        return _module(name)
    except (ValueError, TypeError, RecursionError, CompileError, zlib.error, json.JSONDecodeError) as exc:
        raise ModuleNotFoundError(f"{name} is not a module actsearch can generate ({exc})", name=name) from None


class _Loader(importlib.abc.Loader):
    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return import_generated(spec.name)

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned the module built (or alive) already."""


class _Finder(importlib.abc.MetaPathFinder):
    """Finds ``actsearch.expressions.generated._*`` for ``import``, pickle and Dynamo."""

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PREFIX):
            return None
        return importlib.machinery.ModuleSpec(fullname, _Loader())


if not any(isinstance(f, _Finder) for f in sys.meta_path):
    sys.meta_path.append(_Finder())
