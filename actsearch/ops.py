"""The operator table: the one place an operator is defined.

Each row gives an operator's name, arity, formula as the paper writes it, its sympy form, and —
for rows that introduce a primitive sympy class — that class's torch source. The grammar (which
ops a space may use), the parser (which names a user may write), the compiler (how a sympy class
prints as torch) and the exporter (the same printer) are all derived from :data:`OPS`; adding an
operator is adding one row.

The "paper" rows are the search space of Ramachandran, Zoph & Le (2017), "Searching for
Activation Functions", §3: 25 unary and 10 binary functions. The "named" rows are the usual
activations written in those primitives, so that a search can compare against them and a user
can write ``gelu(x)`` in an expression.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from ._sympy_funcs import EPS, logabs, safediv, sigmoid, softplus, sqrtabs
from .errors import UnknownOperatorError

__all__ = ["Op", "OPS", "PAPER_UNARY", "PAPER_BINARY", "lookup", "torch_forms", "c_forms", "EPS"]

Builder = Callable[..., sp.Expr]


@dataclass(frozen=True)
class Op:
    """One operator. ``build(*args, *betas)`` returns its sympy form."""

    name: str
    arity: int
    formula: str  # how the paper writes it, in x (unary) or x1, x2 (binary)
    build: Builder
    group: str = "paper"  # "paper": Ramachandran et al.'s space; "named": a known activation
    betas: tuple[float, ...] = ()  # initial value of each trainable β the operator introduces
    func: type | None = None  # the sympy class this row introduces, when it is a primitive …
    torch: str | None = None  # … and that class's torch source; {0}, {1} are the printed args
    c: str | None = None  # … and its C (float32) source, for the fused CPU kernels (fused.py)
    aliases: tuple[str, ...] = field(default=())
    safe: str = ""  # how the operator is kept finite, when the raw formula is not


def _u(name: str, formula: str, build: Builder, **kw: object) -> Op:
    return Op(name, 1, formula, build, **kw)  # type: ignore[arg-type]


def _b(name: str, formula: str, build: Builder, **kw: object) -> Op:
    return Op(name, 2, formula, build, **kw)  # type: ignore[arg-type]


# fmt: off
_ROWS: list[Op] = [
    # ---- paper: unary (25) -------------------------------------------------------------------
    _u("x", "x", lambda x: x, aliases=("identity", "id", "linear")),
    _u("neg", "−x", lambda x: -x),
    _u("abs", "|x|", sp.Abs, func=sp.Abs, torch="torch.abs({0})", c="fabsf({0})"),
    _u("square", "x²", lambda x: x**2),
    _u("cube", "x³", lambda x: x**3),
    _u("sqrt", "√x", sqrtabs, func=sqrtabs, torch="torch.sqrt(torch.abs({0}) + EPS)", c="sqrtf(fabsf({0}) + EPS)",
       aliases=("sqrtabs",),
       safe="√(|x|+ε): finite for x<0, slope ≤ 1/(2√ε) at 0"),
    _u("scale", "βx", lambda x, b: b * x, betas=(1.0,)),
    _u("shift", "x+β", lambda x, b: x + b, betas=(0.0,)),
    _u("log", "log(|x|+ε)", logabs, func=logabs, torch="torch.log(torch.abs({0}) + EPS)", c="logf(fabsf({0}) + EPS)",
       aliases=("logabs",), safe="log(|x|+ε): finite at 0, slope ≤ 1/ε"),
    _u("exp", "exp(x)", sp.exp, func=sp.exp, torch="torch.exp({0})", c="expf({0})"),
    _u("sin", "sin(x)", sp.sin, func=sp.sin, torch="torch.sin({0})", c="sinf({0})"),
    _u("cos", "cos(x)", sp.cos, func=sp.cos, torch="torch.cos({0})", c="cosf({0})"),
    _u("sinh", "sinh(x)", sp.sinh, func=sp.sinh, torch="torch.sinh({0})", c="sinhf({0})"),
    _u("cosh", "cosh(x)", sp.cosh, func=sp.cosh, torch="torch.cosh({0})", c="coshf({0})"),
    _u("tanh", "tanh(x)", sp.tanh, func=sp.tanh, torch="torch.tanh({0})", c="tanhf({0})"),
    _u("asinh", "sinh⁻¹(x)", sp.asinh, func=sp.asinh, torch="torch.asinh({0})", c="asinhf({0})",
       aliases=("arcsinh",)),
    _u("atan", "tan⁻¹(x)", sp.atan, func=sp.atan, torch="torch.atan({0})", c="atanf({0})",
       aliases=("arctan",)),
    # sympy's sinc is the unnormalised sin(x)/x of the paper; torch's is sin(πx)/(πx).
    _u("sinc", "sin(x)/x", sp.sinc, func=sp.sinc, torch="torch.sinc({0} / math.pi)", c="_sinc({0})",
       safe="sinc(0) = 1, no 0/0"),
    _u("relu", "max(x, 0)", lambda x: sp.Max(x, 0), aliases=("maxzero",)),
    _u("minzero", "min(x, 0)", lambda x: sp.Min(x, 0), aliases=("negrelu",)),
    _u("sigmoid", "σ(x)", sigmoid, func=sigmoid, torch="torch.sigmoid({0})", c="_sigmoid({0})",
       aliases=("sigma", "logistic")),
    _u("softplus", "log(1+eˣ)", softplus, func=softplus, torch="F.softplus({0})", c="_softplus({0})",
       safe="computed without overflowing eˣ"),
    _u("gaussian", "exp(−x²)", lambda x: sp.exp(-x**2), aliases=("gauss",)),
    _u("erf", "erf(x)", sp.erf, func=sp.erf, torch="torch.erf({0})", c="erff({0})"),
    _u("beta", "β", lambda x, b: b, betas=(1.0,), aliases=("const",)),
    # ---- paper: binary (10) ------------------------------------------------------------------
    _b("add", "x1 + x2", lambda a, b: a + b),
    _b("mul", "x1 · x2", lambda a, b: a * b),
    _b("sub", "x1 − x2", lambda a, b: a - b),
    _b("div", "x1 / (x2 + ε)", safediv, func=safediv,
       torch="({0}) / ({1} + torch.copysign(torch.full_like({1}, EPS), {1}))",
       c="({0}) / (({1}) + copysignf(EPS, {1}))",
       aliases=("safediv",), safe="x1/(x2 ± ε) with ε's sign following x2: |denominator| ≥ ε"),
    _b("max", "max(x1, x2)", sp.Max, func=sp.Max, torch="torch.maximum({0}, {1})", c="_max({0}, {1})"),
    _b("min", "min(x1, x2)", sp.Min, func=sp.Min, torch="torch.minimum({0}, {1})", c="_min({0}, {1})"),
    _b("sigmul", "σ(x1) · x2", lambda a, b: sigmoid(a) * b),
    _b("rbf", "exp(−β(x1 − x2)²)", lambda a, b, be: sp.exp(-be * (a - b)**2), betas=(1.0,)),
    _b("laplace", "exp(−β|x1 − x2|)", lambda a, b, be: sp.exp(-be * sp.Abs(a - b)), betas=(1.0,)),
    _b("mix", "βx1 + (1 − β)x2", lambda a, b, be: be * a + (1 - be) * b, betas=(0.5,)),
    # ---- named activations, written in the primitives above ---------------------------------
    _u("silu", "x·σ(x)", lambda x: x * sigmoid(x), group="named", aliases=("swish1",)),
    _u("swish", "x·σ(βx)", lambda x, b: x * sigmoid(b * x), group="named", betas=(1.0,)),
    _u("gelu", "x·Φ(x)", lambda x: x * (1 + sp.erf(x / sp.sqrt(2))) / 2, group="named",
       aliases=("gelu_erf",)),
    _u("gelu_tanh", "x/2·(1+tanh(√(2/π)(x+0.044715x³)))",
       lambda x: x * (1 + sp.tanh(sp.sqrt(2 / sp.pi) * (x + sp.Float(0.044715) * x**3))) / 2,
       group="named"),
    _u("gelu_sigmoid", "x·σ(1.702x)", lambda x: x * sigmoid(sp.Float(1.702) * x), group="named"),
    # max(x,0) + (e^{min(x,0)} − 1): equal to ELU, and no branch ever evaluates e^{large x}.
    _u("elu", "x if x>0 else eˣ−1", lambda x: sp.Max(x, 0) + sp.exp(sp.Min(x, 0)) - 1,
       group="named"),
    _u("selu", "λ·elu_α(x)",
       lambda x: sp.Float(1.0507009873554805) * (
           sp.Max(x, 0) + sp.Float(1.6732632423543772) * (sp.exp(sp.Min(x, 0)) - 1)),
       group="named"),
    # max(x, 0) + 0.1·min(x, 0) rather than max(x, 0.1x): same values, and slope 0.1 at 0 as in
    # F.leaky_relu (torch.maximum splits a tie's gradient: 0.55).
    _u("leaky_relu", "max(x, 0.1x)", lambda x: sp.Max(x, 0) + sp.Min(x, 0) / 10, group="named",
       aliases=("leakyrelu", "lrelu")),
    _u("relu6", "min(max(x, 0), 6)", lambda x: sp.Min(sp.Max(x, 0), 6), group="named"),
    _u("hardtanh", "min(max(x, −1), 1)", lambda x: sp.Min(sp.Max(x, -1), 1), group="named"),
    _u("mish", "x·tanh(softplus(x))", lambda x: x * sp.tanh(softplus(x)), group="named"),
    _u("softsign", "x/(1+|x|)", lambda x: x / (1 + sp.Abs(x)), group="named"),
]
# fmt: on

#: name -> operator, in table order.
OPS: dict[str, Op] = {op.name: op for op in _ROWS}
PAPER_UNARY: list[str] = [o.name for o in _ROWS if o.group == "paper" and o.arity == 1]
PAPER_BINARY: list[str] = [o.name for o in _ROWS if o.group == "paper" and o.arity == 2]

_BY_ALIAS: dict[str, Op] = {}
for _op in _ROWS:
    for _n in (_op.name, *_op.aliases):
        _BY_ALIAS[_n] = _op


def lookup(name: str, *, arity: int | None = None) -> Op:
    """The operator called ``name`` (or an alias); unknown names get a "did you mean"."""
    key = name.strip().lower().replace("-", "_")
    op = _BY_ALIAS.get(key)
    if op is None or (arity is not None and op.arity != arity):
        pool = [n for n, o in _BY_ALIAS.items() if arity is None or o.arity == arity]
        close = difflib.get_close_matches(key, pool, n=3)
        kind = {None: "operator", 1: "unary operator", 2: "binary operator"}[arity]
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownOperatorError(
            f"unknown {kind} {name!r}{hint} (`actsearch ops` lists them)"
        )
    return op


def torch_forms() -> dict[type, str]:
    """sympy class -> torch source template, derived from the table for the printer."""
    return {op.func: op.torch for op in _ROWS if op.func is not None and op.torch is not None}


def c_forms() -> dict[type, str]:
    """sympy class -> float32 C source template, for the fused kernels (:mod:`actsearch.fused`)."""
    return {op.func: op.c for op in _ROWS if op.func is not None and op.c is not None}


assert len(PAPER_UNARY) == 25 and len(PAPER_BINARY) == 10, "the paper's space is 25 + 10 ops"
