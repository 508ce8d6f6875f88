"""``actsearch rediscover``: does a search of the paper's space find Swish again?

One command = the issue-5 recipe: search a space (default the paper's 1-core-unit space at the
`power` fidelity: the 1-D CNN with BatchNorm, as the paper's ResNets had — the plain CNN rewards
even functions — on 4x the generated MNIST-1D examples with a cosine decay, scored on the mean of
the last 3 checkpoints: paired noise vs ReLU ≤ 0.56 points over `actsearch noise`'s panel, against
6.4 for `standard_bn`), re-train its top ``K`` (default 10) on 8 fresh seeds with ReLU and Swish
(:func:`actsearch.analysis.verify`, a paired design), and answer one question:

    Swish-like in verified top 5: yes/no (which, β, distance); vs ReLU: Δ mean ± std, p=…

"Swish-like" is :func:`actsearch.analysis.is_swish_like`. The verified top 5 is the top 5 *of the
search's own candidates* by verified test accuracy: the reference activations the search enqueues
(ReLU, Swish, SiLU, GELU …) are never counted as found. A trial the sampler proposed itself that
turned out to be a reference (a duplicate of it) is reported on its own line, not as a "yes".

Outputs (``--output``, default ``results/rediscovery/FIDELITY-seed-S``): leaderboard.md/csv, verify.md/csv,
shapes.png (top 5 vs Swish), progress.png (best validation accuracy vs trial), top3.py (the top 3
as a module), verdict.txt and command.txt.

Transfer check (``--transfer FID[,FID...]``): does the verified ranking hold on another child? The
top ``--transfer-k`` (default 3) of the search's own candidates by verified test accuracy, plus ReLU
and Swish, are re-trained at each fidelity (e.g. ``quick``: the MLP on MNIST-1D; ``mnist``: a 2-D
CNN on real MNIST) over ``--transfer-seeds`` paired seeds (:func:`actsearch.analysis.transfer`);
transfer.md gives per child the table, the order of the functions, Kendall's τ and Spearman's ρ
against the verified order, and whether each of the top k still beats ReLU. With
``--transfer-only`` it runs on an existing ``--output`` folder without searching again, from its
study.db (user attribute ``verify``) or verify.csv, and writes transfer.md, transfer.csv and
transfer_command.txt::

    actsearch rediscover --transfer quick,mnist --transfer-only --output results/rediscovery/seed-0
"""
from __future__ import annotations

import csv
import dataclasses
import math
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
import torch
from optuna.trial import TrialState

from ..errors import ActsearchError
from ..evaluation import get_fidelity, load_task, mean_std, resolve_device, split_fidelities, task_record
from ..expressions import Candidate, parse, plot_functions, pyplot, save_figure
from ..search import (OnStart, OnTrial, RunConfig, build_settings, load_study, open_storage, read_settings, run_search,
                      stored_settings, study_name_for)
from .compare import paired, read_csv, transfer, write_csv
from .leaderboard import export_top, leaderboard, verify
from .report import format_leaderboard, format_transfer, format_verify, study_summary
from .shape import is_swish_like, nearest, swish_fit

__all__ = ["RediscoverOptions", "rediscover", "transfer_only", "verdict_only", "verdict", "swish_like_info", "STRICT_BETA_MIN"]

#: is_swish_like accepts a scaled x·σ(βx) with small β, which over [−5, 5] is nearly linear with a
#: kink: x + max(x, 0) fits 3·x·σ(0.18x) at distance 0.076. The verdict reports a strict reading too.
STRICT_BETA_MIN = 0.5


def swish_like_info(expression: str | Candidate, reflect: bool = True) -> tuple[bool, float | None, float]:
    """(is Swish-like, fitted β, Swish distance) of an expression or a candidate (``reflect``: f or
    −f(−x)); a candidate keeps its β's initial values, which its text does not."""
    cand = parse(expression) if isinstance(expression, str) else expression
    try:
        fit = swish_fit(cand, reflect)
        return is_swish_like(cand, reflect), fit.beta, fit.distance
    except Exception:  # an expression the shape analysis cannot evaluate is simply not Swish-like
        return False, None, math.inf


