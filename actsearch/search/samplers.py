"""Samplers and pruners by name, and the two samplers of our own: exhaustive and evolution.

Every sampler drives the same define-by-run space (one ``suggest_categorical`` per grammar slot,
:meth:`actsearch.expressions.Space.suggest`), so a study can be inspected the same way whichever
decided its trials:

- ``tpe`` — Optuna's TPE with every Optuna-5-sensitive option spelled out (multivariate + group
  model the slots jointly; constant_liar keeps a batch of concurrently asked trials apart).
- ``random`` — uniform over structures.
- ``exhaustive`` — every *distinct, non-degenerate* function of a finite space once
  (:class:`ExhaustiveSampler`; Optuna's BruteForceSampler would also walk the 2,171 structures of
  paper-1 that equal another one, and it calls ``study.stop()``, which raises outside ``optimize``).
- ``nsga2`` — NSGA-II on (accuracy ↑, cost ↓).
- ``evolution`` — regularized (aging) evolution, :class:`EvolutionSampler`.
- ``surrogate`` — the untried function a predictor fitted on the finished trials rates best
  (:class:`actsearch.search.surrogate.SurrogateSampler`).
"""
from __future__ import annotations

import statistics
import time
import warnings
from typing import Any, Sequence

import numpy as np
import optuna
import torch
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from ..errors import ActsearchError
from ..evaluation import Fidelity, Task
from ..expressions import Candidate, Space
from ._space_sampler import SpaceSampler, frozen
from .surrogate import SurrogateSampler

__all__ = ["SAMPLERS", "PRUNERS", "COSTS", "make_sampler", "make_pruner", "EvolutionSampler", "ExhaustiveSampler",
           "activation_cost", "population_seeds", "seed_for_worker"]

SAMPLERS = ("tpe", "random", "exhaustive", "nsga2", "evolution", "surrogate")
PRUNERS = ("median", "hyperband", "none")
#: nsga2's second objective (:func:`activation_cost`).
COSTS = ("time", "ops")

class ExhaustiveSampler(SpaceSampler):
    """Every distinct, non-degenerate function of a finite space exactly once.

    The space's structures are visited in one fixed shuffled order (the study's seed; the same in
    every worker, so workers agree on what is next and skip what another holds). A structure is
    skipped when the study already holds it or an equivalent function (same
    :attr:`Candidate.key`), or when it is degenerate. When nothing is left :attr:`exhausted`
    turns True and the search stops asking.
    """

    MAX_STRUCTURES = 200_000

    def __init__(self, space: Space, seed: int | None = None) -> None:
        super().__init__(space, seed)
        count = space.count()
        if count > self.MAX_STRUCTURES:
            raise ActsearchError(
                f"space {space.name!r} has {count:,} structures: too many to enumerate (the "
                f"exhaustive sampler takes at most {self.MAX_STRUCTURES:,}); use tpe or evolution")
        self._order = list(space.enumerate())
        np.random.RandomState(seed).shuffle(self._order)  # type: ignore[arg-type]
        self._cursor = 0  # everything before it is known to be done or skipped
        self.exhausted = False

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        keys, structures = self._tried(study)
        for i in range(self._cursor, len(self._order)):
            params = self._order[i]
            key, usable = self.key_of(params)
            if usable and key not in keys and frozen(params) not in structures:
                return dict(params)
            if i == self._cursor:
                self._cursor += 1
        self.exhausted = True
        return {}

    def remaining(self, study: Study) -> int:
        """How many distinct functions are still to be tried (builds every structure once)."""
        keys, structures = self._tried(study)
        left: set[str] = set()
        for params in self._order[self._cursor:]:
            key, usable = self.key_of(params)
            if usable and key not in keys and frozen(params) not in structures:
                left.add(key)
        return len(left)


