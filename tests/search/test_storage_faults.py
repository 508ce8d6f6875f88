"""Storage that breaks under a running search, workers that freeze, signals, studies made by other
tools. Each test drives one fault end to end and checks what the user sees (exit status, one line
on stderr) and that the study stays whole. SQLite and journal files here; PostgreSQL where
ACTSEARCH_TEST_POSTGRES_URL names a server (.ci/postgres)."""
from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from actsearch.cli import main
from actsearch.search import load_study, open_storage
from tests.search.test_distributed import ENV, SLOW, _admin, _check_once, _create, _finish, _start, pg_url  # noqa: F401

SEARCH = ["search", "--no-plots", "--quiet", "--device", "cpu", "--pruner", "none", "--batch", "2", "--space", "tiny",
          "--fidelity", "smoke", "--sampler", "random", "--seed", "3"]


def _url(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    return f"sqlite:///{tmp_path}/f.db" if backend == "sqlite" else request.getfixturevalue("pg_url")


def _one_line_exit_2(rc: int | None, err: str) -> str:
    """The last stderr line, after checking the run ended as bad input does: exit 2, no traceback."""
    assert rc == 2 and "Traceback" not in err, (rc, err[-3000:])
    lines = err.strip().splitlines()
    assert lines and lines[-1].startswith("actsearch: error: "), err[-3000:]
    return lines[-1]


def _run(argv: list[str], cwd: Path, timeout: float = 120, env: dict[str, str] | None = None,
         ) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "actsearch", *argv], cwd=cwd, env=env or ENV, capture_output=True,
                          text=True, timeout=timeout)


def _slow(argv: list[str], seconds: float, cwd: Path) -> subprocess.Popen:
    """An actsearch process whose every population sleeps ``seconds`` before training."""
    return subprocess.Popen([sys.executable, "-c", SLOW, str(seconds), *argv], cwd=cwd, env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_running(url: str, name: str, proc: subprocess.Popen, pid: int | None = None, timeout: float = 90,
                  count: int = 1) -> list[int]:
    """Numbers of the RUNNING trials (of process ``pid``, if given) once there are ``count``."""
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        try:
            trials = load_study(url, name).get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        except Exception:  # not created yet
            trials = []
        mine = [t.number for t in trials if "key" in t.user_attrs
                and (pid is None or t.user_attrs.get("worker", "").endswith(f":{pid}"))]
        if len(mine) >= count:
            return mine
        time.sleep(0.3)
    out, err = proc.communicate(timeout=30) if proc.poll() is not None else ("", "")
    raise AssertionError(f"no trial started: {err[-2000:]}")


# ----------------------------------------------------------------- 1. a journal cut short
@pytest.mark.parametrize("tail", [b'{"op_code": 5, "trial_id": 0, "us', b"\x00\x00\x00garbage\n"],
                         ids=["partial-record", "garbage-line"])
def test_a_journal_cut_short_is_set_aside_and_every_trial_stays_readable(tail: bytes, tmp_path: Path, capsys) -> None:
    """A write cut short (full disk, killed writer) left a broken last line; the next search used to
    append behind it, after which every read of the journal failed (JSONDecodeError)."""
    log = tmp_path / "j.log"
    _create(f"journal:{log}", "j", 4, tmp_path)
    before = len(optuna.load_study(study_name="j", storage=open_storage(f"journal:{log}")).trials)
    with log.open("ab") as fh:
        fh.write(tail)
    capsys.readouterr()
    assert main([*SEARCH, "--storage", f"journal:{log}", "--study", "j", "--trials", "6", "--workers", "0"]) == 0
    err = capsys.readouterr().err
    assert "not a complete record" in err and "moved them to" in err, err
    sides = list(tmp_path.glob("j.log.damaged-*"))
    assert len(sides) == 1 and sides[0].read_bytes() == tail  # set aside whole, never dropped
    plain = optuna.load_study(study_name="j", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(log))))  # plain Optuna reads every trial
    assert len(plain.trials) == before and plain.user_attrs["budget"] == 6
    assert main(["top", "--storage", f"journal:{log}", "--study", "j"]) == 0


