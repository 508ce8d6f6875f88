"""End to end through the CLI with the real engine (smoke fidelity, tiny space): search → storage
→ top → export (import and train) → verify → dashboard → worker; errors; Ctrl-C."""
from __future__ import annotations

import csv
import importlib.util
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch
from optuna.trial import TrialState

from actsearch.analysis import leaderboard
from actsearch.cli import main
from actsearch.search import open_storage
from actsearch.evaluation import train_one

ROOT = Path(__file__).resolve().parent.parent
STUDY = "e2e"
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("e2e")
    db = str(d / "s.db")
    cwd = os.getcwd()
    os.chdir(d)  # verify's default CSV goes to results/ under the working directory
    try:
        rc = main(["search", "--space", "tiny", "--fidelity", "smoke", "--trials", "16", "--batch", "8",
                   "--storage", db, "--study", STUDY, "--sampler", "tpe", "--pruner", "none"])
    finally:
        os.chdir(cwd)
    assert rc == 0
    return d, db


def _study(db: str) -> optuna.Study:
    return optuna.load_study(study_name=STUDY, storage=open_storage(db, create=False))


@pytest.mark.slow
def test_search_fills_the_storage(searched: tuple[Path, str], capsys) -> None:
    d, db = searched
    study = _study(db)
    trials = study.trials
    assert len(trials) == 16 and all(t.state.is_finished() for t in trials)
    trained = [t for t in trials if "duplicate_of" not in t.user_attrs and t.state != TrialState.FAIL]
    keys = [t.user_attrs["key"] for t in trained]
    assert len(keys) == len(set(keys)), "an equivalent candidate was trained twice"
    for t in trained:
        a = t.user_attrs
        assert t.value == pytest.approx(a["accuracy_mean"]) and 0 <= a["accuracy_mean"] <= 1
        assert a["latex"] and a["structure"] and a["core_units"] == 1 and a["train_seconds"] > 0
        assert a["seeds"] == [0] and a["status"] == "ok"
        assert len(optuna.artifacts.get_all_artifact_meta(t, storage=study._storage)) == 1
    for t in trials:
        if "duplicate_of" in t.user_attrs:
            orig = trials[t.user_attrs["duplicate_of"]]
            assert "train_seconds" not in t.user_attrs  # copied, not trained
            assert t.values == orig.values and t.user_attrs["key"] == orig.user_attrs["key"]
    assert {t.user_attrs.get("reference") for t in trials} >= {"relu", "silu", "tanh"}
    assert set(study.user_attrs["references"]) == {"swish", "gelu", "elu"}
    assert study.user_attrs["actsearch_settings"]["fidelity"] == "smoke"


