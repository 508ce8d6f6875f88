"""The stacked plain MLP's and member-major 1-D CNN's training steps written out by hand: forward,
loss and every gradient.

Why: at the `quick` preset (MLP 40-100-100-10, batch 100) a population step is ~0.7 ms of batched
matmuls, and autograd's bookkeeping around them cost as much again on 2 cores — graph nodes for
~25 ops, AccumulateGrad, a copy of each weight gradient (baddbmm's backward returns it transposed
against the (K, out, in) weight) and log_softmax over a 10-wide last dim. With fused activations
the whole backward is 8 batched matmuls, 3 sums and the kernel's own backward, so it is written
here directly (``benchmarks/bench_eval.py``: −30% per step). The member-major CNN
(:meth:`actsearch.evaluation._stack.StackedNet._forward_members`) is the same chain with columns
before each GEMM: a `standard` step of 16 members 6.25 → 5.7 ms by hand.

Where torch carries a BLAS SGEMM (MKL, on x86), the MLP's step is one C call instead
(:meth:`actsearch.evaluation.kernels.PopulationKernel.mlp_step`): the same chain member by member,
each member's GEMMs single-threaded on one core, members spread over the cores — one parallel
region per step instead of ~15 and a member's activations kept in its core's cache (`quick`, 16
members: 1.49 → 1.22 ms per step on 2 cores).

It computes what autograd computes, in the same order: weight gradients as ∂L/∂z^T·a (the product
nn.Linear's backward forms for its (out, in) weight), the loss and its gradient as log_softmax,
nll_loss and their backward do (softmax · (1/N) − 1/N at the target; one C call of the fused
library, :meth:`actsearch.evaluation.kernels.PopulationKernel.cross_entropy`).
``tests/evaluation/test_population.py`` checks every gradient against autograd on the same stack,
and the members against their solo runs.

Used only where it applies: an MLP without normalization or a member-major CNN (plain or with
BatchNorm), no dropout, every activation fused; anything else takes autograd
(:meth:`actsearch.evaluation._stack.StackedNet.loss_and_grads`).
"""
from __future__ import annotations

import torch

from ._stack import StackedNet

__all__ = ["applies", "loss_and_grads", "mlp_loss_and_grads", "cnn_loss_and_grads"]


def applies(net: StackedNet) -> bool:
    """Whether :func:`loss_and_grads` covers this stack: a plain MLP, or a member-major CNN, with
    fused activations and no dropout."""
    fused = not net.dropout and net.kernel is not None
    return fused and ((net.kind == "mlp" and net.norm_kind == "Identity") or net.member_major)


def loss_and_grads(net: StackedNet, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
                   ) -> torch.Tensor:
    """:func:`mlp_loss_and_grads` or :func:`cnn_loss_and_grads`, by the stack's kind. ``rows``
    (K, N): x and y are a whole set, member k's batch its rows ``rows[k]``."""
    if net.kind == "mlp":
        return mlp_loss_and_grads(net, x, y, rows)
    return cnn_loss_and_grads(net, *gather(x, y, rows))


