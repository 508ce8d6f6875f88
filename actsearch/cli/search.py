"""``actsearch search``, ``actsearch worker``, ``actsearch dashboard``: running a search, joining one,
watching one.

The argument names are part of the public interface. Options that define a study (space, dataset, fidelity,
sampler, seed, seeds, cost) default to None here so that ``--study NAME`` alone resumes a study
with the settings it was created with (:func:`actsearch.search.build_settings`).
"""
from __future__ import annotations

import argparse
import sys
from typing import Any

import optuna

from ..analysis import format_failures, format_leaderboard, leaderboard, study_summary
from ..errors import StudyNotFoundError
from ..evaluation import task_record
from ..expressions import list_spaces
from ..search import (BUDGET_ATTR, COSTS, DEFAULTS, MAX_SEEDS, OBJECTIVE_PAIRS, OBJECTIVES, RunConfig, SearchSettings,
                      budget_state, build_settings, free_port, load_study, resolve_storage,
                      run_distributed_worker, run_search, serve, stored_settings, study_name_for)
from ..paths import output_dir
from ._common import (DATASET_CHOICES, FIDELITY_CHOICES, PORT, SAMPLER_CHOICES, SEED, Progress, add_device_option,
                      add_run_options, add_storage_option, add_task_option, check_study_task, count, device, one_of,
                      task_option)

__all__ = ["add_parsers", "cmd_search", "cmd_worker", "cmd_dashboard", "DEFAULT_TRIALS", "OTHER_TRIALS", "CUDA_FACTOR"]

#: --trials by fidelity when not given: a search that ends in a few minutes on a 2-core laptop.
#: Measured there: standard (CNN) ~11 s per candidate even batched, so 24 trials ≈ 4-5 min
#: (48 took 9m50s); quick (MLP) 16 trials in 35 s. A GPU gets CUDA_FACTOR times the trials.
DEFAULT_TRIALS = {"smoke": 16, "quick": 48, "standard": 24, "full": 8, "full_mlp": 8}
OTHER_TRIALS = 32  # any other fidelity
CUDA_FACTOR = 4


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


def _held(url: str, name: str) -> int:
    """Counted trials study ``name`` holds already, not counting queued ones (0 for a new study)."""
    try:
        state = budget_state(load_study(url, name))
    except StudyNotFoundError:
        return 0
    return state.counted - state.waiting


def cmd_search(args: argparse.Namespace) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress line says what matters
    url = resolve_storage(args.storage)
    device(args.device)  # a bad --device fails before the storage is touched
    name, settings = _settings(args, url)
    if settings.multi_objective and args.pruner not in ("none", "median"):
        print("actsearch: note: pruning is off for nsga2 (Optuna cannot prune multi-objective trials)",
              file=sys.stderr)
    held = _held(url, name)
    # --trials N: until the study holds N counted trials (a re-run finishes an interrupted search and
    # then does nothing); --more N: N beyond those it holds now. The study's budget becomes that goal.
    if args.more is not None:
        goal = held + args.more
    elif args.trials is not None:
        goal = args.trials
    elif settings.sampler == "exhaustive":
        goal = held + 10**9  # the sampler stops when every distinct function has been tried
    else:
        goal = DEFAULT_TRIALS.get(settings.fidelity, OTHER_TRIALS) * (CUDA_FACTOR if device(args.device).startswith("cuda") else 1)
    trials = max(0, goal - held)
    cfg = _run_config(args, trials, args.workers)
    progress = Progress(quiet=args.quiet)
    progress.goal = goal if held and goal < 10**9 else None
    try:
        study = run_search(url, name, settings, cfg, on_trial=progress,
                           on_start=lambda st, se, n: progress.start(st, se, n, cfg.batch * cfg.workers))
    except KeyboardInterrupt:
        progress.close()
        print(f"actsearch: interrupted — finished trials are kept in {url} (study {name}); trials in "
              "flight were marked failed. Run the same command again to finish it.", file=sys.stderr)
        raise
    progress.close()
    if args.workers == 0:  # `--workers 0`: the study is set up for `actsearch worker`s elsewhere
        where = f"--storage {args.storage} " if args.storage else ""
        print(f"study {name} ready: budget {study.user_attrs.get(BUDGET_ATTR)} trials in {url}; start workers with "
              f"`actsearch worker {where}--study {name} [--device cuda:N]`")
        return 0
    if trials == 0 and held:
        print(f"study {name} already holds {held} trials (goal {goal}): nothing to run; "
              f"--more N runs N more, --trials N goes up to N", file=sys.stderr)
    print(study_summary(study))
    rows = leaderboard(study)
    if rows:
        print(format_leaderboard(rows, 5))
    failures = format_failures(study, 3)
    if failures:
        print(failures)
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


