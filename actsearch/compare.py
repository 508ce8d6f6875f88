"""Paired comparison of activation functions: on one child network, and across children (transfer).

:func:`compare` trains every function beside ReLU and Swish on the SAME seeds. A seed fixes the
initial weights and the minibatch order (:mod:`actsearch.train`), so seed j gives every function
the same start and the same data: the differences to ReLU are paired, and a paired t-test
(scipy.stats.ttest_rel) removes the seed-to-seed variance that all functions share. This is the
statistics of ``actsearch verify`` and of the ``actsearch compare`` command.

:func:`transfer` asks whether a verified ranking holds on another child (Ramachandran et al. 2017,
sec. 4, re-trained their top functions on other models and datasets to see whether they transfer):
the top ``k`` of a verification plus ReLU and Swish are re-trained at other fidelities, and the
report gives, per child, the order of the functions, Kendall's τ and Spearman's ρ against the
verified order, and whether each of the top ``k`` still beats ReLU.
"""
from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

__all__ = ["mean_std", "compare", "reference_entries", "write_csv", "read_csv", "transfer", "format_transfer",
           "describe_fidelity", "add_compare_command", "cmd_compare", "ALPHA", "CSV_FIELDS"]

#: Significance level of the "beats ReLU" reading: one comparison per function, uncorrected.
ALPHA = 0.05
CSV_FIELDS = ["name", "expression", "test_mean", "test_std", "diff_vs_relu", "diff_std", "p_value", "fidelity",
              "seeds"]
Entry = tuple[str, str, Any]  # (name, expression text, activation spec: a name, candidate or module)


