"""The noise of a fidelity's score: paired sds, detectable effects, the two halves' τ."""
from __future__ import annotations

import math

import pytest

from actsearch.analysis import PANEL, format_noise, mde, measure_noise
from actsearch.cli import main
from actsearch.evaluation import get_fidelity

SMOKE = get_fidelity("smoke").replace(steps=40, eval_every=20)


def test_minimal_detectable_effect_is_the_paired_t_formula() -> None:
    # (t_0.975,9 + t_0.8,9) / sqrt(10) = (2.2622 + 0.8834) / 3.1623
    assert mde(1.0, 10) == pytest.approx(0.9947, abs=1e-3)
    assert mde(2.0, 5) == pytest.approx(2 * (2.7764 + 0.9410) / math.sqrt(5), abs=1e-3)
    assert mde(None, 10) is None and mde(1.0, 1) is None


def test_the_panel_on_paired_seeds() -> None:
    rep = measure_noise(SMOKE, [0, 1, 2, 3], batch=14)
    assert [r.name for r in rep.rows] == list(PANEL)
    relu = rep.rows[0]
    for r in rep.rows[1:]:
        diffs = [a - b for a, b in zip(r.val, relu.val)]
        assert r.val_diff_mean == pytest.approx(sum(diffs) / 4)
        assert r.val_diff_sd == pytest.approx(math.sqrt(sum((d - r.val_diff_mean) ** 2 for d in diffs) / 3))
    assert rep.tau is not None and -1 <= rep.tau <= 1 and rep.seconds_per_candidate > 0
    assert all(len(h) == len(PANEL) for h in rep.halves)
    text = format_noise(rep)
    assert "Kendall τ" in text and "MDE10" in text and "relu" in text


def test_noise_command(capsys, tmp_path) -> None:
    out = tmp_path / "noise.csv"
    assert main(["noise", "--fidelity", "smoke", "--seeds", "4", "--csv", str(out)]) == 0
    assert "paired-difference sd vs ReLU" in capsys.readouterr().out
    assert len(out.read_text().splitlines()) == 1 + len(PANEL)
    assert main(["noise", "--fidelity", "smoke,nosuch", "--seeds", "4"]) == 2
