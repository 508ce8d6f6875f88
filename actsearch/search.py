"""The search: batched ask/tell over an Optuna study, candidates trained as one population.

One step of a worker (:func:`run_worker`): ask the study for a batch of K trials
(``study.ask()`` K times; the sampler sees the earlier ones running, TPE through its constant
liar), build each trial's candidate from the grammar, and sort the batch:

- degenerate (constant, non-finite, no x …) → told ``FAIL`` with the reason, never trained;
- equivalent (same :attr:`Candidate.key`) to a trial the study already finished → told that
  trial's values (or its failure), ``duplicate_of`` = its number, never trained;
- equivalent to a trial still running (in this batch, or in another worker with a lower trial
  number) → waits for it and then copies it;
- otherwise trained: all of them together with :func:`actsearch.population.train_population`,
  every candidate on the same seeds. Checkpoints are reported to the trial; a member whose trial
  the pruner stops leaves the stack at once. Then ``study.tell``.

What each trial records is in its user attributes (:meth:`Batch._describe`, :meth:`Batch._finish`);
the f/f′ plot of every trained candidate is an Optuna artifact. At creation the study gets its
reference points (ReLU, Swish …: :func:`actsearch.leaderboard.setup_references`). Local workers
are joblib/loky processes on the same storage (:func:`run_search`).
"""
from __future__ import annotations

import math
import os
import socket
import statistics
import tempfile
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from .candidate import Candidate
from .grammar import Space
from .samplers import activation_cost, population_seeds
from .storage import BUDGET_ATTR, EVALUATED_FAILURES, SearchSettings
from .trials import (Heartbeat, budget_state, cleanup_run, evaluated_keys, over_budget, replaced_numbers,
                     sigint_ignored)
from .train import Fidelity, TrainResult, get_fidelity

__all__ = ["fidelity_for", "run_worker", "run_search", "RunConfig", "Batch"]

OnTrial = Callable[[FrozenTrial], None]


def fidelity_for(settings: SearchSettings) -> Fidelity:
    return get_fidelity(settings.fidelity).replace(dataset=settings.dataset)


# ------------------------------------------------------------------------------------ helpers
def _status(rs: list[TrainResult]) -> tuple[str, str | None]:
    for r in rs:
        if r.status == "diverged":
            return "diverged", r.reason
    for r in rs:
        if r.status in ("pruned", "timeout"):
            return r.status, r.reason
    return "ok", None


def _mean_std(xs: list[float]) -> tuple[float | None, float | None]:
    """Mean and sample std; the std is None for a single seed (nothing to estimate it from)."""
    xs = [x for x in xs if x is not None and math.isfinite(x)]
    if not xs:
        return None, None
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else None)


def _accuracies(rs: list[TrainResult]) -> dict[str, Any]:
    val_m, val_s = _mean_std([r.val_accuracy for r in rs])  # type: ignore[misc]
    test_m, test_s = _mean_std([r.test_accuracy for r in rs])  # type: ignore[misc]
    return {"accuracy_mean": val_m, "accuracy_std": val_s, "val_accuracies": [r.val_accuracy for r in rs],
            "test_accuracy_mean": test_m, "test_accuracy_std": test_s,
            "train_seconds": round(max(r.seconds for r in rs), 3), "steps": max(r.steps for r in rs)}


def _safe_set(trial: Trial, key: str, value: Any) -> None:
    try:
        trial.set_user_attr(key, value)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        pass  # finished meanwhile (another process cleaned up after an interrupt)


@dataclass(eq=False)  # identity semantics: items are used as set members
class _Item:
    trial: Trial
    cand: Candidate | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    leader: _Item | None = None  # an equivalent trial whose result this one copies
    wait_for: int | None = None  # trial number running in another worker
    members: list[int] = field(default_factory=list)  # population indices (one per seed)
    pruned: bool = False
    done: bool = False


