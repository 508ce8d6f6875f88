"""``batchnorm``: the lecture's 7-layer sigmoid network on MNIST with weights 0.1*randn, trained
without normalization, with Batch Normalization (Ioffe & Szegedy 2015) and with Layer
Normalization (Ba, Kiros & Hinton 2016), normalization placed before each sigmoid.

Tracked: the training loss, and the 15th/50th/85th percentiles of the input to the sigmoid at
layers 1, 4 and 7 over training (Ioffe & Szegedy's Figure 1 b-c). Checked: in train mode BN's
normalized pre-activations x_hat = (y - beta) / gamma have mean 0 and variance 1 per unit over the
mini-batch; BN cannot train on a batch of one (the lecture's "limitations"), LN can.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ._common import (Experiment, verdict, Context, ExperimentResult, accuracy, deep_mlp, hidden_preacts, mnist01, pyplot, save,
                      sgd_train, write_command, write_csv, write_markdown)

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "7-layer sigmoid net on MNIST, weights 0.1*randn: no norm vs BatchNorm vs LayerNorm (loss, pre-"
    "activation percentiles)"
)


NORMS = ("none", "batch", "layer")
TRACK = (1, 4, 7)


def bn_moments(model: nn.Module, x: torch.Tensor) -> dict[str, float]:
    """Per-unit mean and variance of x_hat = (BN(z) - beta) / gamma over the batch ``x``, in train
    mode, worst unit of all BN layers (the running statistics are restored afterwards)."""
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm1d)]
    saved = [(m.running_mean.clone(), m.running_var.clone(), m.num_batches_tracked.clone()) for m in bns]
    outs: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, i, o: outs.append(((o - mod.bias) / mod.weight).detach()))
             for m in bns]
    was = model.training
    model.train()
    with torch.no_grad():
        model(x)
    model.train(was)
    for h in hooks:
        h.remove()
    for m, (rm, rv, nb) in zip(bns, saved):
        m.running_mean.copy_(rm), m.running_var.copy_(rv), m.num_batches_tracked.copy_(nb)
    if not outs:
        return {}
    means = torch.cat([o.mean(0) for o in outs])
    vars_ = torch.cat([o.var(0, unbiased=False) for o in outs])
    return {"max_abs_mean": means.abs().max().item(), "min_var": vars_.min().item(), "max_var": vars_.max().item()}


def run(ctx: Context) -> ExperimentResult:
    x, y, x_test, y_test = mnist01(ctx)
    num_classes = int(y.max()) + 1
    widths = (100, 50, 50, 50, 50, 50, 50)
    steps, every = (60, 20) if ctx.quick else (600, 25)
    lr, batch = 0.5, 128
    probe = x[-512:]
    curves: dict[str, list[float]] = {}
    pct: dict[str, list[dict[str, Any]]] = {}
    summary, moments = [], {}
    for norm in NORMS:
        model = deep_mlp(x.shape[1], widths, num_classes, "sigmoid", 0.1, norm=norm, seed=ctx.seed)
        if norm == "batch":
            moments["init"] = bn_moments(model, x[:batch])
        rec: list[dict[str, Any]] = []

        def probe_fn(step: int, model: nn.Module = model, rec: list[dict[str, Any]] = rec) -> None:
            with torch.no_grad():
                state = {k: v.clone() for k, v in model.state_dict().items() if "running" in k or "batches" in k}
                pre, _ = hidden_preacts(model, probe)  # train mode: what the sigmoid sees in training
                model.load_state_dict(state, strict=False)
            for k in TRACK:
                q = torch.quantile(pre[k - 1].flatten(), torch.tensor([0.15, 0.5, 0.85]))
                rec.append({"norm": norm, "step": step, "layer": k, "p15": q[0].item(), "p50": q[1].item(),
                            "p85": q[2].item()})

        losses = sgd_train(model, x, y, lr=lr, batch_size=batch, steps=steps, seed=ctx.seed,
                           probe=probe_fn, probe_every=every)
        curves[norm], pct[norm] = losses, rec
        if norm == "batch":
            moments["trained"] = bn_moments(model, x[:batch])
        ten = max(1, len(losses) // 10)
        summary.append({"norm": norm, "loss first 10%": sum(losses[:ten]) / ten,
                        "loss last 10%": sum(losses[-ten:]) / ten,
                        "test accuracy": accuracy(model, x_test, y_test)})
        # The lecture's limitation: a batch of one has no batch statistics.
        one = deep_mlp(x.shape[1], widths, num_classes, "sigmoid", 0.1, norm=norm, seed=ctx.seed)
        try:
            out = torch.stack([one(x[i : i + 1])[0] for i in range(2)])
            summary[-1]["batch of 1 (train mode)"] = ("works" if (out[0] - out[1]).abs().max() > 0
                                                      else "output ignores the input")
        except ValueError as e:  # PyTorch refuses: "Expected more than 1 value per channel when training"
            summary[-1]["batch of 1 (train mode)"] = "error: " + str(e).split(",")[0]
    ctx.out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(ctx.out / "results.csv", summary),
             write_csv(ctx.out / "losses.csv", [{"norm": n, "iteration": i, "loss": v}
                                                 for n in NORMS for i, v in enumerate(curves[n])]),
             write_csv(ctx.out / "percentiles.csv", [r for n in NORMS for r in pct[n]]),
             write_csv(ctx.out / "bn_moments.csv", [{"when": k, **v} for k, v in moments.items()])]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.6))
    for i, n in enumerate(NORMS):
        ax.plot(curves[n], color=f"C{i}", lw=1, label={"none": "no normalization", "batch": "BatchNorm",
                                                        "layer": "LayerNorm"}[n])
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss (mini-batch)")
    ax.set_title(f"7 sigmoid layers (100, 6x50), W = 0.1*randn, GD lr {lr}, batch {batch}")
    ax.legend()
    fig.tight_layout()
    files.append(save(fig, ctx.out / "loss_curves.png"))
    fig, axes = plt.subplots(1, len(TRACK), figsize=(12, 3.4), sharey=True)
    for ax, k in zip(axes, TRACK):
        for i, n in enumerate(NORMS):
            r = [p for p in pct[n] if p["layer"] == k]
            st = [p["step"] for p in r]
            ax.plot(st, [p["p50"] for p in r], color=f"C{i}", label=n)
            ax.fill_between(st, [p["p15"] for p in r], [p["p85"] for p in r], color=f"C{i}", alpha=0.2)
        ax.set_title(f"input to the sigmoid at h{k}: 15/50/85th percentiles", fontsize=9)
        ax.set_xlabel("iteration")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    files.append(save(fig, ctx.out / "percentiles.png"))

    s = {r["norm"]: r for r in summary}
    m1 = moments["trained"]
    ln, lb, ll = (float(s[n]["loss last 10%"]) for n in NORMS)
    holds = {"BN trains faster than no normalization": lb < ln,
             "BN normalizes (|mean| < 1e-4, |var - 1| < 1e-2)": m1["max_abs_mean"] < 1e-4 and abs(m1["min_var"] - 1) < 1e-2
             and abs(m1["max_var"] - 1) < 1e-2}
    finding = (
        f"batchnorm (MNIST, 7 sigmoid layers 100-6x50, W = 0.1*randn, {steps} iterations of GD lr {lr}, batch "
        f"{batch}): training loss over the last 10% of iterations {ln:.3f} without normalization, {lb:.3f} with "
        f"BatchNorm and {ll:.3f} with LayerNorm (test accuracy {float(s['none']['test accuracy']):.3f} / "
        f"{float(s['batch']['test accuracy']):.3f} / {float(s['layer']['test accuracy']):.3f}); in train mode BN's "
        f"normalized pre-activations had per-unit |mean| <= {m1['max_abs_mean']:.1e} and variance in "
        f"[{m1['min_var']:.4f}, {m1['max_var']:.4f}] after training; with a batch of one, BN: "
        f"{s['batch']['batch of 1 (train mode)']}, LN: {s['layer']['batch of 1 (train mode)']}. "
        + verdict(holds)
    )
    files.append(write_markdown(ctx.out / "results.md", "Batch normalization (and layer normalization)", summary,
                                finding, ["loss_curves.png", "percentiles.png"]))
    files.append(write_command(ctx, "batchnorm"))
    metrics = {"summary": summary, "bn_moments": moments, "curves": curves, "holds": holds}
    return ExperimentResult("batchnorm", finding, metrics, files)


EXPERIMENT = Experiment("batchnorm", SUMMARY, run)
