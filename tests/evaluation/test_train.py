"""The single-candidate trainer: determinism, divergence, pruning, time limit, presets."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from actsearch.errors import ActsearchError
from actsearch.evaluation import ModelSpec
from actsearch.evaluation import FIDELITIES, Fidelity, get_fidelity, resolve_device, train_one


class ExpExp(nn.Module):
    """exp(exp(x)) overflows float32 for x > ~4.5: a candidate that must be caught as diverged."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.exp(3 * x))


SMOKE = get_fidelity("smoke")


def test_same_seed_is_bitwise_identical() -> None:
    a, b = train_one("tanh", SMOKE, seed=3), train_one("tanh", SMOKE, seed=3)
    assert a.curve == b.curve and a.final_loss == b.final_loss and a.test_accuracy == b.test_accuracy
    c = train_one("tanh", SMOKE, seed=4)
    assert c.final_loss != a.final_loss


def test_dropout_and_batchnorm_runs_are_deterministic_too(monkeypatch: pytest.MonkeyPatch) -> None:
    # At a fixed thread count (README: a reduction's last digit depends on the threads, and the
    # automatic policy follows the machine's load — a busy CI once gave two counts, two last digits).
    monkeypatch.setenv("ACTSEARCH_THREADS", "2")
    fid = SMOKE.replace(model=ModelSpec(widths=(16, 16), norm="batch", dropout=0.2))
    a, b = train_one("relu", fid, seed=1), train_one("relu", fid, seed=1)
    assert a.status == "ok" and a.final_loss == b.final_loss and a.curve == b.curve


def test_smoke_learns_and_reports_checkpoints() -> None:
    seen: list[tuple[int, float]] = []
    r = train_one("relu", SMOKE, seed=0, report=lambda s, acc: seen.append((s, acc)) or False)
    assert r.status == "ok" and r.steps == SMOKE.steps and r.reason is None
    assert [s for s, _ in r.curve] == [20, 40, 60] and seen == r.curve
    assert r.val_accuracy == r.curve[-1][1] and r.val_accuracy > 0.7 and r.test_accuracy > 0.7
    assert r.final_loss is not None and r.final_loss < 1.0 and r.seconds > 0


def test_cnn_child_trains() -> None:
    fid = SMOKE.replace(model=ModelSpec(kind="cnn", widths=(8, 8, 8)), steps=40)
    r = train_one("relu", fid, seed=0)
    assert r.status == "ok" and r.test_accuracy > 0.4  # 4 classes, 0.25 is chance


def test_overflowing_activation_is_diverged_with_its_step() -> None:
    r = train_one(ExpExp, SMOKE, seed=0)
    assert r.status == "diverged" and r.test_accuracy is None
    assert r.steps == 1 and r.reason is not None and "at step 1" in r.reason
    assert ("inf" in r.reason or "nan" in r.reason)


def test_huge_learning_rate_is_diverged() -> None:
    r = train_one("relu", SMOKE.replace(optimizer="sgd", lr=1e12), seed=0)
    assert r.status == "diverged" and 1 < r.steps < SMOKE.steps
    assert r.reason is not None and r.reason.endswith(f"at step {r.steps}")


def test_report_true_prunes() -> None:
    r = train_one("relu", SMOKE, seed=0, report=lambda step, acc: step >= 40)
    assert r.status == "pruned" and r.steps == 40 and [s for s, _ in r.curve] == [20, 40]
    assert r.test_accuracy is not None and "pruned at step 40" in (r.reason or "")


def test_time_limit_is_honoured() -> None:
    r = train_one("relu", SMOKE.replace(time_limit=0.0), seed=0)
    assert r.status == "timeout" and r.steps == 1 and r.curve[-1][0] == 1


