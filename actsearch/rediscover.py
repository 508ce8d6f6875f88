"""``actsearch rediscover``: does a search of the paper's space find Swish again?

One command = the issue-5 recipe: search a space (default the paper's 1-core-unit space on
MNIST-1D with the `standard_bn` child: the 1-D CNN with BatchNorm, as the paper's ResNets had; the
plain CNN rewards even functions), re-train its top ``K`` (default 10) on fresh seeds with ReLU and Swish
(:func:`actsearch.leaderboard.verify`, a paired design), and answer one question:

    Swish-like in verified top 5: yes/no (which, β, distance); vs ReLU: Δ mean ± std, p=…

"Swish-like" is :func:`actsearch.shape.is_swish_like`. The verified top 5 is the top 5 *of the
search's own candidates* by verified test accuracy: the reference activations the search enqueues
(ReLU, Swish, SiLU, GELU …) are never counted as found. A trial the sampler proposed itself that
turned out to be a reference (a duplicate of it) is reported on its own line, not as a "yes".

Outputs (``--output``, default ``results/rediscovery/FIDELITY-seed-S``): leaderboard.md/csv, verify.md/csv,
shapes.png (top 5 vs Swish), progress.png (best validation accuracy vs trial), top3.py (the top 3
as a module), verdict.txt and command.txt.

Transfer check (``--transfer FID[,FID...]``): does the verified ranking hold on another child? The
top ``--transfer-k`` (default 3) of the search's own candidates by verified test accuracy, plus ReLU
and Swish, are re-trained at each fidelity (e.g. ``quick``: the MLP on MNIST-1D; ``mnist``: a 2-D
CNN on real MNIST) over ``--transfer-seeds`` paired seeds (:func:`actsearch.compare.transfer`);
transfer.md gives per child the table, the order of the functions, Kendall's τ and Spearman's ρ
against the verified order, and whether each of the top k still beats ReLU. With
``--transfer-only`` it runs on an existing ``--output`` folder without searching again, from its
study.db (user attribute ``verify``) or verify.csv, and writes transfer.md, transfer.csv and
transfer_command.txt::

    actsearch rediscover --transfer quick,mnist --transfer-only --output results/rediscovery/seed-0
"""
from __future__ import annotations

import argparse
import csv
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any, Sequence

__all__ = ["add_rediscover_command", "cmd_rediscover", "verdict", "swish_like_info", "STRICT_BETA_MIN"]

#: is_swish_like accepts a scaled x·σ(βx) with small β, which over [−5, 5] is nearly linear with a
#: kink: x + max(x, 0) fits 3·x·σ(0.18x) at distance 0.076. The verdict reports a strict reading too.
STRICT_BETA_MIN = 0.5


def swish_like_info(expression: str) -> tuple[bool, float | None, float]:
    """(is Swish-like, fitted β, Swish distance) of an expression."""
    from .parser import parse
    from .shape import is_swish_like, swish_fit

    cand = parse(expression)
    try:
        fit = swish_fit(cand)
        return is_swish_like(cand), fit.beta, fit.distance
    except Exception:  # an expression the shape analysis cannot evaluate is simply not Swish-like
        return False, None, math.inf


def _vs_relu(rec: dict[str, Any]) -> str:
    mean, std = rec.get("diff_vs_relu"), rec.get("diff_std")
    if mean is None:
        return "vs ReLU: —"
    p = f"{rec['p_value']:.3g}" if rec.get("p_value") is not None else "—"
    sd = f" ± {std:.4f}" if std is not None else ""
    return f"vs ReLU: Δ {mean:+.4f}{sd} (paired over {len(rec['test_accuracies'])} seeds), p={p}"


