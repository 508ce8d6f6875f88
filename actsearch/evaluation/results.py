"""What training gives back: one network's :class:`TrainResult`, and the summary of a candidate
trained on several seeds (mean ± std, the status that describes them all).

Bad candidates are results, not crashes: a non-finite loss or gradient stops
training with status ``"diverged"`` and the step in ``reason``; a pruner may stop it at a
checkpoint (``"pruned"``); a wall-clock limit gives ``"timeout"``.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

__all__ = ["TrainResult", "mean_std", "overall_status", "summarize"]


@dataclass
class TrainResult:
    status: str  # "ok" | "diverged" | "pruned" | "timeout" | "error"
    val_accuracy: float | None  # at the end (or last checkpoint)
    test_accuracy: float | None
    steps: int  # steps actually done
    seconds: float
    curve: list[tuple[int, float]]  # (step, val accuracy) checkpoints
    reason: str | None = None  # e.g. "loss is nan at step 812"
    final_loss: float | None = None
    ood_accuracy: float | None = None  # on the dataset's shifted test set, where it has one


def mean_std(xs: Iterable[float | None]) -> tuple[float | None, float | None]:
    """Sample mean and standard deviation (n − 1) of the finite values; None/NaN are skipped.

    (None, None) without values; std None with one value (a spread needs two)."""
    ok = [float(x) for x in xs if x is not None and math.isfinite(x)]
    if not ok:
        return None, None
    return statistics.fmean(ok), (statistics.stdev(ok) if len(ok) > 1 else None)


def overall_status(rs: Sequence[TrainResult]) -> tuple[str, str | None]:
    """(status, reason) of a candidate trained on several seeds: diverged if any seed diverged,
    else pruned/timeout if any stopped early, else ok."""
    for r in rs:
        if r.status == "diverged":
            return "diverged", r.reason
    for r in rs:
        if r.status in ("pruned", "timeout"):
            return r.status, r.reason
    return "ok", None


def summarize(rs: Sequence[TrainResult]) -> dict[str, Any]:
    """The accuracy record a trial (or a reference trained beside a study) stores for its seeds."""
    val_m, val_s = mean_std([r.val_accuracy for r in rs])
    test_m, test_s = mean_std([r.test_accuracy for r in rs])
    ood_m, ood_s = mean_std([r.ood_accuracy for r in rs])
    return {"accuracy_mean": val_m, "accuracy_std": val_s, "val_accuracies": [r.val_accuracy for r in rs],
            "test_accuracy_mean": test_m, "test_accuracy_std": test_s,
            "ood_accuracy_mean": ood_m, "ood_accuracy_std": ood_s,
            "train_seconds": round(max(r.seconds for r in rs), 3), "steps": max(r.steps for r in rs)}
