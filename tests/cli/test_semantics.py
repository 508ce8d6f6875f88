"""What the commands' words mean: --trials N is a goal ("until the study holds N"), --more N adds;
top K says which references it passes over; exported names are leaderboard ranks; `top` says why a
trial failed; each trial's plot is a file named after it; a space file's study takes the space's
name; the progress line counts "1 duplicate", "2 duplicates"."""
from __future__ import annotations

import importlib.util
import io
import re
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from actsearch.analysis import Row, leaderboard, top_candidates
from actsearch.cli import main
from actsearch.cli._common import Progress
from actsearch.expressions import parse
from actsearch.search import BUDGET_ATTR, budget_state, load_study

optuna.logging.set_verbosity(optuna.logging.WARNING)
SEARCH = ["search", "--space", "tiny", "--fidelity", "smoke", "--sampler", "random", "--pruner", "none", "--quiet"]


def _counted(db: str, study: str) -> int:
    state = budget_state(load_study(db, study))
    return state.counted - state.waiting


@pytest.mark.slow
def test_trials_is_a_goal_and_more_adds(tmp_path: Path, capsys) -> None:
    db = str(tmp_path / "s.db")
    run = [*SEARCH, "--storage", db, "--study", "g", "--no-plots"]
    assert main([*run, "--trials", "5"]) == 0
    assert _counted(db, "g") == 5
    assert main([*run, "--trials", "5"]) == 0  # the same command again: the study is complete
    assert _counted(db, "g") == 5 and len(load_study(db, "g").trials) == 5
    assert "already holds 5 trials" in capsys.readouterr().err
    assert main([*run, "--trials", "8"]) == 0  # a larger goal: the 3 missing trials only
    assert _counted(db, "g") == 8
    assert main([*run, "--more", "2"]) == 0
    assert _counted(db, "g") == 10 and load_study(db, "g").user_attrs[BUDGET_ATTR] == 10


@pytest.mark.slow
def test_an_interrupted_search_rerun_runs_only_the_rest(tmp_path: Path) -> None:
    """A search stopped after 3 of its 7 trials (here: its first run asked 3), re-run with the same
    --trials 7, trains the 4 missing ones, not 7 more."""
    db = str(tmp_path / "s.db")
    run = [*SEARCH, "--storage", db, "--study", "i", "--no-plots"]
    assert main([*run, "--trials", "3"]) == 0
    assert main([*run, "--trials", "7"]) == 0
    assert _counted(db, "i") == 7


@pytest.mark.slow
def test_workers_0_sets_the_budget_to_the_goal(tmp_path: Path) -> None:
    db = str(tmp_path / "s.db")
    run = [*SEARCH, "--storage", db, "--study", "w", "--workers", "0"]
    assert main([*run, "--trials", "6"]) == 0
    assert load_study(db, "w").user_attrs[BUDGET_ATTR] == 6
    assert main([*run, "--trials", "6"]) == 0  # the same command twice: still 6, not 12
    assert load_study(db, "w").user_attrs[BUDGET_ATTR] == 6
    assert main([*run, "--trials", "9"]) == 0
    assert load_study(db, "w").user_attrs[BUDGET_ATTR] == 9


