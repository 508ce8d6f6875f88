"""The core CLI commands (ops, show, export --expr): output, files, exit codes, one-line errors."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from actsearch.cli import main
from actsearch.expressions import PAPER_BINARY, PAPER_UNARY

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "actsearch", *args], capture_output=True,
                          text=True, timeout=120)


def _op_names(stdout: str) -> set[str]:
    return {line.split()[0] for line in stdout.splitlines() if line and not line.startswith(("#", "name "))}


def test_ops_lists_all_35_paper_operators(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    names = _op_names(out)
    assert set(PAPER_UNARY) | set(PAPER_BINARY) <= names
    assert len(PAPER_UNARY) + len(PAPER_BINARY) == 35
    assert "x1 / (x2 + ε)" in out and "exp(−β(x1 − x2)²)" in out  # formulas shown


def test_show_prints_latex_key_nearest_and_plots(tmp_path: Path, capsys) -> None:
    png = tmp_path / "out.png"
    assert main(["show", "x*sigmoid(beta*x)", "--plot", str(png)]) == 0
    out = capsys.readouterr().out
    fields = dict(line.split(":", 1) for line in out.splitlines())
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    assert fields["latex"] == r"x \sigma\left(\beta x\right)"
    from actsearch import parse

    assert fields["key"] == parse("x*sigmoid(beta*x)").key
    assert "distance" in fields["nearest"] and fields["nearest"].split()[0] in {"silu", "swish"}
    assert "Swish-like: yes" in fields["swish fit"]
    assert png.read_bytes().startswith(PNG_MAGIC) and png.stat().st_size > 5000


def test_show_a_degenerate_expression_says_why(capsys) -> None:
    assert main(["show", "sin(x)^2 + cos(x)^2"]) == 0
    out = capsys.readouterr().out
    assert "expression:   1" in out and "degenerate:   constant on the probe grid" in out


def test_export_expr_writes_an_importable_module(tmp_path: Path, capsys) -> None:
    out = tmp_path / "acts.py"
    assert main(["export", "--expr", "x*sigmoid(beta*x)", "--expr", "cos(x) - x",
                 "--name", "swish", "--name", "cos_minus_x", "--output", str(out)]) == 0
    assert "wrote" in capsys.readouterr().out
    tree = ast.parse(out.read_text(encoding="utf-8"))
    defs = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert {"swish", "Swish", "cos_minus_x", "CosMinusX"} <= defs


BAD = [
    (["show", "foo(x)"], "unknown operator 'foo'"),
    (["show", "sigmod(x)"], "did you mean 'sigmoid'"),
    (["show", "x+("], "never closed"),
    (["show", "__import__('os')"], "not allowed"),
    (["show", "x.__class__"], "attribute access"),
    (["export", "--expr", "exp(", "--output", "never-written.py"], "cannot parse"),
    (["bogus"], "invalid choice"),
    (["show"], "required"),
    (["show", "x", "--bogus"], "unrecognized arguments"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_in_process_is_one_line_exit_2(argv: list[str], message: str, capsys) -> None:
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse's usage errors exit from inside parse_args
        rc = exc.code
    err = capsys.readouterr().err
    assert rc == 2
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert message in err and "Traceback" not in err


@pytest.mark.parametrize("argv,message", [BAD[3], BAD[6]])  # a hostile expression, a bad command
def test_bad_input_as_a_subprocess_is_one_line_exit_2(argv: list[str], message: str) -> None:
    proc = _cli(*argv)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in proc.stderr


def test_subprocess_show_with_plot(tmp_path: Path) -> None:
    png = tmp_path / "plot.png"
    proc = _cli("show", "x*sigmoid(beta*x)", "--plot", str(png))
    assert proc.returncode == 0, proc.stderr
    assert "latex:" in proc.stdout and "key:" in proc.stdout and "nearest:" in proc.stdout
    assert png.read_bytes().startswith(PNG_MAGIC)


def test_subprocess_ops_into_a_closed_pipe() -> None:
    # Regression: `actsearch ops | head -1` ended in BrokenPipeError's traceback.
    proc = subprocess.run(f'"{sys.executable}" -m actsearch ops | head -1', shell=True,
                          capture_output=True, text=True, timeout=120)
    assert proc.stdout == "# the paper's search space\n"
    assert proc.stderr == ""


def test_in_process_broken_pipe_returns_quietly(monkeypatch, capsys) -> None:
    class ClosedPipe:
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    assert main(["ops"]) == 0
    assert capsys.readouterr().err == ""
