"""Benchmark: does the surrogate predict accuracy without training, and does it search better?

Against a ground truth — an exhaustive study's ranking (every distinct function of a space trained
once, ``results/rediscovery/exhaustive-quick/ranking.csv`` for paper-1 at ``quick``):

1. **Cost.** Every function's features (:mod:`actsearch.evaluation.features`, by group) are
   computed once and timed, beside the time of one batched ``standard`` training per candidate on
   the same threads (the issue's budget: ≤ 2% of it).
2. **Prediction.** With ``--train`` random functions of the table as the training set, Spearman's
   ρ between predicted and recorded validation accuracy over the rest (the functions that trained
   to the end), per feature group alone and together, per predictor; mean ± sd over ``--draws``
   draws. The hurdle's recall of failures and the fraction of good functions it wrongly skips.
3. **Search.** The replay benchmark of ``bench_search.py --table`` (each asked function gets its
   recorded accuracy) for each sampler over ``--seeds`` seeds: best validation accuracy after 50
   and 100 functions trained, and the functions trained until one of the table's top 1% is found
   (median over the seeds; a seed that never finds one counts as more than ``--max-trials``).
   ``surrogate:PREDICTOR:GROUP+GROUP`` names a variant (``surrogate`` alone is the default one).

    python benchmarks/bench_surrogate.py --table results/rediscovery/exhaustive-quick/ranking.csv --space paper-1 \\
        --samplers random,tpe,evolution,surrogate --seeds 10 --max-trials 100 --batch 8

The features of the whole table are cached in ``--features`` (computed if missing: ~4 min on one
thread for paper-1's 4,026 functions with all three groups).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import optuna
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_search import Entry, load_table, tabular_run  # noqa: E402  (the replay is bench_search's)

from actsearch.evaluation import FEATURE_GROUPS, cache_dir, candidate_features, get_fidelity, train_population  # noqa: E402
from actsearch.expressions import Candidate, Space, parse  # noqa: E402
from actsearch.search import KAPPA, DEFAULT_GROUPS, DEFAULT_PREDICTOR, FeatureCache, SurrogateSampler, make_predictor, make_sampler  # noqa: E402

SUBSETS: tuple[tuple[str, ...], ...] = (("output",), ("init",), ("fisher",), ("output", "init"),
                                        ("output", "fisher"), ("output", "init", "fisher"))


# ------------------------------------------------------------------------------ features
def table_candidates(space: Space, table: dict[str, Entry]
                     ) -> tuple[dict[str, Candidate], dict[str, dict[str, str]], int, float]:
    """One candidate per key of the table and its structure (the first of the enumeration with
    that key), how many distinct non-degenerate functions the space has, and the seconds per
    structure it took to build and key them."""
    out: dict[str, Candidate] = {}
    structures: dict[str, dict[str, str]] = {}
    usable: set[str] = set()
    t0, n = time.perf_counter(), 0
    for params in space.enumerate():
        n += 1
        try:
            cand = space.build(params)
            key = cand.key
        except Exception:
            continue
        if cand.degenerate_reason is None:
            usable.add(key)
        if key in table and key not in out:
            out[key], structures[key] = cand, dict(params)
    return out, structures, len(usable), (time.perf_counter() - t0) / max(1, n)


def feature_table(cands: dict[str, Candidate], fidelity: str, path: Path
                  ) -> tuple[list[str], dict[str, np.ndarray], dict[str, float]]:
    """(keys, group -> (n, d) matrix, group -> mean seconds per candidate) of the table's
    candidates, read from ``path`` if it holds them, else computed and written there."""
    if path.exists():
        with np.load(path) as f:
            keys = [str(k) for k in f["keys"].tolist()]
            mats = {g: f[f"x_{g}"] for g in FEATURE_GROUPS}
            secs = {g: float(f[f"s_{g}"]) for g in FEATURE_GROUPS}
            return keys, mats, secs
    keys = sorted(cands)
    rows: dict[str, list[np.ndarray]] = {g: [] for g in FEATURE_GROUPS}
    spent = {g: 0.0 for g in FEATURE_GROUPS}
    for i, k in enumerate(keys):
        fs = candidate_features(cands[k], fidelity, FEATURE_GROUPS)
        for g in FEATURE_GROUPS:
            rows[g].append(fs.groups[g])
            spent[g] += fs.seconds[g]
        if (i + 1) % 500 == 0:
            print(f"  features: {i + 1}/{len(keys)}", file=sys.stderr, flush=True)
    mats = {g: np.stack(rows[g]) for g in FEATURE_GROUPS}
    secs = {g: spent[g] / len(keys) for g in FEATURE_GROUPS}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, keys=np.array(keys),
                        **{f"x_{g}": mats[g] for g in FEATURE_GROUPS}, **{f"s_{g}": secs[g] for g in FEATURE_GROUPS})
    return keys, mats, secs


def standard_seconds(members: int = 8) -> float:
    """Seconds per candidate of one batched `standard` training of ``members`` baseline functions."""
    names = ["relu", "silu", "gelu", "tanh", "elu", "softplus", "x*sigmoid(beta*x)", "max(x, tanh(x))"]
    acts = [parse(n if "(" in n else f"{n}(x)") for n in (names * members)[:members]]
    t0 = time.perf_counter()
    train_population(acts, get_fidelity("standard"), list(range(members)), device="cpu")
    return (time.perf_counter() - t0) / members


# ------------------------------------------------------------------------------ prediction
def spearman_table(keys: list[str], mats: dict[str, np.ndarray], table: dict[str, Entry], train: int,
                   draws: int, predictors: Sequence[str]) -> list[dict[str, Any]]:
    vals = np.array([table[k].val if table[k].val is not None else np.nan for k in keys])
    rows = []
    for name in predictors:
        for subset in SUBSETS:
            x = np.concatenate([mats[g] for g in subset], axis=1)
            rhos, recall, wrong, fit_s = [], [], [], []
            for d in range(draws):
                idx = np.random.RandomState(d).permutation(len(keys))
                tr, te = idx[:train], idx[train:]
                ok = tr[~np.isnan(vals[tr])]
                bad = tr[np.isnan(vals[tr])]
                t0 = time.perf_counter()
                # "-trainscale": standardize on the training set only, not on every candidate
                # "-trainscale": scaled on the training set only; "-standard": mean/sd instead of quantiles
                base, _, variant = name.partition("-")
                model = make_predictor(base, seed=d, transform="standard" if variant else None).fit(
                    x[ok], vals[ok], x[bad], None if variant == "trainscale" else x)
                pred = model.predict(x[te])
                fit_s.append(time.perf_counter() - t0)
                good = ~np.isnan(vals[te])
                rhos.append(float(spearmanr(pred.mean[good], vals[te][good]).statistic))
                skipped = pred.p_fail > 0.5
                recall.append(float(skipped[~good].mean()) if (~good).any() else np.nan)
                wrong.append(float(skipped[good].mean()))
            rows.append({"predictor": name, "groups": "+".join(subset), "rho": statistics.mean(rhos),
                         "rho_sd": statistics.stdev(rhos) if len(rhos) > 1 else 0.0,
                         "hurdle_recall": float(np.nanmean(recall)), "hurdle_wrong": statistics.mean(wrong),
                         "fit_s": statistics.mean(fit_s)})
    return rows


# ------------------------------------------------------------------------------ search
def surrogate_variant(spec: str, space: Space, seed: int, batch: int, warmup: int | None,
                      caches: dict[tuple[str, ...], FeatureCache], keys: list[str],
                      mats: dict[str, np.ndarray], fidelity: str) -> SurrogateSampler:
    # surrogate[:PREDICTOR[:GROUP+GROUP[:KAPPA[:TRANSFORM[:noimpute]]]]]
    parts = spec.split(":")
    predictor = parts[1] if len(parts) > 1 and parts[1] else DEFAULT_PREDICTOR
    groups = tuple(parts[2].split("+")) if len(parts) > 2 and parts[2] else DEFAULT_GROUPS
    kappa = float(parts[3]) if len(parts) > 3 and parts[3] else KAPPA
    transform = parts[4] if len(parts) > 4 and parts[4] else None
    impute = not (len(parts) > 5 and parts[5] == "noimpute")
    if groups not in caches:
        cache = FeatureCache(fidelity, groups)
        x = np.concatenate([mats[g] for g in groups], axis=1)
        cache.vectors.update(zip(keys, x))
        caches[groups] = cache
    # the pool: the table's functions (for a sampled table, the part of the space the replay searches)
    sampler = SurrogateSampler(space, fidelity, seed=seed, predictor=predictor, groups=groups, cache=caches[groups],
                               warmup=warmup if warmup is not None else max(10, 2 * batch), pool=_POOL["pool"],
                               kappa=kappa, transform=transform, impute=impute)
    return sampler


_POOL: dict[str, Any] = {}  # "pool": (key, structure) of every table function with features, set by main()


def replay(space: Space, table: dict[str, Entry], samplers: Sequence[str], seeds: int, max_trials: int,
           batch: int, warmup: int | None, keys: list[str], mats: dict[str, np.ndarray], threshold: float,
           top: int, fidelity: str, sampled: bool) -> dict[str, list[list[float]]]:
    """Replay every sampler; each one's row is printed as soon as its seeds are done."""
    curves: dict[str, list[list[float]]] = {}
    memo: dict[Any, tuple[str, bool]] = {}
    caches: dict[tuple[str, ...], FeatureCache] = {}
    marks = [n for n in (10, 25, 50, 100, 200) if n <= max_trials]
    print(f"\nreplay, batch {batch}, {max_trials} trials, {seeds} seeds: mean best validation "
          f"accuracy after N functions trained; functions trained until one of the top {top} "
          f"(median [min–max]; '>' = not found within the budget)")
    print(f"{'sampler':<34}" + "".join(f"{'N=' + str(n):>9}" for n in marks) + f"   {'to top 1%':<18}found  seconds",
          flush=True)
    for name in samplers:
        t0 = time.perf_counter()
        for seed in range(seeds):
            sampler = (surrogate_variant(name, space, seed, batch, warmup, caches, keys, mats, fidelity)
                       if name.startswith("surrogate") else make_sampler(name, space, seed=seed, batch=batch))
            _, best = tabular_run(space, table, name, seed, max_trials, batch, memo, sampler=sampler, sampled=sampled)
            curves.setdefault(name, []).append(best)
        runs = curves[name]
        cells = []
        for n in marks:
            got = [r[n - 1] for r in runs if len(r) >= n]
            cells.append(f"{statistics.mean(got):>9.4f}" if len(got) == len(runs) else f"{'—':>9}")
        hits = [trials_to(r, threshold) for r in runs]
        big = max_trials + 1
        med = statistics.median([h if h is not None else big for h in hits])
        found = [h for h in hits if h is not None]
        rng = f"[{min(found)}–{max(found)}]" if found else ""
        medtxt = f">{max_trials}" if med == big else f"{med:g}"
        print(f"{name:<34}" + "".join(cells) + f"   {medtxt + ' ' + rng:<18}{len(found):>2}/{len(runs):<4}"
              f"{time.perf_counter() - t0:>6.0f}", flush=True)
    return curves


