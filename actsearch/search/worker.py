"""One worker of a distributed search: ``actsearch worker --storage URL --study NAME``.

Any number of workers, on any number of machines, share one study in one database (PostgreSQL
for many machines). A worker needs only the storage URL and the study name: everything that
defines a trial's score (space, dataset, fidelity, sampler, seeds) was stored in the study when
``actsearch search`` created it (:class:`actsearch.search.SearchSettings`), together with the
actsearch version and a hash of the space; a worker of another version, or one that reads the
space differently, refuses (exit 2, one line) rather than add incomparable trials.

Budget. The study's user attribute ``budget`` is the total number of trials it may count,
whatever the number of workers (:func:`actsearch.search.budget_state`; set and extended by
``actsearch search … --trials N``, ``--workers 0`` to create it without training here). Before
each batch a worker asks at most the room left; after asking it checks each trial's rank — the
number of counted trials numbered below it — and fails the ones that lost a race for the last
places (``status`` "over_budget", uncounted). So never more than ``budget`` trials are evaluated.

Faults. Every trial a worker holds sends a heartbeat every ``HEARTBEAT_INTERVAL`` s (30; env
``ACTSEARCH_HEARTBEAT_INTERVAL``). A worker that dies (SIGKILL, power loss, preemption) stops
beating; after ``GRACE_PERIOD`` s (120; env ``ACTSEARCH_GRACE_PERIOD``) the next worker to look
fails its trials and Optuna's RetryHeartbeatStaleTrialCallback re-queues each as a WAITING copy
(``retry_history`` names the original, which then no longer counts), which the next ``ask`` of
any worker takes. Workers whose budget is spent wait while others' trials still run, so the last
trials of a study are retried too. SIGTERM, SIGHUP and Ctrl-C re-queue the worker's trials at once. Transient
database errors are retried with backoff (:class:`actsearch.search.RetryingRDBStorage`).
"""
from __future__ import annotations

import json
import os
import socket
import zlib
from dataclasses import dataclass
from typing import Callable

import optuna
from optuna.trial import FrozenTrial, TrialState

from .._version import __version__
from ..errors import ActsearchError, IncompatibleWorkerError
from ..expressions import Space
from ._signals import stop_on_signals
from .batch import OnTrial
from .driver import RunConfig, open_study, run_worker
from .settings import REFERENCES_ATTR, SearchSettings, space_hash, space_to_dict
from .storage import artifact_store, heartbeat_settings, load_study, open_storage, read_settings
from .trials import budget_state, requeue

__all__ = ["check_compatible", "requeue", "run_distributed_worker", "WorkerResult", "trial_kind", "OnStart"]

#: Called once the worker has joined: (study, settings, trials it may run, batch size).
OnStart = Callable[[optuna.Study, SearchSettings, int, int], None]


def check_compatible(settings: SearchSettings, study_name: str) -> Space:
    """The study's space as this worker builds it; refuses a version or space mismatch."""
    if settings.version and settings.version != __version__:
        raise IncompatibleWorkerError(
            f"study {study_name!r} was created by actsearch {settings.version}, this worker runs "
            f"{__version__}: install actsearch {settings.version} here (trials must be comparable)")
    if settings.space_def is None:
        raise IncompatibleWorkerError(f"study {study_name!r} does not record its space; re-create it with "
                                      "`actsearch search --study NAME --workers 0`")
    if settings.space_hash and space_hash(settings.space_def) != settings.space_hash:
        raise IncompatibleWorkerError(
            f"study {study_name!r}: its stored space does not match its hash {settings.space_hash} "
            "(the study's settings were altered); refusing to add trials")
    space = settings.load_space()
    here = json.loads(json.dumps(space_to_dict(space)))
    if here != json.loads(json.dumps(settings.space_def)):
        raise IncompatibleWorkerError(
            f"study {study_name!r}: this machine reads the study's space differently (space hash "
            f"{settings.space_hash} vs {space_hash(here)}): install the same actsearch version everywhere")
    return space


@dataclass
class WorkerResult:
    name: str
    asked: int
    counts: dict[str, int]
    budget: int | None
    counted: int


def _worker_index() -> int:
    """A sampler stream per worker (host and pid): workers must not all propose the same trial."""
    return 1 + zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 250_000  # seed + 7919·i < 2³¹


def run_distributed_worker(url: str, study_name: str, *, device: str = "cpu", trials: int | None = None,
                           batch: int = 8, pruner: str = "median", plots: bool = True,
                           artifacts: str | None = None, poll: float | None = None,
                           on_start: OnStart | None = None, on_trial: OnTrial | None = None) -> WorkerResult:
    """Join study ``study_name`` in ``url`` and train until its budget is used (or ``trials`` here).

    KeyboardInterrupt (Ctrl-C, or SIGTERM/SIGHUP: a preempted machine, a closed terminal) re-queues this worker's
    trials in flight for the others and propagates, with ``requeued`` (how many) and ``worker``
    (host:pid) set on it."""
    storage = open_storage(url, create=False)
    study = load_study(storage, study_name)
    settings = read_settings(study)
    check_compatible(settings, study_name)
    state = budget_state(study)
    if state.budget is None and trials is None:
        raise ActsearchError(f"study {study_name!r} has no trial budget: pass --trials N, or set one with "
                             f"`actsearch search --storage URL --study {study_name} --trials N --workers 0`")
    if REFERENCES_ATTR not in study.user_attrs:
        raise ActsearchError(f"study {study_name!r} is not set up yet: create it with `actsearch search "
                             f"--storage URL --study {study_name} --trials N --workers 0`")
    cfg = RunConfig(trials=trials if trials is not None else 10**9, workers=1, batch=batch, pruner=pruner,
                    device=device, plots=plots, artifacts=artifacts)
    study, settings, space, _ = open_study(url, study_name, settings, cfg, _worker_index())
    total = state.room if trials is None else min(trials, state.room if state.room is not None else trials)
    if on_start is not None:
        on_start(study, settings, int(total or 0), cfg.batch)
    counts = {"trained": 0, "duplicate": 0, "pruned": 0, "failed": 0}

    def count(t: FrozenTrial) -> None:
        counts[trial_kind(t)] += 1
        if on_trial is not None:
            on_trial(t)

    interval, _ = heartbeat_settings()
    me = f"{socket.gethostname()}:{os.getpid()}"

    try:
        with stop_on_signals():  # preemption (SIGTERM): leave like Ctrl-C, trials re-queued
            asked = run_worker(study, settings, space, cfg.trials, batch=cfg.batch, device=cfg.device,
                               store=artifact_store(url, cfg.artifacts) if cfg.plots else None, run_id=cfg.run_id,
                               plots=cfg.plots, on_trial=count, poll=poll or min(2.0, interval / 2),
                               budget=True, wait_running=True)
    except KeyboardInterrupt as exc:
        n = 0
        for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
            if t.user_attrs.get("run") == cfg.run_id and t.user_attrs.get("status") == "interrupted":
                requeue(study, t)
                n += 1
        exc.requeued, exc.worker = n, me  # type: ignore[attr-defined]
        raise
    end = budget_state(study)
    return WorkerResult(me, asked, counts, end.budget, end.counted)


def trial_kind(t: FrozenTrial) -> str:
    """How a finished trial is counted in progress lines and worker summaries."""
    if "duplicate_of" in t.user_attrs:
        return "duplicate"
    return {TrialState.COMPLETE: "trained", TrialState.PRUNED: "pruned"}.get(t.state, "failed")

