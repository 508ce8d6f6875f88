"""``depth``: test accuracy against the depth of a plain fully connected net, per activation, with
and without BatchNorm — the Swish paper's depth figure (Ramachandran, Zoph & Le 2017, v1 "Swish: a
Self-Gated Activation Function", fig. 5: on MNIST, Swish pulls away from ReLU as a plain net grows
past ~40 layers) and the lecture's subject: why deep networks are hard to train, and what
BatchNorm does about it.

Every net is the ``deep`` fidelity's child (64 units per layer, He init, Adam 1e-3 with a cosine
decay, 3,000 steps on the larger generated MNIST-1D) with its depth varied, trained through the
same population engine a search uses; the activations are the ones the paper compared with.
"""
from __future__ import annotations

import math
import time

from ..evaluation import get_fidelity, mean_std, train_population
from ..expressions import parse
from ._common import Context, Experiment, Journal, ExperimentResult, pyplot, save, write_command, write_csv, write_markdown

#: What `actsearch experiment --list` prints.
SUMMARY = ("test accuracy vs depth (2-48 layers) of a plain MLP for ReLU, Swish, GELU, ELU, tanh, SELU, "
           "leaky ReLU, with and without BatchNorm (the Swish paper's depth figure)")

DEPTHS = (2, 4, 8, 16, 32, 48)
#: (label, expression or registered name): Swish as the paper's v1 ran it, x·σ(x) (SiLU).
ACTIVATIONS = (("ReLU", "relu"), ("Swish (SiLU)", "silu"), ("GELU", "gelu"), ("ELU", "elu"),
               ("tanh", "tanh"), ("SELU", "selu"), ("leaky ReLU", "leaky_relu"))
NORMS = ("none", "batch")
SEEDS = 3


def _mean_sd(values: list[float]) -> tuple[float, float]:
    """:func:`mean_std` of the finite values, NaN where it has none (the tables and the figure take NaN)."""
    mean, sd = mean_std(values)
    return (math.nan if mean is None else mean), (math.nan if sd is None else sd)


_COLS = ("norm", "depth", "activation", "expression", "seed", "status", "val_accuracy", "test_accuracy", "reason")
_NUMBERS = {"depth": int, "seed": int, "val_accuracy": float, "test_accuracy": float}


