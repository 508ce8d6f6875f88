"""``relu-init``: the lecture's deep ReLU network (h1 in R^100, h2..h7 in R^50) on MNIST with
Xavier (randn/sqrt(fan_in)) vs He (randn/sqrt(fan_in/2)) weights.

Var(a_k) = n Var(w) E[h_{k-1}^2] and a ReLU passes only half of a symmetric input's second
moment, so with Xavier the activations shrink by ~2x in variance per layer; He et al. (2015,
"Delving deep into rectifiers") put the missing factor 2 into the weights' variance.
"""
from __future__ import annotations

import torch

from ._common import (Experiment, verdict, Context, ExperimentResult, accuracy, deep_mlp, hidden_preacts, mnist01, pyplot, save,
                      sgd_train, write_command, write_csv, write_markdown)

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "deep ReLU net on MNIST (100, then 6x50): Xavier vs He, activation spread per layer and loss "
    "curves"
)


INITS = ("xavier", "he")


def run(ctx: Context) -> ExperimentResult:
    x, y, x_test, y_test = mnist01(ctx)
    num_classes = int(y.max()) + 1
    widths = (100, 50, 50, 50, 50, 50, 50)
    steps, lr, batch = (60, 0.05, 128) if ctx.quick else (400, 0.05, 128)
    # Statistics are ratios to layer 1, so the input scale ([0, 1] pixels, not Var(x) = 1 as the
    # variance argument assumes) cancels out.
    probe = x[:1000]
    rows, stats, curves, summary = [], {}, {}, []
    for init in INITS:
        model = deep_mlp(x.shape[1], widths, num_classes, "relu", init, seed=ctx.seed)
        with torch.no_grad():
            _, post = hidden_preacts(model, probe)
        stats[init] = [h.std().item() for h in post]
        hists = [h.flatten() for h in post]
        losses = sgd_train(model, x, y, lr=lr, batch_size=batch, steps=steps, seed=ctx.seed)
        curves[init] = losses
        rows += [{"init": init, "layer": k + 1, "std_at_init": s, "second_moment_at_init": (h ** 2).mean().item(),
                  "frac_zero_at_init": (h == 0).float().mean().item()}
                 for k, (s, h) in enumerate(zip(stats[init], hists))]
        ten = max(1, steps // 10)
        summary.append({"init": init, **{f"std h{k}": stats[init][k - 1] for k in (1, 4, 7)},
                        "std h7/h1": stats[init][-1] / stats[init][0],
                        "loss first 10%": sum(losses[:ten]) / ten, "loss last 10%": sum(losses[-ten:]) / ten,
                        "test accuracy": accuracy(model, x_test, y_test)})
        curves[init + "_hists"] = hists  # type: ignore[assignment]
    ctx.out.mkdir(parents=True, exist_ok=True)
    loss_rows = [{"init": i, "iteration": t, "loss": v} for i in INITS for t, v in enumerate(curves[i])]
    files = [write_csv(ctx.out / "results.csv", rows), write_csv(ctx.out / "losses.csv", loss_rows),
             write_csv(ctx.out / "summary.csv", summary)]

    plt = pyplot()
    fig, axes = plt.subplots(len(INITS), 3, figsize=(10, 3.0 * len(INITS)), squeeze=False)
    for r, init in enumerate(INITS):
        hists = curves[init + "_hists"]
        for c, k in enumerate((1, 4, 7)):
            ax = axes[r][c]
            v = hists[k - 1]
            ax.hist(v[v > 0].numpy(), bins=60, color=f"C{r}")  # the zeros (half of all) would hide the rest
            ax.set_title(f"{init}: h{k} (nonzero part), std {stats[init][k - 1]:.3g}", fontsize=9)
            ax.set_yticks([])
    fig.suptitle("Deep ReLU net (100, 6x50) on MNIST at init: activations of layers 1, 4, 7", fontsize=10)
    fig.tight_layout()
    files.append(save(fig, ctx.out / "activations.png"))
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, init in enumerate(INITS):
        axes[0].plot(range(1, len(widths) + 1), stats[init], "o-", color=f"C{i}", label=init)
        axes[1].plot(curves[init], color=f"C{i}", lw=1, label=init)
    axes[0].set_yscale("log")
    axes[0].set_xlabel("hidden layer")
    axes[0].set_ylabel("std of activations at init")
    axes[0].legend()
    axes[1].set_xlabel("iteration")
    axes[1].set_ylabel("training loss (mini-batch)")
    axes[1].set_title(f"GD lr {lr}, batch {batch}")
    axes[1].legend()
    fig.tight_layout()
    files.append(save(fig, ctx.out / "std_and_loss.png"))

    s = {r["init"]: r for r in summary}
    xr, hr = float(s["xavier"]["std h7/h1"]), float(s["he"]["std h7/h1"])
    xl, hl = float(s["xavier"]["loss last 10%"]), float(s["he"]["loss last 10%"])
    holds = {"Xavier shrinks ReLU activations with depth": xr < 0.5,
             "He keeps them": 0.5 < hr < 2.0, "He trains faster": hl < xl}
    finding = (
        f"relu-init (MNIST, ReLU net 784-100-6x50-10, {steps} iterations of GD lr {lr}, batch {batch}): at init the "
        f"activation std of h7 is {xr:.3f}x that of h1 with Xavier (theory: 2^-3 = 0.125) and {hr:.2f}x with He "
        f"(theory: 1); the training loss averaged over the last 10% of iterations is {xl:.3f} with Xavier vs "
        f"{hl:.3f} with He (test accuracy {float(s['xavier']['test accuracy']):.3f} vs "
        f"{float(s['he']['test accuracy']):.3f}). "
        + verdict(holds)
    )
    files.append(write_markdown(ctx.out / "results.md", "Xavier vs He for a deep ReLU net", summary, finding,
                                ["activations.png", "std_and_loss.png"]))
    files.append(write_command(ctx, "relu-init"))
    metrics = {"summary": summary, "std_at_init": stats, "holds": holds,
               "curves": {i: curves[i] for i in INITS}}
    return ExperimentResult("relu-init", finding, metrics, files)


EXPERIMENT = Experiment("relu-init", SUMMARY, run)
