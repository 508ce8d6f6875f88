"""The search loop: batched ask/tell, dedup, degenerate candidates, pruning, references,
interrupts, resume, storages and local workers.

Most tests replace the population trainer by a fake (deterministic scores, checkpoints at steps
20/40/60 like the smoke fidelity) so they check the search's bookkeeping in milliseconds; the
parallel-workers test and tests/test_search_cli.py use the real engine.
"""
from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from optuna.trial import TrialState

import actsearch.evaluation
from actsearch.errors import ActsearchError
from actsearch.expressions import space_from_dict
from actsearch.search import REFERENCES_ATTR, counted
from actsearch.search import Item, Reporter, RunConfig, run_search
from actsearch.search import SearchSettings, open_storage, resolve_storage, space_to_dict, study_name_for
from actsearch.evaluation import TrainResult

optuna.logging.set_verbosity(optuna.logging.WARNING)

# x, a constant β and three nonlinearities: constant functions (degenerate), many equivalent
# structures (max(relu, relu) = relu …) and the in-space references relu, silu, tanh.
SPACE = space_from_dict({"name": "t", "core_units": 1, "unary": ["x", "beta", "tanh", "relu", "sigmoid"],
                         "binary": ["max", "add", "mul"]})
_X = torch.linspace(-3, 3, 13, dtype=torch.float64)


def settings(**kw: Any) -> SearchSettings:
    base = dict(space="t", dataset="tiny", fidelity="smoke", sampler="random", seed=0, seeds=1,
                space_def=space_to_dict(SPACE))
    base.update(kw)
    return SearchSettings(**base)


def score(act: Any, seed: int = 0) -> float:
    """A deterministic accuracy in (0, 1): closeness to x·σ(x), plus a small seed effect."""
    if isinstance(act, str):
        return 0.5
    y = act.evaluate(_X)
    return float(0.9 / (1.0 + ((y - _X * torch.sigmoid(_X)) ** 2).mean())) + 0.01 * seed


