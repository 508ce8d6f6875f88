"""What a study found: the leaderboard, its verification at higher fidelity, its export.

The leaderboard has one row per distinct function (duplicates fold into the trial that trained
it), ranked by mean validation accuracy, with the reference activations (ReLU, Swish …) ranked
among them — those the space expresses are trials, the others were trained beside it at creation
(:func:`actsearch.search.setup_references`) — so it always shows where ReLU and Swish stand. The
tables themselves are :mod:`.report`'s.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..errors import ActsearchError
from ..evaluation import Task, get_fidelity
from ..expressions import Candidate, parse, write_module
from ..search import REFERENCES_ATTR, SearchSettings, read_settings, reference_candidates, task_for
from .compare import compare, pm, write_csv
from .shape import nearest

__all__ = ["Row", "leaderboard", "top_candidates", "verify", "export_top", "BASELINES"]


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
    ood: float | None = None  # accuracy on the shifted test set

    @property
    def label(self) -> str:
        return f"#{self.trial}" if self.trial is not None else "ref"

    def nearest(self) -> str:
        try:
            return str(nearest(self.cand))
        except Exception as exc:  # shape fitting is a description, not a reason to fail the table
            return f"? ({type(exc).__name__})"


def leaderboard(study: optuna.Study, settings: SearchSettings | None = None) -> list[Row]:
    """Every distinct completed function and every reference, best first."""
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
                        list(t.user_attrs.get("seeds", [])), t.user_attrs.get("ood_accuracy_mean")))
    known = reference_candidates()
    for name, rec in (study.user_attrs.get(REFERENCES_ATTR) or {}).items():
        if rec.get("accuracy_mean") is None or rec.get("status") == "diverged":
            continue
        cand = known.get(name) or parse(rec["expression"])
        rows.append(Row(0, None, cand.text, float(rec["accuracy_mean"]), rec.get("accuracy_std"),
                        rec.get("test_accuracy_mean"), name, cand, [], rec.get("ood_accuracy_mean")))
    rows.sort(key=lambda r: (-r.accuracy, r.trial if r.trial is not None else -1))
    for i, r in enumerate(rows, start=1):
        r.rank = i
    return rows


#: The references every verification trains beside the candidates (:func:`actsearch.analysis.compare`).
BASELINES = ("relu", "swish")


def top_candidates(rows: list[Row], k: int, exporting: bool = False) -> tuple[list[Row], list[str]]:
    """The search's own top ``k`` (references are baselines, not findings), and one note per
    reference ranked above the last of them, saying it was skipped and why — so "top K" never
    passes over a better row in silence. Duplicates are already folded into the trial they copy.
    ``exporting``: the notes say "not exported" rather than how a verification treats them."""
    top = [r for r in rows if r.reference is None][:k]
    last = top[-1].rank if top else 0
    notes = []
    for r in rows:
        if r.reference is None or r.rank > last:
            continue
        what = f"rank {r.rank} ({r.label}) {r.expression} is the {r.reference} reference"
        if exporting:
            notes.append(f"{what}, not a search result: not exported "
                         f"(actsearch.get_activation({r.reference!r}) builds it)")
        elif r.reference in BASELINES:
            notes.append(f"{what}: verified as the baseline {r.reference!r}")
        else:
            notes.append(f"{what}, not a search result: skipped (`actsearch compare {r.reference}` verifies it)")
    return top, notes


# -------------------------------------------------------------------------------------- verify
def verify(study: optuna.Study, k: int, seeds: int, fidelity: str | Task | None = None, device: str = "cpu",
           batch: int = 16, csv_path: str | Path | None = None) -> list[dict[str, Any]]:
    """Re-train the top ``k`` candidates with ReLU and Swish on ``seeds`` fresh seeds (the same
    seeds for all: a paired design), at ``fidelity`` on the study's dataset (default ``full``), or
    through the study's own task when it has one (a user's, :class:`~actsearch.evaluation.Task`).

    Returns the records of :func:`actsearch.analysis.compare.compare`, one per function: test accuracy mean ±
    std, the paired difference to ReLU (mean and std) and the p-value of a paired t-test
    (scipy.stats.ttest_rel). Saved as the study's user attribute ``verify`` and, with ``csv_path``,
    as CSV.
    """
    settings = read_settings(study)
    if settings.task is not None:
        if fidelity is not None and not isinstance(fidelity, Task):
            raise ActsearchError(f"study {study.study_name!r} scores the task {settings.task.get('name')!r}: verify "
                                 "re-trains through it (drop --fidelity)")
        fid: Task = fidelity if isinstance(fidelity, Task) else task_for(settings, study.study_name)
    else:
        fid = fidelity if isinstance(fidelity, Task) else task_for(
            dataclasses.replace(settings, fidelity=get_fidelity(fidelity or "full").name), study.study_name)
    top, _ = top_candidates(leaderboard(study, settings), k)  # what the search found
    entries: list[tuple[str, str, Any]] = [(f"rank {r.rank} ({r.label})", r.expression, r.cand) for r in top]
    # Seeds the search never used (it trained on settings.seed + j): no selection bias.
    seed_list = [10_000 + settings.seed + j for j in range(seeds)]
    records = compare(entries, fid, seed_list, device=device, batch=batch)
    study.set_user_attr("verify", records)
    if csv_path is not None:
        write_csv(records, csv_path)
    return records


# -------------------------------------------------------------------------------------- export
def export_top(study: optuna.Study, k: int, output: str | Path) -> tuple[Path, list[Row], list[str]]:
    """The search's own top ``k`` distinct functions as an importable module; returns (path, rows,
    notes on the references ranked among them, which are skipped: see :func:`top_candidates`).
    Each function is named after its leaderboard rank (``rank2``/``Rank2``), so the module, its
    docstrings and ``actsearch top`` agree."""
    board = leaderboard(study)
    rows, notes = top_candidates(board, k, exporting=True)
    if not rows:
        raise ActsearchError(f"study {study.study_name!r} has no completed candidate to export yet")
    names = [f"rank{r.rank}" for r in rows]
    docs = [f"Rank {r.rank} of study {study.study_name!r} (trial {r.trial}): validation accuracy "
            f"{pm(r.accuracy, r.std)} over seeds {r.seeds}; test {r.test if r.test is None else round(r.test, 4)}. "
            f"Nearest known activation: {r.nearest()}." for r in rows]
    ranks = ", ".join(str(r.rank) for r in rows)
    skipped = [r for r in board if r.reference is not None and r.rank < rows[-1].rank]
    refs = (f" Ranks {', '.join(f'{r.rank} ({r.reference})' for r in skipped)} are reference activations, not "
            "exported: `actsearch.get_activation(name)` builds them." if skipped else "")
    header = (f"Activation functions found by actsearch in study {study.study_name!r}.\n\n"
              f"The search's own top {len(rows)} by mean validation accuracy: leaderboard ranks {ranks}.{refs} "
              "Needs only torch: `from this_file import *`.")
    return write_module([r.cand for r in rows], output, names=names, docs=docs, header=header), rows, notes
