"""What a search scores: a :class:`Task` fixes everything but the activation and the seed — data,
network, loss, metric (higher is better) and the training recipe.

Two forms. With ``data`` and ``build`` actsearch runs the training loop: the seed fixes the
model's initialization (``torch.manual_seed`` before ``build``) and the minibatch order
(:func:`actsearch.evaluation.recipe.batch_order`, as for the built-in children); a non-finite loss
stops the run (``"diverged"``), the metric on the validation split at every ``eval_every`` steps
is what a pruner sees, the last one is the score. With ``train`` the user's loop does everything
and reports its checkpoints itself.

The built-in fidelities are tasks too (:func:`builtin_task`): their children are
:class:`~actsearch.evaluation.models.ModelSpec` networks, which the population engine stacks, so
:meth:`Task.evaluate` trains them K at a time (:func:`actsearch.evaluation.train_population`).
A user's ``build`` is a black box — any layers, any initialization — so its networks are trained
one at a time: stacking them would need the engine to reproduce the user's own initialization and
layers exactly, which it only knows how to do for its own children.

An exception in the user's code or a non-finite loss or metric fails that one run with its reason
(status ``"error"`` / ``"diverged"``); the search records it and goes on.
"""
from __future__ import annotations

import functools
import math
import sys
import time
from typing import Any, Callable, Sequence

import numpy as np
import torch
from torch import nn

from ..errors import TaskError, one_line
from ..expressions import ActivationSpec, make_activation
from ._threads import ThreadPolicy
from .models import build_model
from .recipe import ADAM_BETAS, ADAM_EPS, Fidelity, batch_order, get_dataset, get_fidelity, resolve_device
from .results import TrainResult

__all__ = ["Task", "builtin_task", "as_task", "LOSSES", "METRICS", "Report"]

#: report(step, value) -> True when the run should stop (pruned): what ``train=`` receives.
Report = Callable[[int, float], bool]
Arrays = tuple[Any, Any, Any, Any, Any, Any]

LOSSES: dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = {
    "cross_entropy": nn.functional.cross_entropy,
    "mse": nn.functional.mse_loss,
}


def _accuracy(out: torch.Tensor, y: torch.Tensor) -> float:
    return (out.argmax(1) == y).float().mean().item()


def _neg_mse(out: torch.Tensor, y: torch.Tensor) -> float:
    return -nn.functional.mse_loss(out, y).item()


METRICS: dict[str, Callable[[torch.Tensor, torch.Tensor], float]] = {"accuracy": _accuracy, "neg_mse": _neg_mse}
#: The metric a loss implies when none is given.
_DEFAULT_METRIC = {"cross_entropy": "accuracy", "mse": "neg_mse"}
_SPLITS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test")


def _engines() -> Any:
    """The evaluation package, whose trainers are looked up when called: a test or a fault drill
    stands in for them there (``actsearch.evaluation.train_population``)."""
    return sys.modules[__package__]