def test_a_journal_damaged_in_the_middle_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    """A file an older version appended behind a broken record: refused, naming the line, untouched."""
    log = tmp_path / "m.log"
    _create(f"journal:{log}", "m", 4, tmp_path)
    lines = log.read_bytes().splitlines(keepends=True)
    damaged = b"".join(lines[:2]) + b'{"op_code": 5, "tri' + b"".join(lines[2:])
    log.write_bytes(damaged)
    capsys.readouterr()
    rc = main([*SEARCH, "--storage", f"journal:{log}", "--study", "m", "--trials", "0", "--workers", "0"])
    assert "damaged at line 3" in _one_line_exit_2(rc, capsys.readouterr().err)
    assert log.read_bytes() == damaged


# --------------------------------------------------------- 2./7. studies other tools made
def _foreign(url: str, kind: str) -> None:
    if kind == "minimize-empty":  # plain Optuna's default direction
        optuna.create_study(study_name="x", storage=url)
    elif kind == "own-trials":
        study = optuna.create_study(study_name="x", storage=url, direction="maximize")
        study.optimize(lambda t: t.suggest_float("lr", 0, 1), n_trials=3)
    elif kind == "two-objectives":
        study = optuna.create_study(study_name="x", storage=url, directions=["maximize", "maximize"])
        study.optimize(lambda t: (t.suggest_float("a", 0, 1), 1.0), n_trials=2)
    elif kind == "settings-not-a-dict":
        optuna.create_study(study_name="x", storage=url, direction="maximize").set_user_attr("actsearch_settings", "v1")
    elif kind == "settings-foreign-fields":
        study = optuna.create_study(study_name="x", storage=url, direction="maximize")
        study.set_user_attr("actsearch_settings", {"space": ["tiny"], "dataset": 7, "fidelity": None, "sampler": "tpe"})
    elif kind == "budget-not-a-number":
        assert main([*SEARCH, "--storage", url, "--study", "x", "--trials", "2", "--workers", "0"]) == 0
        optuna.load_study(study_name="x", storage=url).set_user_attr("budget", "lots")


FOREIGN = ["minimize-empty", "own-trials", "two-objectives", "settings-not-a-dict", "settings-foreign-fields",
           "budget-not-a-number"]


@pytest.mark.parametrize("kind", FOREIGN)
@pytest.mark.parametrize("command", ["search", "worker", "top"])
def test_a_study_actsearch_did_not_create_is_refused_and_left_alone(kind: str, command: str, tmp_path: Path,
                                                                    capsys) -> None:
    """A plain-Optuna study used to be adopted (a minimizing one was searched: accuracy minimized,
    exit 0) or to end in a traceback (KeyError 'expression', NotImplementedError, TypeError) after
    actsearch's trials had been added to it."""
    url = f"sqlite:///{tmp_path}/o.db"
    _foreign(url, kind)
    before = optuna.load_study(study_name="x", storage=url)
    attrs, trials = dict(before.user_attrs), len(before.trials)
    capsys.readouterr()
    argv = {"search": [*SEARCH, "--trials", "2"], "top": ["top"],
            "worker": ["worker", "--no-plots", "--quiet", "--device", "cpu", "--trials", "2"]}[command]
    rc = main([*argv, "--storage", url, "--study", "x"])
    if command == "top" and kind == "budget-not-a-number":
        assert rc == 0  # a leaderboard reads no budget: an actsearch study with a bad one still shows
    else:
        line = _one_line_exit_2(rc, capsys.readouterr().err)
        assert "not created by `actsearch search`" in line or "budget" in line, line
    after = optuna.load_study(study_name="x", storage=url)
    assert dict(after.user_attrs) == attrs and len(after.trials) == trials  # never written to


# ---------------------------------------------------------- 3. the SQLite file deleted
@pytest.mark.slow
def test_a_sqlite_file_deleted_under_a_running_search_is_reported_not_lost_silently(tmp_path: Path) -> None:
    """The search used to go on writing to the deleted file's inode and exit 0 ("next: actsearch top"),
    its study gone."""
    db = tmp_path / "gone.db"
    url = f"sqlite:///{db}"
    p = _slow([*SEARCH, "--storage", url, "--study", "g", "--trials", "6"], 2.0, tmp_path)
    try:
        _wait_running(url, "g", p)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert "deleted or replaced" in _one_line_exit_2(p.returncode, err)
    assert "next: actsearch top" not in out


