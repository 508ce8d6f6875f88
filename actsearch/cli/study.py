"""``actsearch top``, ``actsearch verify``, ``actsearch export``, ``actsearch predict``: what a study found."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from ..analysis import (export_top, format_failures, format_leaderboard, format_predictions, format_verify, leaderboard,
                        predict_accuracy, study_summary, top_candidates, verify)
from ..errors import ActsearchError
from ..evaluation import get_fidelity
from ..expressions import parse, write_module
from ..paths import output_file
from ..search import MAX_SEEDS, load_study, read_settings
from ._common import (FIDELITY_CHOICES, add_device_option, add_storage_option, add_task_option, add_threads_option,
                      check_study_task, count, device, task_option)

__all__ = ["add_parsers", "cmd_top", "cmd_verify", "cmd_export", "cmd_predict"]


def cmd_top(args: argparse.Namespace) -> int:
    study = load_study(args.storage, args.study)
    rows = leaderboard(study)  # refuses a study actsearch did not create before printing anything
    print(study_summary(study))
    print(format_leaderboard(rows, args.k))
    failures = format_failures(study, args.k)
    if failures:
        print(failures)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    dev = device(args.device)
    study = load_study(args.storage, args.study)
    csv_path = output_file(args.csv or f"results/verify-{study.study_name}.csv", "--csv", (".csv",))
    settings = read_settings(study)
    task = task_option(args)
    check_study_task(settings.to_json(), task, study.study_name)
    if settings.task is not None and args.fidelity is not None:
        raise ActsearchError(f"study {study.study_name!r} scores its own task: verify re-trains through it (drop --fidelity)")
    if args.fidelity is not None:
        get_fidelity(args.fidelity)  # a typo fails before the training
    _, notes = top_candidates(leaderboard(study), args.k)
    for note in notes:
        print(f"actsearch: note: {note}", file=sys.stderr)
    where = f"task {settings.task['name']}" if settings.task is not None else f"{args.fidelity or 'full'} fidelity"
    print(f"verifying the search's top {args.k} of {study.study_name} with ReLU and Swish: {args.seeds} seeds at "
          f"{where} …", file=sys.stderr, flush=True)
    records = verify(study, args.k, args.seeds, task or args.fidelity, device=dev, batch=args.batch,
                     csv_path=csv_path)
    print(format_verify(records))
    print(f"saved: {csv_path} and the study's user attribute 'verify'")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """The top K of ``--study``, or the ``--expr`` expressions (with ``--name`` s)."""
    output_file(args.output, "--output", (".py",))
    if args.expr:
        cands = [parse(e) for e in args.expr]
        path = write_module(cands, args.output, names=args.name or None)
        print(f"wrote {path} ({len(cands)} activation{'s' * (len(cands) > 1)})")
        return 0
    if not args.study:
        raise ActsearchError("export needs --study NAME (or --expr EXPR to export an expression)")
    path, rows, notes = export_top(load_study(args.storage, args.study), args.k, args.output)
    for note in notes:
        print(f"actsearch: note: {note}", file=sys.stderr)
    print(f"wrote {path}: " + ", ".join(f"rank{r.rank} = {r.expression}" for r in rows))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    """Predicted accuracy ± sd of each EXPR from the study's trained trials, one line each, in order."""
    study = load_study(args.storage, args.study)
    print(format_predictions(predict_accuracy(study, args.expr)))
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("top", help="leaderboard of a study",
                       description="The study's leaderboard: one row per distinct function, best first, with the "
                       "reference activations ranked among them (ReLU and Swish always shown), then the trials "
                       "that failed and why.")
    s.add_argument("--study", required=True, metavar="NAME", help="the study (required; `actsearch search` prints it)")
    add_storage_option(s)
    s.add_argument("--k", type=count(1), default=10, metavar="K",
                   help="rows shown, and failed trials listed (default: 10)")
    s.set_defaults(run=cmd_top)

    s = sub.add_parser("verify", help="re-train the top K at higher fidelity over several seeds",
                       description="Re-train the search's own top K (reference activations ranked among them are "
                       "named and skipped: ReLU and Swish are the baselines every verification trains) beside "
                       "ReLU and Swish on fresh paired seeds: test accuracy mean ± std, the paired Δ vs ReLU, a "
                       "paired t-test p-value and its Holm correction, and the accuracy on the shifted test set.")
    s.add_argument("--study", required=True, metavar="NAME", help="the study (required)")
    add_storage_option(s)
    s.add_argument("--k", type=count(1), default=5, metavar="K",
                   help="how many of the search's own candidates (default: 5)")
    s.add_argument("--seeds", type=count(1, MAX_SEEDS), default=5, metavar="N",
                   help="fresh paired seeds per function (default: 5)")
    s.add_argument("--fidelity", default=None, metavar="NAME",
                   help=f"how each is re-trained (on the study's dataset), {FIDELITY_CHOICES} (default: full; "
                        "a task's study: its task)")
    add_task_option(s)
    add_device_option(s)
    s.add_argument("--batch", type=count(1, 4096), default=16, metavar="K",
                   help="networks trained together (default: 16)")
    s.add_argument("--csv", metavar="FILE", default=None,
                   help="where the table goes as CSV (default: results/verify-STUDY.csv)")
    add_threads_option(s)
    s.set_defaults(run=cmd_verify)

    s = sub.add_parser("export", help="write the top K (or given expressions) as a Python module",
                       description="Write a module that needs only torch: per function a plain function and an "
                       "nn.Module class (trainable β per channel). From a study, the search's own top K, each "
                       "named after its leaderboard rank (rank2, Rank2); or the --expr expressions.")
    s.add_argument("--study", metavar="NAME", help="study to export from (default: none; give it or --expr)")
    add_storage_option(s)
    s.add_argument("--k", type=count(1), default=3, metavar="K",
                   help="how many of the search's own candidates (default: 3)")
    s.add_argument("--output", required=True, metavar="FILE.py", help="the module to write (required)")
    s.add_argument("--expr", action="append", default=[], metavar="EXPR",
                   help="export this expression instead of a study's top K (repeatable) (default: none)")
    s.add_argument("--name", action="append", default=[], metavar="NAME",
                   help="name for each --expr, in order (default: activation_0, activation_1, …)")
    s.set_defaults(run=cmd_export)

    s = sub.add_parser("predict", help="predicted accuracy ± sd of expressions from a study's trials, untrained",
                       description="Fit the surrogate (features at init, a Gaussian process) on the study's "
                       "trained trials and print, for each EXPR (an expression in x or a registered name), its "
                       "predicted score ± sd and the probability its training fails, one line per EXPR in order.")
    s.add_argument("expr", nargs="+", metavar="EXPR", help='an expression in x ("x*atan(x)") or a registered name')
    s.add_argument("--study", required=True, metavar="NAME", help="the study whose trials train the predictor (required)")
    add_storage_option(s)
    s.set_defaults(run=cmd_predict)
