"""``actsearch rediscover``: does a search of the paper's space find Swish again? (the pipeline is
:func:`actsearch.analysis.rediscover`)."""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any

import optuna

from ..analysis import RediscoverOptions, rediscover, transfer_only, verdict_only
from ..paths import output_dir
from ..search import MAX_SEEDS
from ._common import SEED, Progress, add_task_option, add_threads_option, amount, count, device

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
    s.add_argument("--seed", type=SEED, default=_DEFAULTS.seed, help="search seed (sampler and training) (default 0)")
    s.add_argument("--space", default=_DEFAULTS.space, help="space (default paper-1)")
    s.add_argument("--fidelity", default=_DEFAULTS.fidelity,
                   help="search fidelity (default power: the 1-D CNN with BatchNorm on 4x the MNIST-1D examples, "
                        "cosine decay, mean of the last 3 checkpoints — the score with the least noise, see "
                        "README 'Noise'; plain `standard` rewards even functions)")
    add_task_option(s)
    s.add_argument("--sampler", default=_DEFAULTS.sampler, help="sampler (default tpe)")
    s.add_argument("--trials", type=count(1), default=_DEFAULTS.trials, help="search trials (default 120)")
    s.add_argument("--budget-minutes", type=amount(0), default=_DEFAULTS.budget_minutes,
                   help="stop the search (between batches) after this many minutes; verify still runs")
    s.add_argument("--seeds", type=count(1, MAX_SEEDS), default=_DEFAULTS.seeds, help="training seeds per candidate during the search (default 1)")
    s.add_argument("--verify-k", type=count(1), default=_DEFAULTS.verify_k, help="candidates re-verified (default 10)")
    s.add_argument("--verify-seeds", type=count(1, MAX_SEEDS), default=_DEFAULTS.verify_seeds, help="fresh seeds for the verification (default 8)")
    s.add_argument("--verify-fidelity", default=_DEFAULTS.verify_fidelity, help="verification fidelity (default: the search's)")
    s.add_argument("--verify-batch", type=count(1, 4096), default=_DEFAULTS.verify_batch, help="networks trained together when verifying")
    s.add_argument("--batch", type=count(1, 4096), default=_DEFAULTS.batch, help="candidates trained together in the search (default 8)")
    s.add_argument("--pruner", default=_DEFAULTS.pruner, help="median | hyperband | none (default median)")
    s.add_argument("--device", default=_DEFAULTS.device)
    s.add_argument("--storage", default=_DEFAULTS.storage, help="Optuna storage (default: OUTPUT/study.db)")
    s.add_argument("--study", default=_DEFAULTS.study, help="study name (default: derived from the options)")
    s.add_argument("--output", default=_DEFAULTS.output, help="output folder (default results/rediscovery/FIDELITY-seed-S)")
    s.add_argument("--transfer", metavar="FID[,FID...]", default=_DEFAULTS.transfer,
                   help="transfer check: re-train the verified top K (--transfer-k) with ReLU and Swish at these "
                        "fidelities (other children, e.g. quick,mnist: the MLP on MNIST-1D, a 2-D CNN on real "
                        "MNIST); writes transfer.md/csv")
    s.add_argument("--transfer-only", action="store_true",
                   help="run only the transfer check on an existing --output folder (its study.db or verify.csv), "
                        "without searching again; writes transfer_command.txt")
    s.add_argument("--verdict-only", action="store_true",
                   help="print an earlier --output folder's verdict read both ways (f alone; f or its point "
                        "reflection -f(-x)) from its verification, without training; writes verdict_reflection.txt "
                        "and verdict_reflection_command.txt")
    s.add_argument("--transfer-k", type=count(1), default=_DEFAULTS.transfer_k, help="verified candidates transferred (default 3)")
    s.add_argument("--transfer-seeds", type=count(1, MAX_SEEDS), default=_DEFAULTS.transfer_seeds,
                   help="paired seeds per transfer child (default 5; the verification's seeds, extended)")
    s.add_argument("--transfer-batch", type=count(1, 4096), default=_DEFAULTS.transfer_batch,
                   help="networks trained together in the transfer check (default 5: on a 2-core CPU larger "
                        "populations of 2-D CNNs were slower per network)")
    s.add_argument("--strict", action="store_true", help="exit status 3 when the verdict is no")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    add_threads_option(s)
    s.set_defaults(run=cmd_rediscover)

