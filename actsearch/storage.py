"""Where a search lives: Optuna storage URLs, study names, the study's settings, artifacts.

Storage choice. The default is one SQLite file, ``results/actsearch.db`` (the SPEC: "SQLite under
results/"), for every command — search, top, verify, export, worker, dashboard — so that a study
found by one is found by all. Optuna's docs advise against SQLite under parallel writers; the
failure they mean is "database is locked" when a writer waits longer than SQLite's busy timeout
(5 s by default). A search writes seldom (a few rows per trial, trials take seconds), so local
``--workers N`` on SQLite is made safe by (1) a 60 s busy timeout
(``engine_kwargs={"connect_args": {"timeout": 60}}``), (2) WAL journal mode, in which readers —
the dashboard, the progress line — never block the writer, and (3) creating tables and the study
in the parent before any worker starts, so workers never race on ``CREATE TABLE``. For many
machines use PostgreSQL (``postgresql://…``); for a file that tolerates many local writers without
a database engine, a JournalStorage file (``--storage results/journal.log`` or ``journal:PATH``).

Artifacts (the f/f′ plot of each trained candidate) go to a FileSystemArtifactStore in
``artifacts/`` next to a file storage (``results/artifacts/`` by default).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import signal
import sqlite3
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from .errors import ActsearchError, StudyNotFoundError
from .grammar import Space, load_space, space_from_dict

__all__ = [
    "DEFAULT_STORAGE", "SETTINGS_ATTR", "SearchSettings", "resolve_storage", "open_storage",
    "artifact_dir", "artifact_store", "study_name_for", "load_study", "read_settings",
    "space_to_dict", "create_or_load_study", "EVALUATED_FAILURES", "evaluated_keys", "cleanup_run",
    "sigint_ignored", "Heartbeat",
]

DEFAULT_STORAGE = "sqlite:///results/actsearch.db"
#: Study user attribute holding :class:`SearchSettings` — all a worker needs besides storage+name.
SETTINGS_ATTR = "actsearch_settings"
#: A worker that stops sending heartbeats for this long has its running trials failed and retried
#: once (RetryHeartbeatStaleTrialCallback: a preempted machine does not lose the candidate).
HEARTBEAT_INTERVAL, GRACE_PERIOD = 30, 120
#: Failures that say something about the function (a later equivalent trial copies them);
#: "interrupted" or a stale worker says nothing, so an equivalent trial is trained instead.
EVALUATED_FAILURES = ("degenerate", "diverged", "error")


@dataclass(frozen=True)
class SearchSettings:
    """What defines a study; stored in it at creation so ``actsearch worker`` needs nothing else.

    Everything that changes a trial's score is here (space, dataset, fidelity, seeds); pruner and
    batch size only change how fast the study gets there and may differ between runs.
    """

    space: str  # shipped space name or path, for display and the study name
    dataset: str
    fidelity: str
    sampler: str
    seed: int = 0
    seeds: int = 1  # training seeds per candidate: the score is the mean over them (paired: same seeds for all)
    cost: str = "time"  # nsga2's second objective: "time" (fwd+bwd µs) or "ops" (sympy op count)
    space_def: dict[str, Any] | None = None  # the space itself, so a worker elsewhere can rebuild it

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSettings:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def load_space(self) -> Space:
        if self.space_def is not None:
            return space_from_dict(self.space_def, f"<study space {self.space}>")
        return load_space(self.space)

    @property
    def multi_objective(self) -> bool:
        return self.sampler == "nsga2"

    @property
    def directions(self) -> list[str]:
        return ["maximize", "minimize"] if self.multi_objective else ["maximize"]


def space_to_dict(space: Space) -> dict[str, Any]:
    """The inverse of :func:`actsearch.grammar.space_from_dict` (what a space file would hold)."""
    return {
        "name": space.name, "description": space.description, "core_units": space.core_units,
        "unary": list(space.unary), "binary": list(space.binary),
        "beta": {"trainable": space.beta_trainable, "per_channel": space.beta_per_channel},
        "units": [{"inputs": list(ins)} for ins in space.inputs],
    }


def study_name_for(settings: SearchSettings) -> str:
    """Deterministic, so re-running the same command resumes the same study."""
    space = Path(settings.space).stem if settings.space.endswith(".toml") else settings.space
    seeds = f"-x{settings.seeds}" if settings.seeds != 1 else ""
    return f"{space}-{settings.dataset}-{settings.fidelity}-{settings.sampler}-s{settings.seed}{seeds}"


# ------------------------------------------------------------------------------------- storages
def resolve_storage(url: str | None) -> str:
    """The storage URL to use: the default, a URL, or a bare path (``.db`` → SQLite, ``.log`` →
    journal file)."""
    if not url:
        return DEFAULT_STORAGE
    if "://" in url or url.startswith("journal:"):
        return url
    if url.endswith((".log", ".journal")):
        return f"journal:{url}"
    return f"sqlite:///{url}"


def _file_of(url: str) -> Path | None:
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        return None if path in ("", ":memory:") else Path(path)
    if url.startswith("journal:"):
        return Path(url[len("journal:"):])
    return None


def open_storage(url: str | None, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for ``url`` configured for several local writers (see module doc).

    ``create=False`` (top, verify, export, dashboard) refuses to invent an empty database: a typo
    in ``--storage`` should say "no such storage", not "no such study".
    """
    url = resolve_storage(url)
    path = _file_of(url)
    if path is not None and not create and not path.exists():
        raise StudyNotFoundError(f"no storage at {path} (run `actsearch search` first, or pass --storage URL)")
    if url.startswith("journal:"):
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _enable_wal(path)
        engine_kwargs = {"connect_args": {"timeout": 60}}
    try:
        with warnings.catch_warnings():  # heartbeats and their retry callback are "experimental"
            warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
            return RDBStorage(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=HEARTBEAT_INTERVAL,
                grace_period=GRACE_PERIOD,
                heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
            )
    except ImportError as exc:  # e.g. postgresql:// without psycopg2
        raise ActsearchError(f"cannot open storage {url!r}: {exc} (pip install 'actsearch[postgres]')") from None
    except Exception as exc:  # SQLAlchemy's errors are many; the user needs the one line
        if type(exc).__module__.startswith(("sqlalchemy", "optuna")):
            raise ActsearchError(f"cannot open storage {url!r}: {str(exc).splitlines()[0]}") from None
        raise