def verdict(records: Sequence[dict[str, Any]], top: int = 5) -> tuple[bool, list[str]]:
    """(yes/no, report lines) from :func:`actsearch.leaderboard.verify` records."""
    relu = next(r for r in records if r["name"] == "relu")
    swish = next((r for r in records if r["name"] == "swish"), None)
    found = [r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None]
    found.sort(key=lambda r: -r["test_mean"])
    best5 = found[:top]
    hits = [(r, *swish_like_info(r["expression"])) for r in best5]
    hits = [h for h in hits if h[1]]
    lines = []
    strict = [h for h in hits if h[2] is not None and h[2] >= STRICT_BETA_MIN]
    if hits:
        r, _, beta, dist = hits[0]
        pos = best5.index(r) + 1
        lines.append(f"Swish-like in verified top {top}: yes (#{pos} {r['expression']} [{r['name']}], "
                     f"β={beta:.2f}, distance {dist:.3f}); {_vs_relu(r)}")
        for r2, _, b2, d2 in hits[1:]:
            lines.append(f"  also Swish-like: #{best5.index(r2) + 1} {r2['expression']} (β={b2:.2f}, distance {d2:.3f})")
    else:
        lines.append(f"Swish-like in verified top {top}: no (verified top {top}: "
                     + "; ".join(r["expression"] for r in best5) + ")")
    if hits:
        lines.append(f"strict (fitted β ≥ {STRICT_BETA_MIN}, i.e. not a near-linear leaky-ReLU-like match): "
                     + (f"yes ({strict[0][0]['expression']}, β={strict[0][2]:.2f})" if strict else "no"))
    if best5:
        lines.append(f"best found: {best5[0]['expression']} {best5[0]['test_mean']:.4f}; {_vs_relu(best5[0])}")
    if swish is not None and swish["test_mean"] is not None:
        lines.append(f"reference swish x*sigmoid(beta*x): {swish['test_mean']:.4f}; {_vs_relu(swish)}")
    if relu["test_mean"] is not None:
        lines.append(f"reference relu: {relu['test_mean']:.4f} ± {relu['test_std'] or 0:.4f}")
    return bool(hits), lines


def _proposed_references(study: Any) -> list[str]:
    """References the sampler proposed itself (trials that were duplicates of an enqueued reference)."""
    by_number = {t.number: t for t in study.get_trials(deepcopy=False)}
    out = []
    for t in study.get_trials(deepcopy=False):
        orig = by_number.get(t.user_attrs.get("duplicate_of", -1))
        if orig is not None and orig.user_attrs.get("reference") and not t.user_attrs.get("reference"):
            out.append(f"#{t.number} = {orig.user_attrs['reference']}")
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["empty"])
        w.writeheader()
        w.writerows(rows)


