"""``actsearch ops`` and ``actsearch show``: the operator table, and one expression looked at closely."""
from __future__ import annotations

import argparse
from typing import Any

from ..analysis import is_swish_like, nearest, swish_fit
from ..expressions import CALLABLE, PLOT_SUFFIXES, parse, plot_function
from ..paths import output_file

__all__ = ["add_parsers", "cmd_ops", "cmd_show"]


def cmd_ops(args: argparse.Namespace) -> int:
    groups = {"paper": "the paper's search space", "named": "named activations (usable in expressions)"}
    for group, title in groups.items():
        print(f"# {title}")
        print(f"{'name':<14}{'arity':<7}{'formula':<36}safe domain")
        for op in CALLABLE.values():
            if op.group == group:
                aliases = f"  (also: {', '.join(op.aliases)})" if op.aliases else ""
                print(f"{op.name:<14}{op.arity:<7}{op.formula:<36}{op.safe}{aliases}")
        print()
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    if args.plot:
        output_file(args.plot, "--plot", PLOT_SUFFIXES)
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
        plot_function(cand, args.plot)
        print(f"plot:         {args.plot}")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("ops", help="the operator table (name, arity, formula)")
    s.set_defaults(run=cmd_ops)

    s = sub.add_parser("show", help="parse an expression: canonical form, LaTeX, nearest activation")
    s.add_argument("expr", help='an expression, e.g. "x*sigmoid(beta*x)"')
    s.add_argument("--plot", metavar="FILE.png", help="also plot f and f' to this file (default: no plot)")
    s.set_defaults(run=cmd_show)
