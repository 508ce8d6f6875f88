"""``symmetry``: the lecture's symmetry-breaking problem (module 7.4). If every weight of a layer
starts at the same value, every unit of that layer computes the same a and h, receives the same
gradient and takes the same update, so the rows of each hidden weight matrix stay identical for
the whole of training: a layer of n units acts as one unit. Random init (Xavier) breaks it.
"""
from __future__ import annotations

import torch

from ._common import (Experiment, verdict, Context, ExperimentResult, accuracy, deep_mlp, mnist01, pyplot, save, sgd_train,
                      write_command, write_csv, write_markdown)

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "zero/constant init: the rows of each hidden weight matrix stay identical through training "
    "(Xavier breaks the symmetry)"
)


INITS: dict[str, str | float] = {"zeros": "zeros", "constant 0.1": "constant", "xavier": "xavier"}


def row_stats(w: torch.Tensor) -> dict[str, float]:
    """How different the rows (units) of a weight matrix are: the largest entry-wise gap to row 0,
    the mean row norm (to show the weights did move), and the number of distinct rows."""
    gap = (w - w[0]).abs().max().item()
    scale = w.abs().max().item() or 1.0
    distinct = torch.unique(torch.round(w / scale * 1e6), dim=0).shape[0]  # equal up to 1e-6 relative
    return {"max_row_gap": gap, "mean_row_norm": w.norm(dim=1).mean().item(), "distinct_rows": float(distinct)}


def run(ctx: Context) -> ExperimentResult:
    x, y, x_test, y_test = mnist01(ctx)
    num_classes = int(y.max()) + 1
    widths, steps = ((16, 16), 40) if ctx.quick else ((64, 64), 400)
    lr, batch = 0.5, 128
    rows, curves = [], {}
    for name, init in INITS.items():
        model = deep_mlp(x.shape[1], widths, num_classes, "sigmoid", init, seed=ctx.seed)
        if init == "constant":  # init_scaled_ passes no value: set the constant here
            with torch.no_grad():
                for m in model.modules():
                    if isinstance(m, torch.nn.Linear):
                        m.weight.fill_(0.1)
        curves[name] = sgd_train(model, x, y, lr=lr, batch_size=batch, steps=steps, seed=ctx.seed)
        acc = accuracy(model, x_test, y_test)
        for k, layer in enumerate(model.layers):
            rows.append({"init": name, "layer": k + 1, "units": layer.out_features,
                         **row_stats(layer.weight.detach()), "test_accuracy": acc,
                         "final_loss": sum(curves[name][-20:]) / len(curves[name][-20:])})
    ctx.out.mkdir(parents=True, exist_ok=True)
    files = [write_csv(ctx.out / "results.csv", rows)]

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, name in enumerate(INITS):
        axes[0].plot(curves[name], color=f"C{i}", lw=1, label=name)
        r = [q for q in rows if q["init"] == name]
        axes[1].bar([j + 0.27 * (i - 1) for j in range(len(r))], [q["distinct_rows"] for q in r], width=0.27,
                    color=f"C{i}", label=name)
    axes[0].set_xlabel("iteration")
    axes[0].set_ylabel("training loss")
    axes[0].set_title(f"sigmoid 784-{'-'.join(map(str, widths))}-10, GD lr {lr}")
    axes[0].legend()
    axes[1].set_xticks(range(len(widths)), [f"hidden layer {k + 1}" for k in range(len(widths))])
    axes[1].set_ylabel(f"distinct rows of W after {steps} steps")
    axes[1].set_title("units that are really different")
    axes[1].legend()
    fig.tight_layout()
    files.append(save(fig, ctx.out / "symmetry.png"))

    def get(name: str, key: str) -> list[float]:
        return [float(q[key]) for q in rows if q["init"] == name]

    sym = {n: max(get(n, "distinct_rows")) == 1 for n in ("zeros", "constant 0.1")}
    holds = {"zero/constant init stays symmetric": all(sym.values()),
             "Xavier breaks it": min(get("xavier", "distinct_rows")) == min(widths)}
    finding = (
        f"symmetry (MNIST, sigmoid 784-{'-'.join(map(str, widths))}-10, {steps} iterations of GD lr {lr}): after "
        f"training from all-zero weights the rows of each hidden W differ by at most "
        f"{max(get('zeros', 'max_row_gap')):.1e} although they moved to a mean norm of "
        f"{min(get('zeros', 'mean_row_norm')):.3g}-{max(get('zeros', 'mean_row_norm')):.3g} "
        f"({max(get('zeros', 'distinct_rows')):.0f} distinct row(s) per layer; constant 0.1: "
        f"{max(get('constant 0.1', 'distinct_rows')):.0f}), so each layer acts as a single unit (test accuracy "
        f"{get('zeros', 'test_accuracy')[0]:.3f} and {get('constant 0.1', 'test_accuracy')[0]:.3f}), while Xavier "
        f"ends with {min(get('xavier', 'distinct_rows')):.0f} distinct rows of {min(widths)} and test accuracy "
        f"{get('xavier', 'test_accuracy')[0]:.3f}. "
        + verdict(holds, "The lecture's claim holds.")
    )
    files.append(write_markdown(ctx.out / "results.md", "Symmetry of neurons under constant initialization", rows,
                                finding, ["symmetry.png"]))
    files.append(write_command(ctx, "symmetry"))
    return ExperimentResult("symmetry", finding, {"rows": rows, "holds": holds, "curves": curves}, files)


EXPERIMENT = Experiment("symmetry", SUMMARY, run)
