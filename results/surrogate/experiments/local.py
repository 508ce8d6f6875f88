import sys, os
import numpy as np
from optuna.trial import TrialState
import actsearch.search.surrogate as S
from actsearch.search._space_sampler import frozen
TOPK = int(os.environ.get("TOPK", "5")); MIX = float(os.environ.get("MIX", "0.5"))
class Local(S.SurrogateSampler):
    def sample_relative(self, study, trial, search_space):
        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
        if len(finished) < self.warmup or self._rng.rand() >= MIX:
            return super().sample_relative(study, trial, search_space)
        keys, structures = self._tried(study)
        acq = self._acquisition(study, finished)
        index = getattr(self, "_index", None)
        if index is None:
            index = self._index = {k: i for i, (k, _) in enumerate(self._pool)}
        done = sorted((t for t in finished if t.state == TrialState.COMPLETE and t.params), key=lambda t: -t.values[0])
        near = set()
        for t in done[:TOPK]:
            base = {n: str(t.params[n]) for n, _ in self._slots}
            for n, choices in self._slots:
                for c in choices:
                    if c == base[n]:
                        continue
                    p = {**base, n: c}
                    k, ok = self.key_of(p)
                    if ok and k in index and k not in keys:
                        near.add(index[k])
        if not near:
            return super().sample_relative(study, trial, search_space)
        near = sorted(near)
        i = near[int(np.argmax(acq[near]))]
        return dict(self._pool[i][1])
S.SurrogateSampler = Local
sys.argv = sys.argv[:7]
import bench_surrogate  # noqa
sys.path.insert(0, "/work/main/benchmarks")