def trials_to(best: list[float], threshold: float) -> int | None:
    return next((i + 1 for i, v in enumerate(best) if v >= threshold), None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--table", default="results/rediscovery/exhaustive-quick/ranking.csv")
    p.add_argument("--space", default="paper-1")
    p.add_argument("--fidelity", default="quick", help="the table's fidelity (the features' child network)")
    p.add_argument("--features", default=None, help="feature cache (.npz; default under the actsearch cache)")
    p.add_argument("--train", type=int, default=100)
    p.add_argument("--draws", type=int, default=10)
    p.add_argument("--predictors", default="gp,knn")
    p.add_argument("--samplers", default="random,tpe,evolution,surrogate")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--max-trials", type=int, default=100)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--warmup", type=int, default=None, help="surrogate warm-up trials (default max(10, 2·batch))")
    p.add_argument("--standard-seconds", type=float, default=None,
                   help="seconds per candidate of a standard training (default: measured here)")
    p.add_argument("--skip", default="", help="comma-separated parts to skip: cost, prediction, search")
    args = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    skip = set(args.skip.split(","))
    space, table = load_table(args.table, None, args.space)
    path = Path(args.features) if args.features else cache_dir() / f"surrogate-features-{args.space}-{args.fidelity}.npz"
    cands, structures, distinct, build = table_candidates(space, table)  # every structure keyed once (~1 min)
    keys, mats, secs = feature_table(cands, args.fidelity, path)
    have = set(keys)
    _POOL["pool"] = [(k, tuple(sorted(p.items()))) for k, p in structures.items() if k in have]
    sampled = len(table) < 0.95 * distinct
    ranked = sorted((e.val for e in table.values() if e.val is not None), reverse=True)
    top = max(1, round(0.01 * len(table)))
    print(f"table {args.table}: {len(table)} distinct functions, {len(keys)} with features"
          + (f" — a random {len(table) / distinct:.0%} of the space's {distinct:,} (the replay searches that part)"
             if sampled else "") + f"; top 1% = top {top} (val ≥ {ranked[top - 1]:.4f}); best {ranked[0]:.4f}")

    if "cost" not in skip:
        import torch

        std = args.standard_seconds if args.standard_seconds is not None else standard_seconds()
        # the features at the search's default fidelity, timed now on the same threads as the training
        sample = [cands[k] for k in keys[:: max(1, len(keys) // 48)]][:48]
        now = {g: 0.0 for g in FEATURE_GROUPS}
        for c in sample:
            for g, sec in candidate_features(c, "standard", FEATURE_GROUPS).seconds.items():
                now[g] += sec / len(sample)
        print(f"\nfeature cost per candidate, measured in this run on {torch.get_num_threads()} torch thread(s): "
              f"{len(sample)} of the table's functions at `standard`, beside one batched `standard` training of 8 "
              f"baselines: {std:.2f} s per candidate (building + keying a structure, which every sampler pays: "
              f"{1e3 * build:.1f} ms). The table's own features ({args.fidelity}, from {path.name}) for reference.")
        print(f"{'groups':<22}{'ms at standard':>15}{'% of standard':>15}{'ms at ' + args.fidelity:>16}")
        for subset in SUBSETS:
            ms = 1e3 * sum(now[g] for g in subset)
            print(f"{'+'.join(subset):<22}{ms:>15.1f}{100 * ms / 1e3 / std:>14.2f}%"
                  f"{1e3 * sum(secs[g] for g in subset):>16.1f}")

    if "prediction" not in skip:
        rows = spearman_table(keys, mats, table, args.train, args.draws, args.predictors.split(","))
        print(f"\nSpearman ρ, predicted vs recorded validation accuracy, {args.train} random functions as the "
              f"training set, over the rest that trained (mean ± sd over {args.draws} draws); hurdle: share of "
              f"the rest's failures it skips / of its trained functions it wrongly skips")
        print(f"{'predictor':<10}{'groups':<22}{'rho':>16}{'ρ per ms':>10}{'hurdle':>16}{'fit s':>8}")
        for r in rows:
            ms = 1e3 * sum(secs[g] for g in r["groups"].split("+"))
            print(f"{r['predictor']:<10}{r['groups']:<22}{r['rho']:>9.3f} ± {r['rho_sd']:.3f}{r['rho'] / ms:>10.3f}"
                  f"{r['hurdle_recall']:>9.2f} / {r['hurdle_wrong']:.2f}{r['fit_s']:>8.2f}")

    if "search" not in skip:
        replay(space, table, args.samplers.split(","), args.seeds, args.max_trials, args.batch, args.warmup, keys,
               mats, ranked[top - 1], top, args.fidelity, sampled)


if __name__ == "__main__":
    main()
