"""The ``actsearch`` command line (also ``python -m actsearch``): every sub-command registered here.

Bad input — an unknown operator, a malformed expression or space file, a missing study — is one
line on stderr and exit status 2, never a traceback. Each command group lives in its own module
(:mod:`.expressions`: ops, show; :mod:`.search`: search, worker, dashboard; :mod:`.study`: top,
verify, export, predict; :mod:`.compare`; :mod:`.noise`; :mod:`.fidelities`; :mod:`.rediscover`;
:mod:`.experiment`); this module wires them.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from typing import Sequence

from .._version import __version__
from ..errors import ActsearchError, one_line
from ..evaluation import THREADS_ENV
from . import compare, experiment, expressions, fidelities, noise, rediscover, search, study
from ._common import EXIT_USAGE, Parser

__all__ = ["main", "build_parser"]

#: The command groups, in the order `actsearch --help` lists their commands.
_GROUPS = (expressions, search, study, compare, noise, fidelities, rediscover, experiment)


def build_parser() -> argparse.ArgumentParser:
    p = Parser(prog="actsearch", description="Search for activation functions "
               "(Ramachandran, Zoph & Le 2017) with sympy, PyTorch and Optuna.")
    p.add_argument("--version", action="version", version=f"actsearch {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for group in _GROUPS:
        group.add_parsers(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return EXIT_USAGE
    if getattr(args, "threads", None) is not None:  # the trainers (and local worker processes) read it
        os.environ[THREADS_ENV] = str(args.threads)
    try:
        return int(args.run(args) or 0)
    except ActsearchError as exc:
        print(f"actsearch: error: {one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM/SIGHUP handled like it (exc.signum)
        signum = getattr(exc, "signum", signal.SIGINT)
        print(f"actsearch: interrupted ({signal.Signals(signum).name})", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # `actsearch ops | head`: the reader left, which is not an error
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except (OSError, ValueError, AttributeError):  # not a real file: nothing to silence
            pass
        return 0
    except OSError as exc:  # a path the checks up front could not foresee (a disk that filled, a race)
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print("actsearch: error: " + one_line(f"{where}{exc.strerror or exc} (check the path and its permissions)"),
              file=sys.stderr)
        return EXIT_USAGE

