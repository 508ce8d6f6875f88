"""Train one child network with a candidate activation and score it (the search's inner loop).

The recipe (preset, data order, optimizer, schedule, checkpoints) is :mod:`.recipe`'s, shared with
the population engine (:mod:`.population`), so a network trained here and the same network trained
as a member of a population follow the same trajectory. Bad candidates are results, not crashes:
a non-finite loss or gradient stops training at once with status ``"diverged"`` and the step in
``reason``; ``report`` may prune at a checkpoint; a wall-clock limit gives ``"timeout"``.
"""
from __future__ import annotations

import time
from typing import Callable, Sequence

import torch
from torch import nn

from ..expressions import ActivationSpec
from ._threads import ThreadPolicy
from .data import Dataset
from .models import build_model
from .recipe import Fidelity, batch_order, checkpoints, lr_at, make_optimizer, prepare, score
from .results import TrainResult

__all__ = ["train_one", "accuracy"]


def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One big batch: on small CPUs per-call overhead, not FLOPs, dominates."""
    model.eval()
    pred = model(x).argmax(1)
    model.train()
    return (pred == y).float().mean().item()


def _grad_sum(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """Sum of all gradient entries: non-finite iff some gradient is (or overflows, i.e. diverged)."""
    return torch.stack([p.grad.sum() for p in params if p.grad is not None]).sum()


def train_one(
    activation: ActivationSpec,
    fidelity: Fidelity | str,
    seed: int = 0,
    device: str | torch.device = "cpu",
    report: Callable[[int, float], bool] | None = None,
    dataset: Dataset | None = None,
    *,
    trace: list[float] | None = None,
) -> TrainResult:
    """Train one child network with ``activation`` and return its score.

    ``report(step, val_acc)`` is called at each checkpoint; returning True prunes the run (status
    ``"pruned"``), the hook an Optuna pruner plugs into. ``trace``, if given, receives every
    step's training loss (for checking the population engine against this one).
    """
    fid, dev, data = prepare(fidelity, device, dataset)
    t0 = time.perf_counter()
    model = build_model(fid.model, activation, data.input_shape, data.num_classes, seed=seed).to(dev)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = make_optimizer(params, fid)
    lr_at(fid, 0)  # a bad schedule name fails before training, not at the first step
    order = batch_order(seed, len(data.y_train), fid.batch_size)
    marks = checkpoints(fid)
    curve: list[tuple[int, float]] = []
    loss_f: torch.Tensor | None = None
    status, reason, step = "ok", None, 0
    model.train()
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), ThreadPolicy() as threads:
        torch.manual_seed(seed)  # dropout masks
        while step < fid.steps:
            threads.adapt()
            idx = next(order).to(dev, non_blocking=True)
            # reduction="none" then mean: the same reduction kernel the population engine uses per
            # member, so the two engines agree bitwise on the loss (CE's built-in mean sums differently).
            loss = nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx], reduction="none").mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            step += 1
            # One host sync per step, for the finiteness check the issue requires.
            if not torch.isfinite(loss.detach() + _grad_sum(params)).item():
                what = "loss" if not torch.isfinite(loss).item() else "gradient"
                val = loss.item() if what == "loss" else "inf/nan"
                status, reason = "diverged", f"{what} is {val} at step {step}"
                break
            for group in opt.param_groups:
                group["lr"] = lr_at(fid, step - 1)
            opt.step()
            loss_f = loss.detach()
            if trace is not None:
                trace.append(loss_f.item())
            if step in marks:
                acc = accuracy(model, data.x_val, data.y_val)
                curve.append((step, acc))
                if report is not None and report(step, acc):
                    status, reason = "pruned", f"pruned at step {step} (val accuracy {acc:.4f})"
                    break
            if time.perf_counter() - t0 > fid.time_limit:
                status, reason = "timeout", f"time limit {fid.time_limit:g}s reached at step {step}"
                if not curve or curve[-1][0] != step:
                    curve.append((step, accuracy(model, data.x_val, data.y_val)))
                break
    if status == "diverged":
        return TrainResult(status, score(fid, curve), None, step, time.perf_counter() - t0, curve, reason, None)
    test = accuracy(model, data.x_test, data.y_test)
    ood = accuracy(model, data.x_ood, data.y_ood) if data.x_ood is not None and data.y_ood is not None else None
    return TrainResult(status, score(fid, curve), test, step, time.perf_counter() - t0,
                       curve, reason, loss_f.item() if loss_f is not None else None, ood)
