"""Where a search lives: Optuna storage URLs, opening and loading studies, artifacts.

Storage choice. The default is one SQLite file, ``results/actsearch.db`` (a search with no options
needs no server), for every command — search, top, verify, export, worker, dashboard — so that a study
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

Faults. A storage that fails under a running command — unreachable past
:func:`storage_patience`, full, damaged, its file deleted (:func:`check_storage_file`) — is a
:class:`~actsearch.errors.StorageError`: one line, exit status 2. A journal's broken last record
is set aside, never appended behind (:class:`_JournalFile`). The user's view of all of it, storage
by storage: docs/explanation/reliability.md.
"""
from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import sqlite3
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalFileSymlinkLock
from optuna.trial import TrialState

from ..errors import ActsearchError, ForeignStudyError, StorageError, StudyNotFoundError
from ..paths import output_dir
from ._signals import sigint_deferred
from .settings import MAX_RETRIES, SETTINGS_ATTR, SearchSettings

__all__ = [
    "DEFAULT_STORAGE", "resolve_storage", "open_storage", "artifact_dir", "artifact_store", "load_study",
    "read_settings", "stored_settings", "create_or_load_study", "RetryingRDBStorage", "is_transient",
    "heartbeat_settings", "storage_patience", "check_storage_file", "MAX_STUDY_NAME",
]

DEFAULT_STORAGE = "sqlite:///results/actsearch.db"
#: A worker that stops sending heartbeats for this long has its running trials failed and retried
#: once (RetryHeartbeatStaleTrialCallback: a preempted machine does not lose the candidate).
#: Tests and impatient users override them with ACTSEARCH_HEARTBEAT_INTERVAL / ACTSEARCH_GRACE_PERIOD.
HEARTBEAT_INTERVAL, GRACE_PERIOD = 30, 120
#: How long a storage call keeps retrying a transient database error (disconnect, restart, a lock
#: another process holds) before the command gives up with one line and exit status 2
#: (env ACTSEARCH_STORAGE_TIMEOUT). SQLite's busy timeout is the same, at most 60 s.
DB_RETRY_SECONDS = 120.0
#: The longest study name: Optuna's study_name column holds 512 characters (PostgreSQL enforces it).
MAX_STUDY_NAME = 512
#: psycopg2/MySQL connect timeout: an unreachable server is a one-line error within seconds.
CONNECT_TIMEOUT = 5
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


def _check_file_storage(url: str) -> Path | None:
    """The file a SQLite or journal URL names, checked: a path (not in-memory, not a folder), in a
    folder that can be written, holding a database of that kind if it exists. None for a server."""
    if url.startswith("sqlite") and _file_of(url) is None:
        raise ActsearchError(f"{url!r} is an in-memory SQLite database, which no other command or worker can "
                             "see: give a file, e.g. --storage results/actsearch.db")
    if url.startswith("journal:") and not url[len("journal:"):].strip():
        raise ActsearchError(f"{url!r} names no file: write journal:PATH (e.g. journal:results/journal.log)")
    path = _file_of(url)
    if path is None:
        return None
    kind = "journal file" if url.startswith("journal:") else "SQLite database"
    if path.exists() and not path.is_file():
        raise ActsearchError(f"storage {path} is not a file (a folder?): give the {kind}'s file name")
    output_dir(path.parent, f"the folder of storage {path}")
    # A journal's first bytes are read here; a SQLite file is checked by SQLite itself (_enable_wal):
    # closing any other descriptor of a database this process holds open drops SQLite's POSIX locks
    # on it (sqlite.org/howtocorrupt.html, 2.2) — seen here as "database disk image is malformed".
    if kind == "journal file" and path.is_file() and path.stat().st_size:
        with path.open("rb") as fh:
            head = fh.read(64)
        if not head.lstrip().startswith(b"{"):
            raise ActsearchError(f"{path} is not an Optuna journal file: give another --storage")
    return path


