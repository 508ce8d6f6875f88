"""Paired comparison of activation functions: on one child network, and across children (transfer).

:func:`compare` trains every function beside ReLU and Swish on the SAME seeds. A seed fixes the
initial weights and the minibatch order (:mod:`actsearch.evaluation.recipe`), so seed j gives every function
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

import csv
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

from scipy import stats

from ..errors import ActsearchError, ParseError
from ..evaluation import as_task, mean_std
from ..expressions import Candidate, activation_hint, parse, resolve_activation_name
from ..search import reference_candidates

__all__ = ["compare", "paired", "holm", "reference_entries", "entry", "candidate_of_text", "write_csv", "read_csv", "transfer", "found", "pm", "ALPHA",
           "CSV_FIELDS", "Entry"]

#: Significance level of the "beats ReLU" reading: one comparison per function, uncorrected.
ALPHA = 0.05
CSV_FIELDS = ["name", "expression", "test_mean", "test_std", "diff_vs_relu", "diff_std", "p_value", "p_holm",
              "ood_mean", "ood_std", "fidelity", "seeds"]
Entry = tuple[str, str, Any]  # (name, expression text, activation spec: a name, candidate or module)


def pm(mean: float | None, std: float | None) -> str:
    """"mean ± std" as the tables print it ("—" without a mean)."""
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def reference_entries() -> list[Entry]:
    """ReLU (the registry's module) and Swish x·σ(βx) with a trainable β, the paper's two baselines."""
    swish = reference_candidates()["swish"]
    return [("relu", "relu(x)", "relu"), ("swish", swish.source or swish.text, swish)]


def _finite(a: float | None) -> bool:
    return a is not None and math.isfinite(a)


def compare(entries: Sequence[Entry], fidelity: Any, seeds: Sequence[int], device: str = "cpu", batch: int = 16,
            dataset: str | None = None) -> list[dict[str, Any]]:
    """Train ``entries`` plus ReLU and Swish on ``seeds`` (the same seeds for all: a paired design).

    ``fidelity`` is a preset name, a :class:`~actsearch.evaluation.Fidelity` or a
    :class:`~actsearch.evaluation.Task`; ``dataset`` overrides a preset's dataset. ReLU and Swish are
    appended unless an entry already has the name "relu"/"swish". ``batch`` networks are given to
    the task at once (:meth:`~actsearch.evaluation.Task.evaluate`: a built-in child trains them as
    one population). Returns one record per function, in input
    order then ReLU, Swish: ``test_mean``/``test_std`` over the seeds, ``diff_vs_relu``/``diff_std``
    (mean and std of the paired differences), ``p_value`` (paired t-test; None for ReLU itself, or
    when every difference is 0), ``test_accuracies`` per seed (NaN where training diverged).
    """
    task = as_task(fidelity, dataset)
    seeds = list(seeds)
    if not seeds or batch < 1:
        raise ValueError(f"compare needs at least one seed and batch ≥ 1 (got {len(seeds)} seeds, batch {batch})")
    names = {name for name, _, _ in entries}
    entries = list(entries) + [e for e in reference_entries() if e[0] not in names]
    members = [(i, s) for i in range(len(entries)) for s in seeds]
    results = []
    for lo in range(0, len(members), batch):
        chunk = members[lo:lo + batch]
        results += task.evaluate([entries[i][2] for i, _ in chunk], [s for _, s in chunk], device=device)
    acc: dict[int, list[float]] = {i: [] for i in range(len(entries))}
    ood: dict[int, list[float]] = {i: [] for i in range(len(entries))}
    for (i, _), res in zip(members, results):
        acc[i].append(res.test_accuracy if _finite(res.test_accuracy) else math.nan)
        ood[i].append(res.ood_accuracy if _finite(res.ood_accuracy) else math.nan)
    relu = acc[next(i for i, e in enumerate(entries) if e[0] == "relu")]
    records = []
    for i, (name, expr, _) in enumerate(entries):
        mean, std = mean_std(acc[i])
        diff, diff_std, p = paired(acc[i], relu) if name != "relu" else (None, None, None)
        ood_mean, ood_std = mean_std(ood[i])
        records.append({"name": name, "expression": expr, "test_mean": mean, "test_std": std,
                        "diff_vs_relu": diff, "diff_std": diff_std, "p_value": p, "seeds": seeds,
                        "fidelity": task.name, "test_accuracies": acc[i], "ood_mean": ood_mean, "ood_std": ood_std,
                        "ood_accuracies": ood[i]})
    holm(records)
    return records


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None, float | None]:
    """Mean and std of the paired differences a − b over the seeds where both finished, and the
    paired t-test's p (None under two pairs or when every difference is 0)."""
    pairs = [(x, y) for x, y in zip(a, b) if _finite(x) and _finite(y)]
    if not pairs:
        return None, None, None
    diff, diff_std = mean_std([x - y for x, y in pairs])
    p = None
    if len(pairs) > 1 and any(x != y for x, y in pairs):
        p = float(stats.ttest_rel([x for x, _ in pairs], [y for _, y in pairs]).pvalue)
    return diff, diff_std, p


def holm(records: Sequence[dict[str, Any]]) -> None:
    """Set each record's ``p_holm``: its p-value corrected for the number of functions compared
    with ReLU in one table (Holm 1979, step-down; the references ReLU and Swish excluded — Swish is
    one prior comparison of its own and keeps its p)."""
    tested = sorted((r for r in records if r["name"] not in ("relu", "swish") and r.get("p_value") is not None),
                    key=lambda r: r["p_value"])
    m, running = len(tested), 0.0
    for rank, r in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * r["p_value"]))
        r["p_holm"] = running
    for r in records:
        r.setdefault("p_holm", r.get("p_value") if r["name"] == "swish" else None)


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
                 # columns a newer version writes: present when the file has them
                 **{k: num(row[k]) for k in ("p_holm", "ood_mean", "ood_std") if row.get(k) not in (None, "")},
                 "fidelity": row.get("fidelity", ""), "seeds": [int(s) for s in (row.get("seeds") or "").split()],
                 "test_accuracies": []} for row in csv.DictReader(fh)]


