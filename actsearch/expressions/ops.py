"""The operator table: the one place an operator is defined.

Each row gives an operator's name, arity, formula as the paper writes it, its sympy form, and —
for rows that introduce a primitive sympy class — that class's torch and C sources. The grammar
(which ops a space may use), the parser (which names a user may write), the printers (how a sympy
class prints as torch or C) and the exporter (the torch printer) are all derived from :data:`OPS`;
adding an operator is adding one row.

The rows are the search space of Ramachandran, Zoph & Le (2017), "Searching for Activation
Functions", §3: 25 unary and 10 binary functions. The usual activations written in these
primitives (``gelu(x)``, ``swish(x)`` …) are rows of the activation registry
(:mod:`actsearch.expressions.registry`), which adds them to what an expression may call.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import sympy as sp

from .functions import EPS, logabs, safediv, sigmoid, softplus, sqrtabs

__all__ = ["Op", "OPS", "PAPER_UNARY", "PAPER_BINARY", "torch_forms", "c_forms", "EPS"]

Builder = Callable[..., sp.Expr]


@dataclass(frozen=True)
class Op:
    """One operator. ``build(*args, *betas)`` returns its sympy form."""

    name: str
    arity: int
    formula: str  # how the paper writes it, in x (unary) or x1, x2 (binary)
    build: Builder
    group: str = "paper"  # "paper": Ramachandran et al.'s space; "named": a registered activation
    betas: tuple[float, ...] = ()  # initial value of each trainable β the operator introduces
    func: type | None = None  # the sympy class this row introduces, when it is a primitive …
    torch: str | None = None  # … and that class's torch source; {0}, {1} are the printed args
    c: str | None = None  # … and its C (float32) source, for the fused CPU kernels (printing/c.py)
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
    # ε takes x2's sign bit, as C's copysignf: 1/x2 < 0 reads it (−0.0 included) where
    # torch.copysign would decompose to prims.signbit, which ONNX has no operator for.
    _b("div", "x1 / (x2 + ε)", safediv, func=safediv,
       torch="({0}) / torch.where(1.0 / ({1}) < 0, ({1}) - EPS, ({1}) + EPS)",
       c="({0}) / (({1}) + copysignf(EPS, {1}))",
       aliases=("safediv",), safe="x1/(x2 ± ε) with ε's sign following x2: |denominator| ≥ ε"),
    _b("max", "max(x1, x2)", sp.Max, func=sp.Max, torch="torch.maximum({0}, {1})", c="_max({0}, {1})"),
    _b("min", "min(x1, x2)", sp.Min, func=sp.Min, torch="torch.minimum({0}, {1})", c="_min({0}, {1})"),
    _b("sigmul", "σ(x1) · x2", lambda a, b: sigmoid(a) * b),
    _b("rbf", "exp(−β(x1 − x2)²)", lambda a, b, be: sp.exp(-be * (a - b)**2), betas=(1.0,)),
    _b("laplace", "exp(−β|x1 − x2|)", lambda a, b, be: sp.exp(-be * sp.Abs(a - b)), betas=(1.0,)),
    _b("mix", "βx1 + (1 − β)x2", lambda a, b, be: be * a + (1 - be) * b, betas=(0.5,)),
]
# fmt: on

#: name -> operator, in table order.
OPS: dict[str, Op] = {op.name: op for op in _ROWS}
PAPER_UNARY: list[str] = [o.name for o in _ROWS if o.arity == 1]
PAPER_BINARY: list[str] = [o.name for o in _ROWS if o.arity == 2]


def torch_forms() -> dict[type, str]:
    """sympy class -> torch source template, derived from the table for the printer."""
    return {op.func: op.torch for op in _ROWS if op.func is not None and op.torch is not None}


def c_forms() -> dict[type, str]:
    """sympy class -> float32 C source template, for the fused kernels' printer."""
    return {op.func: op.c for op in _ROWS if op.func is not None and op.c is not None}


assert len(PAPER_UNARY) == 25 and len(PAPER_BINARY) == 10, "the paper's space is 25 + 10 ops"
