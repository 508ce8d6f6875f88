"""``actsearch compare``: any expressions beside ReLU and Swish on the same seeds (a paired design)."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..analysis import compare, entry, format_verify, write_csv
from ..errors import ActsearchError
from ..evaluation import as_task
from ..paths import output_file
from ..search import MAX_SEEDS, normalize_dataset
from ._common import (DATASET_CHOICES, FIDELITY_CHOICES, SEED, add_device_option, add_task_option, add_threads_option,
                      device, task_option)

__all__ = ["add_parsers", "cmd_compare"]


def cmd_compare(args: argparse.Namespace) -> int:
    if args.task is not None and args.dataset is not None:
        raise ActsearchError("--task sets the data itself: drop --dataset")
    fid = task_option(args) or as_task(args.fidelity,
                                       normalize_dataset(args.dataset) if args.dataset is not None else None)
    if not (1 <= args.seeds <= MAX_SEEDS and 1 <= args.batch <= 4096):
        raise ActsearchError(f"--seeds and --batch must be at least 1 (and at most {MAX_SEEDS} and 4096; got "
                             f"{args.seeds}, {args.batch})")
    dev = device(args.device)
    if args.csv:
        output_file(args.csv, "--csv", (".csv",))
    entries = [entry(e) for e in args.expr]
    seeds = [args.seed_base + j for j in range(args.seeds)]
    print(f"comparing {len(entries)} function(s) with ReLU and Swish: {len(seeds)} paired seeds {seeds} at "
          f"{fid.name} ({fid.describe()}) …", file=sys.stderr, flush=True)
    records = compare(entries, fid, seeds, device=dev, batch=args.batch)
    print(format_verify(records))
    if args.csv:
        print(f"saved: {write_csv(records, args.csv)}")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("compare", help="train expressions beside ReLU and Swish on paired seeds: Δ, p-value",
                       description="Train each EXPR plus ReLU and Swish on the same N seeds (a paired design) "
                       "and print test accuracy mean ± std, the paired Δ vs ReLU and a paired t-test p-value "
                       "(the table of `actsearch verify`).")
    s.add_argument("expr", nargs="+", metavar="EXPR",
                   help='an expression in x ("x*atan(x)") or a registered activation name (gelu, elu …)')
    which = s.add_mutually_exclusive_group(required=True)
    which.add_argument("--fidelity", default=None, metavar="NAME",
                       help=f"how each function is trained, {FIDELITY_CHOICES} (default: none; this or --task is required)")
    add_task_option(which)
    s.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"the data, {DATASET_CHOICES}, or FILE.npz (arrays x, y, optional x_test, y_test) "
                        "(default: the fidelity's own)")
    s.add_argument("--seeds", type=int, default=5, metavar="N", help="paired seeds (default: 5)")
    s.add_argument("--seed-base", type=SEED, default=0, metavar="S",
                   help="first seed; seeds are S … S+N−1 (default: 0)")
    s.add_argument("--batch", type=int, default=16, metavar="K", help="networks trained together (default: 16)")
    add_device_option(s)
    s.add_argument("--csv", metavar="FILE", default=None, help="also write the table as CSV (default: no CSV)")
    add_threads_option(s)
    s.set_defaults(run=cmd_compare)
