"""The importable homes of generated modules: names that encode a recipe, rebuilt on import.

Nothing in a module's name may run as Python; a name that does not decode to a recipe of the
operator table is a ModuleNotFoundError; a live module is never built twice; and modules are not
pinned in memory by being made (a search makes thousands).
"""
from __future__ import annotations

import base64
import gc
import importlib
import json
import linecache
import random
import sys
import zlib

import pytest
import sympy as sp
import torch

from actsearch import Candidate, load_space, parse, to_module
from actsearch.expressions import ACTIVATIONS, X, beta_symbol
from actsearch.expressions.generated import PREFIX, module_name, recipe
from actsearch.expressions.printing import module_source


def _structures(space: str, n: int, seed: int) -> list[Candidate]:
    sp_ = load_space(space)
    rng = random.Random(seed)
    return [sp_.build({k: rng.choice(c) for k, c in sp_.slots()}) for _ in range(n)]


def _name(recipe: object, readable: str = "x") -> str:
    raw = json.dumps(recipe, separators=(",", ":")).encode()
    return f"{PREFIX}_{readable}__" + base64.b32encode(zlib.compress(raw)).decode().rstrip("=").lower()


def _rebuilt_source(cand: Candidate) -> str:
    """The source a process that never saw ``cand`` compiles for its module's name."""
    return module_source([recipe(module_name(cand))], ["activation"])


def test_every_structure_rebuilds_from_its_name_to_the_same_source() -> None:
    """Over paper-1 and paper-2 samples, the registry's closed forms (floats, π, √2 …), canonical
    (simplified) forms and fixed or shared β."""
    cands = _structures("paper-1", 150, 1) + _structures("paper-2", 60, 2)
    cands += [parse(a.expression) for a in ACTIVATIONS.values() if a.sympy is not None]
    cands += [parse("x*sigmoid(beta*x)").canonical, parse("0.25*x + atan(x)**2 - 1/3*x")]
    fixed = parse("mix(x, sin(x))")
    fixed.beta_trainable = fixed.beta_per_channel = False
    cands.append(fixed)
    for cand in cands:
        assert _rebuilt_source(cand) == module_source([cand], ["activation"]), cand.text


def test_names_are_readable_deterministic_and_distinct() -> None:
    a, b = parse("x*sigmoid(beta*x)"), parse("sigmoid(beta*x)*x")
    assert module_name(a) == module_name(b)  # the same tree
    assert module_name(a).startswith(PREFIX + "_x_sigmoid_beta_x__")
    shifted = parse("x*sigmoid(beta*x)")
    shifted.betas["beta"] = 2.0
    fixed = parse("x*sigmoid(beta*x)")
    fixed.beta_per_channel = False
    assert len({module_name(a), module_name(shifted), module_name(fixed)}) == 3
    assert type(to_module(a)) is type(to_module(b))  # one class per recipe while it lives


def test_importing_a_name_no_process_made_builds_its_module() -> None:
    cand = Candidate(sp.atan(X) ** 2 - beta_symbol("beta5") * X, {"beta5": 0.7})
    name = module_name(cand)
    assert name not in sys.modules
    module = importlib.import_module(name)  # nothing made from cand yet: built from the name
    try:
        assert "".join(linecache.getlines(module.__file__)) == module_source([cand], ["activation"])
        act = module.Activation(3)
        x = torch.linspace(-2, 2, 12).reshape(4, 3)
        torch.testing.assert_close(act(x), torch.atan(x) ** 2 - 0.7 * x)
        assert type(to_module(cand, 3)) is module.Activation  # and to_module finds the same one
    finally:
        del sys.modules[name]


@pytest.mark.parametrize("recipe", [
    [1, ["eval", ["s", "x"]], [], True, True],                        # not an operator-table class
    [1, ["__import__", ["s", "x"]], [], True, True],
    [1, ["s", "__import__('os')"], [], True, True],                   # a symbol that is neither x nor a β
    [1, ["Mul", ["s", "x"], ["s", "os"]], [["os.system", 1.0]], True, True],  # a β that is no identifier
    [1, ["Mul", ["s", "x"], ["s", "torch"]], [["torch", 1.0]], True, True],   # … or shadows the code's names
    [1, ["s", "x"], [], "yes", True],                                  # a layout that is not a bool
    [2, ["s", "x"], [], True, True],                                   # an unknown format
    [1, ["f", ["1", 0, 0, 0], 53], [], True, True],                    # a float that is not four ints
    [1, ["Pow"], [], True, True],                                      # a node without arguments
    [1, True, [], True, True],
])
def test_a_name_that_is_not_a_recipe_is_a_module_not_found_error(recipe: list) -> None:
    with pytest.raises(ModuleNotFoundError, match="not a module actsearch can generate"):
        importlib.import_module(_name(recipe))


@pytest.mark.parametrize("suffix", ["", "x", "x__", "x__!!", "x__aaaa", "x__" + "a" * 9, "x__" + "0" * 16])
def test_malformed_names_are_module_not_found_errors(suffix: str) -> None:
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(PREFIX + "_" + suffix)


def test_a_second_spelling_of_a_recipe_and_a_bomb_are_refused() -> None:
    good = module_name(parse("sin(x) + 0.125*x"))
    assert good not in sys.modules
    assert importlib.import_module(good).__name__ == good
    other = PREFIX + "_cos_x__" + good.rsplit("__", 1)[1]  # the same recipe under another label
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(other)
    bomb = base64.b32encode(zlib.compress(b"[" * 10_000_000)).decode().rstrip("=").lower()
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(f"{PREFIX}_x__{bomb}")
    del sys.modules[good]


def test_modules_made_are_not_pinned_until_imported() -> None:
    """A search makes thousands of modules: only one pickled or compiled (imported) stays."""
    cand = Candidate(sp.sin(X) * beta_symbol("beta7") + X, {"beta7": 0.3})
    act = to_module(cand, 3)
    name, filename = type(act).__module__, type(act).forward.__code__.co_filename
    assert name == module_name(cand) and name not in sys.modules
    assert filename in linecache.cache
    del act, cand
    gc.collect()
    assert filename not in linecache.cache  # collected with the last thing made from it
    again = to_module(Candidate(sp.sin(X) * beta_symbol("beta7") + X, {"beta7": 0.3}), 3)
    assert torch.equal(again.beta7, torch.full((3,), 0.3))
