"""The restricted parser: what it accepts, what it refuses, and that it never evaluates Python."""
from __future__ import annotations

import ast
import builtins
import sys
import time

import pytest
import sympy as sp
import sympy.parsing.sympy_parser
import torch

from actsearch import parse
from actsearch.expressions.functions import sigmoid
from actsearch.expressions import X
from actsearch.errors import ParseError, UnknownOperatorError
from actsearch.expressions import MAX_LENGTH


def _beta(name: str = "beta") -> sp.Symbol:
    return sp.Symbol(name, real=True)


# ---- accepted --------------------------------------------------------------------------------
def test_swish_with_a_trainable_beta() -> None:
    c = parse("x*sigmoid(beta*x)")
    assert c.expr == X * sigmoid(_beta() * X)
    assert c.betas == {"beta": 1.0}
    assert c.source == "x*sigmoid(beta*x)"


def test_paper_expressions() -> None:
    assert parse("max(x, tanh(x))").expr == sp.Max(X, sp.tanh(X))
    assert parse("cos(x) - x").expr == sp.cos(X) - X
    assert parse("min(x,sin(x))").expr == sp.Min(X, sp.sin(X))


def test_caret_is_power_not_xor() -> None:
    assert parse("x^2").expr == X**2
    assert parse("x*asinh(x)^2").expr == parse("x*asinh(x)**2").expr == X * sp.asinh(X) ** 2
    assert parse("2*x^3").expr == 2 * X**3  # ^ binds tighter than * (xor would not)
    assert parse("-x^2").expr == -(X**2)


def test_unicode_beta_and_numbered_betas() -> None:
    c = parse("β*x + β1")
    assert c.expr == _beta() * X + _beta("beta1")
    assert c.betas == {"beta": 1.0, "beta1": 1.0}
    assert parse("x*sigmoid(β*x)").key == parse("x*sigmoid(beta*x)").key


def test_operators_with_their_own_beta_get_fresh_ones() -> None:
    c = parse("scale(x) + shift(x)")
    assert set(c.betas) == {"beta0", "beta1"}
    assert sorted(c.betas.values()) == [0.0, 1.0]  # βx starts at 1, x+β at 0
    assert parse("swish(x)").key == parse("x*sigmoid(beta*x)").key


def test_numbers_pi_and_whitespace() -> None:
    c = parse("  0.5 * x + 2*pi ")
    assert c.expr == sp.Float(0.5) * X + 2 * sp.pi


def test_result_is_a_working_candidate() -> None:
    y = parse("max(x, sigmoid(x))").evaluate(torch.tensor([-2.0, 3.0], dtype=torch.float64))
    torch.testing.assert_close(y, torch.tensor([torch.sigmoid(torch.tensor(-2.0)).item(), 3.0],
                                               dtype=torch.float64))


# ---- refused ---------------------------------------------------------------------------------
HOSTILE = {
    "__import__('os').system('ls')": "not allowed|cannot be called",
    "x.__class__": "attribute access",
    "(lambda: 1)()": "lambda",
    "[x]": "a list",
    "x if x else x": "if-else",
    "open('f')": "unknown operator 'open'",
    "__builtins__": "'__builtins__' is not allowed",
    "sigmoid(x=1)": "keyword arguments",
    "sigmoid(**{'x': 1})": "keyword arguments",
    "__x__ + x": "'__x__' is not allowed",
    "x.real": "attribute access",
    "x[0]": "subscripting",
    "{x}": "a set",
    "f'{x}'": "f-string",
    "x < 1": "a comparison",
    "x and x": "a boolean operator",
    "(x := 1)": "assignment",
    "[i for i in x]": "comprehension",
    "'x'": "is not a number",
    "True": "is not a number",
    "x @ x": "MatMult",
    "x ^ x": "exponent must be a number",
    "9**9**9": "out of range",
    "x**1e6": "out of range",
    "1e999": "out of range",
    "x + (": "never closed",
    "x +": "syntax",
    "sigmoid(x, x)": "takes 1 argument",
    "max(x)": "takes 2 arguments",
    "x / 0": "division by zero",
    "sqrt(-1)**0.5 * x ** 0.5 * (-1)**0.5": "not a finite real function",
    "exp": "it is an operator: call it",
    "y": "unknown name 'y'",
    "": "empty",
    "x\x00": "NUL",
    "x; import os": "syntax",
    "import os": "syntax",
}


@pytest.mark.parametrize("text,message", list(HOSTILE.items()))
def test_refused_with_a_clear_one_line_message(text: str, message: str) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ParseError, match=message) as info:
        parse(text)
    assert time.perf_counter() - t0 < 1.0
    assert "\n" not in str(info.value)


def test_huge_exponent_tower_returns_fast() -> None:
    for text in ("9**9**9", "9**9**9**9", "(10**6)**16**16", "2**2**2**2**2**2"):
        t0 = time.perf_counter()
        with pytest.raises(ParseError):
            parse(text)
        assert time.perf_counter() - t0 < 1.0, text


