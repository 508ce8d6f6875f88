"""``actsearch predict``: a function's accuracy predicted from a study's trained trials, untrained.

The surrogate of ``--sampler surrogate`` (:mod:`actsearch.search.surrogate`): features measured
without training at the study's fidelity, a Gaussian process fitted on the study's trained
functions (its predicted mean ± sd) and the failure hurdle (the probability training fails).

On a study of a user's task (``--task``) only the output features apply — f and f′ of the function
on N(0,1) inputs, which do not depend on the network; the child-at-init and Fisher features are
measured on a built-in child, which says nothing about the user's model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import optuna
from optuna.study import StudyDirection

from ..errors import ActsearchError
from ..search import DEFAULT_GROUPS, FeatureCache, fidelity_for, make_predictor, read_settings, study_training_set
from .compare import candidate_of_text

__all__ = ["Predicted", "predict_accuracy", "format_predictions", "MIN_TRAINED", "OUTPUT_ONLY"]

#: The feature groups that apply to a user's model.
OUTPUT_ONLY = ("output",)
#: Fewer trained functions than this and a prediction would only be the study's mean.
MIN_TRAINED = 5


@dataclass
class Predicted:
    text: str  # as the user gave it
    expression: str  # the parsed function
    mean: float
    sd: float
    p_fail: float
    recorded: float | None  # the study's own score of an equivalent function, if it trained one


def predict_accuracy(study: optuna.Study, texts: Sequence[str]) -> list[Predicted]:
    """One prediction per text, in order. Every text is checked before any feature is computed."""
    cands = [candidate_of_text(t) for t in texts]
    settings = read_settings(study)
    if settings.multi_objective:
        raise ActsearchError(f"study {study.study_name!r} has two objectives; predict needs a single-objective study")
    space = settings.load_space()
    # A user's task: the features of the function alone (see the module doc); "quick" names no child then.
    cache = (FeatureCache.shared(fidelity_for(settings), DEFAULT_GROUPS) if settings.task is None
             else FeatureCache.shared("quick", OUTPUT_ONLY))
    x_ok, y_ok, x_failed, keys = study_training_set(study, space, cache)
    if len(y_ok) < MIN_TRAINED:
        raise ActsearchError(f"study {study.study_name!r} has {len(y_ok)} trained function(s); predict needs at "
                             f"least {MIN_TRAINED} (run more trials first)")
    pred = make_predictor("gp").fit(x_ok, y_ok, x_failed).predict(np.stack([cache.get(c) for c in cands]))
    cache.persist()  # the next predict (or a surrogate search) of this fidelity reads them back
    sign = 1.0 if study.direction == StudyDirection.MAXIMIZE else -1.0  # the training set is maximized
    recorded = dict(zip(keys, (sign * y_ok).tolist()))
    return [Predicted(t, c.text, sign * float(pred.mean[i]), float(pred.sd[i]), float(pred.p_fail[i]),
                      recorded.get(c.key))
            for i, (t, c) in enumerate(zip(texts, cands))]


def format_predictions(rows: Sequence[Predicted]) -> str:
    width = max(len(r.text) for r in rows)
    lines = []
    for r in rows:
        extra = f"  (recorded {r.recorded:.4f})" if r.recorded is not None else ""
        lines.append(f"{r.text:<{width}}  {r.mean:.4f} ± {r.sd:.4f}  p(fail) {r.p_fail:.2f}{extra}")
    return "\n".join(lines)