def open_storage(url: str | None, *, create: bool = True) -> BaseStorage:
    """An Optuna storage for ``url`` configured for several local writers (see module doc).

    ``create=False`` (top, verify, export, dashboard) refuses to invent an empty database: a typo
    in ``--storage`` should say "no such storage", not "no such study".
    """
    url = resolve_storage(url)
    path = _check_file_storage(url)
    if path is not None and not create and not path.exists():
        raise StudyNotFoundError(f"no storage at {path} (run `actsearch search` first, or pass --storage URL)")
    if url.startswith("journal:"):
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        return _remember_file(_open_journal(path), path)
    engine_kwargs: dict[str, Any] = {}
    patience = storage_patience()
    if url.startswith("sqlite"):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            _enable_wal(path, min(60.0, patience))
        engine_kwargs = {"connect_args": {"timeout": min(60.0, patience)}}
    else:  # a server: drop dead pooled connections before use, give up connecting after seconds
        engine_kwargs = {"pool_pre_ping": True}
        if url.startswith(("postgresql", "mysql")):
            engine_kwargs["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    interval, grace = heartbeat_settings()
    try:
        for attempt in range(_CREATE_ATTEMPTS):
            try:
                with warnings.catch_warnings():  # heartbeats and their retry callback are "experimental"
                    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
                    storage = RetryingRDBStorage(
                        url, engine_kwargs=engine_kwargs, heartbeat_interval=interval, grace_period=grace,
                        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(
                            max_retry=MAX_RETRIES, inherit_intermediate_values=False),
                    )
                break
            except Exception as exc:
                # Two processes opening one new database both create its tables; the loser's CREATE
                # TABLE fails ("table alembic_version already exists") or, a moment later, its stamp
                # of the schema version ("UNIQUE constraint failed: alembic_version.version_num") —
                # the tables are there now.
                if not _lost_creation_race(exc) or attempt == _CREATE_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))
        if url.startswith("sqlite"):
            _serialize_sqlite_writers(storage.engine)
        storage.retry_seconds = patience
        return _remember_file(storage, path) if path is not None else storage
    except ImportError as exc:  # e.g. postgresql:// without psycopg2
        raise ActsearchError(f"cannot open storage {url!r}: {exc} (pip install 'actsearch[postgres]')") from None
    except Exception as exc:  # SQLAlchemy's errors are many; the user needs the one line
        if type(exc).__module__.startswith(("sqlalchemy", "optuna")):
            raise ActsearchError(f"cannot open storage {_redact(url)!r}: {_first_line(exc)}") from None
        raise


#: Attempts at opening a storage whose tables another process is creating at the same moment.
_CREATE_ATTEMPTS = 5


def _lost_creation_race(exc: BaseException) -> bool:
    """Whether opening a storage failed only because another process created its schema first."""
    text = str(exc)
    return "already exists" in text or ("alembic_version" in text and ("UNIQUE" in text or "duplicate key" in text))


def storage_patience() -> float:
    """Seconds a storage may stay unreachable before a command gives up: :data:`DB_RETRY_SECONDS`,
    or ACTSEARCH_STORAGE_TIMEOUT."""
    text = os.environ.get("ACTSEARCH_STORAGE_TIMEOUT")
    if text is None:
        return DB_RETRY_SECONDS
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise ActsearchError(f"ACTSEARCH_STORAGE_TIMEOUT must be a number of seconds above 0, got {text!r}")
    return value


# ----------------------------------------------------------------------------------- journal
class _JournalFile(JournalFileBackend):
    """Optuna's journal file, whose appends first set aside a broken last record.

    A write cut short (a full disk, a process killed inside it) leaves a partial last line; Optuna's
    reader skips it, but the next append lands behind it and from then on every read of the file
    fails. Appending here, under the journal's lock (no other writer is inside a write), first
    moves such a tail to a side file (:func:`_set_aside_broken_tail`). The lock is given the file's
    absolute path: Optuna's lock is a symlink to that path, and a relative target resolves against
    the lock's own folder, so with a relative ``--storage`` a stale lock never looked stale."""

    def __init__(self, path: Path) -> None:
        absolute = os.path.abspath(path)
        super().__init__(absolute, JournalFileSymlinkLock(absolute))

    def set_aside_broken_tail(self) -> None:
        self._lock.acquire()
        try:
            _set_aside_broken_tail(Path(self._file_path))
        finally:
            self._lock.release()

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
        self._lock.acquire()
        try:
            _set_aside_broken_tail(Path(self._file_path))
            with open(self._file_path, "ab") as fh:  # as Optuna writes: one write, flushed, fsynced
                fh.write(text.encode("utf-8"))
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            self._lock.release()