@pytest.mark.parametrize("text", [
    "(" * 500 + "x" + ")" * 500,
    "(" * 450 + "x" + ")" * 450,          # under the length limit: parens alone are fine …
    "sigmoid(" * 120 + "x" + ")" * 120,    # … but real nesting has a depth limit
    "-" * 900 + "x",
    "+".join(["x"] * 5000),               # 10k characters
    "x" * 10_000,
])
def test_deep_or_long_input_is_refused_fast(text: str) -> None:
    t0 = time.perf_counter()
    try:
        parse(text)  # redundant parentheses are harmless: "((x))" is x
    except ParseError as exc:
        assert "\n" not in str(exc)
    else:
        assert text.strip("()") == "x"
    assert time.perf_counter() - t0 < 1.0


def test_length_limit() -> None:
    with pytest.raises(ParseError, match=f"at most {MAX_LENGTH}"):
        parse("x+" * 5000 + "x")


def test_not_text() -> None:
    with pytest.raises(ParseError, match="must be text"):
        parse(b"x")  # type: ignore[arg-type]


def test_unknown_operator_suggests_the_close_name() -> None:
    with pytest.raises(UnknownOperatorError, match="did you mean 'sigmoid'"):
        parse("sigmod(x)")
    with pytest.raises(UnknownOperatorError, match="unknown operator 'foo'"):
        parse("foo(x)")


# ---- never evaluates Python ------------------------------------------------------------------
def test_parse_never_calls_eval_exec_or_sympify(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    def forbidden(name: str):
        def spy(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} called during parse")
        return spy

    core = sys.modules["sympy.core.sympify"]  # the module (sympy.core.sympify is the function)
    real_core_sympify = core.sympify
    real_compile = builtins.compile

    def ast_only_compile(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:  # ast.parse builds a tree and runs nothing
            calls.append("compile")
            raise AssertionError("compile to bytecode during parse")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    def core_sympify(a, *args, **kwargs):  # sympy calls its own sympify on objects: only text is a hole
        if isinstance(a, str):
            calls.append("sympify(str)")
            raise AssertionError("sympify called on text")
        return real_core_sympify(a, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden("eval"))
    monkeypatch.setattr(builtins, "exec", forbidden("exec"))
    monkeypatch.setattr(builtins, "compile", ast_only_compile)
    monkeypatch.setattr(sympy, "sympify", forbidden("sympy.sympify"))
    monkeypatch.setattr(core, "sympify", core_sympify)
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr", forbidden("parse_expr"))
    texts = ["x*sigmoid(beta*x)", "max(x, tanh(x))", "cos(x) - x", "x*asinh(x)^2",
             "gelu(x) + 0.5*relu(x)", "div(x, 1 + abs(x))", "rbf(x, sin(x))"]
    for text in texts:
        parse(text)
    for text in ["__import__('os').system('echo pwned')", "x.__class__", "sigmod(x)"]:
        with pytest.raises(ParseError):
            parse(text)
    assert calls == []


def test_candidate_refuses_text() -> None:
    # Regression: Candidate("...") used to sympify its argument, i.e. run text as Python.
    from actsearch import Candidate

    with pytest.raises(TypeError, match="actsearch.parse"):
        Candidate("__import__('os').system('echo pwned') or x")  # type: ignore[arg-type]


def test_sympy_flattened_min_and_max_read_back() -> None:
    """sympy flattens min(0, min(x, y)) to Min(0, x, y) and prints it so; a search's winner comes
    back through the parser (verify, export), so n-ary Min/Max must parse to the same function."""
    nested = parse("min(0, min(x, softplus(x)))")
    assert str(nested.expr) == "Min(0, x, softplus(x))"
    assert parse("Min(0, x, softplus(x))").key == nested.key
    assert parse("Max(x, sin(x), cos(x))").key == parse("max(max(x, sin(x)), cos(x))").key
    with pytest.raises(ParseError, match="min takes 2 arguments, got 1"):
        parse("min(x)")


def test_every_sampled_paper1_candidate_reads_back_as_itself() -> None:
    """What a search records (a candidate's text) parses back to the same expression: the verdict's
    shape analysis, its plots and the transfer check start from that text."""
    import random

    from actsearch.expressions import load_space

    space = load_space("paper-1")
    structures = list(space.enumerate())
    for choices in random.Random(7).sample(structures, 600):
        cand = space.build(choices)
        if cand.is_degenerate:
            continue
        back = parse(cand.text)
        assert back.text == cand.text  # the same expression (the text does not keep β's initial values:
        if not cand.betas:             # a blend's β starts at 0.5 in the space, a bare beta0 at 1)
            assert back.key == cand.key, cand.text


@pytest.mark.parametrize("text", [
    "((x+1)**16)**16",                       # sympy merges it to (x+1)**256: the rule counts 16·16
    "(((x+1)**16)**16)**16",
    "((x**2)**4)**4",                        # 32
    "x**16*x**16",                           # merged to x**32
    "((x+1)**16+1)**2",                      # not merged, still degree 32
    "sigmoid(x**4)**8",
])
def test_nested_or_merged_powers_obey_the_exponent_rule(text: str) -> None:
    with pytest.raises(ParseError, match="power"):
        parse(text)


@pytest.mark.parametrize("text", ["(x**2)**8", "sqrt(x)**16", "(x**0.5)**2", "x*sigmoid(x)**2", "x**16"])
def test_powers_within_the_rule_are_accepted(text: str) -> None:
    parse(text)
