"""Train K candidates at once as one stacked network (population-batched evaluation).

On a small CPU a 100-unit layer is far too small to keep the cores busy; per-call overhead
dominates. Stacking K child networks turns K small matmuls into one ``torch.baddbmm`` (MLP weights
shaped (K, in, out)) and K small convolutions into one grouped convolution (``groups=K``), so the
per-step overhead is paid once per population instead of once per candidate.

Exactness: member k is built by :func:`actsearch.models.build_model` with its own seed (the same
call :func:`actsearch.train.train_one` makes), reads the same minibatches (:func:`epoch_batches`), and
the loss is the SUM of per-member mean losses, so d(loss)/d(theta_k) is member k's own gradient.
Adam and SGD act elementwise, so one optimizer step over the stacked tensors is K independent
steps. Member k therefore follows the trajectory it would follow alone, up to float rounding
(bmm vs mm). A member whose loss or gradient is non-finite, or that ``report`` prunes, is removed
from the stack (parameters, gradients and optimizer state are compacted) before the update, so it
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
import torch.nn.functional as F
from torch import nn

from . import _backprop
from ._memory import retain_freed_memory
from .activations import ActivationSpec
from .data import Dataset
from .fused import PopulationKernel, population_kernel
from .models import ModelSpec, build_model, conv_output_sizes
from .train import (Fidelity, TrainResult, checkpoints, epoch_batches, get_dataset, get_fidelity, lr_at,
                    make_optimizer, resolve_device)

__all__ = ["train_population", "StackedNet", "FUSE_MIN_WORK", "activation_units", "fusion_pays"]


class StackedNet:
    """K child networks of one architecture held as stacked tensors with a leading member dim."""

    def __init__(self, models: Sequence[nn.Module], kind: str, dropout: float, input_shape: Sequence[int],
                 kernel: PopulationKernel | None = None) -> None:
        first = models[0]
        # Fused C activations (actsearch.fused), member i -> kernel function i; None: torch ops.
        self.kernel = kernel
        self.members = list(range(len(models)))
        self.kind, self.dropout, self.input_shape = kind, dropout, tuple(input_shape)
        self.conv_args: dict[str, tuple[int, ...]] = {}
        one_d = isinstance(first.layers[0], nn.Conv1d)
        if kind == "cnn":  # 1-D convolutions run as 2-D ones of height 1 (see forward)
            stride, padding = first.layers[0].stride, first.layers[0].padding
            self.conv_args = {"stride": (1, *stride) if one_d else stride,
                              "padding": (0, *padding) if one_d else padding}
        self.widths = [layer.out_features if kind == "mlp" else layer.out_channels for layer in first.layers]
        self.norm_kind = type(first.norms[0]).__name__  # Identity | BatchNorm* | LayerNorm | GroupNorm
        self.eps = getattr(first.norms[0], "eps", 1e-5)
        self.momentum = getattr(first.norms[0], "momentum", 0.1)
        stack = lambda ts: torch.stack([t.detach() for t in ts]).contiguous()  # noqa: E731
        # Linear weights keep the solo layout, (K, out, in): :meth:`linear`'s baddbmm reads the
        # transposed view exactly as nn.Linear's addmm does, so the same BLAS path rounds the same way.
        # Conv weights are stored (K, out, kh, kw, in), for a channels_last view (:meth:`_conv_weight`).
        self.params: dict[str, torch.Tensor] = {}
        self.buffers: dict[str, torch.Tensor] = {}
        for i in range(len(self.widths)):
            w = stack([m.layers[i].weight for m in models])
            if kind == "cnn":  # (K, out, kh, kw, in): see _conv_weight
                w = (w.unsqueeze(3) if one_d else w).permute(0, 1, 3, 4, 2).contiguous()
            self.params[f"w{i}"] = w
            if first.layers[i].bias is not None:  # none before BatchNorm (models._bias_before)
                self.params[f"b{i}"] = stack([m.layers[i].bias for m in models])
            if self.norm_kind != "Identity":
                self.params[f"g{i}"] = stack([m.norms[i].weight for m in models])
                self.params[f"n{i}"] = stack([m.norms[i].bias for m in models])
            if self.norm_kind.startswith("BatchNorm"):
                self.buffers[f"rm{i}"] = stack([m.norms[i].running_mean for m in models])
                self.buffers[f"rv{i}"] = stack([m.norms[i].running_var for m in models])
        self.params["hw"] = stack([m.head.weight for m in models])
        self.params["hb"] = stack([m.head.bias for m in models])
        for p in self.params.values():
            p.requires_grad_(True)
        self.acts: list[list[nn.Module]] = [list(m.acts) for m in models]  # [member][layer]
        self.training = True

    @property
    def k(self) -> int:
        return self.params["hb"].shape[0]

    def parameters(self) -> list[torch.Tensor]:
        return list(self.params.values()) + [p for ps in self._act_params for p in ps]

    def act_params(self) -> list[list[torch.Tensor]]:
        """Per member, its activations' trainable parameters (β)."""
        return [[p for p in ps if p.requires_grad] for ps in self._act_params]

    @property
    def acts(self) -> list[list[nn.Module]]:
        """Per member (stack position), its activation module per layer."""
        return self._acts

    @acts.setter
    def acts(self, acts: list[list[nn.Module]]) -> None:
        self._acts = acts
        # Listed once per change of the stack: nn.Module.parameters() walks the module tree.
        self._act_params = [[p for a in member for p in a.parameters()] for member in acts]

    def keep(self, keep: list[int]) -> None:
        """Drop every member not in ``keep`` (positions in the current stack), in place."""
        idx = torch.tensor(keep, device=self.params["hb"].device)
        for name, p in self.params.items():
            q = p.detach().index_select(0, idx).requires_grad_(True)
            if p.grad is not None:
                q.grad = p.grad.index_select(0, idx)
            self.params[name] = q
        for name, b in self.buffers.items():
            self.buffers[name] = b.index_select(0, idx)
        self.acts = [self.acts[i] for i in keep]
        self.members = [self.members[i] for i in keep]

    # ------------------------------------------------------------------------------- forward
    def _activate(self, h: torch.Tensor, layer: int, dim: int) -> torch.Tensor:
        if self.kernel is not None:  # one C call for all members, forward and backward
            return self.kernel(h, self.members, [acts[layer] for acts in self.acts], dim)
        # split/unbind + cat/stack: the backward of a split is one cat, not K zero-filled scatters.
        if dim == 0:
            return torch.stack([acts[layer](x) for acts, x in zip(self.acts, h.unbind(0))])
        parts = h.split(self.widths[layer], dim=1)
        return torch.cat([acts[layer](x) for acts, x in zip(self.acts, parts)], dim=1)

    def linear(self, h: torch.Tensor, w: str, b: str) -> torch.Tensor:
        """The stacked affine layer (weight ``params[w]``, bias ``params[b]`` if it has one) on ``h`` (K, N, in)."""
        if b not in self.params:
            return torch.bmm(h, self.params[w].transpose(1, 2))
        return torch.baddbmm(self.params[b][:, None, :], h, self.params[w].transpose(1, 2))

    def _conv_weight(self, i: int) -> torch.Tensor:
        """Layer i's grouped-conv weight (K*out, in, kh, kw) in channels_last memory, as a view: the
        stacked parameter is stored (K, out, kh, kw, in) — no copy per step, and its gradient
        comes back in the parameter's own layout (no copy either)."""
        return self.params[f"w{i}"].permute(0, 1, 4, 2, 3).flatten(0, 1)

    def _norm_mlp(self, h: torch.Tensor, i: int) -> torch.Tensor:
        k, n, c = h.shape
        if self.norm_kind.startswith("BatchNorm"):  # per (member, channel) statistics over the batch
            flat = h.transpose(0, 1).reshape(n, k * c)
            out = F.batch_norm(flat, self.buffers[f"rm{i}"].view(-1), self.buffers[f"rv{i}"].view(-1),
                               self.params[f"g{i}"].reshape(-1), self.params[f"n{i}"].reshape(-1),
                               self.training, self.momentum, self.eps)
            return out.view(n, k, c).transpose(0, 1)
        h = F.layer_norm(h, (c,), eps=self.eps)
        return h * self.params[f"g{i}"][:, None, :] + self.params[f"n{i}"][:, None, :]

    def _norm_cnn(self, h: torch.Tensor, i: int) -> torch.Tensor:
        g, b = self.params[f"g{i}"].reshape(-1), self.params[f"n{i}"].reshape(-1)
        if self.norm_kind.startswith("BatchNorm"):
            return F.batch_norm(h, self.buffers[f"rm{i}"].view(-1), self.buffers[f"rv{i}"].view(-1),
                                g, b, self.training, self.momentum, self.eps)
        return F.group_norm(h, self.k, g, b, self.eps)  # K groups = GroupNorm(1, C) per member

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (K, N, *input_shape) one batch per member, or (N, *input_shape) shared by all.
        Returns logits (K, N, classes)."""
        k = self.k
        shared = x.dim() == len(self.input_shape) + 1
        if self.kind == "mlp":
            h = x.flatten(1).expand(k, -1, -1) if shared else x.flatten(2)
            for i in range(len(self.widths)):
                h = self.linear(h, f"w{i}", f"b{i}")
                if self.norm_kind != "Identity":
                    h = self._norm_mlp(h, i)
                h = self._activate(h, i, 0)
                if self.dropout:
                    h = F.dropout(h, self.dropout, self.training)
            return self.linear(h, "hw", "hb")
        # CNN: members side by side on the channel dim, (N, K*C, *spatial), one grouped conv — run
        # as a 2-D convolution (a 1-D one with height 1) in channels_last memory: oneDNN's grouped
        # convolution and batch norm are ~1.3-1.8x faster there than in (N, C, L) (bench_eval).
        if shared:
            h = x.repeat(1, k, *([1] * (x.dim() - 2)))
        else:
            h = x.transpose(0, 1).flatten(1, 2)
        one_d = h.dim() == 3
        if one_d:
            h = h.unsqueeze(2)
        h = h.contiguous(memory_format=torch.channels_last)
        for i in range(len(self.widths)):
            bias = self.params[f"b{i}"].reshape(-1) if f"b{i}" in self.params else None
            h = F.conv2d(h, self._conv_weight(i), bias, groups=k, **self.conv_args)
            if self.norm_kind != "Identity":
                h = self._norm_cnn(h, i)
            h = self._activate(h, i, 1)
            if self.dropout:
                h = F.dropout(h, self.dropout, self.training)
        h = h.reshape(h.shape[0], k, -1).transpose(0, 1)  # (K, N, C*spatial), C-major like flatten(1)
        return self.linear(h, "hw", "hb")

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor, by_hand: bool | None = None) -> torch.Tensor:
        """Per-member mean cross-entropy (K,) on per-member batches ``x`` (K, N, ...), ``y`` (K, N),
        detached, with every parameter's ``.grad`` set. The plain MLP with fused activations is
        differentiated by hand (:mod:`actsearch._backprop`; ``by_hand=None``: where it applies),
        anything else by autograd."""
        for p in self.parameters():
            p.grad = None
        if by_hand or (by_hand is None and _backprop.applies(self)):
            return _backprop.mlp_loss_and_grads(self, x, y)
        logits = self.forward(x)
        if self.kernel is not None and logits.device.type == "cpu":  # one C call, as _backprop's
            losses = self.kernel.cross_entropy_loss(logits, y)
        else:  # classes on dim 1, (K, C, N): vectorised along N, 2x faster than (K*N, C) rows
            losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)
        losses.sum().backward()  # sum of per-member means: each member gets its own gradient
        return losses.detach()

    def nonfinite(self, losses: torch.Tensor) -> torch.Tensor:
        """Per member (K,), whether its loss or any of its gradients is inf or NaN."""
        grads = [p.grad for p in self.params.values()]
        if self.kernel is not None and losses.device.type == "cpu":  # one C pass over the stack
            bad = self.kernel.nonfinite([losses.contiguous(), *grads])  # type: ignore[list-item]
        else:  # the sum of a member's entries is non-finite iff one is (or it overflows: diverged)
            bad = ~torch.isfinite(losses + sum(g.flatten(1).sum(1) for g in grads))  # type: ignore[union-attr]
        act_p = self.act_params()
        if any(act_p):
            sums = torch.stack([sum((p.grad.sum() for p in ps if p.grad is not None),
                                    torch.zeros((), device=losses.device)) for ps in act_p])
            bad = bad | ~torch.isfinite(sums)
        return bad

    @torch.no_grad()
    def accuracy(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member accuracy (K,) on a shared set, in one batch, in eval mode."""
        self.training = False
        for acts in self.acts:
            for a in acts:
                a.eval()
        pred = self.forward(x).argmax(-1)
        self.training = True
        for acts in self.acts:
            for a in acts:
                a.train()
        return (pred == y).float().mean(1)


