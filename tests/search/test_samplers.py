"""Samplers and pruners by name; the exhaustive and regularized-evolution samplers (no training:
a deterministic fake objective stands in for the child network)."""
from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState

from actsearch.errors import ActsearchError
from actsearch.expressions import load_space, space_from_dict
from actsearch.expressions import parse
from actsearch.search import (EvolutionSampler, ExhaustiveSampler, activation_cost, make_pruner, make_sampler,
                                population_seeds, seed_for_worker)
from actsearch.evaluation import get_fidelity

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _distinct_usable(space) -> set[str]:
    keys = set()
    for choices in space.enumerate():
        cand = space.build(choices)
        if cand.degenerate_reason is None:
            keys.add(cand.key)
    return keys


def _fake_score(cand) -> float:
    """A deterministic 'accuracy': how close f is to x·σ(x) on a few points (higher is better)."""
    import torch

    x = torch.linspace(-3, 3, 13, dtype=torch.float64)
    return float(1.0 / (1.0 + ((cand.evaluate(x) - x * torch.sigmoid(x)) ** 2).mean()))


def _run(study, space, n, batch=4):
    """Batched ask/tell like the search does, recording each trial's key as the search does."""
    for lo in range(0, n, batch):
        trials = []
        for _ in range(min(batch, n - lo)):
            t = study.ask()
            cand = space.suggest(t)
            t.set_user_attr("key", cand.key)
            trials.append((t, cand))
        for t, cand in trials:
            if cand.degenerate_reason:
                study.tell(t, state=TrialState.FAIL)
            else:
                study.tell(t, _fake_score(cand))


def test_tpe_options_are_explicit() -> None:
    s = make_sampler("tpe", load_space("tiny"), seed=3, batch=8)
    assert isinstance(s, optuna.samplers.TPESampler)
    assert s._multivariate is True and s._constant_liar is True
    assert s._group_decomposed_search_space is not None  # group=True
    assert s._n_startup_trials == 16


@pytest.mark.parametrize("name,cls", [("random", optuna.samplers.RandomSampler),
                                      ("nsga2", optuna.samplers.NSGAIISampler),
                                      ("exhaustive", ExhaustiveSampler), ("evolution", EvolutionSampler)])
def test_samplers_by_name(name: str, cls: type) -> None:
    assert isinstance(make_sampler(name, load_space("tiny"), seed=0), cls)


def test_unknown_names_are_user_errors() -> None:
    with pytest.raises(ActsearchError, match="unknown sampler 'bayes'"):
        make_sampler("bayes", load_space("tiny"), seed=0)
    with pytest.raises(ActsearchError, match="unknown pruner"):
        make_pruner("asha", get_fidelity("smoke"))


def test_pruners_follow_the_fidelity_checkpoints() -> None:
    fid = get_fidelity("standard")
    hb = make_pruner("hyperband", fid)
    assert isinstance(hb, optuna.pruners.HyperbandPruner)
    assert hb._min_resource == fid.eval_every and hb._max_resource == fid.steps
    assert isinstance(make_pruner("median", fid, batch=4), optuna.pruners.MedianPruner)
    assert isinstance(make_pruner("none", fid), optuna.pruners.NopPruner)


def test_exhaustive_tries_every_distinct_function_once() -> None:
    space = load_space("tiny")
    expected = _distinct_usable(space)
    sampler = ExhaustiveSampler(space, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    assert sampler.remaining(study) == len(expected)
    _run(study, space, len(expected))  # batched: trials asked together must still differ
    keys = [t.user_attrs["key"] for t in study.trials]
    assert sorted(keys) == sorted(expected)  # each distinct function exactly once
    assert sampler.remaining(study) == 0
    study.ask().suggest_categorical("u1_unary1", list(space.unary))
    assert sampler.exhausted


def test_exhaustive_refuses_huge_spaces() -> None:
    with pytest.raises(ActsearchError, match="too many to enumerate"):
        ExhaustiveSampler(load_space("paper-2"))


def test_evolution_mutates_one_slot_of_a_tournament_winner() -> None:
    space = space_from_dict({"name": "t", "core_units": 1, "unary": ["x", "neg", "sigmoid", "tanh", "relu", "sin"],
                             "binary": ["mul", "max", "add", "sub"]})
    sampler = EvolutionSampler(space, population_size=8, sample_size=3, seed=1)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    _run(study, space, 8, batch=8)  # the random initial population
    done = {tuple(sorted(t.params.items())) for t in study.trials}
    _run(study, space, 16, batch=4)
    for t in study.trials[8:]:
        earlier = [u for u in study.trials if u.number < t.number and u.state == TrialState.COMPLETE]
        # the child differs from some earlier completed trial in exactly one slot
        assert any(sum(u.params[k] != t.params[k] for k in t.params) == 1 for u in earlier), t.params
    keys = [t.user_attrs["key"] for t in study.trials]
    assert len(keys) == len(set(keys)), "evolution proposed a function the study already had"
    assert len(done) == 8
    # Selection pressure: the children are better on average than the random initial population.
    init = [t.value for t in study.trials[:8] if t.value is not None]
    kids = [t.value for t in study.trials[8:] if t.value is not None]
    assert sum(kids) / len(kids) > sum(init) / len(init)


def test_evolution_is_deterministic_under_a_seed() -> None:
    space = load_space("swish-core")

    def params(seed: int) -> list[dict]:
        study = optuna.create_study(direction="maximize",
                                    sampler=EvolutionSampler(space, population_size=4, sample_size=2, seed=seed))
        _run(study, space, 8, batch=4)
        return [t.params for t in study.trials]

    assert params(5) == params(5)
    assert params(5) != params(6)


def test_mutate_changes_exactly_one_slot() -> None:
    space = load_space("paper-2")
    s = EvolutionSampler(space, seed=0)
    parent = next(iter(space.enumerate()))
    for _ in range(50):
        child = s.mutate(parent)
        assert sum(child[k] != parent[k] for k in parent) == 1


def test_cost_and_seeds() -> None:
    assert activation_cost(parse("x*sigmoid(beta*x)"), "ops") > activation_cost(parse("relu(x)"), "ops")
    assert activation_cost(parse("relu(x)"), "time") > 0
    assert list(population_seeds(3, 2)) == [3, 4]
    assert seed_for_worker(3, 0) == 3 and seed_for_worker(3, 1) != seed_for_worker(3, 2)
