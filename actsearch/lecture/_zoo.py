"""``activation-zoo``: every baseline activation of the lecture trained at the ``standard``
fidelity (the search's 1-D CNN on MNIST-1D) over several seeds, through the same
:func:`actsearch.evaluation.train_one` the search uses, so these numbers are the bar a discovered
function has to clear (Ramachandran, Zoph & Le 2017 compare against the same baselines)."""
from __future__ import annotations

import statistics
import time

import torch

from ..evaluation import get_fidelity, train_one
from ..expressions import describe_activations, get_activation, list_activations
from ._common import Experiment, Context, Journal, ExperimentResult, pyplot, save, write_command, write_csv, write_markdown

#: What `actsearch experiment --list` prints.
SUMMARY = (
    "every baseline activation trained at the 'standard' fidelity over 3 seeds: mean +- std table and"
    " a figure of their shapes"
)


QUICK_ACTIVATIONS = ("relu", "tanh", "sigmoid", "hard_threshold")


def _shapes_figure(names: list[str], path) -> None:  # type: ignore[no-untyped-def]
    """f (solid) and f' (dashed) of every activation at its initial parameters, one panel each."""
    plt = pyplot()
    cols = 5
    rows = (len(names) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 2.2 * rows), squeeze=False)
    x = torch.linspace(-4, 4, 401, dtype=torch.float64).view(-1, 1).requires_grad_(True)
    for ax, name in zip(axes.flat, names):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # maxout's pieces: the same drawing every run
            act = get_activation(name, 1).double()
        y = act(x)
        (dy,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
        dy = torch.zeros_like(x) if dy is None else dy
        xs = x.detach().view(-1).numpy()
        ax.plot(xs, y.detach().view(-1).numpy(), color="C0", lw=1.6)
        ax.plot(xs, dy.view(-1).numpy(), color="C1", lw=1.0, ls="--")
        ax.axhline(0, color="0.75", lw=0.6)
        ax.axvline(0, color="0.75", lw=0.6)
        ax.set_ylim(-2.2, 4.2)
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle("Baseline activations: f (solid) and f' (dashed), at initial parameters", fontsize=10)
    fig.tight_layout()
    save(fig, path)


_COLS = ("activation", "seed", "status", "val_accuracy", "test_accuracy", "seconds", "reason")
_NUMBERS = {"seed": int, "val_accuracy": float, "test_accuracy": float, "seconds": float}


def run(ctx: Context) -> ExperimentResult:
    fid = get_fidelity("smoke" if ctx.quick else "standard")
    names = list(QUICK_ACTIVATIONS) if ctx.quick else list_activations()
    n_seeds = 2 if ctx.quick else 3
    formulas = dict(describe_activations())
    runs: list[dict[str, object]] = []
    t0 = time.perf_counter()
    ctx.out.mkdir(parents=True, exist_ok=True)
    # ~57 trainings on a shared 2-core box can take an hour: each finished run is appended to a
    # journal, and a rerun of the same command picks up where an interrupted one stopped.
    journal = Journal(ctx.out / f"runs.{fid.name}.partial.csv", _COLS, ("activation", "seed"), _NUMBERS)
    done = journal.done()
    for name in names:
        for s in range(n_seeds):
            key = (name, ctx.seed + s)
            if key in done:
                runs.append(done[key])
                continue
            r = train_one(name, fid, seed=ctx.seed + s)
            runs.append({"activation": name, "seed": ctx.seed + s, "status": r.status,
                         "val_accuracy": r.val_accuracy if r.val_accuracy is not None else float("nan"),
                         "test_accuracy": r.test_accuracy if r.test_accuracy is not None else float("nan"),
                         "seconds": r.seconds, "reason": r.reason or ""})
            journal.append(runs[-1])
            print(f"  {name:<15} seed {ctx.seed + s}: {r.status:<8} test {float(runs[-1]['test_accuracy']):.4f}"
                  f"  ({r.seconds:.1f}s)", flush=True)
    rows = []
    for name in names:
        accs = [float(r["test_accuracy"]) for r in runs if r["activation"] == name and r["status"] == "ok"]
        vals = [float(r["val_accuracy"]) for r in runs if r["activation"] == name and r["status"] == "ok"]
        mean = statistics.fmean(accs) if accs else float("nan")
        std = statistics.stdev(accs) if len(accs) > 1 else float("nan")  # sample std over seeds
        rows.append({"activation": name, "formula": formulas[name], "test_mean": mean, "test_std": std,
                     "val_mean": statistics.fmean(vals) if vals else float("nan"),
                     "ok_runs": f"{len(accs)}/{n_seeds}",
                     "test ± std": f"{mean:.4f} ± {std:.4f}"})
    rows.sort(key=lambda r: -float(r["test_mean"]) if r["test_mean"] == r["test_mean"] else 1.0)
    files = [write_csv(ctx.out / "runs.csv", runs), write_csv(ctx.out / "results.csv", rows)]

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(9, 0.32 * len(rows) + 1.2))
    labels = [str(r["activation"]) for r in rows][::-1]
    means = [float(r["test_mean"]) for r in rows][::-1]
    stds = [float(r["test_std"]) if r["test_std"] == r["test_std"] else 0.0 for r in rows][::-1]
    ax.barh(labels, means, xerr=stds, color="C0", alpha=0.8, capsize=3)
    lo = min(m for m in means if m == m)
    ax.set_xlim(max(0.0, lo - 0.05), 1.0)
    ax.set_xlabel(f"test accuracy (mean ± std over {n_seeds} seeds)")
    ax.set_title(f"Baseline activations at fidelity '{fid.name}' ({fid.dataset}, {fid.model.kind})")
    fig.tight_layout()
    files.append(save(fig, ctx.out / "accuracy.png"))
    _shapes_figure(names, ctx.out / "shapes.png")
    files.append(ctx.out / "shapes.png")

    best, worst = rows[0], rows[-1]
    relu = next((r for r in rows if r["activation"] == "relu"), None)
    beat_relu = [str(r["activation"]) for r in rows
                 if relu is not None and float(r["test_mean"]) > float(relu["test_mean"]) + float(relu["test_std"] or 0)]
    finding = (
        f"activation-zoo ({len(names)} activations x {n_seeds} seeds, fidelity '{fid.name}', "
        f"{time.perf_counter() - t0:.0f}s): best {best['activation']} {best['test ± std']}, "
        f"worst {worst['activation']} {worst['test ± std']}"
        + (f"; ReLU {relu['test ± std']}, and {len(beat_relu)} activation(s) beat it by more than one "
           f"std ({', '.join(beat_relu) or 'none'})" if relu is not None else "")
        + "."
    )
    table = [{k: r[k] for k in ("activation", "test ± std", "val_mean", "ok_runs", "formula")} for r in rows]
    files.append(write_markdown(ctx.out / "results.md", "Activation zoo", table, finding,
                                ["accuracy.png", "shapes.png"]))
    files.append(write_command(ctx, "activation-zoo"))
    journal.remove()  # runs.csv now holds every run
    metrics = {"rows": rows, "runs": runs, "fidelity": fid.name}
    return ExperimentResult("activation-zoo", finding, metrics, files)


EXPERIMENT = Experiment("activation-zoo", SUMMARY, run)
