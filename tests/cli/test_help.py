"""`--help` is complete: every option of every sub-command has help text with its default (or says it
is required), and an option that takes a name from one of the code's tables lists every name in it."""
from __future__ import annotations

import argparse

import pytest

from actsearch.cli import build_parser
from actsearch.evaluation import FIDELITIES, list_datasets
from actsearch.expressions import list_spaces
from actsearch.lecture import EXPERIMENTS
from actsearch.search import COSTS, OBJECTIVES, PRUNERS, SAMPLERS

#: option dest -> the names it takes, from the tables that define them.
TABLES = {"fidelity": list(FIDELITIES), "verify_fidelity": list(FIDELITIES), "sampler": list(SAMPLERS),
          "pruner": list(PRUNERS), "dataset": list_datasets(), "space": [p.stem for p in list_spaces()],
          "cost": list(COSTS), "objective": list(OBJECTIVES)}


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _options(name: str) -> list[argparse.Action]:
    return [a for a in _commands()[name]._actions if not isinstance(a, argparse._HelpAction)]


@pytest.mark.parametrize("name", sorted(_commands()))
def test_every_option_has_help_and_a_default(name: str) -> None:
    missing = []
    for action in _options(name):
        text = action.help or ""
        if not text or text == argparse.SUPPRESS:
            missing.append(f"{'/'.join(action.option_strings) or action.dest}: no help")
        elif action.option_strings and not action.required and "default" not in text:
            missing.append(f"{'/'.join(action.option_strings)}: no default in {text!r}")
        elif action.option_strings and action.required and "required" not in text:
            missing.append(f"{'/'.join(action.option_strings)}: does not say it is required")
    assert not missing, f"actsearch {name}: " + "; ".join(missing)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_options_list_every_name_of_their_table(name: str) -> None:
    for action in _options(name):
        names = TABLES.get(action.dest)
        if names is None:
            continue
        absent = [n for n in names if n not in (action.help or "")]
        assert not absent, f"actsearch {name} {'/'.join(action.option_strings)}: help lacks {absent}"


def test_experiment_names_are_listed() -> None:
    help_text = next(a.help for a in _options("experiment") if a.dest == "name")
    assert all(n in help_text for n in EXPERIMENTS)


def test_search_help_lists_the_nine_fidelities_and_the_surrogate(capsys) -> None:
    """What a user reported: `search --help` listed 4 fidelities and no surrogate sampler."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["search", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert all(f in out for f in FIDELITIES) and "surrogate" in out
