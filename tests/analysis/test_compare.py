"""Paired comparisons (`actsearch compare`, actsearch.compare) and the transfer check
(`actsearch rediscover --transfer [--transfer-only]`), at smoke fidelity on the tiny data."""
from __future__ import annotations

import csv
import math
import shutil
import statistics
from pathlib import Path

import optuna
import pytest
from scipy import stats

from actsearch.cli import main
from actsearch.analysis import compare, format_transfer, format_verify, read_csv, write_csv
from actsearch.evaluation import mean_std
from actsearch.evaluation import build_model
from actsearch.expressions import parse
from actsearch.evaluation import get_fidelity, train_one

# The population engine matches a solo run up to float rounding (tests/test_population.py): 1e-4 in
# the loss can flip a borderline test example or two of tiny's 200.
ACC_TOL = 0.0151


def test_mean_std_is_the_sample_mean_and_std_of_the_finite_values() -> None:
    xs = [0.91, 0.93, 0.88, 0.95]
    assert mean_std(xs) == pytest.approx((statistics.mean(xs), statistics.stdev(xs)), rel=1e-12)
    assert mean_std(xs + [None, math.nan]) == pytest.approx(mean_std(xs), rel=1e-12)
    assert mean_std([0.5]) == (0.5, None)
    assert mean_std([]) == (None, None) and mean_std([None, math.nan]) == (None, None)


def test_compare_trains_paired_seeds_and_its_statistics_match_scipy() -> None:
    seeds = [3, 4, 5]
    # batch 4 splits the 9 networks into populations of 4, 4, 1: results must still land in order.
    recs = compare([("tanh", "tanh(x)", parse("tanh(x)"))], "smoke", seeds, batch=4)
    assert [r["name"] for r in recs] == ["tanh", "relu", "swish"]
    by = {r["name"]: r for r in recs}
    for j, s in enumerate(seeds):  # seed j of ReLU is the network train_one builds with seed s
        assert by["relu"]["test_accuracies"][j] == pytest.approx(train_one("relu", "smoke", seed=s).test_accuracy,
                                                                 abs=ACC_TOL)
    relu = by["relu"]["test_accuracies"]
    for r in recs:
        assert r["seeds"] == seeds and r["fidelity"] == "smoke" and len(r["test_accuracies"]) == 3
        assert (r["test_mean"], r["test_std"]) == pytest.approx(
            (statistics.mean(r["test_accuracies"]), statistics.stdev(r["test_accuracies"])), rel=1e-9)
    assert by["relu"]["diff_vs_relu"] is None and by["relu"]["diff_std"] is None and by["relu"]["p_value"] is None
    for name in ("tanh", "swish"):
        xs, diffs = by[name]["test_accuracies"], [a - b for a, b in zip(by[name]["test_accuracies"], relu)]
        assert by[name]["diff_vs_relu"] == pytest.approx(statistics.mean(diffs), abs=1e-12)
        assert by[name]["diff_std"] == pytest.approx(statistics.stdev(diffs), abs=1e-12)
        if any(diffs):
            assert by[name]["p_value"] == pytest.approx(stats.ttest_rel(xs, relu).pvalue, rel=1e-9)
        else:
            assert by[name]["p_value"] is None


def test_compare_keeps_a_reference_given_as_an_entry_once() -> None:
    recs = compare([("relu", "relu", "relu")], "smoke", [0, 1], batch=8)
    assert [r["name"] for r in recs] == ["relu", "swish"]


def test_csv_round_trip(tmp_path: Path) -> None:
    recs = [{"name": "a", "expression": "x*atan(x)", "test_mean": 0.9, "test_std": 0.01, "diff_vs_relu": 0.02,
             "diff_std": 0.005, "p_value": 0.03, "fidelity": "quick", "seeds": [7, 8], "test_accuracies": [0.89, 0.91]},
            {"name": "relu", "expression": "relu(x)", "test_mean": 0.88, "test_std": None, "diff_vs_relu": None,
             "diff_std": None, "p_value": None, "fidelity": "quick", "seeds": [7, 8], "test_accuracies": [0.88]}]
    back = read_csv(write_csv(recs, tmp_path / "sub" / "r.csv"))
    for a, b in zip(recs, back):
        assert {k: a[k] for k in a if k != "test_accuracies"} == {k: b[k] for k in b if k != "test_accuracies"}


