"""``actsearch rediscover``: does a search of the paper's space find Swish again? (the pipeline is
:func:`actsearch.analysis.rediscover`)."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import optuna

from ..analysis import RediscoverOptions, rediscover, transfer_only, verdict_only
from ..paths import output_dir
from ..expressions import list_spaces
from ..search import MAX_SEEDS, PRUNERS
from ._common import (FIDELITY_CHOICES, SAMPLER_CHOICES, SEED, Progress, add_device_option, add_task_option,
                      add_threads_option, amount, count, device, one_of)

__all__ = ["add_parsers", "cmd_rediscover"]

_DEFAULTS = RediscoverOptions()


def cmd_rediscover(args: argparse.Namespace) -> int:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opts = RediscoverOptions(**{f.name: getattr(args, f.name) for f in dataclasses.fields(RediscoverOptions)})
    device(opts.device)  # a bad --device, --transfer or --output fails before the search
    opts.transfer_fidelities()
    if opts.verdict_only:
        return verdict_only(opts)
    if opts.transfer_only:  # an earlier run's folder: it must exist (transfer_only says so)
        return transfer_only(opts)
    output_dir(opts.out, "--output")
    progress = Progress(quiet=opts.quiet)
    try:
        yes = rediscover(opts, on_start=progress.start, on_trial=progress)
    finally:
        progress.close()
    return 0 if yes or not opts.strict else 3


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("rediscover", help="search the paper's space, verify the top 10, is Swish among the best?",
                       description="Search the paper's space, re-train the top K on fresh paired seeds with ReLU "
                       "and Swish, and say whether a Swish-like function is in the verified top 5. "
                       "--transfer FID[,FID...] adds a transfer check (the verified top 3 + ReLU + Swish "
                       "re-trained on other children); with --transfer-only it runs on an earlier --output "
                       "folder without searching: actsearch rediscover --transfer quick,mnist --transfer-only "
                       "--output results/rediscovery/seed-0")
    d = _DEFAULTS
    s.add_argument("--seed", type=SEED, default=d.seed, metavar="S",
                   help=f"search seed (sampler and training) (default: {d.seed})")
    s.add_argument("--space", default=d.space, metavar="FILE|NAME",
                   help=f"space file or shipped space, {one_of(p.stem for p in list_spaces())} (default: {d.space})")
    s.add_argument("--fidelity", default=d.fidelity, metavar="NAME",
                   help=f"search fidelity, {FIDELITY_CHOICES} (default: {d.fidelity}: the 1-D CNN with BatchNorm "
                        "on 4x the MNIST-1D examples, cosine decay, mean of the last 3 checkpoints — the score with "
                        "the least noise; plain `standard` rewards even functions)")
    add_task_option(s)
    s.add_argument("--sampler", default=d.sampler, metavar="NAME", help=f"{SAMPLER_CHOICES} (default: {d.sampler})")
    s.add_argument("--trials", type=count(1), default=d.trials, metavar="N", help=f"search trials (default: {d.trials})")
    s.add_argument("--budget-minutes", type=amount(0), default=d.budget_minutes, metavar="M",
                   help="stop the search (between batches) after this many minutes; the verification still runs "
                        "(default: no time limit)")
    s.add_argument("--seeds", type=count(1, MAX_SEEDS), default=d.seeds, metavar="N",
                   help=f"training seeds per candidate during the search (default: {d.seeds})")
    s.add_argument("--verify-k", type=count(1), default=d.verify_k, metavar="K",
                   help=f"candidates re-verified (default: {d.verify_k})")
    s.add_argument("--verify-seeds", type=count(1, MAX_SEEDS), default=d.verify_seeds, metavar="N",
                   help=f"fresh seeds for the verification (default: {d.verify_seeds})")
    s.add_argument("--verify-fidelity", default=d.verify_fidelity, metavar="NAME",
                   help=f"verification fidelity, {FIDELITY_CHOICES} (default: the search's)")
    s.add_argument("--verify-batch", type=count(1, 4096), default=d.verify_batch, metavar="K",
                   help=f"networks trained together when verifying (default: {d.verify_batch})")
    s.add_argument("--batch", type=count(1, 4096), default=d.batch, metavar="K",
                   help=f"candidates trained together in the search (default: {d.batch})")
    s.add_argument("--pruner", default=d.pruner, metavar="NAME", help=f"{one_of(PRUNERS)} (default: {d.pruner})")
    add_device_option(s)
    s.add_argument("--storage", default=d.storage, metavar="URL", help="Optuna storage (default: OUTPUT/study.db)")
    s.add_argument("--study", default=d.study, metavar="NAME", help="study name (default: derived from the options)")
    s.add_argument("--output", default=d.output, metavar="DIR",
                   help="output folder (default: results/rediscovery/FIDELITY-seed-S)")
    s.add_argument("--transfer", metavar="FID[,FID...]", default=d.transfer,
                   help="transfer check: re-train the verified top K (--transfer-k) with ReLU and Swish at these "
                        "fidelities (other children, e.g. quick,mnist: the MLP on MNIST-1D, a 2-D CNN on real "
                        "MNIST); writes transfer.md/csv (default: no transfer check)")
    s.add_argument("--transfer-only", action="store_true",
                   help="run only the transfer check on an existing --output folder (its study.db or verify.csv), "
                        "without searching again; writes transfer_command.txt (default: off)")
    s.add_argument("--verdict-only", action="store_true",
                   help="print an earlier --output folder's verdict read both ways (f alone; f or its point "
                        "reflection -f(-x)) from its verification, without training; writes verdict_reflection.txt "
                        "and verdict_reflection_command.txt (default: off)")
    s.add_argument("--transfer-k", type=count(1), default=d.transfer_k, metavar="K",
                   help=f"verified candidates transferred (default: {d.transfer_k})")
    s.add_argument("--transfer-seeds", type=count(1, MAX_SEEDS), default=d.transfer_seeds, metavar="N",
                   help=f"paired seeds per transfer child (default: {d.transfer_seeds}; the verification's seeds, "
                        "extended)")
    s.add_argument("--transfer-batch", type=count(1, 4096), default=d.transfer_batch, metavar="K",
                   help=f"networks trained together in the transfer check (default: {d.transfer_batch}: on a 2-core "
                        "CPU larger populations of 2-D CNNs were slower per network)")
    s.add_argument("--strict", action="store_true", help="exit status 3 when the verdict is no (default: exit 0)")
    s.add_argument("--quiet", action="store_true", help="no progress line (default: one line per trial)")
    add_threads_option(s)
    s.set_defaults(run=cmd_rediscover)

