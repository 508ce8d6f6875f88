"""`actsearch rediscover`: search + verify + verdict, end to end at smoke fidelity on the tiny space."""
from __future__ import annotations

import re
import statistics
from pathlib import Path

from actsearch.cli import main
from actsearch.analysis import swish_like_info, verdict


def test_rediscover_smoke_writes_every_output_and_a_verdict(tmp_path: Path, capsys) -> None:
    out = tmp_path / "rd"
    rc = main(["rediscover", "--space", "tiny", "--fidelity", "smoke", "--trials", "10", "--verify-k", "3",
               "--verify-seeds", "2", "--output", str(out), "--quiet"])
    assert rc == 0
    for name in ("leaderboard.md", "leaderboard.csv", "verify.md", "verify.csv", "shapes.png", "progress.png",
                 "verdict.txt", "command.txt", "top3.py"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    text = (out / "verdict.txt").read_text()
    assert re.search(r"^Swish-like in verified top 5: (yes \(.*β=[\d.]+, distance [\d.]+\)|no \()", text, re.M)
    assert re.search(r"reference swish x\*sigmoid\(beta\*x\): [\d.]+; vs ReLU: Δ [+-][\d.]+", text)
    assert "Swish-like in verified top 5" in capsys.readouterr().out
    verify_csv = (out / "verify.csv").read_text().splitlines()
    assert len(verify_csv) == 1 + 3 + 2  # header, top 3, relu, swish


RELU_ACCS = [0.80, 0.81, 0.79]


def _rec(name: str, expr: str, accs: list[float], p: float | None = None) -> dict:
    """A verify record as :func:`actsearch.compare.compare` writes it (paired against RELU_ACCS)."""
    mean = sum(accs) / len(accs)
    diffs = [a - b for a, b in zip(accs, RELU_ACCS)]
    paired = name != "relu"
    return {"name": name, "expression": expr, "test_mean": mean, "test_std": 0.0, "p_value": p,
            "diff_vs_relu": statistics.mean(diffs) if paired else None,
            "diff_std": statistics.stdev(diffs) if paired else None, "test_accuracies": accs}


def test_verdict_counts_only_found_swish_like_functions() -> None:
    relu = _rec("relu", "relu(x)", RELU_ACCS)
    swish = _rec("swish", "x*sigmoid(beta*x)", [0.85, 0.86, 0.84], 0.01)
    found_no = [_rec("rank 1 (#3)", "tanh(x)", [0.82, 0.83, 0.81], 0.02)]
    yes, lines = verdict(found_no + [relu, swish])
    assert not yes and lines[0].startswith("Swish-like in verified top 5: no")  # the reference does not count
    found_yes = found_no + [_rec("rank 2 (#5)", "x*sigmoid(1.5*x)", [0.84, 0.85, 0.83], 0.003)]
    yes, lines = verdict(found_yes + [relu, swish])
    assert yes and "x*sigmoid(1.5*x)" in lines[0] and "β=1.50" in lines[0] and "Δ +0.0400 ± 0.0000" in lines[0]
    assert "p=0.003" in lines[0] and lines[1].startswith("strict (fitted β ≥ 0.5") and "yes (x*sigmoid(1.5*x)" in lines[1]
    leaky = [_rec("rank 1 (#2)", "x + Max(0, x)", [0.86, 0.86, 0.86], 0.001)]  # 3·x·σ(0.18x), distance 0.076
    yes, lines = verdict(leaky + [relu, swish])
    assert yes and lines[1].endswith("no")  # Swish-like by the threshold, not by the strict reading


def test_verdict_reports_the_winner_against_swish_paired_and_holm() -> None:
    relu = _rec("relu", "relu(x)", RELU_ACCS)
    swish = _rec("swish", "x*sigmoid(beta*x)", [0.85, 0.86, 0.84], 0.01)
    winner = _rec("rank 1 (#3)", "tanh(x)*x", [0.87, 0.89, 0.85], 0.002)
    winner["p_holm"] = 0.004
    _, lines = verdict([winner, relu, swish])
    best = next(line for line in lines if line.startswith("best found"))
    assert "p=0.002, Holm p=0.004" in best
    # vs Swish, paired on the same seeds: differences 0.02, 0.03, 0.01 -> mean 0.02, sd 0.01
    t = 0.02 / (0.01 / 3 ** 0.5)
    from scipy import stats
    assert f"vs Swish: Δ +0.0200 ± 0.0100, p={2 * stats.t.sf(t, 2):.3g}" in best


def test_swish_like_info() -> None:
    ok, beta, dist = swish_like_info("x*sigmoid(1.5*x)")
    assert ok and abs(beta - 1.5) < 0.05 and dist < 1e-3
    assert not swish_like_info("relu(x)")[0]


def test_verdict_only_reads_an_old_run_both_ways(tmp_path: Path, capsys) -> None:
    """σ(−x)·min(0, x) is the point reflection of σ(x)·max(0, x): not Swish-like alone, Swish-like
    as one shape with its reflection — the old bn-seed-1 "no" read both ways, nothing trained."""
    (tmp_path / "verify.csv").write_text(
        "name,expression,test_mean,test_std,diff_vs_relu,diff_std,p_value,fidelity,seeds\n"
        "rank 1 (#20),\"sigmoid(-x)*Min(0, x)\",0.96,0.005,0.017,0.036,0.36,standard_bn,1 2 3\n"
        "rank 2 (#7),x*atan(x),0.95,0.004,0.01,0.03,0.5,standard_bn,1 2 3\n"
        "relu,\"Max(0, x)\",0.94,0.01,,,,standard_bn,1 2 3\n"
        "swish,x*sigmoid(beta*x),0.955,0.01,0.015,0.03,0.4,standard_bn,1 2 3\n", encoding="utf-8")
    assert main(["rediscover", "--verdict-only", "--output", str(tmp_path)]) == 0
    text = (tmp_path / "verdict_reflection.txt").read_text(encoding="utf-8")
    assert "one-sided (f alone): no" in text and "with point reflection (f or -f(-x)): yes" in text
    assert capsys.readouterr().out == text
    command = (tmp_path / "verdict_reflection_command.txt").read_text(encoding="utf-8")
    assert command.split() == ["actsearch", "rediscover", "--output", str(tmp_path), "--verdict-only"]
    assert main(["rediscover", "--verdict-only", "--output", str(tmp_path / "missing")]) == 2