def _is_record(line: bytes) -> bool:
    """A complete journal record: one line of JSON holding an Optuna operation."""
    if not line.endswith(b"\n"):
        return False
    try:
        record = json.loads(line)
    except ValueError:
        return False
    return isinstance(record, dict) and "op_code" in record


def _set_aside_broken_tail(path: Path) -> int:
    """Move the lines at the end of journal ``path`` that are not complete records (a partial
    last line, garbage appended) to a side file ``PATH.damaged-TIME``, saying so on stderr;
    returns the bytes moved. The caller holds the journal's lock."""
    size = path.stat().st_size if path.exists() else 0
    if size == 0:
        return 0
    with path.open("rb") as fh:
        block = min(size, 4 << 20)  # a record is a few KB; the tail of a damaged file is read whole
        fh.seek(size - block)
        tail = fh.read(block)
    lines = tail.splitlines(keepends=True)
    cut = len(tail)
    for line in reversed(lines[1:] if block < size else lines):  # (a first line cut by the block is not judged)
        if _is_record(line):
            break
        cut -= len(line)
    if cut == len(tail):
        return 0
    side = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}")
    side.write_bytes(tail[cut:])
    os.truncate(path, size - block + cut)
    print(f"actsearch: journal {path} ended in {len(tail) - cut} bytes that are not a complete record (a write "
          f"cut short by a full disk or a killed process); moved them to {side} — the study is as it was "
          "before that write", file=sys.stderr)
    return len(tail) - cut


def _open_journal(path: Path) -> JournalStorage:
    try:
        backend = _JournalFile(path)
        backend.set_aside_broken_tail()
        return JournalStorage(backend)
    except (OSError, ValueError) as exc:  # json.JSONDecodeError is a ValueError
        if isinstance(exc, ValueError) and not isinstance(exc, OSError):
            line = _first_bad_line(path)
            raise StorageError(f"journal {path} is damaged at line {line} (not a complete record, with records "
                               f"after it), so Optuna cannot read it past there: move the file aside and "
                               f"restart the study, or remove line {line} by hand") from None
        raise StorageError(f"cannot open journal storage {path}: {exc}") from None


def _first_bad_line(path: Path) -> int:
    with path.open("rb") as fh:
        for number, line in enumerate(fh, 1):
            if not _is_record(line):
                return number
    return 0


# ------------------------------------------------------------------------ the storage's file
def _remember_file(storage: BaseStorage, path: Path) -> BaseStorage:
    """Note which file (device, inode) ``storage`` opened: :func:`check_storage_file` compares."""
    with contextlib.suppress(OSError):
        st = os.stat(path)
        storage.actsearch_file = (os.path.abspath(path), st.st_dev, st.st_ino)  # type: ignore[attr-defined]
    return storage


def check_storage_file(storage: BaseStorage) -> None:
    """Raise :class:`StorageError` when the file a SQLite or journal storage was opened on has
    been deleted or replaced since: this process would go on writing to a file no one can see
    (SQLite keeps the deleted inode open), and its trials would be lost without a word."""
    storage = getattr(storage, "_backend", storage)  # Optuna's cache wraps an RDB storage
    known = getattr(storage, "actsearch_file", None)
    if known is None:
        return
    path, dev, ino = known
    try:
        st = os.stat(path)
        same = (st.st_dev, st.st_ino) == (dev, ino)
    except OSError:
        same = False
    if not same:
        raise StorageError(f"the storage file {path} was deleted or replaced while this command ran; what was "
                           "written since is lost with it. Restore the file from a copy, or start again")


def heartbeat_settings() -> tuple[int, int]:
    """(heartbeat interval, grace period) in seconds: 30/120, or the ACTSEARCH_* overrides."""
    def env(name: str, default: int) -> int:
        try:
            return max(1, int(os.environ.get(name, default)))
        except ValueError:
            raise ActsearchError(f"{name} must be a whole number of seconds, got {os.environ[name]!r}") from None

    return env("ACTSEARCH_HEARTBEAT_INTERVAL", HEARTBEAT_INTERVAL), env("ACTSEARCH_GRACE_PERIOD", GRACE_PERIOD)