def test_fidelity_presets() -> None:
    assert {"smoke", "quick", "standard", "full"} <= set(FIDELITIES)
    quick = get_fidelity("quick")
    assert quick.model.kind == "mlp" and quick.model.widths == (100, 100)
    assert (quick.optimizer, quick.lr, quick.batch_size) == ("adam", 1e-2, 100)
    std = get_fidelity("standard")
    assert std.model.kind == "cnn" and len(std.model.widths) == 3 and std.dataset == "mnist1d"
    assert get_fidelity("full").seeds > 1 and get_fidelity("full").steps > std.steps
    assert get_fidelity(quick) is quick
    with pytest.raises(dataclasses.FrozenInstanceError):
        quick.lr = 1.0  # type: ignore[misc]


def test_unknown_fidelity_suggests() -> None:
    with pytest.raises(ActsearchError, match="did you mean 'standard'"):
        get_fidelity("standart")
    with pytest.raises(ActsearchError):
        train_one("relu", "fast")


def test_device_auto_and_bad_optimizer() -> None:
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="optimizer"):
        train_one("relu", Fidelity("x", ModelSpec(widths=(4,)), dataset="tiny", optimizer="lbfgs", steps=2))


def test_minibatches_are_a_fresh_permutation_per_epoch() -> None:
    """batch_order (train_one) and epoch_batches (the population, an epoch at a time) are the same
    batches: each epoch a permutation of its own seeded generator, the partial last batch dropped."""
    from actsearch.evaluation import batch_order, epoch_batches

    gen = torch.Generator().manual_seed(7)
    expected = [p[i * 30 : (i + 1) * 30] for p in (torch.randperm(100, generator=gen) for _ in range(2))
                for i in range(3)]
    order = batch_order(7, 100, 30)
    assert all(torch.equal(next(order), e) for e in expected)
    epochs = epoch_batches(7, 100, 30)
    assert all(torch.equal(b, e) for b, e in zip([*next(epochs), *next(epochs)], expected))
    with pytest.raises(ValueError, match="exceeds the 100 training examples"):
        next(batch_order(0, 100, 101))


def test_freed_tensor_memory_is_reused_without_page_faults() -> None:
    """actsearch.evaluation._memory: after the trainers' allocator tuning, freed tensor memory is served again
    from the heap instead of fresh pages the kernel must fault in. Two patterns, in child processes
    (mallopt is process-wide): a 40 MB tensor (a population CNN's activation on a 1,000-example
    evaluation batch), which glibc always maps and unmaps (its threshold stops at 32 MB); and a
    training step's activations, freed together at its end, whose heap top glibc gives back when
    nothing small was allocated above it (whether that happens varies from run to run, so only
    the tuned count is asserted)."""
    import subprocess
    import sys

    code = """
import resource, sys, torch
from actsearch.evaluation import retain_freed_memory
if sys.argv[1] == "tuned":
    assert retain_freed_memory()
def step():
    if sys.argv[2] == "large":
        torch.ones(10 << 20)  # 40 MB, freed at once
    else:
        held = [torch.ones(1 << 20) for _ in range(6)]  # 6 activations of 4 MB, freed together
for _ in range(8):  # glibc's bins settle within ~4 steps, by the layout ASLR gave (seen: 1 in 3 runs at 3)
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

    def faults(mode: str, pattern: str) -> int:
        return int(subprocess.run([sys.executable, "-c", code, mode, pattern], capture_output=True, text=True,
                                  check=True).stdout)

    assert faults("default", "large") > 20 * 5000  # ~10,000 pages each time
    assert faults("tuned", "large") < 1000
    assert faults("tuned", "step") < 1000


def test_ood_accuracy_and_the_mean_of_the_last_checkpoints() -> None:
    """Both trainers report accuracy on the shifted test set; a score may average the last
    checkpoints (one evaluation at the end is one draw of the last minibatches' noise)."""
    from actsearch.evaluation import train_population

    fid = get_fidelity("quick").replace(steps=60, eval_every=20, score_checkpoints=2)
    solo = train_one("relu", fid, seed=0)
    (pop,) = train_population(["relu"], fid, [0])
    assert solo.ood_accuracy is not None and 0 <= solo.ood_accuracy <= 1
    assert pop.ood_accuracy == pytest.approx(solo.ood_accuracy, abs=0.01)
    assert solo.val_accuracy == pytest.approx((solo.curve[-1][1] + solo.curve[-2][1]) / 2)
