"""Benchmark: the README's main job end to end — the default ``actsearch search``, idle and busy.

Runs ``actsearch search`` on its embedded defaults (the paper's 1-core-unit space, 24 trials at
``standard``, TPE, references included) into a fresh SQLite study in a temporary folder, as a new
user's first command does, and prints its wall time and trials per minute; then the same again
beside one busy process (``python -c "while True: pass"``, started and stopped here), and the
contended/idle ratio. The dataset cache and the kernel cache are warmed by a first run that is
not timed (``--cold`` times that one too), so both timed runs do the same work.

    python benchmarks/bench_e2e.py            # ~5 minutes on 2 cores
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import optuna


def one_search(folder: str, name: str, trials: int, extra: list[str]) -> tuple[float, int]:
    """Wall seconds of one default search into a fresh study, and how many trials it finished."""
    url = f"sqlite:///{os.path.join(folder, name)}.db"
    argv = [sys.executable, "-m", "actsearch", "search", "--storage", url, "--study", name, "--quiet",
            "--trials", str(trials), *extra]
    t0 = time.perf_counter()
    out = subprocess.run(argv, cwd=folder, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        sys.exit(f"search failed ({out.returncode}): {out.stderr[-2000:]}")
    study = optuna.load_study(study_name=name, storage=url)
    done = sum(t.state.is_finished() for t in study.get_trials(deepcopy=False))
    return seconds, done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=24, help="the search's --trials (default 24, the CLI's)")
    ap.add_argument("--cold", action="store_true", help="also time the first, cold run")
    ap.add_argument("--extra", default="", help="more search options, space-separated")
    args = ap.parse_args()
    extra = args.extra.split()
    with tempfile.TemporaryDirectory() as folder:
        seconds, done = one_search(folder, "warm", args.trials, extra)
        if args.cold:
            print(f"cold (dataset and kernel caches as found): {seconds:.1f}s, {done} trials")
        idle, n_idle = one_search(folder, "idle", args.trials, extra)
        print(f"default search idle: {idle:.1f}s for {n_idle} finished trials (references included), "
              f"{60 * n_idle / idle:.1f} trials/min")
        busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            cont, n_cont = one_search(folder, "busy", args.trials, extra)
        finally:
            busy.kill()
            busy.wait()
        print(f"default search beside one busy process: {cont:.1f}s for {n_cont} finished trials, "
              f"{60 * n_cont / cont:.1f} trials/min")
        print(f"contended/idle wall time ratio {cont / idle:.2f}x")


if __name__ == "__main__":
    main()