def _redact(url: str) -> str:
    """The URL without its password (it goes into error messages and logs)."""
    head, sep, tail = url.partition("://")
    if sep and "@" in tail:
        cred, _, rest = tail.rpartition("@")
        if ":" in cred:
            return f"{head}://{cred.split(':', 1)[0]}:***@{rest}"
    return url


def _first_line(exc: BaseException) -> str:
    cause = exc.__cause__ if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ else exc
    orig = getattr(cause, "orig", None) or cause  # the DBAPI's own message, not SQLAlchemy's wrapper
    lines = [ln.strip() for ln in str(orig).splitlines() if ln.strip()]
    return " ".join(lines[:2])[:300] if lines else type(orig).__name__


# ------------------------------------------------------------------ transient database errors
#: SQLite's answers that no retry changes: the disk is full, the file is damaged or read-only.
_FATAL = {"disk is full": "the disk holding it is full: free space, then run the same command again",
          "malformed": "the file is damaged: give another --storage (a new file is created)",
          "not a database": "the file is damaged: give another --storage (a new file is created)",
          "readonly database": "the file cannot be written: check its permissions",
          "disk i/o error": "the disk reported an error: check it, then run the same command again",
          # a SQLite file deleted under a running command, and re-created empty by a new connection
          "no such table": "its file was deleted or replaced while this command ran"}


def _fatal_reason(exc: BaseException) -> str | None:
    text = _first_line(exc).lower()
    return next((why for key, why in _FATAL.items() if key in text), None)


def _database_error(exc: BaseException) -> bool:
    """An error the database itself answered (not a bug of the caller's arguments)."""
    import sqlalchemy.exc as sa_exc  # start-up time: only RDB storages load SQLAlchemy (Optuna too)

    return isinstance(exc, (optuna.exceptions.StorageInternalError, sa_exc.DBAPIError))


def is_transient(exc: BaseException) -> bool:
    """A database error worth retrying: a lost/refused connection, a restart, a lock timeout."""
    import sqlalchemy.exc as sa_exc  # start-up time: only RDB storages load SQLAlchemy (Optuna too)

    if isinstance(exc, optuna.exceptions.StorageInternalError) and exc.__cause__ is not None:
        exc = exc.__cause__
    if _fatal_reason(exc) is not None:
        return False
    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
        return True
    if isinstance(exc, sa_exc.PendingRollbackError):  # an earlier call's lost connection poisoned
        return True  # this thread's session; the retry starts a fresh one
    return isinstance(exc, sa_exc.DBAPIError) and bool(exc.connection_invalidated)


class RetryingRDBStorage(RDBStorage):
    """RDBStorage whose calls survive a transient database outage.

    ``pool_pre_ping`` replaces connections that died while idle; a connection that dies *during*
    a call raises OperationalError/DBAPIError (Optuna wraps it in StorageInternalError): that call
    is retried with exponential backoff (0.25 s doubling to 8 s) for up to ``retry_seconds``
    (:func:`storage_patience`); then, and at once for an error no retry mends (a full disk, a
    damaged file), the command gives up with a :class:`StorageError` — one line. Once it has given
    up, later calls (the cleanup that fails this run's trials) try once each instead of waiting
    again. One warning per outage, not one per retry. A write whose commit reached the server
    before the connection dropped is not repeated twice in effect: a retried ``tell`` that finds
    its trial already finished counts as done.
    """

    retry_seconds = DB_RETRY_SECONDS
    retries = 0  # transient errors survived (tests and logs)
    gave_up = False  # an outage outlasted retry_seconds: no more waiting in this process

    # A trial's first heartbeat is written in the transaction that makes it RUNNING — created, or a
    # queued one popped — not after ``study.ask()`` returns: a process killed in between left a
    # RUNNING trial without a heartbeat, which Optuna's stale check skips (seen in CI: the next
    # run left it RUNNING forever). Killed at any moment, the trial is stale one grace period later.
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _beat_when_popped(self)

    def __setstate__(self, state: dict[Any, Any]) -> None:
        super().__setstate__(state)
        _beat_when_popped(self)

    def _get_prepared_new_trial(self, study_id: int, template_trial: Any, session: Any) -> Any:
        trial = super()._get_prepared_new_trial(study_id, template_trial, session)
        if self.heartbeat_interval is not None and trial.state == TrialState.RUNNING:
            from optuna.storages._rdb import models  # start-up time: only RDB storages load SQLAlchemy

            session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))  # the database's now
        return trial