def _default_trials() -> str:
    per = ", ".join(f"{n} at {f}" for f, n in DEFAULT_TRIALS.items())
    return f"{per}, {OTHER_TRIALS} at any other fidelity; {CUDA_FACTOR}x on CUDA; exhaustive: every distinct function"


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("search", help="the main job: search a space for activation functions",
                       description="Search a space of activation functions: Optuna asks for candidates, each is "
                       "trained on a small child network and scored by its validation accuracy. The study lives in "
                       "the storage; running the same command again finishes an interrupted search.")
    s.add_argument("--space", default=None, metavar="FILE|NAME",
                   help=f"a space file (.toml) or a shipped space, {one_of(p.stem for p in list_spaces())} "
                        f"(default: {DEFAULTS['space']})")
    s.add_argument("--dataset", default=None, metavar="NAME",
                   help=f"the data the children train on, {DATASET_CHOICES}, or FILE.npz (arrays x, y, optional "
                        "x_test, y_test) (default: the fidelity's own, see `actsearch fidelities`)")
    s.add_argument("--fidelity", default=None, metavar="NAME",
                   help=f"how each candidate is trained (see `actsearch fidelities`), {FIDELITY_CHOICES} "
                        f"(default: {DEFAULTS['fidelity']})")
    add_task_option(s)
    group = s.add_mutually_exclusive_group()
    group.add_argument("--trials", type=count(0), default=None, metavar="N",
                       help="run until the study holds N trials: a re-run of the same command finishes an "
                            "interrupted search and does nothing once the study is complete (duplicates, pruned "
                            "and failed trials count; trials cut short by Ctrl-C do not) "
                            f"(default: {_default_trials()})")
    group.add_argument("--more", type=count(0), default=None, metavar="N",
                       help="run N trials more than the study holds now (default: off; use --trials)")
    s.add_argument("--sampler", default=None, metavar="NAME",
                   help=f"how Optuna picks the next candidates, {SAMPLER_CHOICES} (default: {DEFAULTS['sampler']})")
    add_storage_option(s)
    s.add_argument("--study", default=None, metavar="NAME",
                   help="study name (default: derived from the space's name and the options, e.g. "
                        "paper-1-mnist1d-standard-tpe-s0, so the same command finds the same study)")
    s.add_argument("--workers", type=count(0, 256), default=1, metavar="N",
                   help="local worker processes sharing the study (0: only create the study and its budget of "
                        "--trials, for workers elsewhere: `actsearch worker`) (default: 1)")
    s.add_argument("--seed", type=SEED, default=None, metavar="S",
                   help=f"sampler and training seed (default: {DEFAULTS['seed']})")
    add_device_option(s)
    s.add_argument("--seeds", type=count(1, MAX_SEEDS), default=None, metavar="N",
                   help=f"training seeds per candidate; the score is their mean (default: {DEFAULTS['seeds']})")
    s.add_argument("--cost", default=None, metavar="NAME",
                   help=f"nsga2's cost objective, {one_of(COSTS)} (time: measured forward+backward time; ops: "
                        f"operator count) (default: {DEFAULTS['cost']})")
    s.add_argument("--objective", default=None, metavar="NAME",
                   help=f"what a trial scores, {one_of(OBJECTIVES)} (val: validation accuracy; ood: accuracy on "
                        f"the shifted MNIST-1D test set) (default: {DEFAULTS['objective']})")
    s.add_argument("--objectives", default=None, metavar="A,B",
                   help=f"nsga2's trade-off, {one_of(OBJECTIVE_PAIRS)} (default: {DEFAULTS['objectives']})")
    add_run_options(s)
    s.set_defaults(run=cmd_search)

    s = sub.add_parser("worker", help="one worker of a distributed search",
                       description="Join a study that `actsearch search --workers 0` created and train its "
                       "candidates until the study's budget is used. Needs only the storage and the study name.")
    add_storage_option(s)
    s.add_argument("--study", required=True, metavar="NAME", help="the study to join (required)")
    add_device_option(s)
    s.add_argument("--trials", type=count(0), default=None, metavar="N",
                   help="at most this many trials from this worker (default: until the study's budget is used)")
    add_task_option(s)
    add_run_options(s)
    s.set_defaults(run=cmd_worker)

    s = sub.add_parser("dashboard", help="optuna-dashboard on the storage, with artifacts",
                       description="Serve optuna-dashboard on the storage: every study, every trial's attributes "
                       "and its f/f' plot. Ctrl-C stops it.")
    add_storage_option(s)
    s.add_argument("--host", default="127.0.0.1", metavar="HOST", help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=PORT, default=8080, metavar="PORT", help="port (0: any free port) (default: 8080)")
    s.add_argument("--artifacts", metavar="DIR", default=None,
                   help="folder of the artifacts (default: artifacts/ next to the storage file)")
    s.set_defaults(run=cmd_dashboard)
