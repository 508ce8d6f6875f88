"""Trials across workers: the shared budget, what a study already evaluated, heartbeats, cleanup.

Several workers (processes, machines) share one study. These helpers read the study's trials to
decide what a worker may still ask (the budget), what need not be trained again (equivalence
keys already evaluated or running elsewhere), and keep RUNNING trials alive (heartbeats) or fail
them when their run is stopped.
"""
from __future__ import annotations

import bisect
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import optuna
from optuna.storages import JournalStorage
from optuna.trial import FrozenTrial, TrialState

from ..errors import ForeignStudyError
from .settings import BUDGET_ATTR, EVALUATED_FAILURES, MAX_RETRIES, OWN_FAILURES
from .storage import heartbeat_settings

__all__ = ["replaced_numbers", "counted", "BudgetState", "budget_state", "over_budget",
           "evaluated_keys", "cleanup_run", "LOST_ATTR", "requeue", "retry_lost", "Heartbeat", "BEAT_ATTR",
           "beats_in_attrs", "beat", "fail_stale_beats"]


def replaced_numbers(trials: list[FrozenTrial]) -> set[int]:
    """Numbers of trials a retry replaced (a stale worker's trial, re-queued as a WAITING copy by
    RetryHeartbeatStaleTrialCallback, which records them in ``retry_history``)."""
    return {n for t in trials for n in t.system_attrs.get("retry_history", ()) if n != t.number}


def counted(t: FrozenTrial, replaced: set[int]) -> bool:
    """Does trial ``t`` use the study's budget? Every trial does (duplicates and degenerate ones
    included: the sampler asked for them) except those that said nothing about their function —
    failed by a stale heartbeat, an interrupt or the budget itself — and those a retry replaced."""
    if t.number in replaced:
        return False
    return not (t.state == TrialState.FAIL and t.user_attrs.get("status") not in EVALUATED_FAILURES)


@dataclass(frozen=True)
class BudgetState:
    budget: int | None  # None: the study has no budget (a run's own trial count is its limit)
    counted: int  # trials that use the budget (see :func:`counted`), WAITING ones included
    waiting: int  # WAITING trials (queued retries, references): asked before any new trial
    running: int  # RUNNING trials, any worker

    @property
    def room(self) -> int | None:
        """How many trials a worker may ask now (WAITING ones are already counted)."""
        return None if self.budget is None else max(0, self.budget - self.counted) + self.waiting


def budget_state(study: optuna.Study) -> BudgetState:
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    budget = study._storage.get_study_user_attrs(study._study_id).get(BUDGET_ATTR)
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int)):
        raise ForeignStudyError(f"study {study.study_name!r}: its {BUDGET_ATTR!r} user attribute is {budget!r:.40}, "
                                "not a number of trials (set by another tool?); pass another --study")
    return BudgetState(budget=None if budget is None else int(budget),
                       counted=sum(counted(t, replaced) for t in trials),
                       waiting=sum(t.state == TrialState.WAITING for t in trials),
                       running=sum(t.state == TrialState.RUNNING for t in trials))


