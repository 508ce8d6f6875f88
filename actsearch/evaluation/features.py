"""Features of a candidate activation that need no training: what a surrogate predicts accuracy from.

Three groups, after AQuaSurF (Bingham & Miikkulainen 2023, "Efficient Activation Function
Optimization through Surrogate Modeling"), which predicts a function's accuracy from its outputs on
N(0,1) inputs and the Fisher-information spectrum of the network at initialization:

- ``output`` — f and f′ at fixed N(0,1) quantiles (β at its initial value), and the moments of
  f(z), f′(z) over a fixed N(0,1) sample: the function's shape where a normalized preactivation lives.
- ``init`` — the child network of a fidelity at initialization (seed 0) on one fixed minibatch of
  its training data: per activation layer the std of its output, the fraction of saturated units
  (slope below 1% of f's largest slope, the lecture's criterion) and of dead ones (zero slope on
  every example); the gradient norm at the first layer, the loss and the logits' std.
- ``fisher`` — the empirical Fisher at init per layer (Martens & Grosse 2015 treat it layer by
  layer, K-FAC): the largest eigenvalues of the per-example gradient Gram matrix of each layer's
  weights, its trace, and the effective rank.

Every number goes through a signed log, log(1+|v|)·sign(v), with NaN and ±Inf mapped to fixed
finite values, so a function that overflows (exp(cosh x)) gives finite, deterministic features.
The per-layer statistics are :func:`layer_statistics`, which the lecture's forward-pass experiment
(``actsearch experiment forward-stats``) reports too.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..expressions import PROBE_GRID, Candidate
from .models import build_model
from .recipe import Fidelity, get_dataset, get_fidelity

__all__ = ["FEATURE_GROUPS", "FEATURES_VERSION", "FeatureSet", "candidate_features", "population_features", "layer_statistics",
           "squash", "feature_names"]

FEATURE_GROUPS = ("output", "init", "fisher")
#: Bumped whenever a feature's definition changes, so that features kept on disk are recomputed.
FEATURES_VERSION = 2

#: N(0,1) quantiles where f and f′ are read (25 points, from −2.05 to 2.05, plus the tails ±3, ±4).
_QUANTILES = torch.tensor([*(torch.distributions.Normal(0.0, 1.0).icdf(torch.linspace(0.02, 0.98, 25))).tolist(),
                           -3.0, 3.0, -4.0, 4.0], dtype=torch.float32)
_SAMPLE = torch.randn(4096, generator=torch.Generator().manual_seed(2023))
_INIT_EXAMPLES = 256  # one minibatch: the statistics' sampling noise is small next to their spread over functions
_FISHER_EXAMPLES = 64  # per-example gradients cost one backward each (vmap): 64 keeps it within budget
_FISHER_TOP = 6  # eigenvalues kept per layer
#: What a non-finite number becomes after :func:`squash`: NaN far below any finite value, ±Inf beyond them.
_NAN, _BIG = -50.0, 50.0


def squash(values: np.ndarray | torch.Tensor) -> np.ndarray:
    """sign(v)·log(1+|v|), with NaN → −50 and ±Inf → ±50 (log(1+|v|) ≤ 89 for float32 anyway)."""
    v = np.asarray(values.detach().double() if isinstance(values, torch.Tensor) else values, dtype=np.float64)
    with np.errstate(all="ignore"):
        out = np.sign(v) * np.log1p(np.abs(v))
    out = np.where(np.isposinf(v), _BIG, np.where(np.isneginf(v), -_BIG, out))
    return np.where(np.isnan(v), _NAN, np.clip(out, -_BIG, _BIG))


@dataclass
class FeatureSet:
    """One candidate's features, by group (flat float64 vectors), and the seconds each took."""

    groups: dict[str, np.ndarray]
    seconds: dict[str, float]

    def vector(self, groups: Sequence[str] = FEATURE_GROUPS) -> np.ndarray:
        return np.concatenate([self.groups[g] for g in groups])


def layer_statistics(pre: torch.Tensor, post: torch.Tensor, slope: torch.Tensor, max_slope: float
                     ) -> dict[str, float]:
    """One layer's forward-pass statistics: mean and std of its activations, std of its
    preactivations, the fraction of saturated values (slope below 1% of the function's largest
    slope, as in the lecture) and of dead units (a unit — one channel of dim 1 — whose slope is 0
    on every example and position). ``pre``/``post``/``slope`` are (N, C, ...)."""
    flat = slope.abs().transpose(0, 1).reshape(slope.shape[1], -1)
    return {
        "mean": float(post.mean()), "std": float(post.std()), "preact_std": float(pre.std()),
        "frac_grad_vanished": float((slope.abs() < 0.01 * max_slope).double().mean()),
        "frac_dead": float((flat.amax(dim=1) == 0).double().mean()),
    }


