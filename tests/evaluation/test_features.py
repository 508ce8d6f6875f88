"""Training-free features: deterministic, finite for functions that overflow, and measuring what they say."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from actsearch.evaluation import (FEATURE_GROUPS, build_model, candidate_features, feature_names, get_dataset, get_fidelity,
                                  layer_statistics, squash)
from actsearch.expressions import parse

ODD = ["exp(cosh(x))", "sinh(exp(x))", "x**3*exp(x**2)", "x/(x - x + 0.000001)", "cosh(x)**16*exp(exp(x))", "x"]


def test_squash_maps_every_float_to_a_finite_number() -> None:
    v = squash(np.array([0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 1e300]))
    assert np.isfinite(v).all()
    assert v[0] == 0.0 and v[1] == pytest.approx(np.log(2.0)) and v[2] == pytest.approx(-np.log(2.0))
    assert v[4] == 50.0 and v[5] == -50.0 and v[3] == -50.0
    assert v[6] <= 50.0


@pytest.mark.parametrize("text", ODD)
def test_features_are_finite_and_deterministic(text: str) -> None:
    cand = parse(text)
    a = candidate_features(cand, "smoke")
    b = candidate_features(parse(text), "smoke")
    for g in FEATURE_GROUPS:
        assert np.isfinite(a.groups[g]).all(), (text, g)
        np.testing.assert_array_equal(a.groups[g], b.groups[g])
    assert len(a.vector()) == len(feature_names("smoke"))


def test_output_features_read_f_and_its_slope() -> None:
    names = feature_names("smoke", ["output"])
    relu = dict(zip(names, candidate_features(parse("relu(x)"), "smoke", ["output"]).groups["output"]))
    ident = dict(zip(names, candidate_features(parse("x"), "smoke", ["output"]).groups["output"]))
    assert relu["f(-3.00)"] == 0.0 and relu["df(-3.00)"] == 0.0
    assert relu["f(+3.00)"] == pytest.approx(np.log1p(3.0)) and relu["df(+3.00)"] == pytest.approx(np.log(2.0))
    assert ident["f_std"] == pytest.approx(np.log1p(1.0), abs=0.02)  # std of N(0,1) samples
    assert relu["df_zero"] == pytest.approx(np.log1p(0.5), abs=0.02)  # half the samples have slope 0


def test_init_statistics_tell_a_dead_function_from_a_live_one() -> None:
    names = feature_names("smoke", ["init"])
    dead = dict(zip(names, candidate_features(parse("min(x, 0) - 5"), "smoke", ["init"]).groups["init"]))
    live = dict(zip(names, candidate_features(parse("tanh(x)"), "smoke", ["init"]).groups["init"]))
    assert live["L1_dead"] == 0.0
    assert dead["L2_saturated"] > live["L2_saturated"]


def test_layer_statistics_against_hand_counts() -> None:
    pre = torch.tensor([[-1.0, 2.0, -3.0], [-2.0, 1.0, 4.0]])  # (N=2, C=3)
    post = pre.clamp_min(0)
    slope = (pre > 0).double()
    st = layer_statistics(pre, post, slope, 1.0)
    assert st["frac_dead"] == pytest.approx(1 / 3)  # channel 0 is negative on both examples
    assert st["frac_grad_vanished"] == pytest.approx(3 / 6)
    assert st["std"] == pytest.approx(float(post.std()))


def test_fisher_spectrum_scales_with_the_activation() -> None:
    names = feature_names("smoke", ["fisher"])
    small = dict(zip(names, candidate_features(parse("0.01*x"), "smoke", ["fisher"]).groups["fisher"]))
    big = dict(zip(names, candidate_features(parse("x"), "smoke", ["fisher"]).groups["fisher"]))
    # the head's gradient is proportional to its input: 100x smaller activations, a far smaller trace
    assert small["W3_trace"] < big["W3_trace"] - 1.0
    assert small["W3_eig1"] >= small["W3_eig2"] >= 0.0


def test_fisher_of_a_batchnorm_child_normalizes_with_the_minibatch() -> None:
    """BatchNorm fidelities (standard_bn, power) once crashed the Fisher group (functorch refused
    BatchNorm's in-place running-statistics update). Each example is now normalized with the
    minibatch's statistics held fixed: the traces must equal a by-hand loop over the examples, each
    normalized with the batch's mean and biased variance, one backward per example."""
    smoke = get_fidelity("smoke")
    bn = dataclasses.replace(smoke, name="smoke_bn", model=dataclasses.replace(smoke.model, norm="batch"))
    cand = parse("tanh(x) + 0.1*x")
    names = feature_names(bn, ["fisher"])
    got = dict(zip(names, candidate_features(cand, bn).groups["fisher"]))
    assert got == dict(zip(names, candidate_features(parse("tanh(x) + 0.1*x"), bn).groups["fisher"]))

    data = get_dataset(bn.dataset, torch.device("cpu"))
    model = build_model(bn.model, cand, data.input_shape, data.num_classes, seed=0)
    xb, yb = data.x_train[:64], data.y_train[:64]
    with torch.no_grad():  # the batch's statistics, layer by layer
        stats, h = [], xb.flatten(1)
        for layer, norm, act in zip(model.layers, model.norms, model.acts):
            u = layer(h)
            stats.append((u.mean(0), u.var(0, unbiased=False)))
            h = act((u - stats[-1][0]) / torch.sqrt(stats[-1][1] + norm.eps) * norm.weight + norm.bias)
    weights = [m.weight for m in [*model.layers, model.head]]
    sq = torch.zeros(len(weights), dtype=torch.float64)
    for x1, y1 in zip(xb, yb):
        h = x1.flatten().unsqueeze(0)
        for (mean, var), layer, norm, act in zip(stats, model.layers, model.norms, model.acts):
            h = act((layer(h) - mean) / torch.sqrt(var + norm.eps) * norm.weight + norm.bias)
        grads = torch.autograd.grad(nn.functional.cross_entropy(model.head(h), y1.unsqueeze(0)), weights)
        sq += torch.stack([g.double().pow(2).sum() for g in grads])
    for i, trace in enumerate(sq / len(xb)):  # trace of the empirical Fisher = mean squared gradient norm
        assert got[f"W{i + 1}_trace"] == pytest.approx(float(squash(np.array([float(trace)]))[0]), rel=1e-4), i