# ------------------------------------------------------------- 4. frozen workers
@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_worker_frozen_past_the_grace_period_moves_on_when_resumed(backend: str, tmp_path: Path,
                                                                    request: pytest.FixtureRequest) -> None:
    """SIGSTOP past the grace period (a laptop lid, a stopped container), another worker retries its
    trials, SIGCONT: the resumed worker used to die with UpdateFinishedTrialError (trial.report on a
    trial already failed); it now sees its trials were taken, drops them and ends normally."""
    url = _url(backend, tmp_path, request)
    _create(url, "z", 4, tmp_path)
    victim = _start(url, "z", tmp_path, slow=8)
    procs = [victim]
    try:
        mine = _wait_running(url, "z", victim, pid=victim.pid, count=2)  # its batch: asked, training
        time.sleep(0.5)  # (its population sleeps 8 s before training: stopped in there)
        os.kill(victim.pid, signal.SIGSTOP)
        rescuer = _start(url, "z", tmp_path)  # fails the frozen trials stale after 4 s, trains the retries
        procs.append(rescuer)
        _finish([rescuer], timeout=120)
        os.kill(victim.pid, signal.SIGCONT)
        out, err = victim.communicate(timeout=120)
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.wait()
    table = [(t.number, t.state.name, t.user_attrs.get("worker"), t.system_attrs.get("retry_history"))
             for t in load_study(url, "z").get_trials()]
    assert victim.returncode == 0, (err[-3000:], mine, table)
    assert "retried by another worker while this one was stopped" in err, (err[-2000:], mine, table)
    trials = _check_once(url, "z", 4)
    for n in mine:
        assert trials[n].state == TrialState.FAIL
        assert [t.state for t in trials if n in t.system_attrs.get("retry_history", ())] == [TrialState.COMPLETE]


