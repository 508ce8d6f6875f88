"""Train K candidates at once as one stacked network (population-batched evaluation).

The stacked network is :class:`~actsearch.evaluation._stack.StackedNet` (batched matmuls, grouped
convolutions); this module trains it: minibatches, the optimizer step, dropping members.

Exactness: member k is built by :func:`actsearch.evaluation.models.build_model` with its own seed
(the same call :func:`actsearch.evaluation.train_one` makes), reads the same minibatches
(:func:`~actsearch.evaluation.recipe.epoch_batches`), and
the loss is the SUM of per-member mean losses, so d(loss)/d(theta_k) is member k's own gradient.
Adam and SGD act elementwise, so one optimizer step over the stacked tensors is K independent
steps. Member k therefore follows the trajectory it would follow alone, up to float rounding
(bmm vs mm). A member whose loss or gradient is non-finite, or that ``report`` prunes, is removed
from the stack (parameters, gradients and optimizer state are compacted) — a diverged one right
after the update that found it (elementwise: that update changed only its own values), so it
cannot poison the others. Dropout masks are drawn for the stack as a whole: with dropout the
members match their solo runs in distribution only.

Each member keeps its own activation module per layer (its own β), applied to its (N, C, ...)
slice. The time limit is per candidate, amortized: a population of K may run K x ``time_limit``.
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterator, Sequence

import torch

from ..expressions import ActivationSpec
from . import _backprop
from ._flat import FlatAdam
from ._threads import ThreadPolicy
from ._stack import StackedNet
from .data import Dataset
from .kernels import population_kernel
from .models import ModelSpec, build_model, conv_output_sizes
from .recipe import Fidelity, checkpoints, epoch_batches, lr_at, make_optimizer, prepare, score
from .results import TrainResult

__all__ = ["train_population", "StackedNet", "loss_and_grads", "by_hand_applies", "FUSE_MIN_WORK",
           "activation_units", "fusion_pays"]

#: Whether the hand-written training step (:mod:`._backprop`) covers a stack.
by_hand_applies = _backprop.applies


def loss_and_grads(net: StackedNet, x: torch.Tensor, y: torch.Tensor, by_hand: bool | None = None,
                   rows: torch.Tensor | None = None) -> torch.Tensor:
    """Per-member mean cross-entropy (K,) of one step on ``x`` (K, N, ...), ``y`` (K, N) — or on the
    rows ``rows`` (K, N) of a whole set ``x``, ``y`` — with every parameter's ``.grad`` set: the
    plain MLP and the member-major CNN with fused activations are differentiated by hand
    (:mod:`._backprop`; ``by_hand=None``: where it applies), anything else by autograd
    (:meth:`StackedNet.loss_and_grads`)."""
    if by_hand or (by_hand is None and _backprop.applies(net)):
        return _backprop.loss_and_grads(net, x, y, rows)  # it overwrites every gradient
    return net.loss_and_grads(*_backprop.gather(x, y, rows))


#: Activation evaluations (steps x batch x units x members) under which building the fused kernels
#: (0.2-1 s of C compilation per population, by its size and the CPUs) costs more than it saves.
#: Measured by ``bench_eval.py --fuse-threshold`` on 2 cores (16 members, build 0.23-0.25 s cold;
#: the population-independent object, 0.3 s more, is built once per machine): the fused engine
#: saves 3.6 ms per `quick` step and 12.4 ms per `standard` step, so it pays after 2.3e7 / 3.2e7;
#: set ~2x above that. Smoke runs keep torch ops.
FUSE_MIN_WORK = 5e7


def activation_units(spec: ModelSpec, input_shape: Sequence[int]) -> int:
    """Activation outputs per example: the hidden widths (MLP) or channels x positions (CNN)."""
    if spec.kind != "cnn":
        return sum(spec.widths)
    sizes = conv_output_sizes(input_shape[1:], spec.kernel_sizes, spec.stride, spec.padding)
    return sum(width * math.prod(size) for width, size in zip(spec.widths, sizes))


def fusion_pays(fid: Fidelity, input_shape: Sequence[int], members: int) -> bool:
    """Whether ``members`` networks trained at ``fid`` repay building their fused kernels."""
    return fid.steps * fid.batch_size * activation_units(fid.model, input_shape) * members >= FUSE_MIN_WORK


class _Batches:
    """Every member's minibatch order (:func:`epoch_batches`, what train_one reads one batch at a
    time), drawn an epoch at a time for the whole stack: one (K, B) slice per step."""

    def __init__(self, seeds: Sequence[int], n: int, batch_size: int) -> None:
        self.epochs: list[Iterator[torch.Tensor]] = [epoch_batches(s, n, batch_size) for s in seeds]
        self.current = torch.empty(len(seeds), 0, batch_size, dtype=torch.long)
        self.i = 0

    def next(self) -> torch.Tensor:
        if self.i == self.current.shape[1]:
            self.current, self.i = torch.stack([next(e) for e in self.epochs]), 0  # (K, batches, B)
        self.i += 1
        return self.current[:, self.i - 1]

    def keep(self, keep: list[int]) -> None:
        self.epochs = [self.epochs[pos] for pos in keep]
        self.current = self.current[keep]


def _optimizer(net: StackedNet, fid: Fidelity) -> torch.optim.Optimizer | FlatAdam:
    """The stack's optimizer: Adam of a fused stack as one C call over its flat buffer
    (:class:`FlatAdam`), else torch's (:func:`make_optimizer`)."""
    if net.flat is not None and net.kernel is not None and fid.optimizer == "adam":
        return FlatAdam(net.flat, fid, net.kernel)
    return make_optimizer(net.parameters(), fid)