def _progress_plot(study: Any, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.trial import TrialState

    from .shape import is_swish_like

    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    xs, best, cur, sw = [], [], -math.inf, []
    for t in trials:
        if t.state == TrialState.COMPLETE and t.values:
            cur = max(cur, float(t.values[0]))
        xs.append(t.number)
        best.append(cur if math.isfinite(cur) else math.nan)
    fig, ax = plt.subplots(figsize=(7, 3.5), constrained_layout=True)
    ax.plot(xs, best, color="C0", label="best validation accuracy so far")
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.values and "duplicate_of" not in t.user_attrs]
    ax.scatter([t.number for t in done], [t.values[0] for t in done], s=8, color="0.6", label="trained trial")
    space = None
    try:
        from .storage import read_settings

        space = read_settings(study).load_space()
        sw = [t for t in done if is_swish_like(space.build(t.params))]
    except Exception:
        sw = []
    if sw:
        ax.scatter([t.number for t in sw], [t.values[0] for t in sw], s=18, color="C3", label="Swish-like")
    ax.set_xlabel("trial")
    ax.set_ylabel("validation accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _command_line(args: argparse.Namespace, keys: Sequence[str] | None = None) -> str:
    """The command with every option spelled out (``keys``: only these), for command.txt."""
    opts = {k: v for k, v in vars(args).items() if k not in ("run", "command") and v not in (None, False)
            and (keys is None or k in keys)}
    return "actsearch rediscover " + " ".join(
        f"--{k.replace('_', '-')}" + ("" if v is True else f" {shlex.quote(str(v))}") for k, v in opts.items())


def _transfer_fidelities(args: argparse.Namespace) -> list[str]:
    """The --transfer presets, checked before anything trains (a typo must not cost a search)."""
    from .errors import ActsearchError
    from .train import get_fidelity

    names = [n.strip() for n in (args.transfer or "").split(",") if n.strip()]
    if args.transfer is not None and not names:
        raise ActsearchError("--transfer needs fidelity names, e.g. --transfer quick,mnist")
    if args.transfer_only and not names:
        raise ActsearchError("--transfer-only needs --transfer FID[,FID...], e.g. --transfer quick,mnist")
    if names and (args.transfer_k < 1 or args.transfer_seeds < 2 or args.transfer_batch < 1):
        raise ActsearchError(f"--transfer-k and --transfer-batch must be ≥ 1 and --transfer-seeds ≥ 2 (a paired "
                             f"t-test needs two seeds); got {args.transfer_k}, {args.transfer_batch}, "
                             f"{args.transfer_seeds}")
    return [get_fidelity(n).name for n in names]


def _load_verified(out: Path, storage: str | None,
                   study_name: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(verify records, {expression: candidate}) of an earlier run in ``out``: the study's user
    attribute ``verify`` (and its candidates, whose β initial values the text does not keep), else
    ``out/verify.csv``."""
    import optuna

    from .compare import mean_std, read_csv
    from .errors import ActsearchError
    from .leaderboard import leaderboard
    from .storage import load_study, open_storage

    records: list[dict[str, Any]] = []
    cands: dict[str, Any] = {}
    url = storage or (f"sqlite:///{out / 'study.db'}" if (out / "study.db").is_file() else None)
    if url is not None:
        st = open_storage(url, create=False)
        names = optuna.get_all_study_names(st)
        if study_name is None and len(names) > 1:
            raise ActsearchError(f"{url} holds {len(names)} studies ({', '.join(names)}): pick one with --study")
        if study_name is not None or names:
            study = load_study(st, study_name or names[0])
            records = list(study.user_attrs.get("verify") or [])
            if records:
                try:
                    cands = {r.expression: r.cand for r in leaderboard(study)}
                except ActsearchError:  # not an actsearch study: the expressions are re-parsed
                    cands = {}
    if not records and (out / "verify.csv").is_file():
        records = read_csv(out / "verify.csv")
    relu = next((r for r in records if r["name"] == "relu"), None)
    for r in records:  # records written before verify kept diff_std: from the per-seed accuracies
        if r.get("diff_std") is None and r is not relu and relu is not None and r.get("test_accuracies"):
            r["diff_std"] = mean_std([a - b for a, b in zip(r["test_accuracies"], relu["test_accuracies"])
                                      if a is not None and b is not None])[1]
    if not records:
        raise ActsearchError(f"no verification found in {out} (no study with a 'verify' attribute, no verify.csv): "
                             f"run `actsearch rediscover --output {out}` first")
    return records, cands


def _run_transfer(out: Path, records: Sequence[dict[str, Any]], fids: Sequence[str], args: argparse.Namespace,
                  device: str, candidates: dict[str, Any], command: str) -> None:
    """Re-train the verified top k + ReLU + Swish at each fidelity; write transfer.md and transfer.csv."""
    import torch

    from .compare import format_transfer, transfer, write_csv

    # The verification's seeds (never used by the search), extended if more are asked for.
    base = records[0]["seeds"][0] if records[0].get("seeds") else 10_000 + args.seed
    seeds = [base + j for j in range(args.transfer_seeds)]
    print(f"transfer check: the verified top {args.transfer_k} with ReLU and Swish at {', '.join(fids)}, "
          f"{len(seeds)} paired seeds …", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    results = transfer(records, fids, seeds, k=args.transfer_k, device=device, batch=args.transfer_batch,
                       candidates=candidates)
    minutes = (time.perf_counter() - t0) / 60
    text = format_transfer(records, results, command)
    text += f"\ntime: {minutes:.1f} min on {device} ({torch.get_num_threads()} torch thread(s))\n"
    (out / "transfer.md").write_text(text, encoding="utf-8")
    write_csv([r for recs in results.values() for r in recs], out / "transfer.csv")
    print(text)
    print(f"wrote {out}/transfer.md and transfer.csv")


def _default_output(args: argparse.Namespace) -> str:
    return f"results/rediscovery/{args.fidelity}-seed-{args.seed}"


def _transfer_only(args: argparse.Namespace, fids: Sequence[str]) -> int:
    """--transfer-only: the transfer check on an existing output folder, without searching."""
    from .errors import ActsearchError
    from .search_cli import _device

    out = Path(args.output or _default_output(args))
    if not out.is_dir():
        raise ActsearchError(f"--transfer-only: no folder {out} (give the --output of an earlier rediscover run)")
    device = _device(args.device)
    records, cands = _load_verified(out, args.storage, args.study)
    command = _command_line(args, ("transfer", "transfer_only", "transfer_k", "transfer_seeds", "transfer_batch",
                                   "device", "output", "storage", "study"))
    (out / "transfer_command.txt").write_text(command + "\n", encoding="utf-8")
    _run_transfer(out, records, fids, args, device, cands, command)
    return 0


def cmd_rediscover(args: argparse.Namespace) -> int:
    import optuna

    from .leaderboard import export_top, format_leaderboard, format_verify, leaderboard, study_summary, verify
    from .parser import parse
    from .plots import plot_functions
    from .search import RunConfig, run_search
    from .search_cli import Progress, _device, _settings
    from .shape import nearest

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    fids = _transfer_fidelities(args)
    if args.transfer_only:
        return _transfer_only(args, fids)
    out = Path(args.output or _default_output(args))
    out.mkdir(parents=True, exist_ok=True)
    url = args.storage or f"sqlite:///{out / 'study.db'}"
    ns = argparse.Namespace(space=args.space, dataset=None, fidelity=args.fidelity, sampler=args.sampler,
                            seed=args.seed, seeds=args.seeds, cost=None, study=args.study)
    name, settings = _settings(ns, url)
    device = _device(args.device)
    command = _command_line(args)
    (out / "command.txt").write_text(command + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    progress = Progress(quiet=args.quiet)
    cfg = RunConfig(trials=args.trials, workers=1, batch=args.batch, pruner=args.pruner, device=device, plots=False)
    deadline = time.perf_counter() + args.budget_minutes * 60 if args.budget_minutes else None
    study = None
    done = 0
    while done < args.trials:  # in chunks so --budget-minutes can stop between batches
        chunk = min(args.trials - done, args.batch * 4) if deadline else args.trials - done
        cfg.trials = chunk
        study = run_search(url, name, settings, cfg, on_trial=progress,
                           on_start=(lambda st, se, n: progress.start(st, se, args.trials, cfg.batch)) if done == 0 else None)
        done += chunk
        if deadline and time.perf_counter() > deadline:
            print(f"rediscover: search budget of {args.budget_minutes} min reached after {done} trials", file=sys.stderr)
            break
    progress.close()
    assert study is not None
    t_search = time.perf_counter() - t0
    summary = study_summary(study)
    rows = leaderboard(study, settings)
    table = format_leaderboard(rows, args.verify_k)
    print(summary)
    print(table)
    (out / "leaderboard.md").write_text(f"{summary}\n\n```\n{table}\n```\n", encoding="utf-8")
    _write_csv(out / "leaderboard.csv", [
        {"rank": r.rank, "trial": r.label, "expression": r.expression, "val_accuracy": r.accuracy,
         "val_std": r.std, "test_accuracy": r.test, "reference": r.reference or "", "nearest": r.nearest(),
         "swish_like": swish_like_info(r.expression)[0]} for r in rows])
    vfid = args.verify_fidelity or settings.fidelity
    print(f"verifying the top {args.verify_k} with ReLU and Swish: {args.verify_seeds} seeds at {vfid} …",
          file=sys.stderr, flush=True)
    t1 = time.perf_counter()
    records = verify(study, args.verify_k, args.verify_seeds, vfid, device=device, batch=args.verify_batch,
                     csv_path=out / "verify.csv")
    t_verify = time.perf_counter() - t1
    vtable = format_verify(records)
    yes, lines = verdict(records)
    proposed = _proposed_references(study)
    lines.append("sampler proposed a reference itself (not counted as found): "
                 + (", ".join(proposed) if proposed else "none"))
    lines.append(f"time: search {t_search / 60:.1f} min ({len(study.trials)} trials), verify {t_verify / 60:.1f} min "
                 f"({args.verify_k} + 2 functions × {args.verify_seeds} seeds at {vfid})")
    print(vtable)
    print("\n".join(lines))
    (out / "verify.md").write_text(f"verify: seeds {records[0]['seeds']} at {vfid}\n\n```\n{vtable}\n```\n",
                                   encoding="utf-8")
    (out / "verdict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    found = sorted([r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None],
                   key=lambda r: -r["test_mean"])[:5]
    cands = [parse(r["expression"]) for r in found] + [parse("x*sigmoid(beta*x)"), parse("relu(x)")]
    labels = [f"v{i} {r['expression'][:28]} ({nearest(c).name})" for i, (r, c) in enumerate(zip(found, cands), 1)]
    plot_functions(cands, labels + ["swish (β=1)", "relu"], out / "shapes.png",
                   title=f"verified top {len(found)} of {name} vs Swish and ReLU")
    _progress_plot(study, out / "progress.png", f"{name}\n{summary.split(': ', 1)[-1]}")
    try:
        export_top(study, 3, out / "top3.py")
    except Exception as exc:  # nothing completed: the verdict still stands
        print(f"rediscover: no export ({exc})", file=sys.stderr)
    print(f"wrote {out}/: leaderboard.md/csv, verify.md/csv, shapes.png, progress.png, top3.py, verdict.txt")
    if fids:
        _run_transfer(out, records, fids, args, device, {r.expression: r.cand for r in rows}, command)
    return 0 if yes or not args.strict else 3


def add_rediscover_command(sub: Any) -> None:
    s = sub.add_parser("rediscover", help="search the paper's space, verify the top 10, is Swish among the best?",
                       description="Search the paper's space, re-train the top K on fresh paired seeds with ReLU "
                       "and Swish, and say whether a Swish-like function is in the verified top 5. "
                       "--transfer FID[,FID...] adds a transfer check (the verified top 3 + ReLU + Swish "
                       "re-trained on other children); with --transfer-only it runs on an earlier --output "
                       "folder without searching: actsearch rediscover --transfer quick,mnist --transfer-only "
                       "--output results/rediscovery/seed-0")
    s.add_argument("--seed", type=int, default=0, help="search seed (sampler and training) (default 0)")
    s.add_argument("--space", default="paper-1", help="space (default paper-1)")
    s.add_argument("--fidelity", default="standard_bn",
                   help="search fidelity (default standard_bn: the 1-D CNN with BatchNorm; plain `standard` "
                        "rewards even functions, see results/rediscovery/README.md)")
    s.add_argument("--sampler", default="tpe", help="sampler (default tpe)")
    s.add_argument("--trials", type=int, default=120, help="search trials (default 120)")
    s.add_argument("--budget-minutes", type=float, default=None,
                   help="stop the search (between batches) after this many minutes; verify still runs")
    s.add_argument("--seeds", type=int, default=1, help="training seeds per candidate during the search (default 1)")
    s.add_argument("--verify-k", type=int, default=10, help="candidates re-verified (default 10)")
    s.add_argument("--verify-seeds", type=int, default=5, help="fresh seeds for the verification (default 5)")
    s.add_argument("--verify-fidelity", default=None, help="verification fidelity (default: the search's)")
    s.add_argument("--verify-batch", type=int, default=24, help="networks trained together when verifying")
    s.add_argument("--batch", type=int, default=8, help="candidates trained together in the search (default 8)")
    s.add_argument("--pruner", default="median", help="median | hyperband | none (default median)")
    s.add_argument("--device", default="auto")
    s.add_argument("--storage", default=None, help="Optuna storage (default: OUTPUT/study.db)")
    s.add_argument("--study", default=None, help="study name (default: derived from the options)")
    s.add_argument("--output", default=None, help="output folder (default results/rediscovery/FIDELITY-seed-S)")
    s.add_argument("--transfer", metavar="FID[,FID...]", default=None,
                   help="transfer check: re-train the verified top K (--transfer-k) with ReLU and Swish at these "
                        "fidelities (other children, e.g. quick,mnist: the MLP on MNIST-1D, a 2-D CNN on real "
                        "MNIST); writes transfer.md/csv")
    s.add_argument("--transfer-only", action="store_true",
                   help="run only the transfer check on an existing --output folder (its study.db or verify.csv), "
                        "without searching again; writes transfer_command.txt")
    s.add_argument("--transfer-k", type=int, default=3, help="verified candidates transferred (default 3)")
    s.add_argument("--transfer-seeds", type=int, default=5,
                   help="paired seeds per transfer child (default 5; the verification's seeds, extended)")
    s.add_argument("--transfer-batch", type=int, default=5,
                   help="networks trained together in the transfer check (default 5: on a 2-core CPU larger "
                        "populations of 2-D CNNs were slower per network)")
    s.add_argument("--strict", action="store_true", help="exit status 3 when the verdict is no")
    s.add_argument("--quiet", action="store_true", help="no progress line")
    s.set_defaults(run=cmd_rediscover)
