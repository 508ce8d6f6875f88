"""The machinery every sampler of our own shares: the space's slots as one relative search space,
a memo of each structure's equivalence key, and what a study has already tried."""
from __future__ import annotations

from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler
from optuna.study import Study
from optuna.trial import FrozenTrial, TrialState

from ..expressions import Space

__all__ = ["Params", "SpaceSampler", "frozen"]

Params = tuple[tuple[str, str], ...]


def frozen(params: dict[str, Any]) -> Params:
    return tuple(sorted((k, str(v)) for k, v in params.items()))


class SpaceSampler(BaseSampler):
    """Shared machinery: the space's slots as one relative search space, a memo of each
    structure's equivalence key, and what the study has already tried."""

    def __init__(self, space: Space, seed: int | None = None) -> None:
        self._space = space
        self._slots = space.slots()
        self._dists = {n: CategoricalDistribution(list(c)) for n, c in self._slots}
        self._rng = np.random.RandomState(seed)
        self._memo: dict[Params, tuple[str, bool]] = {}

    def reseed_rng(self) -> None:
        self._rng.seed()

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return dict(self._dists)

    def sample_independent(self, study: Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        assert isinstance(param_distribution, CategoricalDistribution)
        return param_distribution.choices[self._rng.randint(len(param_distribution.choices))]

    def key_of(self, params: dict[str, str]) -> tuple[str, bool]:
        """(equivalence key, usable) of a structure — usable means not degenerate. Memoized: a
        structure is built at most once per process."""
        fp = frozen(params)
        if fp not in self._memo:
            try:
                cand = self._space.build(params)
                self._memo[fp] = (cand.key, cand.degenerate_reason is None)
            except Exception:  # a structure that cannot even be compiled is as good as degenerate
                self._memo[fp] = (f"unbuildable-{fp}", False)
        return self._memo[fp]

    def _random_params(self) -> dict[str, str]:
        return {n: c[self._rng.randint(len(c))] for n, c in self._slots}

    @staticmethod
    def _tried(study: Study) -> tuple[set[str], set[Params]]:
        """Keys and structures the study holds in any state but WAITING (running ones included,
        so that trials asked together, or by other workers, stay apart)."""
        keys: set[str] = set()
        structures: set[Params] = set()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.WAITING:
                continue
            if "key" in t.user_attrs:
                keys.add(t.user_attrs["key"])
            if t.params:
                structures.add(frozen(t.params))
        return keys, structures