def _beat_when_popped(storage: RetryingRDBStorage) -> None:
    """Give a WAITING trial set RUNNING (``study.ask()`` popping it) its heartbeat in the same flush."""
    if storage.heartbeat_interval is None:
        return
    import sqlalchemy  # start-up time: only RDB storages load SQLAlchemy (Optuna too)
    from optuna.storages._rdb import models  # start-up time: likewise

    def before_flush(session: Any, _context: Any, _instances: Any) -> None:
        for trial in session.dirty:
            if (isinstance(trial, models.TrialModel) and trial.state == TrialState.RUNNING
                    and TrialState.WAITING in sqlalchemy.inspect(trial).attrs.state.history.deleted):
                beat = models.TrialHeartbeatModel.where_trial_id(trial.trial_id, session)
                if beat is None:
                    session.add(models.TrialHeartbeatModel(trial_id=trial.trial_id))
                else:
                    beat.heartbeat = sqlalchemy.func.current_timestamp()

    sqlalchemy.event.listen(storage.scoped_session, "before_flush", before_flush)


def _retrying(name: str, base: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(base)
    def method(self: RetryingRDBStorage, *args: Any, **kwargs: Any) -> Any:
        start = time.monotonic()
        deadline, delay, attempt = start + (0.0 if self.gave_up else self.retry_seconds), 0.25, 0
        while True:
            try:
                with sigint_deferred():
                    result = base(self, *args, **kwargs)
                self.gave_up = False
                return result
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempt and name == "set_trial_state_values":
                    return True  # the first attempt committed before its connection dropped
                raise
            except Exception as exc:
                if _fatal_reason(exc) is not None:
                    raise StorageError(f"storage {_redact(self.url)}: {_first_line(exc)} — {_fatal_reason(exc)}; "
                                       "finished trials are kept") from None
                if not is_transient(exc):
                    if _database_error(exc):  # e.g. a table dropped under the run: no traceback
                        raise StorageError(f"storage {_redact(self.url)}: {_first_line(exc)}") from None
                    raise
                if time.monotonic() + delay > deadline:
                    self.gave_up = True
                    raise StorageError(
                        f"storage {_redact(self.url)} unusable for {time.monotonic() - start:.0f} s (limit "
                        f"{self.retry_seconds:g} s, ACTSEARCH_STORAGE_TIMEOUT): {_first_line(exc)}"
                        f"{_LOCKED_HINT if 'locked' in _first_line(exc) else ''}; finished trials are kept: "
                        "run the same command again once the storage is back") from None
                attempt += 1
                type(self).retries += 1
                if attempt == 1:
                    warnings.warn(f"actsearch: database error in {name} ({_first_line(exc)}); retry {attempt} in "
                                  f"{delay:.2f} s, retrying for up to {self.retry_seconds:g} s", RuntimeWarning,
                                  stacklevel=2)
                with contextlib.suppress(Exception):
                    self.scoped_session.remove()  # a fresh session on a fresh connection
                time.sleep(delay)
                delay = min(delay * 2, 8.0)

    return method


for _name in ("create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr",
              "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
              "get_study_user_attrs", "get_study_system_attrs", "get_all_studies", "create_new_trial",
              "set_trial_param", "get_trial_id_from_study_id_trial_number", "get_trial_number_from_id",
              "get_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
              "set_trial_user_attr", "set_trial_system_attr", "get_trial", "get_all_trials", "get_n_trials",
              "get_best_trial", "get_trial_params", "get_trial_user_attrs", "get_trial_system_attrs",
              "record_heartbeat",
              # Optuna's cache layer (_CachedStorage, used for every RDB URL) calls these private
              # methods directly: a connection killed under study.ask() surfaced from _get_trials.
              "_get_trials", "_get_best_trial_id", "_create_new_trial", "_set_trial_param"):
    setattr(RetryingRDBStorage, _name, _retrying(_name, getattr(RDBStorage, _name)))


#: A SQLite write lock held past the patience limit: some process holds a transaction open.
_LOCKED_HINT = (" (another process holds the database's write lock: a stopped process — Ctrl-Z, a frozen "
                "container, a debugger — can be found with `fuser FILE` and resumed or ended)")


def _stale_or_orphaned(self: RetryingRDBStorage, study_id: int) -> list[int]:
    """Optuna's stale trials, after giving every RUNNING trial that has no heartbeat one now.

    Optuna looks only at trials with a heartbeat. This storage writes a trial's first one with its
    RUNNING state (:class:`RetryingRDBStorage`), but another client of the same database — plain
    Optuna, an older actsearch — may leave a RUNNING trial without any if it dies inside
    ``study.ask()``: no one would ever fail it, and a worker waiting for the study's running
    trials would wait forever. The heartbeat given here is the database's own time (clocks of
    other machines do not matter): a live owner keeps beating; a dead one's trial is stale one
    grace period later and retried like any other."""
    from optuna.storages._rdb import models  # start-up time: only RDB storages load SQLAlchemy
    from optuna.storages._rdb.storage import _create_scoped_session

    # One transaction (SQLite: BEGIN IMMEDIATE); an owner inserting its first beat at this very
    # moment wins the unique constraint, and this insert is dropped.
    with _create_scoped_session(self.scoped_session, ignore_integrity_error=True) as session:
        orphans = (session.query(models.TrialModel.trial_id)
                   .filter(models.TrialModel.study_id == study_id, models.TrialModel.state == TrialState.RUNNING,
                           ~models.TrialModel.heartbeats.any()).all())
        session.add_all(models.TrialHeartbeatModel(trial_id=trial_id) for (trial_id,) in orphans)  # the database's now
    return RDBStorage._get_stale_trial_ids(self, study_id)


RetryingRDBStorage._get_stale_trial_ids = _retrying("_get_stale_trial_ids", _stale_or_orphaned)  # type: ignore[method-assign]


def _serialize_sqlite_writers(engine: Any) -> None:
    """Open every SQLite transaction with BEGIN IMMEDIATE.

    Optuna pops a WAITING trial (an enqueued reference, a retried trial) with SELECT … FOR UPDATE
    then UPDATE; SQLite ignores FOR UPDATE, so two local workers could both read WAITING and both
    run the same trial (seen: "Trial#1 has already finished", one trial lost). Taking SQLite's
    write lock at BEGIN makes each read-then-write transaction atomic across processes; the busy
    timeout makes the others wait instead of failing. (SQLAlchemy's documented pysqlite recipe.)
    """
    from sqlalchemy import event  # start-up time: only RDB storages load SQLAlchemy (Optuna too)

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below emit BEGIN itself

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections made before the hooks existed must not be reused


def _enable_wal(path: Path, patience: float = 60.0) -> None:
    """WAL is a property of the database file, set once; it persists for every later connection.
    Switching needs the file to itself, and SQLite answers "database is locked" at once (its busy
    timeout does not cover this lock) while another process — a second search started at the same
    moment — is creating the study's tables: that is retried for up to ``patience`` seconds; a
    file already in WAL mode is left as it is."""
    deadline = time.monotonic() + patience
    while True:
        con = sqlite3.connect(str(path), timeout=patience)
        try:
            if str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                con.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.DatabaseError as exc:  # "file is not a database" …; "database is locked": retried
            if not isinstance(exc, sqlite3.OperationalError) or "locked" not in str(exc) or time.monotonic() > deadline:
                raise ActsearchError(f"{path} is not a usable SQLite database ({exc}): give another --storage (a new "
                                     "file is created), or journal:PATH for a journal file") from None
        finally:
            con.close()
        time.sleep(0.05 + 0.1 * random.random())


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
def check_study_name(name: str) -> str:
    """A study name every storage can hold (PostgreSQL refuses one over :data:`MAX_STUDY_NAME`)."""
    if not name.strip():
        raise ActsearchError("the study name is empty: give --study NAME")
    if len(name) > MAX_STUDY_NAME:
        raise ActsearchError(f"the study name is {len(name)} characters long (at most {MAX_STUDY_NAME}): "
                             "give a shorter --study")
    return name


def load_study(storage: BaseStorage | str | None, name: str, **kwargs: Any) -> optuna.Study:
    """Load a study; a missing one is a :class:`StudyNotFoundError` naming the ones that exist."""
    check_study_name(name)
    if not isinstance(storage, BaseStorage):
        storage = open_storage(storage, create=False)
    try:
        return optuna.load_study(study_name=name, storage=storage, **kwargs)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
        known = f" (studies here: {', '.join(names)})" if names else " (this storage has no studies)"
        raise StudyNotFoundError(f"no study named {name!r}{known}") from None


def stored_settings(url: str | None, name: str) -> dict[str, Any] | None:
    """The settings study ``name`` was created with (as stored), or None when it does not exist yet
    (or is an empty study another ``actsearch search`` is creating this instant). A study that
    ``actsearch search`` did not create is a :class:`ForeignStudyError`."""
    check_study_name(name)
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url))
    except KeyError:
        return None
    if SETTINGS_ATTR not in study.user_attrs and _empty(study):
        return None
    return read_settings(study).to_json()


