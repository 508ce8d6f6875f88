"""Every sub-command, fuzzed through the CLI entry point in-process (hypothesis, derandomized).

Generated argv mix valid and invalid option values: numbers out of range or not numbers at all,
paths to folders, to missing or unwritable places, under a file, with a NUL byte, storage URLs of
every scheme (in-memory SQLite, empty journal, unreachable servers, unknown drivers, files that
are not databases), unicode. The only acceptable outcomes are exit 0 with the command's output, or
exit 2 with exactly one line on stderr; any other exception, or an exit 1, fails. Trainings are
tiny (smoke fidelity, the tiny space), so the whole file runs in well under a minute.
"""
from __future__ import annotations

import contextlib
import io
import os
from typing import Any, Callable

import optuna
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actsearch.cli import main
from actsearch.lecture import EXPERIMENTS, Experiment

optuna.logging.set_verbosity(optuna.logging.WARNING)
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=30,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

#: Strange text: unicode, control characters, shell-looking, very long.
TEXT = st.one_of(st.text(max_size=12), st.sampled_from(["", " ", "ü∂ß", "\t", "-", "--", "x" * 300, "\x00",
                                                         "$(rm -rf /)", "名前", "🙂"]))
NUMBER = st.one_of(st.integers(-3, 4).map(str), st.sampled_from(
    ["0", "-1", "65536", "99999", str(2**31), str(2**40), "1e3", "1.5", "nan", "inf", "-inf", "abc", "", "٣", "0x10"]))
EXPR = st.one_of(st.sampled_from(["x*sigmoid(beta*x)", "relu(x)", "max(x, tanh(x))", "cos(x) - x", "exp(999999)*x",
                                  "x*exp(exp(exp(exp(10))))", "1/x", "x", "beta", "gelu", "tanh", "__import__('os')",
                                  "x**1000", "sinc(x)+x", "log(x)", "(", "x*"]), TEXT)
