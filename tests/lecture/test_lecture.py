"""The lecture's experiments at a tiny size: each checks the property it is about, from the
numbers it computed and from the files it wrote (re-read), plus the CLI's listing and errors."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch

from actsearch.cli import main
from actsearch.evaluation import Dataset, load_dataset
from actsearch.lecture import EXPERIMENTS, ExperimentResult, list_experiments, run_experiment


@pytest.fixture(scope="module")
def mnist() -> Dataset:
    return load_dataset("mnist")  # the bundled digits: offline, cached after the first load


def _run(name: str, out: Path, data: Dataset | None = None) -> ExperimentResult:
    res = run_experiment(name, out, quick=True, seed=0, dataset=data)
    for f in ("results.csv", "results.md", "command.txt", "finding.txt"):
        assert (out / f).is_file(), f
    assert list(out.glob("*.png")), "no figure"
    assert (out / "finding.txt").read_text().strip() == res.finding
    assert (out / "command.txt").read_text().split()[:3] == ["actsearch", "experiment", name]
    assert "--quick" in (out / "command.txt").read_text()
    return res


def _csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_forward_stats_he_keeps_relu_variance(tmp_path: Path) -> None:
    res = _run("forward-stats", tmp_path)
    ratio = res.metrics["var_ratio"]
    assert 0.3 < ratio[("relu", "he")] < 3.0  # He: roughly constant across depth
    assert ratio[("relu", "0.01*randn")] < 1e-6  # small init: collapses
    assert ratio[("relu", "xavier")] < 0.3  # Xavier halves it every layer
    rows = _csv(tmp_path / "results.csv")
    assert len(rows) == 3 * 4 * 5
    sat = {(r["activation"], r["init"], r["layer"]): float(r["frac_grad_vanished"]) for r in rows}
    assert sat[("tanh", "randn", "5")] > 0.5 > sat[("tanh", "xavier", "5")]


def test_init_training_flat_then_xavier_decreases(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("init-training", tmp_path, mnist)
    s = {(r["lr"], r["init"]): r for r in res.metrics["summary"]}
    assert s[(0.5, "0.01*randn")]["flat iterations (1%)"] >= 10  # the lecture's flat start
    xav = res.metrics["curves"][(0.5, "xavier")]
    assert sum(xav[-8:]) / 8 < 0.5 * xav[0]  # Xavier: loss decreasing
    assert s[(0.5, "randn")]["saturated_mean"] > 0.5
    assert len(_csv(tmp_path / "results.csv")) == sum(len(c) for c in res.metrics["curves"].values())


def test_relu_init_he_vs_xavier(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("relu-init", tmp_path, mnist)
    std = res.metrics["std_at_init"]
    assert std["xavier"][-1] / std["xavier"][0] < 0.3
    assert 0.5 < std["he"][-1] / std["he"][0] < 2.0


def test_batchnorm_normalizes_per_unit(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("batchnorm", tmp_path, mnist)
    for when in ("init", "trained"):
        m = res.metrics["bn_moments"][when]
        assert m["max_abs_mean"] < 1e-4
        assert 0.99 < m["min_var"] <= m["max_var"] < 1.01
    s = {r["norm"]: r for r in res.metrics["summary"]}
    assert s["batch"]["batch of 1 (train mode)"].startswith("error")  # BN's batch-of-one limitation
    assert s["layer"]["batch of 1 (train mode)"] == "works"
    assert s["batch"]["loss last 10%"] < s["none"]["loss last 10%"]


def test_pretraining_experiment_lowers_reconstruction(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("pretraining", tmp_path, mnist)
    assert res.metrics["lowered"]
    layers = _csv(tmp_path / "layers.csv")
    assert layers and all(float(r["mse_after"]) < float(r["mse_before"]) for r in layers)


def test_symmetry_rows_stay_equal(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("symmetry", tmp_path, mnist)
    for r in res.metrics["rows"]:
        if r["init"] in ("zeros", "constant 0.1"):
            assert r["max_row_gap"] == 0.0 and r["distinct_rows"] == 1
            assert r["mean_row_norm"] > 0  # they did train, just in lockstep
        else:
            assert r["distinct_rows"] == r["units"]


def test_dead_relu_rises_with_lr_and_bias_leaky_never_dies(tmp_path: Path, mnist: Dataset) -> None:
    res = _run("dead-relu", tmp_path, mnist)
    rows = res.metrics["rows"]
    relu = {(r["sweep"], r["value"]): r["dead_after"] for r in rows if r["activation"] == "relu"}
    assert relu[("lr", 3.0)] > relu[("lr", 0.01)] + 0.5
    assert relu[("bias", -3.0)] > relu[("bias", 0.0)] + 0.5
    leaky = [r["dead_after"] for r in rows if r["activation"] == "leaky_relu" and r["status"] == "ok"]
    assert leaky and max(leaky) == 0.0


def test_activation_zoo_table_matches_runs(tmp_path: Path) -> None:
    _run("activation-zoo", tmp_path)
    runs = _csv(tmp_path / "runs.csv")
    table = {r["activation"]: r for r in _csv(tmp_path / "results.csv")}
    relu = [float(r["test_accuracy"]) for r in runs if r["activation"] == "relu"]
    assert len(relu) == 2
    assert float(table["relu"]["test_mean"]) == pytest.approx(sum(relu) / 2, abs=1e-5)
    assert float(table["relu"]["test_std"]) == pytest.approx(torch.tensor(relu).std().item(), abs=1e-5)
    assert float(table["relu"]["test_mean"]) > 0.5  # chance is 0.25 on `tiny`


def test_depth_table_figure_and_finding(tmp_path: Path) -> None:
    res = _run("depth", tmp_path)
    runs = _csv(tmp_path / "runs.csv")
    # every (norm, depth, activation) cell trained on the same 2 seeds, with and without BatchNorm
    cells = {(r["norm"], r["depth"], r["activation"]) for r in runs}
    assert {n for n, _, _ in cells} == {"none", "batch"} and {d for _, d, _ in cells} == {"2", "4"}
    assert len(runs) == 2 * len(cells)
    table = {(r["norm"], r["depth"], r["activation"]): r for r in _csv(tmp_path / "results.csv")}
    relu4 = [float(r["test_accuracy"]) for r in runs if (r["norm"], r["depth"], r["activation"]) == ("none", "4", "ReLU")]
    assert float(table[("none", "4", "ReLU")]["test_mean"]) == pytest.approx(sum(relu4) / 2, abs=1e-5)
    swish4 = float(table[("none", "4", "Swish (SiLU)")]["test_mean"])
    assert res.metrics["gap"][("none", 4)] == pytest.approx(swish4 - sum(relu4) / 2, abs=1e-5)
    assert f"4 layers {100 * res.metrics['gap'][('none', 4)]:+.1f}" in res.finding
    assert min(float(r["test_mean"]) for r in table.values()) > 0.5  # chance is 0.25 on `tiny`


def test_depth_resumes_from_its_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import actsearch.lecture._depth as depth

    trained = []
    real = depth.train_population

    def stop_at_third(*args, **kwargs):  # type: ignore[no-untyped-def]
        trained.append(args[1].name)
        if len(trained) == 3:
            raise KeyboardInterrupt  # Ctrl-C in the third population
        return real(*args, **kwargs)

    monkeypatch.setattr(depth, "train_population", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        run_experiment("depth", tmp_path, quick=True)
    assert len(_csv(tmp_path / "runs.smoke.partial.csv")) == 2 * 2 * 2  # two populations of 2 functions x 2 seeds
    trained.clear()
    monkeypatch.setattr(depth, "train_population", lambda *a, **k: (trained.append(a[1].name), real(*a, **k))[1])
    run_experiment("depth", tmp_path, quick=True)
    assert trained == ["smoke[depth=2,norm=batch]", "smoke[depth=4,norm=batch]"]  # only what was left
    assert len(_csv(tmp_path / "runs.csv")) == 16 and not (tmp_path / "runs.smoke.partial.csv").exists()


def test_cli_list_and_unknown_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "--list"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in out] == list(EXPERIMENTS) == [n for n, _ in list_experiments()]
    assert len(out) == 9
    assert main(["experiment", "symetry"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "did you mean 'symmetry'" in err
    assert main(["experiment"]) == 2
    assert "--list" in capsys.readouterr().err


def test_cli_runs_into_output_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "fs"
    assert main(["experiment", "forward-stats", "--quick", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "finding: forward-stats" in printed
    assert (out / "command.txt").read_text().strip().endswith(f"forward-stats --quick --output {out}")
