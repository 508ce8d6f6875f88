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

from actsearch.search import RunConfig, run_search
from actsearch.shape import is_swish_like
from actsearch.storage import SearchSettings, space_to_dict
from actsearch.grammar import load_space


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
    from actsearch.train import get_fidelity

    return get_fidelity(fidelity).dataset


def _fmt(xs: list[float | int | None], digits: int = 0) -> str:
    got = [float(x) for x in xs if x is not None]
    if not got:
        return "—"
    med = statistics.median(got)
    return f"{med:.{digits}f} [{min(got):.{digits}f}–{max(got):.{digits}f}]"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--space", default="swish-core")
    p.add_argument("--fidelity", default="quick")
    p.add_argument("--samplers", default="random,tpe,evolution,exhaustive")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--max-trials", type=int, default=48)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--pruner", default="median")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        for sampler in args.samplers.split(","):
            for seed in range(args.seeds):
                r = one_run(args.space, args.fidelity, sampler, seed, args.max_trials, args.batch, args.pruner,
                            Path(tmp))
                runs.append(r)
                got = (f"after {r.trials} trials ({r.trained} trained), {r.seconds:.1f} s: {r.which}"
                       if r.trials is not None else f"not within {r.total_trials} trials ({r.total_seconds:.1f} s)")
                print(f"{sampler:<10} seed {seed}: Swish-like in own top 5 {got}", flush=True)
    print(f"\nspace {args.space}, fidelity {args.fidelity}, batch {args.batch}, pruner {args.pruner}, "
          f"max {args.max_trials} trials; median [min–max] over the seeds that got there")
    print(f"{'sampler':<11}{'hit':>6}  {'trials':<16}{'trained':<16}{'wall s':<20}")
    for sampler in args.samplers.split(","):
        rs = [r for r in runs if r.sampler == sampler]
        hits = sum(r.trials is not None for r in rs)
        print(f"{sampler:<11}{hits:>3}/{len(rs):<2}  {_fmt([r.trials for r in rs]):<16}"
              f"{_fmt([r.trained for r in rs]):<16}{_fmt([r.seconds for r in rs], 1):<20}")


if __name__ == "__main__":
    main()