def run(ctx: Context) -> ExperimentResult:
    base = get_fidelity("smoke").replace(steps=60) if ctx.quick else get_fidelity("deep")
    depths = (2, 4) if ctx.quick else DEPTHS
    acts = ACTIVATIONS[:2] if ctx.quick else ACTIVATIONS
    n_seeds = 2 if ctx.quick else SEEDS
    seeds = [ctx.seed + s for s in range(n_seeds)]
    ctx.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    # 84 populations' worth of deep nets take hours on a shared 2-core machine: each finished
    # population is appended to a journal, and a rerun of the same command picks up from it.
    journal = Journal(ctx.out / f"runs.{base.name}.partial.csv", _COLS, ("norm", "depth", "activation", "seed"),
                      _NUMBERS)
    done = journal.done()
    runs: list[dict[str, object]] = []
    for norm in NORMS:
        for depth in depths:
            fid = base.vary(depth=str(depth), norm=norm)
            members = [(label, text, s) for label, text in acts for s in seeds]
            cached = [done.get((norm, depth, label, s)) for label, _, s in members]
            if all(cached):
                runs += cached  # type: ignore[arg-type]
                continue
            # The operator table's candidates (fused kernels on CPU), as a search trains them.
            results = train_population([parse(f"{text}(x)") for _, text, _ in members], fid,
                                       [s for _, _, s in members])
            for (label, text, s), r in zip(members, results):
                runs.append({"norm": norm, "depth": depth, "activation": label, "expression": text, "seed": s,
                             "status": r.status,
                             "val_accuracy": r.val_accuracy if r.val_accuracy is not None else math.nan,
                             "test_accuracy": r.test_accuracy if r.test_accuracy is not None else math.nan,
                             "reason": r.reason or ""})
                journal.append(runs[-1])
            line = ", ".join(f"{label} {_mean_sd([float(x['test_accuracy']) for x in runs[-len(members):] if x['activation'] == label])[0]:.3f}"
                             for label, _ in acts)
            print(f"  depth {depth:>2}, norm {norm:<5}: {line}  ({time.perf_counter() - t0:.0f}s)", flush=True)

    accs: dict[tuple[str, int, str], list[float]] = {}
    for r in runs:
        accs.setdefault((str(r["norm"]), int(r["depth"]), str(r["activation"])), []).append(float(r["test_accuracy"]))
    stats = {key: _mean_sd(values) for key, values in accs.items()}
    rows: list[dict[str, object]] = [
        {"norm": norm, "depth": depth, "activation": label, "test_mean": stats[norm, depth, label][0],
         "test_sd": stats[norm, depth, label][1],
         "ok_runs": f"{sum(math.isfinite(a) for a in accs[norm, depth, label])}/{len(accs[norm, depth, label])}"}
        for norm in NORMS for depth in depths for label, _ in acts]
    files = [write_csv(ctx.out / "runs.csv", runs), write_csv(ctx.out / "results.csv", rows)]

    def mean_of(norm: str, depth: int, label: str) -> float:
        return stats[norm, depth, label][0]

    plt = pyplot()
    fig, axes = plt.subplots(1, len(NORMS), figsize=(11, 4.2), sharey=True)
    for ax, norm in zip(axes, NORMS):
        for i, (label, _) in enumerate(acts):
            means = [mean_of(norm, d, label) for d in depths]
            sds = [stats[norm, d, label][1] for d in depths]
            ax.errorbar(depths, means, yerr=[0 if math.isnan(s) else s for s in sds], marker="o", ms=4,
                        capsize=3, lw=1.8 if label in ("ReLU", "Swish (SiLU)") else 1.0, color=f"C{i}", label=label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(list(depths), [str(d) for d in depths])
        ax.set_xlabel(f"hidden layers ({base.model.widths[0]} units each)")
        ax.set_title("no normalization" if norm == "none" else "BatchNorm before each activation")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"test accuracy (mean ± sd, {n_seeds} seeds)")
    axes[0].legend(fontsize=8)
    fig.suptitle(f"Plain MLP on {base.dataset}: accuracy vs depth ({base.steps} Adam steps)", fontsize=10)
    fig.tight_layout()
    files.append(save(fig, ctx.out / "depth.png"))

    # The finding, from the numbers: Swish − ReLU per depth, where the functions separate (the
    # spread of the panel), and whether BatchNorm closes the gap at the deepest net.
    swish, relu = acts[1][0], acts[0][0]
    gap = {(n, d): mean_of(n, d, swish) - mean_of(n, d, relu) for n in NORMS for d in depths}
    spread = {(n, d): max(mean_of(n, d, a) for a, _ in acts) - min(mean_of(n, d, a) for a, _ in acts)
              for n in NORMS for d in depths}
    deepest = depths[-1]
    best_plain = max(acts, key=lambda a: mean_of("none", deepest, a[0]))[0]
    finding = (
        f"depth ({len(acts)} activations x {len(depths)} depths x {n_seeds} seeds, with and without BatchNorm, "
        f"{time.perf_counter() - t0:.0f}s): Swish − ReLU (test) "
        + ", ".join(f"{d} layers {100 * gap[('none', d)]:+.1f}" for d in depths)
        + " points without normalization, "
        + ", ".join(f"{d} layers {100 * gap[('batch', d)]:+.1f}" for d in depths)
        + f" with BatchNorm; the activations' spread at {deepest} layers is {100 * spread[('none', deepest)]:.1f} points "
        f"without and {100 * spread[('batch', deepest)]:.1f} with BatchNorm; best at {deepest} layers without "
        f"normalization: {best_plain} ({mean_of('none', deepest, best_plain):.3f})."
    )
    table = [{"norm": r["norm"], "depth": r["depth"], "activation": r["activation"],
              "test ± sd": f"{float(r['test_mean']):.4f} ± {float(r['test_sd']):.4f}", "ok runs": r["ok_runs"]}
             for r in rows]
    files.append(write_markdown(ctx.out / "results.md", "Accuracy vs depth", table, finding, ["depth.png"]))
    files.append(write_command(ctx, "depth"))
    journal.remove()  # runs.csv now holds every run
    metrics = {"rows": rows, "runs": runs, "gap": gap, "spread": spread, "fidelity": base.name}
    return ExperimentResult("depth", finding, metrics, files)


EXPERIMENT = Experiment("depth", SUMMARY, run)
