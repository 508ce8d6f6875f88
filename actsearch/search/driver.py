"""The driver: the worker loop over batches, and a run of the search from one command.

:func:`run_worker` is one worker: batch after batch (:class:`actsearch.search.batch.Batch`) until
its share of trials or the study's budget (user attribute ``budget``, shared by every worker) is
used, keeping its trials' heartbeats while they train; Ctrl-C fails the trials in flight and
re-raises. :func:`run_search` creates or resumes a study (its reference points at creation:
:func:`actsearch.search.references.setup_references`), extends its budget by this run's trials and
runs them here or in local worker processes (joblib/loky on the same storage, each with its own
connection and sampler stream, followed through the storage); an interrupted run fails what it
left running. ``actsearch worker`` (:mod:`.worker`) joins a study through :func:`open_study` and
:func:`run_worker`.
"""
from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import optuna
from joblib import Parallel, delayed
from optuna.trial import TrialState

from ..errors import StorageError
from ..evaluation import LIMIT_ENV, usable_cpus
from ..expressions import Space
from ._signals import sigint_ignored, stop_on_signals
from .batch import Batch, Item, OnTrial, has_heartbeats
from .references import setup_references
from .samplers import ExhaustiveSampler, make_pruner, make_sampler, seed_for_worker
from .settings import BUDGET_ATTR, REFERENCES_ATTR, SearchSettings, task_for
from .storage import (artifact_store, check_storage_file, create_or_load_study, load_study, open_storage,
                      read_settings)
from .trials import LOST_ATTR, Heartbeat, budget_state, cleanup_run, evaluated_keys, fail_stale_beats, retry_lost

__all__ = ["run_worker", "run_search", "RunConfig", "open_study"]