class _Reporter:
    """Turns the engine's per-member checkpoints into per-trial reports and prune decisions.

    With several seeds a trial reports the mean over its seeds at a step once every live member
    has reported it. The engine reports members in ascending index order and silently drops a
    diverged one, so a member that has not reported step s when a later member does is gone.
    """

    def __init__(self, items: list[_Item], prune: bool) -> None:
        self.items, self.prune = items, prune
        self.owner = {m: it for it in items for m in it.members}
        self.last: dict[int, int] = {}  # member -> last step reported
        self.accs: dict[tuple[int, int], dict[int, float]] = {}  # (trial, step) -> member -> acc
        self.dead: set[int] = set()
        self.sent: set[tuple[int, int]] = set()

    def __call__(self, i: int, step: int, acc: float) -> bool:
        for j in range(i):  # anyone before i that missed this checkpoint has left the stack
            if self.last.get(j, 0) < step:
                self.dead.add(j)
        self.last[i] = step
        item = self.owner[i]
        self.accs.setdefault((item.trial.number, step), {})[i] = acc
        for other in {self.owner[j] for j in range(i + 1)}:
            self._flush(other, step)
        return item.pruned

    def _flush(self, item: _Item, step: int) -> None:
        key = (item.trial.number, step)
        live = [m for m in item.members if m not in self.dead]
        got = self.accs.get(key, {})
        if key in self.sent or not live or any(m not in got for m in live):
            return
        self.sent.add(key)
        if item.pruned:
            return
        item.trial.report(statistics.fmean(got.values()), step)
        if self.prune and item.trial.should_prune():
            item.pruned = True