class Task:
    """What a search scores. Either the recipe form::

        Task(name, data=(x_train, y_train, x_val, y_val, x_test, y_test), build=build,
             loss="cross_entropy", metric="accuracy", steps=1000, batch_size=64, optimizer="adam",
             lr=1e-3, eval_every=250)

    where ``build(act)`` returns an ``nn.Module`` and ``act(num_channels)`` makes a fresh activation
    module for one layer (``num_channels`` sizes a per-channel trainable β; None shares one), ``data``
    holds tensors or arrays (or is a callable returning them), ``loss`` is "cross_entropy", "mse" or
    ``loss(output, target) -> scalar tensor``, ``metric`` is "accuracy", "neg_mse" or ``metric(output,
    target) -> float`` (higher is better; default: the loss's), ``optimizer`` is "adam", "sgd" or
    ``optimizer(params, lr) -> torch.optim.Optimizer``; or the loop form::

        Task(name, train=train)   # train(act, seed, report) -> float, or (val, test)

    where ``report(step, value)`` returns True when the run should stop (pruned). ``time_limit``
    (seconds per run, recipe form) stops a run that takes longer, as ``"timeout"``.
    """

    def __init__(self, name: str, data: Arrays | Callable[[], Arrays] | None = None,
                 build: Callable[[Callable[..., nn.Module]], nn.Module] | None = None, *,
                 loss: str | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = "cross_entropy",
                 metric: str | Callable[[torch.Tensor, torch.Tensor], float] | None = None,
                 steps: int = 1000, batch_size: int = 64, optimizer: str | Callable[..., Any] = "adam",
                 lr: float = 1e-3, eval_every: int | None = None,
                 train: Callable[[Callable[..., nn.Module], int, Report], Any] | None = None,
                 time_limit: float | None = None) -> None:
        if not isinstance(name, str) or not name.strip():
            raise TaskError("a task needs a name (a non-empty string)")
        self.name = name.strip()
        self.data, self.build, self.train = data, build, train
        if train is not None:
            if data is not None or build is not None:
                raise TaskError(f"task {self.name!r}: give either train= or data= with build=, not both")
            if not callable(train):
                raise TaskError(f"task {self.name!r}: train must be a function train(act, seed, report) -> float")
        elif data is None or build is None:
            raise TaskError(f"task {self.name!r} needs data= and build= (or train= for a loop of its own)")
        elif not callable(build):
            raise TaskError(f"task {self.name!r}: build must be a function build(act) -> nn.Module")
        if isinstance(loss, str) and loss not in LOSSES:
            raise TaskError(f"task {self.name!r}: unknown loss {loss!r} (use {' or '.join(LOSSES)}, or a function)")
        if metric is None:
            metric = _DEFAULT_METRIC.get(loss) if isinstance(loss, str) else None
        if isinstance(metric, str) and metric not in METRICS:
            raise TaskError(f"task {self.name!r}: unknown metric {metric!r} (use {' or '.join(METRICS)}, or a function)")
        if isinstance(optimizer, str) and optimizer not in ("adam", "sgd"):
            raise TaskError(f"task {self.name!r}: unknown optimizer {optimizer!r} (use 'adam', 'sgd' or a function)")
        for what, v in (("steps", steps), ("batch_size", batch_size)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise TaskError(f"task {self.name!r}: {what} must be a whole number ≥ 1, got {v!r}")
        if not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
            raise TaskError(f"task {self.name!r}: lr must be a positive number, got {lr!r}")
        self.loss, self.metric, self.optimizer, self.lr = loss, metric, optimizer, float(lr)
        self.steps, self.batch_size = steps, batch_size
        self.eval_every = max(1, steps // 4) if eval_every is None else eval_every
        if isinstance(self.eval_every, bool) or not isinstance(self.eval_every, int) or self.eval_every < 1:
            raise TaskError(f"task {self.name!r}: eval_every must be a whole number ≥ 1, got {eval_every!r}")
        self.time_limit = time_limit
        #: The built-in preset this task is (its children stack into populations); None for a user's.
        self.fidelity: Fidelity | None = None
        #: Where the task was loaded from and a hash of that file (set by :func:`load_task`).
        self.source: str | None = None
        self.hash: str | None = None
        self._tensors: dict[str, dict[str, torch.Tensor]] = {}

    def __repr__(self) -> str:
        return f"Task({self.name!r})"

    def __str__(self) -> str:
        return self.name

    def describe(self) -> str:
        """One line on what it trains."""
        if self.fidelity is not None:
            return self.fidelity.describe()
        if self.train is not None:
            return f"task {self.name}: its own training loop"
        loss = self.loss if isinstance(self.loss, str) else getattr(self.loss, "__name__", "custom loss")
        metric = self.metric if isinstance(self.metric, str) else getattr(self.metric, "__name__", "custom metric")
        opt = self.optimizer.capitalize() if isinstance(self.optimizer, str) else "custom optimizer"
        return (f"task {self.name}: {loss} loss, {metric} metric, {opt} {self.lr:g}, batch {self.batch_size}, "
                f"{self.steps} steps")

    # ------------------------------------------------------------------------------ data
    def tensors(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The six splits as tensors on ``device``, checked once (x float32; y int64 for
        cross-entropy, float32 otherwise); a :class:`TaskError` says what does not fit."""
        key = str(device)
        if key not in self._tensors:
            if "cpu" not in self._tensors:
                self._tensors["cpu"] = self._load()
            self._tensors[key] = {k: v.to(device) for k, v in self._tensors["cpu"].items()}
        return self._tensors[key]

    def _load(self) -> dict[str, torch.Tensor]:
        data = self.data
        if callable(data):
            try:
                data = data()
            except Exception as exc:
                raise TaskError(f"task {self.name!r}: its data function raised {type(exc).__name__}: {exc}") from None
        if not isinstance(data, (tuple, list)) or len(data) != 6:
            raise TaskError(f"task {self.name!r}: data must be (x_train, y_train, x_val, y_val, x_test, y_test), "
                            f"got {type(data).__name__}" + (f" of {len(data)}" if isinstance(data, (tuple, list)) else ""))
        out: dict[str, torch.Tensor] = {}
        for split, value in zip(_SPLITS, data):
            try:
                t = torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).detach().cpu()
            except Exception:
                raise TaskError(f"task {self.name!r}: {split} is not an array ({type(value).__name__})") from None
            if t.ndim == 0 or len(t) == 0:
                raise TaskError(f"task {self.name!r}: {split} is empty or a scalar (shape {tuple(t.shape)})")
            if not (t.is_floating_point() or t.dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8,
                                                         torch.bool)):
                raise TaskError(f"task {self.name!r}: {split} has dtype {t.dtype}, not numbers")
            if split.startswith("y") and callable(self.loss) and not t.is_floating_point():
                t = t.long()  # class indices, say, for a loss of the user's
            elif split.startswith("x") or self.loss != "cross_entropy":
                t = t.float()
                if not torch.isfinite(t).all():
                    raise TaskError(f"task {self.name!r}: {split} holds NaN or infinite values")
            else:
                if t.is_floating_point() and not torch.equal(t, t.round()):
                    raise TaskError(f"task {self.name!r}: {split} must hold class indices for cross_entropy, "
                                    "got fractional values")
                t = t.long()
                if t.min() < 0:
                    raise TaskError(f"task {self.name!r}: {split} holds a negative class index")
            out[split] = t.contiguous()
        for part in ("train", "val", "test"):
            nx, ny = len(out[f"x_{part}"]), len(out[f"y_{part}"])
            if nx != ny:
                raise TaskError(f"task {self.name!r}: x_{part} has {nx} examples but y_{part} has {ny}")
        if self.batch_size > len(out["x_train"]):
            raise TaskError(f"task {self.name!r}: batch_size {self.batch_size} exceeds the "
                            f"{len(out['x_train'])} training examples")
        return out

    # ------------------------------------------------------------------------------ check
    def check(self, device: str | torch.device = "cpu") -> None:
        """A dry run before the first trial: load the data, build the model once with ReLU, one
        forward pass on a few examples of each split, loss and metric finite numbers. Raises a
        one-line :class:`TaskError`. (A ``train=`` task is only checked to be callable.)"""
        if self.fidelity is not None or self.train is not None:
            return
        data = self.tensors(device)
        try:
            model = self._build("relu", device)
        except TaskError:
            raise
        except Exception as exc:
            raise TaskError(f"task {self.name!r}: build(act) raised {type(exc).__name__}: {exc}") from None
        for part in ("train", "val", "test"):
            x, y = data[f"x_{part}"][:4], data[f"y_{part}"][:4]
            try:
                with torch.no_grad():
                    out = model(x)
            except Exception as exc:
                raise TaskError(f"task {self.name!r}: the model does not take x_{part} of shape "
                                f"{tuple(data[f'x_{part}'].shape)}: {type(exc).__name__}: {exc}") from None
            if not isinstance(out, torch.Tensor):
                raise TaskError(f"task {self.name!r}: the model returned {type(out).__name__}, not a tensor")
            if self.loss == "mse" and out.shape != y.shape:
                raise TaskError(f"task {self.name!r}: the model's output {tuple(out.shape)} does not match y_{part} "
                                f"{tuple(y.shape)} (mse compares them elementwise)")
            if self.loss == "cross_entropy" and (out.ndim != 2 or int(data[f"y_{part}"].max()) >= out.shape[1]):
                raise TaskError(f"task {self.name!r}: cross_entropy needs an output (N, classes) with more classes "
                                f"than the largest label in y_{part} ({int(data[f'y_{part}'].max())}); got "
                                f"{tuple(out.shape)}")
            try:
                loss = self._loss_fn()(out, y)
            except Exception as exc:
                raise TaskError(f"task {self.name!r}: the loss raised {type(exc).__name__}: {exc}") from None
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1 or not torch.isfinite(loss).all():
                raise TaskError(f"task {self.name!r}: the loss must be a finite scalar tensor, got "
                                f"{loss if not isinstance(loss, torch.Tensor) else tuple(loss.shape)}")
            self._metric_value(model, x, y, dry=True)

    # ------------------------------------------------------------------------------ train
    def evaluate(self, activations: Sequence[ActivationSpec], seeds: Sequence[int], device: str | torch.device = "cpu",
                 report: Callable[[int, int, float], bool] | None = None) -> list[TrainResult]:
        """Train ``activations[i]`` with ``seeds[i]`` for every i; the built-in children as one
        stacked population, a user's networks one at a time. ``report(i, step, value)`` is called
        at each checkpoint; True stops run i (pruned)."""
        if len(activations) != len(seeds):
            raise ValueError(f"{len(activations)} activations but {len(seeds)} seeds")
        if self.fidelity is not None:
            return _engines().train_population(activations, self.fidelity, seeds, device=device, report=report)
        out = []
        for i, (act, seed) in enumerate(zip(activations, seeds)):
            rep = None if report is None else functools.partial(report, i)
            try:
                out.append(self.run(act, seed, device, rep))
            except TaskError:
                raise  # the task itself is broken (data, shapes): every run would fail the same way
            except Exception as exc:
                out.append(TrainResult("error", None, None, 0, 0.0, [],
                                       one_line(f"the task's code raised {type(exc).__name__}: {exc}")[:500]))
        return out

    def run(self, activation: ActivationSpec, seed: int, device: str | torch.device = "cpu",
            report: Report | None = None) -> TrainResult:
        """One network with ``activation`` and ``seed`` (exceptions of the user's code propagate)."""
        if self.fidelity is not None:  # the solo engine, which follows the same recipe as a population
            return _engines().train_one(activation, self.fidelity, seed=seed, device=device, report=report)
        if self.train is not None:
            return self._run_loop(activation, seed, report)
        return self._run_recipe(activation, seed, resolve_device(device), report)

    def _factory(self, activation: ActivationSpec) -> Callable[..., nn.Module]:
        def act(num_channels: int | None = None) -> nn.Module:
            return make_activation(activation, num_channels)
        return act

    def _build(self, activation: ActivationSpec, device: str | torch.device) -> nn.Module:
        assert self.build is not None
        model = self.build(self._factory(activation))
        if not isinstance(model, nn.Module):
            raise TaskError(f"task {self.name!r}: build(act) returned {type(model).__name__}, not an nn.Module")
        return model.to(device)

    def _loss_fn(self) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        return LOSSES[self.loss] if isinstance(self.loss, str) else self.loss

    def _metric_value(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, dry: bool = False) -> float:
        fn = METRICS[self.metric] if isinstance(self.metric, str) else self.metric
        if fn is None:  # a loss function of the user's and no metric: minus the loss
            fn = lambda out, target: -float(self._loss_fn()(out, target))  # noqa: E731
        model.eval()
        try:
            with torch.no_grad():
                value = fn(model(x), y)
        except Exception as exc:
            if dry:
                raise TaskError(f"task {self.name!r}: the metric raised {type(exc).__name__}: {exc}") from None
            raise
        finally:
            model.train()
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise TaskError(f"task {self.name!r}: the metric returned {type(value).__name__}, not a number") from None
        if dry and not math.isfinite(value):
            raise TaskError(f"task {self.name!r}: the metric is {value} on the untrained model (it must be a finite number)")
        return value

    def _optimizer(self, params: list[nn.Parameter]) -> torch.optim.Optimizer:
        if callable(self.optimizer):
            return self.optimizer(params, self.lr)
        if self.optimizer == "sgd":
            return torch.optim.SGD(params, lr=self.lr, momentum=0.9)
        return torch.optim.Adam(params, lr=self.lr, betas=ADAM_BETAS, eps=ADAM_EPS)

    def _run_recipe(self, activation: ActivationSpec, seed: int, dev: torch.device, report: Report | None) -> TrainResult:
        data = self.tensors(dev)
        t0 = time.perf_counter()
        loss_fn = self._loss_fn()
        curve: list[tuple[int, float]] = []
        status, reason, step, last = "ok", None, 0, None
        marks = set(range(self.eval_every, self.steps + 1, self.eval_every)) | {self.steps}
        x_train, y_train = data["x_train"], data["y_train"]
        # ThreadPolicy: beside other busy processes one thread, not a 2-thread run that waits for a
        # core each tiny parallel region (7x slower on a small MLP here with the machine busy).
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), ThreadPolicy() as threads:
            torch.manual_seed(seed)  # the user's initialization, then dropout masks
            model = self._build(activation, dev)
            params = [p for p in model.parameters() if p.requires_grad]
            opt = self._optimizer(params)
            order = batch_order(seed, len(y_train), self.batch_size)
            model.train()
            while step < self.steps:
                threads.adapt()
                idx = next(order).to(dev, non_blocking=True)
                loss = loss_fn(model(x_train[idx]), y_train[idx])
                step += 1
                last = loss.item()  # one host sync per step, for the finiteness check
                if not math.isfinite(last):
                    status, reason = "diverged", f"loss is {last} at step {step}"
                    break
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if step in marks:
                    value = self._metric_value(model, data["x_val"], data["y_val"])
                    if not math.isfinite(value):
                        status, reason = "diverged", f"metric is {value} at step {step}"
                        break
                    curve.append((step, value))
                    if report is not None and report(step, value):
                        status, reason = "pruned", f"pruned at step {step} (val metric {value:.4g})"
                        break
                if self.time_limit is not None and time.perf_counter() - t0 > self.time_limit:
                    status, reason = "timeout", f"time limit {self.time_limit:g}s reached at step {step}"
                    break
            score = curve[-1][1] if curve else None
            if status == "diverged":
                return TrainResult(status, score, None, step, time.perf_counter() - t0, curve, reason, None)
            test = self._metric_value(model, data["x_test"], data["y_test"])
        return TrainResult(status, score, test if math.isfinite(test) else None, step, time.perf_counter() - t0,
                           curve, reason, last)

    def _run_loop(self, activation: ActivationSpec, seed: int, report: Report | None) -> TrainResult:
        assert self.train is not None
        t0 = time.perf_counter()
        curve: list[tuple[int, float]] = []
        stopped: list[int] = []

        def relay(step: int, value: float) -> bool:
            value = float(value)
            curve.append((int(step), value))
            stop = bool(report(int(step), value)) if report is not None and math.isfinite(value) else False
            if stop:
                stopped.append(int(step))
            return stop

        with torch.random.fork_rng(), ThreadPolicy():  # threads as the machine allows when it starts
            torch.manual_seed(seed)
            got = self.train(self._factory(activation), seed, relay)
        seconds = time.perf_counter() - t0
        val, test = (got if isinstance(got, (tuple, list)) and len(got) == 2 else (got, got))
        try:
            val, test = float(val), float(test)
        except (TypeError, ValueError):
            raise TypeError(f"train() returned {type(got).__name__}, not a number (or a pair val, test)") from None
        steps = curve[-1][0] if curve else 0
        if not math.isfinite(val):
            return TrainResult("diverged", None, None, steps, seconds, curve, f"train() returned {val}")
        if stopped:
            return TrainResult("pruned", val, None, steps, seconds, curve, f"pruned at step {stopped[0]}")
        return TrainResult("ok", val, test if math.isfinite(test) else None, steps, seconds, curve)


def builtin_task(fidelity: Fidelity | str, dataset: str | None = None) -> Task:
    """A built-in fidelity preset (on ``dataset``, default its own) as a :class:`Task` named after
    it: its data is the preset's dataset, its child a :class:`ModelSpec` network, its loss
    cross-entropy, its metric accuracy; trained as stacked populations."""
    fid = get_fidelity(fidelity)  # the preset as defined now (a name's preset may be redefined)
    return _builtin(fid.replace(dataset=dataset) if dataset is not None else fid)


@functools.lru_cache(maxsize=None)
def _builtin(fid: Fidelity) -> Task:
    """One task per preset value: its data is loaded once per process."""

    def data() -> Arrays:
        d = get_dataset(fid.dataset, torch.device("cpu"))
        return tuple(getattr(d, k) for k in _SPLITS)  # type: ignore[return-value]

    def build(act: Callable[..., nn.Module]) -> nn.Module:
        d = get_dataset(fid.dataset, torch.device("cpu"))
        return build_model(fid.model, act, d.input_shape, d.num_classes, seed=int(torch.initial_seed() % 2**31))

    task = Task(fid.name, data=data, build=build, loss="cross_entropy", metric="accuracy", steps=fid.steps,
                batch_size=fid.batch_size, optimizer=fid.optimizer, lr=fid.lr, eval_every=fid.eval_every,
                time_limit=fid.time_limit)
    task.fidelity = fid
    return task


def as_task(fidelity: Task | Fidelity | str, dataset: str | None = None) -> Task:
    """A task given as itself, a :class:`Fidelity` or a preset name (on ``dataset``)."""
    if isinstance(fidelity, Task):
        return fidelity
    return builtin_task(fidelity, dataset)