@pytest.mark.slow
def test_a_sqlite_write_lock_held_by_a_frozen_process_ends_in_one_line(tmp_path: Path) -> None:
    """A stopped process inside a transaction holds SQLite's write lock; a healthy search used to die
    after ~130 s with a traceback ("database is locked"). Past the storage's patience (here 3 s) it
    gives up in one line that says what holds it."""
    db = tmp_path / "locked.db"
    _create(f"sqlite:///{db}", "l", 2, tmp_path)
    holder = sqlite3.connect(str(db), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # what a process frozen inside a write leaves
    try:
        out = _run([*SEARCH, "--storage", f"sqlite:///{db}", "--study", "l", "--trials", "2"], tmp_path, timeout=90,
                   env={**ENV, "ACTSEARCH_STORAGE_TIMEOUT": "3"})
    finally:
        holder.close()
    assert "write lock" in _one_line_exit_2(out.returncode, out.stderr)


# ------------------------------------------------------------------------- 5. signals
def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.add(c)
            todo.append(c)
    return out


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


# Every training of every process — local worker processes too, which are fresh interpreters —
# sleeps $ACTSEARCH_TEST_SLEEP seconds first: something to signal in the middle of.
SITECUSTOMIZE = ("import os\n"
                 "if os.environ.get('ACTSEARCH_TEST_SLEEP'):\n"
                 "    import time, actsearch.evaluation as p\n"
                 "    f = p.train_population\n"
                 "    p.train_population = lambda *a, **k: (time.sleep(float(os.environ['ACTSEARCH_TEST_SLEEP'])), "
                 "f(*a, **k))[1]\n")


@pytest.mark.slow
@pytest.mark.parametrize("signum,workers", [(signal.SIGTERM, 1), (signal.SIGHUP, 1), (signal.SIGTERM, 2)],
                         ids=["SIGTERM", "SIGHUP", "SIGTERM-workers-2"])
def test_sigterm_and_sighup_stop_a_search_like_ctrl_c(signum: int, workers: int, tmp_path: Path) -> None:
    """A one-process search used to exit without a word leaving its trials RUNNING; the parent of
    ``--workers 2`` exited 143 while its workers trained on. Now: trials in flight failed
    ("interrupted"), finished ones kept, worker processes stopped, exit status 128 + signal."""
    url = f"sqlite:///{tmp_path}/s.db"
    _create(url, "s", 8, tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**ENV, "ACTSEARCH_TEST_SLEEP": "60", "PYTHONPATH": f"{site}{os.pathsep}{ENV['PYTHONPATH']}"}
    # The search starts with the signal's default action, as from a terminal: a search started
    # ignoring SIGHUP (under nohup — which would also be true of this test run) keeps ignoring it.
    p = subprocess.Popen([sys.executable, "-m", "actsearch", *SEARCH, "--storage", url, "--study", "s", "--trials", "0",
                          "--workers", str(workers)], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    kids: set[int] = set()
    try:
        running = _wait_running(url, "s", p)
        kids = _descendants(p.pid)
        os.kill(p.pid, signum)
        out, err = p.communicate(timeout=60)
        deadline = time.time() + 20
        while time.time() < deadline and any(_alive(k) for k in kids):
            time.sleep(0.2)
        assert not [k for k in kids if _alive(k)], "worker processes still running"
    finally:
        for pid in [p.pid, *kids]:
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)
        p.wait()
    assert p.returncode == 128 + signum, (p.returncode, err[-2000:])
    assert "Traceback" not in err and "interrupted" in err, err[-2000:]
    trials = load_study(url, "s").get_trials()
    assert not [t.number for t in trials if t.state == TrialState.RUNNING]
    for n in running:
        assert trials[n].state == TrialState.FAIL and trials[n].user_attrs["status"] == "interrupted"


# ------------------------------------------------------------- 6. hangs, long retries
def test_a_relative_journal_path_gets_a_lock_that_points_at_the_journal(tmp_path: Path, monkeypatch) -> None:
    """Optuna's journal lock is a symlink to the journal; with a relative --storage its target was
    relative to the lock's own folder, so it dangled: a stale lock left by a killed process never
    looked stale (its mtime could not be read) and the next search busy-looped for minutes."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    storage = open_storage("journal:sub/j.log")
    lock = storage._backend._lock
    lock.acquire()
    try:
        link = tmp_path / "sub" / "j.log.lock"
        assert link.is_symlink() and link.exists(), os.readlink(link)  # exists() follows the link
        assert link.resolve() == (tmp_path / "sub" / "j.log").resolve()
    finally:
        lock.release()


FULL_DISK = ("import sys, sqlalchemy\n"
             "from sqlalchemy import event\n"
             "limit = int(sys.argv.pop(1))\n"
             "@event.listens_for(sqlalchemy.engine.Engine, 'connect')\n"
             "def full(con, record):\n"
             "    con.execute(f'PRAGMA max_page_count = {limit}')\n"
             "from actsearch.cli import main; sys.exit(main(sys.argv[1:]))")


@pytest.mark.slow
def test_a_full_disk_under_sqlite_ends_at_once_in_one_line(tmp_path: Path) -> None:
    """SQLITE_FULL used to be retried like a lost connection — 385-504 s of retries, ~95 warnings,
    then a traceback. It is one line and exit 2 as soon as it happens; finished trials are kept."""
    db = tmp_path / "full.db"
    url = f"sqlite:///{db}"
    _create(url, "d", 12, tmp_path)
    con = sqlite3.connect(str(db))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    out = subprocess.run([sys.executable, "-c", FULL_DISK, str(pages + 3), *SEARCH, "--storage", url, "--study", "d",
                          "--trials", "12"], cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=150)
    line = _one_line_exit_2(out.returncode, out.stderr)
    assert "full" in line and "finished trials are kept" in line, line
    assert out.stderr.count("RuntimeWarning") <= 1, out.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.postgres
def test_postgres_down_longer_than_the_limit_ends_in_one_line(pg_url: str, tmp_path: Path) -> None:
    """A server down for 150 s used to end in a 266-line traceback. Past the stated limit (here 5 s,
    ACTSEARCH_STORAGE_TIMEOUT) the search gives up with one line and exit 2."""
    from sqlalchemy.engine import make_url

    _create(pg_url, "pg", 4, tmp_path)
    p = subprocess.Popen([sys.executable, "-c", SLOW, "3", *SEARCH, "--storage", pg_url, "--study", "pg",
                          "--trials", "4"], cwd=tmp_path, env={**ENV, "ACTSEARCH_STORAGE_TIMEOUT": "5"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    name = make_url(pg_url).database
    admin = make_url(pg_url).set(database="postgres").render_as_string(hide_password=False)
    try:
        _wait_running(pg_url, "pg", p)
        _admin(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS false")  # the server, down for this database
        _admin(admin, f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'")
        out, err = p.communicate(timeout=120)
    finally:
        _admin(admin, f"ALTER DATABASE {name} ALLOW_CONNECTIONS true")
        if p.poll() is None:
            p.kill()
            p.wait()
    line = _one_line_exit_2(p.returncode, err)
    assert "unusable for" in line and "limit 5 s" in line, line


# ------------------------------------------------------------ 7. damaged files, long names
def test_a_sqlite_file_with_garbage_pages_is_one_line_and_exit_2(tmp_path: Path, capsys) -> None:
    """A file that opens (header, schema and study tables intact) but whose trial tables are
    garbage used to end in a ~95-line traceback at the first read of the trials."""
    db = tmp_path / "bad.db"
    _create(f"sqlite:///{db}", "b", 2, tmp_path)
    con = sqlite3.connect(str(db))
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = con.execute("PRAGMA page_size").fetchone()[0]
    roots = [r for (r,) in con.execute("SELECT rootpage FROM sqlite_master WHERE tbl_name LIKE 'trial%' AND rootpage > 1")]
    con.close()
    data = bytearray(db.read_bytes())
    for page in roots:
        data[(page - 1) * size:page * size] = bytes((i * 37 + 11) % 256 for i in range(size))
    db.write_bytes(bytes(data))
    for argv in (["top"], [*SEARCH, "--trials", "2"]):
        capsys.readouterr()
        rc = main([*argv, "--storage", f"sqlite:///{db}", "--study", "b"])
        _one_line_exit_2(rc, capsys.readouterr().err)


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
@pytest.mark.parametrize("command", ["search", "top"])
def test_a_study_name_longer_than_storages_hold_is_one_line(backend: str, command: str, tmp_path: Path,
                                                            request: pytest.FixtureRequest, capsys) -> None:
    url = _url(backend, tmp_path, request)
    if command == "top":
        _create(url, "short", 2, tmp_path)
    argv = [*SEARCH, "--trials", "0", "--workers", "0"] if command == "search" else ["top"]
    capsys.readouterr()
    rc = main([*argv, "--storage", url, "--study", "a" * 600])
    assert "600 characters" in _one_line_exit_2(rc, capsys.readouterr().err)


# ------------------------------------------------------------------------- 8. smaller
@pytest.mark.slow
def test_trials_0_with_two_workers_trains_what_is_queued(tmp_path: Path) -> None:
    """``search --trials 0 --workers 2`` used to start no worker at all, so queued trials (the
    references here, a dead worker's retries) stayed WAITING."""
    url = f"sqlite:///{tmp_path}/q.db"
    _create(url, "q", 4, tmp_path)
    assert len(load_study(url, "q").get_trials(states=(TrialState.WAITING,))) == 3
    out = _run([*SEARCH, "--storage", url, "--study", "q", "--trials", "0", "--workers", "2"], tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    states = [t.state for t in load_study(url, "q").get_trials()]
    assert TrialState.WAITING not in states and states.count(TrialState.COMPLETE) == 3, states


@pytest.mark.slow
def test_a_killed_search_on_a_journal_file_has_its_trials_retried(tmp_path: Path) -> None:
    """Optuna's journal storage keeps no heartbeats: a SIGKILLed search used to leave its trials
    RUNNING forever. actsearch's own heartbeats (a trial attribute) let the next run fail them
    stale after the grace period and train their retries."""
    url = f"journal:{tmp_path}/k.log"
    _create(url, "k", 4, tmp_path)
    p = _slow([*SEARCH, "--storage", url, "--study", "k", "--trials", "0"], 60.0, tmp_path)
    try:
        running = _wait_running(url, "k", p)
    finally:
        p.kill()
        p.communicate(timeout=30)
    time.sleep(5)  # > the 4 s grace period
    out = _run([*SEARCH, "--storage", url, "--study", "k", "--trials", "0"], tmp_path, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    trials = load_study(url, "k").get_trials()
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], trials
    for n in running:
        assert trials[n].state == TrialState.FAIL
        assert [t.state for t in trials if n in t.system_attrs.get("retry_history", ())] == [TrialState.COMPLETE]