# --------------------------------------------------------------------------------------- batch
class Batch:
    """One ask/tell round; :meth:`abort` fails whatever it has not told (Ctrl-C)."""

    def __init__(self, study: optuna.Study, space: Space, settings: SearchSettings, *, device: str,
                 store: Any, run_id: str, plots: bool, on_trial: OnTrial | None) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.device, self.store, self.run_id, self.plots, self.on_trial = device, store, run_id, plots, on_trial
        self.fidelity = fidelity_for(settings)
        self.seeds = list(population_seeds(settings.seed, settings.seeds))
        self.items: list[_Item] = []
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    # ---- ask
    def ask(self) -> _Item:
        trial = self.study.ask()
        item = _Item(trial)
        self.items.append(item)
        if _heartbeats(self.study):
            try:  # at once: a trial without any heartbeat is never found stale if we die now
                self.study._storage.record_heartbeat(trial._trial_id)  # type: ignore[attr-defined]
            except Exception:
                pass
        _safe_set(trial, "run", self.run_id)
        _safe_set(trial, "worker", self.worker)
        try:
            item.cand = self.space.suggest(trial)
        except Exception as exc:  # the grammar produced something the compiler refuses
            self._fail(item, "error", f"cannot build the candidate: {exc}")
            return item
        self._describe(item)
        return item

    def _describe(self, item: _Item) -> None:
        cand = item.cand
        assert cand is not None
        attrs = {"expression": cand.text, "latex": cand.latex, "key": cand.key,
                 "structure": self.space.expression_text(item.trial.params),
                 "core_units": cand.core_units, "op_count": cand.op_count()}
        for k, v in attrs.items():
            _safe_set(item.trial, k, v)

    # ---- sort
    def classify(self, index: dict[str, FrozenTrial], running: dict[str, int]) -> None:
        """Decide for each asked trial: fail, copy, wait or train (see the module doc)."""
        leaders: dict[str, _Item] = {}
        for item in self.items:
            if item.done or item.cand is None:
                continue
            reason = item.cand.degenerate_reason
            if reason is not None:
                self._fail(item, "degenerate", reason)
                continue
            key = item.cand.key
            if key in index:
                self._copy(item, index[key])
            elif key in leaders:
                item.leader = leaders[key]
            elif running.get(key, item.trial.number) < item.trial.number:
                item.wait_for = running[key]
            else:
                leaders[key] = item

    # ---- train
    def train(self) -> None:
        from .population import train_population

        todo = [it for it in self.items if not it.done and it.leader is None and it.wait_for is None
                and it.cand is not None]
        if not todo:
            return
        acts: list[Any] = []
        for it in todo:
            it.members = list(range(len(acts), len(acts) + len(self.seeds)))
            acts += [it.cand] * len(self.seeds)
        reporter = _Reporter(todo, prune=not self.settings.multi_objective)
        seeds = self.seeds * len(todo)
        try:
            results = train_population(acts, self.fidelity, seeds, device=self.device, report=reporter)
        except Exception:  # one bad member must not sink the batch: retry them one at a time
            results = self._train_one_by_one(acts, seeds)
        self._late_duplicates(todo)
        for it in todo:
            self._finish(it, [results[m] for m in it.members], reporter)
        for it in self.items:  # trials equivalent to one trained here copy its outcome
            if it.leader is not None and not it.done:
                self._copy(it, self.study._storage.get_trial(it.leader.trial._trial_id))

    def _late_duplicates(self, todo: list[_Item]) -> None:
        """Another worker may have asked an equivalent trial in the instant between this batch's
        asks and its key being written (so neither saw the other): the lower trial number keeps the
        original, a higher one trained here is marked ``duplicate_of`` it — trained, counted once."""
        mine = {it.trial.number for it in self.items}
        trials = self.study.get_trials(deepcopy=False)
        replaced = replaced_numbers(trials)
        first: dict[str, int] = {}
        for t in trials:
            key = t.user_attrs.get("key")
            if (key is None or t.number in mine or t.number in replaced or "duplicate_of" in t.user_attrs
                    or t.state == TrialState.WAITING
                    or (t.state == TrialState.FAIL and t.user_attrs.get("status") not in EVALUATED_FAILURES)):
                continue
            first[key] = min(first.get(key, t.number), t.number)
        for it in todo:
            n = first.get(it.cand.key) if it.cand is not None else None
            if n is not None and n < it.trial.number:
                _safe_set(it.trial, "duplicate_of", n)

    def _train_one_by_one(self, acts: list[Any], seeds: list[int]) -> list[TrainResult]:
        from .train import train_one

        out = []
        for act, seed in zip(acts, seeds):
            try:
                out.append(train_one(act, self.fidelity, seed=seed, device=self.device))
            except Exception as exc:
                out.append(TrainResult("error", None, None, 0, 0.0, [], f"training raised {type(exc).__name__}: {exc}"))
        return out

    def _finish(self, item: _Item, rs: list[TrainResult], reporter: _Reporter) -> None:
        status, reason = _status(rs)
        if any(r.status == "error" for r in rs):
            status, reason = "error", next(r.reason for r in rs if r.status == "error")
        attrs = {"status": status, **_accuracies(rs), "seeds": self.seeds, "trained_with": len(reporter.owner)}
        if reason:
            attrs["fail_reason" if status in EVALUATED_FAILURES else "note"] = reason
        for k, v in attrs.items():
            _safe_set(item.trial, k, v)
        if status in EVALUATED_FAILURES:
            self._tell(item, state=TrialState.FAIL)
            return
        if not self.settings.multi_objective:  # checkpoints the reporter could not flush (last member gone)
            for step, acc in rs[0].curve:
                if (item.trial.number, step) not in reporter.sent and len(rs) == 1:
                    item.trial.report(acc, step)
        self._plot(item)
        if item.pruned or status == "pruned":
            self._tell(item, state=TrialState.PRUNED)
            return
        values: list[float] = [attrs["accuracy_mean"]]
        if self.settings.multi_objective:
            assert item.cand is not None
            cost = activation_cost(item.cand, self.settings.cost)
            _safe_set(item.trial, "cost", cost)
            values.append(cost)
        self._tell(item, values=values)

    def _plot(self, item: _Item) -> None:
        if not self.plots or self.store is None or item.cand is None:
            return
        from .plots import plot_function

        try:
            with tempfile.TemporaryDirectory() as d:
                path = plot_function(item.cand, os.path.join(d, f"trial-{item.trial.number}-f.png"))
                optuna.artifacts.upload_artifact(artifact_store=self.store, file_path=str(path),
                                                 study_or_trial=item.trial, mimetype="image/png")
        except Exception as exc:  # a plot is a convenience, never a reason to lose a trial
            _safe_set(item.trial, "plot_error", f"{type(exc).__name__}: {exc}")

    # ---- tell
    def _copy(self, item: _Item, orig: FrozenTrial) -> None:
        """Tell ``item`` what the equivalent trial ``orig`` got, without training."""
        _safe_set(item.trial, "duplicate_of", orig.number)
        for k in ("status", "accuracy_mean", "accuracy_std", "val_accuracies", "test_accuracy_mean",
                  "test_accuracy_std", "seeds", "fail_reason", "cost"):
            if k in orig.user_attrs:
                _safe_set(item.trial, k, orig.user_attrs[k])
        if orig.state == TrialState.COMPLETE:
            self._tell(item, values=list(orig.values))
        elif orig.state == TrialState.PRUNED:
            for step, v in sorted(orig.intermediate_values.items()):
                item.trial.report(v, step)
            self._tell(item, state=TrialState.PRUNED)
        else:
            self._tell(item, state=TrialState.FAIL)

    def _fail(self, item: _Item, status: str, reason: str) -> None:
        _safe_set(item.trial, "status", status)
        _safe_set(item.trial, "fail_reason", reason)
        self._tell(item, state=TrialState.FAIL)

    def _tell(self, item: _Item, values: list[float] | None = None, state: TrialState | None = None) -> None:
        frozen = self.study.tell(item.trial, values=values, state=state, skip_if_finished=True)
        item.done = True
        if self.on_trial is not None:
            self.on_trial(frozen)

    def admit(self, items: list[_Item], budget: int) -> int:
        """Fail the just-asked trials that exceed the study's budget (another worker asked first);
        returns how many were admitted."""
        over = over_budget(self.study, [i.trial.number for i in items], budget)
        for item in items:
            if item.trial.number in over and not item.done:
                self._fail(item, "over_budget", f"the study's budget of {budget} trials was used by other workers")
        return len(items) - len(over)

    def abort(self, reason: str = "interrupted") -> None:
        """Fail every trial of the batch not yet told — kept in the study, not lost."""
        for item in self.items:
            if not item.done:
                _safe_set(item.trial, "status", "interrupted")
                _safe_set(item.trial, "fail_reason", reason)
                self._tell(item, state=TrialState.FAIL)