# -------------------------------------------------------------------------------- transfer
def found(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The search's own functions (references excluded), best verified test accuracy first."""
    out = [r for r in records if r["name"] not in ("relu", "swish") and r["test_mean"] is not None]
    return sorted(out, key=lambda r: -r["test_mean"])


def transfer(records: Sequence[dict[str, Any]], fidelities: Sequence[str], seeds: Sequence[int], k: int = 3,
             device: str = "cpu", batch: int = 16, candidates: Mapping[str, Any] | None = None
             ) -> dict[str, list[dict[str, Any]]]:
    """Re-train the top ``k`` of verification ``records`` with ReLU and Swish at each fidelity.

    ``candidates`` maps an expression to the candidate the search built (its β initial values;
    text alone re-parses β with the parser's default). Returns {fidelity name: compare records}.
    """
    top = found(records)[:k]
    if not top:
        raise ActsearchError("the verification has no candidate of the search to transfer (only references)")
    cands = candidates or {}
    entries = [(r["name"], r["expression"], cands.get(r["expression"]) or parse(r["expression"])) for r in top]
    return {fid: compare(entries, fid, seeds, device=device, batch=batch) for fid in fidelities}


# ------------------------------------------------------------------------------- entries
def candidate_of_text(text: str) -> Candidate:
    """An expression in x, or a registered activation name (relu, gelu …) as the operator table's
    candidate; degenerate ones refused."""
    t = text.strip()
    name = resolve_activation_name(t) if t.isidentifier() else None
    try:
        cand = parse(f"{name}(x)" if name is not None else t)
    except ParseError as exc:
        if name is None and t.isidentifier():
            raise ParseError(f"{exc}; nor is {t!r} a registered activation{activation_hint(t)}") from None
        raise
    reason = cand.degenerate_reason
    if reason:
        raise ActsearchError(f"{text!r} cannot be an activation: {reason}")
    return cand


def entry(text: str) -> Entry:
    """A function given as text: a registered name (relu, gelu …, trained as torch's own module) or
    an expression in x."""
    t = text.strip()
    name = resolve_activation_name(t) if t.isidentifier() else None
    if name is not None:
        return name, name, name
    cand = candidate_of_text(text)
    return text, cand.text, cand