def _vs_relu(rec: dict[str, Any]) -> str:
    mean, std = rec.get("diff_vs_relu"), rec.get("diff_std")
    if mean is None:
        return "vs ReLU: —"
    p = f"{rec['p_value']:.3g}" if rec.get("p_value") is not None else "—"
    sd = f" ± {std:.4f}" if std is not None else ""
    holm = f", Holm p={rec['p_holm']:.3g}" if rec.get("p_holm") is not None and rec["name"] != "swish" else ""
    return f"vs ReLU: Δ {mean:+.4f}{sd} (paired over {len(rec['test_accuracies'])} seeds), p={p}{holm}"


def _vs_swish(rec: dict[str, Any], swish: dict[str, Any] | None) -> str:
    """The paired difference to Swish on the same seeds, and its t-test: does a found function go
    beyond the paper's?"""
    if swish is None:
        return ""
    mean, sd, p = paired(rec.get("test_accuracies") or [], swish.get("test_accuracies") or [])
    if mean is None or sd is None:
        return ""
    return f"; vs Swish: Δ {mean:+.4f} ± {sd:.4f}, p={1.0 if p is None else p:.3g}"


def verdict(records: Sequence[dict[str, Any]], top: int = 5, reflect: bool = True) -> tuple[bool, list[str]]:
    """(yes/no, report lines) from :func:`actsearch.analysis.verify` records; ``reflect=False`` reads
    Swish-likeness one-sided (before point reflection was one shape)."""
    relu = next(r for r in records if r["name"] == "relu")
    swish = next((r for r in records if r["name"] == "swish"), None)
    found = [r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None]
    found.sort(key=lambda r: -r["test_mean"])
    best5 = found[:top]
    hits = [(r, *swish_like_info(r["expression"], reflect)) for r in best5]
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
        lines.append(f"best found: {best5[0]['expression']} {best5[0]['test_mean']:.4f}; {_vs_relu(best5[0])}"
                     f"{_vs_swish(best5[0], swish)}")
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
    plt = pyplot()
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
    try:
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
    save_figure(fig, path)


@dataclass
class RediscoverOptions:
    """One rediscovery run; the defaults are the command line's (``actsearch rediscover --help``).
    Field order is the command line's, which :meth:`command_line` spells out."""

    seed: int = 0
    space: str = "paper-1"
    # The 1-D CNN with BatchNorm; plain `standard` rewards even functions (results/rediscovery/README.md).
    fidelity: str = "power"
    sampler: str = "tpe"
    trials: int = 120
    budget_minutes: float | None = None
    seeds: int = 1
    verify_k: int = 10
    verify_seeds: int = 8
    verify_fidelity: str | None = None
    verify_batch: int = 24
    batch: int = 8
    pruner: str = "median"
    device: str = "auto"
    storage: str | None = None
    study: str | None = None
    output: str | None = None
    transfer: str | None = None
    transfer_only: bool = False
    verdict_only: bool = False
    transfer_k: int = 3
    transfer_seeds: int = 5
    # On a 2-core CPU larger populations of 2-D CNNs were slower per network.
    transfer_batch: int = 5
    strict: bool = False
    quiet: bool = False
    task: str | None = None  # FILE.py[:NAME]: search and verify through a user's task instead of `fidelity`

    @property
    def out(self) -> Path:
        what = Path(self.task.split(":")[0]).stem if self.task else self.fidelity
        return Path(self.output or f"results/rediscovery/{what}-seed-{self.seed}")

    def command_line(self, keys: Sequence[str] | None = None) -> str:
        """The command with every option spelled out (``keys``: only these), for command.txt."""
        opts = {k: v for k, v in dataclasses.asdict(self).items() if v not in (None, False)
                and (keys is None or k in keys)}
        return "actsearch rediscover " + " ".join(
            f"--{k.replace('_', '-')}" + ("" if v is True else f" {shlex.quote(str(v))}") for k, v in opts.items())

    def transfer_fidelities(self) -> list[str]:
        """The --transfer presets, checked before anything trains (a typo must not cost a search)."""
        names = split_fidelities(self.transfer or "")
        if self.transfer is not None and not names:
            raise ActsearchError("--transfer needs fidelity names, e.g. --transfer quick,mnist")
        if self.transfer_only and not names:
            raise ActsearchError("--transfer-only needs --transfer FID[,FID...], e.g. --transfer quick,mnist")
        if names and (self.transfer_k < 1 or self.transfer_seeds < 2 or self.transfer_batch < 1):
            raise ActsearchError(f"--transfer-k and --transfer-batch must be ≥ 1 and --transfer-seeds ≥ 2 (a paired "
                                 f"t-test needs two seeds); got {self.transfer_k}, {self.transfer_batch}, "
                                 f"{self.transfer_seeds}")
        return [get_fidelity(n).name for n in names]


