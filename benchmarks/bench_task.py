"""Benchmark: what scoring through a :class:`actsearch.Task` costs per trial, at ``quick``.

Three ratios, every pair measured in the same run (best of ``--repeats``, interleaved):

1. **built-in task / engine**: the ``quick`` preset as a task (``builtin_task("quick").evaluate``,
   what a search calls) vs :func:`train_population` called directly on the same K candidates —
   the task layer's own overhead on the built-in path (the target: ≤ 1.05).
2. **user task / train_one**: the same network written as a user's task (MNIST-1D arrays,
   ``build`` an ``nn.Sequential`` 40-100-100-10 MLP, cross-entropy, accuracy, Adam 1e-2, batch
   100, 3000 steps, checkpoints every 500) trained one candidate at a time, vs the built-in
   solo trainer :func:`train_one` on the same candidates — the per-trial overhead of the task
   path for a network of the same size (the target: ≤ 1.05).
3. **user task / population**: the same user task vs the population engine per candidate — what
   a user's model gives up by not being stacked (it is trained one at a time: ``build`` is a
   black box whose layers and initialization the engine cannot reproduce).

    python benchmarks/bench_task.py               # ~3 minutes on 2 idle cores
    python benchmarks/bench_task.py --steps 1000 --repeats 4   # shorter runs, more of them
"""
from __future__ import annotations

import argparse
import time

import torch
from torch import nn

from actsearch import parse
from actsearch.evaluation import Task, builtin_task, get_dataset, get_fidelity, train_one, train_population

CANDIDATES = ["relu", "x*sigmoid(x)", "tanh(x)*softplus(x)", "max(x, tanh(x))"]


def user_task(steps: int) -> Task:
    d = get_dataset("mnist1d", torch.device("cpu"))
    flat = [t.flatten(1) if t.is_floating_point() else t for t in
            (d.x_train, d.y_train, d.x_val, d.y_val, d.x_test, d.y_test)]

    def build(act):
        return nn.Sequential(nn.Linear(40, 100), act(100), nn.Linear(100, 100), act(100), nn.Linear(100, 10))

    return Task("mnist1d-mlp", data=tuple(flat), build=build, loss="cross_entropy", metric="accuracy", steps=steps,
                batch_size=100, optimizer="adam", lr=1e-2, eval_every=min(500, steps))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=3000, help="training steps per candidate (quick: 3000)")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    fid = get_fidelity("quick").replace(steps=args.steps, eval_every=min(500, args.steps))
    cands = [c if c == "relu" else parse(c) for c in CANDIDATES]
    seeds = list(range(len(cands)))
    builtin = builtin_task(fid)
    mine = user_task(args.steps)
    mine.check()
    train_population(cands, fid.replace(steps=5, eval_every=5), seeds)  # warm: kernels built, data cached
    runs = {"engine": lambda: train_population(cands, fid, seeds),
            "builtin_task": lambda: builtin.evaluate(cands, seeds),
            "train_one": lambda: [train_one(c, fid, seed=s) for c, s in zip(cands, seeds)],
            "user_task": lambda: mine.evaluate(cands, seeds)}
    best = {k: float("inf") for k in runs}
    for r in range(args.repeats):
        # Each pair back to back, in alternating order: on a shared machine the load drifts.
        for pair in (("engine", "builtin_task"), ("train_one", "user_task")):
            for k in (pair if r % 2 == 0 else pair[::-1]):
                best[k] = min(best[k], timed(runs[k]))
    per = {k: v / len(cands) for k, v in best.items()}
    print(f"quick ({fid.describe()}), {len(cands)} candidates, best of {args.repeats}, torch threads "
          f"{torch.get_num_threads()} before the trainers' own policy")
    for k, v in per.items():
        print(f"  {k:<13} {v:7.3f} s per candidate")
    print(f"ratio built-in task / engine:      {best['builtin_task'] / best['engine']:.3f}   (target ≤ 1.05)")
    print(f"ratio user task / train_one:       {best['user_task'] / best['train_one']:.3f}   (target ≤ 1.05)")
    print(f"ratio user task / population:      {best['user_task'] / best['engine']:.3f}")
    accs = [r.test_accuracy for r in mine.evaluate(cands[:1], [0])] + [train_one(cands[0], fid, seed=0).test_accuracy]
    print(f"ReLU test accuracy, user task vs train_one (seed 0): {accs[0]:.4f} vs {accs[1]:.4f}")


if __name__ == "__main__":
    main()
