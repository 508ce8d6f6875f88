"""``--sampler surrogate``: train next the untrained function a predictor rates best.

After ``warmup`` random trials, every ask fits a :class:`~actsearch.search.predictor.Predictor`
(by default AQuaSurF's kNN on an embedding of all three feature groups — what found the best
functions in the replay of results/surrogate/)
on the study's finished trials (accuracy of the trained ones, failure of the diverged ones) and
proposes, among the *pool* of distinct non-degenerate functions (by equivalence key) the study has
not tried, the one with the highest acquisition (UCB, predicted failures skipped). The pool is the
whole enumerated space when it has at most :data:`POOL_ENUMERATE` structures (paper-1: 6,250), else
``pool_size`` structures drawn at random once (seeded; ≥ 10,000).

Features (:mod:`actsearch.evaluation.features`) are computed once per key and process
(:class:`FeatureCache`, shared by every sampler of the same fidelity and groups), so repeated asks
cost a fit and one prediction over the pool. A batch — several trials asked before any is told —
stays apart because keys already RUNNING count as tried (:meth:`SpaceSampler._tried`, as for the
other samplers), and the fit — reused until a trial is told — believes each RUNNING function
at its predicted mean (a kriging believer: the batch spreads out instead of piling on one peak). Workers, pruning and resuming work as
for the other samplers: everything the sampler knows is read from the study.
"""
from __future__ import annotations

import hashlib
import os
import sys
import time
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..errors import ActsearchError
from ..evaluation import FEATURE_GROUPS, FEATURES_VERSION, Fidelity, cache_dir, candidate_features, get_fidelity
from ..expressions import Candidate, Space, parse
from .predictor import KAPPA, Predictor, make_predictor
from ._space_sampler import Params, SpaceSampler, frozen

__all__ = ["SurrogateSampler", "FeatureCache", "disk_path", "POOL_ENUMERATE", "POOL_SIZE", "DEFAULT_GROUPS", "DEFAULT_PREDICTOR",
           "study_training_set"]

POOL_ENUMERATE = 200_000  # spaces up to this many structures: the pool is all of them
POOL_SIZE = 10_000  # otherwise this many structures drawn at random
#: The feature groups the sampler (and ``actsearch predict``) use: all three. In the replay of
#: results/surrogate/replay.txt the kNN on all three found the best functions (0.736 at 50 trained,
#: 0.7545 at 100, 10 seeds); for ranking (Spearman) the GP on all three was best (0.665).
DEFAULT_GROUPS: tuple[str, ...] = ("output", "init", "fisher")
#: The sampler's predictor, by the replay (the GP ranks better overall, the kNN finds better functions).
DEFAULT_PREDICTOR = "knn"
#: A FAIL trial with one of these statuses (or none, as a replayed one) is a failure the hurdle learns from.
_LEARNED_FAILURES = ("diverged", "timeout", "error", None)


class FeatureCache:
    """Feature vectors by equivalence key, for one fidelity and set of groups, with the seconds they
    took; :meth:`save` / :meth:`load` keep them in a file. The :meth:`shared` one (process-wide) is
    also kept on disk (:meth:`persist`): features are deterministic, so a later search or
    ``actsearch predict`` of the same fidelity reads them instead of computing them again."""

    _shared: ClassVar[dict[tuple[str, tuple[str, ...]], FeatureCache]] = {}

    def __init__(self, fidelity: Fidelity | str, groups: Sequence[str] = DEFAULT_GROUPS,
                 path: Path | None = None) -> None:
        self.fidelity = get_fidelity(fidelity)
        self.groups = tuple(groups)
        self.vectors: dict[str, np.ndarray] = {}
        self.seconds = 0.0
        self.computed = 0
        self.path = path  # where :meth:`persist` keeps the vectors (None: nowhere)
        self._persisted = 0

    @classmethod
    def shared(cls, fidelity: Fidelity | str, groups: Sequence[str] = DEFAULT_GROUPS) -> FeatureCache:
        fid = get_fidelity(fidelity)
        k = (fid.name, tuple(groups))
        if k not in cls._shared:
            path = disk_path(fid, groups)
            cache = cls(fid, groups, path)
            try:
                cache._persisted = cache.load(path) if path.exists() else 0
            except Exception:  # unreadable or of other features (a concurrent writer, an older file): recompute
                cache.vectors.clear()
            cls._shared[k] = cache
        return cls._shared[k]

    def persist(self) -> None:
        """Write the vectors to :attr:`path` if it has some the file lacks (atomically: workers
        sharing a cache folder each replace the whole file)."""
        if self.path is None or len(self.vectors) <= self._persisted:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.stem}.{os.getpid()}.tmp.npz")
        self.save(tmp)
        os.replace(tmp, self.path)
        self._persisted = len(self.vectors)

    def get(self, cand: Candidate) -> np.ndarray:
        key = cand.key
        if key not in self.vectors:
            t0 = time.perf_counter()
            self.vectors[key] = candidate_features(cand, self.fidelity, self.groups).vector(self.groups)
            self.seconds += time.perf_counter() - t0
            self.computed += 1
        return self.vectors[key]

    def save(self, path: str | Path) -> None:
        keys = sorted(self.vectors)
        np.savez_compressed(path, keys=np.array(keys), vectors=np.stack([self.vectors[k] for k in keys]),
                            fidelity=self.fidelity.name, groups=np.array(self.groups), stamp=_stamp(self.fidelity))

    def load(self, path: str | Path) -> int:
        """Add the vectors saved in ``path`` (same fidelity — definition included — groups and
        feature code version); returns how many."""
        with np.load(path) as f:
            if (str(f["fidelity"]) != self.fidelity.name or tuple(f["groups"].tolist()) != self.groups
                    or "stamp" not in f or str(f["stamp"]) != _stamp(self.fidelity)):
                raise ValueError(f"{path}: features of {f['fidelity']} {tuple(f['groups'].tolist())}, "
                                 f"not {self.fidelity.name} {self.groups} (or of another feature version)")
            for k, v in zip(f["keys"].tolist(), f["vectors"]):
                self.vectors.setdefault(str(k), v)
            return len(f["keys"])


