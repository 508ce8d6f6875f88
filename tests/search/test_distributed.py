"""Distributed search (issue 7): `actsearch worker` processes sharing one study.

(a) three workers on PostgreSQL (with every connection killed once mid-run) run every trial once
and respect the budget; (b) a worker SIGKILLed mid-trial has its trial found stale, re-queued and
finished by another; (c) the same workers on the local default storage (SQLite). Plus: version and
space checks, budget arithmetic, retry of transient database errors.

The PostgreSQL tests need ACTSEARCH_TEST_POSTGRES_URL (.ci/postgres starts a throwaway server) and
skip with the reason otherwise; each gets its own fresh database. Workers run at smoke fidelity on
a tiny space with a 1 s heartbeat and a 4 s grace period.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Iterator

import optuna
import pytest
from optuna.trial import TrialState

from actsearch.cli import main
from actsearch.errors import ActsearchError
from actsearch.search import (EVALUATED_FAILURES, RetryingRDBStorage, SearchSettings, load_study, open_storage,
                               read_settings)
from actsearch.search import MAX_RETRIES, counted, replaced_numbers
from actsearch.errors import IncompatibleWorkerError
from actsearch.search import check_compatible

optuna.logging.set_verbosity(optuna.logging.WARNING)
ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "ACTSEARCH_HEARTBEAT_INTERVAL": "1", "ACTSEARCH_GRACE_PERIOD": "4",
       "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
WORKER = [sys.executable, "-m", "actsearch", "worker", "--batch", "2", "--no-plots", "--quiet", "--device", "cpu",
          "--pruner", "none"]
# A worker whose training sleeps first (argv[1] seconds): something to SIGKILL in the middle of.
SLOW = ("import sys, time, actsearch.evaluation as p; f = p.train_population; d = float(sys.argv.pop(1)); "
        "p.train_population = lambda *a, **k: (time.sleep(d), f(*a, **k))[1]; "
        "from actsearch.cli import main; sys.exit(main(sys.argv[1:]))")


# ------------------------------------------------------------------------------------ servers
def _pg_server() -> str:
    url = os.environ.get("ACTSEARCH_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("ACTSEARCH_TEST_POSTGRES_URL is not set (.ci/postgres starts a server)")
    import sqlalchemy

    try:
        eng = sqlalchemy.create_engine(url, connect_args={"connect_timeout": 3})
        with eng.connect():
            pass
        eng.dispose()
    except Exception as exc:
        pytest.skip(f"PostgreSQL at ACTSEARCH_TEST_POSTGRES_URL is unreachable: {str(exc).splitlines()[0]}")
    return url


def _admin(url: str, sql: str) -> list[tuple]:
    import sqlalchemy

    eng = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as c:
            res = c.execute(sqlalchemy.text(sql))
            return list(res) if res.returns_rows else []
    finally:
        eng.dispose()


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A fresh database on the test server, dropped afterwards: reruns never collide."""
    from sqlalchemy.engine import make_url

    server = _pg_server()
    name = f"actsearch_{uuid.uuid4().hex[:12]}"
    _admin(server, f"CREATE DATABASE {name}")
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        _admin(server, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


# ------------------------------------------------------------------------------------ helpers
def _create(url: str, study: str, trials: int, tmp_path: Path, sampler: str = "random", more: bool = False) -> None:
    """The study with a budget of ``trials`` (``more``: ``trials`` beyond the trials it holds)."""
    rc = main(["search", "--storage", url, "--study", study, "--space", "tiny", "--fidelity", "smoke",
               "--sampler", sampler, "--more" if more else "--trials", str(trials), "--workers", "0", "--quiet",
               "--pruner", "none", "--seed", "3"])
    assert rc == 0


def _start(url: str, study: str, cwd: Path, slow: float | None = None) -> subprocess.Popen:
    argv = WORKER + ["--storage", url, "--study", study]
    if slow is not None:
        argv = [sys.executable, "-c", SLOW, str(slow)] + argv[3:]
    return subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(procs: list[subprocess.Popen], timeout: float = 90) -> list[str]:
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=timeout)
            assert p.returncode == 0, err[-2000:]
            outs.append(out)
    finally:  # a failed check must not leave workers running into the next tests
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    return outs


