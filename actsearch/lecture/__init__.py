"""The lecture's experiments, reproduced: ``actsearch experiment NAME`` (``--list`` for all).

Each experiment is one function ``run(ctx) -> ExperimentResult`` in a private module; this package
keeps the registry (name -> one-line summary -> module) and the CLI entry point. Modules are
imported only when their experiment runs, so ``--list`` stays instant.

Every run writes PNG figures, ``results.csv`` and ``results.md`` (the table and the finding),
``command.txt`` (the exact command) and ``finding.txt`` into ``results/lecture/NAME/`` (or
``--output``), and prints a finding computed from its own numbers.
"""
from __future__ import annotations

import argparse
import difflib
import importlib
import sys
import time
from pathlib import Path
from typing import Callable

from ..errors import ActsearchError
from ._common import Context, Experiment, ExperimentResult

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "Context", "list_experiments",
           "run_experiment", "cmd_experiment", "UnknownExperimentError"]


class UnknownExperimentError(ActsearchError, KeyError):
    """``experiment NAME`` with a NAME that is not registered."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _lazy(module: str) -> Callable[[Context], ExperimentResult]:
    def run(ctx: Context) -> ExperimentResult:
        return importlib.import_module(f".{module}", __name__).run(ctx)

    return run


# Order = the lecture's order. Summaries are what `--list` prints.
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment("forward-stats", "1000 N(0,1) inputs through 5 layers of 500: activation histograms per layer for "
               "sigmoid/tanh/ReLU under 0.01*randn, randn, Xavier, He", _lazy("_forward")),
    Experiment("init-training", "MNIST 784-500-500-500-10 tanh, GD lr 0.5, batch 256: loss curves for 0.01*randn "
               "(flat start), randn (saturation), Xavier", _lazy("_init_training")),
    Experiment("relu-init", "deep ReLU net on MNIST (100, then 6x50): Xavier vs He, activation spread per layer "
               "and loss curves", _lazy("_relu_init")),
    Experiment("batchnorm", "7-layer sigmoid net on MNIST, weights 0.1*randn: no norm vs BatchNorm vs LayerNorm "
               "(loss, pre-activation percentiles)", _lazy("_batchnorm")),
    Experiment("pretraining", "greedy layer-wise autoencoder pretraining vs random init on a deep sigmoid net "
               "(MNIST), then supervised fine-tuning", _lazy("_pretraining")),
    Experiment("symmetry", "zero/constant init: the rows of each hidden weight matrix stay identical through "
               "training (Xavier breaks the symmetry)", _lazy("_symmetry")),
    Experiment("dead-relu", "fraction of dead ReLU units after training with a too-high learning rate or a "
               "negative bias; Leaky ReLU/ELU do not die", _lazy("_dead_relu")),
    Experiment("activation-zoo", "every baseline activation trained at the 'standard' fidelity over 3 seeds: "
               "mean +- std table and a figure of their shapes", _lazy("_zoo")),
)}


def list_experiments() -> list[tuple[str, str]]:
    """(name, one-line summary) of every experiment, in the lecture's order."""
    return [(e.name, e.summary) for e in EXPERIMENTS.values()]


def _lookup(name: str) -> Experiment:
    key = name.strip().lower().replace("_", "-")
    if key in EXPERIMENTS:
        return EXPERIMENTS[key]
    close = difflib.get_close_matches(key, EXPERIMENTS, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownExperimentError(
        f"unknown experiment {name!r}{hint} (known: {', '.join(EXPERIMENTS)}; see `actsearch experiment --list`)"
    )


def run_experiment(name: str, output: str | Path | None = None, *, quick: bool = False, seed: int = 0,
                   mnist_dir: str | None = None, command: str = "", dataset: object = None) -> ExperimentResult:
    """Run one experiment by name and write its outputs (default ``results/lecture/NAME``).

    ``dataset`` (a :class:`actsearch.data.Dataset`) replaces MNIST, for tests that load it once.
    """
    exp = _lookup(name)
    out = Path(output) if output is not None else Path("results") / "lecture" / exp.name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, quick=quick, seed=seed, mnist_dir=mnist_dir, command=command,
                  dataset=dataset)  # type: ignore[arg-type]
    result = exp.run(ctx)
    (out / "finding.txt").write_text(result.finding + "\n")
    return result


def cmd_experiment(args: argparse.Namespace) -> int:
    """``actsearch experiment [NAME] [--list] [--output DIR] [--quick] [--seed S] [--mnist-dir DIR]``."""
    if args.list:
        width = max(len(n) for n in EXPERIMENTS)
        for name, summary in list_experiments():
            print(f"{name:<{width}}  {summary}")
        return 0
    if not args.name:
        raise ActsearchError("give an experiment name (one of: " + ", ".join(EXPERIMENTS)
                             + ") or --list")
    exp = _lookup(args.name)
    t0 = time.perf_counter()
    print(f"running {exp.name}: {exp.summary}", flush=True)
    result = run_experiment(exp.name, args.output, quick=args.quick, seed=args.seed,
                            mnist_dir=args.mnist_dir)
    out = Path(args.output) if args.output else Path("results") / "lecture" / exp.name
    print(f"\nfinding: {result.finding}")
    print(f"wrote {len(result.files) + 1} files to {out}/ in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0