def _load_verified(out: Path, storage: str | None,
                   study_name: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """(verify records, {expression: candidate}) of an earlier run in ``out``: the study's user
    attribute ``verify`` (and its candidates, whose β initial values the text does not keep), else
    ``out/verify.csv``."""
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


def _run_transfer(out: Path, records: Sequence[dict[str, Any]], fids: Sequence[str], opts: RediscoverOptions,
                  device: str, candidates: dict[str, Any], command: str) -> None:
    """Re-train the verified top k + ReLU + Swish at each fidelity; write transfer.md and transfer.csv."""
    # The verification's seeds (never used by the search), extended if more are asked for.
    base = records[0]["seeds"][0] if records[0].get("seeds") else 10_000 + opts.seed
    seeds = [base + j for j in range(opts.transfer_seeds)]
    print(f"transfer check: the verified top {opts.transfer_k} with ReLU and Swish at {', '.join(fids)}, "
          f"{len(seeds)} paired seeds …", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    results = transfer(records, fids, seeds, k=opts.transfer_k, device=device, batch=opts.transfer_batch,
                       candidates=candidates)
    minutes = (time.perf_counter() - t0) / 60
    text = format_transfer(records, results, command)
    text += f"\ntime: {minutes:.1f} min on {device} ({torch.get_num_threads()} torch thread(s))\n"
    (out / "transfer.md").write_text(text, encoding="utf-8")
    write_csv([r for recs in results.values() for r in recs], out / "transfer.csv")
    print(text)
    print(f"wrote {out}/transfer.md and transfer.csv")


def transfer_only(opts: RediscoverOptions) -> int:
    """--transfer-only: the transfer check on an existing output folder, without searching."""
    fids = opts.transfer_fidelities()
    out = opts.out
    if not out.is_dir():
        raise ActsearchError(f"--transfer-only: no folder {out} (give the --output of an earlier rediscover run)")
    device = str(resolve_device(opts.device))
    records, cands = _load_verified(out, opts.storage, opts.study)
    command = opts.command_line(("transfer", "transfer_only", "transfer_k", "transfer_seeds", "transfer_batch",
                                 "device", "output", "storage", "study"))
    (out / "transfer_command.txt").write_text(command + "\n", encoding="utf-8")
    _run_transfer(out, records, fids, opts, device, cands, command)
    return 0


def verdict_only(opts: RediscoverOptions) -> int:
    """--verdict-only: an earlier run's verdict read both ways — f alone, and f or its point
    reflection −f(−x) (one shape to a network) — from its verification, without training; written
    to ``verdict_reflection.txt`` beside it, with the command in ``verdict_reflection_command.txt``."""
    out = opts.out
    if not out.is_dir():
        raise ActsearchError(f"--verdict-only: no folder {out} (give the --output of an earlier rediscover run)")
    records, _ = _load_verified(out, opts.storage, opts.study)
    lines = [f"verdict of {out.name}, read both ways (from its verification; nothing re-trained)"]
    for reflect, title in ((False, "one-sided (f alone)"), (True, "with point reflection (f or -f(-x))")):
        yes, text = verdict(records, reflect=reflect)
        lines += [f"{title}: {'yes' if yes else 'no'}", *(f"  {t}" for t in text)]
    text = "\n".join(lines) + "\n"
    (out / "verdict_reflection.txt").write_text(text, encoding="utf-8")
    command = opts.command_line(("verdict_only", "output", "storage", "study"))
    (out / "verdict_reflection_command.txt").write_text(command + "\n", encoding="utf-8")
    print(text, end="")
    return 0


def rediscover(opts: RediscoverOptions, on_start: OnStart | None = None, on_trial: OnTrial | None = None) -> bool:
    """Search, verify, write the outputs, print the verdict; returns whether it is "yes".

    ``on_start(study, settings, trials, batch)`` and ``on_trial(trial)`` follow the search (the
    CLI's progress line)."""
    fids = opts.transfer_fidelities()
    out = opts.out
    out.mkdir(parents=True, exist_ok=True)
    url = opts.storage or f"sqlite:///{out / 'study.db'}"
    given = {"space": opts.space, "fidelity": opts.fidelity, "sampler": opts.sampler, "seed": opts.seed,
             "seeds": opts.seeds}
    task = load_task(opts.task) if opts.task else None
    if task is not None:  # the task replaces the fidelity, and verifies through itself
        if opts.verify_fidelity:
            raise ActsearchError("--task verifies through the task itself: drop --verify-fidelity")
        given.pop("fidelity")
        given["task"] = task_record(task)
    settings = build_settings(given, stored_settings(url, opts.study) if opts.study else None)
    name = opts.study or study_name_for(settings)
    device = str(resolve_device(opts.device))
    command = opts.command_line()
    (out / "command.txt").write_text(command + "\n", encoding="utf-8")
    t0 = time.perf_counter()
    cfg = RunConfig(trials=opts.trials, workers=1, batch=opts.batch, pruner=opts.pruner, device=device, plots=False)
    deadline = time.perf_counter() + opts.budget_minutes * 60 if opts.budget_minutes else None
    study = None
    done = 0
    while done < opts.trials:  # in chunks so --budget-minutes can stop between batches
        chunk = min(opts.trials - done, opts.batch * 4) if deadline else opts.trials - done
        cfg.trials = chunk
        start = (lambda st, se, n: on_start(st, se, opts.trials, cfg.batch)) if on_start and done == 0 else None
        study = run_search(url, name, settings, cfg, on_trial=on_trial, on_start=start)
        done += chunk
        if deadline and time.perf_counter() > deadline:
            print(f"rediscover: search budget of {opts.budget_minutes} min reached after {done} trials", file=sys.stderr)
            break
    assert study is not None
    t_search = time.perf_counter() - t0
    summary = study_summary(study)
    rows = leaderboard(study, settings)
    table = format_leaderboard(rows, opts.verify_k)
    print(summary)
    print(table)
    (out / "leaderboard.md").write_text(f"{summary}\n\n```\n{table}\n```\n", encoding="utf-8")
    _write_csv(out / "leaderboard.csv", [
        {"rank": r.rank, "trial": r.label, "expression": r.expression, "val_accuracy": r.accuracy,
         "val_std": r.std, "test_accuracy": r.test, "reference": r.reference or "", "nearest": r.nearest(),
         "swish_like": swish_like_info(r.cand)[0]} for r in rows])
    vfid: Any = task if task is not None else (opts.verify_fidelity or settings.fidelity)
    print(f"verifying the top {opts.verify_k} with ReLU and Swish: {opts.verify_seeds} seeds at {vfid} …",
          file=sys.stderr, flush=True)
    t1 = time.perf_counter()
    records = verify(study, opts.verify_k, opts.verify_seeds, vfid, device=device, batch=opts.verify_batch,
                     csv_path=out / "verify.csv")
    t_verify = time.perf_counter() - t1
    vtable = format_verify(records)
    yes, lines = verdict(records)
    proposed = _proposed_references(study)
    lines.append("sampler proposed a reference itself (not counted as found): "
                 + (", ".join(proposed) if proposed else "none"))
    lines.append(f"time: search {t_search / 60:.1f} min ({len(study.trials)} trials), verify {t_verify / 60:.1f} min "
                 f"({opts.verify_k} + 2 functions × {opts.verify_seeds} seeds at {vfid})")
    print(vtable)
    print("\n".join(lines))
    (out / "verify.md").write_text(f"verify: seeds {records[0]['seeds']} at {vfid}\n\n```\n{vtable}\n```\n",
                                   encoding="utf-8")
    (out / "verdict.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    best = sorted([r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None],
                  key=lambda r: -r["test_mean"])[:5]
    cands = [parse(r["expression"]) for r in best] + [parse("x*sigmoid(beta*x)"), parse("relu(x)")]
    labels = [f"v{i} {r['expression'][:28]} ({nearest(c).name})" for i, (r, c) in enumerate(zip(best, cands), 1)]
    plot_functions(cands, labels + ["swish (β=1)", "relu"], out / "shapes.png",
                   title=f"verified top {len(best)} of {name} vs Swish and ReLU")
    _progress_plot(study, out / "progress.png", f"{name}\n{summary.split(': ', 1)[-1]}")
    try:
        export_top(study, 3, out / "top3.py")
    except Exception as exc:  # nothing completed: the verdict still stands
        print(f"rediscover: no export ({exc})", file=sys.stderr)
    print(f"wrote {out}/: leaderboard.md/csv, verify.md/csv, shapes.png, progress.png, top3.py, verdict.txt")
    if fids:
        _run_transfer(out, records, fids, opts, device, {r.expression: r.cand for r in rows}, command)
    return yes