def _check_once(url: str, study_name: str, budget: int) -> list[optuna.trial.FrozenTrial]:
    """Every trial ran exactly once: none left running or queued, the budget counted exactly, each
    equivalence key trained by one trial (others say duplicate_of), retried trials replaced."""
    study = load_study(url, study_name)
    trials = study.get_trials()
    assert study.user_attrs["budget"] == budget
    states = [t.state for t in trials]
    assert TrialState.RUNNING not in states and TrialState.WAITING not in states, states
    replaced = replaced_numbers(trials)
    used = [t for t in trials if counted(t, replaced)]
    assert len(used) == budget, [(t.number, t.state, t.user_attrs.get("status")) for t in trials]
    trained: dict[str, int] = {}
    for t in used:
        assert t.state in (TrialState.COMPLETE, TrialState.PRUNED) or t.user_attrs["status"] in EVALUATED_FAILURES
        if "duplicate_of" in t.user_attrs:
            assert trials[t.user_attrs["duplicate_of"]].user_attrs["key"] == t.user_attrs["key"]
        elif t.state == TrialState.COMPLETE:
            assert t.user_attrs["key"] not in trained, f"key trained twice: {trained[t.user_attrs['key']]}, {t.number}"
            trained[t.user_attrs["key"]] = t.number
    for t in trials:  # the uncounted ones say why: replaced by a retry, failed by actsearch, or given up
        if t not in used:
            assert (t.number in replaced or t.user_attrs.get("status") in ("over_budget", "interrupted")
                    or len(t.system_attrs.get("retry_history", ())) >= MAX_RETRIES), (t.number, t.user_attrs, t.system_attrs)
    return trials


# ------------------------------------------------------------------------------- (a) (b) (c)
@pytest.mark.postgres
@pytest.mark.slow
def test_three_workers_share_a_postgres_study(pg_url: str, tmp_path: Path) -> None:
    _create(pg_url, "three", 14, tmp_path)
    procs = [_start(pg_url, "three", tmp_path) for _ in range(3)]
    # A transient outage: once trials are running, kill every connection the workers hold.
    study = load_study(pg_url, "three")
    deadline = time.time() + 60
    while time.time() < deadline and not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        time.sleep(0.3)
    killed = _admin(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert killed, "the workers should hold connections"
    outs = _finish(procs)
    trials = _check_once(pg_url, "three", 14)
    workers = {t.user_attrs.get("worker") for t in trials if t.state == TrialState.COMPLETE}
    assert len(workers) >= 2, workers  # the work was shared
    assert all("trials of the budget used" in o for o in outs)


@pytest.mark.postgres
@pytest.mark.slow
def test_sigkilled_worker_trial_is_retried(pg_url: str, tmp_path: Path) -> None:
    _create(pg_url, "kill", 6, tmp_path)
    victim = _start(pg_url, "kill", tmp_path, slow=60)  # would hold its batch for a minute
    study = load_study(pg_url, "kill")
    deadline = time.time() + 60
    mine: list[int] = []
    while time.time() < deadline and not mine:
        mine = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                if t.user_attrs.get("worker", "").endswith(f":{victim.pid}") and "key" in t.user_attrs]
        time.sleep(0.2)
    assert mine, "the slow worker never started a trial"
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=10)
    rescuer = _start(pg_url, "kill", tmp_path)
    _finish([rescuer])
    trials = _check_once(pg_url, "kill", 6)
    for n in mine:  # failed as stale, replaced by a retry that finished
        assert trials[n].state == TrialState.FAIL
        retries = [t for t in trials if n in t.system_attrs.get("retry_history", [])]
        assert len(retries) == 1 and retries[0].state.is_finished() and retries[0].state != TrialState.FAIL
        assert retries[0].params == trials[n].params
        assert retries[0].user_attrs["worker"].endswith(f":{rescuer.pid}")