def gather(x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Each member's batch (K, N, ...) and labels (K, N): the rows ``rows`` (K, N) of a whole set
    ``x``, ``y`` (``x``, ``y`` themselves without rows)."""
    if rows is None:
        return x, y
    flat = rows.reshape(-1)  # index_select: a row copy, 2x faster than indexing with (K, N)
    return x.index_select(0, flat).view(*rows.shape, *x.shape[1:]), y.index_select(0, flat).view(rows.shape)


def mlp_loss_and_grads(net: StackedNet, x: torch.Tensor, y: torch.Tensor, rows: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """Per-member mean cross-entropy (K,) of ``net`` on ``x`` (K, N, ...) with labels ``y`` (K, N);
    writes every stacked parameter's and trainable β's gradient into its ``.grad`` (views of the
    stack's flat gradient, :class:`actsearch.evaluation._flat.FlatParams`: each overwritten)."""
    kernel, p = net.kernel, net.params
    assert kernel is not None
    if kernel.gemm is not None:  # the whole step in one C call, member by member (the batch gathered there)
        k, n = (y if rows is None else rows).shape
        bound = [kernel.bind((k, n, w), net.members, [acts[i] for acts in net.acts], 0) for i, w in enumerate(net.widths)]
        layers = [(p[f"w{i}"], p[f"b{i}"]) for i in range(len(net.widths))] + [(p["hw"], p["hb"])]
        return kernel.mlp_step(x.flatten(1 if rows is not None else 2), y, layers, bound, rows)
    x, y = gather(x, y, rows)
    h = x.flatten(2)
    saved = []  # per layer: its input, pre-activation, kernel call, β
    for i in range(len(net.widths)):
        z = net.linear(h, f"w{i}", f"b{i}")
        call, betas = kernel.bind(z, net.members, [acts[i] for acts in net.acts], 0)
        saved.append((h, z, call, betas))
        h = kernel.forward(z, call)
    logits = net.linear(h, "hw", "hb")
    losses, g = kernel.cross_entropy(logits, y)  # g = ∂L/∂logits, (K, N, C)
    torch.bmm(g.transpose(1, 2), h, out=p["hw"].grad)
    torch.sum(g, 1, out=p["hb"].grad)
    grad = torch.bmm(g, p["hw"])  # ∂L/∂a of the last hidden layer, (K, N, H)
    for i in reversed(range(len(net.widths))):
        a, z, call, betas = saved[i]
        grad, _ = kernel.backward(z, grad, call, betas, [b.requires_grad for b in betas], into_grad=True)
        torch.bmm(grad.transpose(1, 2), a, out=p[f"w{i}"].grad)
        torch.sum(grad, 1, out=p[f"b{i}"].grad)
        if i:
            grad = torch.bmm(grad, p[f"w{i}"])
    return losses


def cnn_loss_and_grads(net: StackedNet, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """:func:`mlp_loss_and_grads` for a member-major 1-D CNN (:meth:`StackedNet._forward_members`):
    per layer the columns and batched GEMMs of :meth:`PopulationKernel.conv1d_forward` and their
    backward, the kernels' activations, the head on position-major features; x (K, N, C_in, L)."""
    kernel, p = net.kernel, net.params
    assert kernel is not None and net.member_major
    h = x.transpose(-1, -2)  # (K, N, L, C_in)
    saved = []  # per layer: its columns, pre-activation, kernel call, β, input geometry
    for i in range(len(net.widths)):
        w = p[f"w{i}"].flatten(2)  # (K, out, taps * in)
        z, cols = kernel.conv1d_forward(h, w, p.get(f"b{i}"), **net.conv1d_args)
        k, n, t, c = z.shape
        z = z.view(k, n * t, c)
        norm = None
        if net.norm_kind != "Identity":  # BatchNorm: the activation reads its output
            gamma, shift, buffers, training, momentum, eps = net.norm_args(i)
            pre = z
            z, mean, invstd = kernel.batch_norm_forward(pre, gamma, shift, buffers, training, momentum, eps)
            norm = (pre, gamma, shift, mean, invstd)
        call, betas = kernel.bind(z, net.members, [acts[i] for acts in net.acts], 0)
        geom = (n, h.shape[2], h.shape[3], net.conv1d_args["stride"], net.conv1d_args["pad"])
        saved.append((cols, z, call, betas, geom, norm))
        h = kernel.forward(z, call).view(k, n, t, c)
    feats = h.reshape(k, n, t * c)
    head = net.head_position_major(t)
    logits = net.linear(feats, "hw", "hb", head)
    losses, g = kernel.cross_entropy(logits, y)
    out = head.shape[1]  # the head's gradient back in its stored, channel-major order
    p["hw"].grad.view(k, out, c, t).copy_(torch.bmm(g.transpose(1, 2), feats).view(k, out, t, c).transpose(2, 3))
    torch.sum(g, 1, out=p["hb"].grad)
    grad = torch.bmm(g, head).view(k, n * t, c)  # ∂L/∂(last activation)
    for i in reversed(range(len(net.widths))):
        cols, z, call, betas, geom, norm = saved[i]
        grad, _ = kernel.backward(z, grad, call, betas, [b.requires_grad for b in betas], into_grad=True)
        if norm is not None:
            pre, gamma, shift, mean, invstd = norm
            grad, _, _ = kernel.batch_norm_backward(pre, grad, gamma, mean, invstd, out=(gamma.grad, shift.grad))
        w, b = p[f"w{i}"], p.get(f"b{i}")
        ga, _, _ = kernel.conv1d_backward(grad, cols, w.flatten(2), geom, i > 0, b is not None,
                                          out=(w.grad.flatten(2), None if b is None else b.grad))
        if ga is not None:
            grad = ga.view(k, -1, ga.shape[-1])
    return losses
