"""The surrogate's predictors on synthetic data: they must rank held-out points and flag failures."""
from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

from actsearch.errors import ActsearchError
from actsearch.search import make_predictor


def _data(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(seed)
    x = rng.normal(size=(n, 6))
    y = np.sin(x[:, 0]) + 0.5 * x[:, 1] + 0.01 * rng.normal(size=n)
    return x, y


@pytest.mark.parametrize("name, floor", [("gp", 0.9), ("knn", 0.3)])
def test_predictor_ranks_held_out_points(name: str, floor: float) -> None:
    x, y = _data(300)
    pred = make_predictor(name).fit(x[:100], y[:100]).predict(x[100:])
    assert spearmanr(pred.mean, y[100:]).statistic > floor
    assert (pred.sd >= 0).all() and np.isfinite(pred.mean).all()


def test_gp_is_uncertain_far_from_its_data() -> None:
    x, y = _data(100)
    # "standard" scaling keeps distances (the default quantile transform caps them at the data's range)
    pred = make_predictor("gp", transform="standard").fit(x, y).predict(np.vstack([x[:1], x[:1] + 20.0]))
    assert pred.sd[1] > 5 * pred.sd[0]
    capped = make_predictor("gp").fit(x, y).predict(np.vstack([x[:1], x[:1] + 20.0]))
    assert capped.sd[1] < pred.sd[1]


def test_hurdle_skips_the_region_where_training_failed() -> None:
    x, y = _data(200)
    failed = x[:, 2] > 1.0
    x[failed, 2] += 4.0  # functions that diverge stand apart in their features (overflowing outputs)
    model = make_predictor("gp").fit(x[:150][~failed[:150]], y[:150][~failed[:150]], x[:150][failed[:150]])
    pred = model.predict(x[150:])
    acq = pred.acquisition()
    assert (pred.p_fail[failed[150:]] > 0.5).mean() > 0.7
    assert (pred.p_fail[~failed[150:]] <= 0.5).mean() > 0.8
    assert np.isneginf(acq[pred.p_fail > 0.5]).all()
    no_hurdle = make_predictor("gp", hurdle=False).fit(x[:150][~failed[:150]], y[:150][~failed[:150]],
                                                       x[:150][failed[:150]]).predict(x[150:])
    assert (no_hurdle.p_fail == 0).all()


def test_too_few_points_give_the_prior_and_unknown_names_are_refused() -> None:
    x, y = _data(2)
    pred = make_predictor("gp").fit(x, y).predict(x)
    assert np.allclose(pred.mean, y.mean())
    with pytest.raises(ActsearchError, match="unknown predictor"):
        make_predictor("forest")
