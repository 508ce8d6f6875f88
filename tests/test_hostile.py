"""Hostile and broken input (issue 7): random and adversarial expressions and space files, bad
space files and unreachable storages through the CLI, candidates that overflow, fail or hang in a
real study, and exported modules that cannot be made to contain code.

Property tests are derandomized (a fixed seed: the same examples on every run) and bounded.
"""
from __future__ import annotations

import ast
import builtins
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

import optuna
import pytest
import sympy
import sympy.parsing.sympy_parser
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from optuna.trial import TrialState

import actsearch
import actsearch.evaluation
from actsearch.cli import main
from actsearch.errors import ActsearchError
from actsearch.expressions import export_source
from actsearch.expressions import load_space, space_from_dict
from actsearch.search import RunConfig, run_search
from actsearch.search import SearchSettings, load_study, space_to_dict
from actsearch.evaluation import TrainResult

optuna.logging.set_verbosity(optuna.logging.WARNING)
PKG = str(Path(actsearch.__file__).resolve().parent)
FUZZ = hsettings(derandomize=True, max_examples=300, deadline=None, database=None,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                        HealthCheck.function_scoped_fixture])


# ------------------------------------------------------------------ spies: nothing is evaluated
class Evaluated(AssertionError):
    pass


@pytest.fixture
def no_eval(monkeypatch) -> Iterator[list[str]]:
    """Fail if actsearch itself calls eval/exec, or sympify/parse_expr with text. (The compiler's
    exec of code objects it generated from the operator table, "<actsearch-…>", is allowed: that
    source never holds user text — see the export tests.)"""
    calls: list[str] = []

    def from_actsearch() -> bool:
        return sys._getframe(2).f_code.co_filename.startswith(PKG)

    def spy(name: str, real: Any, text_only: bool) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            generated = getattr(args[0], "co_filename", "").startswith("<actsearch") if args else False
            if from_actsearch() and not generated and (not text_only or (args and isinstance(args[0], str))):
                calls.append(f"{name}({args[0]!r:.80})")
                raise Evaluated(f"actsearch called {name} on {args[0]!r:.80}")
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(builtins, "eval", spy("eval", builtins.eval, False))
    monkeypatch.setattr(builtins, "exec", spy("exec", builtins.exec, False))
    sympify_module = sys.modules["sympy.core.sympify"]
    for mod in (sympy, sympy.core, sympify_module):
        monkeypatch.setattr(mod, "sympify", spy("sympify", sympify_module.sympify, True))
    monkeypatch.setattr(sympy.parsing.sympy_parser, "parse_expr",
                        spy("parse_expr", sympy.parsing.sympy_parser.parse_expr, True))
    yield calls
    assert not calls, calls


# ---------------------------------------------------------------------- nasty expressions
NAMES = ["x", "beta", "sin", "sigmoid", "relu", "exp", "max", "__import__", "__class__", "os", "eval",
         "lambda", "open", "β", "ｘ", "𝑥", "xx", "e", "pi", "E", "I", "oo", "zoo", "nan", "Symbol", "sympify"]
ATOMS = st.one_of(
    st.sampled_from(NAMES),
    st.integers(-10**30, 10**30).map(str),
    st.sampled_from(["1e308", "1e309", "9" * 400, "0x10", "1_000", "1j", "-0.0", "inf", "nan", "1e-400",
                     "2**2**2**2**2", "10**10**10", "'x'", '"os"', "b'x'", "...", "None", "True"]),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)


def _grow(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.tuples(st.sampled_from(NAMES), children).map(lambda t: f"{t[0]}({t[1]})"),
        st.tuples(st.sampled_from(["max", "min", "pow", "getattr", "x"]), children, children)
        .map(lambda t: f"{t[0]}({t[1]}, {t[2]})"),
        st.tuples(children, st.sampled_from(["+", "-", "*", "/", "**", "^", "//", "%", "@", "<", "and", "|"]),
                  children).map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
        st.tuples(children, st.sampled_from(["__class__", "__globals__", "real", "a.b.c", "__dict__"]))
        .map(lambda t: f"{t[0]}.{t[1]}"),
        st.tuples(children, children).map(lambda t: f"{t[0]}[{t[1]}]"),
        children.map(lambda c: f"-{c}"),
        children.map(lambda c: f"lambda: {c}"),
        children.map(lambda c: f"[{c} for x in ()]"),
    )


