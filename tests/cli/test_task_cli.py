"""``--task FILE.py`` and ``--dataset FILE.npz`` through the CLI: a search, verify, export, predict
and compare on a user's task; workers with the task file; a changed task or dataset file refused;
broken task files one line and exit 2 before any trial. Tiny tasks, a few steps: seconds."""
from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import numpy as np
import optuna
import pytest

from actsearch.cli import main
from actsearch.search import open_storage, read_settings
from tests.search.test_distributed import pg_url  # noqa: F401  (the PostgreSQL fixture)

optuna.logging.set_verbosity(optuna.logging.WARNING)

TASK = """
import torch
from torch import nn
import actsearch

x = torch.linspace(-2, 2, 80).unsqueeze(1)
y = torch.sin(2 * x)

def build(act):
    return nn.Sequential(nn.Linear(1, 8), act(8), nn.Linear(8, 1))

task = actsearch.Task("wave", data=(x[::2], y[::2], x[1::4], y[1::4], x[3::4], y[3::4]), build=build,
                      loss="mse", metric="neg_mse", steps=12, batch_size=8, lr=1e-2, eval_every=4)
"""
RUN = ["--space", "tiny", "--batch", "4", "--no-plots", "--pruner", "none", "--quiet"]


def _task_file(d: Path, text: str = TASK, name: str = "wave_task.py") -> Path:
    f = d / name
    f.write_text(textwrap.dedent(text))
    return f


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and "\n" not in err and "Traceback" not in err, err
    return err


def _study(db: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=open_storage(db, create=False))


def test_search_verify_export_predict_compare_on_a_task(tmp_path: Path, capsys) -> None:
    f, db = _task_file(tmp_path), str(tmp_path / "s.db")
    assert main(["search", "--task", str(f), "--trials", "8", "--storage", db, "--study", "t", *RUN]) == 0
    study = _study(db, "t")
    settings = read_settings(study)
    assert settings.fidelity == "task" and settings.dataset == "wave"
    assert settings.task["name"] == "wave" and settings.task["source"] == str(f) and len(settings.task["hash"]) == 16
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 5 and all(t.value < 0 for t in done)  # minus the validation MSE
    assert all(sorted(t.intermediate_values) == [4, 8, 12] for t in done if "duplicate_of" not in t.user_attrs)
    capsys.readouterr()
    assert main(["verify", "--study", "t", "--storage", db, "--k", "1", "--seeds", "2",
                 "--csv", str(tmp_path / "v.csv")]) == 0
    out = capsys.readouterr()
    assert "at task wave" in out.err and "relu" in out.out
    records = _study(db, "t").user_attrs["verify"]
    assert [r["fidelity"] for r in records] == ["wave"] * 3 and all(r["test_mean"] < 0 for r in records)
    assert main(["export", "--study", "t", "--storage", db, "--k", "2", "--output", str(tmp_path / "top.py")]) == 0
    assert "class Rank1" in (tmp_path / "top.py").read_text()
    capsys.readouterr()
    assert main(["predict", "--study", "t", "--storage", db, "x*tanh(x)"]) == 0
    assert capsys.readouterr().out.startswith("x*tanh(x)  -")
    assert main(["compare", "relu", "tanh", "--task", str(f), "--seeds", "2"]) == 0
    assert "task wave: mse loss, neg_mse metric" in capsys.readouterr().err
    assert main(["verify", "--study", "t", "--storage", db, "--fidelity", "smoke"]) == 2
    assert "re-trains through it" in _one_line_error(capsys)


def test_a_changed_task_is_refused_by_search_worker_and_verify(tmp_path: Path, capsys, monkeypatch) -> None:
    f, db = _task_file(tmp_path), str(tmp_path / "s.db")
    assert main(["search", "--task", str(f), "--trials", "2", "--storage", db, "--study", "t", *RUN]) == 0
    (tmp_path / "elsewhere").mkdir()
    copy = _task_file(tmp_path / "elsewhere")
    # the same file on another machine (another path, the same bytes) joins the study
    assert main(["worker", "--task", str(copy), "--study", "t", "--storage", db, "--trials", "1", "--no-plots",
                 "--quiet"]) == 0
    n = len(_study(db, "t").trials)
    f.write_text(f.read_text().replace("steps=12", "steps=16"))
    capsys.readouterr()
    assert main(["search", "--task", str(f), "--trials", "2", "--storage", db, "--study", "t", *RUN]) == 2
    assert "refusing to mix" in _one_line_error(capsys)
    assert main(["search", "--task", str(f), "--trials", "1", "--storage", db, *RUN]) == 0  # a study of its own is fine
    capsys.readouterr()
    assert main(["worker", "--task", str(f), "--study", "t", "--storage", db, "--trials", "1", "--quiet"]) == 2
    assert "refusing to mix" in _one_line_error(capsys)
    monkeypatch.setattr("actsearch.evaluation.task_file._LOADED", {})  # a fresh process: it reads the recorded file
    assert main(["worker", "--study", "t", "--storage", db, "--trials", "1", "--quiet"]) == 2  # which changed
    assert "refusing to mix" in _one_line_error(capsys)
    assert main(["verify", "--study", "t", "--storage", db, "--k", "1", "--seeds", "1", "--task", str(f),
                 "--csv", str(tmp_path / "v.csv")]) == 2
    assert "refusing to mix" in _one_line_error(capsys)
    assert len(_study(db, "t").trials) == n  # the refused commands added nothing