def mean_std(xs: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Sample mean and standard deviation (n − 1) of the finite values; None/NaN are skipped.

    (None, None) without values; std None with one value (a spread needs two)."""
    ok = [float(x) for x in xs if x is not None and math.isfinite(x)]
    if not ok:
        return None, None
    return statistics.fmean(ok), (statistics.stdev(ok) if len(ok) > 1 else None)


def reference_entries() -> list[Entry]:
    """ReLU (the registry's module) and Swish x·σ(βx) with a trainable β, the paper's two baselines."""
    from .leaderboard import REFERENCES
    from .parser import parse

    return [("relu", REFERENCES["relu"], "relu"), ("swish", REFERENCES["swish"], parse(REFERENCES["swish"]))]


def _finite(a: float | None) -> bool:
    return a is not None and math.isfinite(a)


def compare(entries: Sequence[Entry], fidelity: Any, seeds: Sequence[int], device: str = "cpu", batch: int = 16,
            dataset: str | None = None) -> list[dict[str, Any]]:
    """Train ``entries`` plus ReLU and Swish on ``seeds`` (the same seeds for all: a paired design).

    ``fidelity`` is a preset name or a :class:`~actsearch.train.Fidelity`; ``dataset`` overrides its
    dataset. ReLU and Swish are appended unless an entry already has the name "relu"/"swish".
    ``batch`` networks are trained together as one population
    (:func:`actsearch.population.train_population`). Returns one record per function, in input
    order then ReLU, Swish: ``test_mean``/``test_std`` over the seeds, ``diff_vs_relu``/``diff_std``
    (mean and std of the paired differences), ``p_value`` (paired t-test; None for ReLU itself, or
    when every difference is 0), ``test_accuracies`` per seed (NaN where training diverged).
    """
    from scipy import stats

    from .population import train_population
    from .train import get_fidelity

    fid = get_fidelity(fidelity)
    if dataset is not None:
        fid = fid.replace(dataset=dataset)
    seeds = list(seeds)
    if not seeds or batch < 1:
        raise ValueError(f"compare needs at least one seed and batch ≥ 1 (got {len(seeds)} seeds, batch {batch})")
    names = {name for name, _, _ in entries}
    entries = list(entries) + [e for e in reference_entries() if e[0] not in names]
    members = [(i, s) for i in range(len(entries)) for s in seeds]
    results = []
    for lo in range(0, len(members), batch):
        chunk = members[lo:lo + batch]
        results += train_population([entries[i][2] for i, _ in chunk], fid, [s for _, s in chunk], device=device)
    acc: dict[int, list[float]] = {i: [] for i in range(len(entries))}
    for (i, _), res in zip(members, results):
        acc[i].append(res.test_accuracy if _finite(res.test_accuracy) else math.nan)
    relu = acc[next(i for i, e in enumerate(entries) if e[0] == "relu")]
    records = []
    for i, (name, expr, _) in enumerate(entries):
        mean, std = mean_std(acc[i])
        pairs = [(a, b) for a, b in zip(acc[i], relu) if _finite(a) and _finite(b)]
        diff, diff_std, p = None, None, None
        if name != "relu" and pairs:
            diff, diff_std = mean_std([a - b for a, b in pairs])
            if len(pairs) > 1 and any(a != b for a, b in pairs):
                p = float(stats.ttest_rel([a for a, _ in pairs], [b for _, b in pairs]).pvalue)
        records.append({"name": name, "expression": expr, "test_mean": mean, "test_std": std,
                        "diff_vs_relu": diff, "diff_std": diff_std, "p_value": p, "seeds": seeds,
                        "fidelity": fid.name, "test_accuracies": acc[i]})
    return records


# -------------------------------------------------------------------------------------- CSV
def write_csv(records: Sequence[dict[str, Any]], path: str | Path) -> Path:
    """The records as CSV (:data:`CSV_FIELDS`; seeds space-separated; per-seed accuracies left out)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=CSV_FIELDS)
        w.writeheader()
        for rec in records:
            w.writerow({**{f: rec.get(f) for f in CSV_FIELDS}, "seeds": " ".join(map(str, rec["seeds"]))})
    return path


def read_csv(path: str | Path) -> list[dict[str, Any]]:
    """Records back from :func:`write_csv` (also an older verify.csv without ``diff_std``)."""
    def num(v: str | None) -> float | None:
        return float(v) if v not in (None, "") else None

    with Path(path).open(newline="", encoding="utf-8") as fh:
        return [{"name": row["name"], "expression": row["expression"], "test_mean": num(row.get("test_mean")),
                 "test_std": num(row.get("test_std")), "diff_vs_relu": num(row.get("diff_vs_relu")),
                 "diff_std": num(row.get("diff_std")), "p_value": num(row.get("p_value")),
                 "fidelity": row.get("fidelity", ""), "seeds": [int(s) for s in (row.get("seeds") or "").split()],
                 "test_accuracies": []} for row in csv.DictReader(fh)]


# -------------------------------------------------------------------------------- transfer
def _found(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The search's own functions (references excluded), best verified test accuracy first."""
    out = [r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None]
    return sorted(out, key=lambda r: -r["test_mean"])


def describe_fidelity(fidelity: Any) -> str:
    """One line on the child a fidelity trains, e.g. "MLP 100-100 on mnist1d, Adam 0.01, 3000 steps"."""
    from .train import get_fidelity

    fid = get_fidelity(fidelity)
    kind = "MLP" if fid.model.kind == "mlp" else ("2-D CNN" if fid.dataset == "mnist" else "CNN")
    sched = ", cosine" if fid.schedule == "cosine" else ""
    return (f"{kind} {'-'.join(map(str, fid.model.widths))} on {fid.dataset}, {fid.optimizer.capitalize()} "
            f"{fid.lr:g}{sched}, batch {fid.batch_size}, {fid.steps} steps")


def transfer(records: Sequence[dict[str, Any]], fidelities: Sequence[str], seeds: Sequence[int], k: int = 3,
             device: str = "cpu", batch: int = 16, candidates: Mapping[str, Any] | None = None
             ) -> dict[str, list[dict[str, Any]]]:
    """Re-train the top ``k`` of verification ``records`` with ReLU and Swish at each fidelity.

    ``candidates`` maps an expression to the candidate the search built (its β initial values;
    text alone re-parses β with the parser's default). Returns {fidelity name: compare records}.
    """
    from .parser import parse

    top = _found(records)[:k]
    if not top:
        from .errors import ActsearchError

        raise ActsearchError("the verification has no candidate of the search to transfer (only references)")
    cands = candidates or {}
    entries = [(r["name"], r["expression"], cands.get(r["expression"]) or parse(r["expression"])) for r in top]
    return {fid: compare(entries, fid, seeds, device=device, batch=batch) for fid in fidelities}


def _order(recs: Sequence[dict[str, Any]]) -> str:
    ranked = sorted((r for r in recs if r["test_mean"] is not None), key=lambda r: -r["test_mean"])
    return " > ".join(r["name"] if r["name"] in ("relu", "swish") else f"`{r['expression']}`" for r in ranked)


def _beats(r: dict[str, Any]) -> bool:
    """Above ReLU with p < ALPHA (the record's paired t-test)."""
    d, p = r.get("diff_vs_relu"), r.get("p_value")
    return d is not None and d > 0 and p is not None and p < ALPHA


def _reading(diff: float | None, p: float | None) -> str:
    if diff is None:
        return "no result"
    if p is not None and p < ALPHA:
        return f"beats ReLU (p < {ALPHA:g})" if diff > 0 else f"below ReLU (p < {ALPHA:g})"
    return "above ReLU, within noise" if diff > 0 else "not above ReLU, within noise"


def _vs(r: dict[str, Any]) -> str:
    if r.get("diff_vs_relu") is None:
        return "Δ —"
    sd = f" ± {r['diff_std']:.4f}" if r.get("diff_std") is not None else ""
    p = f"{r['p_value']:.3g}" if r.get("p_value") is not None else "—"
    return f"Δ {r['diff_vs_relu']:+.4f}{sd}, p={p}"


def _correlation(verified: Mapping[str, dict[str, Any]], recs: Sequence[dict[str, Any]]) -> tuple[Any, Any]:
    """(Kendall, Spearman) of the mean test accuracies here vs verified; (None, None) under 3 pairs."""
    from scipy import stats

    pairs = [(verified[r["name"]]["test_mean"], r["test_mean"]) for r in recs if r["test_mean"] is not None
             and verified.get(r["name"], {}).get("test_mean") is not None]
    if len(pairs) < 3:
        return None, None
    xs, ys = zip(*pairs)
    return stats.kendalltau(xs, ys), stats.spearmanr(xs, ys)


def format_transfer(verified: Sequence[dict[str, Any]], results: Mapping[str, Sequence[dict[str, Any]]],
                    command: str | None = None) -> str:
    """transfer.md: a summary table, then per child the table, the order, the rank correlations with
    the verified order, and each of the top k vs ReLU."""
    from .leaderboard import format_verify

    first = list(next(iter(results.values())))
    by_name = {r["name"]: r for r in verified}
    top = [r["name"] for r in first if r["name"] not in ("relu", "swish")]
    vfid = str(verified[0].get("fidelity") or "?")
    try:
        vchild = describe_fidelity(vfid)
    except Exception:  # a fidelity this version does not know: the name is still informative
        vchild = "?"
    head = ["# Transfer check: does the verified ranking hold on other children?", ""]
    if command:
        head += ["```console", f"$ {command}", "```", ""]
    head += [f"The top {len(top)} of the search's own candidates by verified test accuracy (verified at `{vfid}`: "
             f"{vchild}; seeds {verified[0]['seeds']}), plus ReLU and Swish, re-trained on each child below over "
             f"{len(first[0]['seeds'])} paired seeds {first[0]['seeds']}. Δ: paired difference to ReLU, mean ± "
             f"std over the seeds; p: paired t-test; \"beats ReLU\": Δ > 0 and p < {ALPHA:g}, uncorrected. "
             f"τ, ρ: Kendall's and Spearman's rank correlation of the {len(first)} mean test accuracies with "
             f"their verified means (with only {len(first)} functions a coarse measure: τ's p is scipy's exact test).",
             ""]
    vrecs = [by_name[r["name"]] for r in first if r["name"] in by_name]
    vwins = [r for r in vrecs if r["name"] in top and _beats(r)]
    vswish = by_name.get("swish")
    summary = [f"| child | order (by mean test accuracy) | Kendall τ (p) | Spearman ρ | top {len(top)} "
               f"beating ReLU | Swish vs ReLU |", "|---|---|---|---|---|---|",
               f"| `{vfid}` (verified) | {_order(vrecs)} | — | — | {len(vwins)} of {len(top)} | "
               f"{_vs(vswish) if vswish else '—'} |"]
    body: list[str] = []
    for fid, recs in results.items():
        tau, rho = _correlation(by_name, recs)
        wins = [r for r in recs if r["name"] in top and _beats(r)]
        swish = next((r for r in recs if r["name"] == "swish"), None)
        corr = (f"Kendall τ = {tau.statistic:+.2f} (p = {tau.pvalue:.2g}), Spearman ρ = {rho.statistic:+.2f}"
                if tau is not None else "too few results for a rank correlation")
        body += [f"## `{fid}`: {describe_fidelity(fid)}", "", "```", format_verify(recs), "```", "",
                 f"- order: {_order(recs)}", f"- vs the verified order: {corr}",
                 f"- top {len(top)} beating ReLU here: {len(wins)} of {len(top)}"]
        for r in recs:
            if r["name"] in top:
                was = f"verified {_vs(by_name[r['name']])}; " if r["name"] in by_name else ""
                body.append(f"  - {r['expression']} [{r['name']}]: {was}here {_vs(r)} → "
                            f"{_reading(r['diff_vs_relu'], r['p_value'])}")
        if swish is not None:
            body.append(f"- Swish: {_vs(swish)} → {_reading(swish['diff_vs_relu'], swish['p_value'])}")
        body.append("")
        summary.append(f"| `{fid}` | {_order(recs)} | "
                       + (f"{tau.statistic:+.2f} ({tau.pvalue:.2g}) | {rho.statistic:+.2f}" if tau is not None
                          else "— | —")
                       + f" | {len(wins)} of {len(top)} | {_vs(swish) if swish else '—'} |")
    return "\n".join(head + summary + [""] + body)


# ---------------------------------------------------------------------------------------- CLI
def _entry(text: str) -> Entry:
    """A command-line function: a registered name (relu, gelu …) or an expression in x."""
    import difflib

    from .activations import list_activations, resolve_activation_name
    from .errors import ActsearchError, ParseError
    from .parser import parse

    t = text.strip()
    name = resolve_activation_name(t) if t.isidentifier() else None
    if name is not None:
        return name, name, name
    try:
        cand = parse(t)
    except ParseError as exc:
        if not t.isidentifier():
            raise
        close = difflib.get_close_matches(t.lower(), list_activations(), n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise ParseError(f"{exc}; nor is {t!r} a registered activation{hint}") from None
    reason = cand.degenerate_reason
    if reason:
        raise ActsearchError(f"{text!r} cannot be an activation: {reason}")
    return text, cand.text, cand


def cmd_compare(args: argparse.Namespace) -> int:
    from .data import list_datasets
    from .errors import ActsearchError, DatasetError
    from .leaderboard import format_verify
    from .train import get_fidelity, resolve_device

    fid = get_fidelity(args.fidelity)
    if args.dataset is not None:
        key = args.dataset.strip().lower().replace("-", "").replace("_", "")
        if key not in list_datasets():
            raise DatasetError(f"unknown dataset {args.dataset!r} (known: {', '.join(list_datasets())})")
        fid = fid.replace(dataset=key)
    if args.seeds < 1 or args.batch < 1:
        raise ActsearchError(f"--seeds and --batch must be at least 1 (got {args.seeds}, {args.batch})")
    try:
        device = resolve_device(args.device)
    except RuntimeError as exc:
        raise ActsearchError(f"bad --device {args.device!r}: {exc}") from None
    if device.type == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise ActsearchError(f"--device {args.device}: CUDA is not available here (use cpu or auto)")
    entries = [_entry(e) for e in args.expr]
    seeds = [args.seed_base + j for j in range(args.seeds)]
    print(f"comparing {len(entries)} function(s) with ReLU and Swish: {len(seeds)} paired seeds {seeds} at "
          f"{fid.name} ({describe_fidelity(fid)}) …", file=sys.stderr, flush=True)
    records = compare(entries, fid, seeds, device=str(device), batch=args.batch)
    print(format_verify(records))
    if args.csv:
        print(f"saved: {write_csv(records, args.csv)}")
    return 0


def add_compare_command(sub: Any) -> None:
    s = sub.add_parser("compare", help="train expressions beside ReLU and Swish on paired seeds: Δ, p-value",
                       description="Train each EXPR plus ReLU and Swish on the same N seeds (a paired design) "
                       "and print test accuracy mean ± std, the paired Δ vs ReLU and a paired t-test p-value "
                       "(the table of `actsearch verify`).")
    s.add_argument("expr", nargs="+", metavar="EXPR",
                   help='an expression in x ("x*atan(x)") or a registered activation name (gelu, elu …)')
    s.add_argument("--fidelity", required=True, help="fidelity preset: smoke | quick | standard | full | mnist …")
    s.add_argument("--dataset", default=None, help="dataset (default: the fidelity's)")
    s.add_argument("--seeds", type=int, default=5, help="paired seeds (default 5)")
    s.add_argument("--seed-base", type=int, default=0, help="first seed; seeds are S … S+N−1 (default 0)")
    s.add_argument("--batch", type=int, default=16, help="networks trained together (default 16)")
    s.add_argument("--device", default="auto", help="cpu | cuda | cuda:N | auto")
    s.add_argument("--csv", metavar="FILE", default=None, help="also write the table as CSV")
    s.set_defaults(run=cmd_compare)
