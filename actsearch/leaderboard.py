"""What a study found: the leaderboard, its verification at higher fidelity, its export.

The leaderboard has one row per distinct function (duplicates fold into the trial that trained
it), ranked by mean validation accuracy, with the reference activations (ReLU, Swish …) ranked
among them — those the space expresses are trials, the others were trained beside it at creation
(:func:`setup_references`) — so it always shows where ReLU and Swish stand.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import optuna
from optuna.trial import TrialState

from .candidate import Candidate
from .grammar import Space
from .storage import SearchSettings, read_settings

__all__ = ["REFERENCES", "REFERENCES_ATTR", "setup_references", "Row", "leaderboard", "format_leaderboard", "study_summary", "verify", "format_verify",
           "export_top"]


#: Reference activations: name -> expression. Swish and ReLU are the ones the paper compares with.
REFERENCES: dict[str, str] = {
    "relu": "relu(x)", "swish": "x*sigmoid(beta*x)", "silu": "x*sigmoid(x)", "gelu": "gelu(x)",
    "tanh": "tanh(x)", "elu": "elu(x)",
}
REFERENCES_ATTR = "references"
#: Spaces up to this many structures are searched for each reference (paper-1: 6,250 in ~12 s).
REFERENCE_SEARCH_LIMIT = 20_000


def setup_references(study: optuna.Study, space: Space, settings: SearchSettings, device: str = "cpu") -> None:
    """Enqueue the references the space can express; train the rest once, beside the space."""
    from .parser import parse
    from .population import train_population
    from .samplers import population_seeds
    from .search import _accuracies, _status, fidelity_for

    wanted = {name: parse(text) for name, text in REFERENCES.items()}
    found: dict[str, dict[str, str]] = {}
    if space.count() <= REFERENCE_SEARCH_LIMIT:
        keys = {c.key: name for name, c in wanted.items()}
        for choices in space.enumerate():
            try:
                name = keys.get(space.build(choices).key)
            except Exception:
                continue
            if name is not None and name not in found:
                found[name] = choices
                if len(found) == len(wanted):
                    break
    for name, params in found.items():
        study.enqueue_trial(params, user_attrs={"reference": name})
    outside = [n for n in wanted if n not in found]
    if not outside:
        study.set_user_attr(REFERENCES_ATTR, {})
        return
    seeds = population_seeds(settings.seed, settings.seeds)
    acts = [wanted[n] for n in outside for _ in seeds]
    results = train_population(acts, fidelity_for(settings), list(seeds) * len(outside), device=device)
    table: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(outside):
        rs = results[i * len(seeds):(i + 1) * len(seeds)]
        table[name] = {"expression": REFERENCES[name], "status": _status(rs)[0], **_accuracies(rs),
                       "in_space": False}
    study.set_user_attr(REFERENCES_ATTR, table)


# ------------------------------------------------------------------------------------ ranking
@dataclass
class Row:
    rank: int
    trial: int | None  # None: a reference trained outside the space
    expression: str
    accuracy: float
    std: float | None
    test: float | None
    reference: str | None  # "relu", "swish" … when this row is a reference point
    cand: Candidate
    seeds: list[int]

    @property
    def label(self) -> str:
        return f"#{self.trial}" if self.trial is not None else "ref"

    def nearest(self) -> str:
        from .shape import nearest

        try:
            return str(nearest(self.cand))
        except Exception as exc:  # shape fitting is a description, not a reason to fail the table
            return f"? ({type(exc).__name__})"


def leaderboard(study: optuna.Study, settings: SearchSettings | None = None) -> list[Row]:
    """Every distinct completed function and every reference, best first."""
    from .parser import parse

    settings = settings or read_settings(study)
    space = settings.load_space()
    rows: list[Row] = []
    seen: set[str] = set()
    for t in sorted(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), key=lambda t: t.number):
        key = t.user_attrs.get("key")
        if key in seen or "duplicate_of" in t.user_attrs or not t.values:
            continue
        seen.add(key)
        try:
            cand = space.build(t.params)
        except Exception:
            cand = parse(t.user_attrs["expression"])
        rows.append(Row(0, t.number, cand.text, float(t.values[0]), t.user_attrs.get("accuracy_std"),
                        t.user_attrs.get("test_accuracy_mean"), t.user_attrs.get("reference"), cand,
                        list(t.user_attrs.get("seeds", []))))
    for name, rec in (study.user_attrs.get(REFERENCES_ATTR) or {}).items():
        if rec.get("accuracy_mean") is None or rec.get("status") == "diverged":
            continue
        cand = parse(REFERENCES.get(name, rec["expression"]))
        rows.append(Row(0, None, cand.text, float(rec["accuracy_mean"]), rec.get("accuracy_std"),
                        rec.get("test_accuracy_mean"), name, cand, []))
    rows.sort(key=lambda r: (-r.accuracy, r.trial if r.trial is not None else -1))
    for i, r in enumerate(rows, start=1):
        r.rank = i
    return rows


def study_summary(study: optuna.Study) -> str:
    trials = study.get_trials(deepcopy=False)
    dup = sum("duplicate_of" in t.user_attrs for t in trials)
    count = {s: sum(t.state == s and "duplicate_of" not in t.user_attrs for t in trials) for s in TrialState}
    degenerate = sum(t.user_attrs.get("status") == "degenerate" for t in trials)
    failed = count[TrialState.FAIL] - degenerate
    return (f"study {study.study_name}: {len(trials)} trials — {count[TrialState.COMPLETE]} trained, "
            f"{count[TrialState.PRUNED]} pruned, {dup} duplicates (not retrained), {degenerate} degenerate, "
            f"{failed} failed" + (f", {count[TrialState.RUNNING]} running" if count[TrialState.RUNNING] else ""))


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if std is not None else f"{mean:.4f}"


def format_leaderboard(rows: Sequence[Row], k: int) -> str:
    """The top ``k`` rows, then the references that did not make it (so ReLU/Swish always show)."""
    shown = list(rows[:k]) + [r for r in rows[k:] if r.reference in ("relu", "swish")]
    if not shown:
        return "(no completed trials yet)"
    width = min(44, max(10, *(len(r.expression) for r in shown)))
    lines = [f"{'rank':>4}  {'trial':>6}  {'expression':<{width}}  {'val accuracy':<17}  {'test':>6}  nearest known"]
    for i, r in enumerate(shown):
        if i == k:
            lines.append(f"{'…':>4}")
        expr = r.expression if len(r.expression) <= width else r.expression[: width - 1] + "…"
        ref = f"  [{r.reference}]" if r.reference else ""
        test = f"{r.test:.4f}" if r.test is not None else "—"
        lines.append(f"{r.rank:>4}  {r.label:>6}  {expr:<{width}}  {_pm(r.accuracy, r.std):<17}  {test:>6}  "
                     f"{r.nearest()}{ref}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- verify
def verify(study: optuna.Study, k: int, seeds: int, fidelity: str = "full", device: str = "cpu",
           batch: int = 16, csv_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Re-train the top ``k`` candidates with ReLU and Swish on ``seeds`` fresh seeds (the same
    seeds for all: a paired design), at ``fidelity`` on the study's dataset.

    Returns the records of :func:`actsearch.compare.compare`, one per function: test accuracy mean ±
    std, the paired difference to ReLU (mean and std) and the p-value of a paired t-test
    (scipy.stats.ttest_rel). Saved as the study's user attribute ``verify`` and, with ``csv_path``,
    as CSV.
    """
    from .compare import compare, write_csv
    from .train import get_fidelity

    settings = read_settings(study)
    fid = get_fidelity(fidelity).replace(dataset=settings.dataset)
    top = [r for r in leaderboard(study, settings) if r.reference is None][:k]  # what the search found
    entries: list[tuple[str, str, Any]] = [(f"rank {r.rank} ({r.label})", r.expression, r.cand) for r in top]
    # Seeds the search never used (it trained on settings.seed + j): no selection bias.
    seed_list = [10_000 + settings.seed + j for j in range(seeds)]
    records = compare(entries, fid, seed_list, device=device, batch=batch)
    study.set_user_attr("verify", records)
    if csv_path is not None:
        write_csv(records, csv_path)
    return records


