"""Candidates: equivalence keys, canonical forms, degeneracy."""
from __future__ import annotations

import time

import pytest
import sympy as sp
import torch

from actsearch import Candidate, load_space, parse
from actsearch.expressions import PROBE_GRID, X


# ---- equivalence keys --------------------------------------------------------------------------
@pytest.mark.parametrize("group", [
    ["x*sigmoid(x)", "sigmoid(x)*x", "x/(1+exp(-x))", "silu(x)", "sigmul(x, x)"],
    ["-(-x)", "x", "max(x, x)", "min(x, x)", "identity(x)", "2*x - x"],
    ["x*sigmoid(beta*x)", "swish(x)", "sigmoid(beta*x)*x", "x*sigmoid(β*x)"],
    ["relu(x)", "max(x, 0)", "(x + abs(x))/2"],
])
def test_equal_functions_get_equal_keys(group: list[str]) -> None:
    keys = {text: parse(text).key for text in group}
    assert len(set(keys.values())) == 1, keys


@pytest.mark.parametrize("a,b", [
    ("x", "scale(x)"),                       # equal at β = 1 only
    ("x*sigmoid(x)", "x*sigmoid(beta*x)"),
    ("x + beta", "x + beta + beta1"),        # the same family of functions, but more β
    ("x*sigmoid(x)", "gelu(x)"),
    ("gelu(x)", "gelu_tanh(x)"),             # within 1e-3: the fingerprint still tells them apart
    ("relu(x)", "leaky_relu(x)"),
    ("sin(x)", "sin(x + 2*pi) + 1e-6"),
])
def test_different_functions_get_different_keys(a: str, b: str) -> None:
    assert parse(a).key != parse(b).key


def test_equality_and_hash_follow_the_key() -> None:
    a, b = parse("x*sigmoid(x)"), parse("x/(1+exp(-x))")
    assert a == b and hash(a) == hash(b) and len({a, b, parse("x")}) == 2


# ---- canonical form ----------------------------------------------------------------------------
def test_canonical_simplifies_within_the_time_bound() -> None:
    cand = parse("sin(x)^2 + cos(x)^2 + x")
    t0 = time.perf_counter()
    canon = cand.canonical
    assert time.perf_counter() - t0 < 5.0
    assert canon.expr == X + 1
    assert canon.key == cand.key
    cand = parse("(exp(x) - exp(-x))/2 * beta")
    assert cand.canonical.expr == sp.Symbol("beta", real=True) * sp.sinh(X)
    assert cand.canonical.betas == cand.betas


def test_canonical_keeps_an_already_simple_form() -> None:
    cand = parse("x*sigmoid(beta*x)")
    assert cand.canonical is cand


def test_canonical_gives_up_on_a_hard_expression_in_time(monkeypatch: pytest.MonkeyPatch) -> None:
    import actsearch.expressions.candidate as C

    monkeypatch.setattr(C, "_SIMPLIFY_SECONDS", 0.05)
    cand = parse("(x+1)^16*(x-1)^16 + sin(x)^2 + cos(x)^2 + asinh(x)^2*atan(x)^3 - x^15*(x+2)^16")
    t0 = time.perf_counter()
    canon = cand.canonical
    assert time.perf_counter() - t0 < 2.0
    assert canon.key == cand.key  # whatever it returns, it is the same function


# ---- degeneracy --------------------------------------------------------------------------------
def test_constant_structures_from_the_grammar_are_degenerate() -> None:
    space = load_space("paper-1")
    sub = space.build({"u1_unary1": "sin", "u1_unary2": "sin", "u1_binary": "sub"})
    assert sub.degenerate_reason == "does not depend on x"
    betas = space.build({"u1_unary1": "beta", "u1_unary2": "beta", "u1_binary": "add"})
    assert betas.degenerate_reason == "does not depend on x"
    assert parse("beta").degenerate_reason == "does not depend on x"


def test_numerically_constant_is_degenerate() -> None:
    # sympy keeps x here; only the numbers show it is constant
    assert parse("sin(x)^2 + cos(x)^2").degenerate_reason == "constant on the probe grid"
    assert parse("max(x, 100)").degenerate_reason == "constant on the probe grid"


def test_non_finite_on_grid_is_degenerate() -> None:
    reason = parse("exp(exp(exp(x)))").degenerate_reason
    assert reason is not None and reason.startswith("non-finite on the probe grid")
    # 1/x at 0; regression: the probe grid held −3e−16, not 0, so 1/x looked finite
    assert parse("x^-1").degenerate_reason == "non-finite on the probe grid (f(0) = inf)"
    assert parse("div(1, x)").degenerate_reason is None  # the safe division stays finite


def test_sin_x_over_x_is_not_sinc_at_zero() -> None:
    # sin(x)/x as written is 0/0 at x = 0, the sinc operator is 1 there: different keys, and the
    # hand-written one is caught as degenerate.
    assert parse("sin(x)/x").key != parse("sinc(x)").key
    assert parse("sin(x)/x").degenerate_reason.startswith("non-finite")


def test_step_with_zero_gradient_is_degenerate() -> None:
    # a sharp sigmoid step placed between two grid points: values 0 and 1, gradient 0 everywhere
    mid = float(PROBE_GRID[120] + PROBE_GRID[121]) / 2
    step = parse(f"sigmoid(1e6*(x - {mid!r}))")
    y = step.evaluate(PROBE_GRID)
    assert set(y.unique().tolist()) == {0.0, 1.0}
    assert step.degenerate_reason.startswith("zero gradient")


@pytest.mark.parametrize("text", [
    "x*sigmoid(beta*x)", "max(x, sigmoid(x))", "cos(x) - x", "min(x, sin(x))",
    "atan(x)^2 - x", "max(x, tanh(x))", "sinc(x) + x", "x*asinh(x)^2", "relu(x)", "x",
])
def test_papers_top8_are_not_degenerate(text: str) -> None:
    assert parse(text).degenerate_reason is None


# ---- evaluation and text forms -----------------------------------------------------------------
def test_evaluate_with_moved_beta() -> None:
    cand = parse("x*sigmoid(beta*x)")
    x = torch.tensor([-1.0, 0.5, 2.0], dtype=torch.float64)
    torch.testing.assert_close(cand.evaluate(x, {"beta": 2.0}), x * torch.sigmoid(2 * x))
    torch.testing.assert_close(cand(x), x * torch.sigmoid(x))
    const = parse("beta").evaluate(x)
    assert const.shape == x.shape and (const == 1).all()


def test_only_surviving_betas_are_parameters() -> None:
    assert parse("max(beta, beta) * x").betas == {"beta": 1.0}
    assert parse("x + beta - beta").betas == {}
    with pytest.raises(ValueError, match="neither x nor a declared"):
        Candidate(X + sp.Symbol("y"))


def test_latex_and_text() -> None:
    cand = parse("x*sigmoid(beta*x)")
    assert cand.latex == r"x \sigma\left(\beta x\right)"
    assert str(cand) == "x*sigmoid(beta*x)"
    assert cand.op_count() > 0