#: Presets that train in milliseconds, and names that are none (a real preset here would cost minutes).
FIDELITY = st.sampled_from(["smoke", "smok", "", "SMOKE", " smoke", "standrad"])


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A working folder with one of each kind of path, and a small study to read and join."""
    d = tmp_path_factory.mktemp("fuzz")
    (d / "folder").mkdir()
    (d / "notdb.db").write_text("not a database")
    (d / "space.toml").write_text('name = "f"\nunary = ["x", "tanh", "relu"]\nbinary = ["add", "max"]\n')
    (d / "bad.toml").write_text('core_units = 1\n[[units]]\ninputs = ["u0"]\n')
    db = str(d / "study.db")
    cwd = os.getcwd()
    os.chdir(d)
    try:  # a study with a budget of 2 for `top`, `verify`, `export`, `worker`
        assert _run(["search", "--space", "tiny", "--fidelity", "smoke", "--trials", "2", "--storage", db,
                     "--study", "s", "--no-plots", "--quiet"])[0] == 0
        # `predict` needs a few trained functions: a second study of 8
        assert _run(["search", "--space", "tiny", "--fidelity", "smoke", "--trials", "8", "--storage", db,
                     "--study", "p", "--sampler", "random", "--pruner", "none", "--no-plots", "--quiet"])[0] == 0
    finally:
        os.chdir(cwd)
    return {"dir": str(d), "db": db}


def _paths(place: dict[str, str], suffix: str) -> st.SearchStrategy[str]:
    """Half the time a path that works (new folders included), else one of each way a path fails."""
    d = place["dir"]
    good = st.sampled_from([f"{d}/out{suffix}", f"{d}/new/deeper/out{suffix}", f"{d}/ü名{suffix}"])
    bad = st.sampled_from([f"{d}/folder", f"{d}/notdb.db/x{suffix}", f"/proc/nope/x{suffix}", f"/proc/x{suffix}",
                           f"{d}/a\x00b{suffix}", "", f"{d}/out.xyz", "/", f"{d}/" + "n" * 300 + suffix])
    return st.one_of(good, bad)


def _storages(place: dict[str, str]) -> st.SearchStrategy[str]:
    """Half the time the fuzz study's storage (as a path or a URL), else every scheme's way to fail
    (and new files, which work for `search` and are "no storage" elsewhere)."""
    d = place["dir"]
    good = st.sampled_from([place["db"], f"sqlite:///{place['db']}"])
    other = st.sampled_from(["sqlite://", "sqlite:///:memory:", f"{d}/fresh.db", f"journal:{d}/j.log", f"{d}/j.log",
                             "journal:", f"{d}/folder", f"{d}/notdb.db", f"journal:{d}/notdb.db",
                             "postgresql://u@127.0.0.1:1/x", "mysql://u@127.0.0.1:1/x", "foo://bar",
                             "http://example.com", f"{d}/notdb.db/x.db", ""])
    return st.one_of(good, other)


#: Exit codes seen per command (the test checks that each command was driven to success too).
OUTCOMES: dict[str, list[Any]] = {}


def _run(argv: list[str]) -> tuple[Any, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse: --help (0) and usage errors (2)
            rc = exc.code
    return rc, out.getvalue(), err.getvalue()


def _check(argv: list[str], expect: str, place: dict[str, str]) -> None:
    cwd = os.getcwd()
    os.chdir(place["dir"])  # defaults (results/…) land in the fuzz folder, never in the repository
    try:
        rc, out, err = _run(argv)
    finally:
        os.chdir(cwd)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    OUTCOMES.setdefault(argv[0], []).append(rc)
    if rc == 2:
        assert len(lines) == 1 and "Traceback" not in err, f"{argv}: exit 2 with {len(lines)} lines:\n{err}"
    else:
        assert rc == 0, f"{argv}: exit {rc!r}\n{err}"
        assert "--help" in argv or "-h" in argv or expect in out, f"{argv}: exit 0 without {expect!r}:\n{out}"


def _options(spec: dict[str, st.SearchStrategy[str]]) -> st.SearchStrategy[list[str]]:
    """A random subset of the options, each with a generated value (a flag without a value: a bool)."""
    def build(chosen: list[tuple[str, str | None]]) -> list[str]:
        return [tok for flag, value in chosen for tok in ([flag] if value is None else [flag, value])]

    items = [st.tuples(st.just(flag), strat) for flag, strat in spec.items()]
    return st.lists(st.one_of(*items), max_size=4, unique_by=lambda t: t[0]).map(build)


FLAG = st.none()


def _command(draw: Callable[..., Any], place: dict[str, str], name: str) -> tuple[list[str], str]:
    """argv and the text its output holds on success, for sub-command ``name``."""
    storage, csv, py, png = _storages(place), _paths(place, ".csv"), _paths(place, ".py"), _paths(place, ".png")
    garbage = draw(st.lists(TEXT, max_size=1))  # sometimes a stray argument
    if name == "ops":
        return ["ops", *garbage], "# the paper"
    if name == "show":
        return ["show", draw(EXPR), *draw(_options({"--plot": png}))], "key:"
    if name == "export":
        opts = draw(_options({"--name": TEXT, "--k": NUMBER, "--storage": storage}))
        source = draw(st.one_of(st.lists(EXPR, min_size=1, max_size=2).map(
            lambda es: [tok for e in es for tok in ("--expr", e)]), st.sampled_from([["--study", "s"], ["--study", "nope"],
                                                                                     []])))
        if "--storage" not in opts:
            opts += ["--storage", place["db"]]
        return ["export", "--output", draw(py), *source, *opts], "wrote"
    if name == "top":
        opts = draw(_options({"--k": NUMBER}))
        return ["top", "--study", draw(st.sampled_from(["s", "s", "nope", "", "ü"])), "--storage", draw(storage),
                *opts], "study"
    if name == "search":
        opts = draw(_options({"--space": st.sampled_from(["tiny", f"{place['dir']}/space.toml",
                                                           f"{place['dir']}/bad.toml", "nope", "/proc/self/mem",
                                                           f"{place['dir']}/folder", "/dev/zero"]),
                              "--trials": st.sampled_from(["0", "1", "2", "-1", "abc", "1e9"]),
                              "--seed": NUMBER, "--seeds": st.sampled_from(["1", "2", "0", "1001", "x"]),
                              "--sampler": st.sampled_from(["random", "tpe", "evolution", "exhaustive", "nsga2",
                                                            "surrogate", "cmaes", ""]),
                              "--pruner": st.sampled_from(["none", "median", "hyperband", "asha"]),
                              "--batch": st.sampled_from(["1", "4", "0", "-2", "x"]),
                              "--device": st.sampled_from(["cpu", "auto", "cuda", "cuda:7", "bogus", "", "cpu:0"]),
                              "--dataset": st.sampled_from(["tiny", "TINY", "cifar", ""]),
                              "--workers": st.sampled_from(["0", "1", "-1", "many"]),
                              "--cost": st.sampled_from(["time", "ops", "money"]),
                              "--artifacts": st.sampled_from([f"{place['dir']}/art", f"{place['dir']}/notdb.db",
                                                              "/proc/nope/art"]),
                              "--storage": storage, "--study": st.sampled_from(["s", "fresh", "", "ü名"])}))
        base = ["search", "--fidelity", draw(FIDELITY), "--no-plots", "--quiet"]
        if "--trials" not in opts:
            base += ["--trials", "1"]
        if "--space" not in opts:
            base += ["--space", "tiny"]
        if "--storage" not in opts:
            base += ["--storage", f"{place['dir']}/search.db"]
        return base + opts, "study"
    if name == "predict":
        opts = draw(_options({"--storage": storage}))
        opts += [] if "--storage" in opts else ["--storage", place["db"]]
        return ["predict", *draw(st.lists(EXPR, min_size=1, max_size=3)),
                "--study", draw(st.sampled_from(["p", "p", "s", "nope", ""])), *opts], "±"
    if name == "verify":
        opts = draw(_options({"--k": NUMBER, "--seeds": st.sampled_from(["1", "2", "0", "x"]), "--csv": csv,
                              "--fidelity": FIDELITY, "--device": st.sampled_from(["cpu", "bogus", "cuda"]),
                              "--batch": NUMBER, "--storage": storage}))
        opts += [] if "--seeds" in opts else ["--seeds", "1"]
        opts += [] if "--fidelity" in opts else ["--fidelity", "smoke"]
        opts += [] if "--storage" in opts else ["--storage", place["db"]]
        return ["verify", "--study", draw(st.sampled_from(["s", "nope"])), "--k", "1", *opts], "saved:"
    if name == "compare":
        opts = draw(_options({"--seeds": st.sampled_from(["2", "0", "-1", "x", "1"]), "--seed-base": NUMBER,
                              "--batch": NUMBER, "--device": st.sampled_from(["cpu", "bogus"]),
                              "--dataset": st.sampled_from(["tiny", "nope"]), "--csv": csv}))
        opts += [] if "--seeds" in opts else ["--seeds", "2"]
        return ["compare", *draw(st.lists(EXPR, min_size=1, max_size=2)), "--fidelity", draw(FIDELITY), *opts], "relu"
    if name == "worker":
        opts = draw(_options({"--trials": st.sampled_from(["0", "1", "-1", "x"]), "--batch": NUMBER,
                              "--device": st.sampled_from(["cpu", "bogus"]), "--storage": storage,
                              "--pruner": st.sampled_from(["none", "bogus"])}))
        opts += [] if "--trials" in opts else ["--trials", "0"]
        opts += [] if "--storage" in opts else ["--storage", place["db"]]
        return ["worker", "--study", draw(st.sampled_from(["s", "nope"])), "--quiet", "--no-plots", *opts], "worker"
    if name == "dashboard":
        opts = draw(_options({"--port": NUMBER, "--host": st.sampled_from(["127.0.0.1", "256.1.1.1", "nohost.invalid"]),
                              "--storage": storage, "--artifacts": _paths(place, "")}))
        return ["dashboard", *opts], "optuna-dashboard on"
    if name == "rediscover":
        opts = draw(_options({"--trials": st.sampled_from(["1", "0", "-1"]), "--budget-minutes": NUMBER,
                              "--seed": NUMBER, "--verify-seeds": st.sampled_from(["2", "0", "1"]),
                              "--transfer": st.sampled_from(["smoke", "nosuch", ",", ""]), "--transfer-only": FLAG,
                              "--device": st.sampled_from(["cpu", "bogus"]),
                              "--output": _paths(place, ""), "--strict": FLAG}))
        base = ["rediscover", "--space", "tiny", "--fidelity", "smoke", "--verify-k", "1", "--verify-batch", "4",
                "--quiet"]
        base += [] if "--trials" in opts else ["--trials", "1"]
        base += [] if "--verify-seeds" in opts else ["--verify-seeds", "2"]
        base += [] if "--output" in opts else ["--output", f"{place['dir']}/rediscover"]
        return base + opts, "verify"
    if name == "experiment":
        opts = draw(_options({"--list": FLAG, "--seed": NUMBER, "--output": _paths(place, ""),
                              "--mnist-dir": st.sampled_from([f"{place['dir']}/folder", "/nope"])}))
        return ["experiment", draw(st.sampled_from(["forward-stats", "forward_stats", "nope", ""])), *opts], "forward-stats"
    raise AssertionError(name)


COMMANDS = ["ops", "show", "export", "top", "search", "verify", "compare", "worker", "dashboard", "rediscover",
            "experiment", "predict"]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_subcommand_answers_bad_input_with_one_line(name: str, place: dict[str, str]) -> None:
    examples = {"ops": 10, "show": 40, "export": 30, "top": 20, "worker": 15, "dashboard": 20, "experiment": 5,
                "search": 20, "verify": 8, "compare": 8, "rediscover": 4, "predict": 20}[name]

    @settings(FUZZ, max_examples=examples)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        argv, expect = _command(data.draw, place, name)
        _check(argv, expect, place)

    real = EXPERIMENTS["forward-stats"]

    def quick(ctx: Any) -> Any:  # forward-stats at its --quick size, whatever the flags (its own test runs it)
        ctx.quick = True
        return real.run(ctx)

    with pytest.MonkeyPatch.context() as mp:
        # a dashboard that would start is served, then stopped at once, as Ctrl-C would
        mp.setattr("optuna_dashboard.run_server", _interrupt)
        mp.setitem(EXPERIMENTS, "forward-stats", Experiment(real.name, real.summary, quick))
        run()
    seen = OUTCOMES.get(name, [])
    assert 0 in seen and 2 in seen, f"{name}: the fuzz reached only exit codes {sorted(set(map(str, seen)))}"


def _interrupt(*args: Any, **kwargs: Any) -> None:
    raise KeyboardInterrupt