NEAR_VALID = st.recursive(ATOMS, _grow, max_leaves=12)
DEEP = st.tuples(st.sampled_from(["sin(", "(", "-", "exp(", "max(x,", "sigmoid(beta*"]),
                 st.integers(1, 400)).map(lambda t: t[0] * t[1] + "x" + ")" * (t[1] * t[0].count("(")))
EXPRESSIONS = st.one_of(st.text(max_size=120), NEAR_VALID, DEEP,
                        st.text(alphabet="x()+-*/^.,_ βσ0123456789e", max_size=60))


def _parse_safely(text: str) -> None:
    try:
        cand = actsearch.parse(text)
    except ActsearchError as exc:  # a clear one-line error
        msg = str(exc)
        assert msg and "\n" not in msg and len(msg) < 2000, msg
        return
    assert isinstance(cand.expr, sympy.Expr) and cand.key  # else: a valid candidate
    assert cand.expr.free_symbols <= {sympy.Symbol("x", real=True)} | set(cand.betas) or cand.expr.free_symbols


@FUZZ
@given(text=EXPRESSIONS)
def test_parse_never_raises_or_evaluates(text: str, no_eval: list[str]) -> None:
    _parse_safely(text)


@pytest.mark.parametrize("text", [
    "__import__('os').system('echo pwned')", "x.__class__.__mro__", "().__class__.__bases__[0]",
    "getattr(x, '__class__')", "lambda: 1", "[c for c in ()]", "x if x else x", "sin(" * 5000 + "x" + ")" * 5000,
    "x**(10**100)", "exp(" * 60 + "x" + ")" * 60, "1e309*x", "9" * 5000, "x\x00", "x; import os", "x\n+1",
    "sympify('x')", "eval", "Symbol('x')", "x*β", "ｘ", "\u202ex", "x" * 20000,
])
def test_adversarial_expressions(text: str, no_eval: list[str]) -> None:
    _parse_safely(text)


# ------------------------------------------------------------------------------ space files
VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-5, 10**20), st.floats(allow_nan=True), st.text(max_size=12),
              st.sampled_from(["paper", "x", "relu", "sigmoid", "mul", "add", "u1", "u2", "u9", "exp", "nope"])),
    lambda ch: st.one_of(st.lists(ch, max_size=5), st.dictionaries(st.text(max_size=8), ch, max_size=4)),
    max_leaves=10)
FIELDS = ["name", "description", "core_units", "unary", "binary", "beta", "units", "extra"]
SPACE_DICTS = st.one_of(
    st.dictionaries(st.sampled_from(FIELDS), VALUES, max_size=7),
    st.fixed_dictionaries({"core_units": st.integers(0, 5), "unary": st.lists(st.sampled_from(
        ["x", "relu", "sigmoid", "tanh", "exp", "nope", "mul", ""]), max_size=4),
        "binary": st.lists(st.sampled_from(["mul", "add", "max", "relu", "bogus"]), max_size=3)},
        optional={"units": st.lists(st.fixed_dictionaries({"inputs": st.lists(
            st.sampled_from(["x", "u1", "u2", "u3", "u0", "y", ""]), max_size=3)}), max_size=3),
            "beta": st.dictionaries(st.sampled_from(["trainable", "per_channel", "x"]), VALUES, max_size=2)}),
)


def _check_space(fn: Any, where: str) -> None:
    try:
        space = fn()
    except ActsearchError as exc:
        msg = str(exc)
        assert "\n" not in msg and where in msg, msg
        return
    assert space.count() >= 1 and space.core_units >= 1 and space.unary and space.binary


def _toml(data: dict[str, Any]) -> str:
    """TOML for the simple shapes above (JSON scalars and arrays are TOML; tables are inline)."""
    def val(v: Any) -> str:
        if isinstance(v, dict):
            return "{" + ", ".join(f"{json.dumps(str(k))} = {val(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        if v is None:
            return '""'
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, float) and v != v:
            return "nan"
        if isinstance(v, float) and v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        return json.dumps(v)
    return "\n".join(f"{k} = {val(v)}" for k, v in data.items()) + "\n"


@FUZZ
@given(data=SPACE_DICTS)
def test_space_dicts_give_a_space_or_a_one_line_error(data: dict[str, Any], no_eval: list[str]) -> None:
    _check_space(lambda: space_from_dict(data, "fuzz.toml"), "fuzz.toml")


