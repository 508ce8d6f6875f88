"""``actsearch search``, ``actsearch worker``, ``actsearch dashboard``: running a search, joining one,
watching one.

The argument names are fixed by the SPEC. Options that define a study (space, dataset, fidelity,
sampler, seed, seeds, cost) default to None here so that ``--study NAME`` alone resumes a study
with the settings it was created with (:func:`actsearch.search.build_settings`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import optuna

from ..analysis import format_leaderboard, leaderboard, study_summary
from ..evaluation import task_record
from ..search import (BUDGET_ATTR, MAX_SEEDS, RunConfig, SearchSettings, build_settings, free_port, resolve_storage,
                      run_distributed_worker, run_search, serve, stored_settings, study_name_for)
from ..paths import output_dir
from ._common import (PORT, SEED, Progress, add_run_options, add_storage_option, add_task_option, check_study_task, count,
                      device, task_option)

__all__ = ["add_parsers", "cmd_search", "cmd_worker", "cmd_dashboard", "DEFAULT_TRIALS"]

#: --trials by fidelity when not given: a search that ends in a few minutes on a 2-core laptop.
#: Measured there: standard (CNN) ~11 s per candidate even batched, so 24 trials ≈ 4-5 min
#: (48 took 9m50s); quick (MLP) 16 trials in 35 s. A GPU gets 4x the trials.
DEFAULT_TRIALS = {"smoke": 16, "quick": 48, "standard": 24, "full": 8, "full_mlp": 8}


def _settings(args: argparse.Namespace, url: str) -> tuple[str, SearchSettings]:
    """(study name, settings) from the options, filled from an existing ``--study`` if any."""
    given = {k: getattr(args, k, None) for k in ("space", "dataset", "fidelity", "sampler", "seed", "seeds", "cost",
                                                   "objective", "objectives")}
    task = task_option(args)  # loaded and dry-checked: a broken task file stops here, before any trial
    given["task"] = task_record(task) if task is not None else None
    stored = stored_settings(url, args.study) if args.study else None
    check_study_task(stored, task, args.study)
    settings = build_settings(given, stored)
    return args.study or study_name_for(settings), settings


def _run_config(args: argparse.Namespace, trials: int, workers: int) -> RunConfig:
    if args.artifacts is not None:
        output_dir(args.artifacts, "--artifacts")
    return RunConfig(trials=trials, workers=workers, batch=args.batch, pruner=args.pruner,
                     device=device(args.device), plots=not args.no_plots, artifacts=args.artifacts)


def cmd_search(args: argparse.Namespace) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress line says what matters
    url = resolve_storage(args.storage)
    device(args.device)  # a bad --device fails before the storage is touched
    name, settings = _settings(args, url)
    if settings.multi_objective and args.pruner not in ("none", "median"):
        print("actsearch: note: pruning is off for nsga2 (Optuna cannot prune multi-objective trials)",
              file=sys.stderr)
    default = DEFAULT_TRIALS.get(settings.fidelity, 32) * (4 if device(args.device).startswith("cuda") else 1)
    trials = args.trials if args.trials is not None else default
    if settings.sampler == "exhaustive" and args.trials is None:
        trials = 10**9  # the sampler stops when every distinct function has been tried
    cfg = _run_config(args, trials, args.workers)
    progress = Progress(quiet=args.quiet)
    try:
        study = run_search(url, name, settings, cfg, on_trial=progress,
                           on_start=lambda st, se, n: progress.start(st, se, n, cfg.batch * cfg.workers))
    except KeyboardInterrupt:
        progress.close()
        print(f"actsearch: interrupted — finished trials are kept in {url} (study {name}); trials in "
              "flight were marked failed. Run the same command again to continue.", file=sys.stderr)
        raise
    progress.close()
    if args.workers == 0:  # `--workers 0`: the study is set up for `actsearch worker`s elsewhere
        where = f"--storage {args.storage} " if args.storage else ""
        print(f"study {name} ready: budget {study.user_attrs.get(BUDGET_ATTR)} trials in {url}; start workers with "
              f"`actsearch worker {where}--study {name} [--device cuda:N]`")
        return 0
    print(study_summary(study))
    rows = leaderboard(study)
    if rows:
        print(format_leaderboard(rows, 5))
    print(f"storage: {url}   next: actsearch top --study {name}" +
          (f" --storage {args.storage}" if args.storage else ""))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = resolve_storage(args.storage)
    if args.artifacts is not None:
        output_dir(args.artifacts, "--artifacts")
    dev = device(args.device)
    # The task file must be on this machine too: the study's recorded one, or --task here (same hash).
    check_study_task(stored_settings(url, args.study), task_option(args), args.study)
    progress = Progress(quiet=args.quiet)
    try:
        r = run_distributed_worker(url, args.study, device=dev, trials=args.trials,
                                   batch=args.batch, pruner=args.pruner, plots=not args.no_plots,
                                   artifacts=args.artifacts, on_start=progress.start, on_trial=progress)
    except KeyboardInterrupt as exc:
        progress.close()
        print(f"actsearch: worker {getattr(exc, 'worker', '')} stopped; {getattr(exc, 'requeued', 0)} trial(s) in "
              "flight re-queued for other workers", file=sys.stderr)
        raise
    progress.close()
    counts = ", ".join(f"{v} {k}" for k, v in r.counts.items() if v) or "nothing to do"
    budget = f"{r.counted}/{r.budget} trials of the budget used" if r.budget is not None else f"{r.counted} trials"
    print(f"worker {r.name}: {r.asked} trial(s) here ({counts}); study {args.study}: {budget}")
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    if args.artifacts is not None:
        output_dir(args.artifacts, "--artifacts")
    try:
        serve(args.storage, host=args.host, port=args.port or free_port(args.host), artifacts=args.artifacts)
    except KeyboardInterrupt:  # Ctrl-C is how a dashboard is meant to stop
        print("dashboard stopped", file=sys.stderr)
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("search", help="the main job: search a space for activation functions")
    s.add_argument("--space", default=None, help="space file or shipped space name (default: paper-1)")
    s.add_argument("--dataset", default=None,
                   help="dataset (default: the fidelity's, mnist1d), or FILE.npz (arrays x, y, optional x_test, y_test)")
    s.add_argument("--fidelity", default=None, help="smoke | quick | standard | full (default: standard)")
    add_task_option(s)
    s.add_argument("--trials", type=count(0), default=None,
                   help="number of trials (default: a few minutes' budget: 24 at standard, 48 at quick; exhaustive: all)")
    s.add_argument("--sampler", default=None, help="tpe | random | exhaustive | nsga2 | evolution (default: tpe)")
    add_storage_option(s)
    s.add_argument("--study", default=None, help="study name (default: derived from the options)")
    s.add_argument("--workers", type=count(0, 256), default=1,
                   help="local worker processes (0: only create the study and its budget, for `actsearch worker`s)")
    s.add_argument("--seed", type=SEED, default=None, help="sampler and training seed (default: 0)")
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    s.add_argument("--seeds", type=count(1, MAX_SEEDS), default=None, help="training seeds per candidate (default: 1)")
    s.add_argument("--cost", default=None, help="nsga2's cost objective: time | ops (default: time)")
    s.add_argument("--objective", default=None,
                   help="what a trial scores: val (validation accuracy) | ood (accuracy on the shifted MNIST-1D "
                        "test set) (default: val)")
    s.add_argument("--objectives", default=None, help="nsga2's trade-off: val,cost | val,ood (default: val,cost)")
    add_run_options(s)
    s.set_defaults(run=cmd_search)

    s = sub.add_parser("worker", help="one worker of a distributed search")
    add_storage_option(s)
    s.add_argument("--study", required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--trials", type=count(0), default=None,
                   help="at most this many trials from this worker (default: until the study's budget is used)")
    add_task_option(s)
    add_run_options(s)
    s.set_defaults(run=cmd_worker)

    s = sub.add_parser("dashboard", help="optuna-dashboard on the storage, with artifacts")
    add_storage_option(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=PORT, default=8080, help="port (0: any free port)")
    s.add_argument("--artifacts", metavar="DIR", default=None, help="artifact folder (default: next to the storage)")
    s.set_defaults(run=cmd_dashboard)
