"""The user documentation: the site builds with warnings as errors, every example in README.md and
docs/ runs against the current code (sample output checked: :mod:`tests.docs.examples`), and no
page a user reads speaks of how the project itself is made."""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from actsearch.cli import build_parser
from tests.docs.examples import blocks, check_output, commands, run_page, smoke

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _has_examples(page: Path) -> bool:
    return any(b.skip is None for b in blocks(page.read_text(encoding="utf-8")))


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if _has_examples(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_every_example_runs(page: Path, tmp_path: Path) -> None:
    failures = run_page(page, tmp_path, Path(sys.executable).parent)
    assert not failures, "\n\n".join(failures)


@pytest.mark.slow
def test_the_site_builds_with_warnings_as_errors(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
                           str(ROOT / "docs"), str(tmp_path / "html")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    html = (tmp_path / "html" / "reference" / "cli.html").read_text(encoding="utf-8")
    parser = build_parser()
    commands_ = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for command in commands_:  # generated from the parser: every command, with its options
        assert re.search(rf"<h3>\s*{re.escape(command)}\b", html), command
    assert "--more" in html and "power_hard" in html


# ------------------------------------------------------------------ the harness can fail
def test_a_stale_header_or_row_count_is_caught() -> None:
    real = ("rank   trial  expression  score   test     ood  nearest known\n"
            "   1      #3  x*sigmoid(x)  0.6800  0.6570  —  silu (distance 0.000)\n"
            "   2     ref  relu(x)       0.6600  0.6530  —  relu (distance 0.000)\n")
    assert check_output(real.splitlines(), real) == []
    stale = ["rank   trial  expression  val accuracy  test  nearest known", *real.splitlines()[1:]]
    assert any("fixed line" in p for p in check_output(stale, real))
    more_rows = [*real.splitlines(), "   3      #4  x  0.6  0.6  —  x (distance 0.000)"]
    assert any("3 line(s) shaped" in p for p in check_output(more_rows, real))
    elided = [*real.splitlines()[:2], "…"]
    assert check_output(elided, real) == []
    other_rows = [real.splitlines()[0], "rank 3 (#4)  x  0.6 ± 0.1"]
    assert any("no line shaped 'rank N'" in p for p in check_output(other_rows, real))


def test_blocks_commands_and_skips_are_read_as_documented() -> None:
    page = ("# T\n\n```console\n$ actsearch top --study s \\\n    --k 3\nrank\n```\n\n"
            "<!-- skip-example: needs a server -->\n```console\n$ actsearch dashboard\n```\n\n"
            "```python\nx = 1\n```\n```bash\nnot run\n```\n")
    found = blocks(page)
    assert [(b.lang, b.skip) for b in found] == [("console", None), ("console", "needs a server"), ("python", None)]
    cmds = commands(found[0].text)
    assert cmds[0].line == "actsearch top --study s \\\n    --k 3" and cmds[0].expected == ["rank"]
    assert smoke("actsearch search --study t --fidelity quick --trials 16") == \
        "actsearch search --study t --trials 16 --fidelity smoke --space tiny"
    assert smoke("actsearch ops") == "actsearch ops"


def test_a_failing_example_is_reported(tmp_path: Path) -> None:
    page = tmp_path / "p.md"
    page.write_text("# P\n\n```console\n$ actsearch show 'x*'\n```\n\n```python\nraise ValueError('boom')\n```\n",
                    encoding="utf-8")
    failures = run_page(page, tmp_path, Path(sys.executable).parent)
    assert len(failures) == 2 and "exited 2" in failures[0] and "boom" in failures[1]


def test_sphinx_is_installed_by_the_test_extra() -> None:
    assert shutil.which("sphinx-build", path=str(Path(sys.executable).parent)) or \
        subprocess.run([sys.executable, "-c", "import sphinx, myst_parser, sphinxarg"]).returncode == 0
