"""--sampler surrogate: new functions only (batches included), better than chance, end to end via the CLI."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from actsearch.cli import main
from actsearch.expressions import load_space
from actsearch.search import FeatureCache, SurrogateSampler, load_study, make_sampler, read_settings

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _value(cand: object) -> float:
    """A stand-in score the output features can learn: large where f(1.5) is near 1."""
    y = float(cand.evaluate(torch.tensor([1.5], dtype=torch.float64))[0])  # type: ignore[attr-defined]
    return float(np.exp(-(y - 1.0) ** 2)) if np.isfinite(y) else 0.0


def _replay(sampler: SurrogateSampler, rounds: int, batch: int) -> tuple[optuna.Study, list[float]]:
    space = load_space("tiny")
    study = optuna.create_study(direction="maximize", sampler=sampler)
    values: list[float] = []
    for _ in range(rounds):
        asked = []
        for _ in range(batch):  # all of a batch asked before any is told
            trial = study.ask()
            cand = space.suggest(trial)
            trial.set_user_attr("key", cand.key)
            asked.append((trial, cand))
        for trial, cand in asked:
            if cand.degenerate_reason is not None:
                study.tell(trial, state=TrialState.FAIL)
                continue
            values.append(_value(cand))
            study.tell(trial, values[-1])
    return study, values


def test_never_proposes_a_function_the_study_holds_even_within_a_batch() -> None:
    space = load_space("tiny")
    sampler = SurrogateSampler(space, "smoke", seed=0, warmup=4, cache=FeatureCache("smoke"))
    pool = sampler.pool()
    rounds = (len(pool) - 2) // 2
    study, _ = _replay(sampler, rounds, batch=2)
    keys = [t.user_attrs["key"] for t in study.trials]
    assert len(keys) == 2 * rounds and len(set(keys)) == len(keys)
    assert sampler.cache.computed >= len(pool)  # every pool function's features, once
    before = sampler.cache.computed
    sampler.sample_relative(study, study.ask(), {})
    assert sampler.cache.computed == before  # repeated asks reuse the cached features


def test_after_warm_up_it_proposes_better_functions_than_the_pool_average() -> None:
    space = load_space("tiny")
    sampler = SurrogateSampler(space, "smoke", seed=1, warmup=6, cache=FeatureCache("smoke"))
    pool_values = [_value(space.build(dict(p))) for _, p in sampler.pool()]
    _, values = _replay(sampler, 6, batch=2)
    proposed = values[6:10]  # the warm-up's 6 are random; the next 4 the surrogate's first picks
    assert np.mean(proposed) > np.mean(pool_values) + 0.15
    assert max(values) >= sorted(pool_values)[-3]  # one of the pool's three best is found in 12 trials


def test_the_shared_features_are_kept_on_disk_for_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                                   ) -> None:
    monkeypatch.setenv("ACTSEARCH_CACHE", str(tmp_path))
    monkeypatch.setattr(FeatureCache, "_shared", {})
    space = load_space("tiny")
    first = SurrogateSampler(space, "smoke", seed=0, warmup=4)  # the shared cache, as `search` builds it
    pool = first.pool()
    assert first.cache.path is not None and first.cache.path.is_relative_to(tmp_path) and first.cache.path.exists()
    assert first.cache.computed >= len(pool)

    monkeypatch.setattr(FeatureCache, "_shared", {})  # a new process
    second = SurrogateSampler(space, "smoke", seed=0, warmup=4)
    assert second.pool() == pool and second.cache.computed == 0  # read back, none recomputed
    for key, _ in pool:
        np.testing.assert_array_equal(second.cache.vectors[key], first.cache.vectors[key])

    # a file of another feature version (or fidelity definition) is not trusted: recomputed
    other = FeatureCache("smoke")
    other.vectors = {k: v + 1.0 for k, v in first.cache.vectors.items()}
    other.save(first.cache.path)
    with np.load(first.cache.path) as f:
        np.savez_compressed(first.cache.path, **{**dict(f), "stamp": "v0 " + str(f["stamp"])})
    monkeypatch.setattr(FeatureCache, "_shared", {})
    third = SurrogateSampler(space, "smoke", seed=0, warmup=4)
    third.pool()
    assert third.cache.computed >= len(pool)
    np.testing.assert_array_equal(third.cache.vectors[pool[0][0]], first.cache.vectors[pool[0][0]])


def test_make_sampler_names_it() -> None:
    s = make_sampler("surrogate", load_space("tiny"), seed=0, batch=2, fidelity="smoke")
    assert isinstance(s, SurrogateSampler) and s.warmup == 10


def _cli(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = int(exc.code or 0)
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> str:
    db = str(tmp_path_factory.mktemp("surrogate") / "s.db")
    rc, _, err = _cli(["search", "--space", "tiny", "--fidelity", "smoke", "--sampler", "surrogate", "--trials", "14",
                       "--batch", "2", "--pruner", "none", "--storage", db, "--study", "sur", "--no-plots", "--quiet"])
    assert rc == 0, err
    return db


def test_search_with_the_surrogate_through_the_cli(searched: str) -> None:
    study = load_study(searched, "sur")
    assert read_settings(study).sampler == "surrogate"
    assert len(study.trials) >= 14  # the budget counts the enqueued references
    trained = [t.user_attrs["key"] for t in study.trials if "duplicate_of" not in t.user_attrs
               and "key" in t.user_attrs and t.state == TrialState.COMPLETE]
    assert len(trained) == len(set(trained)) >= 10


def test_predict_answers_in_the_order_given(searched: str) -> None:
    exprs = ["tanh", "x*sigmoid(x)", "relu", "max(x, tanh(x))"]
    rc, out, err = _cli(["predict", *exprs, "--study", "sur", "--storage", searched])
    assert rc == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == len(exprs)
    for ln, expr in zip(lines, exprs):
        assert ln.startswith(expr + " ")
        mean, sd = (float(v) for v in ln[len(expr):].split()[:3:2])
        assert 0.0 <= mean <= 1.0 and sd >= 0.0


@pytest.mark.parametrize("argv", [["predict", "foo(x)", "--study", "sur"], ["predict", "relu", "--study", "nope"],
                                  ["predict", "x+", "relu", "--study", "sur"], ["predict", "--study", "sur"],
                                  ["predict", "beta", "--study", "sur"]])
def test_predict_rejects_bad_input_with_one_line_and_exit_2(argv: list[str], searched: str) -> None:
    rc, out, err = _cli([*argv, "--storage", searched])
    assert rc == 2 and out == ""
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err