def _output_features(cand: Candidate) -> tuple[np.ndarray, float]:
    """f and f′ at the quantiles, moments of f(z) and f′(z) on the sample; also max |f′| on the probe grid."""
    x = torch.cat([_QUANTILES, _SAMPLE, PROBE_GRID.float()]).requires_grad_(True)
    with np.errstate(all="ignore"):
        y = cand.evaluate(x)
        (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    g = torch.zeros_like(x) if g is None else g
    y, g = y.detach(), g.detach()
    q, s = len(_QUANTILES), len(_SAMPLE)
    ys, gs = y[q:q + s].double(), g[q:q + s].double()
    finite = torch.isfinite(ys) & torch.isfinite(gs)
    fy, fg = ys[finite], gs[finite]

    def moments(v: torch.Tensor) -> list[float]:
        if v.numel() < 2:
            return [math.nan] * 4
        c = v - v.mean()
        sd = float(c.pow(2).mean().sqrt())
        return [float(v.mean()), sd, float(c.pow(3).mean()) / (sd ** 3 + 1e-12), float(v.abs().amax())]

    grid_g = g[q + s:].abs()
    max_slope = float(grid_g[torch.isfinite(grid_g)].amax()) if torch.isfinite(grid_g).any() else 0.0
    stats = [*moments(fy), *moments(fg), float(finite.double().mean()), float((fg == 0).double().mean()) if fg.numel() else 1.0,
             float((fy.sub(fy.mean()) * torch.as_tensor(_SAMPLE.double()[finite])).mean()) if fy.numel() else math.nan]
    return np.concatenate([squash(y[:q]), squash(g[:q]), squash(np.array(stats))]), max_slope


def _child(fid: Fidelity, cand: Candidate) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    data = get_dataset(fid.dataset, torch.device("cpu"))
    model = build_model(fid.model, cand, data.input_shape, data.num_classes, seed=0)
    n = min(_INIT_EXAMPLES, len(data.x_train))
    return model, data.x_train[:n], data.y_train[:n]


def _init_features(cand: Candidate, fid: Fidelity, max_slope: float) -> np.ndarray:
    model, xb, yb = _child(fid, cand)
    pre: list[torch.Tensor] = []
    post: list[torch.Tensor] = []

    def keep(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        inputs[0].retain_grad()
        pre.append(inputs[0])
        post.append(output)

    hooks = [act.register_forward_hook(keep) for act in model.acts]  # type: ignore[union-attr]
    try:
        with np.errstate(all="ignore"):
            logits = model(xb)
            loss = nn.functional.cross_entropy(logits, yb)
            slopes = [torch.autograd.grad(o.sum(), p, retain_graph=True, allow_unused=True)[0] for p, o in zip(pre, post)]
            loss.backward()
    finally:
        for h in hooks:
            h.remove()
    rows = []
    for p, o, s in zip(pre, post, slopes):
        s = torch.zeros_like(p) if s is None else s
        st = layer_statistics(p.detach(), o.detach(), s.detach(), max_slope)
        rows += [st["std"], st["preact_std"], st["frac_grad_vanished"], st["frac_dead"]]
    first = model.layers[0].weight.grad  # type: ignore[index, union-attr]
    gnorm = float(first.norm()) if first is not None else math.nan
    return squash(np.array([*rows, gnorm, float(loss.detach()), float(logits.detach().std())]))


def _freeze_batch_statistics(model: nn.Module, xb: torch.Tensor) -> None:
    """BatchNorm children: normalize every example with the minibatch's own statistics, held
    fixed (the usual per-example-gradient approximation; one example alone has no batch). Each
    BatchNorm's running mean and variance become its input's mean and biased variance over the
    minibatch — what train mode normalizes with — and the model goes to eval mode. Without
    BatchNorm: nothing changes."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    seen: dict[nn.Module, torch.Tensor] = {}
    hooks = [m.register_forward_pre_hook(lambda m, inputs: seen.__setitem__(m, inputs[0].detach())) for m in norms]
    try:
        with torch.no_grad(), np.errstate(all="ignore"):
            model.train()(xb)
    finally:
        for h in hooks:
            h.remove()
    for m in norms:
        u = seen[m].transpose(0, 1).reshape(seen[m].shape[1], -1)  # (C, N·positions)
        m.running_mean.copy_(u.mean(dim=1))
        m.running_var.copy_(u.var(dim=1, unbiased=False))
    model.eval()


def _fisher_features(cand: Candidate, fid: Fidelity) -> np.ndarray:
    """Per weight layer: the top eigenvalues of G = J Jᵀ / n (J: per-example gradients of that
    layer's weights; G shares its nonzero spectrum with the empirical Fisher JᵀJ / n), its trace
    and its effective rank (trace / top eigenvalue)."""
    model, xb, yb = _child(fid, cand)
    xb, yb = xb[:_FISHER_EXAMPLES], yb[:_FISHER_EXAMPLES]
    _freeze_batch_statistics(model, xb)
    params = {k: v.detach() for k, v in model.named_parameters()}
    weights = [k for k in params if k.endswith("weight") and params[k].dim() >= 2]

    def loss_one(p: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        out = torch.func.functional_call(model, p, (x.unsqueeze(0),))
        return nn.functional.cross_entropy(out, y.unsqueeze(0))

    with np.errstate(all="ignore"):
        grads = torch.func.vmap(torch.func.grad(loss_one), in_dims=(None, 0, 0))(params, xb, yb)
    out: list[float] = []
    for k in weights:
        j = grads[k].reshape(len(xb), -1).double()
        if not torch.isfinite(j).all():
            out += [math.nan] * (_FISHER_TOP + 2)
            continue
        eig = torch.linalg.eigvalsh(j @ j.T / len(xb)).flip(0).clamp_min(0)
        trace = float(eig.sum())
        out += [*eig[:_FISHER_TOP].tolist(), trace, trace / float(eig[0]) if eig[0] > 0 else 0.0]
    return squash(np.array(out))


def candidate_features(cand: Candidate, fidelity: Fidelity | str = "quick",
                       groups: Sequence[str] = FEATURE_GROUPS) -> FeatureSet:
    """The features of one candidate (deterministic: fixed samples, seed-0 weights, CPU)."""
    fid = get_fidelity(fidelity)
    unknown = set(groups) - set(FEATURE_GROUPS)
    if unknown:
        raise ValueError(f"unknown feature groups {sorted(unknown)} (known: {', '.join(FEATURE_GROUPS)})")
    out: dict[str, np.ndarray] = {}
    secs: dict[str, float] = {}
    t0 = time.perf_counter()
    out["output"], max_slope = _output_features(cand)
    secs["output"] = time.perf_counter() - t0
    makers: dict[str, Callable[[], np.ndarray]] = {"init": lambda: _init_features(cand, fid, max_slope),
                                                   "fisher": lambda: _fisher_features(cand, fid)}
    for g in groups:
        if g in makers:
            t0 = time.perf_counter()
            with torch.enable_grad():  # callers may hold no_grad; the slopes need autograd
                out[g] = makers[g]()
            secs[g] = time.perf_counter() - t0
    return FeatureSet({g: out[g] for g in groups}, {g: secs[g] for g in groups})


def population_features(cands: Sequence[Candidate], fidelity: Fidelity | str = "quick",
                        groups: Sequence[str] = FEATURE_GROUPS) -> list[FeatureSet]:
    """:func:`candidate_features` for a whole population: the samples, the child's minibatch and
    the dataset are loaded once and shared; each member's child is built from seed 0."""
    fid = get_fidelity(fidelity)
    return [candidate_features(c, fid, groups) for c in cands]


def feature_names(fidelity: Fidelity | str = "quick", groups: Sequence[str] = FEATURE_GROUPS) -> list[str]:
    """A name per feature, in :meth:`FeatureSet.vector` order (for tables and debugging)."""
    fid = get_fidelity(fidelity)
    names: list[str] = []
    qs = [f"{float(v):+.2f}" for v in _QUANTILES]
    stats = ["f_mean", "f_std", "f_skew", "f_absmax", "df_mean", "df_std", "df_skew", "df_absmax", "finite",
             "df_zero", "cov_f_z"]
    layers = len(fid.model.widths)
    for g in groups:
        if g == "output":
            names += [f"f({q})" for q in qs] + [f"df({q})" for q in qs] + stats
        elif g == "init":
            names += [f"L{i + 1}_{s}" for i in range(layers) for s in ("std", "preact_std", "saturated", "dead")]
            names += ["grad_norm_L1", "loss0", "logit_std"]
        else:
            names += [f"W{i + 1}_{s}" for i in range(layers + 1)
                      for s in [*(f"eig{j + 1}" for j in range(_FISHER_TOP)), "trace", "eff_rank"]]
    return names
