"""The operator table (ops.py): the paper's 25 + 10 operators, each buildable and compilable."""
from __future__ import annotations

import math

import pytest
import sympy as sp
import torch

from actsearch import parse

from actsearch.errors import UnknownOperatorError
from actsearch.expressions import CALLABLE, EPS, OPS, PAPER_BINARY, PAPER_UNARY, lookup, torch_forms
from actsearch.expressions.printing import print_torch

# Ramachandran, Zoph & Le (2017), §3, in the order SPEC.md lists them.
SPEC_UNARY = [
    ("x", lambda x: x), ("neg", lambda x: -x), ("abs", abs), ("square", lambda x: x**2),
    ("cube", lambda x: x**3), ("sqrt", lambda x: math.sqrt(abs(x) + EPS)),
    ("scale", lambda x: 1.0 * x), ("shift", lambda x: x + 0.0),
    ("log", lambda x: math.log(abs(x) + EPS)), ("exp", math.exp), ("sin", math.sin),
    ("cos", math.cos), ("sinh", math.sinh), ("cosh", math.cosh), ("tanh", math.tanh),
    ("asinh", math.asinh), ("atan", math.atan),
    ("sinc", lambda x: math.sin(x) / x if x else 1.0), ("relu", lambda x: max(x, 0.0)),
    ("minzero", lambda x: min(x, 0.0)), ("sigmoid", lambda x: 1 / (1 + math.exp(-x))),
    ("softplus", lambda x: math.log1p(math.exp(x))), ("gaussian", lambda x: math.exp(-x * x)),
    ("erf", math.erf), ("beta", lambda x: 1.0),
]
SPEC_BINARY = [  # β at its initial value
    ("add", lambda a, b: a + b), ("mul", lambda a, b: a * b), ("sub", lambda a, b: a - b),
    ("div", lambda a, b: a / (b + math.copysign(EPS, b))), ("max", max), ("min", min),
    ("sigmul", lambda a, b: b / (1 + math.exp(-a))),
    ("rbf", lambda a, b: math.exp(-1.0 * (a - b) ** 2)),
    ("laplace", lambda a, b: math.exp(-1.0 * abs(a - b))),
    ("mix", lambda a, b: 0.5 * a + 0.5 * b),
]
POINTS = [-3.7, -1.3, -0.4, 0.25, 0.9, 2.2, 4.1]


def test_exactly_the_papers_25_unary_and_10_binary_operators() -> None:
    assert PAPER_UNARY == [n for n, _ in SPEC_UNARY]
    assert PAPER_BINARY == [n for n, _ in SPEC_BINARY]
    assert all(OPS[n].arity == 1 for n in PAPER_UNARY)
    assert all(OPS[n].arity == 2 for n in PAPER_BINARY)
    assert {o.name for o in OPS.values() if o.group == "paper"} == set(PAPER_UNARY + PAPER_BINARY)


@pytest.mark.parametrize("name", list(CALLABLE))
def test_every_rows_sympy_form_builds(name: str) -> None:
    op = CALLABLE[name]
    args = [sp.Symbol("a", real=True), sp.Symbol("b", real=True)][: op.arity]
    betas = [sp.Symbol(f"beta{i}", real=True) for i in range(len(op.betas))]
    expr = op.build(*args, *betas)
    assert isinstance(expr, sp.Expr)
    assert expr.free_symbols <= set(args) | set(betas)


def test_every_primitive_row_has_a_torch_template_the_printer_uses() -> None:
    prims = [op for op in OPS.values() if op.func is not None]
    assert prims, "the table declares primitives"
    for op in prims:
        assert op.torch, f"{op.name} introduces {op.func.__name__} without a torch form"
        assert torch_forms()[op.func] == op.torch
        a, b = sp.Symbol("a", real=True), sp.Symbol("b", real=True)  # printed as x and b
        assert print_torch(op.func(*(a, b)[: op.arity]), ["b"], a) == op.torch.format("x", "b")
        # the template names only torch / F / math / EPS and its arguments
        assert "{0}" in op.torch and ("{1}" in op.torch) == (op.arity == 2)


@pytest.mark.parametrize("name,ref", SPEC_UNARY)
def test_unary_op_compiles_and_matches_its_formula(name: str, ref) -> None:
    cand = parse(f"{name}(x)")
    x = torch.tensor(POINTS, dtype=torch.float64)
    got = cand.evaluate(x)
    want = torch.tensor([ref(v) for v in POINTS], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,ref", SPEC_BINARY)
def test_binary_op_compiles_and_matches_its_formula(name: str, ref) -> None:
    cand = parse(f"{name}(x, cos(x))")  # second argument varies differently from the first
    x = torch.tensor(POINTS, dtype=torch.float64)
    got = cand.evaluate(x)
    want = torch.tensor([ref(v, math.cos(v)) for v in POINTS], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


# exp, sinh and cosh overflow float32 past |x| ≈ 88 (float64: ≈ 709): the maths,
# not the implementation. Everything else must stay finite on a wide grid, value and gradient.
_OVERFLOWING = {"exp", "sinh", "cosh"}


@pytest.mark.parametrize("name", list(CALLABLE))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_op_is_finite_on_a_grid(name: str, dtype: torch.dtype) -> None:
    op = CALLABLE[name]
    hi = 80.0 if name in _OVERFLOWING and dtype == torch.float32 else 500.0
    hi = 700.0 if name in _OVERFLOWING and dtype == torch.float64 else hi
    cand = parse(f"{name}(x)" if op.arity == 1 else f"{name}(x, sin(x))")
    x = torch.cat([torch.linspace(-hi, hi, 2001, dtype=dtype), torch.tensor([0.0], dtype=dtype)])
    x.requires_grad_(True)
    y = cand.evaluate(x)
    assert torch.isfinite(y).all(), f"{name}: non-finite value on [-{hi}, {hi}]"
    if y.requires_grad:  # beta(x) = β has no path to x
        (g,) = torch.autograd.grad(y.sum(), x)
        assert torch.isfinite(g).all(), f"{name}: non-finite gradient on [-{hi}, {hi}]"


def test_exp_overflows_where_the_maths_says_so() -> None:
    y = parse("exp(x)").evaluate(torch.tensor([100.0]))
    assert torch.isinf(y).all()  # e^100 > float32 max: documented, not hidden


def test_lookup_aliases_and_did_you_mean() -> None:
    assert lookup("arctan") is OPS["atan"]
    assert lookup("Leaky-ReLU") is CALLABLE["leaky_relu"]
    with pytest.raises(UnknownOperatorError, match="did you mean 'sigmoid'"):
        lookup("sigmod")
    with pytest.raises(UnknownOperatorError, match="unknown unary operator 'add'"):
        lookup("add", arity=1)