def test_trials_and_more_together_are_a_usage_error(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main([*SEARCH, "--storage", str(tmp_path / "s.db"), "--trials", "3", "--more", "2"])
    assert exc.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    d = tmp_path_factory.mktemp("sem")
    db = str(d / "s.db")
    assert main([*SEARCH, "--storage", db, "--study", "s", "--trials", "12", "--sampler", "tpe"]) == 0
    return d, db


@pytest.mark.slow
def test_each_trained_trial_has_its_plot_as_a_named_file(searched: tuple[Path, str]) -> None:
    d, db = searched
    study = load_study(db, "s")
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    assert trained
    for t in trained:
        path = Path(t.user_attrs["plot"])
        assert path.parent == d / "plots" / "s" and path.is_file() and path.stat().st_size > 1000
        assert path.name.startswith(f"{t.number}-") and path.suffix == ".png"
    assert any(p.name == "1-max-0-x.png" or "max-0-x" in p.name for p in (d / "plots" / "s").iterdir())


@pytest.mark.slow
def test_exported_names_are_leaderboard_ranks_and_skipped_references_are_named(searched: tuple[Path, str],
                                                                               capsys) -> None:
    d, db = searched
    out_file = d / "found.py"
    assert main(["export", "--study", "s", "--storage", db, "--k", "3", "--output", str(out_file)]) == 0
    captured = capsys.readouterr()
    out, err = captured.out, captured.err
    rows = leaderboard(load_study(db, "s"))
    own = [r for r in rows if r.reference is None][:3]
    assert f"rank{own[0].rank} = {own[0].expression}" in out
    for r in rows:  # every reference ranked above the last exported row is named
        if r.reference is not None and r.rank < own[-1].rank:
            assert f"actsearch: note: rank {r.rank} (" in err and f"{r.reference} reference" in err
    spec = importlib.util.spec_from_file_location("found_sem", out_file)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    for r in own:
        cls = getattr(mod, f"Rank{r.rank}")
        assert cls.__doc__ and f"Rank {r.rank} of study 's'" in cls.__doc__
        assert f"leaderboard ranks {', '.join(str(x.rank) for x in own)}" in mod.__doc__.replace("\n", " ")


def _row(rank: int, reference: str | None, trial: int | None = None) -> Row:
    return Row(rank, trial, "x", 0.9 - rank / 100, None, None, reference, parse("x*sigmoid(x)"), [0])


def test_top_k_names_the_references_it_passes_over() -> None:
    rows = [_row(1, "swish", 3), _row(2, None, 4), _row(3, "silu", 0), _row(4, "relu"), _row(5, None, 6),
            _row(6, None, 7), _row(7, "tanh", 2)]
    top, notes = top_candidates(rows, 2)
    assert [r.rank for r in top] == [2, 5]
    assert notes == ["rank 1 (#3) x is the swish reference: verified as the baseline 'swish'",
                     "rank 3 (#0) x is the silu reference, not a search result: skipped "
                     "(`actsearch compare silu` verifies it)",
                     "rank 4 (ref) x is the relu reference: verified as the baseline 'relu'"]
    _, notes = top_candidates(rows, 2, exporting=True)
    assert all("not exported" in n for n in notes) and len(notes) == 3


@pytest.mark.slow
def test_top_shows_why_a_trial_failed(searched: tuple[Path, str], capsys) -> None:
    _, db = searched
    study = load_study(db, "s")
    t = study.ask()
    t.set_user_attr("expression", "x/(x + 1e-3)")
    t.set_user_attr("status", "diverged")
    t.set_user_attr("fail_reason", "gradient is inf/nan at step 548")
    study.tell(t, state=TrialState.FAIL)
    assert main(["top", "--study", "s", "--storage", db]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"#{t.number}\s+x/\(x \+ 1e-3\)\s+diverged: gradient is inf/nan at step 548", out), out


def test_a_space_files_study_is_named_after_the_space(tmp_path: Path, capsys) -> None:
    space = tmp_path / "my_file.toml"
    space.write_text('name = "gated"\ncore_units = 1\nunary = ["x", "sigmoid", "tanh"]\nbinary = ["mul", "add"]\n',
                     encoding="utf-8")
    db = str(tmp_path / "s.db")
    assert main(["search", "--space", str(space), "--fidelity", "smoke", "--storage", db, "--trials", "0",
                 "--workers", "0"]) == 0
    out = capsys.readouterr().out
    assert "study gated-tiny-smoke-tpe-s0 ready" in out, out


def test_the_progress_line_pluralises_duplicates() -> None:
    stream = io.StringIO()
    p = Progress(stream=stream)
    p.total = 3
    dup = SimpleNamespace(user_attrs={"duplicate_of": 0}, state=TrialState.COMPLETE, values=[0.5])
    p(dup)
    assert "| 1 duplicate |" in stream.getvalue().splitlines()[-1]
    p(dup)
    assert "| 2 duplicates |" in stream.getvalue().splitlines()[-1]