def _rebuild_optimizer(old: torch.optim.Optimizer, old_params: list[torch.Tensor], net: StackedNet,
                       keep: list[int], k_old: int, fid: Fidelity) -> torch.optim.Optimizer:
    """A fresh optimizer over the compacted stack carrying the survivors' state (Adam moments,
    step count, SGD momentum): stacked state is indexed on the member dim, activation state kept."""
    new_params = net.parameters()
    opt = make_optimizer(new_params, fid)
    idx = torch.tensor(keep, device=net.params["hb"].device)
    old_stacked = {id(p): name for name, p in zip(net.params, old_params[: len(net.params)])}
    new_by_name = dict(net.params)
    for p_old in old_params:
        state = old.state.get(p_old)
        if not state:
            continue
        if id(p_old) in old_stacked:
            p_new = new_by_name[old_stacked[id(p_old)]]
            opt.state[p_new] = {key: (v.index_select(0, idx) if torch.is_tensor(v) and v.dim() > 0
                                      and v.shape[0] == k_old else v) for key, v in state.items()}
        elif any(p_old is q for q in new_params):
            opt.state[p_old] = state
    return opt


def train_population(
    activations: Sequence[ActivationSpec],
    fidelity: Fidelity | str,
    seeds: Sequence[int],
    device: str | torch.device = "cpu",
    report: Callable[[int, int, float], bool] | None = None,
    dataset: Dataset | None = None,
    *,
    trace: dict[int, list[float]] | None = None,
    fused: bool | None = None,
) -> list[TrainResult]:
    """Train ``activations[i]`` with ``seeds[i]`` for every i as one stacked network.

    ``report(i, step, val_acc)`` is called at each checkpoint for each live member; True prunes
    member i only. Results come back in input order, as :func:`train_one` would give them.
    ``trace``, if given, maps each member index to its per-step training losses. On CPU the
    activations run as fused C kernels (:mod:`actsearch.evaluation.kernels`) when every member has a sympy
    form, a C compiler is present and the run is long enough to repay the build (``fused=None``:
    :data:`FUSE_MIN_WORK`); ``fused=True`` fuses whenever possible, ``fused=False`` (or
    ``ACTSEARCH_FUSED=0``) keeps torch ops.
    """
    if len(activations) != len(seeds):
        raise ValueError(f"{len(activations)} activations but {len(seeds)} seeds")
    if not activations:
        return []
    fid, dev, data = prepare(fidelity, device, dataset)
    t0 = time.perf_counter()
    models = [build_model(fid.model, a, data.input_shape, data.num_classes, seed=s).to(dev)
              for a, s in zip(activations, seeds)]
    fuse = fused if fused is not None else fusion_pays(fid, data.input_shape, len(seeds))
    net = StackedNet(models, fid.model.kind, fid.model.dropout, data.input_shape,
                     population_kernel(activations, dev) if fuse else None)
    del models
    opt = _optimizer(net, fid)
    lr_at(fid, 0)
    alive = list(range(len(seeds)))  # original index of each stack position
    batches = _Batches(seeds, len(data.y_train), fid.batch_size)
    curves: list[list[tuple[int, float]]] = [[] for _ in seeds]
    results: dict[int, TrainResult] = {}
    marks = checkpoints(fid)
    budget = fid.time_limit * len(seeds)
    losses = torch.zeros(0)
    step = 0

    def drop(done: dict[int, tuple[str, str | None]], with_test: bool) -> None:
        """Record results for the members in ``done`` (stack positions) and compact the stack."""
        nonlocal opt, alive, losses
        test = net.accuracy(data.x_test, data.y_test).tolist() if with_test else None
        has_ood = with_test and data.x_ood is not None and data.y_ood is not None
        ood = net.accuracy(data.x_ood, data.y_ood).tolist() if has_ood else None  # type: ignore[arg-type]
        fin = losses.detach().tolist() if losses.numel() else None
        for pos, (status, reason) in done.items():
            i = alive[pos]
            diverged = status == "diverged"
            results[i] = TrainResult(status, score(fid, curves[i]),
                                     None if diverged or test is None else test[pos], step,
                                     time.perf_counter() - t0, curves[i], reason,
                                     None if diverged or fin is None else fin[pos],
                                     None if diverged or ood is None else ood[pos])
        keep = [pos for pos in range(len(alive)) if pos not in done]
        if keep:
            old_params, k_old = net.parameters(), net.k
            index = net.keep(keep)
            if isinstance(opt, FlatAdam):
                assert index is not None
                opt.keep(index)
            else:
                opt = _rebuild_optimizer(opt, old_params, net, keep, k_old, fid)
        if losses.numel():
            losses = losses.detach()[torch.tensor(keep, dtype=torch.long, device=losses.device)]
        batches.keep(keep)
        alive = [alive[pos] for pos in keep]

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []), ThreadPolicy() as threads:
        torch.manual_seed(seeds[0])  # dropout masks for the stack
        while step < fid.steps and alive:
            threads.adapt()
            idx = batches.next().to(dev, non_blocking=True)  # (K, B): each member's rows of the training set
            losses = loss_and_grads(net, data.x_train, data.y_train, rows=idx)
            step += 1
            for group in opt.param_groups:
                group["lr"] = lr_at(fid, step - 1)
            if isinstance(opt, FlatAdam):  # the update and the finiteness check in one pass
                nonfinite = opt.step(losses)
            else:
                nonfinite = net.nonfinite(losses)
                opt.step()
            if bool(nonfinite.any().item()):  # the one host sync per step
                # Dropped after the update: Adam and SGD are elementwise, so it changed only their own values.
                bad = nonfinite.nonzero().flatten().tolist()
                loss_ok = torch.isfinite(losses.detach()).tolist()
                done = {pos: ("diverged", f"loss is {losses[pos].item()} at step {step}" if not loss_ok[pos]
                              else f"gradient is inf/nan at step {step}") for pos in bad}
                drop(done, with_test=False)
                if not alive:
                    break
            if trace is not None:
                for i, v in zip(alive, losses.detach().tolist()):
                    trace.setdefault(i, []).append(v)
            if step in marks:
                accs = net.accuracy(data.x_val, data.y_val).tolist()
                pruned: dict[int, tuple[str, str | None]] = {}
                for pos, (i, acc) in enumerate(zip(alive, accs)):
                    curves[i].append((step, acc))
                    if report is not None and report(i, step, acc):
                        pruned[pos] = ("pruned", f"pruned at step {step} (val accuracy {acc:.4f})")
                if pruned:
                    drop(pruned, with_test=True)
            if alive and time.perf_counter() - t0 > budget:
                for pos, (i, acc) in enumerate(zip(alive, net.accuracy(data.x_val, data.y_val).tolist())):
                    if not curves[i] or curves[i][-1][0] != step:
                        curves[i].append((step, acc))
                reason = f"time limit {fid.time_limit:g}s per candidate reached at step {step}"
                drop({pos: ("timeout", reason) for pos in range(len(alive))}, with_test=True)
        if alive:
            drop({pos: ("ok", None) for pos in range(len(alive))}, with_test=True)
    return [results[i] for i in range(len(seeds))]