def test_mnist_fidelity_is_a_2d_cnn_that_fits_28x28() -> None:
    fid = get_fidelity("mnist")
    assert fid.dataset == "mnist" and fid.model.kind == "cnn" and fid.batch_size == 100
    net = build_model(fid.model, "relu", (1, 28, 28), 10, seed=0)
    assert net.head.in_features == 32 * 4 * 4  # 28 -> 13 -> 7 -> 4


# ----------------------------------------------------------------------------------- the CLI
def test_compare_cli_prints_the_verify_table_and_writes_csv(tmp_path: Path, capsys) -> None:
    out = tmp_path / "c.csv"
    assert main(["compare", "x*atan(x)", "gelu", "--fidelity", "smoke", "--seeds", "2", "--seed-base", "7",
                 "--batch", "3", "--device", "cpu", "--csv", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Δ vs ReLU" in text and "p (paired t)" in text
    assert [line.split()[0] for line in text.splitlines()[1:5]] == ["x*atan(x)", "gelu", "relu", "swish"]
    rows = list(csv.DictReader(out.open()))
    assert [r["name"] for r in rows] == ["x*atan(x)", "gelu", "relu", "swish"]
    assert all(r["seeds"] == "7 8" and r["fidelity"] == "smoke" for r in rows)
    assert rows[2]["diff_vs_relu"] == rows[2]["diff_std"] == "" and rows[0]["diff_std"] != ""


@pytest.mark.parametrize(("argv", "message"), [
    (["foo(x)", "--fidelity", "smoke"], "unknown operator 'foo'"),
    (["reluu", "--fidelity", "smoke"], "did you mean 'relu'"),
    (["beta", "--fidelity", "smoke"], "does not depend on x"),
    (["x**", "--fidelity", "smoke"], "cannot parse"),
    (["__import__('os')", "--fidelity", "smoke"], "the name '__import__' is not allowed"),
    (["x", "--fidelity", "smok"], "did you mean 'smoke'"),
    (["x", "--fidelity", "smoke", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["x", "--fidelity", "smoke", "--seeds", "0"], "--seeds and --batch must be at least 1"),
    (["x", "--fidelity", "smoke", "--device", "bogus"], "bad --device 'bogus'"),
])
def test_compare_cli_bad_input_is_one_line_and_exit_2(argv: list[str], message: str, capsys) -> None:
    assert main(["compare", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_compare_cli_needs_a_fidelity(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["compare", "x"])
    assert exc.value.code == 2 and "--fidelity" in capsys.readouterr().err


# ------------------------------------------------------------------------------ transfer check
def _rec(name: str, mean: float, diff: float | None, p: float | None) -> dict:
    return {"name": name, "expression": name if name in ("relu", "swish") else f"{name}(x)", "test_mean": mean,
            "test_std": 0.01, "diff_vs_relu": diff, "diff_std": 0.01 if diff is not None else None, "p_value": p,
            "fidelity": "standard", "seeds": [10000, 10001, 10002], "test_accuracies": []}


def test_format_transfer_reports_order_rank_correlation_and_wins() -> None:
    verified = [_rec("sin", 0.95, 0.03, 0.01), _rec("cos", 0.94, 0.02, 0.02), _rec("relu", 0.92, None, None),
                _rec("swish", 0.93, 0.01, 0.2)]
    flipped = [_rec("sin", 0.90, -0.05, 0.001), _rec("cos", 0.91, -0.04, 0.3), _rec("relu", 0.95, None, None),
               _rec("swish", 0.94, -0.01, 0.4)]
    text = format_transfer(verified, {"quick": flipped}, command="actsearch rediscover --transfer quick")
    tau = stats.kendalltau([0.95, 0.94, 0.92, 0.93], [0.90, 0.91, 0.95, 0.94])
    assert "$ actsearch rediscover --transfer quick" in text
    assert "| `standard` (verified) | `sin(x)` > `cos(x)` > swish > relu | — | — | 2 of 2 |" in text
    assert f"| `quick` | relu > swish > `cos(x)` > `sin(x)` | {tau.statistic:+.2f} ({tau.pvalue:.2g}) |" in text
    assert "- top 2 beating ReLU here: 0 of 2" in text
    assert ("sin(x) [sin]: verified Δ +0.0300 ± 0.0100, p=0.01; here Δ -0.0500 ± 0.0100, p=0.001 → below ReLU"
            in text)
    assert ("cos(x) [cos]: verified Δ +0.0200 ± 0.0100, p=0.02; here Δ -0.0400 ± 0.0100, p=0.3 → not above ReLU"
            in text)


def test_format_transfer_reports_vs_swish_and_the_verified_nets_ood() -> None:
    def rec(name: str, test: list[float], ood: list[float]) -> dict:
        r = _rec(name, sum(test) / 3, None, None)
        return {**r, "test_accuracies": test, "ood_accuracies": ood, "ood_mean": sum(ood) / 3}

    verified = [rec("sin", [0.95, 0.96, 0.94], [0.50, 0.52, 0.51]), rec("relu", [0.90, 0.91, 0.92], [0.40, 0.41, 0.45]),
                rec("swish", [0.93, 0.93, 0.93], [0.49, 0.50, 0.51])]
    here = [rec("sin", [0.80, 0.81, 0.82], [math.nan] * 3), rec("relu", [0.80, 0.80, 0.80], [math.nan] * 3),
            rec("swish", [0.79, 0.79, 0.80], [math.nan] * 3)]
    text = format_transfer(verified, {"quick": here})
    # sin − swish here: 0.01, 0.02, 0.02 -> mean 0.0167, sd 0.0058
    p_here = stats.ttest_rel([0.80, 0.81, 0.82], [0.79, 0.79, 0.80]).pvalue
    assert f"vs Swish here Δ +0.0167 ± 0.0058, p={p_here:.3g}" in text
    assert "## OOD: the verified `standard` nets on the shifted test set" in text
    p_relu = stats.ttest_rel([0.50, 0.52, 0.51], [0.40, 0.41, 0.45]).pvalue
    p_swish = stats.ttest_rel([0.50, 0.52, 0.51], [0.49, 0.50, 0.51]).pvalue
    assert (f"sin(x) [sin]: OOD 0.5100; vs ReLU Δ +0.0900 ± 0.0265, p={p_relu:.3g}; vs Swish Δ +0.0100 ± 0.0100, "
            f"p={p_swish:.3g}") in text


@pytest.fixture(scope="module")
def rediscovered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A rediscover run with a transfer check at its own fidelity and on its own 2 verify seeds."""
    out = tmp_path_factory.mktemp("transfer") / "rd"
    assert main(["rediscover", "--space", "tiny", "--fidelity", "smoke", "--trials", "10", "--verify-k", "3",
                 "--verify-seeds", "2", "--output", str(out), "--quiet", "--device", "cpu",
                 "--transfer", "smoke", "--transfer-seeds", "2"]) == 0
    return out


def _by_name(rows: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in rows}


def test_transfer_at_the_verified_fidelity_reproduces_the_verification(rediscovered: Path) -> None:
    verified = read_csv(rediscovered / "verify.csv")
    moved = read_csv(rediscovered / "transfer.csv")
    top3 = sorted((r for r in verified if r["name"] not in ("relu", "swish")), key=lambda r: -r["test_mean"])[:3]
    assert [r["name"] for r in moved] == [r["name"] for r in top3] + ["relu", "swish"]
    assert all(r["seeds"] == [10000, 10001] and r["fidelity"] == "smoke" for r in moved)
    # Same child, same seeds, the search's own candidates (β initial values included): same networks.
    for name, r in _by_name(moved).items():
        assert r["test_mean"] == pytest.approx(_by_name(verified)[name]["test_mean"], abs=ACC_TOL)
    text = (rediscovered / "transfer.md").read_text()
    assert "| `smoke` (verified) |" in text and "## `smoke`: MLP 16-16 on tiny" in text and "Kendall τ" in text
    assert "--transfer smoke" in (rediscovered / "command.txt").read_text()


def test_transfer_only_reuses_the_folder_without_searching(rediscovered: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "again"
    shutil.copytree(rediscovered, out)
    (out / "transfer.md").unlink()
    command = (out / "command.txt").read_text()
    url = f"sqlite:///{out / 'study.db'}"
    trials = len(optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url).trials)
    assert main(["rediscover", "--transfer", "smoke", "--transfer-only", "--transfer-seeds", "3", "--transfer-k", "2",
                 "--device", "cpu", "--output", str(out)]) == 0
    assert "Transfer check" in capsys.readouterr().out
    assert (out / "command.txt").read_text() == command  # the search's command stays
    assert len(optuna.load_study(study_name=optuna.get_all_study_names(url)[0], storage=url).trials) == trials
    assert (out / "transfer_command.txt").read_text().startswith("actsearch rediscover ")
    assert "--transfer-only" in (out / "transfer_command.txt").read_text()
    rows = read_csv(out / "transfer.csv")
    assert len(rows) == 2 + 2 and all(r["seeds"] == [10000, 10001, 10002] for r in rows)
    assert (out / "transfer.md").is_file()


def test_transfer_only_from_verify_csv_alone(rediscovered: Path, tmp_path: Path) -> None:
    shutil.copy(rediscovered / "verify.csv", tmp_path / "verify.csv")
    assert main(["rediscover", "--transfer", "smoke", "--transfer-only", "--transfer-seeds", "2",
                 "--device", "cpu", "--output", str(tmp_path)]) == 0
    assert len(read_csv(tmp_path / "transfer.csv")) == 3 + 2


@pytest.mark.parametrize(("argv", "message"), [
    (["--transfer-only"], "--transfer-only needs --transfer"),
    (["--transfer", "quick,nosuch"], "unknown fidelity 'nosuch'"),
    (["--transfer", ","], "--transfer needs fidelity names"),
    (["--transfer", "smoke", "--transfer-seeds", "1"], "--transfer-seeds ≥ 2"),
    (["--transfer", "smoke", "--transfer-only"], "no verification found"),
])
def test_transfer_bad_input_fails_before_any_work(argv: list[str], message: str, tmp_path: Path, capsys) -> None:
    out = tmp_path / "out"
    out.mkdir()
    assert main(["rediscover", *argv, "--output", str(out), "--space", "tiny", "--fidelity", "smoke",
                 "--trials", "2", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert list(out.iterdir()) == []  # no search ran, nothing written


def test_transfer_only_on_a_missing_folder_or_an_ambiguous_storage(tmp_path: Path, capsys) -> None:
    assert main(["rediscover", "--transfer", "smoke", "--transfer-only", "--output", str(tmp_path / "nope")]) == 2
    assert "no folder" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'study.db'}"
    for name in ("a", "b"):
        optuna.create_study(study_name=name, storage=url)
    assert main(["rediscover", "--transfer", "smoke", "--transfer-only", "--output", str(tmp_path)]) == 2
    assert "pick one with --study" in capsys.readouterr().err


def test_holm_corrects_for_the_functions_of_one_table() -> None:
    from actsearch.analysis import holm

    recs = [{"name": n, "p_value": p} for n, p in
            [("a", 0.01), ("b", 0.04), ("c", 0.03), ("relu", None), ("swish", 0.02)]]
    holm(recs)
    by = {r["name"]: r["p_holm"] for r in recs}
    # three functions: 0.01·3, then max(0.03, 0.03·2), then max(0.06, 0.04·1)
    assert by["a"] == pytest.approx(0.03) and by["c"] == pytest.approx(0.06) and by["b"] == pytest.approx(0.06)
    assert by["swish"] == 0.02 and by["relu"] is None  # references: their own comparison, and none


def test_compare_records_the_shifted_test_set() -> None:
    fid = get_fidelity("smoke").replace(dataset="mnist1d", steps=30, eval_every=30)
    recs = compare([("tanh", "tanh(x)", "tanh")], fid, [0, 1], batch=6)
    for r in recs:
        assert r["ood_mean"] is not None and 0 <= r["ood_mean"] <= 1 and len(r["ood_accuracies"]) == 2
    assert "OOD accuracy" in format_verify(recs) and "p Holm" in format_verify(recs)
