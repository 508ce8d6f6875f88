"""The lecture's experiments, reproduced: ``actsearch experiment NAME`` (``--list`` for all).

Each experiment is one function ``run(ctx) -> ExperimentResult`` in a private module, registered
there with its one-line summary (``EXPERIMENT``); this package keeps the registry in the lecture's
order and runs them (the command is :mod:`actsearch.cli.experiment`).

Every run writes PNG figures, ``results.csv`` and ``results.md`` (the table and the finding),
``command.txt`` (the exact command) and ``finding.txt`` into ``results/lecture/NAME/`` (or
``--output``), and prints a finding computed from its own numbers.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UnknownExperimentError, did_you_mean
from . import _batchnorm, _dead_relu, _depth, _forward, _init_training, _pretraining, _relu_init, _symmetry, _zoo
from ._common import Context, Experiment, ExperimentResult
from .pretrain import fine_tune, hidden_representation, pretrain_greedy

__all__ = ["EXPERIMENTS", "Experiment", "ExperimentResult", "Context", "list_experiments", "lookup",
           "run_experiment", "pretrain_greedy", "fine_tune", "hidden_representation"]


# Order = the lecture's order; each experiment's summary (what `--list` prints) is in its module.
EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (m.EXPERIMENT for m in (
    _forward, _init_training, _relu_init, _batchnorm, _pretraining, _symmetry, _dead_relu, _zoo, _depth))}


def list_experiments() -> list[tuple[str, str]]:
    """(name, one-line summary) of every experiment, in the lecture's order."""
    return [(e.name, e.summary) for e in EXPERIMENTS.values()]


def lookup(name: str) -> Experiment:
    """The experiment called ``name`` ("did you mean" on a typo)."""
    key = name.strip().lower().replace("_", "-")
    if key in EXPERIMENTS:
        return EXPERIMENTS[key]
    hint = did_you_mean(key, EXPERIMENTS, cutoff=0.5)
    raise UnknownExperimentError(
        f"unknown experiment {name!r}{hint} (known: {', '.join(EXPERIMENTS)}; see `actsearch experiment --list`)"
    )


def run_experiment(name: str, output: str | Path | None = None, *, quick: bool = False, seed: int = 0,
                   mnist_dir: str | None = None, command: str = "", dataset: object = None) -> ExperimentResult:
    """Run one experiment by name and write its outputs (default ``results/lecture/NAME``).

    ``dataset`` (a :class:`actsearch.evaluation.Dataset`) replaces MNIST, for tests that load it once.
    """
    exp = lookup(name)
    out = Path(output) if output is not None else Path("results") / "lecture" / exp.name
    out.mkdir(parents=True, exist_ok=True)
    ctx = Context(out=out, quick=quick, seed=seed, mnist_dir=mnist_dir, command=command,
                  dataset=dataset)  # type: ignore[arg-type]
    result = exp.run(ctx)
    (out / "finding.txt").write_text(result.finding + "\n")
    return result