def run_worker(study: optuna.Study, settings: SearchSettings, space: Space, n_trials: int, *,
               batch: int = 8, device: str = "cpu", store: Any = None, run_id: str = "",
               plots: bool = True, on_trial: OnTrial | None = None, poll: float = 1.0,
               budget: bool = True, wait_running: bool = False) -> int:
    """Ask/evaluate/tell up to ``n_trials`` trials in batches of ``batch``; returns how many were asked.

    ``budget``: also stop when the study's budget (user attribute ``budget``, shared by every
    worker) is used: before each batch a worker asks at most the room left, and after asking it
    fails any trial that lost a race for the last places (``status`` "over_budget", uncounted).
    ``wait_running``: when the budget is used but other workers' trials still run, wait (polling
    every ``poll`` s) instead of leaving — if one of them dies, its trial is found stale after the
    grace period, re-queued, and this worker trains it.

    KeyboardInterrupt fails the trials in flight (state FAIL, ``fail_reason`` "interrupted") and
    is re-raised; every trial finished before it stays.
    """
    with warnings.catch_warnings():
        # ask/tell with heartbeats is what a distributed search needs; Optuna warns it is unusual.
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed")
        return _run_worker(study, settings, space, n_trials, batch=batch, device=device, store=store,
                           run_id=run_id, plots=plots, on_trial=on_trial, poll=poll, budget=budget,
                           wait_running=wait_running)


def _heartbeats(study: optuna.Study) -> bool:
    """Without heartbeats (JournalStorage) a dead worker's trial never leaves RUNNING: don't wait."""
    return getattr(study._storage, "get_heartbeat_interval", lambda: None)() is not None


def _run_worker(study: optuna.Study, settings: SearchSettings, space: Space, n_trials: int, *,
                batch: int, device: str, store: Any, run_id: str, plots: bool, on_trial: OnTrial | None,
                poll: float, budget: bool, wait_running: bool) -> int:
    asked = 0
    waiting: list[_Item] = []
    sampler = study.sampler
    while True:
        optuna.storages.fail_stale_trials(study)
        room = 0 if getattr(sampler, "exhausted", False) else n_trials - asked
        state = budget_state(study) if budget else None
        if state is not None and state.room is not None:
            room = min(room, state.room)
        if room <= 0 and not waiting:
            if (wait_running and state is not None and state.budget is not None and state.running
                    and asked < n_trials and _heartbeats(study)):
                time.sleep(poll)  # others' trials still run: one may die and come back as WAITING
                continue
            break
        b = Batch(study, space, settings, device=device, store=store, run_id=run_id, plots=plots,
                  on_trial=on_trial)
        b.items, waiting = waiting, []
        try:
            with Heartbeat(study, lambda: [i.trial._trial_id for i in b.items if not i.done]):
                new: list[_Item] = []
                while room > 0 and len([i for i in b.items if i.wait_for is None]) < batch:
                    new.append(b.ask())
                    asked += 1
                    room -= 1
                    if getattr(sampler, "exhausted", False):
                        break
                if new and state is not None and state.budget is not None:
                    b.admit(new, state.budget)
                index, running = evaluated_keys(study, exclude={i.trial.number for i in b.items})
                for item in b.items:  # a trial waited for has finished: copy it, or (interrupted) train
                    if item.wait_for is not None and item.wait_for not in running.values():
                        item.wait_for = None
                b.classify(index, running)
                b.train()
        except BaseException:
            with sigint_ignored():  # a second Ctrl-C must not cut the bookkeeping short
                b.abort()
            raise
        waiting = [i for i in b.items if not i.done and i.wait_for is not None]
        if waiting and all(i.wait_for is not None for i in b.items if not i.done) and room <= 0:
            time.sleep(poll)
    return asked


# -------------------------------------------------------------------------------------- driver
@dataclass
class RunConfig:
    """How one invocation runs (not part of the study: may change between runs)."""

    trials: int
    workers: int = 1
    batch: int = 8  # candidates trained together as one population
    pruner: str = "median"
    device: str = "cpu"
    plots: bool = True
    artifacts: str | None = None  # artifact folder (default: next to the storage)
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])


