"""``forward-stats``: the lecture's forward-pass thought experiment (module 7.4).

1000 points drawn from a unit Gaussian in R^500 go through 5 bias-free layers of 500 units,
``a = h W`` and ``h = f(a)``, for f in {sigmoid, tanh, ReLU} and W drawn as 0.01*randn ("small":
activations shrink to a constant layer by layer), randn ("large": sigmoid/tanh saturate, ReLU
explodes), randn/sqrt(fan_in) (Xavier: Var(a) = n Var(w) Var(h) is kept at 1, Glorot & Bengio
2010 / LeCun 1998) and randn*sqrt(2/fan_in) (He et al. 2015: the factor 2 makes up for ReLU
zeroing half of its inputs). The same underlying randn draws are scaled for every init, so only
the scale differs between the rows of a figure.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from ..evaluation import layer_statistics
from ._common import Experiment, Context, ExperimentResult, pyplot, save, write_command, write_csv, write_markdown

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "1000 N(0,1) inputs through 5 layers of 500: activation histograms per layer for "
    "sigmoid/tanh/ReLU under 0.01*randn, randn, Xavier, He"
)


ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": torch.relu,
}
# Maximum slope of each activation: "gradient vanished" means f'(a) < 1% of it.
MAX_SLOPE = {"sigmoid": 0.25, "tanh": 1.0, "relu": 1.0}
INITS: dict[str, Callable[[int], float]] = {  # name -> std as a function of fan_in
    "0.01*randn": lambda n: 0.01,
    "randn": lambda n: 1.0,
    "xavier": lambda n: 1.0 / math.sqrt(n),
    "he": lambda n: math.sqrt(2.0 / n),
}


def slope(act: str, a: torch.Tensor) -> torch.Tensor:
    if act == "sigmoid":
        s = torch.sigmoid(a)
        return s * (1 - s)
    if act == "tanh":
        return 1 - torch.tanh(a) ** 2
    return (a > 0).to(a.dtype)


def forward_stats(n_points: int = 1000, width: int = 500, depth: int = 5, seed: int = 0
                  ) -> tuple[list[dict[str, object]], dict[tuple[str, str], list[torch.Tensor]]]:
    """Per-layer statistics and the activations themselves, for every (activation, init)."""
    g = torch.Generator().manual_seed(seed)
    data = torch.randn(n_points, width, generator=g, dtype=torch.float64)
    base = [torch.randn(width, width, generator=g, dtype=torch.float64) for _ in range(depth)]
    rows: list[dict[str, object]] = []
    acts: dict[tuple[str, str], list[torch.Tensor]] = {}
    for act, f in ACTS.items():
        for init, std in INITS.items():
            h, hs = data, []
            for k in range(depth):
                a = h @ (base[k] * std(width))
                h = f(a)
                hs.append(h.float())
                # the same per-layer statistics the surrogate's features read at a child's init
                rows.append({"activation": act, "init": init, "layer": k + 1,
                             **layer_statistics(a, h, slope(act, a), MAX_SLOPE[act])})
            acts[(act, init)] = hs
    return rows, acts


def _stat(rows: list[dict[str, object]], act: str, init: str, layer: int, key: str) -> float:
    return next(float(r[key]) for r in rows if r["activation"] == act and r["init"] == init and r["layer"] == layer)  # type: ignore[arg-type]


def run(ctx: Context) -> ExperimentResult:
    n, width, depth = (200, 100, 5) if ctx.quick else (1000, 500, 5)
    rows, acts = forward_stats(n, width, depth, ctx.seed)
    ctx.out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(ctx.out / "results.csv", rows)]
    plt = pyplot()
    figs = []
    for act in ACTS:
        fig, axes = plt.subplots(len(INITS), depth, figsize=(2.3 * depth, 1.9 * len(INITS)), squeeze=False)
        for i, init in enumerate(INITS):
            for k in range(depth):
                ax = axes[i][k]
                v = acts[(act, init)][k].flatten().numpy()
                rng = {"sigmoid": (0, 1), "tanh": (-1, 1)}.get(act)
                ax.hist(v, bins=50, range=rng, color=f"C{i}")
                ax.set_yticks([])
                ax.tick_params(labelsize=6)
                ax.set_title(f"layer {k + 1}: std {v.std():.2g}", fontsize=7)
                if k == 0:
                    ax.set_ylabel(init, fontsize=8)
        fig.suptitle(f"{act}: activations of each layer (1 row per init, {n} inputs in R^{width})", fontsize=10)
        fig.tight_layout()
        figs.append(f"hist_{act}.png")
        files.append(save(fig, ctx.out / figs[-1]))
    fig, axes = plt.subplots(1, len(ACTS), figsize=(12, 3.4))
    for ax, act in zip(axes, ACTS):
        for i, init in enumerate(INITS):
            stds = [_stat(rows, act, init, k + 1, "std") for k in range(depth)]
            ax.semilogy(range(1, depth + 1), [max(s, 1e-30) for s in stds], "o-", color=f"C{i}", label=init)
        ax.set_title(act)
        ax.set_xlabel("layer")
        ax.set_xticks(range(1, depth + 1))
    axes[0].set_ylabel("std of activations")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    figs.append("std_per_layer.png")
    files.append(save(fig, ctx.out / figs[-1]))

    def ratio(act: str, init: str) -> float:  # variance at the last layer / at the first
        return (_stat(rows, act, init, depth, "std") / _stat(rows, act, init, 1, "std")) ** 2

    s = lambda a, i, k, key="std": _stat(rows, a, i, k, key)  # noqa: E731
    tanh_x = [s("tanh", "xavier", k) for k in range(1, depth + 1)]
    claims = {  # the lecture's four statements, each checked against this run's numbers
        "0.01*randn shrinks tanh activations": s("tanh", "0.01*randn", depth) < 0.01 * s("tanh", "0.01*randn", 1),
        "randn saturates most tanh units": s("tanh", "randn", depth, "frac_grad_vanished") > 0.5,
        "Xavier keeps tanh's spread": min(tanh_x) > 0.3 * max(tanh_x),
        "He (not Xavier) keeps ReLU's variance": 0.5 < ratio("relu", "he") < 2 and ratio("relu", "xavier") < 0.5,
    }
    failed = [c for c, ok in claims.items() if not ok]
    verdict = "all four of the lecture's claims hold" if not failed else f"NOT reproduced: {'; '.join(failed)}"
    finding = (
        f"forward-stats ({n} inputs, {depth} layers of {width}): with 0.01*randn the activation std falls "
        f"from {s('tanh', '0.01*randn', 1):.3g} (layer 1) to {s('tanh', '0.01*randn', depth):.2g} (layer {depth}) "
        f"for tanh and to {s('relu', '0.01*randn', depth):.2g} for ReLU, and sigmoid outputs collapse to "
        f"{s('sigmoid', '0.01*randn', depth, 'mean'):.3f} +- {s('sigmoid', '0.01*randn', depth):.2g}; with randn "
        f"{100 * s('tanh', 'randn', depth, 'frac_grad_vanished'):.0f}% of tanh and "
        f"{100 * s('sigmoid', 'randn', depth, 'frac_grad_vanished'):.0f}% of sigmoid units at layer {depth} are "
        f"saturated (slope < 1% of max) and ReLU's std explodes to {s('relu', 'randn', depth):.3g}; Xavier keeps "
        f"tanh's std between {min(s('tanh', 'xavier', k) for k in range(1, depth + 1)):.2f} and "
        f"{max(s('tanh', 'xavier', k) for k in range(1, depth + 1)):.2f} but lets ReLU's variance shrink "
        f"x{ratio('relu', 'xavier'):.3f} over {depth - 1} layers, while He keeps it at x{ratio('relu', 'he'):.2f} "
        f"({verdict})."
    )
    summary = []
    for act in ACTS:
        for init in INITS:
            summary.append({"activation": act, "init": init,
                            **{f"std L{k}": s(act, init, k) for k in range(1, depth + 1)},
                            f"saturated L{depth}": s(act, init, depth, "frac_grad_vanished"),
                            f"var L{depth}/L1": ratio(act, init)})
    files.append(write_markdown(ctx.out / "results.md", "Forward-pass statistics", summary, finding, figs,
                                notes="`saturated` = fraction of units whose slope f'(a) is below 1% of its "
                                      "maximum (for ReLU: a <= 0)."))
    files.append(write_command(ctx, "forward-stats"))
    metrics = {"rows": rows, "claims": claims, "var_ratio": {(a, i): ratio(a, i) for a in ACTS for i in INITS}}
    return ExperimentResult("forward-stats", finding, metrics, files)


EXPERIMENT = Experiment("forward-stats", SUMMARY, run)
