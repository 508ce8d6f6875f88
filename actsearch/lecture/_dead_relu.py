"""``dead-relu``: the lecture's dying-ReLU problem (module 7.3). A ReLU unit whose pre-activation
w.x + b is negative for every input outputs 0 and passes back a zero gradient, so w and b never
change again: it is dead for good. "In practice a large fraction of ReLU units can die if the
learning rate is set too high", and a large negative bias kills them from the start. Leaky ReLU
(slope 0.1 for x < 0, Maas et al. 2013) and ELU (Clevert et al. 2016) keep a nonzero gradient.

A unit counts as *dead* when its activation's derivative is 0 on every training example (for
ReLU: a <= 0 everywhere), and as *inactive* when a <= 0 on every example (dead for ReLU, still
trainable for Leaky ReLU/ELU).
"""
from __future__ import annotations

import math

import torch

from ._common import (Experiment, verdict, Context, ExperimentResult, accuracy, deep_mlp, hidden_preacts, mnist01, pyplot, save,
                      sgd_train, write_command, write_csv, write_markdown)

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "fraction of dead ReLU units after training with a too-high learning rate or a negative bias; "
    "Leaky ReLU/ELU do not die"
)


ACTS = ("relu", "leaky_relu", "elu")


@torch.no_grad()
def dead_fractions(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, float]:
    """(dead, inactive) fraction of all hidden units of ``model`` over the inputs ``x``."""
    pre, _ = hidden_preacts(model, x)
    dead = inactive = total = 0
    for a, act in zip(pre, model.acts):
        z = a.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(act(z).sum(), z)
        dead += int((g == 0).all(0).sum())
        inactive += int((a <= 0).all(0).sum())
        total += a.shape[1]
    return dead / total, inactive / total


def run(ctx: Context) -> ExperimentResult:
    x, y, x_test, y_test = mnist01(ctx)
    num_classes = int(y.max()) + 1
    if ctx.quick:
        widths, steps, lrs, biases = (32, 32), 60, (0.01, 3.0), (0.0, -3.0)
        x, y = x[:1024], y[:1024]
    else:
        widths, steps, lrs, biases = (100, 100, 100), 400, (0.01, 0.1, 0.5, 1.0, 2.0), (0.0, -0.5, -1.0, -2.0)
    batch, base_lr = 128, 0.1
    rows = []
    runs = [("lr", lr, 0.0, lr) for lr in lrs] + [("bias", b, b, base_lr) for b in biases]
    for sweep, value, bias, lr in runs:
        for act in ACTS:
            model = deep_mlp(x.shape[1], widths, num_classes, act, "he", bias=bias, seed=ctx.seed)
            d0, i0 = dead_fractions(model, x)
            losses = sgd_train(model, x, y, lr=lr, batch_size=batch, steps=steps, seed=ctx.seed)
            ok = bool(losses) and math.isfinite(losses[-1])
            d1, i1 = dead_fractions(model, x) if ok else (float("nan"), float("nan"))
            rows.append({"sweep": sweep, "value": value, "lr": lr, "bias": bias, "activation": act,
                         "dead_at_init": d0, "dead_after": d1, "inactive_after": i1,
                         "status": "ok" if ok else "diverged",
                         "test_accuracy": accuracy(model, x_test, y_test) if ok else float("nan")})
    ctx.out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(ctx.out / "results.csv", rows)]

    def series(sweep: str, act: str, key: str) -> tuple[list[float], list[float]]:
        r = [q for q in rows if q["sweep"] == sweep and q["activation"] == act]
        return [float(q["value"]) for q in r], [float(q[key]) for q in r]

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for ax, sweep, label in ((axes[0], "lr", "learning rate (bias 0)"),
                             (axes[1], "bias", f"initial bias (lr {base_lr})")):
        for i, act in enumerate(ACTS):
            xs, ys = series(sweep, act, "dead_after")
            ax.plot(xs, ys, "o-", color=f"C{i}", label=f"{act}: dead")
            xs, ys = series(sweep, act, "inactive_after")
            if act != "relu":  # for ReLU inactive == dead
                ax.plot(xs, ys, "x:", color=f"C{i}", label=f"{act}: inactive (a<=0, still learns)")
        if sweep == "lr":
            ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"fraction of hidden units after {steps} steps")
        ax.set_ylim(-0.03, 1.03)
        ax.legend(fontsize=7)
    fig.suptitle(f"MLP 784-{'-'.join(map(str, widths))}-10, He init, GD batch {batch} on MNIST", fontsize=10)
    fig.tight_layout()
    files.append(save(fig, ctx.out / "dead_units.png"))

    lr_x, lr_dead = series("lr", "relu", "dead_after")
    b_x, b_dead = series("bias", "relu", "dead_after")
    def worst(act: str, key: str) -> float:
        v = [float(q[key]) for q in rows if q["activation"] == act and q["status"] == "ok"]
        return max(v) if v else float("nan")

    fin = [d for d in lr_dead if d == d]
    holds = {"ReLU deaths rise with the learning rate": len(fin) >= 2 and fin[-1] > fin[0],
             "ReLU deaths rise with a negative bias": b_dead[-1] > b_dead[0],
             "Leaky ReLU does not die": worst("leaky_relu", "dead_after") == 0.0,
             "ELU does not die": worst("elu", "dead_after") == 0.0}
    lr_text = ", ".join(f"{v:g}: {d:.0%}" if d == d else f"{v:g}: diverged" for v, d in zip(lr_x, lr_dead))
    b_text = ", ".join(f"{v:g}: {d:.0%}" for v, d in zip(b_x, b_dead))
    diverged = sorted({f"{q['activation']} at lr {q['lr']:g}" for q in rows if q["status"] != "ok"})
    elu_note = "" if holds["ELU does not die"] else (
        " (ELU's exp(a) underflows to exactly 0 in float32 once a < -104, which the largest learning rates "
        "reach)")
    finding = (
        f"dead-relu (MNIST, MLP 784-{'-'.join(map(str, widths))}-10, He init, {steps} steps of GD batch {batch}): "
        f"the fraction of dead ReLU units after training by learning rate was {lr_text}; by initial bias (lr "
        f"{base_lr}) {b_text}; at most {worst('leaky_relu', 'dead_after'):.0%} of Leaky ReLU units and "
        f"{worst('elu', 'dead_after'):.0%} of ELU units were dead in any run{elu_note}, though up to "
        f"{max(worst('leaky_relu', 'inactive_after'), worst('elu', 'inactive_after')):.0%} were inactive "
        f"(a <= 0 on all inputs, still receiving gradient)"
        + (f"; diverged: {', '.join(diverged)}" if diverged else "") + ". "
        + verdict(holds)
    )
    files.append(write_markdown(ctx.out / "results.md", "Dead ReLUs", rows, finding, ["dead_units.png"]))
    files.append(write_command(ctx, "dead-relu"))
    return ExperimentResult("dead-relu", finding, {"rows": rows, "holds": holds}, files)


EXPERIMENT = Experiment("dead-relu", SUMMARY, run)
