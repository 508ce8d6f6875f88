"""Search spaces: counts, enumeration, Optuna-driven sampling, and space-file validation."""
from __future__ import annotations

import warnings
from pathlib import Path

import optuna
import pytest

from actsearch import Candidate, load_space, parse
from actsearch.errors import SpaceError
from actsearch.expressions import list_spaces
from actsearch.expressions import PAPER_BINARY, PAPER_UNARY

optuna.logging.set_verbosity(optuna.logging.WARNING)


def test_paper1_has_6250_structures_and_enumerates_each_once() -> None:
    space = load_space("paper-1")
    assert space.unary == tuple(PAPER_UNARY) and space.binary == tuple(PAPER_BINARY)
    assert space.count() == 25 * 25 * 10 == 6250
    structures = list(space.enumerate())
    assert len(structures) == 6250
    assert len({tuple(sorted(s.items())) for s in structures}) == 6250


def test_tiny_and_paper2_counts() -> None:
    assert load_space("tiny").count() == 48 == len(list(load_space("tiny").enumerate()))
    # unit 2 chooses each of its two inputs from {x, u1}: 6250 · (2·25)² · 10
    assert load_space("paper-2").count() == 6250 * (2 * 25) ** 2 * 10 == 156_250_000


def test_every_shipped_space_loads() -> None:
    names = {p.stem for p in list_spaces()}
    assert {"paper-1", "paper-2", "tiny", "swish-core"} <= names
    for name in names:
        assert load_space(name).count() > 0


def test_build_gives_the_core_unit_expression() -> None:
    space = load_space("paper-1")
    cand = space.build({"u1_unary1": "x", "u1_unary2": "sigmoid", "u1_binary": "mul"})
    assert cand.key == parse("x*sigmoid(x)").key
    assert cand.structure == {"u1_unary1": "x", "u1_unary2": "sigmoid", "u1_binary": "mul"}
    assert cand.core_units == 1 and cand.beta_per_channel and cand.beta_trainable
    two = load_space("paper-2")
    choice = {"u1_unary1": "x", "u1_unary2": "tanh", "u1_binary": "max",
              "u2_in1": "x", "u2_unary1": "x", "u2_in2": "u1", "u2_unary2": "sin", "u2_binary": "add"}
    assert two.expression_text(choice) == "add(x, sin(max(x, tanh(x))))"
    assert two.build(choice).key == parse("x + sin(max(x, tanh(x)))").key


@pytest.mark.parametrize("space_name", ["paper-1", "paper-2"])
def test_suggest_with_an_optuna_trial(space_name: str) -> None:
    space = load_space(space_name)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = []
    for _ in range(5):
        trial = study.ask()
        cand = space.suggest(trial)
        assert isinstance(cand, Candidate)
        assert cand.structure == trial.params
        assert set(cand.structure) == {name for name, _ in space.slots()}
        assert cand.key == space.build(trial.params).key
        seen.append(cand.key)
        study.tell(trial, 0.0)
    assert len(set(seen)) > 1
    # same seed, same candidates
    again = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    assert space.suggest(again.ask()).key == seen[0]


def test_brute_force_sampler_visits_tiny_exactly_once_each() -> None:
    space = load_space("tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.BruteForceSampler(seed=0)
    study = optuna.create_study(sampler=sampler)
    visited: list[tuple[tuple[str, str], ...]] = []

    def objective(trial: optuna.Trial) -> float:
        visited.append(tuple(sorted(space.suggest(trial).structure.items())))
        return 0.0

    study.optimize(objective, n_trials=200)  # stops by itself when the space is exhausted
    assert len(visited) == 48
    assert set(visited) == {tuple(sorted(s.items())) for s in space.enumerate()}


# ---- space-file validation ---------------------------------------------------------------------
GOOD = 'name = "t"\ncore_units = 1\nunary = ["x", "sigmoid"]\nbinary = ["mul"]\n'


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "bad-space.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_a_good_file_loads_from_a_path(tmp_path: Path) -> None:
    space = load_space(_write(tmp_path, GOOD + "[beta]\ntrainable = false\n"))
    assert space.count() == 4 and not space.beta_trainable
    assert space.path == str(tmp_path / "bad-space.toml")


@pytest.mark.parametrize("text,field,what", [
    ('unary = ["x", "sigmod"]\nbinary = ["mul"]\n', "unary", "did you mean 'sigmoid'"),
    ('unary = ["x"]\nbinary = ["mul", "tanh"]\n', "binary", "unknown binary operator 'tanh'"),
    ('unary = ["x"]\nbinary = []\n', "binary", "empty"),
    ('unary = []\n', "unary", "empty"),
    ('unary = "all"\n', "unary", "list of operator names"),
    ('unary = [1, 2]\n', "unary", "list of operator names"),
    ('core_units = "two"\n', "core_units", "integer from 1 to"),
    ('core_units = 0\n', "core_units", "integer from 1 to"),
    ('core_units = true\n', "core_units", "integer from 1 to"),
    ('name = 3\n', "name", "non-empty string"),
    ('unary = ["x"]\nbinray = ["mul"]\n', "binray", "unknown field"),
    ('[beta]\ntrainable = "yes"\n', "beta.trainable", "true or false"),
    ('[beta]\nshared = true\n', "beta.shared", "unknown field"),
    ('core_units = 2\n[[units]]\ninputs = ["x", "u2"]\n[[units]]\ninputs = ["x", "u1"]\n',
     "units[1].inputs", "cycle"),
    ('core_units = 2\n[[units]]\ninputs = ["x"]\n[[units]]\ninputs = ["u2"]\n',
     "units[2].inputs", "cycle"),
    ('core_units = 2\n[[units]]\ninputs = ["x"]\n[[units]]\ninputs = ["y"]\n',
     "units[2].inputs", "neither 'x' nor a unit"),
    ('core_units = 2\n[[units]]\ninputs = ["x"]\n', "units", "list of 2 tables"),
    ('[[units]]\ninputs = []\n', "units[1].inputs", "non-empty list"),
])
def test_bad_space_file_names_file_and_field(tmp_path: Path, text: str, field: str, what: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError) as info:
        load_space(path)
    message = str(info.value)
    assert str(path) in message
    assert f"field '{field}'" in message
    assert what in message
    assert "\n" not in message


@pytest.mark.parametrize("text", ["unary = [\n", "name = \"t\"\nname = \"u\"\n", "= 1\n"])
def test_invalid_toml_names_the_file(tmp_path: Path, text: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(SpaceError, match="not valid TOML") as info:
        load_space(path)
    assert str(path) in str(info.value)


def test_missing_space_lists_the_shipped_ones(tmp_path: Path) -> None:
    with pytest.raises(SpaceError, match="paper-1"):
        load_space(tmp_path / "nope.toml")