class FakeTrainer:
    """Stands in for train_population; records what it was asked to train."""

    def __init__(self, diverge: str | None = None, interrupt_on_call: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.diverge, self.interrupt_on_call = diverge, interrupt_on_call
        self.stopped: dict[tuple[int, int], int] = {}  # (call, member) -> step it was pruned at

    def __call__(self, acts, fidelity, seeds, device="cpu", report=None, dataset=None):
        call = len(self.calls)
        self.calls.append([getattr(a, "key", str(a)) for a in acts])
        if self.interrupt_on_call == call:
            raise KeyboardInterrupt
        out, alive = [], set(range(len(acts)))
        curves: dict[int, list] = {i: [] for i in alive}
        status = {i: "ok" for i in alive}
        for step in (20, 40, 60):
            for i in sorted(alive):
                if self.diverge and self.diverge in getattr(acts[i], "text", "") and step == 40:
                    status[i] = "diverged"
                    alive.discard(i)
                    continue
                acc = score(acts[i], seeds[i]) * (0.5 + step / 120)
                curves[i].append((step, acc))
                if report is not None and report(i, step, acc):
                    status[i] = "pruned"
                    self.stopped[(call, i)] = step
                    alive.discard(i)
        for i, a in enumerate(acts):
            c = curves[i]
            out.append(TrainResult(status[i], c[-1][1] if c else None,
                                   None if status[i] == "diverged" else score(a, seeds[i]), c[-1][0] if c else 0,
                                   0.01, c, "loss is nan at step 40" if status[i] == "diverged" else None, 0.1))
        return out


@pytest.fixture
def fake(monkeypatch) -> FakeTrainer:
    f = FakeTrainer()
    monkeypatch.setattr(actsearch.evaluation, "train_population", f)
    return f


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/s.db"


def _search(tmp_path: Path, s: SearchSettings | None = None, **cfg: Any) -> optuna.Study:
    s = s or settings()
    base = dict(trials=30, batch=5, pruner="none", plots=False)
    base.update(cfg)
    return run_search(_url(tmp_path), study_name_for(s), s, RunConfig(**base))


def test_no_wasted_training(tmp_path: Path, fake: FakeTrainer) -> None:
    study = _search(tmp_path)
    trials = study.trials
    assert len(trials) == 30 and all(t.state.is_finished() for t in trials)
    trained = [k for call in fake.calls[1:] for k in call]  # call 0: the out-of-space references
    assert len(trained) == len(set(trained)), "a function was trained twice"
    by_number = {t.number: t for t in trials}
    dups = [t for t in trials if "duplicate_of" in t.user_attrs]
    assert dups, "this space has many equivalent structures: expected duplicates"
    for t in dups:
        orig = by_number[t.user_attrs["duplicate_of"]]
        assert orig.user_attrs["key"] == t.user_attrs["key"] and orig.number != t.number
        assert t.values == orig.values and t.state == orig.state
        assert "duplicate_of" not in orig.user_attrs
    degenerate = [t for t in trials if t.user_attrs.get("status") == "degenerate"]
    assert degenerate, "max(β, β) and friends are constant: expected degenerate candidates"
    for t in degenerate:
        assert t.state == TrialState.FAIL and t.user_attrs["fail_reason"]
        assert t.user_attrs["key"] not in trained
    for t in trials:
        for attr in ("expression", "latex", "key", "structure", "core_units", "run", "worker"):
            assert attr in t.user_attrs, (t.number, attr)
        if t.state == TrialState.COMPLETE:
            assert t.value == pytest.approx(t.user_attrs["accuracy_mean"])
            assert t.user_attrs["seeds"] == [0]


def test_references(tmp_path: Path, fake: FakeTrainer) -> None:
    study = _search(tmp_path, trials=6)
    refs = {t.user_attrs["reference"]: t for t in study.trials if "reference" in t.user_attrs}
    assert set(refs) == {"relu", "silu", "tanh"}  # the ones this space can express, enqueued first
    assert {t.number for t in refs.values()} == {0, 1, 2}
    assert refs["relu"].user_attrs["expression"] == "Max(0, x)"
    outside = study.user_attrs[REFERENCES_ATTR]
    assert set(outside) == {"swish", "gelu", "elu"}  # trained once beside the space, not trials
    assert outside["swish"]["accuracy_mean"] == pytest.approx(score(actsearch.parse("x*sigmoid(beta*x)")) * 1.0)
    assert fake.calls[0] == [actsearch.parse(e).key for e in ("x*sigmoid(beta*x)", "gelu(x)", "elu(x)")]


def test_seeds_are_paired_and_averaged(tmp_path: Path, fake: FakeTrainer) -> None:
    study = _search(tmp_path, settings(seeds=2), trials=5)
    t = next(t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs)
    a, b = t.user_attrs["val_accuracies"]
    assert t.value == pytest.approx((a + b) / 2) and t.user_attrs["accuracy_std"] == pytest.approx(statistics.stdev([a, b]))
    assert t.user_attrs["seeds"] == [0, 1]


def test_diverged_candidates_fail_with_the_reason(tmp_path: Path, monkeypatch) -> None:
    f = FakeTrainer(diverge="tanh")
    monkeypatch.setattr(actsearch.evaluation, "train_population", f)
    study = _search(tmp_path, trials=12)
    bad = [t for t in study.trials if "tanh" in t.user_attrs["expression"] and "duplicate_of" not in t.user_attrs]
    assert bad
    for t in bad:
        assert t.state == TrialState.FAIL and t.user_attrs["status"] == "diverged"
        assert "nan" in t.user_attrs["fail_reason"]


def test_pruned_members_leave_the_batch(tmp_path: Path, fake: FakeTrainer) -> None:
    study = _search(tmp_path, trials=30, batch=5, pruner="median")
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED and "duplicate_of" not in t.user_attrs]
    assert pruned, "the median pruner should stop below-median candidates"
    assert fake.stopped and all(step < 60 for step in fake.stopped.values())  # stopped early
    for t in pruned:
        assert t.intermediate_values and max(t.intermediate_values) < 60
        assert t.user_attrs["status"] == "pruned"