def over_budget(study: optuna.Study, numbers: list[int], budget: int) -> set[int]:
    """Which of these just-asked trials exceed the budget: those with ``budget`` or more counted
    trials numbered below them. Trial numbers are assigned atomically and a trial never goes back
    from uncounted to counted, so a trial admitted here stays admitted — and at most ``budget``
    trials are ever admitted, however many workers ask at once."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    below = sorted(t.number for t in trials if counted(t, replaced))
    return {n for n in numbers if bisect.bisect_left(below, n) >= budget}


def evaluated_keys(study: optuna.Study, exclude: set[int]) -> tuple[dict[str, FrozenTrial], dict[str, int]]:
    """key -> finished trial that evaluated it (COMPLETE over PRUNED over evaluated FAIL), and
    key -> lowest running trial number. Trials a retry replaced do not count."""
    rank = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2}
    done: dict[str, FrozenTrial] = {}
    running: dict[str, int] = {}
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    for t in trials:
        key = t.user_attrs.get("key")
        if key is None or t.number in exclude or t.number in replaced:
            continue
        if t.state == TrialState.RUNNING:
            running[key] = min(running.get(key, t.number), t.number)
        elif t.state in rank and (t.state != TrialState.FAIL or t.user_attrs.get("status") in EVALUATED_FAILURES):
            if "duplicate_of" in t.user_attrs and key in done:
                continue
            best = done.get(key)
            if best is None or (rank[t.state], t.number) < (rank[best.state], best.number):
                done[key] = t
    return done, running


def cleanup_run(study: optuna.Study, run_id: str, reason: str = "interrupted") -> int:
    """Fail the trials this run left RUNNING (its workers were stopped); returns how many."""
    n = 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if t.user_attrs.get("run") != run_id:
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "status", "interrupted")
            study._storage.set_trial_user_attr(t._trial_id, "fail_reason", reason)
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            n += 1
        except (RuntimeError, ValueError, optuna.exceptions.UpdateFinishedTrialError):
            pass
    return n


#: System attribute of a retry :func:`retry_lost` queued: its place in the budget may have been
#: taken meanwhile, so it is admitted like a new trial (:func:`over_budget`), not taken as counted.
LOST_ATTR = "lost_retry"


def requeue(study: optuna.Study, trial: FrozenTrial, *, lost: bool = False) -> None:
    """Queue a WAITING copy of a trial this worker could not finish (SIGTERM, Ctrl-C), exactly as a
    stale heartbeat would (or :func:`retry_lost`), so the candidate is trained by someone and the budget is kept."""
    history = list(trial.system_attrs.get("retry_history", [])) + [trial.number]
    keep = {k: v for k, v in trial.user_attrs.items() if k in ("expression", "latex", "key", "structure",
                                                                 "core_units", "op_count", "reference")}
    system = {k: v for k, v in trial.system_attrs.items() if k not in ("retry_history", LOST_ATTR, BEAT_ATTR)}
    if lost:
        system[LOST_ATTR] = True
    system.setdefault("failed_trial", trial.number)
    study.add_trial(optuna.trial.create_trial(
        state=TrialState.WAITING, params=trial.params, distributions=trial.distributions,
        user_attrs=keep, system_attrs={**system, "retry_history": history}))


def retry_lost(study: optuna.Study) -> int:
    """Re-queue the stale-failed trials whose retry never came; returns how many.

    Optuna fails a dead worker's trial and only then calls the retry callback: a process killed
    between the two (it is often a worker being preempted too) leaves the trial FAIL with no WAITING
    copy — a candidate lost and a place in the budget freed. A trial failed by a stale heartbeat has
    none of actsearch's own failure statuses (:data:`OWN_FAILURES`); one no retry replaced is
    re-queued here, unless it used its MAX_RETRIES. Its place in the budget was free meanwhile and
    another trial may have taken it: the copy is admitted like a new trial (it may fail
    ``over_budget``), so the budget stays exact. A sweep that runs in the milliseconds between
    another process's fail and its callback re-queues a second copy: it is trained as a
    ``duplicate_of`` the first or fails ``over_budget``, as any equivalent trial would."""
    trials = study.get_trials(deepcopy=False)
    replaced = replaced_numbers(trials)
    lost = [t for t in trials if t.state == TrialState.FAIL and t.number not in replaced
            and t.user_attrs.get("status") not in OWN_FAILURES
            and len(t.system_attrs.get("retry_history", ())) < MAX_RETRIES]
    for t in lost:
        requeue(study, t, lost=True)
    return len(lost)


#: Trial system attribute: the wall-clock time (s) of a trial's last heartbeat, where the storage
#: keeps no heartbeats of its own — Optuna's JournalStorage has none, so a killed worker's trials
#: would stay RUNNING forever. actsearch's workers write it (:class:`Heartbeat`) and fail the
#: trials whose beat is older than the grace period (:func:`fail_stale_beats`).
BEAT_ATTR = "actsearch_heartbeat"


def beats_in_attrs(storage: Any) -> bool:
    """Whether heartbeats live in :data:`BEAT_ATTR` (a journal file) rather than in the storage."""
    return isinstance(storage, JournalStorage)


def beat(storage: Any, trial_id: int) -> None:
    """Record a heartbeat of a trial in :data:`BEAT_ATTR` (a journal file; a database records its own)."""
    if beats_in_attrs(storage):
        storage.set_trial_system_attr(trial_id, BEAT_ATTR, time.time())


def fail_stale_beats(study: optuna.Study) -> list[int]:
    """For a journal file, what Optuna's ``fail_stale_trials`` and RetryHeartbeatStaleTrialCallback
    do for a database: fail every RUNNING trial whose last beat is older than the grace period and
    queue a WAITING copy of it (up to MAX_RETRIES per candidate); returns the numbers failed. A
    RUNNING trial with no beat at all (its worker was killed before the first) is given one now, so
    it is stale one grace period later. Times are wall-clock: machines sharing a journal file need
    clocks that agree to well within the grace period."""
    storage = study._storage
    if not beats_in_attrs(storage):
        return []
    _, grace = heartbeat_settings()
    now, failed = time.time(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        beat = t.system_attrs.get(BEAT_ATTR)
        if isinstance(beat, bool) or not isinstance(beat, (int, float)):
            try:
                storage.set_trial_system_attr(t._trial_id, BEAT_ATTR, now)
            except optuna.exceptions.UpdateFinishedTrialError:
                pass
            continue
        if now - beat <= grace:
            continue
        try:  # only one process wins: the journal's order decides, the others are told it was finished
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue
        failed.append(t.number)
        if len(t.system_attrs.get("retry_history", ())) < MAX_RETRIES:
            requeue(study, t)
    return failed


class Heartbeat:
    """Optuna records heartbeats only inside ``optimize``; ask/tell trials need their own, or a
    crashed worker's trials would stay RUNNING forever instead of being failed and retried. On a
    journal file, which keeps none, the beat is the trial's :data:`BEAT_ATTR`."""

    def __init__(self, study: optuna.Study, trial_ids: Callable[[], list[int]]) -> None:
        self.storage, self.trial_ids = study._storage, trial_ids
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        in_attrs = interval is None and beats_in_attrs(self.storage)
        if in_attrs:
            interval = heartbeat_settings()[0]
        if interval is None:
            return
        while not self.stop.is_set():
            for trial_id in self.trial_ids():
                try:
                    if in_attrs:
                        beat(self.storage, trial_id)
                    else:
                        self.storage.record_heartbeat(trial_id)
                except Exception:  # a missed beat is retried; the grace period covers a few
                    pass
            self.stop.wait(interval)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
