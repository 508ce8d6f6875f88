"""The noise of a fidelity's score: paired sds, detectable effects, the two halves' τ."""
from __future__ import annotations

import math

import pytest

from actsearch.analysis import PANEL, NoiseReport, NoiseRow, format_noise, mde, measure_noise
from actsearch.cli import main
from actsearch.errors import UnknownFidelityError
from actsearch.evaluation import get_fidelity, split_fidelities

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


def _report(rows: list[NoiseRow]) -> NoiseReport:
    relu = rows[0]
    for r in rows[1:]:
        d = [a - b for a, b in zip(r.val, relu.val)]
        r.val_diff_mean = sum(d) / len(d)
        r.val_diff_sd = math.sqrt(sum((x - r.val_diff_mean) ** 2 for x in d) / (len(d) - 1))
        t = [a - b for a, b in zip(r.test, relu.test)]
        r.test_diff_mean = sum(t) / len(t)
    return NoiseReport(SMOKE, [0, 1, 2, 3], rows, 1.0, 1.0, 1.0, ([], []), num_classes=10)


def test_room_and_power_from_the_rows() -> None:
    rep = _report([
        NoiseRow("relu", "relu(x)", [0.50, 0.52, 0.48, 0.50], [0.5] * 4, [0.1] * 4),
        NoiseRow("swish", "x*sigmoid(x)", [0.60, 0.61, 0.56, 0.59], [0.57] * 4, [0.1] * 4),
        NoiseRow("tanh", "tanh(x)", [0.40, 0.50, 0.42, 0.48], [0.45] * 4, [0.1] * 4),
        # near chance (10 classes: under 2x chance) -> does not train, not in the power figure
        NoiseRow("x*atan(x)", "x*atan(x)", [0.10, 0.30, 0.11, 0.12], [0.1] * 4, [0.1] * 4),
        # one seed diverged -> does not train
        NoiseRow("cos(x) - x", "cos(x) - x", [0.55, math.nan, 0.50, 0.52], [0.5] * 4, [0.1] * 4),
    ])
    val, test, spread = rep.room()
    assert val == pytest.approx(0.09) and test == pytest.approx(0.07)
    assert spread == pytest.approx(0.59 - 0.1575)
    assert [rep.trains(r) for r in rep.rows] == [True, True, True, False, False]
    sd, who = rep.power()
    tanh_sd = rep.rows[2].val_diff_sd
    assert who == "tanh" and sd == pytest.approx(tanh_sd) and tanh_sd > rep.rows[1].val_diff_sd
    assert rep.rows[3].val_diff_sd > tanh_sd  # the excluded function is noisier still
    text = format_noise(rep)
    assert "room: Swish − ReLU +9.00 (val), +7.00 (test) points" in text
    assert f"over the 2 functions that train {100 * tanh_sd:.2f} points (tanh)" in text
    assert "not training (under 2x chance or diverged): x*atan(x), cos(x) - x" in text


def test_noise_grid_and_panel(capsys) -> None:
    argv = ["noise", "--fidelity", "smoke", "--seeds", "4", "--panel", "swish", "cos(x) - x",
            "--grid", "depth=1,2", "--grid", "norm=none,batch"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    summary = out[out.index("summary"):].splitlines()[2:]
    assert [line.split()[0] for line in summary] == [
        "smoke[depth=1,norm=none]", "smoke[depth=1,norm=batch]", "smoke[depth=2,norm=none]", "smoke[depth=2,norm=batch]"]
    assert "MLP 2x16" not in out and "MLP 16-16 (batchnorm)" in out  # depth=2 keeps the 16 units
    for bad in (["--grid", "depth=0"], ["--grid", "colour=red"], ["--grid", "norm=group"], ["--grid", "depth"],
                ["--panel", "nosuch"]):
        assert main(["noise", "--fidelity", "smoke", "--seeds", "4", *bad]) == 2
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1


def test_fidelity_vary_and_the_deep_preset() -> None:
    deep = get_fidelity("deep")
    assert deep.model.kind == "mlp" and deep.model.widths == (64,) * 16 and deep.model.init == "he"
    assert deep.model.norm == "none" and deep.dataset == "mnist1d-large" and deep.score_checkpoints == 3
    assert deep.describe().startswith("MLP 16x64 (he init) on mnist1d-large")
    v = deep.vary(depth="32", width="128", norm="batch", init="default", lr="0.003", steps="100")
    assert v.name == "deep[depth=32,width=128,norm=batch,init=default,lr=0.003,steps=100]"
    assert v.model.widths == (128,) * 32 and v.model.norm == "batch" and v.model.init == "default"
    assert v.lr == 0.003 and v.steps == 100 and deep.model.widths == (64,) * 16  # the preset is unchanged
    with pytest.raises(ValueError, match="depth applies to an MLP"):
        get_fidelity("power").vary(depth="8")
    with pytest.raises(ValueError, match="unknown initializer"):
        deep.vary(init="hee")
    # a variant's name is a fidelity too: what a study records, --transfer and noise take
    assert get_fidelity(v.name) == v
    assert split_fidelities("deep[depth=32,width=128], power,quick") == ["deep[depth=32,width=128]", "power", "quick"]
    for bad in ("deep[depth=32", "deep[depth]", "deep[colour=red]", "nosuch[depth=2]", "power[depth=2]"):
        with pytest.raises(UnknownFidelityError):
            get_fidelity(bad)
