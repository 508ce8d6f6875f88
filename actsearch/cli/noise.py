"""``actsearch noise``: how noisy a fidelity's score is (paired sd vs ReLU, detectable effects, τ)."""
from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
from typing import Any

from ..analysis import PANEL, entry, format_grid, format_noise, mde, measure_noise
from ..errors import ActsearchError
from ..evaluation import Fidelity, Task, as_task, get_fidelity, split_fidelities
from ..paths import output_file
from ..search import MAX_SEEDS
from ._common import FIDELITY_CHOICES, SEED, add_device_option, add_task_option, add_threads_option, count, device, task_option

__all__ = ["add_parsers", "cmd_noise"]


def _grid(fids: list[Fidelity], axes: list[str]) -> list[Fidelity]:
    """Every preset crossed with every combination of the ``--grid KEY=V1,V2`` axes."""
    parsed = []
    for text in axes:
        key, sep, values = text.partition("=")
        vals = [v.strip() for v in values.split(",") if v.strip()]
        if not sep or not key.strip() or not vals:
            raise ActsearchError(f"bad --grid {text[:60]!r}: use KEY=V1,V2,… (e.g. depth=8,16,32)")
        parsed.append([(key.strip(), v) for v in vals])
    cells = []
    for fid in fids:
        for combo in itertools.product(*parsed):
            try:
                cells.append(fid.vary(**dict(combo)))
            except ValueError as exc:
                raise ActsearchError(f"bad --grid for {fid.name}: {exc}") from None
    return cells


def cmd_noise(args: argparse.Namespace) -> int:
    task = task_option(args)
    if task is not None and args.grid:
        raise ActsearchError("--grid varies a built-in fidelity's child: it does not apply to --task")
    names = split_fidelities(args.fidelity or "")
    if task is None and not names:
        raise ActsearchError("--fidelity needs preset names, e.g. --fidelity standard,standard_bn")
    fids: list[Task] = ([task] if task is not None else  # every typo before any training
                        [as_task(f) for f in _grid([get_fidelity(n) for n in names], args.grid or [])])
    panel = list(dict.fromkeys(["relu", *(args.panel or PANEL)]))  # ReLU: the pairs' other half
    for text in panel:
        entry(text)  # an unknown name or a malformed expression: one line before any training
    dev = device(args.device)
    if args.csv:
        output_file(args.csv, "--csv", (".csv",))
    seeds = [args.seed_base + j for j in range(args.seeds)]
    rows, reports = [], []
    for fid in fids:
        print(f"noise of {fid.name}: {len(panel)} functions × {len(seeds)} paired seeds …", file=sys.stderr, flush=True)
        rep = measure_noise(fid, seeds, panel, device=dev, batch=args.batch)
        reports.append(rep)
        print(format_noise(rep), flush=True)
        print()
        for r in rep.rows:
            rows.append({"fidelity": fid.name, "function": r.name, "expression": r.expression,
                         "val_mean": r.val_mean, "test_mean": r.test_mean, "ood_mean": r.ood_mean,
                         "val_diff_mean": r.val_diff_mean, "val_diff_sd": r.val_diff_sd,
                         "test_diff_mean": r.test_diff_mean, "test_diff_sd": r.test_diff_sd,
                         "mde5_val": mde(r.val_diff_sd, 5), "mde10_val": mde(r.val_diff_sd, 10),
                         "mde10_test": mde(r.test_diff_sd, 10), "tau_halves_val": rep.tau,
                         "tau_halves_test": rep.tau_test, "seconds_per_candidate": rep.seconds_per_candidate,
                         "trains": rep.trains(r), "seeds": " ".join(map(str, seeds)),
                         "val_per_seed": " ".join("nan" if math.isnan(v) else f"{v:.4f}" for v in r.val),
                         "test_per_seed": " ".join("nan" if math.isnan(v) else f"{v:.4f}" for v in r.test)})
        if args.csv:  # after every fidelity: a long grid stopped half-way keeps what it measured
            _write_csv(args.csv, rows)
    if len(reports) > 1:
        print(format_grid(reports))
    if args.csv:
        print(f"saved: {args.csv}")
    return 0


def _write_csv(path: str, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("noise", help="how noisy a fidelity's score is: a fixed panel on paired seeds",
                       description="Train the panel (" + ", ".join(PANEL) + ") on N paired seeds at each "
                       "fidelity and print the sd of each function's paired difference to ReLU, the effect "
                       "5 and 10 paired seeds can detect (α 0.05, power 0.8), Kendall's τ between the rankings "
                       "on two disjoint halves of the seeds, the seconds per candidate, and two verdicts: room "
                       "(Swish − ReLU, the panel's spread) and power (the worst paired sd over the functions "
                       "that train, τ). --grid crosses the presets with changes of their child, to choose one.")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--fidelity", default=None, metavar="NAME[,NAME...]",
                       help=f"the preset(s) to measure, comma-separated, {FIDELITY_CHOICES} (default: none; this or --task is required)")
    add_task_option(which)
    s.add_argument("--seeds", type=count(4, MAX_SEEDS), default=10, help="paired seeds (default 10: two halves of 5)")
    s.add_argument("--seed-base", type=SEED, default=20_000,
                   help="first seed (default 20000: apart from the seeds searches and verifications use)")
    s.add_argument("--batch", type=count(1, 4096), default=16, help="networks trained together (default 16)")
    s.add_argument("--panel", nargs="+", metavar="FUNC", default=None,
                   help="functions to train instead of the fixed panel: names or expressions (ReLU is always added) "
                        "(default: the fixed panel)")
    s.add_argument("--grid", action="append", metavar="KEY=V1,V2", default=None,
                   help="vary the child, repeatable: depth=8,16,32 width=64,128 init=default,he "
                        "norm=none,batch lr=… steps=… dataset=…; every combination is measured (default: no grid)")
    add_device_option(s)
    s.add_argument("--csv", metavar="FILE", default=None, help="also write the rows as CSV (default: no CSV)")
    add_threads_option(s)
    s.set_defaults(run=cmd_noise)