def test_reporter_averages_seeds_and_survives_divergence() -> None:
    class T:
        def __init__(self, n: int) -> None:
            self.number, self.reports = n, []

        def report(self, v: float, step: int) -> None:
            self.reports.append((step, v))

        def should_prune(self) -> bool:
            return False

    a, b = Item(T(0), members=[0, 1]), Item(T(1), members=[2, 3])  # type: ignore[arg-type]
    r = Reporter([a, b], prune=True)
    for i, acc in enumerate([0.2, 0.4, 0.6, 0.8]):
        assert r(i, 20, acc) is False
    assert a.trial.reports == [(20, pytest.approx(0.3))] and b.trial.reports == [(20, pytest.approx(0.7))]
    r(0, 40, 0.5)  # member 1 diverged: it never reports 40 …
    r(2, 40, 0.9)  # … which a later member reveals
    r(3, 40, 0.9)
    assert a.trial.reports[-1] == (40, pytest.approx(0.5)) and b.trial.reports[-1] == (40, pytest.approx(0.9))


def test_interrupt_keeps_finished_trials(tmp_path: Path, monkeypatch) -> None:
    f = FakeTrainer(interrupt_on_call=2)  # call 0: references, 1: first batch, 2: second batch
    monkeypatch.setattr(actsearch.evaluation, "train_population", f)
    with pytest.raises(KeyboardInterrupt):
        _search(tmp_path, trials=20, batch=5)
    study = optuna.load_study(study_name=study_name_for(settings()), storage=open_storage(_url(tmp_path)))
    states = [t.state for t in study.trials]
    assert TrialState.RUNNING not in states
    assert states[:5].count(TrialState.COMPLETE) + states[:5].count(TrialState.FAIL) == 5
    interrupted = [t for t in study.trials if t.user_attrs.get("fail_reason") == "interrupted"]
    assert interrupted and all(t.state == TrialState.FAIL and t.number >= 5 for t in interrupted)


def test_resume_continues_the_same_study(tmp_path: Path, fake: FakeTrainer) -> None:
    _search(tmp_path, trials=5)
    study = _search(tmp_path, trials=5)
    assert len(study.trials) == 10
    assert sum("reference" in t.user_attrs for t in study.trials) == 3  # enqueued once
    with pytest.raises(ActsearchError, match="different fidelity"):
        run_search(_url(tmp_path), study_name_for(settings()), settings(fidelity="quick"),
                   RunConfig(trials=1, plots=False))


def test_journal_storage(tmp_path: Path, fake: FakeTrainer) -> None:
    url = resolve_storage(str(tmp_path / "journal.log"))
    assert url.startswith("journal:")
    s = settings()
    study = run_search(url, "j", s, RunConfig(trials=6, batch=3, pruner="none", plots=False))
    assert len(study.trials) == 6 and isinstance(study._storage, optuna.storages.JournalStorage)


def test_storage_urls(tmp_path: Path) -> None:
    assert resolve_storage(None) == "sqlite:///results/actsearch.db"
    assert resolve_storage("x.db") == "sqlite:///x.db"
    assert resolve_storage("postgresql://u@h/db") == "postgresql://u@h/db"
    with pytest.raises(actsearch.StudyNotFoundError, match="no storage"):
        open_storage(f"sqlite:///{tmp_path}/missing.db", create=False)


def test_plots_are_artifacts(tmp_path: Path, fake: FakeTrainer) -> None:
    study = _search(tmp_path, trials=4, batch=4, plots=True, artifacts=str(tmp_path / "art"))
    trained = [t for t in study.trials if t.state == TrialState.COMPLETE and "duplicate_of" not in t.user_attrs]
    metas = [optuna.artifacts.get_all_artifact_meta(t, storage=study._storage) for t in trained]
    assert trained and all(len(m) == 1 and m[0].mimetype == "image/png" for m in metas)
    files = list((tmp_path / "art").iterdir())
    assert len(files) == len(trained) and all(f.read_bytes()[:4] == b"\x89PNG" for f in files)