@pytest.mark.slow
def test_workers_on_the_local_default_storage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/local.db"
    _create(url, "local", 10, tmp_path)
    _finish([_start(url, "local", tmp_path) for _ in range(3)])
    _check_once(url, "local", 10)


# ------------------------------------------------------------------------------- the pieces
def test_budget_is_shared_and_extended(tmp_path: Path, monkeypatch) -> None:
    """`search --workers 0` sets the budget; a worker spends exactly it; `--more N` extends it by N
    (and `--trials N` again leaves it as it is: N is a goal)."""
    from tests.search.test_search import FakeTrainer

    import actsearch.evaluation

    monkeypatch.setattr(actsearch.evaluation, "train_population", FakeTrainer())
    url = f"sqlite:///{tmp_path}/b.db"
    _create(url, "b", 7, tmp_path)
    assert load_study(url, "b").user_attrs["budget"] == 7
    for _ in range(2):  # the second finds the budget used and leaves at once
        assert main(["worker", "--storage", url, "--study", "b", "--batch", "3", "--quiet", "--no-plots"]) == 0
    _check_once(url, "b", 7)
    _create(url, "b", 7, tmp_path)
    assert load_study(url, "b").user_attrs["budget"] == 7
    _create(url, "b", 4, tmp_path, more=True)
    assert main(["worker", "--storage", url, "--study", "b", "--trials", "2", "--quiet", "--no-plots"]) == 0
    assert len(load_study(url, "b").trials) == 9  # --trials caps this worker
    assert main(["worker", "--storage", url, "--study", "b", "--quiet", "--no-plots"]) == 0
    _check_once(url, "b", 11)


def test_over_budget_race_loses_cleanly(tmp_path: Path) -> None:
    """Two asks for the last place: the higher trial number is failed 'over_budget', uncounted."""
    from actsearch.search import over_budget

    study = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path}/r.db"), study_name="r")
    a, b = study.ask(), study.ask()
    assert over_budget(study, [a.number, b.number], 1) == {b.number}
    assert over_budget(study, [a.number, b.number], 2) == set()
    study.tell(a, state=TrialState.FAIL)  # an uncounted failure frees its place
    assert over_budget(study, [b.number], 1) == set()