def format_verify(records: Sequence[dict[str, Any]]) -> str:
    lines = [f"{'':<16}{'expression':<34}{'test accuracy':<19}{'Δ vs ReLU':>10}  {'p (paired t)':>12}"]
    for r in records:
        d = f"{r['diff_vs_relu']:+.4f}" if r["diff_vs_relu"] is not None else "—"
        p = f"{r['p_value']:.3g}" if r["p_value"] is not None else "—"
        expr = r["expression"] if len(r["expression"]) <= 32 else r["expression"][:31] + "…"
        name = r["name"] if len(r["name"]) <= 15 else r["name"][:14] + "…"
        lines.append(f"{name:<16}{expr:<34}{_pm(r['test_mean'], r['test_std']):<19}{d:>10}  {p:>12}")
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- export
def export_top(study: optuna.Study, k: int, output: str | Path) -> tuple[Path, list[Row]]:
    """The top ``k`` distinct functions (references excluded) as an importable module."""
    from .export import write_module

    rows = [r for r in leaderboard(study) if r.trial is not None and r.reference is None][:k]
    if not rows:
        from .errors import ActsearchError

        raise ActsearchError(f"study {study.study_name!r} has no completed candidate to export yet")
    names = [f"top{i}" for i in range(1, len(rows) + 1)]
    docs = [f"Rank {r.rank} of study {study.study_name!r} (trial {r.trial}): validation accuracy "
            f"{_pm(r.accuracy, r.std)} over seeds {r.seeds}; test {r.test if r.test is None else round(r.test, 4)}. "
            f"Nearest known activation: {r.nearest()}." for r in rows]
    header = (f"Activation functions found by actsearch in study {study.study_name!r}.\n\n"
              f"The top {len(rows)} by mean validation accuracy. Needs only torch: `from this_file import *`.")
    return write_module([r.cand for r in rows], output, names=names, docs=docs, header=header), rows