class EvolutionSampler(SpaceSampler):
    """Regularized evolution (Real, Aggarwal, Huang & Le 2019, "Regularized Evolution for Image
    Classifier Architecture Search", Alg. 1), the search of evolutionary activation-function work.

    The population is the ``population_size`` most recently *completed* trials (aging: the oldest
    die, whatever their score). A child is made by a tournament — ``sample_size`` members drawn
    at random, the best is the parent — and one mutation: one grammar slot (a unary, the binary, or
    an input wire) set to a different choice. Until the population is full, candidates are drawn
    at random. A child equal to a function the study already holds (same key), or degenerate, is
    mutated again (up to ``max_retries`` draws), so the budget goes to new functions.
    """

    def __init__(self, space: Space, population_size: int = 20, sample_size: int = 5,
                 seed: int | None = None, max_retries: int = 100) -> None:
        super().__init__(space, seed)
        if not 1 <= sample_size <= population_size:
            raise ValueError(f"sample_size must be in [1, population_size={population_size}], got {sample_size}")
        self.population_size, self.sample_size, self.max_retries = population_size, sample_size, max_retries

    def sample_relative(self, study: Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        if study._is_multi_objective():
            raise ActsearchError("the evolution sampler is single-objective; use nsga2 for accuracy vs cost")
        sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0
        done = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                if t.params.keys() >= self._dists.keys()]
        population = sorted(done, key=lambda t: t.number)[-self.population_size:]
        keys, structures = self._tried(study)

        def new(params: dict[str, str]) -> bool:
            key, usable = self.key_of(params)
            return usable and key not in keys and frozen(params) not in structures

        child: dict[str, str] = {}
        for _ in range(self.max_retries):
            if len(population) < self.population_size:
                child = self._random_params()
            else:
                picks = self._rng.choice(len(population), self.sample_size, replace=False)
                parent = max((population[i] for i in picks), key=lambda t: sign * float(t.value or 0.0))
                child = self.mutate({n: str(parent.params[n]) for n in self._dists})
            if new(child):
                break
        return child

    def mutate(self, params: dict[str, str]) -> dict[str, str]:
        """One slot to a different choice (slots with a single choice cannot mutate)."""
        mutable = [(n, c) for n, c in self._slots if len(c) > 1]
        if not mutable:
            return dict(params)
        name, choices = mutable[self._rng.randint(len(mutable))]
        others = [c for c in choices if c != params[name]]
        out = dict(params)
        out[name] = others[self._rng.randint(len(others))]
        return out


def _tpe(seed: int | None, n_startup_trials: int) -> TPESampler:
    return TPESampler(
        multivariate=True,  # slots interact (sigmul(scale, x) is Swish only as a pair)
        group=True,  # the grammar is one group of slots; spaces with more units stay one group
        constant_liar=True,  # a batch is asked before any member is told: keep them apart
        seed=seed,
        n_startup_trials=n_startup_trials,
        n_ei_candidates=24,
    )


def make_sampler(name: str, space: Space, *, seed: int | None, batch: int = 8,
                 n_startup_trials: int | None = None, fidelity: Fidelity | str = "quick") -> BaseSampler:
    """The sampler called ``name``; options are explicit because Optuna 5 changed TPE's defaults.
    ``fidelity``: the study's, whose child network the surrogate's features are measured on."""
    name = name.strip().lower()
    if name == "tpe":
        with warnings.catch_warnings():  # group=True is "experimental" since Optuna 2.8
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return _tpe(seed, n_startup_trials if n_startup_trials is not None else max(10, 2 * batch))
    if name == "random":
        return RandomSampler(seed=seed)
    if name == "exhaustive":
        return ExhaustiveSampler(space, seed=seed)
    if name == "nsga2":
        return NSGAIISampler(population_size=max(8, 2 * batch), seed=seed)
    if name == "evolution":
        population = max(8, 2 * batch) if n_startup_trials is None else max(2, n_startup_trials)
        return EvolutionSampler(space, population_size=population, sample_size=max(2, population // 4), seed=seed)
    if name == "surrogate":
        return SurrogateSampler(space, fidelity, seed=seed,
                                warmup=n_startup_trials if n_startup_trials is not None else max(10, 2 * batch))
    raise ActsearchError(f"unknown sampler {name!r} (use one of: {', '.join(SAMPLERS)})")


def make_pruner(name: str, fidelity: Fidelity | Task, *, batch: int = 8) -> optuna.pruners.BasePruner:
    """Pruners fed by the trainer's validation checkpoints (every ``fidelity.eval_every`` steps of a
    fidelity or a task)."""
    name = name.strip().lower()
    if name == "median":
        # Compare only once a whole first batch has completed; the first checkpoint is already
        # informative on MNIST-1D (a bad function is near chance after 500 steps).
        return optuna.pruners.MedianPruner(n_startup_trials=batch, n_warmup_steps=0, interval_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=fidelity.eval_every, max_resource=fidelity.steps,
                                              reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ActsearchError(f"unknown pruner {name!r} (use one of: {', '.join(PRUNERS)})")


def seed_for_worker(seed: int, worker: int) -> int:
    """Different streams per local worker, the same stream for worker 0 of a one-process run."""
    return seed if worker == 0 else seed + 7919 * worker


def population_seeds(seed: int, seeds: int) -> Sequence[int]:
    """The training seeds every candidate of a study uses (the same ones: paired comparisons)."""
    return [seed + j for j in range(seeds)]


def activation_cost(cand: Candidate, how: str = "time") -> float:
    """nsga2's second objective. "ops": sympy's operation count. "time": median microseconds of a
    forward+backward pass of the compiled module (32 channels, β per channel) on a fixed
    (256, 32, 16) tensor — the shape of the default CNN's activations."""
    if how == "ops":
        return float(cand.op_count())
    module = cand.to_module(32)
    x = torch.randn(256, 32, 16, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    times = []
    for rep in range(12):
        t0 = time.perf_counter()
        module(x).sum().backward()
        if rep >= 2:  # warm-up
            times.append(time.perf_counter() - t0)
    return round(1e6 * statistics.median(times), 1)