def _stamp(fid: Fidelity) -> str:
    """What the features depend on besides the function: their code's version and the fidelity's
    definition (its child network and data)."""
    return f"v{FEATURES_VERSION} {fid!r}"


def disk_path(fidelity: Fidelity | str, groups: Sequence[str] = DEFAULT_GROUPS) -> Path:
    """Where the shared cache of a fidelity's features lives: under ``$ACTSEARCH_CACHE``."""
    fid = get_fidelity(fidelity)
    digest = hashlib.sha256(_stamp(fid).encode()).hexdigest()[:10]
    return cache_dir() / "features" / f"{fid.name}-{'+'.join(groups)}-{digest}.npz"


def _candidate_of(t: FrozenTrial, space: Space, names: set[str]) -> Candidate | None:
    """The function a trial evaluated: from its structure, or its recorded expression (references)."""
    try:
        if t.params and t.params.keys() >= names:
            return space.build({n: str(t.params[n]) for n in names})
        if "expression" in t.user_attrs:
            return parse(str(t.user_attrs["expression"]))
    except Exception:  # a stored trial the current code cannot rebuild is left out of the fit
        return None
    return None


def study_training_set(study: Study, space: Space, cache: FeatureCache
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """(features of trained functions, their scores — maximized, features of failed functions,
    trained keys) from a study's trials, one row per distinct key (the first trial of a key wins:
    duplicates copy its value). Pruned trials count with their last reported checkpoint."""
    sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
    names = {n for n, _ in space.slots()}
    ok: dict[str, tuple[np.ndarray, float]] = {}
    failed: dict[str, np.ndarray] = {}
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        key = t.user_attrs.get("key")
        if key is None or key in ok or key in failed or "duplicate_of" in t.user_attrs:
            continue
        if t.state == TrialState.COMPLETE and t.values:
            value = float(t.values[0])
        elif t.state == TrialState.PRUNED and t.intermediate_values:
            value = float(t.intermediate_values[max(t.intermediate_values)])
        elif t.state == TrialState.FAIL and t.user_attrs.get("status") in _LEARNED_FAILURES:
            value = float("nan")
        else:
            continue
        if key in cache.vectors:  # the trial's key attribute is its candidate's key (Batch._describe)
            vec = cache.vectors[key]
        else:
            cand = _candidate_of(t, space, names)
            if cand is None or cand.key != key:
                continue
            vec = cache.get(cand)
        if np.isnan(value):
            failed[key] = vec
        else:
            ok[key] = (vec, sign * value)
    width = len(next(iter(cache.vectors.values()))) if cache.vectors else 0
    x_ok = np.stack([v for v, _ in ok.values()]) if ok else np.zeros((0, width))
    y_ok = np.array([y for _, y in ok.values()])
    x_failed = np.stack(list(failed.values())) if failed else np.zeros((0, width))
    return x_ok, y_ok, x_failed, list(ok)


class SurrogateSampler(SpaceSampler):
    """Propose the untried function with the best predicted accuracy (UCB); see the module doc."""

    def __init__(self, space: Space, fidelity: Fidelity | str = "quick", *, seed: int | None = None,
                 warmup: int = 10, predictor: str = DEFAULT_PREDICTOR, kappa: float = KAPPA, hurdle: bool = True,
                 groups: Sequence[str] = DEFAULT_GROUPS, pool_size: int = POOL_SIZE,
                 cache: FeatureCache | None = None, pool: Sequence[tuple[str, Params]] | None = None,
                 transform: str | None = None, impute: bool = True) -> None:
        super().__init__(space, seed)
        unknown = set(groups) - set(FEATURE_GROUPS)
        if unknown:
            raise ActsearchError(f"unknown feature groups {sorted(unknown)} (known: {', '.join(FEATURE_GROUPS)})")
        self.warmup, self.kappa, self.pool_size = max(1, warmup), kappa, pool_size
        self.cache = cache if cache is not None else FeatureCache.shared(fidelity, groups)
        self._predictor_name, self._hurdle, self._seed = predictor, hurdle, 0 if seed is None else seed
        self._transform, self._impute = transform, impute
        # (key, structure), one per distinct function; given: another sampler's pool of this space (replays)
        self._pool: list[tuple[str, Params]] | None = list(pool) if pool is not None else None
        self._pool_x: np.ndarray | None = None
        self._fit: tuple[tuple[int, ...], Predictor | None] | None = None  # (told trial numbers, its fit)

    def pool(self) -> list[tuple[str, Params]]:
        """The distinct non-degenerate functions the sampler chooses among (built on first use:
        every function featurized once — minutes for paper-1, said on stderr — then read from the
        disk cache by later processes)."""
        if self._pool is None or self._pool_x is None:
            t0 = time.perf_counter()
            self._pool = self._pool if self._pool is not None else self._build_pool()
            todo = sum(k not in self.cache.vectors for k, _ in self._pool)
            if todo:
                print(f"surrogate: featurizing {todo:,} of the pool's {len(self._pool):,} functions at "
                      f"{self.cache.fidelity.name} (once{'; kept in ' + str(self.cache.path) if self.cache.path else ''})",
                      file=sys.stderr, flush=True)
            self._pool_x = np.stack([self.cache.get(self._space.build(dict(p))) if k not in self.cache.vectors
                                     else self.cache.vectors[k] for k, p in self._pool])
            self.cache.persist()
            if todo:
                print(f"surrogate: pool ready in {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        return self._pool

    def _build_pool(self) -> list[tuple[str, Params]]:
        if self._space.count() <= POOL_ENUMERATE:
            structures = list(self._space.enumerate())
        else:
            rng = np.random.RandomState(self._seed + 104_729)
            structures = [{n: c[rng.randint(len(c))] for n, c in self._slots} for _ in range(self.pool_size)]
        seen: dict[str, Params] = {}
        for params in structures:
            key, usable = self.key_of(params)
            if usable and key not in seen:
                seen[key] = frozen(params)
        return list(seen.items())

    def _acquisition(self, study: Study, finished: Sequence[FrozenTrial]) -> np.ndarray:
        """UCB over the pool from a fit on the told trials (``finished``; refitted only when one more
        is told), with the RUNNING ones believed at their predicted mean (:meth:`Predictor.believe`)."""
        told = tuple(t.number for t in finished)
        pool = self.pool()
        assert self._pool_x is not None
        if self._fit is None or self._fit[0] != told:
            x_ok, y_ok, x_failed, _ = study_training_set(study, self._space, self.cache)
            model = None
            if len(y_ok):
                model = make_predictor(self._predictor_name, kappa=self.kappa, hurdle=self._hurdle, seed=self._seed,
                                       transform=self._transform, impute=self._impute
                                       ).fit(x_ok, y_ok, x_failed, self._pool_x)
            self._fit = (told, model)
        model = self._fit[1]
        if model is None:
            return self._rng.uniform(size=len(pool))
        running = [t.user_attrs["key"] for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                   if t.user_attrs.get("key") in self.cache.vectors]
        if running:
            model = model.believe(np.stack([self.cache.vectors[k] for k in running]))
        return model.predict(self._pool_x).acquisition(self.kappa)

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if study._is_multi_objective():
            raise ActsearchError("the surrogate sampler is single-objective; use nsga2 for accuracy vs cost")
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        keys, structures = self._tried(study)
        if len(finished) < self.warmup:  # warm-up: a random structure of a function not tried yet
            params: dict[str, str] = {}
            for _ in range(100):
                params = self._random_params()
                key, usable = self.key_of(params)
                if usable and key not in keys and frozen(params) not in structures:
                    break
            return params
        acq = self._acquisition(study, finished)
        order = np.argsort(-acq, kind="stable")
        for i in order:
            key, params = self._pool[i]  # type: ignore[index]
            if key not in keys and params not in structures and np.isfinite(acq[i]):
                return dict(params)
        for i in order:  # every untried function is predicted to fail: try them anyway
            key, params = self._pool[i]  # type: ignore[index]
            if key not in keys and params not in structures:
                return dict(params)
        return {}
