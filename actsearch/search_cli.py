"""CLI wiring of the search commands: search, top, verify, export, worker, dashboard.

The argument names are fixed by the SPEC; each command's work happens in the module it names.
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

__all__ = ["add_search_commands"]

Command = Callable[[argparse.Namespace], int]


def _not_yet(name: str) -> Command:
    def run(args: argparse.Namespace) -> int:
        from .errors import ActsearchError

        raise ActsearchError(f"'actsearch {name}' is not available in this build yet")

    return run


def _storage(s: argparse.ArgumentParser) -> None:
    s.add_argument("--storage", metavar="URL", default=None,
                   help="Optuna storage URL (default: SQLite under results/)")


def add_search_commands(sub: Any, cmd_export_expr: Command) -> None:
    s = sub.add_parser("search", help="the main job: search a space for activation functions")
    s.add_argument("--space", default="paper-1", help="space file or shipped space name")
    s.add_argument("--dataset", default=None, help="dataset (default: the fidelity's, mnist1d)")
    s.add_argument("--fidelity", default="standard", help="smoke | quick | standard | full")
    s.add_argument("--trials", type=int, default=None, help="number of trials (default: budgeted)")
    s.add_argument("--sampler", default="tpe", help="tpe | random | exhaustive | nsga2 | evolution")
    _storage(s)
    s.add_argument("--study", default=None, help="study name (default: derived from the options)")
    s.add_argument("--workers", type=int, default=1, help="local worker processes")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    s.set_defaults(run=_not_yet("search"))

    s = sub.add_parser("top", help="leaderboard of a study")
    s.add_argument("--study", required=True)
    _storage(s)
    s.add_argument("--k", type=int, default=10)
    s.set_defaults(run=_not_yet("top"))

    s = sub.add_parser("verify", help="re-train the top K at higher fidelity over several seeds")
    s.add_argument("--study", required=True)
    _storage(s)
    s.add_argument("--k", type=int, default=5)
    s.add_argument("--seeds", type=int, default=5)
    s.add_argument("--fidelity", default="full")
    s.add_argument("--device", default="auto")
    s.set_defaults(run=_not_yet("verify"))

    s = sub.add_parser("export", help="write the top K (or given expressions) as a Python module")
    s.add_argument("--study", help="study to export from")
    _storage(s)
    s.add_argument("--k", type=int, default=3)
    s.add_argument("--output", required=True, metavar="FILE.py")
    s.add_argument("--expr", action="append", default=[],
                   help="export this expression instead of a study's top K (repeatable)")
    s.add_argument("--name", action="append", default=[], help="name for each --expr")
    s.set_defaults(run=lambda a: cmd_export_expr(a) if a.expr else _not_yet("export")(a))

    s = sub.add_parser("worker", help="one worker of a distributed search")
    _storage(s)
    s.add_argument("--study", required=True)
    s.add_argument("--device", default="auto")
    s.add_argument("--trials", type=int, default=None)
    s.set_defaults(run=_not_yet("worker"))

    s = sub.add_parser("dashboard", help="optuna-dashboard on the storage, with artifacts")
    _storage(s)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8080)
    s.set_defaults(run=_not_yet("dashboard"))
