"""The reference activations every study is measured against (ReLU, Swish, SiLU, GELU, tanh, ELU).

The registry marks them (:func:`actsearch.expressions.references`). When a study is created, each
reference the space can express is enqueued as a trial (tagged ``reference``), so the sampler's
own functions are ranked beside it; the ones the space cannot express are trained once, beside
the space, on the study's seeds and fidelity, and recorded in the study's user attribute
``references`` — so a leaderboard always shows where ReLU and Swish stand.
"""
from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import TrialState

from ..evaluation import overall_status, summarize
from ..expressions import Candidate, Space, parse, references
from .samplers import population_seeds
from .settings import REFERENCES_ATTR, SearchSettings, task_for

__all__ = ["setup_references", "drop_duplicate_references", "reference_candidates", "REFERENCE_SEARCH_LIMIT"]

#: Spaces up to this many structures are searched for each reference (paper-1: 6,250 in ~12 s).
REFERENCE_SEARCH_LIMIT = 20_000


def reference_candidates() -> dict[str, Candidate]:
    """name -> candidate of each reference activation, ReLU and Swish first."""
    return {a.name: parse(a.expression) for a in references()}


def setup_references(study: optuna.Study, space: Space, settings: SearchSettings, device: str = "cpu") -> None:
    """Enqueue the references the space can express; train the rest once, beside the space.

    Idempotent in the storage, not by timing: two processes that open a new study at the same
    moment may both enqueue, but each then keeps, per reference, only the trial with the lowest
    number — trial numbers are assigned atomically, so both keep the same one — and fails the
    others uncounted (:func:`drop_duplicate_references`)."""
    wanted = reference_candidates()
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
    tagged = {t.user_attrs.get("reference") for t in study.get_trials(deepcopy=False)}
    for name, params in found.items():
        if name not in tagged:
            study.enqueue_trial(params, user_attrs={"reference": name})
    drop_duplicate_references(study)
    outside = [n for n in wanted if n not in found]
    if not outside:
        study.set_user_attr(REFERENCES_ATTR, {})
        return
    seeds = population_seeds(settings.seed, settings.seeds)
    acts = [wanted[n] for n in outside for _ in seeds]
    results = task_for(settings, study.study_name).evaluate(acts, list(seeds) * len(outside), device=device)
    table: dict[str, dict[str, Any]] = {}
    for i, name in enumerate(outside):
        rs = results[i * len(seeds):(i + 1) * len(seeds)]
        table[name] = {"expression": wanted[name].source, "status": overall_status(rs)[0], **summarize(rs),
                       "in_space": False}
    study.set_user_attr(REFERENCES_ATTR, table)


def drop_duplicate_references(study: optuna.Study) -> int:
    """Per reference, keep the trial with the lowest number; fail every other one (status
    ``duplicate_reference``, which the budget does not count). Returns how many were dropped."""
    keep: dict[str, int] = {}
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    dropped = 0
    for t in trials:
        name = t.user_attrs.get("reference")
        if name is None or t.state == TrialState.FAIL:
            continue
        if name not in keep:
            keep[name] = t.number
            continue
        if t.state.is_finished():  # finished already (an earlier version's study): leave its record
            continue
        storage = study._storage
        storage.set_trial_user_attr(t._trial_id, "status", "duplicate_reference")
        storage.set_trial_user_attr(t._trial_id, "fail_reason", f"reference {name} is trial {keep[name]}")
        dropped += storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    return dropped