@pytest.mark.slow
def test_top_shows_relu_and_swish(searched: tuple[Path, str], capsys) -> None:
    _, db = searched
    assert main(["top", "--study", STUDY, "--storage", db, "--k", "3"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith(f"study {STUDY}: 16 trials")
    assert "rank" in lines[1] and "nearest known" in lines[1]
    assert any("[relu]" in ln and "relu (distance 0.000)" in ln for ln in lines)
    assert any("[swish]" in ln for ln in lines)
    ranks = [int(ln.split()[0]) for ln in lines[2:] if ln.split() and ln.split()[0].isdigit()]
    assert ranks[:3] == [1, 2, 3] and ranks == sorted(ranks)


@pytest.mark.slow
def test_export_imports_and_trains(searched: tuple[Path, str], capsys) -> None:
    d, db = searched
    out_file = d / "found.py"
    assert main(["export", "--study", STUDY, "--storage", db, "--k", "2", "--output", str(out_file)]) == 0
    first = next(r for r in leaderboard(_study(db)) if r.reference is None)  # the search's own best
    assert f"rank{first.rank} =" in capsys.readouterr().out  # named after its leaderboard rank
    spec = importlib.util.spec_from_file_location("found", out_file)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    assert mod.__all__[:2] == [f"rank{first.rank}", f"Rank{first.rank}"]
    best, Best = getattr(mod, f"rank{first.rank}"), getattr(mod, f"Rank{first.rank}")
    assert f"study '{STUDY}'" in Best.__doc__ and "seeds [0]" in Best.__doc__
    x = torch.linspace(-2, 2, 5)
    assert torch.isfinite(best(x)).all()
    result = train_one(lambda c: Best(num_channels=c), "smoke", seed=0)
    assert result.status == "ok" and result.test_accuracy > 0.3


@pytest.mark.slow
def test_verify_compares_with_relu(searched: tuple[Path, str], capsys, monkeypatch) -> None:
    d, db = searched
    monkeypatch.chdir(d)
    assert main(["verify", "--study", STUDY, "--storage", db, "--k", "2", "--seeds", "3",
                 "--fidelity", "smoke"]) == 0
    out = capsys.readouterr().out
    assert "Δ vs ReLU" in out and "p (paired t)" in out
    rows = list(csv.DictReader((d / "results" / f"verify-{STUDY}.csv").open()))
    assert [r["name"] for r in rows][-2:] == ["relu", "swish"] and len(rows) == 4
    assert rows[-2]["diff_vs_relu"] == ""  # ReLU against itself
    assert all(0 < float(r["test_mean"]) <= 1 for r in rows)
    recs = _study(db).user_attrs["verify"]
    assert len(recs) == 4 and recs[0]["seeds"] == [10000, 10001, 10002]


@pytest.mark.slow
def test_dashboard_api_on_the_search(searched: tuple[Path, str]) -> None:
    from tests.search.test_dashboard import check_study_via_api, dashboard_running

    d, db = searched
    with dashboard_running(db, d) as base:
        check_study_via_api(base, STUDY)


@pytest.mark.slow
def test_worker_joins_with_storage_and_name_only(searched: tuple[Path, str], capsys) -> None:
    _, db = searched
    # The search used its budget (16): a worker has nothing to do until the budget grows.
    assert main(["worker", "--storage", db, "--study", STUDY, "--no-plots", "--quiet"]) == 0
    assert len(_study(db).trials) == 16
    # --more 3: three trials beyond the 16 the study holds (--trials N is a goal: --trials 19 alike).
    assert main(["search", "--storage", db, "--study", STUDY, "--more", "3", "--workers", "0", "--quiet"]) == 0
    assert "budget 19 trials" in capsys.readouterr().out
    assert main(["worker", "--storage", db, "--study", STUDY, "--batch", "3", "--no-plots", "--quiet"]) == 0
    assert len(_study(db).trials) == 19
    assert "19/19 trials of the budget used" in capsys.readouterr().out


def test_missing_study_is_one_line_exit_2(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "x.db")
    open_storage(db)  # an empty storage
    for argv in (["top", "--study", "nope", "--storage", db],
                 ["verify", "--study", "nope", "--storage", db, "--k", "1", "--seeds", "1"],
                 ["export", "--study", "nope", "--storage", db, "--output", str(tmp_path / "o.py")],
                 ["worker", "--study", "nope", "--storage", db]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == "actsearch: error: no study named 'nope' (this storage has no studies)\n"


@pytest.mark.parametrize("argv,msg", [
    (["--sampler", "bayes"], "unknown sampler 'bayes'"),
    (["--fidelity", "fast"], "unknown fidelity 'fast'"),
    (["--space", "nope"], "no space file 'nope'"),
    (["--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["--pruner", "asha"], "unknown pruner 'asha'"),
])
def test_bad_search_options_are_one_line(tmp_path: Path, capsys, argv: list[str], msg: str) -> None:
    assert main(["search", "--storage", str(tmp_path / "b.db"), "--trials", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert msg in err and err.count("\n") == 1


def _states(db: Path) -> list[str]:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return [r[0] for r in con.execute("SELECT state FROM trials")]
    except sqlite3.Error:
        return []


@pytest.mark.slow
def test_ctrl_c_keeps_finished_trials(tmp_path: Path) -> None:
    db = tmp_path / "i.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "actsearch", "search", "--space", "swish-core", "--fidelity",
                             "smoke", "--trials", "400", "--batch", "4", "--storage", str(db), "--study", "int",
                             "--no-plots", "--pruner", "none"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal, also when the tests run as a background job (SIGINT ignored)
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while True:  # wait until a batch is in flight after at least one finished
        states = _states(db)
        if states.count("COMPLETE") >= 4 and "RUNNING" in states:
            break
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    study = optuna.load_study(study_name="int", storage=open_storage(str(db), create=False))
    states_after = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states_after
    assert states_after.count(TrialState.COMPLETE) >= 4
    failed = [t for t in study.trials if t.state == TrialState.FAIL and t.user_attrs.get("status") != "degenerate"]
    assert failed and all(t.user_attrs.get("fail_reason") == "interrupted" for t in failed)
