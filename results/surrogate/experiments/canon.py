"""Experiment: canonical output features (mod sign and offset) in the replay and Spearman."""
import os
import sys, time, statistics
sys.path.insert(0, "/work/main/benchmarks")
import numpy as np, torch, optuna
optuna.logging.set_verbosity(optuna.logging.WARNING)
import bench_surrogate as bs
if os.environ.get("LOCAL"):
    exec(open("/tmp/exp/local.py").read().split("sys.argv = sys.argv[:7]")[0]); bs.SurrogateSampler = Local
from bench_search import load_table
from actsearch.evaluation import features as F
from actsearch.search import surrogate as S
from pathlib import Path

def canon(cand):
    x = torch.cat([F._QUANTILES, F._SAMPLE]).requires_grad_(True)
    with np.errstate(all="ignore"):
        y = cand.evaluate(x)
        (g,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    g = torch.zeros_like(x) if g is None else g
    y, g = y.detach().double(), g.detach().double()
    q = len(F._QUANTILES)
    ys = y[q:]; fin = torch.isfinite(ys)
    if fin.sum() < 2:
        return F.squash(np.full(2 * q + 1, np.nan))
    m = ys[fin].mean(); c = float(((ys[fin] - m) * F._SAMPLE.double()[fin]).mean())
    s = 1.0 if c >= 0 else -1.0
    sd = float(ys[fin].std())
    return np.concatenate([F.squash(s * (y[:q] - m)), F.squash(s * g[:q]), F.squash(np.array([sd]))])

table_path = sys.argv[1]; feat = sys.argv[2]; fid = sys.argv[3]; samplers = sys.argv[4].split(","); seeds = int(sys.argv[5])
space, table = load_table(table_path, None, "paper-1")
keys, mats, secs, build = bs.feature_table(space, table, fid, Path(feat))
cands, structures, distinct, _ = bs.table_candidates(space, table)
cpath = Path(feat + ".canon.npy")
if cpath.exists():
    mats["canon"] = np.load(cpath)
else:
    mats["canon"] = np.stack([canon(cands[k]) for k in keys]); np.save(cpath, mats["canon"])
have = set(keys)
bs._POOL["pool"] = [(k, tuple(sorted(p.items()))) for k, p in structures.items() if k in have]
sampled = len(table) < 0.95 * distinct
S.FEATURE_GROUPS = (*F.FEATURE_GROUPS, "canon")
ranked = sorted((e.val for e in table.values() if e.val is not None), reverse=True)
top = max(1, round(0.01 * len(table)))
if "rho" in sys.argv[6:]:
    bs.SUBSETS = (("output",), ("canon",), ("canon", "init"), ("canon", "init", "fisher"), ("output", "init", "fisher"), ("output","canon","init","fisher"))
    for r in bs.spearman_table(keys, mats, table, 100, 10, ["gp", "knn"]):
        print(r["predictor"], r["groups"], round(r["rho"], 3), round(r["rho_sd"], 3), flush=True)
bs.replay(space, table, samplers, seeds, 100, 8, int(os.environ.get("WARM", "0")) or None, keys, mats, ranked[top - 1], top, fid, sampled)