def _empty(study: optuna.Study) -> bool:
    """A study with no trials and no user attributes: one that was just created, adoptable."""
    return not study.user_attrs and not study._storage.get_n_trials(study._study_id)


def read_settings(study: optuna.Study) -> SearchSettings:
    """The settings the study was created with; a study ``actsearch search`` did not create — no
    settings, settings that do not read back, other directions — is a :class:`ForeignStudyError`."""
    data = study.user_attrs.get(SETTINGS_ATTR)
    what = f"study {study.study_name!r} was not created by `actsearch search`"
    if not isinstance(data, dict):
        raise ForeignStudyError(f"{what} (no {SETTINGS_ATTR!r} user attribute): actsearch does not read or add to "
                                "it; pass another --study")
    try:
        settings = SearchSettings.from_json(json.loads(json.dumps(data)))
        directions = settings.directions
        settings.load_space()
    except Exception as exc:  # whatever a foreign value makes of the dataclass or the space
        raise ForeignStudyError(f"{what} (its {SETTINGS_ATTR!r} attribute does not read back: "
                                f"{type(exc).__name__}: {str(exc)[:120]}); pass another --study") from None
    have = [d.name.lower() for d in study.directions]
    if have != directions:
        raise ForeignStudyError(f"{what}: it optimizes {', '.join(have)} where actsearch needs "
                                f"{', '.join(directions)}; pass another --study")
    return settings