@hsettings(derandomize=True, max_examples=150, deadline=None, database=None,
           suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(text=st.one_of(SPACE_DICTS.map(_toml), st.text(max_size=200),
                      st.binary(max_size=80).map(lambda b: b.decode("latin-1"))))
def test_space_files_give_a_space_or_a_one_line_error(text: str, no_eval: list[str]) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.toml"
        path.write_text(text, encoding="utf-8")
        _check_space(lambda: load_space(path), str(path))


BAD_SPACES = {
    "unknown operator": ('unary = ["x", "frobnicate"]\nbinary = ["add"]\n', "unary"),
    "wrong type": ('core_units = "two"\n', "core_units"),
    "empty ops": ('unary = []\nbinary = ["add"]\n', "unary"),
    "binary as unary": ('unary = ["x"]\nbinary = ["relu"]\n', "binary"),
    "cycle": ('core_units = 2\nunary = ["x"]\nbinary = ["add"]\n[[units]]\ninputs = ["x", "u2"]\n'
              '[[units]]\ninputs = ["x", "u1"]\n', "units[1].inputs"),
    "not toml": ("unary = [\n", "not valid TOML"),
    "beta type": ('[beta]\ntrainable = "yes"\n', "beta.trainable"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPACES))
def test_bad_space_file_via_cli_is_one_line_exit_2(case: str, tmp_path: Path, capsys) -> None:
    text, field = BAD_SPACES[case]
    bad = tmp_path / "bad.toml"
    bad.write_text(text, encoding="utf-8")
    assert main(["search", "--space", str(bad), "--storage", str(tmp_path / "s.db"), "--trials", "1",
                 "--fidelity", "smoke"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("actsearch: error: ") and str(bad) in err and field in err, err
    assert not (tmp_path / "s.db").exists() or os.path.getsize(tmp_path / "s.db") >= 0


# --------------------------------------------------------------------------------- storages
@pytest.mark.parametrize("argv", [
    ["search", "--space", "tiny", "--fidelity", "smoke", "--trials", "1"],
    ["top", "--study", "x"],
    ["worker", "--study", "x"],
])
def test_unreachable_storage_is_one_line_exit_2(argv: list[str], capsys) -> None:
    t0 = time.time()
    assert main(argv + ["--storage", "postgresql+psycopg2://u@127.0.0.1:1/db"]) == 2
    err = capsys.readouterr().err
    assert time.time() - t0 < 10, "connect_timeout should bound this"
    assert err.count("\n") == 1 and "cannot open storage" in err and "127.0.0.1:1" in err, err


# ------------------------------------------------------------------ bad candidates in a study
SPACE2 = space_from_dict({"name": "h", "core_units": 2, "unary": ["x", "exp", "relu"], "binary": ["mul", "add"]})
OVERFLOW = {"u1_unary1": "exp", "u1_unary2": "exp", "u1_binary": "mul", "u2_in1": "u1", "u2_unary1": "exp",
            "u2_in2": "x", "u2_unary2": "x", "u2_binary": "mul"}  # x·exp(exp(2x)): float32 inf beyond x ≈ 2.2
FINE = {"u1_unary1": "relu", "u1_unary2": "x", "u1_binary": "mul", "u2_in1": "u1", "u2_unary1": "x",
        "u2_in2": "x", "u2_unary2": "relu", "u2_binary": "add"}  # relu(x)·x + relu(x)


def _study_with(tmp_path: Path, params: list[dict[str, str]], trials: int, **cfg: Any) -> optuna.Study:
    s = SearchSettings(space="h", dataset="tiny", fidelity="smoke", sampler="random", space_def=space_to_dict(SPACE2))
    url = f"sqlite:///{tmp_path}/h.db"
    base = dict(pruner="none", plots=False, batch=4)
    base.update(cfg)
    run_search(url, "h", s, RunConfig(trials=0, workers=0, **base))  # create; then queue the cases first
    study = load_study(url, "h")
    for p in params:
        study.enqueue_trial(p, user_attrs={"case": "x"})
    return run_search(url, "h", s, RunConfig(trials=trials, **base))


def _by_params(study: optuna.Study, params: dict[str, str]) -> optuna.trial.FrozenTrial:
    return next(t for t in study.trials if t.params == params and "duplicate_of" not in t.user_attrs)


@pytest.mark.slow
def test_overflowing_candidate_fails_alone_in_a_real_study(tmp_path: Path) -> None:
    study = _study_with(tmp_path, [OVERFLOW, FINE], trials=6)
    bad, good = _by_params(study, OVERFLOW), _by_params(study, FINE)
    # Caught on the probe grid before training (degenerate) or by the trainer (diverged): either way
    # a failure with the reason, and the population it would have been trained with goes on.
    assert bad.state == TrialState.FAIL and bad.user_attrs["status"] in ("diverged", "degenerate"), bad.user_attrs
    assert "nan" in bad.user_attrs["fail_reason"] or "inf" in bad.user_attrs["fail_reason"]
    assert good.state == TrialState.COMPLETE and good.value > 0.2  # trained in the same population
    assert all(t.state.is_finished() for t in study.trials) and len(study.trials) >= 6


def test_a_candidate_that_raises_fails_alone(tmp_path: Path, monkeypatch) -> None:
    """The stacked population raises (say, a kernel error on one member): the batch is retried one
    candidate at a time and only the culprit fails, with the reason."""
    def culprit(act: Any) -> bool:
        return "exp(exp" in getattr(act, "text", "").replace(" ", "")

    def population(acts, fidelity, seeds, device="cpu", report=None, dataset=None):
        if any(culprit(a) for a in acts):
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return [TrainResult("ok", 0.5, 0.5, 60, 0.01, [(60, 0.5)], None, 0.1) for _ in acts]

    def one(act, fidelity, seed=0, device="cpu", **kw):
        if culprit(act):
            raise FloatingPointError("overflow in exp")
        return TrainResult("ok", 0.5, 0.5, 60, 0.01, [(60, 0.5)], None, 0.1)

    monkeypatch.setattr(actsearch.evaluation, "train_population", population)
    monkeypatch.setattr(actsearch.evaluation, "train_one", one)
    monkeypatch.setattr("actsearch.expressions.Candidate.degenerate_reason", property(lambda self: None))
    study = _study_with(tmp_path, [OVERFLOW, FINE], trials=4)
    bad, good = _by_params(study, OVERFLOW), _by_params(study, FINE)
    assert bad.state == TrialState.FAIL and bad.user_attrs["status"] == "error", bad.user_attrs
    assert "FloatingPointError" in bad.user_attrs["fail_reason"]
    assert good.state == TrialState.COMPLETE and good.value == 0.5


def test_a_candidate_that_hangs_is_stopped_by_the_time_limit(tmp_path: Path, monkeypatch) -> None:
    """A pathological candidate that would train forever hits the fidelity's time limit: its trial
    is told with status 'timeout' and the study goes on to the next batch."""
    fid = actsearch.evaluation.FIDELITIES["smoke"]
    monkeypatch.setitem(actsearch.evaluation.FIDELITIES, "smoke", fid.replace(time_limit=1e-6, steps=100_000))
    t0 = time.time()
    study = _study_with(tmp_path, [FINE], trials=4, batch=2)
    assert time.time() - t0 < 60
    assert len(study.trials) >= 4 and all(t.state.is_finished() for t in study.trials)
    assert _by_params(study, FINE).user_attrs["status"] == "timeout"
    assert "time limit" in _by_params(study, FINE).user_attrs["note"]


# ------------------------------------------------------------------------------------ export
ALLOWED = (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign, ast.FunctionDef, ast.ClassDef)
EXPORTED = [actsearch.parse(e) for e in ("x*sigmoid(beta*x)", "max(x, tanh(x))")]
HOSTILE_TEXT = st.one_of(st.text(max_size=80), st.sampled_from([
    '"""; import os; os.system("x"); """', "'''\nimport os\n'''", "\\", "\\N{", "\r\n)\nexec('1')#",
    "__import__", "class X: pass", "x\x00", "\u2028import os", "\"\"\"\"\"\"", "def f():\n  pass", "𝔣𝔬𝔬", "1abc", ""]))


@hsettings(derandomize=True, max_examples=120, deadline=None, database=None,
           suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(HOSTILE_TEXT, min_size=2, max_size=2), docs=st.lists(HOSTILE_TEXT, min_size=2, max_size=2),
       header=HOSTILE_TEXT)
def test_exported_module_contains_only_definitions(names: list[str], docs: list[str], header: str) -> None:
    try:
        source = export_source(EXPORTED, names, docs, header or None)
    except ActsearchError:
        return
    tree = ast.parse(source)
    body = tree.body
    assert isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)  # the module docstring
    assert all(isinstance(node, ALLOWED) for node in body[1:]), [type(n).__name__ for n in body]
    for node in ast.walk(tree):  # no call can reach the import machinery or eval
        if isinstance(node, ast.Name):
            assert node.id not in {"eval", "exec", "__import__", "compile", "open", "getattr", "globals"}
    defs = [n for n in body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
    assert sum(isinstance(n, ast.ClassDef) for n in defs) == 2 and all(n.name.isidentifier() for n in defs)
    for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
        assert not fn.decorator_list
