"""The package's import graph: one way down the data's path, no circles, no private names across
subpackages, and an import inside a function only with the reason written beside it.

The same check by hand: ``python -m tests.test_architecture`` prints the graph's cycles and
violations (nothing when it is clean).
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "actsearch"

#: What each part of the package may import (besides itself): the data's path, cli → analysis →
#: search → evaluation → expressions → errors (and paths, beside errors); the lecture's experiments sit beside analysis and
#: need only the evaluation layer. The package's own __init__/__main__ are its public face.
_BASE = {"errors", "paths", "_version"}  # the bottom: every layer may raise and check paths
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "_version": set(),
    "paths": {"errors"},
    "expressions": _BASE,
    "evaluation": _BASE | {"expressions"},
    "search": _BASE | {"expressions", "evaluation"},
    "analysis": _BASE | {"expressions", "evaluation", "search"},
    "lecture": _BASE | {"expressions", "evaluation"},
    "cli": _BASE | {"expressions", "evaluation", "search", "analysis", "lecture"},
    "__init__": _BASE | {"expressions", "evaluation"},
    "__main__": {"cli"},
}
#: An import inside a function must say why, in a comment on its line or the line before.
REASONS = ("start-up time", "heavy optional")


def _modules(pkg: Path) -> dict[str, Path]:
    out = {}
    for f in pkg.rglob("*.py"):
        parts = f.relative_to(pkg.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = f
    return out


def _part(module: str) -> str:
    """The layer a module belongs to: its subpackage, or the top-level module's own name."""
    parts = module.split(".")
    if len(parts) == 1:
        return "__init__"
    return parts[1]


def _resolve(module: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if is_pkg else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _graph(pkg: Path = PKG) -> tuple[dict[str, set[str]], list[str]]:
    """Edges module -> imported modules (every import, at any depth), and the violations found."""
    mods = _modules(pkg)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    problems: list[str] = []
    for name, path in mods.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        tree = ast.parse(source)
        in_function = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                       for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
        for node in ast.walk(tree):
            if not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if id(node) in in_function:
                around = " ".join(lines[max(0, node.lineno - 2): node.lineno])
                if not any(r in around for r in REASONS):
                    problems.append(f"{name}:{node.lineno}: import inside a function without a reason "
                                    f"({' or '.join(REASONS)}) in a comment")
            if isinstance(node, ast.Import):
                targets = [(a.name, None) for a in node.names]
            else:
                base = _resolve(name, path.name == "__init__.py", node)
                targets = [(f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base, a.name) for a in node.names]
            for target, imported in targets:
                while target and target not in mods:
                    target = target.rpartition(".")[0]
                if not target.startswith("actsearch") or target == name:
                    continue
                edges[name].add(target)
                src, dst = _part(name), _part(target)
                if src != dst and dst not in ALLOWED.get(src, set()):
                    problems.append(f"{name}:{node.lineno}: {src} may not import {dst} ({target})")
                if (imported and imported.startswith("_") and not imported.startswith("__") and src != dst
                        and target.split(".")[:2] != name.split(".")[:2]):
                    problems.append(f"{name}:{node.lineno}: imports the private {imported} from {target}")
    return edges, problems


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), a package importing its own
    submodules (an __init__ re-export) excepted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10_000)
    for v in edges:
        if v not in index:
            visit(v)
    return [c for c in out if not (len(c) == 2 and (c[1].startswith(c[0] + ".") or c[0].startswith(c[1] + ".")))]


def test_the_import_graph_has_no_cycle() -> None:
    assert _cycles(_graph()[0]) == []


def test_imports_follow_the_data_path_and_say_why_inside_functions() -> None:
    assert _graph()[1] == []


def test_the_check_sees_cycles_upward_and_private_imports(tmp_path: Path) -> None:
    """The checker itself, on a made-up package with one of each fault."""
    pkg = tmp_path / "actsearch"
    files = {
        "__init__.py": "",
        "search/__init__.py": "",
        "search/a.py": "from ..analysis.b import table\nfrom ..evaluation._memory import _tune\n",
        "analysis/__init__.py": "",
        "analysis/b.py": "from ..search import a\ntable = 1\n\ndef f():\n    import json\n",
        "evaluation/__init__.py": "",
        "evaluation/_memory.py": "def _tune(): pass\n\ndef g():\n    import os  # start-up time: fine\n",
    }
    for rel, text in files.items():
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text(text)
    edges, problems = _graph(pkg)
    assert _cycles(edges) == [["actsearch.analysis.b", "actsearch.search.a"]]
    assert sorted(problems) == [
        "actsearch.analysis.b:5: import inside a function without a reason (start-up time or heavy optional) "
        "in a comment",
        "actsearch.search.a:1: search may not import analysis (actsearch.analysis.b)",
        "actsearch.search.a:2: imports the private _tune from actsearch.evaluation._memory",
    ]


if __name__ == "__main__":
    edges, problems = _graph()
    for c in _cycles(edges):
        print("cycle:", " <-> ".join(c))
    for p in problems:
        print(p)
