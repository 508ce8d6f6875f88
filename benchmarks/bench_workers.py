"""Load figure for the distributed search: 1, 2 and 4 `actsearch worker` processes on one
PostgreSQL study, over the same fixed set of candidates at smoke fidelity.

    python benchmarks/bench_workers.py [--storage postgresql+psycopg2://user@host/db] [--n 24]

(default storage: $ACTSEARCH_TEST_POSTGRES_URL). Each round creates a fresh study (unique name),
queues the same N distinct candidates of the swish-core space with a budget of exactly those,
starts K workers and waits for them. Prints trials/minute per K, both by wall clock (launching the workers
to the last one's exit: process start-up included) and from the first trial's start to the last
one's end, the scaling ratios against one worker, and the count of lost (never finished) or duplicated (trained twice) candidates — which
must be 0. On a machine with fewer cores than workers the ratio measures contention, not scale.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def fixed_candidates(n: int) -> list[dict[str, str]]:
    from actsearch.expressions import load_space

    space = load_space("swish-core")
    seen, out = set(), []
    for choices in space.enumerate():
        cand = space.build(choices)
        if cand.degenerate_reason is None and cand.key not in seen:
            seen.add(cand.key)
            out.append(dict(choices))
        if len(out) == n:
            break
    return out


def one_round(url: str, workers: int, cands: list[dict[str, str]], batch: int) -> tuple[float, float, int, int, int]:
    import optuna
    from optuna.trial import TrialState

    from actsearch.search import (BUDGET_ATTR, RunConfig, SearchSettings, budget_state, counted, load_study,
                                  replaced_numbers, run_search)

    name = f"bench-{workers}w-{uuid.uuid4().hex[:6]}"
    settings = SearchSettings(space="swish-core", dataset="tiny", fidelity="smoke", sampler="random")
    from actsearch.expressions import load_space
    from actsearch.search import space_to_dict

    settings = SearchSettings(space="swish-core", dataset="tiny", fidelity="smoke", sampler="random",
                              space_def=space_to_dict(load_space("swish-core")))
    run_search(url, name, settings, RunConfig(trials=0, workers=0, plots=False, pruner="none"))
    study = load_study(url, name)
    for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):  # the references: not this benchmark
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    for c in cands:
        study.enqueue_trial(c)
    state = budget_state(study)
    study.set_user_attr(BUDGET_ATTR, state.counted)  # exactly the queued candidates
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "actsearch", "worker", "--storage", url, "--study", name, "--batch", str(batch),
            "--no-plots", "--quiet", "--device", "cpu", "--pruner", "none"]
    t0 = time.perf_counter()
    procs = [subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(workers)]
    for p in procs:
        _, err = p.communicate(timeout=1800)
        if p.returncode != 0:
            raise SystemExit(f"worker failed ({p.returncode}): {err[-500:]}")
    wall = time.perf_counter() - t0
    trials = load_study(url, name).get_trials()
    replaced = replaced_numbers(trials)
    mine = [t for t in trials if counted(t, replaced) and "reference" not in t.user_attrs and t.params]
    keys = {}
    for t in mine:
        if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs:
            keys[t.user_attrs["key"]] = keys.get(t.user_attrs["key"], 0) + 1
    want = {str(sorted(c.items())) for c in cands}
    got = {str(sorted(t.params.items())) for t in mine if t.state.is_finished()}
    lost = len(want - got)
    dup = sum(v - 1 for v in keys.values() if v > 1)
    done = [t for t in mine if t.datetime_start and t.datetime_complete]
    span = (max(t.datetime_complete for t in done) - min(t.datetime_start for t in done)).total_seconds()
    optuna.delete_study(study_name=name, storage=load_study(url, name)._storage)
    return wall, span, len(mine), lost, dup


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--storage", default=os.environ.get("ACTSEARCH_TEST_POSTGRES_URL"))
    ap.add_argument("--n", type=int, default=24, help="candidates per round (default 24)")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workers", default="1,2,4")
    args = ap.parse_args()
    if not args.storage:
        print("bench_workers: needs --storage URL or ACTSEARCH_TEST_POSTGRES_URL", file=sys.stderr)
        return 2
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    cands = fixed_candidates(args.n)
    print(f"# {len(cands)} fixed candidates (swish-core, smoke fidelity, batch {args.batch}) on "
          f"{args.storage.split('@')[-1]}; {os.cpu_count()} CPU cores")
    base = None
    for k in (int(w) for w in args.workers.split(",")):
        wall, span, n, lost, dup = one_round(args.storage, k, cands, args.batch)
        rate, busy = n / wall * 60, n / span * 60
        base = base or (rate, busy)
        print(f"workers={k}: {n} trials in {wall:.1f} s wall = {rate:.1f} trials/min (x{rate / base[0]:.2f} vs 1 "
              f"worker); first ask to last tell {span:.1f} s = {busy:.1f} trials/min (x{busy / base[1]:.2f}); "
              f"lost {lost}, duplicated {dup}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
