"""The ``actsearch`` command line (also ``python -m actsearch``).

Bad input — an unknown operator, a malformed expression or space file, a missing study — is one
line on stderr and exit status 2, never a traceback. The search commands live in
``search_cli.py`` and the lecture's experiments in ``lecture/``; this module only wires them.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, NoReturn, Sequence

from .errors import ActsearchError

__all__ = ["main", "build_parser"]

EXIT_USAGE = 2


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (the SPEC's rule for bad input)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see --help)\n")


def cmd_ops(args: argparse.Namespace) -> int:
    from .ops import OPS

    groups = {"paper": "the paper's search space", "named": "named activations (usable in expressions)"}
    for group, title in groups.items():
        print(f"# {title}")
        print(f"{'name':<14}{'arity':<7}{'formula':<36}safe domain")
        for op in OPS.values():
            if op.group == group:
                aliases = f"  (also: {', '.join(op.aliases)})" if op.aliases else ""
                print(f"{op.name:<14}{op.arity:<7}{op.formula:<36}{op.safe}{aliases}")
        print()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    from .parser import parse
    from .shape import is_swish_like, nearest, swish_fit

    cand = parse(args.expr)
    canon = cand.canonical
    print(f"expression:   {canon.text}")
    if canon.text != cand.text:
        print(f"as written:   {cand.text}")
    print(f"latex:        {canon.latex}")
    print(f"torch:        {canon.torch_source}")
    print(f"key:          {cand.key}")
    print(f"betas:        {dict(cand.betas) if cand.betas else 'none'}")
    reason = cand.degenerate_reason
    if reason:
        print(f"degenerate:   {reason}")
        return 0
    print(f"nearest:      {nearest(cand)}")
    print(f"swish fit:    {swish_fit(cand)}  → Swish-like: {'yes' if is_swish_like(cand) else 'no'}")
    if args.plot:
        from .plots import plot_function

        plot_function(cand, args.plot)
        print(f"plot:         {args.plot}")
    return 0


def cmd_export_expr(args: argparse.Namespace) -> int:
    from .export import write_module
    from .parser import parse

    cands = [parse(e) for e in args.expr]
    path = write_module(cands, args.output, names=args.name or None)
    print(f"wrote {path} ({len(cands)} activation{'s' * (len(cands) > 1)})")
    return 0


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(module, __package__), func)(args) or 0)

    return run


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="actsearch", description="Search for activation functions "
                "(Ramachandran, Zoph & Le 2017) with sympy, PyTorch and Optuna.")
    from . import __version__

    p.add_argument("--version", action="version", version=f"actsearch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    s = sub.add_parser("ops", help="the operator table (name, arity, formula)")
    s.set_defaults(run=cmd_ops)

    s = sub.add_parser("show", help="parse an expression: canonical form, LaTeX, nearest activation")
    s.add_argument("expr", help='an expression, e.g. "x*sigmoid(beta*x)"')
    s.add_argument("--plot", metavar="FILE.png", help="also plot f and f' to this file")
    s.set_defaults(run=cmd_show)

    from .search_cli import add_search_commands

    add_search_commands(sub, cmd_export_expr)

    from .compare import add_compare_command

    add_compare_command(sub)

    s = sub.add_parser("experiment", help="run one of the lecture's experiments (--list)")
    s.add_argument("name", nargs="?", help="experiment name (see --list)")
    s.add_argument("--list", action="store_true", help="list the experiments")
    s.add_argument("--output", metavar="DIR", help="output folder (default results/lecture/NAME)")
    s.add_argument("--quick", action="store_true", help="a small, fast version (for smoke tests)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--mnist-dir", metavar="DIR", help="folder with MNIST IDX files")
    s.set_defaults(run=_lazy(".lecture", "cmd_experiment"))
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    try:
        return args.run(args)
    except ActsearchError as exc:
        print(f"actsearch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("actsearch: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `actsearch ops | head`: the reader left, which is not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file: nothing to silence
            pass
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
