"""Text a user reads never speaks of how the project itself is made: no "stop 12", no "session",
no "issue 5", no "SPEC", no path outside the repository. Checked: README.md, CHANGELOG.md, docs/,
every results README, the --help of every sub-command, the CLI's string literals (its messages),
actsearch/errors.py's messages, and every docstring of the package."""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Iterator

import pytest

from actsearch.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "actsearch"

#: (what, pattern): words of the project's own work process, and paths a user's clone does not have.
PROCESS_WORDS = [
    ("a work stop", re.compile(r"\bstops? \d+|\b(this|last|earlier|previous|each|that) stops?\b|\bstop before\b", re.I)),
    ("a work session", re.compile(r"\bsessions?\b", re.I)),
    ("an issue number", re.compile(r"\bissues?( item)? #?\d+|\bissue item\b", re.I)),
    ("the product spec", re.compile(r"\bSPEC\b")),
    ("a path outside the repository", re.compile(r"\bshared/|/work/|/home/\w|/root/")),
]


def scan(where: str, text: str) -> Iterator[str]:
    for n, line in enumerate(text.splitlines(), 1):
        for what, pattern in PROCESS_WORDS:
            m = pattern.search(line)
            if m:
                yield f"{where}:{n}: {what} ({m.group(0)!r}): {line.strip()[:160]}"


def _pages() -> Iterator[tuple[str, str]]:
    files = [ROOT / "README.md", ROOT / "CHANGELOG.md", *(ROOT / "docs").rglob("*.md"),
             *(ROOT / "results").rglob("README.md")]
    for f in files:
        if f.is_file():
            yield str(f.relative_to(ROOT)), f.read_text(encoding="utf-8")


def _help() -> Iterator[tuple[str, str]]:
    parser = build_parser()
    yield "actsearch --help", parser.format_help()
    for action in parser._subparsers._group_actions:  # the sub-commands
        for name, sub in action.choices.items():
            yield f"actsearch {name} --help", sub.format_help()


def _strings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value


def _docstrings(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            doc = ast.get_docstring(node, clean=False)
            if doc:
                yield doc


def _code_text() -> Iterator[tuple[str, str]]:
    for f in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(f.read_text(encoding="utf-8"))
        rel = str(f.relative_to(ROOT))
        messages = f.parent.name == "cli" or f.name == "errors.py"  # what the CLI prints
        texts = _strings(tree) if messages else _docstrings(tree)
        yield rel, "\n".join(texts)


def test_user_facing_text_has_no_process_words() -> None:
    hits = [hit for source in (_pages(), _help(), _code_text()) for where, text in source for hit in scan(where, text)]
    assert not hits, "\n".join(hits)


@pytest.mark.parametrize("line", ["as measured at stop 19", "this session's machine", "issue 5 in one command",
                                  "the SPEC's warning", "see shared/reference/lecture7.txt", "issue item 4c"])
def test_the_check_catches_each_kind(line: str) -> None:
    assert list(scan("x", line))


@pytest.mark.parametrize("line", ["Ctrl-C stops the search", "a stopped worker", "the study's user attributes",
                                  "specification", "results/lecture/README.md"])
def test_the_check_lets_ordinary_words_through(line: str) -> None:
    assert not list(scan("x", line))