@pytest.mark.slow
def test_local_workers_share_one_sqlite_study(tmp_path: Path) -> None:
    """Real engine, two loky worker processes, one SQLite file: no lock errors, no lost trials."""
    s = SearchSettings(space="tiny", dataset="tiny", fidelity="smoke", sampler="tpe")
    cfg = RunConfig(trials=8, workers=2, batch=2, pruner="none", plots=False)
    study = run_search(_url(tmp_path), "par", s, cfg)
    trials = study.trials
    asked = [t for t in trials if t.user_attrs.get("run") == cfg.run_id]
    # Both workers may ask for the last place at once: the loser is failed "over_budget" before it
    # trains, and does not count (common on a busy machine).
    lost_race = [t for t in asked if t.user_attrs.get("status") == "over_budget"]
    assert all(t.state == TrialState.FAIL and not counted(t, set()) for t in lost_race)
    assert len(lost_race) <= 2 * cfg.batch
    mine = [t for t in asked if t not in lost_race]
    assert len(mine) == 8  # the 3 enqueued references (relu, silu, tanh) count among them
    assert {t.user_attrs.get("reference") for t in mine} >= {"relu", "silu", "tanh"}
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in mine), \
        [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in mine]
    assert len({t.user_attrs["worker"] for t in mine}) == 2  # both processes did work
    assert len({t.number for t in trials}) == len(trials)


@pytest.mark.parametrize("sampler", ["tpe", "random", "exhaustive", "nsga2", "evolution"])
def test_every_sampler_drives_the_loop(tmp_path: Path, fake: FakeTrainer, sampler: str) -> None:
    s = settings(sampler=sampler, cost="ops")
    study = _search(tmp_path, s, trials=12, batch=4, pruner="median")
    assert len(study.trials) == 12 and all(t.state.is_finished() for t in study.trials)
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert done
    if sampler == "nsga2":  # accuracy up, cost (op count) down
        assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
        for t in done:  # a duplicate carries its original's cost (same function, maybe longer form)
            assert len(t.values) == 2 and t.values[1] == t.user_attrs["cost"]
            if "duplicate_of" not in t.user_attrs:
                assert t.values[1] == t.user_attrs["op_count"]
    if sampler == "exhaustive":  # never the same function twice
        keys = [t.user_attrs["key"] for t in study.trials]
        assert len(keys) == len(set(keys))


def test_the_ood_objective_and_the_val_ood_trade_off(tmp_path: Path) -> None:
    """--objective ood: a trial's value is its accuracy on the shifted test set; nsga2 with val,ood
    keeps both; a dataset without a shifted set is refused before anything trains."""
    from actsearch.cli import main

    url = _url(tmp_path)
    common = ["search", "--storage", url, "--space", "tiny", "--fidelity", "smoke", "--dataset", "mnist1d",
              "--trials", "3", "--no-plots", "--quiet", "--pruner", "none", "--sampler", "random"]
    assert main([*common, "--objective", "ood", "--study", "o"]) == 0
    trained = [t for t in optuna.load_study(study_name="o", storage=open_storage(url)).trials
               if t.state == optuna.trial.TrialState.COMPLETE]
    assert trained and all(t.value == t.user_attrs["ood_accuracy_mean"] for t in trained)
    assert main([*common[:-2], "--sampler", "nsga2", "--objectives", "val,ood", "--study", "p"]) == 0
    study = optuna.load_study(study_name="p", storage=open_storage(url))
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MAXIMIZE"]
    for t in study.trials:
        if t.state == optuna.trial.TrialState.COMPLETE:
            assert t.values == [t.user_attrs["accuracy_mean"], t.user_attrs["ood_accuracy_mean"]]
    no_ood = [a if a != "mnist1d" else "tiny" for a in common]
    assert main([*no_ood, "--objective", "ood", "--study", "q"]) == 2