# --------------------------------------------------------------------------------- worker loop
def run_worker(study: optuna.Study, settings: SearchSettings, space: Space, n_trials: int, *,
               batch: int = 8, device: str = "cpu", store: Any = None, run_id: str = "",
               plots: bool = True, on_trial: OnTrial | None = None, poll: float = 1.0,
               budget: bool = True, wait_running: bool = False) -> int:
    """Ask/evaluate/tell up to ``n_trials`` new trials in batches of ``batch``, and every queued one;
    returns how many were asked.

    Queued (WAITING) trials — the references a new study enqueues, the retries of a dead worker's
    trials — are taken first and always, whatever ``n_trials`` (the budget counts them already):
    a resumed study never strands a retry. ``budget``: also stop when the study's budget (user attribute ``budget``, shared by every
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


def _run_worker(study: optuna.Study, settings: SearchSettings, space: Space, n_trials: int, *,
                batch: int, device: str, store: Any, run_id: str, plots: bool, on_trial: OnTrial | None,
                poll: float, budget: bool, wait_running: bool) -> int:
    asked = 0  # trials this worker asked …
    new_asked = 0  # … of which new ones (not taken from the study's queue of WAITING trials)
    waiting: list[Item] = []  # asked trials waiting for an equivalent one another worker runs
    sampler = study.sampler
    while True:
        check_storage_file(study._storage)  # deleted under the run: say so now, not lose what follows
        optuna.storages.fail_stale_trials(study)  # a dead worker's trials come back as WAITING retries
        fail_stale_beats(study)  # … on a journal file too, from actsearch's own heartbeats
        if has_heartbeats(study):
            retry_lost(study)  # … even when the one failing them died too
        state = budget_state(study) if budget else None
        queued, lost = _waiting_numbers(study)
        # New trials: this run's share, within the study's budget. Queued trials (references, retries
        # of a dead worker's trials) are already counted in the budget: always taken, whatever the
        # share, so no retry is stranded.
        room = 0 if getattr(sampler, "exhausted", False) else n_trials - new_asked
        if state is not None and state.budget is not None:
            room = min(room, state.budget - state.counted)
        room = max(0, room) + len(queued)
        if room <= 0 and not waiting:
            if (wait_running and state is not None and state.budget is not None and state.running
                    and new_asked < n_trials and has_heartbeats(study)):
                time.sleep(poll)  # others' trials still run: one may die and come back as WAITING
                continue
            break
        b = Batch(study, space, settings, device=device, store=store, run_id=run_id, plots=plots,
                  on_trial=on_trial)
        b.items, waiting = waiting, []
        try:
            with Heartbeat(study, lambda: [i.trial._trial_id for i in b.items if not i.done]):
                new: list[Item] = []
                while room > 0 and len([i for i in b.items if i.wait_for is None]) < batch:
                    item = b.ask()
                    asked += 1
                    room -= 1
                    if item.trial.number not in queued:
                        new_asked += 1
                        new.append(item)
                    elif item.trial.number in lost:  # its place may have been taken: admitted as new
                        new.append(item)
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
            # a second Ctrl-C must not cut the bookkeeping short; a storage that is gone cannot take it
            with sigint_ignored(), contextlib.suppress(StorageError):
                b.abort()
            raise
        waiting = [i for i in b.items if not i.done and i.wait_for is not None]
        if waiting and all(i.wait_for is not None for i in b.items if not i.done) and room <= 0:
            time.sleep(poll)
    check_storage_file(study._storage)
    return asked


def _waiting_numbers(study: optuna.Study) -> tuple[set[int], set[int]]:
    """Numbers of the study's WAITING trials (enqueued references and re-queued retries), and of
    those among them :func:`retry_lost` queued."""
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    return {t.number for t in waiting}, {t.number for t in waiting if t.system_attrs.get(LOST_ATTR)}


# ----------------------------------------------------------------------------------------- run
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


def open_study(url: str, name: str, settings: SearchSettings | None, cfg: RunConfig, worker: int
               ) -> tuple[optuna.Study, SearchSettings, Space, bool]:
    """Open (or create) study ``name`` with this run's sampler (stream ``worker``) and pruner; returns
    (study, settings, space, created). ``settings`` None: a worker — everything comes from the study."""
    storage = open_storage(url)
    if settings is None:  # a worker: everything comes from the study
        settings = read_settings(load_study(storage, name))
    space = settings.load_space()
    task = task_for(settings, name)  # a user's task is loaded (and its file checked) before any trial
    sampler = make_sampler(settings.sampler, space, seed=seed_for_worker(settings.seed, worker), batch=cfg.batch,
                           fidelity=task.fidelity if task.fidelity is not None else "quick")
    pruner = make_pruner("none" if settings.multi_objective else cfg.pruner, task, batch=cfg.batch)
    study, created = create_or_load_study(storage, name, settings, sampler=sampler, pruner=pruner)
    return study, settings, space, created


def _worker_job(url: str, name: str, cfg: RunConfig, trials: int, worker: int) -> int:
    """One local worker process (joblib/loky): its own storage connection and sampler stream."""
    # The processes share the CPUs: each trains on at most its share (ThreadPolicy reads the limit).
    os.environ[LIMIT_ENV] = str(max(1, usable_cpus() // max(1, cfg.workers)))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study, settings, space, _ = open_study(url, name, None, cfg, worker)
    return run_worker(study, settings, space, trials, batch=cfg.batch, device=cfg.device,
                      store=artifact_store(url, cfg.artifacts) if cfg.plots else None, run_id=cfg.run_id,
                      plots=cfg.plots)


def run_search(url: str, name: str, settings: SearchSettings | None, cfg: RunConfig,
               on_start: Callable[[optuna.Study, SearchSettings, int], None] | None = None,
               on_trial: OnTrial | None = None) -> optuna.Study:
    """Create or resume study ``name`` and run ``cfg.trials`` more trials (``settings`` None: a
    worker joining an existing study). ``on_start(study, settings, trials)`` is called once the
    study is ready; ``on_trial`` for each finished trial of this run (polled when workers > 1).

    KeyboardInterrupt — Ctrl-C, SIGTERM or SIGHUP (:func:`stop_on_signals`) —: every trial this run
    left running is failed (local worker processes are stopped first), then it propagates.
    """
    study, settings, space, created = open_study(url, name, settings, cfg, 0)
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
        with stop_on_signals():
            if cfg.workers <= 1:
                run_worker(study, settings, space, trials, batch=cfg.batch, device=cfg.device,
                           store=artifact_store(url, cfg.artifacts) if cfg.plots else None, run_id=cfg.run_id,
                           plots=cfg.plots, on_trial=on_trial)
            else:
                _run_parallel(study, url, name, cfg, trials, on_trial)
    except BaseException:
        with sigint_ignored(), contextlib.suppress(StorageError):
            cleanup_run(study, cfg.run_id)
        raise
    return study


def _run_parallel(study: optuna.Study, url: str, name: str, cfg: RunConfig, trials: int,
                  on_trial: OnTrial | None) -> None:
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
            # worker 0 always starts: queued trials (retries, references) are taken whatever the shares
            delayed(_worker_job)(url, name, cfg, share, i) for i, share in enumerate(shares) if share > 0 or i == 0)
    finally:
        stop.set()
        watcher.join(timeout=30)
