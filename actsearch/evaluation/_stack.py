"""K child networks of one architecture as one stacked network (the population engine's model).

On a small CPU a 100-unit layer is far too small to keep the cores busy; per-call overhead
dominates. Stacking K child networks turns K small matmuls into one ``torch.baddbmm`` (MLP weights
shaped (K, out, in)) and K small convolutions into one grouped convolution (``groups=K``), so the
per-step overhead is paid once per population instead of once per candidate. Each member keeps its
own activation module per layer (its own β), applied to its (N, C, ...) slice — by the fused C
kernels (:mod:`actsearch.evaluation.kernels`) when the population has them, else by torch ops.

A 1-D CNN with those kernels, plain or with BatchNorm (`standard`, `power`, `full`), runs
**member-major** instead:
each member's activations one contiguous (N, L, C) block, each convolution its columns (one C
pass) times the stacked weights in one batched GEMM (:meth:`StackedNet._forward_members`) — the
same numbers as the grouped convolution to float rounding, a `standard` step ~1.5x faster.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._flat import FlatParams
from .kernels import PopulationKernel

__all__ = ["StackedNet"]


class StackedNet:
    """K child networks of one architecture held as stacked tensors with a leading member dim."""

    def __init__(self, models: Sequence[nn.Module], kind: str, dropout: float, input_shape: Sequence[int],
                 kernel: PopulationKernel | None = None) -> None:
        first = models[0]
        # Fused C activations (actsearch.evaluation.kernels), member i -> kernel function i; None: torch ops.
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
        # A 1-D CNN with fused activations, plain or with BatchNorm, runs member-major (_forward_members).
        self.member_major = (kind == "cnn" and one_d and kernel is not None
                             and self.norm_kind in ("Identity", "BatchNorm1d"))
        self.conv1d_args = {"stride": first.layers[0].stride[0], "pad": first.layers[0].padding[0]} if one_d else {}
        self.params["hw"] = stack([m.head.weight for m in models])
        self.params["hb"] = stack([m.head.bias for m in models])
        for p in self.params.values():
            p.requires_grad_(True)
        self.acts: list[list[nn.Module]] = [list(m.acts) for m in models]  # [member][layer]
        self.training = True
        # Fused: every trainable tensor a view of one buffer (one C Adam step, one finiteness check).
        self.flat = FlatParams(self.params, self.act_params()) if kernel is not None else None

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

    def keep(self, keep: list[int]) -> torch.Tensor | None:
        """Drop every member not in ``keep`` (positions in the current stack), in place; returns the
        flat index that compacted :attr:`flat` (None without it)."""
        idx = torch.tensor(keep, device=self.params["hb"].device)
        index = None
        if self.flat is not None:
            index = self.flat.keep(keep)
            assert self.kernel is not None
            self.kernel.forget_bindings()
        else:
            for name, p in self.params.items():
                q = p.detach().index_select(0, idx).requires_grad_(True)
                if p.grad is not None:
                    q.grad = p.grad.index_select(0, idx)
                self.params[name] = q
        for name, b in self.buffers.items():
            self.buffers[name] = b.index_select(0, idx)
        self.acts = [self.acts[i] for i in keep]
        self.members = [self.members[i] for i in keep]
        return index

    # ------------------------------------------------------------------------------- forward
    def _activate(self, h: torch.Tensor, layer: int, dim: int) -> torch.Tensor:
        if self.kernel is not None:  # one C call for all members, forward and backward
            return self.kernel(h, self.members, [acts[layer] for acts in self.acts], dim)
        # split/unbind + cat/stack: the backward of a split is one cat, not K zero-filled scatters.
        if dim == 0:
            return torch.stack([acts[layer](x) for acts, x in zip(self.acts, h.unbind(0))])
        parts = h.split(self.widths[layer], dim=1)
        return torch.cat([acts[layer](x) for acts, x in zip(self.acts, parts)], dim=1)

    def linear(self, h: torch.Tensor, w: str, b: str, weight: torch.Tensor | None = None) -> torch.Tensor:
        """The stacked affine layer (weight ``params[w]`` or ``weight``, bias ``params[b]`` if it has one)
        on ``h`` (K, N, in)."""
        weight = self.params[w] if weight is None else weight
        if b not in self.params:
            return torch.bmm(h, weight.transpose(1, 2))
        return torch.baddbmm(self.params[b][:, None, :], h, weight.transpose(1, 2))

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
        if self.member_major:
            return self._forward_members(x, shared)
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

    def _forward_members(self, x: torch.Tensor, shared: bool) -> torch.Tensor:
        """A 1-D CNN member-major: each member's activations one contiguous (N, L, C) block, every
        convolution columns + one batched GEMM (:meth:`PopulationKernel.conv1d`), every activation
        one long run per member. Against the grouped convolutions of :meth:`forward` a
        `standard` step is ~1.5x faster (bench_eval --compile: 6.1-6.9 vs 9.6-10.4 ms for 16
        members): oneDNN's grouped convolution of 32 channels over lengths
        5-40 ran at a third of the GEMM rate (its 1-channel first layer at 1/20), and the kernels'
        runs of C = 32 values in channels_last cost twice one run per member (bench_eval)."""
        kernel = self.kernel
        assert kernel is not None
        h = (x[None] if shared else x).transpose(-1, -2)  # (K or 1, N, L, C_in)
        for i in range(len(self.widths)):
            w = self.params[f"w{i}"]  # (K, out, 1, taps, in): columns ordered (tap, channel) as im2col's
            h = kernel.conv1d(h, w.flatten(2), self.params.get(f"b{i}"), **self.conv1d_args)
            k, n, t, c = h.shape
            z = h.view(k, n * t, c)
            if self.norm_kind != "Identity":
                z = kernel.batch_norm(z, *self.norm_args(i))
            h = self._activate(z, i, 0).view(k, n, t, c)
            if self.dropout:
                h = F.dropout(h, self.dropout, self.training)
        return self.linear(h.reshape(k, n, t * c), "hw", "hb", self.head_position_major(t))

    def norm_args(self, i: int) -> tuple[object, ...]:
        """Layer i's BatchNorm as :meth:`PopulationKernel.batch_norm` takes it, after the stack."""
        return (self.params[f"g{i}"], self.params[f"n{i}"], (self.buffers[f"rm{i}"], self.buffers[f"rv{i}"]),
                self.training, self.momentum, self.eps)

    def head_position_major(self, positions: int) -> torch.Tensor:
        """The head's weight (K, out, C*L), stored as the solo network flattens (N, C, L) features —
        channel-major — reordered (a copy) for member-major features, position-major (L, C)."""
        hw = self.params["hw"]
        k, out, feats = hw.shape
        return hw.view(k, out, feats // positions, positions).transpose(2, 3).reshape(k, out, feats)

    def zero_grad(self) -> None:
        if self.flat is not None:  # the gradients stay views of the flat buffer
            self.flat.grad.zero_()
            return
        for p in self.parameters():
            p.grad = None

    def loss_and_grads(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-member mean cross-entropy (K,) on per-member batches ``x`` (K, N, ...), ``y`` (K, N),
        detached, with every parameter's ``.grad`` set, by autograd. (:func:`actsearch.evaluation.
        population.loss_and_grads` takes the hand-written step where it applies.)"""
        self.zero_grad()
        logits = self.forward(x)
        if self.kernel is not None and logits.device.type == "cpu":  # one C call, as _backprop's
            losses = self.kernel.cross_entropy_loss(logits, y)
        else:  # classes on dim 1, (K, C, N): vectorised along N, 2x faster than (K*N, C) rows
            losses = F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1)
        losses.sum().backward()  # sum of per-member means: each member gets its own gradient
        return losses.detach()

    def nonfinite(self, losses: torch.Tensor) -> torch.Tensor:
        """Per member (K,), whether its loss or any of its gradients is inf or NaN."""
        if self.flat is not None and self.kernel is not None:  # one C pass over the flat gradient
            return self.kernel.nonfinite_flat(losses.detach(), self.flat)
        grads = [p.grad for p in self.params.values()]
        act_p = self.act_params()
        # the sum of a member's entries is non-finite iff one is (or it overflows: diverged)
        bad = ~torch.isfinite(losses + sum(g.flatten(1).sum(1) for g in grads))  # type: ignore[union-attr]
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
