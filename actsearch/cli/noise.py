"""``actsearch noise``: how noisy a fidelity's score is (paired sd vs ReLU, detectable effects, τ)."""
from __future__ import annotations

import argparse
import csv
import math
import sys
from typing import Any

from ..analysis import PANEL, format_noise, mde, measure_noise
from ..errors import ActsearchError
from ..evaluation import as_task
from ..paths import output_file
from ..search import MAX_SEEDS
from ._common import SEED, add_task_option, add_threads_option, count, device, task_option

__all__ = ["add_parsers", "cmd_noise"]


def cmd_noise(args: argparse.Namespace) -> int:
    names = [n.strip() for n in (args.fidelity or "").split(",") if n.strip()]
    if args.task is None and not names:
        raise ActsearchError("--fidelity needs preset names, e.g. --fidelity standard,standard_bn")
    task = task_option(args)
    fids = [task] if task is not None else [as_task(n) for n in names]  # every typo before any training
    dev = device(args.device)
    if args.csv:
        output_file(args.csv, "--csv", (".csv",))
    seeds = [args.seed_base + j for j in range(args.seeds)]
    rows = []
    for fid in fids:
        print(f"noise of {fid.name}: {len(PANEL)} functions × {len(seeds)} paired seeds …", file=sys.stderr, flush=True)
        rep = measure_noise(fid, seeds, device=dev, batch=args.batch)
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
                         "seeds": " ".join(map(str, seeds)),
                         "val_per_seed": " ".join("nan" if math.isnan(v) else f"{v:.4f}" for v in r.val),
                         "test_per_seed": " ".join("nan" if math.isnan(v) else f"{v:.4f}" for v in r.test)})
    if args.csv:
        with open(args.csv, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        print(f"saved: {args.csv}")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("noise", help="how noisy a fidelity's score is: a fixed panel on paired seeds",
                       description="Train the panel (" + ", ".join(PANEL) + ") on N paired seeds at each "
                       "fidelity and print the sd of each function's paired difference to ReLU, the effect "
                       "5 and 10 paired seeds can detect (α 0.05, power 0.8), Kendall's τ between the rankings "
                       "on two disjoint halves of the seeds, and the seconds per candidate.")
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--fidelity", default=None, help="preset(s), comma-separated: standard,standard_bn …")
    add_task_option(which)
    s.add_argument("--seeds", type=count(4, MAX_SEEDS), default=10, help="paired seeds (default 10: two halves of 5)")
    s.add_argument("--seed-base", type=SEED, default=20_000,
                   help="first seed (default 20000: apart from the seeds searches and verifications use)")
    s.add_argument("--batch", type=count(1, 4096), default=16, help="networks trained together (default 16)")
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    s.add_argument("--csv", metavar="FILE", default=None, help="also write the rows as CSV")
    add_threads_option(s)
    s.set_defaults(run=cmd_noise)
