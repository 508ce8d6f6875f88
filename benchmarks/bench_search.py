"""Benchmark: how fast does each sampler put a Swish-like function in the top 5?

For every sampler (random, tpe, evolution, exhaustive) and search seed, a fresh study searches the
same space with the same evaluator (fidelity, batch, pruner) until a Swish-like candidate
(:func:`actsearch.shape.is_swish_like`) is among the top 5 of the search's *own* distinct
functions by validation accuracy — the reference activations the search enqueues (ReLU, Swish,
SiLU, GELU …) never count, a trial that duplicates one does not either — or ``--max-trials``
is spent. Measured per run: trials asked (enqueued references included, as they cost training),
networks trained, and wall time until that moment; a run that never gets there is reported as
"—" (censored at --max-trials) and counted in the "hit" column.

    python benchmarks/bench_search.py                       # swish-core, quick (MLP), 3 seeds: ~3-6 min on 2 cores
    python benchmarks/bench_search.py --max-trials 24      # what results/rediscovery/bench_search.txt ran (~2.5 min)
    python benchmarks/bench_search.py --fidelity smoke --space tiny --max-trials 24   # sanity check, ~1 min

Results depend on the fidelity: at `smoke` the data set is the toy `tiny` one, so the ranking is
mostly noise and the table only checks the machinery.

**Tabular mode** (``--table STUDY.db`` or ``--table RANKING.csv --space NAME``), the way NAS-Bench-101
benchmarks search strategies: when an exhaustive study of the space exists (every distinct function
trained once), a sampler's run is replayed against it — each function it asks for gets its recorded
validation accuracy and costs its recorded training time (population time / population size), a
function equivalent to one it already has (same key) costs nothing, a degenerate one fails at no
cost, as in a real search. No training, so many seeds per sampler are cheap; pruning is not
simulated. ``--ranking CSV`` writes the ground truth — the full ranking of the space, with each
function's key, which is all a later replay needs — and ``--plot PNG`` the progress plot.

    python benchmarks/bench_search.py --table results/rediscovery/exhaustive-quick/ranking.csv --space paper-1 \
        --samplers random,tpe,evolution,exhaustive --seeds 5 --max-trials 400 --batch 8 \
        --plot results/rediscovery/exhaustive-quick/progress.png
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from actsearch.analysis import is_swish_like
from actsearch.evaluation import get_fidelity
from actsearch.expressions import load_space, parse
from actsearch.search import RunConfig, SearchSettings, make_sampler, run_search, space_to_dict


class _Reached(Exception):
    pass


@dataclass
class Run:
    sampler: str
    seed: int
    trials: int | None  # trials asked when a Swish-like candidate first entered the top 5 (None: never)
    trained: int | None
    seconds: float | None
    total_trials: int
    total_seconds: float
    which: str = ""


def one_run(space_name: str, fidelity: str, sampler: str, seed: int, max_trials: int, batch: int,
            pruner: str, folder: Path) -> Run:
    space = load_space(space_name)
    settings = SearchSettings(space=space_name, dataset=_dataset(fidelity), fidelity=fidelity, sampler=sampler,
                              seed=seed, seeds=1, cost="time", space_def=space_to_dict(space))
    url = f"sqlite:///{folder / f'{sampler}-{seed}.db'}"
    own: dict[str, tuple[float, bool, str]] = {}  # key -> (val acc, swish-like, expression)
    state: dict[str, Any] = {"n": 0, "trained": 0, "hit": None}
    t0 = time.perf_counter()

    def on_trial(t: FrozenTrial) -> None:
        state["n"] += 1
        dup = "duplicate_of" in t.user_attrs
        if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not dup:
            state["trained"] += 1
        if t.state != TrialState.COMPLETE or dup or t.user_attrs.get("reference") or not t.values:
            return
        cand = space.build(t.params)
        own[cand.key] = (float(t.values[0]), is_swish_like(cand), cand.text)
        top5 = sorted(own.values(), key=lambda v: -v[0])[:5]
        hit = next((v for v in top5 if v[1]), None)
        if hit is not None:
            state["hit"] = (state["n"], state["trained"], time.perf_counter() - t0, hit[2])
            raise _Reached

    cfg = RunConfig(trials=max_trials, batch=batch, pruner=pruner, device="cpu", plots=False)
    try:
        run_search(url, f"bench-{sampler}-{seed}", settings, cfg, on_trial=on_trial)
    except _Reached:
        pass
    total = time.perf_counter() - t0
    if state["hit"] is None:
        return Run(sampler, seed, None, None, None, state["n"], total)
    n, trained, secs, which = state["hit"]
    return Run(sampler, seed, n, trained, secs, state["n"], total, which)


def _dataset(fidelity: str) -> str:

    return get_fidelity(fidelity).dataset


def _fmt(xs: list[float | int | None], digits: int = 0) -> str:
    got = [float(x) for x in xs if x is not None]
    if not got:
        return "—"
    med = statistics.median(got)
    return f"{med:.{digits}f} [{min(got):.{digits}f}–{max(got):.{digits}f}]"


# ------------------------------------------------------------------------------ tabular mode
@dataclass
class Entry:
    key: str  # the equivalence key (Candidate.key) the replay looks structures up by
    expression: str
    val: float | None  # None: diverged / failed
    test: float | None
    seconds: float  # this function's share of its population's training time
    swish_like: bool


def load_table(db: str, study_name: str | None, space_name: str) -> tuple[Any, dict[str, Entry]]:
    """The exhaustive study's functions by equivalence key — from the study itself, or from the
    ranking CSV :func:`write_ranking` made of it (what results/ keeps; the study is ~10 MB)."""

    if db.endswith(".csv"):
        import csv

        space = load_space(space_name)
        with open(db, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        num = lambda v: float(v) if v not in ("", "None") else None  # noqa: E731
        return space, {r["key"]: Entry(r["key"], r["expression"], num(r["val_accuracy"]), num(r["test_accuracy"]),
                                       float(r["train_seconds"]), r["swish_like"] == "True") for r in rows}
    url = db if "://" in db else f"sqlite:///{db}"
    name = study_name or optuna.get_all_study_names(url)[0]
    study = optuna.load_study(study_name=name, storage=url)
    space = load_space(study.user_attrs.get("settings", {}).get("space", "paper-1"))
    table: dict[str, Entry] = {}
    for t in study.get_trials(deepcopy=False):
        a = t.user_attrs
        if "key" not in a or "duplicate_of" in a or t.state not in (TrialState.COMPLETE, TrialState.FAIL):
            continue
        if a.get("status") == "degenerate":
            continue
        if t.state == TrialState.FAIL and a.get("status") not in ("diverged", "timeout"):
            continue  # interrupted (a killed worker): never evaluated, so not in the table
        ok = t.state == TrialState.COMPLETE and t.values
        try:
            swish = ok and is_swish_like(space.build(t.params) if t.params else parse(a["expression"]))
        except Exception:
            swish = False
        table[a["key"]] = Entry(a["key"], a.get("expression", "?"), float(t.values[0]) if ok else None,
                                a.get("test_accuracy_mean"), float(a.get("train_seconds", 0.0)) /
                                max(1, int(a.get("trained_with", 1))), bool(swish))
    return space, table


def tabular_run(space: Any, table: dict[str, Entry], sampler_name: str, seed: int, max_trials: int,
                batch: int, keys: dict[tuple[tuple[str, str], ...], tuple[str, bool]],
                sampler: Any = None, sampled: bool = False) -> tuple[Run, list[float]]:
    """Replay one search against the table; also returns best validation accuracy per evaluation.
    ``sampler``: this sampler object instead of ``make_sampler(sampler_name, …)`` (a variant).
    ``sampled``: the table holds a random part of the space (a ground truth too costly to make
    whole); the replay searches that part — a function outside it costs no trial (it is told as
    failed, with no key, so it teaches nothing) — up to ``30·max_trials`` asks."""

    if sampler is None:
        sampler = make_sampler(sampler_name, space, seed=seed, batch=batch)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    slots = space.slots()
    own: dict[str, Entry] = {}
    best: list[float] = []
    asked, seconds, hit = 0, 0.0, None
    outside = 0
    while asked < max_trials and outside < 30 * max_trials and not getattr(sampler, "exhausted", False):
        trials = [study.ask() for _ in range(batch)]  # on past a hit: the curve
        for trial in trials:
            asked += 1
            params = {n: trial.suggest_categorical(n, list(c)) for n, c in slots}
            fp = tuple(sorted(params.items()))
            if fp not in keys:
                try:
                    cand = space.build(params)
                    keys[fp] = (cand.key, cand.degenerate_reason is None)
                except Exception:
                    keys[fp] = ("", False)
            key, usable = keys[fp]
            entry = table.get(key) if usable else None
            if entry is None and usable and sampled:  # outside the sampled part: not a trial of the replay
                asked, outside = asked - 1, outside + 1
                study.tell(trial, state=TrialState.FAIL)
                continue
            if entry is None:  # degenerate, or not in the table (it was degenerate there too)
                study.tell(trial, state=TrialState.FAIL)
                continue
            trial.set_user_attr("key", key)  # the space samplers skip what the study already has
            if key not in own:  # a new function: trained, so it costs its training time
                own[key] = entry
                seconds += entry.seconds
                best.append(max([e.val for e in own.values() if e.val is not None], default=float("nan")))
            if entry.val is None:
                study.tell(trial, state=TrialState.FAIL)
                continue
            study.tell(trial, entry.val)
            top5 = sorted((e for e in own.values() if e.val is not None), key=lambda e: -e.val)[:5]  # type: ignore[operator]
            if hit is None and any(e.swish_like for e in top5):
                hit = (asked, len(own), seconds, next(e.expression for e in top5 if e.swish_like))
    if hit is None:
        return Run(sampler_name, seed, None, None, None, asked, seconds), best
    # total_* stay the budget's: the run went on past the hit for the progress curve
    return Run(sampler_name, seed, hit[0], hit[1], hit[2], asked, seconds, hit[3]), best


def write_ranking(table: dict[str, Entry], path: Path) -> list[Entry]:
    import csv

    ranked = sorted(table.values(), key=lambda e: (e.val is None, -(e.val or 0.0)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["rank", "expression", "val_accuracy", "test_accuracy", "swish_like", "train_seconds", "key"])
        for i, e in enumerate(ranked, 1):
            w.writerow([i if e.val is not None else "", e.expression, e.val, e.test, e.swish_like, e.seconds, e.key])
    return ranked


def plot_progress(curves: dict[str, list[list[float]]], truth: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    for name, runs in curves.items():
        n = min(len(r) for r in runs)
        mean = [statistics.mean(r[i] for r in runs) for i in range(n)]
        ax.plot(range(1, n + 1), mean, label=f"{name} (mean of {len(runs)} seeds)")
    ax.axhline(truth, color="grey", ls="--", lw=1, label="best in the space")
    ax.set_xscale("log")
    ax.set_xlabel("functions trained")
    ax.set_ylabel("best validation accuracy so far")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main_tabular(args: argparse.Namespace) -> list[Run]:
    space, table = load_table(args.table, args.study, args.space)
    ranked = sorted((e for e in table.values() if e.val is not None), key=lambda e: -e.val)  # type: ignore[operator]
    swish_ranks = [i for i, e in enumerate(ranked, 1) if e.swish_like]
    print(f"table {args.table}: {len(table)} distinct functions ({len(ranked)} trained to the end); best "
          f"{ranked[0].expression} {ranked[0].val:.4f}; Swish-like: {len(swish_ranks)}, best at rank "
          f"{swish_ranks[0] if swish_ranks else '—'} ({ranked[swish_ranks[0] - 1].expression if swish_ranks else ''})")
    print("true top 5: " + "; ".join(f"{e.expression} {e.val:.4f}" + (" [Swish-like]" if e.swish_like else "")
                                     for e in ranked[:5]))
    if args.ranking:
        write_ranking(table, Path(args.ranking))
    runs: list[Run] = []
    curves: dict[str, list[list[float]]] = {}
    keys: dict[tuple[tuple[str, str], ...], tuple[str, bool]] = {}
    for sampler in args.samplers.split(","):
        for seed in range(args.seeds):
            r, best = tabular_run(space, table, sampler, seed, args.max_trials, args.batch, keys, sampled=args.sampled)
            runs.append(r)
            curves.setdefault(sampler, []).append(best)
            got = (f"after {r.trials} trials ({r.trained} trained), {r.seconds:.0f} s of training: {r.which}"
                   if r.trials is not None else f"not within {r.total_trials} trials ({r.total_seconds:.0f} s)")
            print(f"{sampler:<10} seed {seed}: Swish-like in own top 5 {got}", flush=True)
    marks = [n for n in (10, 25, 50, 100, 200, 400, 800) if n <= args.max_trials]
    print(f"\nbest validation accuracy after N functions trained (mean over seeds; the space's best is "
          f"{ranked[0].val:.4f}, its 5th {ranked[4].val:.4f}, x*sigmoid(beta*x) ranks "
          f"{next((i for i, e in enumerate(ranked, 1) if e.expression == 'x*sigmoid(beta0*x)'), '—')})")
    print(f"{'sampler':<11}" + "".join(f"{'N=' + str(n):>9}" for n in marks))
    for name, runs_ in curves.items():
        cells = []
        for n in marks:
            got = [r[n - 1] for r in runs_ if len(r) >= n]
            cells.append(f"{statistics.mean(got):>9.4f}" if len(got) == len(runs_) else f"{'—':>9}")
        print(f"{name:<11}" + "".join(cells))
    if args.plot:
        plot_progress({k: v for k, v in curves.items() if v and min(map(len, v)) > 0}, ranked[0].val,  # type: ignore[arg-type]
                      Path(args.plot), f"{space.name}: best validation accuracy vs functions trained")
    return runs


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="swish-core")
    p.add_argument("--fidelity", default="quick")
    p.add_argument("--samplers", default="random,tpe,evolution,exhaustive")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-trials", type=int, default=48)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pruner", default="median")
    p.add_argument("--table", help="replay searches against this exhaustive study (SQLite file or URL) "
                                   "or its --ranking CSV (then --space names the space)")
    p.add_argument("--study", help="with --table: the study's name (default: the only one)")
    p.add_argument("--ranking", help="with --table: write the space's full ranking to this CSV")
    p.add_argument("--plot", help="with --table: best accuracy vs functions trained, per sampler (PNG)")
    p.add_argument("--sampled", action="store_true",
                   help="with --table: the table holds a random part of the space; functions outside it cost no trial")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs: list[Run] = []
    if args.table:
        runs = main_tabular(args)
    else:
        _live(args, runs)
    _summary(args, runs, "simulated training s" if args.table else "wall s")


def _live(args: argparse.Namespace, runs: list[Run]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in args.samplers.split(","):
            for seed in range(args.seeds):
                r = one_run(args.space, args.fidelity, sampler, seed, args.max_trials, args.batch, args.pruner,
                            Path(tmp))
                runs.append(r)
                got = (f"after {r.trials} trials ({r.trained} trained), {r.seconds:.1f} s: {r.which}"
                       if r.trials is not None else f"not within {r.total_trials} trials ({r.total_seconds:.1f} s)")
                print(f"{sampler:<10} seed {seed}: Swish-like in own top 5 {got}", flush=True)


def _summary(args: argparse.Namespace, runs: list[Run], seconds: str) -> None:
    what = (f"table {args.table}" if args.table else
            f"space {args.space}, fidelity {args.fidelity}, pruner {args.pruner}")
    print(f"\n{what}, batch {args.batch}, max {args.max_trials} trials; median [min–max] over the seeds "
          f"that got there")
    print(f"{'sampler':<11}{'hit':>6}  {'trials':<16}{'trained':<16}{seconds:<20}")
    for sampler in args.samplers.split(","):
        rs = [r for r in runs if r.sampler == sampler]
        hits = sum(r.trials is not None for r in rs)
        print(f"{sampler:<11}{hits:>3}/{len(rs):<2}  {_fmt([r.trials for r in rs]):<16}"
              f"{_fmt([r.trained for r in rs]):<16}{_fmt([r.seconds for r in rs], 1):<20}")


if __name__ == "__main__":
    main()