def create_or_load_study(storage: BaseStorage, name: str, settings: SearchSettings, *,
                         sampler: optuna.samplers.BaseSampler | None = None,
                         pruner: optuna.pruners.BasePruner | None = None) -> tuple[optuna.Study, bool]:
    """Create the study (recording ``settings``) or resume it; returns (study, created).

    Resuming with settings that would change a trial's score (space, dataset, fidelity, seeds,
    objectives, a user's task or dataset file) is refused: the new trials would not be comparable
    with the old ones.
    """
    check_study_name(name)
    study = optuna.create_study(storage=storage, study_name=name, directions=settings.directions,
                                load_if_exists=True, sampler=sampler, pruner=pruner)
    if SETTINGS_ATTR not in study.user_attrs and _empty(study):  # new (or another search's, a moment old)
        if [d.name.lower() for d in study.directions] != settings.directions:
            read_settings(study)  # the refusal, in its words
        study.set_user_attr(SETTINGS_ATTR, settings.to_json())
        return study, True
    old = read_settings(study)  # refuses a study another tool made: never adopted, never written to
    fields = ["task_key", "data_hash", "space_def", "dataset", "fidelity", "seed", "seeds", "multi_objective",
              "objective_names"]
    if settings.multi_objective and "cost" in settings.objective_names:
        fields.append("cost")
    for f in fields:
        if getattr(old, f) != getattr(settings, f):
            what = {"space_def": "space", "task_key": "task (name, file hash)", "data_hash": "dataset file"}.get(f, f)
            raise ActsearchError(
                f"study {name!r} was created with a different {what} ({getattr(old, f)!r:.60} ≠ "
                f"{getattr(settings, f)!r:.60}); pass another --study, or the options it was created with")
    return study, False
