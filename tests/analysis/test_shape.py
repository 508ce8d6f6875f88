"""Shape analysis: the nearest known activation, and the Swish fit of Ramachandran et al."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from actsearch import parse
from actsearch.analysis import is_swish_like, nearest, shape_distances, swish_fit


@pytest.mark.parametrize("beta", [0.7, 1.5, 3.0])
def test_swish_with_known_beta_is_recovered(beta: float) -> None:
    cand = parse(f"x*sigmoid({beta}*x)")
    fit = swish_fit(cand)
    assert fit.beta == pytest.approx(beta, abs=0.05)
    assert fit.scale == pytest.approx(1.0, abs=1e-3) and fit.distance < 1e-3
    assert is_swish_like(cand)


def test_scaled_swish_fits_the_scale_too() -> None:
    fit = swish_fit(parse("2.5*x*sigmoid(1.5*x)"))
    assert fit.beta == pytest.approx(1.5, abs=0.05) and fit.scale == pytest.approx(2.5, abs=1e-2)


def test_relu_is_its_own_family_not_swish() -> None:
    cand = parse("relu(x)")
    assert nearest(cand).name == "relu" and nearest(cand).distance < 1e-9
    assert not is_swish_like(cand)


def test_gelu_is_nearest_gelu_and_swish_like() -> None:
    m = nearest(parse("gelu(x)"))
    assert m.name == "gelu" and m.distance < 1e-9
    assert is_swish_like(parse("gelu(x)"))
    assert swish_fit(parse("gelu(x)")).beta == pytest.approx(1.702, abs=0.1)  # x·σ(1.702x) ≈ GELU


def test_max_x_sigmoid_gets_a_finite_distance_to_its_nearest() -> None:
    cand = parse("max(x, sigmoid(x))")
    m = nearest(cand)
    assert math.isfinite(m.distance) and 0 < m.distance < 1
    # the distance is the normalised RMS residual of the fitted family, recomputed here
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    y = cand.evaluate(x)
    ref = {"softplus": F.softplus, "relu": F.relu, "silu": F.silu}.get(m.name)
    if ref is not None:
        g = ref(x)
        a = float(y.dot(g) / g.dot(g))
        assert m.scale == pytest.approx(a, rel=1e-9)
        assert m.distance == pytest.approx(float((y - a * g).norm() / y.norm()), rel=1e-9)


def test_distances_are_sorted_and_cover_every_family() -> None:
    ms = shape_distances(parse("tanh(x)"))
    assert ms[0].name == "tanh"
    assert [round(m.distance, 3) for m in ms] == sorted(round(m.distance, 3) for m in ms)
    assert {"relu", "gelu", "swish", "sin", "identity"} <= {m.name for m in ms}


def test_degenerate_function_does_not_crash() -> None:
    m = nearest(parse("x - x + 0*x"))  # identically 0: no family explains it
    assert m.distance == math.inf


@pytest.mark.parametrize("beta", [0.8, 1.7])
def test_a_point_reflected_swish_is_swish_like_and_says_so(beta: float) -> None:
    """−f(−x) computes the same network functions as f (negate the weights before and after): the
    reflection of x·σ(βx) is x·σ(−βx), which one-sided analysis calls not Swish-like."""
    cand = parse(f"x*sigmoid(-{beta}*x)")
    fit = swish_fit(cand)
    assert fit.reflected and fit.beta == pytest.approx(beta, abs=0.05) and fit.distance < 1e-3
    assert is_swish_like(cand) and not is_swish_like(cand, reflect=False)
    assert "as −f(−x)" in str(nearest(cand))
    # the reflection's own values: −f(−x) on the grid
    x = torch.linspace(-5, 5, 1001, dtype=torch.float64)
    assert torch.allclose(-cand.evaluate(-x), x * torch.sigmoid(beta * x), atol=1e-12)


def test_reflection_keeps_a_function_that_fits_as_it_is() -> None:
    assert not swish_fit(parse("x*sigmoid(1.5*x)")).reflected  # a tie goes to f itself
    assert not nearest(parse("tanh(x)")).reflected  # odd: its own reflection
    m = nearest(parse("min(x, 0)"))  # −min(−x, 0) = max(x, 0)
    assert m.name == "relu" and m.reflected and m.distance < 1e-9
