"""The registry of named activations: the one place a known activation function is defined.

One :class:`Activation` row per function — the lecture's baselines (sigmoid … maxout, the hard
threshold) and the usual modern ones (GELU and its approximations, SiLU, Swish, Mish, softsign).
A row holds everything the rest of the package needs to know about that function, and every other
table is derived from it:

- ``module``: its ``nn.Module`` twin (:mod:`actsearch.expressions.baselines`), what
  :func:`actsearch.get_activation` builds (timm's registry, with "did you mean" on a typo);
- ``sympy``: its form in the operator table's primitives — an operator's name where the function
  *is* one of the paper's operators, else a builder — so that an expression may call it
  (``gelu(x) + 0.5*relu(x)``: :data:`CALLABLE`, :func:`lookup`), the fused kernels can compile it
  (:func:`twin_names`) and a search can be seeded with it; None where it has no closed form
  there (PReLU's learned slope, maxout's learned pieces, the step's zero derivative);
- ``reference``: its position among the reference activations every search trains beside its
  candidates (ReLU and Swish first: the paper's two baselines) — :func:`references`;
- ``family``: its position among the shape families a candidate is compared with
  (:mod:`actsearch.analysis.shape`, simplest first) — :func:`families`.

Names are case-insensitive, '-' and '_' are the same, and every spelling users type (torch's
class names lower-cased, HF/timm names, the paper's "Swish-1") is an alias on its row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import sympy as sp
from torch import nn

from ..errors import UnknownOperatorError, did_you_mean
from . import baselines as B
from .functions import sigmoid, softplus
from .ops import OPS, Op

__all__ = ["Activation", "ACTIVATIONS", "CALLABLE", "canonical_name", "lookup", "references", "families",
           "twin_names"]

Builder = Callable[..., sp.Expr]


@dataclass(frozen=True)
class Activation:
    """One named activation (see the module docstring for what each field feeds)."""

    name: str
    formula: str  # one line, as a paper writes it
    module: type[nn.Module]
    sympy: str | Builder | None = None  # an operator's name, a builder in x (and β), or no closed form
    betas: tuple[float, ...] = ()  # initial value of each β the builder takes
    per_channel: bool = False  # the module learns a parameter per channel (takes num_channels)
    aliases: tuple[str, ...] = ()
    reference: int | None = None  # position among the search's reference activations
    family: int | None = None  # position among the shape analysis's families

    def build_module(self, num_channels: int | None = None, **kwargs: object) -> nn.Module:
        """A fresh module (``num_channels`` sizes a per-channel parameter; kwargs go to the module)."""
        return self.module(num_channels, **kwargs) if self.per_channel else self.module(**kwargs)

    @property
    def op(self) -> Op | None:
        """The operator an expression calls for this function (None: no closed form)."""
        if self.sympy is None:
            return None
        if isinstance(self.sympy, str):
            return OPS[self.sympy]
        return Op(self.name, 1, self.formula, self.sympy, group="named", betas=self.betas, aliases=self.aliases)

    @property
    def expression(self) -> str:
        """The function as an expression a user writes (its own name called on x)."""
        return f"{self.name}(x)"


# fmt: off
_ROWS: list[Activation] = [
    Activation("sigmoid", "σ(x) = 1/(1+e⁻ˣ)", B.Sigmoid, "sigmoid", aliases=("logistic",), family=6),
    Activation("tanh", "tanh(x)", B.Tanh, "tanh", reference=4, family=7),
    Activation("relu", "max(x, 0)", B.ReLU, "relu", reference=0, family=1),
    Activation("relu6", "min(max(x, 0), 6)", B.ReLU6,
               lambda x: sp.Min(sp.Max(x, 0), 6), aliases=("relu_6",)),
    # max(x, 0) + 0.1·min(x, 0) rather than max(x, 0.1x): same values, and slope 0.1 at 0 as in
    # F.leaky_relu (torch.maximum splits a tie's gradient: 0.55).
    Activation("leaky_relu", "max(x, 0.1x)", B.LeakyReLU, lambda x: sp.Max(x, 0) + sp.Min(x, 0) / 10,
               aliases=("leakyrelu", "lrelu", "leaky"), family=2),
    Activation("prelu", "max(x, 0) + α·min(x, 0), α learned (init 0.25)", B.PReLU, per_channel=True),
    # max(x,0) + (e^{min(x,0)} − 1): equal to ELU, and no branch ever evaluates e^{large x}.
    Activation("elu", "x if x>0 else eˣ−1", B.ELU, lambda x: sp.Max(x, 0) + sp.exp(sp.Min(x, 0)) - 1,
               reference=5, family=3),
    Activation("selu", "λ·elu_α(x)", B.SELU,
               lambda x: sp.Float(B.SELU_LAMBDA) * (sp.Max(x, 0) + sp.Float(B.SELU_ALPHA) * (sp.exp(sp.Min(x, 0)) - 1)),
               family=4),
    Activation("gelu", "x·Φ(x)", B.GELU, lambda x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2,
               aliases=("gelu_erf", "gelu_exact"), reference=3, family=10),
    Activation("gelu_tanh", "x/2·(1+tanh(√(2/π)(x+0.044715x³)))", B.GELUTanh,
               lambda x: x * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Float(0.044715) * x**3))) / 2,
               aliases=("gelu_new", "gelu_pytorch_tanh", "gelutanh")),
    Activation("gelu_sigmoid", "x·σ(1.702x)", B.GELUSigmoid, lambda x: x * sigmoid(sp.Float(B.GELU_SIGMOID_SCALE) * x),
               aliases=("quick_gelu", "gelu_quick", "gelusigmoid")),
    # Ramachandran et al. 2017 call β = 1 "Swish-1".
    Activation("silu", "x·σ(x)", B.SiLU, lambda x: x * sigmoid(x), aliases=("swish1", "swish_1"),
               reference=2, family=9),
    Activation("swish", "x·σ(βx)", B.Swish, lambda x, b: x * sigmoid(b * x), betas=(1.0,),
               per_channel=True, aliases=("swish_beta",), reference=1),
    Activation("maxout", "maxⱼ (aⱼx + bⱼ), j = 1..k, a, b learned (init: ReLU)", B.MaxoutActivation,
               per_channel=True, aliases=("max_out",)),
    Activation("hard_threshold", "1 if x > 0 else 0 (zero gradient)", B.HardThreshold,
               aliases=("step", "heaviside", "hardthreshold")),
    Activation("softplus", "log(1+eˣ)", B.Softplus, "softplus", aliases=("soft_plus",), family=5),
    Activation("softsign", "x/(1+|x|)", B.Softsign, lambda x: x / (1 + sp.Abs(x)), family=8),
    Activation("identity", "x", B.Identity, "x", aliases=("linear", "none"), family=0),
    Activation("hardtanh", "min(max(x, −1), 1)", B.Hardtanh, lambda x: sp.Min(sp.Max(x, -1), 1),
               aliases=("hard_tanh",)),
    Activation("mish", "x·tanh(softplus(x))", B.Mish, lambda x: x * sp.tanh(softplus(x)), family=11),
]
# fmt: on

#: name -> activation, in table order.
ACTIVATIONS: dict[str, Activation] = {a.name: a for a in _ROWS}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


_BY_ALIAS: dict[str, str] = {_key(n): a.name for a in _ROWS for n in (a.name, *a.aliases)}


def canonical_name(name: str) -> str | None:
    """The registry name for ``name`` (an alias or any casing), or None if it is not registered."""
    return _BY_ALIAS.get(_key(name))


# ------------------------------------------------------------------------- what expressions call
#: Every operator an expression may call: the paper's, then the named activations with a closed form
#: of their own (``sigmoid`` is both: the operator row serves).
CALLABLE: dict[str, Op] = {**OPS, **{a.name: op for a in _ROWS if callable(a.sympy) and (op := a.op) is not None}}
_CALLABLE_BY_ALIAS: dict[str, Op] = {}
for _op in CALLABLE.values():
    for _n in (_op.name, *_op.aliases):
        _CALLABLE_BY_ALIAS.setdefault(_key(_n), _op)


def lookup(name: str, *, arity: int | None = None) -> Op:
    """The operator an expression or a space file calls ``name`` (an alias too); unknown names get
    a "did you mean"."""
    key = _key(name)
    op = _CALLABLE_BY_ALIAS.get(key)
    if op is None or (arity is not None and op.arity != arity):
        pool = [n for n, o in _CALLABLE_BY_ALIAS.items() if arity is None or o.arity == arity]
        kind = {None: "operator", 1: "unary operator", 2: "binary operator"}[arity]
        raise UnknownOperatorError(
            f"unknown {kind} {name!r}{did_you_mean(key, pool, sep=' or ')} (`actsearch ops` lists them)")
    return op


# ------------------------------------------------------------------------------- derived tables
def references() -> list[Activation]:
    """The reference activations a search trains beside its candidates, ReLU and Swish first."""
    return sorted((a for a in _ROWS if a.reference is not None), key=lambda a: a.reference or 0)


def families() -> list[Activation]:
    """The shape families a candidate is compared with, simplest first (ties go to the simpler)."""
    return sorted((a for a in _ROWS if a.family is not None), key=lambda a: a.family or 0)


def twin_names() -> list[str]:
    """Registered activations whose module computes exactly their closed form, with no parameter of
    its own: the fused kernels may compile the closed form in place of the module."""
    return [a.name for a in _ROWS if a.sympy is not None and not a.betas and not a.per_channel]


assert sorted(a.reference for a in references()) == list(range(len(references())))
assert sorted(a.family for a in families()) == list(range(len(families())))
