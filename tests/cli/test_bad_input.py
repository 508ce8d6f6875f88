"""The hostile inputs of issue 13, each one line on stderr and exit 2 — never a traceback, never
after the training ran (the fuzz in test_fuzz_cli.py covers the space around them)."""
from __future__ import annotations

from pathlib import Path

import pytest

from actsearch.cli import main


def _cases(d: Path) -> list[list[str]]:
    smoke = ["--fidelity", "smoke", "--space", "tiny", "--trials", "0", "--storage", str(d / "s.db")]
    return [
        ["show", "exp(999999)*x"],
        ["export", "--expr", "exp(999999)*x", "--output", str(d / "e.py")],
        ["compare", "exp(999999)*x", "tanh", "--fidelity", "smoke"],
        ["show", "x*exp(exp(exp(exp(10))))"],
        ["search", "--space", "/proc/self/mem", *smoke[:2], "--trials", "0"],
        ["export", "--expr", "x", "--output", str(d)],
        ["export", "--expr", "x", "--output", "/proc/nope/e.py"],
        ["show", "x*sigmoid(x)", "--plot", "/proc/nope/f.png"],
        ["show", "x*sigmoid(x)", "--plot", str(d / "f.xyz")],
        ["verify", "--study", "s", "--csv", "/proc/nope/v.csv", "--storage", str(d / "s.db")],
        ["search", *smoke[:4], "--trials", "0", "--storage", str(d)],
        ["search", *smoke[:6], "--storage", str(d / "not.db")],
        ["search", *smoke[:6], "--storage", "journal:"],
        ["search", *smoke[:6], "--storage", "sqlite://"],
        ["search", *smoke, "--device", "bogus"],
        ["search", *smoke, "--device", "cuda:99"],
        ["search", *smoke, "--seed", "-1"],
        ["verify", "--study", "s", "--seeds", "0"],
        ["verify", "--study", "s", "--batch", "0"],
        ["rediscover", "--trials", "-1"],
        ["rediscover", "--budget-minutes", "-1"],
        ["dashboard", "--port", "99999"],
        ["search", *smoke[:4], "--space", str(d / "u0.toml"), "--trials", "0"],
    ]


@pytest.mark.parametrize("index", range(23))
def test_each_hostile_input_is_one_line_and_exit_2(index: int, tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "not.db").write_text("not a database")
    (tmp_path / "u0.toml").write_text('core_units = 1\n[[units]]\ninputs = ["u0"]\n')
    argv = _cases(tmp_path)[index]
    try:
        rc = main(argv)
    except SystemExit as exc:
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "results").exists()  # failed before writing anything