def _open(url: str, name: str, settings: SearchSettings | None, cfg: RunConfig, worker: int
          ) -> tuple[optuna.Study, SearchSettings, Space, bool]:
    from .samplers import make_pruner, make_sampler, seed_for_worker
    from .storage import create_or_load_study, load_study, open_storage, read_settings

    storage = open_storage(url)
    if settings is None:  # a worker: everything comes from the study
        settings = read_settings(load_study(storage, name))
    space = settings.load_space()
    sampler = make_sampler(settings.sampler, space, seed=seed_for_worker(settings.seed, worker), batch=cfg.batch)
    pruner = make_pruner("none" if settings.multi_objective else cfg.pruner, fidelity_for(settings), batch=cfg.batch)
    study, created = create_or_load_study(storage, name, settings, sampler=sampler, pruner=pruner)
    return study, settings, space, created


def _worker_job(url: str, name: str, cfg: RunConfig, trials: int, worker: int) -> int:
    """One local worker process (joblib/loky): its own storage connection and sampler stream."""
    torch_threads = max(1, (os.cpu_count() or 1) // max(1, cfg.workers))
    import torch

    torch.set_num_threads(torch_threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, settings, space, _ = _open(url, name, None, cfg, worker)
    from .storage import artifact_store

    return run_worker(study, settings, space, trials, batch=cfg.batch, device=cfg.device,
                      store=artifact_store(url, cfg.artifacts) if cfg.plots else None, run_id=cfg.run_id,
                      plots=cfg.plots)


def run_search(url: str, name: str, settings: SearchSettings | None, cfg: RunConfig,
               on_start: Callable[[optuna.Study, SearchSettings, int], None] | None = None,
               on_trial: OnTrial | None = None) -> optuna.Study:
    """Create or resume study ``name`` and run ``cfg.trials`` more trials (``settings`` None: a
    worker joining an existing study). ``on_start(study, settings, trials)`` is called once the
    study is ready; ``on_trial`` for each finished trial of this run (polled when workers > 1).

    KeyboardInterrupt: every trial this run left running is failed, then it propagates.
    """
    from .samplers import ExhaustiveSampler
    from .storage import artifact_store

    study, settings, space, created = _open(url, name, settings, cfg, 0)
    from .leaderboard import REFERENCES_ATTR, setup_references

    if REFERENCES_ATTR not in study.user_attrs:
        setup_references(study, space, settings, cfg.device)
    trials = cfg.trials
    if isinstance(study.sampler, ExhaustiveSampler):
        trials = min(trials, study.sampler.remaining(study))  # enqueued references are among them
    state = budget_state(study)
    # The study's budget grows by this run's trials (counting from the trials it already has, WAITING
    # ones being this run's to ask) but never shrinks: workers elsewhere may be spending it.
    study.set_user_attr(BUDGET_ATTR, max(state.budget or 0, state.counted - state.waiting + trials))
    if on_start is not None:
        on_start(study, settings, trials)
    if cfg.workers == 0:  # create (or extend) the study for `actsearch worker`s: train nothing here
        return study
    try:
        if cfg.workers <= 1:
            run_worker(study, settings, space, trials, batch=cfg.batch, device=cfg.device,
                       store=artifact_store(url, cfg.artifacts) if cfg.plots else None, run_id=cfg.run_id,
                       plots=cfg.plots, on_trial=on_trial)
        else:
            _run_parallel(study, url, name, cfg, trials, on_trial)
    except BaseException:
        cleanup_run(study, cfg.run_id)
        raise
    return study


def _run_parallel(study: optuna.Study, url: str, name: str, cfg: RunConfig, trials: int,
                  on_trial: OnTrial | None) -> None:
    from joblib import Parallel, delayed

    shares = [trials // cfg.workers + (i < trials % cfg.workers) for i in range(cfg.workers)]
    stop = threading.Event()

    def poll() -> None:  # the workers are other processes: follow them through the storage
        seen: set[int] = set()
        while True:
            last = stop.is_set()
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)):
                if t.number not in seen and t.user_attrs.get("run") == cfg.run_id:
                    seen.add(t.number)
                    if on_trial is not None:
                        on_trial(t)
            if last:
                return
            stop.wait(1.0)

    watcher = threading.Thread(target=poll, daemon=True)
    watcher.start()
    try:
        Parallel(n_jobs=cfg.workers, backend="loky")(
            delayed(_worker_job)(url, name, cfg, share, i) for i, share in enumerate(shares) if share > 0)
    finally:
        stop.set()
        watcher.join(timeout=30)