#: Activation evaluations (steps x batch x units x members) under which building the fused kernels
#: (0.25-1 s of C compilation per population, by its size and the CPUs) costs more than it saves
#: (~3 ns per evaluation, forward and backward, measured on 2 cores; set when a build took ~1 s,
#: left with that margin): smoke-sized runs keep torch ops.
FUSE_MIN_WORK = 3e8


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
    activations run as fused C kernels (:mod:`actsearch.fused`) when every member has a sympy
    form, a C compiler is present and the run is long enough to repay the build (``fused=None``:
    :data:`FUSE_MIN_WORK`); ``fused=True`` fuses whenever possible, ``fused=False`` (or
    ``ACTSEARCH_FUSED=0``) keeps torch ops.
    """
    if len(activations) != len(seeds):
        raise ValueError(f"{len(activations)} activations but {len(seeds)} seeds")
    if not activations:
        return []
    fid = get_fidelity(fidelity)
    dev = resolve_device(device)
    if dev.type == "cpu":
        retain_freed_memory()
    data = dataset.to(dev) if dataset is not None else get_dataset(fid.dataset, dev)
    t0 = time.perf_counter()
    models = [build_model(fid.model, a, data.input_shape, data.num_classes, seed=s).to(dev)
              for a, s in zip(activations, seeds)]
    fuse = fused if fused is not None else fusion_pays(fid, data.input_shape, len(seeds))
    net = StackedNet(models, fid.model.kind, fid.model.dropout, data.input_shape,
                     population_kernel(activations, dev) if fuse else None)
    del models
    opt = make_optimizer(net.parameters(), fid)
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
        fin = losses.detach().tolist() if losses.numel() else None
        for pos, (status, reason) in done.items():
            i = alive[pos]
            diverged = status == "diverged"
            results[i] = TrainResult(status, curves[i][-1][1] if curves[i] else None,
                                     None if diverged or test is None else test[pos], step,
                                     time.perf_counter() - t0, curves[i], reason,
                                     None if diverged or fin is None else fin[pos])
        keep = [pos for pos in range(len(alive)) if pos not in done]
        if keep:
            old_params, k_old = net.parameters(), net.k
            net.keep(keep)
            opt = _rebuild_optimizer(opt, old_params, net, keep, k_old, fid)
        if losses.numel():
            losses = losses.detach()[torch.tensor(keep, dtype=torch.long, device=losses.device)]
        batches.keep(keep)
        alive = [alive[pos] for pos in keep]

    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        torch.manual_seed(seeds[0])  # dropout masks for the stack
        while step < fid.steps and alive:
            idx = batches.next().to(dev, non_blocking=True)  # (K, B)
            flat = idx.reshape(-1)  # index_select: a row copy, 2x faster than indexing with (K, B)
            losses = net.loss_and_grads(data.x_train.index_select(0, flat).view(*idx.shape, *data.input_shape),
                                        data.y_train.index_select(0, flat).view(idx.shape))
            step += 1
            nonfinite = net.nonfinite(losses)
            if bool(nonfinite.any().item()):  # the one host sync per step
                bad = nonfinite.nonzero().flatten().tolist()
                loss_ok = torch.isfinite(losses.detach()).tolist()
                done = {pos: ("diverged", f"loss is {losses[pos].item()} at step {step}" if not loss_ok[pos]
                              else f"gradient is inf/nan at step {step}") for pos in bad}
                drop(done, with_test=False)
                if not alive:
                    break
            for group in opt.param_groups:
                group["lr"] = lr_at(fid, step - 1)
            opt.step()
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
