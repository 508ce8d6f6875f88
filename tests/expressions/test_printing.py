"""sympy -> torch compiler: numerics against torch.nn.functional, gradcheck, stability, modules."""
from __future__ import annotations

import linecache
import math
import random

import pytest
import sympy as sp
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from actsearch import Candidate, load_space, parse
from actsearch.expressions.functions import EPS, logabs, safediv, sqrtabs
from actsearch.expressions import X
from actsearch.expressions.printing import load_source, module_source, print_torch

TOP8 = [  # Ramachandran et al. (2017), Table 2
    "x*sigmoid(beta*x)", "max(x, sigmoid(x))", "cos(x) - x", "min(x, sin(x))",
    "atan(x)^2 - x", "max(x, tanh(x))", "sinc(x) + x", "x*asinh(x)^2",
]


def _value_and_grad(fn, x0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x0.clone().requires_grad_(True)
    y = fn(x)
    (g,) = torch.autograd.grad(y.sum(), x)
    return y.detach(), g


# ---- numerically stable primitives -------------------------------------------------------------
EXTREMES = torch.tensor([-1e4, -100.0, 100.0, 1e4], dtype=torch.float32)


def test_compiled_silu_is_finite_where_the_naive_formula_is_not() -> None:
    y, g = _value_and_grad(parse("x*sigmoid(x)").evaluate, EXTREMES)
    assert torch.isfinite(y).all() and torch.isfinite(g).all()
    torch.testing.assert_close(y, F.silu(EXTREMES))
    torch.testing.assert_close(g, torch.tensor([0.0, 0.0, 1.0, 1.0]))
    # the textbook x/(1+e^{-x}) in float32: e^{100} = inf, and inf/inf in the backward = NaN
    y_naive, g_naive = _value_and_grad(lambda x: x / (1 + torch.exp(-x)), EXTREMES)
    assert torch.isnan(g_naive).any()
    assert not torch.isnan(g_naive[2:]).any()  # it is the negative side that breaks


def test_softplus_and_safe_primitives_at_extremes_and_zero() -> None:
    x = torch.tensor([1e4, -1e4], dtype=torch.float32)
    y, g = _value_and_grad(parse("softplus(x)").evaluate, x)
    torch.testing.assert_close(y, torch.tensor([1e4, 0.0]))
    assert torch.isfinite(g).all()
    assert torch.isinf(torch.log(1 + torch.exp(x))).any()  # the naive form overflows
    zero = torch.zeros(3, dtype=torch.float32)
    for text in ("log(x)", "sqrt(x)", "div(x, x)", "div(1, x)", "div(sin(x), x)"):
        y, g = _value_and_grad(parse(text).evaluate, zero)
        assert torch.isfinite(y).all() and torch.isfinite(g).all(), text
    # |f'| stays bounded by the ε of the safe forms, as the ops table promises
    x = torch.linspace(-1, 1, 20001, dtype=torch.float64)  # includes 0
    _, g_log = _value_and_grad(parse("log(x)").evaluate, x)
    _, g_sqrt = _value_and_grad(parse("sqrt(x)").evaluate, x)
    assert g_log.abs().max() <= 1 / 1e-3 + 1e-6
    assert g_sqrt.abs().max() <= 1 / (2 * 1e-3**0.5) + 1e-6


# ---- named activations vs torch.nn.functional ---------------------------------------------------
REFERENCES = {
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "selu": F.selu,
    "elu": F.elu,
    "silu": F.silu,
    "softplus": F.softplus,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "hardtanh": F.hardtanh,
    "mish": F.mish,
    "softsign": F.softsign,
}


@pytest.fixture(scope="module")
def dense_points() -> torch.Tensor:
    grid = torch.linspace(-12, 12, 4801, dtype=torch.float64)  # hits 0, ±1, 6 exactly: the kinks
    rand = torch.randn(2000, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 5
    return torch.cat([grid, rand, torch.tensor([0.0, -0.0, 1.0, -1.0, 6.0])])


@pytest.mark.parametrize("name", list(REFERENCES))
def test_compiled_baseline_equals_torch_functional(name: str, dense_points: torch.Tensor) -> None:
    cand = parse(f"{name}(x)")
    assert isinstance(cand.expr, sp.Expr) and cand.expr != sp.Symbol("x")  # a real composition
    y, g = _value_and_grad(cand.evaluate, dense_points)
    y_ref, g_ref = _value_and_grad(REFERENCES[name], dense_points)
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-6)
    # the compiler may fuse a·σ(a) etc. into F.silu …; the composition of primitives as written
    # must match the reference as well
    src = print_torch(cand.expr, [], X, natives=False)
    assert "F.silu" not in src and "F.mish" not in src and "F.gelu(" not in src
    code = compile(src, f"<unfused {name}>", "eval")
    env = {"torch": torch, "F": F, "math": math, "EPS": EPS}
    y, g = _value_and_grad(lambda x: eval(code, dict(env, x=x)), dense_points)  # noqa: S307
    torch.testing.assert_close(y, y_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(g, g_ref, rtol=1e-6, atol=1e-6)


def test_kink_gradients_follow_torch_conventions() -> None:
    # Regression: ELU printed as clamp_min(x,0) + exp(clamp_max(x,0)) − 1 had slope 2 at 0.
    zero = torch.zeros(1, dtype=torch.float64)
    slopes = {n: float(_value_and_grad(parse(f"{n}(x)").evaluate, zero)[1]) for n in
              ("relu", "elu", "leaky_relu", "relu6")}
    assert slopes == {"relu": 0.0, "elu": 1.0, "leaky_relu": 0.1, "relu6": 0.0}


# ---- gradcheck on grammar candidates ------------------------------------------------------------
def _kink_args(expr: sp.Expr) -> list[sp.Expr]:
    """Expressions whose zero is a kink or jump of expr (ties of max/min, |·|, safe ops)."""
    out: list[sp.Expr] = []
    for node in sp.preorder_traversal(expr):
        if isinstance(node, (sp.Max, sp.Min)):
            out += [a - b for a, b in zip(node.args, node.args[1:])]
        elif isinstance(node, (sp.Abs, logabs, sqrtabs)):
            out.append(node.args[0])
        elif isinstance(node, safediv):
            out.append(node.args[1])
    return out


def _away_from_kinks(cand: Candidate, shape: tuple[int, ...], gen: torch.Generator) -> torch.Tensor:
    """Random points with |x| in [0.3, 3], none within δ = 1e-2 of a kink of the candidate.

    A point is kept when every kink expression k is farther than δ from 0 there, or is exactly
    constant on [x − δ, x + δ] (min(0, x) for x > 0 is a flat 0, not a kink).
    """
    kinks = [Candidate(k, cand.betas) for k in _kink_args(cand.expr) if k.free_symbols]
    mag = torch.rand(400, generator=gen, dtype=torch.float64) * 2.7 + 0.3
    x = mag * torch.where(torch.rand(400, generator=gen) < 0.5, -1.0, 1.0).double()
    keep = torch.ones_like(x, dtype=torch.bool)
    for k in kinks:
        lo, mid, hi = (k.evaluate(x + d) for d in (-1e-2, 0.0, 1e-2))
        keep &= (mid.abs() > 1e-2) | ((lo == mid) & (mid == hi))
    n = torch.Size(shape).numel()
    assert int(keep.sum()) >= n, f"no kink-free points for {cand}"
    return x[keep][:n].reshape(shape)


def test_gradcheck_on_a_seeded_sample_of_paper1_candidates() -> None:
    space = load_space("paper-1")
    structures = list(space.enumerate())
    rng = random.Random(2017)
    gen = torch.Generator().manual_seed(2017)
    checked, with_beta = [], 0
    for choices in rng.sample(structures, 120):
        cand = space.build(choices)
        if cand.is_degenerate:
            continue
        module = cand.to_module(num_channels=3).double()
        params = dict(module.named_parameters())
        assert len(params) == len(cand.betas)
        for p in params.values():  # β away from its special initial values (1, 0, 0.5)
            p.data = torch.rand(3, generator=gen, dtype=torch.float64) + 0.5
        x = _away_from_kinks(cand, (4, 3), gen).requires_grad_(True)
        names = list(params)

        def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
            return functional_call(module, dict(zip(names, ps)), (x,))

        inputs = (x, *(p.detach().clone().requires_grad_(True) for p in params.values()))
        assert torch.autograd.gradcheck(f, inputs, eps=1e-6, atol=1e-5, rtol=1e-4), str(cand)
        checked.append(cand.text)
        with_beta += bool(params)
        if len(checked) == 40:
            break
    assert len(checked) == 40
    assert with_beta >= 8, "the sample exercises β gradients"


def test_gradcheck_fails_exactly_at_a_kink_as_it_must() -> None:
    # Why the sample above avoids kinks: at a tie the central difference sees the mean of the
    # one-sided slopes (½ for relu at 0) while autograd returns one subgradient (0).
    relu = parse("relu(x)").function
    at_kink = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    assert not torch.autograd.gradcheck(relu, (at_kink,), raise_exception=False)
    away = torch.full((1,), 0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(relu, (away,))


# ---- the paper's top 8 at extreme inputs --------------------------------------------------------
@pytest.mark.parametrize("text", TOP8)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_top8_forward_backward_finite_on_wide_range(text: str, dtype: torch.dtype) -> None:
    module = parse(text).to_module().to(dtype)
    x = torch.linspace(-1e4, 1e4, 40001, dtype=dtype).requires_grad_(True)
    y = module(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all()
    for p in module.parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all()


# ---- modules ------------------------------------------------------------------------------------
def test_beta_is_a_scalar_parameter_without_channels() -> None:
    m = parse("x*sigmoid(beta*x)").to_module()
    (p,) = m.parameters()
    assert isinstance(p, nn.Parameter) and p.shape == () and float(p.detach()) == 1.0


@pytest.mark.parametrize("shape", [(5, 4), (5, 4, 7), (5, 4, 3, 3)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_per_channel_beta_broadcasts_over_channel_dim(shape, dtype) -> None:
    cand = parse("x*sigmoid(beta*x)")
    m = cand.to_module(num_channels=4).to(dtype)
    (p,) = m.parameters()
    assert isinstance(p, nn.Parameter) and p.shape == (4,) and p.dtype == dtype
    with torch.no_grad():
        p.copy_(torch.tensor([0.5, 1.0, 2.0, 4.0]))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
    y = m(x)
    assert y.shape == x.shape and y.dtype == dtype
    for c, beta in enumerate([0.5, 1.0, 2.0, 4.0]):
        xc = x[:, c]
        torch.testing.assert_close(y[:, c], xc * torch.sigmoid(beta * xc))
    y.sum().backward()
    assert p.grad is not None and p.grad.shape == (4,) and (p.grad != 0).all()


def test_to_float64_moves_beta_and_matches_float32() -> None:
    m = parse("max(x, tanh(beta*x)) + beta1").to_module(num_channels=2)
    x = torch.randn(3, 2)
    y32 = m(x)
    m64 = m.to(torch.float64)
    assert all(p.dtype == torch.float64 for p in m64.parameters())
    torch.testing.assert_close(m64(x.double()), y32.double(), rtol=1e-6, atol=1e-6)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_module_on_cuda_matches_cpu() -> None:
    for text in TOP8 + ["gelu(x)", "div(x, sin(x))", "log(x)", "sqrt(x)"]:
        m = parse(text).to_module(num_channels=3)
        x = torch.randn(8, 3, 5, generator=torch.Generator().manual_seed(0))
        want = m(x)
        mc = m.cuda()
        xc = x.cuda().requires_grad_(True)
        got = mc(xc)
        got.sum().backward()
        assert got.is_cuda and torch.isfinite(xc.grad).all()
        torch.testing.assert_close(got.cpu(), want, rtol=1e-5, atol=1e-5)


# ---- generated source ---------------------------------------------------------------------------
def test_generated_source_is_registered_for_tracebacks() -> None:
    cand = parse("x*sigmoid(beta*x)")
    src = module_source([cand], ["swish"])
    mod = load_source(src, "swish")
    filename = mod.swish.__code__.co_filename
    assert filename in linecache.cache
    line = linecache.getline(filename, mod.swish.__code__.co_firstlineno)
    assert line.startswith("def swish(")
    assert "torch.sigmoid(beta * x)" in src
    torch.testing.assert_close(mod.swish(torch.tensor([2.0]), 1.5), 2 * torch.sigmoid(torch.tensor([3.0])))


def test_torch_source_of_printer_is_readable() -> None:
    assert parse("cos(x) - x").torch_source == "torch.cos(x) - x"
    assert parse("x*sigmoid(beta*x)").torch_source == "x * torch.sigmoid(beta * x)"
    assert parse("sinc(x)").torch_source == "torch.sinc(x / math.pi)"  # paper: sin(x)/x
    # A sum inside sinc is parenthesised before the division by π (it once read x + (β/π)).
    assert parse("sinc(x + beta)").torch_source == "torch.sinc((beta + x) / math.pi)"
    t = torch.tensor([0.3, 2.0])
    assert torch.allclose(parse("sinc(x**2 + tanh(x))").evaluate(t), torch.sin(t**2 + torch.tanh(t)) / (t**2 + torch.tanh(t)))


def test_native_fused_forms_print_as_before_the_head_prefilter(monkeypatch: pytest.MonkeyPatch) -> None:
    """The printer tries a·σ(a), a·tanh(softplus(a)), a·Φ(a) only on products that contain σ, tanh,
    erf: on a sample of the paper's space and on products where they hide, it prints exactly
    what trying every form on every product prints (a head of ``sp.Basic`` is in everything)."""
    import actsearch.expressions.printing.torch as printer

    space = load_space("paper-1")
    cands = [space.build(c) for c in random.Random(14).sample(list(space.enumerate()), 400)]
    cands += [parse(t) for t in ("x*sigmoid(x)", "2*x*tanh(softplus(x))", "x*(1 + erf(x/sqrt(2)))/2",
                                 "cos(x)*x*sigmoid(x)", "x*sigmoid(x) + tanh(x)", "erf(x)*x")]
    printed = [print_torch(c.expr, list(c.betas), X) for c in cands]
    assert "F.silu(x)" in printed and "2.0 * F.mish(x)" in printed and "F.gelu(x)" in printed
    every = [(template, form, sp.Basic) for template, form, _ in printer._NATIVE_FORMS]
    monkeypatch.setattr(printer, "_NATIVE_FORMS", every)
    assert [print_torch(c.expr, list(c.betas), X) for c in cands] == printed


def test_the_function_alone_is_the_modules_function() -> None:
    """Fingerprints compile f alone (no module class, no LaTeX); it computes what the module does."""
    cand = parse("max(x, beta*tanh(x)) + 0.5*sinc(x)")
    x = torch.linspace(-4, 4, 33)
    alone = cand.function(x)
    layer = cand.to_module()
    torch.testing.assert_close(layer(x), alone, rtol=0, atol=0)
    source = "".join(linecache.getlines(cand.function.__code__.co_filename))
    assert "def activation(" in source and "class " not in source and "LaTeX" not in source


def test_generated_source_leaves_linecache_with_the_last_thing_that_can_run_it() -> None:
    """A long search compiles thousands of candidates: their sources must not pile up in linecache
    (sympy's lambdify pairs its entries with a weakref.finalize too), yet stay readable for as long
    as anything generated from them can still raise."""
    import gc

    cand = parse("x*cos(x) + 0.25*sinh(x)")
    filename = cand.function.__code__.co_filename  # the function alone: its own source
    assert filename in linecache.cache
    layer = cand.to_module(3)  # an instance of the generated class outlives the candidate
    module_file = type(layer).forward.__code__.co_filename
    assert module_file in linecache.cache and module_file != filename
    fn = cand.function
    del cand
    gc.collect()
    assert filename in linecache.cache and module_file in linecache.cache
    fn(torch.zeros(1))
    layer(torch.randn(2, 3))  # and still runs
    del fn
    gc.collect()
    assert filename not in linecache.cache and module_file in linecache.cache
    del layer
    gc.collect()
    assert module_file not in linecache.cache
    before = len(linecache.cache)
    for i in range(50):
        parse(f"x*sin(x) + {i + 1}*tanh(x)").function(torch.zeros(1))
    gc.collect()
    assert len(linecache.cache) <= before + 1
