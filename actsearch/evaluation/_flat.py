"""A fused stack's trainable tensors as views of one flat buffer, and its optimizer as one C call.

Why: at `quick` (16 members, MLP 40-100-100-10) torch's fused Adam cost ~0.4 ms of a 1.7 ms
population step — its Python side walks every tensor (6 stacked ones, plus a β tensor per member
and layer in a population of the paper's space), and the kernel runs once per tensor — and the
finiteness check walked them again. With every stacked parameter (K, ...) and every member's β a
view of one buffer (their gradients views of another), the Adam step is one C loop over it
(:meth:`actsearch.evaluation.kernels.PopulationKernel.adam`) and the finiteness check one C call over a
table of (offset, count, member) segments built when the stack changes.

The views keep their tensor objects when members are dropped (``.data`` is re-pointed into the
compacted buffer), so the activation modules hold the same β Parameters throughout, and a torch
optimizer over them (SGD) keeps its state by identity.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .kernels import PopulationKernel
from .recipe import ADAM_BETAS, ADAM_EPS, Fidelity

__all__ = ["FlatParams", "FlatAdam"]


class FlatParams:
    """``params`` (name -> (K, ...) tensor; its values replaced by views) and each member's
    trainable β (``betas[pos]``: the Parameters of member ``pos``'s activation modules, each its
    own) as views of ``data``, their ``.grad`` views of ``grad``. Layout: the stacked tensors one
    after another, then the β member by member."""

    def __init__(self, params: dict[str, torch.Tensor], betas: Sequence[Sequence[nn.Parameter]]) -> None:
        ids = [id(b) for bs in betas for b in bs]
        if len(set(ids)) != len(ids):
            raise ValueError("a β Parameter is shared by two activation modules: it cannot have one place")
        self.params, self.betas = params, [list(bs) for bs in betas]
        values = [p.detach().reshape(-1) for p in params.values()] + [b.detach().reshape(-1) for bs in betas for b in bs]
        self.data = torch.cat(values) if values else torch.zeros(0)
        self.grad = torch.zeros_like(self.data)
        for name, p in list(params.items()):
            params[name] = p.detach().requires_grad_(True)  # its own object, re-pointed just below
        self._point()

    @property
    def k(self) -> int:
        return next(iter(self.params.values())).shape[0]

    def _point(self) -> None:
        """(Re)make every tensor a view of ``data`` and its gradient a view of ``grad``; rebuild the
        segment table :meth:`PopulationKernel.nonfinite_flat` reads."""
        k, at = self.k, 0
        offsets, counts, owners = [], [], []
        for p in self.params.values():
            n = p.numel()
            p.data = self.data[at:at + n].view(p.shape)
            p.grad = self.grad[at:at + n].view(p.shape)
            per = n // k
            offsets += [at + pos * per for pos in range(k)]
            counts += [per] * k
            owners += list(range(k))
            at += n
        for pos, bs in enumerate(self.betas):
            for b in bs:
                n = b.numel()
                b.data = self.data[at:at + n].view(b.shape)
                b.grad = self.grad[at:at + n].view(b.shape)
                offsets.append(at)
                counts.append(n)
                owners.append(pos)
                at += n
        self.segments = torch.tensor([offsets, counts, owners], dtype=torch.int64)  # (3, segments)
        self.segment_args = (len(offsets), *(row.data_ptr() for row in self.segments))  # as the C calls take them

    def keep(self, keep: list[int]) -> torch.Tensor:
        """Compact to the members at stack positions ``keep``, in place (gradients included: a step
        may still apply them); returns the flat index that did it, for the optimizer's state."""
        k = self.k
        parts, at = [], 0
        pos = torch.tensor(keep, dtype=torch.int64)
        for p in self.params.values():
            per = p.numel() // k
            parts.append((at + pos[:, None] * per + torch.arange(per)[None]).reshape(-1))
            at += p.numel()
        starts = []
        for bs in self.betas:
            starts.append(at)
            at += sum(b.numel() for b in bs)
        for i in keep:
            n = sum(b.numel() for b in self.betas[i])
            parts.append(torch.arange(starts[i], starts[i] + n))
        index = torch.cat(parts)
        self.data, self.grad = self.data[index], self.grad[index]
        shapes = {name: (len(keep), *p.shape[1:]) for name, p in self.params.items()}
        for name, p in self.params.items():  # the new K before _point views into the new buffers
            p.data = torch.empty(shapes[name])
        self.betas = [self.betas[i] for i in keep]
        self._point()
        return index


class FlatAdam:
    """Adam over a :class:`FlatParams` buffer: torch's fused CPU Adam formula — bitwise its result
    except on the last (<16) values of a tensor, which torch computes without its vector FMA — in
    one C call per step (:meth:`PopulationKernel.adam`). Offers what the population loop uses of a
    torch optimizer: ``param_groups[0]["lr"]`` and :meth:`step` (which also tells the members whose
    loss or gradient is not finite); :meth:`keep` compacts its state
    as :meth:`FlatParams.keep` compacted the buffer."""

    def __init__(self, flat: FlatParams, fid: Fidelity, kernel: PopulationKernel) -> None:
        self.flat, self.kernel = flat, kernel
        self.weight_decay = fid.weight_decay
        self.param_groups = [{"lr": fid.lr}]
        self.exp_avg, self.exp_avg_sq = torch.zeros_like(flat.data), torch.zeros_like(flat.data)
        self.steps = 0

    def step(self, losses: torch.Tensor) -> torch.Tensor:
        """Update every value; returns, per member, whether its loss or a gradient was inf or NaN
        (its values are updated too — Adam is elementwise, the others are untouched — and the
        caller drops it)."""
        self.steps += 1
        return self.kernel.adam(self.flat, self.exp_avg, self.exp_avg_sq, self.param_groups[0]["lr"], ADAM_BETAS,
                                ADAM_EPS, self.weight_decay, self.steps, losses)

    def keep(self, index: torch.Tensor) -> None:
        self.exp_avg, self.exp_avg_sq = self.exp_avg[index], self.exp_avg_sq[index]