def _enable_wal(path: Path) -> None:
    """WAL is a property of the database file, set once; it persists for every later connection."""
    con = sqlite3.connect(str(path), timeout=60)
    try:
        con.execute("PRAGMA journal_mode=WAL")
    finally:
        con.close()


def artifact_dir(url: str | None, override: str | None = None) -> Path:
    """``artifacts/`` next to a file storage (results/artifacts/ by default); ./results/artifacts
    for a server database."""
    if override:
        return Path(override)
    path = _file_of(resolve_storage(url))
    return (path.parent if path is not None else Path("results")) / "artifacts"


def artifact_store(url: str | None, override: str | None = None) -> optuna.artifacts.FileSystemArtifactStore:
    d = artifact_dir(url, override)
    d.mkdir(parents=True, exist_ok=True)
    return optuna.artifacts.FileSystemArtifactStore(str(d))


# --------------------------------------------------------------------------------------- studies
def load_study(storage: BaseStorage | str | None, name: str, **kwargs: Any) -> optuna.Study:
    """Load a study; a missing one is a :class:`StudyNotFoundError` naming the ones that exist."""
    if not isinstance(storage, BaseStorage):
        storage = open_storage(storage, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        known = f" (studies here: {', '.join(names)})" if names else " (this storage has no studies)"
        raise StudyNotFoundError(f"no study named {name!r}{known}") from None


def read_settings(study: optuna.Study) -> SearchSettings:
    data = study.user_attrs.get(SETTINGS_ATTR)
    if not isinstance(data, dict):
        raise ActsearchError(f"study {study.study_name!r} was not created by `actsearch search` "
                             f"(no {SETTINGS_ATTR!r} user attribute)")
    return SearchSettings.from_json(json.loads(json.dumps(data)))


def create_or_load_study(storage: BaseStorage, name: str, settings: SearchSettings, *,
                         sampler: optuna.samplers.BaseSampler | None = None,
                         pruner: optuna.pruners.BasePruner | None = None) -> tuple[optuna.Study, bool]:
    """Create the study (recording ``settings``) or resume it; returns (study, created).

    Resuming with settings that would change a trial's score (space, dataset, fidelity, seeds,
    objectives) is refused: the new trials would not be comparable with the old ones.
    """
    study = optuna.create_study(storage=storage, study_name=name, directions=settings.directions,
                                load_if_exists=True, sampler=sampler, pruner=pruner)
    stored = study.user_attrs.get(SETTINGS_ATTR)
    if stored is None:
        study.set_user_attr(SETTINGS_ATTR, settings.to_json())
        return study, True
    old = SearchSettings.from_json(stored)
    fields = ["space_def", "dataset", "fidelity", "seed", "seeds", "multi_objective"]
    if settings.multi_objective:
        fields.append("cost")
    for f in fields:
        if getattr(old, f) != getattr(settings, f):
            what = "space" if f == "space_def" else f
            raise ActsearchError(
                f"study {name!r} was created with a different {what} ({getattr(old, f)!r:.60} ≠ "
                f"{getattr(settings, f)!r:.60}); pass another --study, or the options it was created with")
    return study, False


# ------------------------------------------------------------------- trials across workers
def evaluated_keys(study: optuna.Study, exclude: set[int]) -> tuple[dict[str, FrozenTrial], dict[str, int]]:
    """key -> finished trial that evaluated it (COMPLETE over PRUNED over evaluated FAIL), and
    key -> lowest running trial number."""
    rank = {TrialState.COMPLETE: 0, TrialState.PRUNED: 1, TrialState.FAIL: 2}
    done: dict[str, FrozenTrial] = {}
    running: dict[str, int] = {}
    for t in study.get_trials(deepcopy=False):
        key = t.user_attrs.get("key")
        if key is None or t.number in exclude:
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


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """While bookkeeping after Ctrl-C runs, a second Ctrl-C must not cut it short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class Heartbeat:
    """Optuna records heartbeats only inside ``optimize``; ask/tell trials need their own, or a
    crashed worker's trials would stay RUNNING forever instead of being failed and retried."""

    def __init__(self, study: optuna.Study, trial_ids: Callable[[], list[int]]) -> None:
        self.storage, self.trial_ids = study._storage, trial_ids
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._beat, daemon=True)

    def _beat(self) -> None:
        interval = getattr(self.storage, "get_heartbeat_interval", lambda: None)()
        if interval is None:
            return
        while not self.stop.is_set():
            for trial_id in self.trial_ids():
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # a missed beat is retried; the grace period covers a few
                    pass
            self.stop.wait(interval)

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
