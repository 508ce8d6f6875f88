"""CLI wiring of the search commands: search, top, verify, export, worker, dashboard.

The argument names are fixed by the SPEC; each command's work happens in the module it names
(search.py and driver.py, leaderboard.py, dashboard.py). Options that define a study (space, dataset, fidelity,
sampler, seed, seeds, cost) default to None here so that ``--study NAME`` alone resumes a study
with the settings it was created with.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, TextIO

__all__ = ["add_search_commands", "DEFAULT_TRIALS", "Progress"]

Command = Callable[[argparse.Namespace], int]

#: --trials by fidelity when not given: a search that ends in a few minutes on a 2-core laptop.
#: Measured there: standard (CNN) ~11 s per candidate even batched, so 24 trials ≈ 4-5 min
#: (48 took 9m50s); quick (MLP) 16 trials in 35 s. A GPU gets 4x the trials.
DEFAULT_TRIALS = {"smoke": 16, "quick": 48, "standard": 24, "full": 8, "full_mlp": 8}
DEFAULTS = {"space": "paper-1", "fidelity": "standard", "sampler": "tpe", "seed": 0, "seeds": 1, "cost": "time"}


# ------------------------------------------------------------------------------------ progress
def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """One status line on stderr: trials done, best so far (expression, accuracy), ETA. Redrawn in
    place on a terminal, one line per trial otherwise (logs, CI)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream, self.quiet = stream if stream is not None else sys.stderr, quiet  # sys.stderr now, not at import
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.done, self.t0, self.span = 0, 0, time.perf_counter(), 1
        self.best: tuple[float, str] | None = None
        self.kinds = {"trained": 0, "duplicate": 0, "pruned": 0, "failed": 0}

    def start(self, study: Any, settings: Any, total: int, span: int = 1) -> None:
        """``span``: trials that finish together (batch × workers), for an honest ETA."""
        from optuna.trial import TrialState

        self.total, self.t0, self.span = total, time.perf_counter(), max(1, span)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._consider(t)
        space = settings.load_space()
        resumed = len(study.trials) - len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        self._print(f"study {study.study_name}: {space.summary()}; {settings.dataset} at "
                    f"{settings.fidelity} fidelity, sampler {settings.sampler}"
                    + (f" (resuming after {resumed} trials)" if resumed else "") + f"; {total} trials",
                    final=True)

    def _consider(self, t: Any) -> None:
        if t.values and (self.best is None or t.values[0] > self.best[0]):
            self.best = (float(t.values[0]), str(t.user_attrs.get("expression", "?")))

    def __call__(self, t: Any) -> None:
        from optuna.trial import TrialState

        self.done += 1
        kind = ("duplicate" if "duplicate_of" in t.user_attrs else "trained" if t.state == TrialState.COMPLETE
                else "pruned" if t.state == TrialState.PRUNED else "failed")
        self.kinds[kind] += 1
        if t.state == TrialState.COMPLETE:
            self._consider(t)
        elapsed = time.perf_counter() - self.t0
        # A batch's trials are told together: rate = elapsed per *batch*, not per first trial told.
        finished = min(self.total, -(-self.done // self.span) * self.span)
        eta = elapsed / finished * max(0, self.total - finished)
        best = f"best {self.best[0]:.4f} {self.best[1][:40]}" if self.best else "best —"
        counts = ", ".join(f"{v} {k}" for k, v in self.kinds.items() if v)
        self._print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {best} | {counts} | "
                    f"{_duration(elapsed)} elapsed, ETA {_duration(eta)}", final=self.done >= self.total)

    def _print(self, line: str, final: bool = False) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet and self.done < self.total:
            self.stream.write("\n")


# ------------------------------------------------------------------------------------ commands
def _settings(args: argparse.Namespace, url: str) -> tuple[str, Any]:
    """(study name, settings) from the options, filled from an existing ``--study`` if any."""
    from .data import list_datasets
    from .errors import DatasetError
    from .samplers import SAMPLERS
    from .storage import SETTINGS_ATTR, SearchSettings, open_storage, space_to_dict, study_name_for
    from .train import get_fidelity

    given = {k: getattr(args, k) for k in DEFAULTS.keys() | {"dataset"} if getattr(args, k, None) is not None}
    base: dict[str, Any] = dict(DEFAULTS)
    if args.study:
        import optuna

        try:
            study = optuna.load_study(study_name=args.study, storage=open_storage(url))
            base.update(study.user_attrs.get(SETTINGS_ATTR, {}))
        except KeyError:
            pass
    base.update(given)
    fid = get_fidelity(base["fidelity"])
    dataset = (base.get("dataset") or fid.dataset).strip().lower().replace("-", "").replace("_", "")
    if dataset not in list_datasets():
        raise DatasetError(f"unknown dataset {base.get('dataset')!r} (known: {', '.join(list_datasets())})")
    if base["sampler"] not in SAMPLERS:
        from .errors import ActsearchError

        raise ActsearchError(f"unknown sampler {base['sampler']!r} (use one of: {', '.join(SAMPLERS)})")
    if base["cost"] not in ("time", "ops"):
        from .errors import ActsearchError

        raise ActsearchError(f"unknown cost {base['cost']!r}: use 'time' or 'ops'")
    if "space" in given or "space_def" not in base:
        from .grammar import load_space

        base["space_def"] = space_to_dict(load_space(base["space"]))
    settings = SearchSettings(space=base["space"], dataset=dataset, fidelity=fid.name, sampler=base["sampler"],
                              seed=int(base["seed"]), seeds=int(base["seeds"]), cost=base["cost"],
                              space_def=base["space_def"])
    if settings.seeds < 1:
        from .errors import ActsearchError

        raise ActsearchError(f"--seeds must be at least 1, got {settings.seeds}")
    return args.study or study_name_for(settings), settings


def _device(name: str) -> str:
    from .train import resolve_device

    return str(resolve_device(name))


def _run_config(args: argparse.Namespace, trials: int, workers: int) -> Any:
    from .search import RunConfig

    if trials < 0 or workers < 0 or args.batch < 1:
        from .errors import ActsearchError

        raise ActsearchError("--trials and --workers must be ≥ 0, --batch ≥ 1")
    return RunConfig(trials=trials, workers=workers, batch=args.batch, pruner=args.pruner,
                     device=_device(args.device), plots=not args.no_plots, artifacts=args.artifacts)


def _run(args: argparse.Namespace, name: str, settings: Any, workers: int) -> int:
    from .leaderboard import format_leaderboard, leaderboard, study_summary
    from .search import run_search
    from .storage import resolve_storage

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress line says what matters
    url = resolve_storage(args.storage)
    fid = settings.fidelity if settings is not None else "standard"
    default = DEFAULT_TRIALS.get(fid, 32) * (4 if _device(args.device).startswith("cuda") else 1)
    trials = args.trials if args.trials is not None else default
    if settings is not None and settings.sampler == "exhaustive" and args.trials is None:
        trials = 10**9  # the sampler stops when every distinct function has been tried
    cfg = _run_config(args, trials, workers)
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
    if workers == 0:  # `--workers 0`: the study is set up for `actsearch worker`s elsewhere
        from .storage import BUDGET_ATTR

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


def cmd_search(args: argparse.Namespace) -> int:
    from .storage import resolve_storage

    name, settings = _settings(args, resolve_storage(args.storage))
    if settings.multi_objective and args.pruner not in ("none", "median"):
        print("actsearch: note: pruning is off for nsga2 (Optuna cannot prune multi-objective trials)",
              file=sys.stderr)
    return _run(args, name, settings, args.workers)


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import cmd_worker as run

    return run(args)


def cmd_top(args: argparse.Namespace) -> int:
    from .leaderboard import format_leaderboard, leaderboard, study_summary
    from .storage import load_study

    study = load_study(args.storage, args.study)
    print(study_summary(study))
    print(format_leaderboard(leaderboard(study), args.k))
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from .leaderboard import format_verify, verify
    from .storage import load_study

    study = load_study(args.storage, args.study)
    csv_path = args.csv or f"results/verify-{study.study_name}.csv"
    print(f"verifying the top {args.k} of {study.study_name} with ReLU and Swish: {args.seeds} seeds at "
          f"{args.fidelity} fidelity …", file=sys.stderr, flush=True)
    records = verify(study, args.k, args.seeds, args.fidelity, device=_device(args.device), batch=args.batch,
                     csv_path=csv_path)
    print(format_verify(records))
    print(f"saved: {csv_path} and the study's user attribute 'verify'")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .errors import ActsearchError
    from .leaderboard import export_top
    from .storage import load_study

    if not args.study:
        raise ActsearchError("export needs --study NAME (or --expr EXPR to export an expression)")
    path, rows = export_top(load_study(args.storage, args.study), args.k, args.output)
    print(f"wrote {path}: " + ", ".join(f"top{i} = {r.expression}" for i, r in enumerate(rows, 1)))
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    from .dashboard import free_port, serve

    try:
        serve(args.storage, host=args.host, port=args.port or free_port(args.host), artifacts=args.artifacts)
    except KeyboardInterrupt:  # Ctrl-C is how a dashboard is meant to stop
        print("dashboard stopped", file=sys.stderr)
    return 0


# -------------------------------------------------------------------------------------- wiring
def _storage(s: argparse.ArgumentParser) -> None:
    s.add_argument("--storage", metavar="URL", default=None,
                   help="Optuna storage: URL, .db file (SQLite) or .log file (journal) "
                        "(default: sqlite:///results/actsearch.db)")


def _run_options(s: argparse.ArgumentParser) -> None:
    s.add_argument("--pruner", default="median", help="median | hyperband | none (default: median)")
    s.add_argument("--batch", type=int, default=8, help="candidates trained together as one population (default 8)")
    s.add_argument("--artifacts", metavar="DIR", default=None, help="artifact folder (default: artifacts/ next to the storage)")
    s.add_argument("--no-plots", action="store_true", help="do not upload an f/f' plot per trial")
    s.add_argument("--quiet", action="store_true", help="no progress line")


def add_search_commands(sub: Any, cmd_export_expr: Command) -> None:
    s = sub.add_parser("search", help="the main job: search a space for activation functions")
    s.add_argument("--space", default=None, help="space file or shipped space name (default: paper-1)")
    s.add_argument("--dataset", default=None, help="dataset (default: the fidelity's, mnist1d)")
    s.add_argument("--fidelity", default=None, help="smoke | quick | standard | full (default: standard)")
    s.add_argument("--trials", type=int, default=None,
                   help="number of trials (default: a few minutes' budget: 24 at standard, 48 at quick; exhaustive: all)")
    s.add_argument("--sampler", default=None, help="tpe | random | exhaustive | nsga2 | evolution (default: tpe)")
    _storage(s)
    s.add_argument("--study", default=None, help="study name (default: derived from the options)")
    s.add_argument("--workers", type=int, default=1,
                   help="local worker processes (0: only create the study and its budget, for `actsearch worker`s)")
    s.add_argument("--seed", type=int, default=None, help="sampler and training seed (default: 0)")
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    s.add_argument("--seeds", type=int, default=None, help="training seeds per candidate (default: 1)")
    s.add_argument("--cost", default=None, help="nsga2's cost objective: time | ops (default: time)")
    _run_options(s)
    s.set_defaults(run=cmd_search)

    s = sub.add_parser("top", help="leaderboard of a study")
    s.add_argument("--study", required=True)
    _storage(s)
    s.add_argument("--k", type=int, default=10)
    s.set_defaults(run=cmd_top)

    s = sub.add_parser("verify", help="re-train the top K at higher fidelity over several seeds")
    s.add_argument("--study", required=True)
    _storage(s)
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--seeds", type=int, default=5)
    s.add_argument("--fidelity", default="full")
    s.add_argument("--device", default="auto")
    s.add_argument("--batch", type=int, default=16, help="networks trained together (default 16)")
    s.add_argument("--csv", metavar="FILE", default=None, help="CSV output (default results/verify-STUDY.csv)")
    s.set_defaults(run=cmd_verify)

    s = sub.add_parser("export", help="write the top K (or given expressions) as a Python module")
    s.add_argument("--study", help="study to export from")
    _storage(s)
    s.add_argument("--k", type=int, default=3)
    s.add_argument("--output", required=True, metavar="FILE.py")
    s.add_argument("--expr", action="append", default=[],
                   help="export this expression instead of a study's top K (repeatable)")
    s.add_argument("--name", action="append", default=[], help="name for each --expr")
    s.set_defaults(run=lambda a: cmd_export_expr(a) if a.expr else cmd_export(a))

    s = sub.add_parser("worker", help="one worker of a distributed search")
    _storage(s)
    s.add_argument("--study", required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--trials", type=int, default=None,
                   help="at most this many trials from this worker (default: until the study's budget is used)")
    _run_options(s)
    s.set_defaults(run=cmd_worker)

    s = sub.add_parser("dashboard", help="optuna-dashboard on the storage, with artifacts")
    _storage(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080, help="port (0: any free port)")
    s.add_argument("--artifacts", metavar="DIR", default=None, help="artifact folder (default: next to the storage)")
    s.set_defaults(run=cmd_dashboard)

    from .rediscover import add_rediscover_command

    add_rediscover_command(sub)