def test_resuming_without_the_recorded_file_says_to_pass_it(tmp_path: Path, capsys, monkeypatch) -> None:
    f, db = _task_file(tmp_path), str(tmp_path / "s.db")
    assert main(["search", "--task", str(f), "--trials", "1", "--storage", db, "--study", "t", *RUN]) == 0
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(str(f), moved / f.name)
    monkeypatch.setattr("actsearch.evaluation.task_file._LOADED", {})  # a fresh process
    capsys.readouterr()
    assert main(["search", "--study", "t", "--trials", "1", "--storage", db, *RUN]) == 2
    assert "needs its task 'wave'" in _one_line_error(capsys)
    assert main(["search", "--study", "t", "--task", str(moved / f.name), "--trials", "1", "--storage", db, *RUN]) == 0


BROKEN = {
    "missing object": (TASK.replace("task = ", "mytask = "), "has no object 'task' (it defines: mytask"),
    "build not a module": (TASK.replace("return nn.Sequential(nn.Linear(1, 8), act(8), nn.Linear(8, 1))",
                                        "return [act(8)]"), "build(act) returned list, not an nn.Module"),
    "shapes do not fit": (TASK.replace("nn.Linear(1, 8), act(8)", "nn.Linear(3, 8), act(8)"),
                          "the model does not take x_train of shape (40, 1)"),
    "metric not a number": (TASK.replace('metric="neg_mse"', 'metric=lambda out, y: {"mse": 1.0}'),
                            "the metric returned dict, not a number"),
    "not a task": (TASK + "\ntask = 3\n", "task is a int, not an actsearch.Task"),
    "syntax error": ("def (:\n", "raised SyntaxError"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_a_broken_task_file_is_one_line_before_any_trial(tmp_path: Path, capsys, case: str) -> None:
    text, message = BROKEN[case]
    f, db = _task_file(tmp_path, text), str(tmp_path / "s.db")
    for argv in (["search", "--task", str(f), "--trials", "2", "--storage", db, *RUN],
                 ["compare", "relu", "--task", str(f), "--seeds", "1"],
                 ["noise", "--task", str(f), "--seeds", "4"]):
        assert main(argv) == 2, argv
        assert message in _one_line_error(capsys)
    assert not Path(db).exists() or not optuna.get_all_study_summaries(open_storage(db), include_best_trial=False)


def test_task_option_errors(tmp_path: Path, capsys) -> None:
    f = _task_file(tmp_path)
    for argv, message in (
            (["search", "--task", str(f), "--fidelity", "smoke", "--trials", "1", *RUN], "drop --fidelity and --dataset"),
            (["search", "--task", str(f), "--sampler", "surrogate", "--trials", "1", *RUN], "surrogate sampler"),
            (["search", "--task", str(tmp_path / "nope.py"), "--trials", "1", *RUN], "no such file"),
    ):
        assert main(argv) == 2, argv
        assert message in _one_line_error(capsys)
    for argv, message in ((["compare", "relu"], "one of the arguments --fidelity --task is required"),
                          (["compare", "relu", "--task", str(f), "--fidelity", "smoke"], "not allowed with argument")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2 and message in _one_line_error(capsys)


# -------------------------------------------------------------------------------------- npz
def _npz(path: Path, shift: float = 0.0) -> Path:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 240)
    x = rng.normal(size=(240, 16)).astype(np.float32) + y[:, None] * 0.8 + shift
    np.savez(path, x=x, y=y)
    return path


def test_search_on_an_npz_dataset_records_it_and_refuses_a_changed_file(tmp_path: Path, capsys, monkeypatch) -> None:
    data, db = _npz(tmp_path / "mine.npz"), str(tmp_path / "s.db")
    argv = ["search", "--fidelity", "smoke", "--dataset", str(data), "--trials", "3", "--storage", db, *RUN]
    assert main(argv) == 0
    name = "tiny-mine-smoke-tpe-s0"
    settings = read_settings(_study(db, name))
    assert settings.dataset == str(data) and len(settings.data_hash) == 16 and settings.task is None
    assert all(0 <= t.value <= 1 for t in _study(db, name).trials if t.value is not None)
    _npz(data, shift=1.0)
    monkeypatch.setattr("actsearch.search.settings._CHECKED", set())  # a fresh process: it hashes the file again
    capsys.readouterr()
    assert main(argv) == 2
    assert "different dataset file" in _one_line_error(capsys)
    assert main(["worker", "--study", name, "--storage", db, "--trials", "1", "--quiet"]) == 2
    assert "refusing to mix" in _one_line_error(capsys)
    np.savez(tmp_path / "bad.npz", x=np.zeros((20, 3)))
    assert main(["search", "--fidelity", "smoke", "--dataset", str(tmp_path / "bad.npz"), "--trials", "1", *RUN]) == 2
    assert "no array 'y'" in _one_line_error(capsys)
    assert main(["compare", "relu", "--fidelity", "smoke", "--dataset", str(data), "--seeds", "1"]) == 0


@pytest.mark.postgres
@pytest.mark.slow
def test_workers_on_postgres_with_the_task_file_on_each_machine(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    f = _task_file(tmp_path)
    assert main(["search", "--task", str(f), "--trials", "4", "--storage", pg_url, "--study", "pg", "--workers", "0",
                 *RUN]) == 0
    for machine in ("a", "b"):
        (tmp_path / machine).mkdir()
        copy = _task_file(tmp_path / machine)
        assert main(["worker", "--task", str(copy), "--study", "pg", "--storage", pg_url, "--no-plots", "--quiet"]) == 0
    study = _study(pg_url, "pg")
    assert sum(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) >= 4