def test_worker_refuses_another_version_or_space(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/v.db"
    _create(url, "v", 2, tmp_path)
    study = load_study(url, "v")
    s = read_settings(study)
    assert s.version and len(s.space_hash) == 16
    check_compatible(s, "v")  # as created: fine
    import dataclasses

    with pytest.raises(IncompatibleWorkerError, match="created by actsearch 0.0.1"):
        check_compatible(dataclasses.replace(s, version="0.0.1"), "v")
    other = dict(s.space_def, unary=["x", "relu"])
    with pytest.raises(IncompatibleWorkerError, match="does not match its hash"):
        check_compatible(dataclasses.replace(s, space_def=other), "v")
    # Through the CLI: one line, exit 2.
    study.set_user_attr("actsearch_settings", dict(s.to_json(), version="0.0.1"))
    assert main(["worker", "--storage", url, "--study", "v", "--quiet", "--no-plots"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "created by actsearch 0.0.1" in err


def test_worker_needs_a_budget_or_trials(tmp_path: Path, capsys) -> None:
    url = f"sqlite:///{tmp_path}/n.db"
    _create(url, "n", 2, tmp_path)
    load_study(url, "n")._storage.set_study_user_attr(load_study(url, "n")._study_id, "budget", None)
    assert main(["worker", "--storage", url, "--study", "n", "--quiet"]) == 2
    assert "no trial budget" in capsys.readouterr().err


def test_settings_without_version_fields_still_load() -> None:
    old = {"space": "tiny", "dataset": "tiny", "fidelity": "smoke", "sampler": "tpe",
           "space_def": {"name": "t", "unary": ["x"], "binary": ["add"]}}
    s = SearchSettings.from_json(old)
    assert s.version and s.space_hash  # filled in: an old study is checked against this version


@pytest.mark.postgres
def test_transient_disconnect_is_retried(pg_url: str) -> None:
    """A connection killed under a storage call: the call is retried, not fatal (pool_pre_ping is
    off here so the retry wrapper itself is what recovers)."""
    storage = RetryingRDBStorage(pg_url, engine_kwargs={"pool_pre_ping": False})
    sid = storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "t")
    before = RetryingRDBStorage.retries
    _admin(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.warns(RuntimeWarning, match="retry 1"):
        assert storage.get_study_name_from_id(sid) == "t"
    assert RetryingRDBStorage.retries > before
    storage.engine.dispose()


def test_transient_disconnect_under_the_cache_layer_is_retried(pg_url: str) -> None:
    """Optuna wraps every RDB storage in its cache layer, which calls RDBStorage._get_trials
    directly (seen in CI: a connection killed under study.ask() crashed a worker)."""
    storage = RetryingRDBStorage(pg_url, engine_kwargs={"pool_pre_ping": False})
    study = optuna.create_study(storage=storage, study_name="cached", direction="maximize")
    study.ask()
    _admin(pg_url, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                   "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.warns(RuntimeWarning, match="_get_trials"):
        assert len(study.get_trials(deepcopy=False)) == 1
    storage.engine.dispose()


def test_unreachable_postgres_is_one_line_exit_2(capsys) -> None:
    t0 = time.time()
    assert main(["worker", "--storage", "postgresql+psycopg2://u:secret@127.0.0.1:1/db", "--study", "x"]) == 2
    err = capsys.readouterr().err
    assert time.time() - t0 < 10
    assert err.count("\n") == 1 and err.startswith("actsearch: error: cannot open storage")
    assert "secret" not in err and "127.0.0.1" in err


def test_non_transient_errors_are_not_retried() -> None:
    from actsearch.search import is_transient
    import sqlalchemy.exc as sa

    assert is_transient(sa.OperationalError("select", {}, Exception("server closed the connection")))
    assert not is_transient(sa.IntegrityError("insert", {}, Exception("duplicate key")))
    assert is_transient(sa.PendingRollbackError("Can't reconnect until invalid transaction is rolled back"))
    assert not is_transient(ActsearchError("x"))


@pytest.fixture
def ctrl_c() -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt, as in a terminal — also when the tests run as a shell's
    background job (``pytest &``), which starts with SIGINT ignored."""
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, old)


def test_ctrl_c_inside_a_deferred_block_is_raised_when_it_ends(ctrl_c: None) -> None:
    """One storage call (or ask + tag) is never cut in half by a first Ctrl-C; a second one is
    not deferred (a call hung on an unreachable server must stay interruptible)."""
    from actsearch.search import sigint_deferred

    done: list[str] = []
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)  # the handler runs here, and defers
            done.append("finished")
    assert done == ["finished"]
    with pytest.raises(KeyboardInterrupt):
        with sigint_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
            done.append("not reached")
    assert done == ["finished"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
    with sigint_deferred():
        pass  # nothing caught: nothing raised


def test_a_new_sqlite_file_locked_by_another_process_is_waited_for(tmp_path: Path) -> None:
    """Two searches started at the same moment on a new SQLite file (CI, stop 20): while one holds
    the file's write lock (creating the study's tables), the other's switch to WAL got "database is
    locked" at once — SQLite skips the busy timeout where waiting could deadlock — and it stopped
    with "not a usable SQLite database". Now it retries until the lock is gone."""
    import sqlite3
    import threading

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("CREATE TABLE t (x)")
    released = threading.Event()

    def release() -> None:
        time.sleep(1.0)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release, daemon=True).start()
    storage = open_storage(str(path))
    assert released.is_set()  # it waited for the other writer instead of failing
    optuna.create_study(storage=storage, study_name="after-the-lock")
    holder.close()
