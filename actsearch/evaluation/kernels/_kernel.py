"""Fused CPU kernels for a population's activations: one C loop per candidate and direction.

Why: in eager PyTorch every elementwise op of a candidate is its own kernel, and in a population
of K the activations are K *different* op sequences on K slices (plus the split and cat around
them), so they do not batch; several of the paper's primitives (asinh, sinc, the bool masks of
max/min) are not even vectorised on CPU. On a 2-core machine they cost as much as the matmuls.
Here each candidate f(x; β) becomes one C loop for the forward and one for the backward, whose
derivatives sympy computes symbolically (∂f/∂x and every ∂f/∂β, common subexpressions shared by
``sympy.cse``; the loops are printed by :mod:`actsearch.expressions.printing.c`); GCC vectorises the loops and calls
glibc's vector math library (libmvec). One call per layer and direction runs every member of the
population on its own function, members in parallel on torch's OpenMP threads; dropping a member
needs no recompilation. Measured in ``benchmarks/bench_eval.py``.

One shared library per population, built by the system C compiler (``$CC`` or ``cc``; ~0.2-1 s,
inside the population's timed run; the members' loops are split over one translation unit per
usable CPU and compiled in parallel, and the dispatcher and training-step helpers — the same C for
every population — are one more unit whose object is compiled once per machine and kept: 16
members build in ~0.24 s on 2 cores) and cached on disk by the hash of its source and of the CPU
(it is built with -march=native) under ``$ACTSEARCH_KERNEL_DIR`` (default ``<cache>/kernels``;
the newest :data:`KEEP_LIBRARIES` are kept) — :mod:`._build`.

Beyond the activations the library holds the rest of a stacked network's step that is not a torch
GEMM: the loss with its gradient, the finiteness check and Adam over the flat parameter buffer
(:mod:`actsearch.evaluation._flat`), convolution columns, BatchNorm — and, where torch carries a
BLAS SGEMM (MKL), a plain MLP's whole step member by member (:meth:`PopulationKernel.mlp_step`).
β tensors are per channel (C,) or scalar.

Semantics follow the torch printer (:mod:`actsearch.expressions.printing.torch`): the same safe primitives from the
operator table (its ``c`` column), NaN propagates through max/min as torch.maximum does, and ties
get torch's gradients, max/min folded as that printer folds them: max(a, 0) has slope 0 at the tie
(torch.relu), max(a, c) and min(a, c) slope 1 (clamp), min(max(a, lo), hi) 0 at both ends
(hardtanh), max/min of two functions split it (torch.maximum). A step factor gates its branch to
exactly 0 (torch's masked gradient), even where that branch's derivative overflows.
``tests/test_fused.py`` checks values and gradients against a float64 reference on the paper's
space. Where float32 overflows *inside* a deep composition (paper-2 at |x| ≳ 30) the symbolic
derivative can still be NaN where torch's chain rule reaches 0 first; such a member is then
reported diverged.

Not fused — the caller keeps the torch path: CUDA tensors, dtypes other than float32, activations
without a sympy form (PReLU, maxout, any nn.Module), no working C compiler, ``ACTSEARCH_FUSED=0``.
"""
from __future__ import annotations

import ctypes
import functools
import math
import os
import warnings
from typing import Any, NamedTuple, Sequence

import torch

from ...errors import ActsearchError, CodegenError, FusedUnavailable
from ...expressions import ACTIVATIONS, Candidate, X, canonical_name, parse, twin_names
from . import _build
from ...expressions.printing.c import function_source
from ._csrc import c_sources

__all__ = ["PopulationKernel", "Call", "population_kernel", "as_candidate", "enabled", "clear_caches"]


def clear_caches() -> None:
    """Forget the libraries and generated sources this process holds (the disk cache stays), so the
    next population pays its source generation and load again: for benchmarks that count it."""
    _build.forget_loaded()
    function_source.cache_clear()


def enabled() -> bool:
    """Fusion is on unless ``ACTSEARCH_FUSED=0``, and needs a C compiler."""
    return os.environ.get("ACTSEARCH_FUSED", "1") != "0" and _build.compiler() is not None


@functools.lru_cache(maxsize=1)
def blas_sgemm() -> int | None:
    """The address of the BLAS SGEMM (Fortran interface, 32-bit integers) in torch's own CPU
    library — MKL's, on x86 builds — checked on a small product; None where there is none (then
    :meth:`PopulationKernel.mlp_step` is unavailable and the stacked step uses torch's GEMMs)."""
    if not torch.backends.mkl.is_available():
        return None
    try:
        fn = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib", "libtorch_cpu.so")).SGEMM
    except (OSError, AttributeError):
        return None
    a, b = torch.arange(6.0).view(2, 3), torch.arange(12.0).view(3, 4) - 5  # row-major a (2, 3) · b (3, 4)
    c = torch.zeros(2, 4)
    i32, f32, ch = ctypes.c_int, ctypes.c_float, ctypes.c_char
    fn(ctypes.byref(ch(b"N")), ctypes.byref(ch(b"N")), ctypes.byref(i32(4)), ctypes.byref(i32(2)),
       ctypes.byref(i32(3)), ctypes.byref(f32(1.0)), ctypes.c_void_p(b.data_ptr()), ctypes.byref(i32(4)),
       ctypes.c_void_p(a.data_ptr()), ctypes.byref(i32(3)), ctypes.byref(f32(0.0)), ctypes.c_void_p(c.data_ptr()),
       ctypes.byref(i32(4)))
    return ctypes.cast(fn, ctypes.c_void_p).value if torch.equal(c, a @ b) else None


# ------------------------------------------------------------------------------------ autograd
def _ptrs(tensors: Sequence[torch.Tensor | None]) -> ctypes.Array:
    return (ctypes.c_void_p * max(1, len(tensors)))(*[0 if t is None else t.data_ptr() for t in tensors])


def _memory_format(h: torch.Tensor) -> torch.memory_format:
    """channels_last for a 4-D tensor laid out so (and not also plainly contiguous), else contiguous."""
    if h.dim() == 4 and not h.is_contiguous() and h.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


class _Apply(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, h: torch.Tensor, kernel: PopulationKernel, call: Call,  # type: ignore[override]
                *betas: torch.Tensor) -> torch.Tensor:
        h = h.contiguous(memory_format=_memory_format(h))
        ctx.kernel, ctx.call = kernel, call
        ctx.save_for_backward(h, *betas)
        return kernel.forward(h, call)

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:  # type: ignore[override]
        h, *betas = ctx.saved_tensors
        gx, grads = ctx.kernel.backward(h, gy, ctx.call, betas, ctx.needs_input_grad[3:])
        return (gx, None, None, *grads)


class _CrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, logits: torch.Tensor, target: torch.Tensor,  # type: ignore[override]
                kernel: PopulationKernel) -> torch.Tensor:
        loss, g = kernel.cross_entropy(logits, target)
        ctx.save_for_backward(g)
        return loss

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> Any:  # type: ignore[override]
        (g,) = ctx.saved_tensors
        return g * grad[:, None, None], None, None


class _Conv1d(torch.autograd.Function):
    """A stacked 1-D convolution as columns and one batched GEMM per direction:
    :meth:`PopulationKernel.conv1d`."""

    @staticmethod
    def forward(ctx: Any, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,  # type: ignore[override]
                kernel: PopulationKernel, stride: int, pad: int) -> torch.Tensor:
        y, cols = kernel.conv1d_forward(a, w, b, stride, pad)
        ctx.save_for_backward(cols, w)
        ctx.kernel, ctx.geom = kernel, (a.shape[1], a.shape[2], a.shape[3], stride, pad)
        return y

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:  # type: ignore[override]
        cols, w = ctx.saved_tensors
        need = ctx.needs_input_grad
        ga, gw, gb = ctx.kernel.conv1d_backward(gy, cols, w, ctx.geom, need[0], need[2])
        return ga, gw if need[1] else None, gb, None, None, None


class _BatchNorm(torch.autograd.Function):
    """BatchNorm of a member-major stack: :meth:`PopulationKernel.batch_norm`."""

    @staticmethod
    def forward(ctx: Any, z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,  # type: ignore[override]
                kernel: PopulationKernel, buffers: tuple[torch.Tensor, torch.Tensor], training: bool,
                momentum: float, eps: float) -> torch.Tensor:
        z = z.contiguous()
        y, mean, invstd = kernel.batch_norm_forward(z, gamma, beta, buffers, training, momentum, eps)
        ctx.save_for_backward(z, gamma, mean, invstd)
        ctx.kernel = kernel
        return y

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:  # type: ignore[override]
        z, gamma, mean, invstd = ctx.saved_tensors
        gz, dgamma, dbeta = ctx.kernel.batch_norm_backward(z, gy, gamma, mean, invstd)
        return gz, dgamma, dbeta, None, None, None, None, None


class Call(NamedTuple):
    """How one layer's stack maps onto the kernel: ``geom`` = (K, runs per member, run length,
    values per channel in a row, C, member stride, run stride); ``fids``, the function of each
    stack position; ``layout``, each position's (first β, count) in the flat β list; the β
    pointers as the kernel reads them (valid while those β tensors live: the optimizer updates
    them in place) and which positions have per-channel β."""

    geom: tuple[int, ...]
    fids: torch.Tensor
    layout: tuple[tuple[int, int], ...]
    beta_ptrs: ctypes.Array
    per_channel: torch.Tensor


class PopulationKernel:
    """The compiled activations of one population; ``cands[i]`` is member i's function."""

    def __init__(self, cands: Sequence[Any]) -> None:
        self.cands = list(cands)
        self.maxb = max([1, *(len(c.betas) for c in self.cands)])  # β slots per stack position
        try:
            sources = c_sources(self.cands, _build.jobs())
        except CodegenError as e:
            raise FusedUnavailable(str(e)) from e
        except Exception as e:  # sympy left something unprintable (an unevaluated Derivative …)
            raise FusedUnavailable(f"C code generation failed: {type(e).__name__}: {e}") from e
        self.lib = _build.load(sources, shared=1)
        self.gemm = blas_sgemm()  # for mlp_step
        self._steps: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        self._bound: dict[tuple[Any, ...], tuple[Call, list[torch.Tensor], tuple[Any, ...]]] = {}
        self._grads: dict[tuple[int, tuple[bool, ...], bool], tuple[list[torch.Tensor | None], ctypes.Array, Call]] = {}

    def forget_bindings(self) -> None:
        """Drop the memoized calls and β-gradient tables: the β (or their gradients) moved."""
        self._bound.clear()
        self._grads.clear()
        self._steps.clear()

    def slots(self, layout: tuple[tuple[int, int], ...], tensors: Sequence[torch.Tensor | None],
              ) -> tuple[list[torch.Tensor | None], torch.Tensor]:
        """β tensors laid out MAXB per stack position; 1 per position whose β are per channel."""
        slots: list[torch.Tensor | None] = [None] * (len(layout) * self.maxb)
        per_channel = torch.zeros(len(layout), dtype=torch.int64)
        for pos, (start, count) in enumerate(layout):
            for j in range(count):
                t = tensors[start + j]
                slots[pos * self.maxb + j] = t
                if t is not None and t.numel() > 1:
                    per_channel[pos] = 1
        return slots, per_channel

    def __call__(self, h: torch.Tensor, members: Sequence[int], modules: Sequence[torch.nn.Module],
                 member_dim: int) -> torch.Tensor:
        """Apply member ``members[k]``'s activation to its slice of ``h``, differentiably.

        ``member_dim`` 0: h is (K, N, C) (stacked MLP); 1: h is (N, K*C, *spatial) (grouped CNN),
        contiguous or, 4-D, channels_last.
        ``modules[k]`` holds that member's β for this layer (attributes named as its candidate's).
        """
        call, betas = self.bind(h, members, modules, member_dim)
        return _Apply.apply(h, self, call, *betas)

    def forward(self, h: torch.Tensor, call: Call) -> torch.Tensor:
        """y = f(h) for every member, no autograd; ``h`` contiguous in its memory format (the β are
        read through ``call``)."""
        y = torch.empty_like(h)  # same strides as h
        rc = self.lib.actsearch_forward(call.geom[0], call.fids.data_ptr(), *call.geom[1:], h.data_ptr(),
                                        y.data_ptr(), call.beta_ptrs, call.per_channel.data_ptr())
        if rc:
            raise MemoryError("fused activation kernel: out of memory")
        return y

    def backward(self, h: torch.Tensor, gy: torch.Tensor, call: Call, betas: Sequence[torch.Tensor],
                 need: Sequence[bool], into_grad: bool = False) -> tuple[torch.Tensor, list[torch.Tensor | None]]:
        """∂L/∂h and ∂L/∂β (for each β whose ``need`` is set) from ∂L/∂y, no autograd; ``into_grad``:
        ∂L/∂β written into each β's own ``.grad`` (views of a flat gradient: :mod:`.._flat`)."""
        gy = gy.contiguous(memory_format=_memory_format(h))
        gx = torch.empty_like(h)
        grads, gslots = self._beta_grads(call, betas, tuple(need), into_grad)
        rc = self.lib.actsearch_backward(call.geom[0], call.fids.data_ptr(), *call.geom[1:], h.data_ptr(),
                                         gy.data_ptr(), gx.data_ptr(), call.beta_ptrs, call.per_channel.data_ptr(),
                                         gslots)
        if rc:
            raise MemoryError("fused activation kernel: out of memory")
        return gx, grads

    def _beta_grads(self, call: Call, betas: Sequence[torch.Tensor], need: tuple[bool, ...], into_grad: bool
                    ) -> tuple[list[torch.Tensor | None], ctypes.Array]:
        """Where the backward of ``call`` writes dL/dβ (every value, each step): the β's own
        ``.grad`` (``into_grad``), else tensors kept with the call — with their pointers, not a
        fresh allocation and pointer table per β and step (a population of the paper's space has a
        β tensor per member and layer). The caller owns those until the next backward of the same
        call (autograd adds them into the β's ``.grad``)."""
        key = (id(call), need, into_grad)
        if key not in self._grads:
            if len(self._grads) >= 64:
                self._grads.clear()
            grads = [(b.grad if into_grad else torch.empty_like(b)) if n else None for b, n in zip(betas, need)]
            self._grads[key] = (grads, _ptrs(self.slots(call.layout, grads)[0] if grads else []), call)
        grads, ptrs, _ = self._grads[key]
        return list(grads), ptrs

    def conv1d(self, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: int, pad: int
               ) -> torch.Tensor:
        """K stacked 1-D convolutions, differentiably, member-major: ``a`` (K, N, L, C_in) — or
        (1, N, L, C_in), one input for every member — ``w`` (K, C_out, taps * C_in) with columns
        ordered (tap, channel), ``b`` (K, C_out) or None; returns (K, N, T, C_out). What a grouped
        convolution computes, as columns copied once per layer (one C pass) and one batched GEMM per
        direction: at a 1-D CNN's sizes (32 channels, lengths 5-40) oneDNN's grouped convolution
        reached a third of the GEMM rate (bench_eval's FLOP-limit fraction)."""
        return _Conv1d.apply(a, w, b, self, stride, pad)

    def conv1d_forward(self, a: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, stride: int, pad: int
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`conv1d` without autograd: the output and the columns its backward reads."""
        a = a.contiguous()
        k, cout, width = w.shape
        ka, n, length, cin = a.shape
        taps = width // cin
        t = (length + 2 * pad - taps) // stride + 1
        cols = torch.empty(ka, n * t, width)
        self.lib.actsearch_im2col(ka, n, length, cin, t, taps, stride, pad, n * length * cin, a.data_ptr(),
                                  cols.data_ptr())
        cols = cols.expand(k, -1, -1) if ka < k else cols  # one input shared by every member
        y = torch.bmm(cols, w.transpose(1, 2)) if b is None else torch.baddbmm(b[:, None, :], cols, w.transpose(1, 2))
        return y.view(k, n, t, cout), cols

    def conv1d_backward(self, gy: torch.Tensor, cols: torch.Tensor, w: torch.Tensor,
                        geom: tuple[int, int, int, int, int], need_input: bool, need_bias: bool,
                        out: tuple[torch.Tensor, torch.Tensor | None] | None = None,
                        ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """The gradients of :meth:`conv1d_forward` from ``gy`` (K, N, T, C_out): of the input
        (K, N, L, C_in; if ``need_input``), of ``w`` and of the bias (if ``need_bias``) — the last
        two written into ``out`` if given. ``geom``: the input's (N, L, C_in), stride, padding."""
        n, length, cin, stride, pad = geom
        k, cout, width = w.shape
        gy = gy.reshape(k, -1, cout)
        ga = None
        if need_input:
            gcols = torch.bmm(gy, w)
            ga = torch.empty(k, n, length, cin)
            t = gy.shape[1] // n
            self.lib.actsearch_col2im(k, n, length, cin, t, width // cin, stride, pad, gcols.data_ptr(),
                                      ga.data_ptr())
        gw_out, gb_out = out if out is not None else (None, None)
        gw = torch.bmm(gy.transpose(1, 2), cols, out=gw_out)
        gb = torch.sum(gy, 1, out=gb_out) if need_bias else None
        return ga, gw, gb

    def batch_norm(self, z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                   buffers: tuple[torch.Tensor, torch.Tensor], training: bool, momentum: float, eps: float
                   ) -> torch.Tensor:
        """BatchNorm of a member-major stack ``z`` (K, R, C), differentiably: per (member, channel)
        statistics over the R rows (F.batch_norm's on each member's (N, C, L)); ``gamma``, ``beta``
        (K, C); ``buffers`` the running mean and variance (K, C), updated in training."""
        return _BatchNorm.apply(z, gamma, beta, self, buffers, training, momentum, eps)

    def batch_norm_forward(self, z: torch.Tensor, gamma: torch.Tensor, beta: torch.Tensor,
                           buffers: tuple[torch.Tensor, torch.Tensor], training: bool, momentum: float,
                           eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`batch_norm` without autograd: the output, and the mean and 1/std it normalized by."""
        k, r, c = z.shape
        y, mean, invstd = torch.empty_like(z), torch.empty(k, c), torch.empty(k, c)
        running_mean, running_var = buffers
        self.lib.actsearch_bn_forward(k, r, c, z.data_ptr(), gamma.detach().contiguous().data_ptr(),
                                      beta.detach().contiguous().data_ptr(), y.data_ptr(), mean.data_ptr(),
                                      invstd.data_ptr(), running_mean.data_ptr(), running_var.data_ptr(),
                                      int(training), momentum, eps)
        return y, mean, invstd

    def batch_norm_backward(self, z: torch.Tensor, gy: torch.Tensor, gamma: torch.Tensor, mean: torch.Tensor,
                            invstd: torch.Tensor, out: tuple[torch.Tensor, torch.Tensor] | None = None,
                            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The gradients of a training-mode :meth:`batch_norm_forward` from ``gy``: of z, gamma, beta
        (the last two written into ``out``, contiguous (K, C), if given)."""
        k, r, c = z.shape
        gy = gy.contiguous()
        gz = torch.empty_like(z)
        dgamma, dbeta = out if out is not None else (torch.empty(k, c), torch.empty(k, c))
        self.lib.actsearch_bn_backward(k, r, c, z.data_ptr(), gy.data_ptr(), gamma.detach().contiguous().data_ptr(),
                                       mean.data_ptr(), invstd.data_ptr(), gz.data_ptr(), dgamma.data_ptr(),
                                       dbeta.data_ptr())
        return gz, dgamma, dbeta

    def cross_entropy(self, logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-member mean cross-entropy (K,) of ``logits`` (K, N, C) against ``target`` (K, N) and its
        gradient (K, N, C): one call for what is ~8 small torch ops."""
        logits, target = logits.float().contiguous(), target.long().contiguous()
        k, n, c = logits.shape
        loss, g = torch.empty(k), torch.empty_like(logits)
        self.lib.actsearch_cross_entropy(k, n, c, logits.data_ptr(), target.data_ptr(), loss.data_ptr(), g.data_ptr())
        return loss, g

    def cross_entropy_loss(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """:meth:`cross_entropy`'s per-member losses, differentiable (the autograd engine's path)."""
        return _CrossEntropy.apply(logits, target, self)

    def mlp_step(self, x: torch.Tensor, y: torch.Tensor, layers: Sequence[tuple[torch.Tensor, torch.Tensor]],
                 bound: Sequence[tuple[Call, list[torch.Tensor]]], rows: torch.Tensor | None = None) -> torch.Tensor:
        """A stacked plain MLP's training step in one C call, member by member on BLAS GEMMs
        (needs :func:`blas_sgemm`): per-member mean cross-entropy (K,) of ``x`` (K, N, D) against
        ``y`` (K, N) — or of the rows ``rows`` (K, N) of ``x`` (examples, D) and ``y`` (examples,),
        gathered in C — every gradient written into the ``.grad`` of ``layers`` — (weight (K, out,
        in), bias (K, out)) per hidden layer, then the head — and of the trainable β of ``bound``
        (each hidden layer's :meth:`bind`, shape (K, N, width))."""
        assert self.gemm is not None
        x, y = x.float().contiguous(), y.long().contiguous()
        rows = None if rows is None else rows.long().contiguous()
        key = (tuple(id(call) for call, _ in bound), tuple(w.data_ptr() for w, _ in layers),
               tuple(w.grad.data_ptr() for w, _ in layers))  # type: ignore[union-attr]
        if key not in self._steps:
            if len(self._steps) >= 16:
                self._steps.clear()
            calls = [call for call, _ in bound]
            gbeta = [p for call, betas in bound
                     for p in _ptrs(self.slots(call.layout, [b.grad if b.requires_grad else None for b in betas])[0])]
            self._steps[key] = (
                torch.tensor([x.shape[-1]] + [w.shape[1] for w, _ in layers], dtype=torch.int64),
                *(_ptrs(ts) for ts in ([w for w, _ in layers], [b for _, b in layers],
                                       [w.grad for w, _ in layers], [b.grad for _, b in layers])),
                calls[0].fids, (ctypes.c_void_p * len(gbeta))(*[p for c in calls for p in c.beta_ptrs]),
                torch.cat([c.per_channel for c in calls]), (ctypes.c_void_p * len(gbeta))(*gbeta), calls)
        dims, w_p, b_p, gw_p, gb_p, fids, beta_p, per_channel, gbeta_p, _ = self._steps[key]
        k, n = (y if rows is None else rows).shape
        loss = torch.empty(k)
        rc = self.lib.actsearch_mlp_step(k, len(layers) - 1, dims.data_ptr(), n, self.gemm, x.data_ptr(), y.data_ptr(),
                                         None if rows is None else rows.data_ptr(), w_p, b_p, gw_p, gb_p,
                                         fids.data_ptr(), beta_p, per_channel.data_ptr(),
                                         gbeta_p, loss.data_ptr())
        if rc:
            raise MemoryError("fused MLP step: out of memory")
        return loss

    def nonfinite_flat(self, losses: torch.Tensor, flat: Any) -> torch.Tensor:
        """Per member (K,), whether its loss or any of its gradients in ``flat``
        (:class:`actsearch.evaluation._flat.FlatParams`: its segment table) is inf or NaN."""
        losses = losses.float().contiguous()
        bad = torch.empty(losses.shape[0], dtype=torch.int32)
        self.lib.actsearch_nonfinite_flat(losses.shape[0], losses.data_ptr(), *flat.segment_args, flat.grad.data_ptr(),
                                          bad.data_ptr())
        return bad.bool()

    def adam(self, flat: Any, m: torch.Tensor, v: torch.Tensor, lr: float, betas: tuple[float, float], eps: float,
             weight_decay: float, step: int, losses: torch.Tensor) -> torch.Tensor:
        """One Adam step (the ``step``-th) over ``flat``'s values in place
        (:class:`actsearch.evaluation._flat.FlatParams`), from its gradient, updating the moments
        ``m`` and ``v`` — torch's fused CPU formula (C source) — and :meth:`nonfinite_flat`'s
        answer, from the same pass over the gradient."""
        beta1, beta2 = betas
        losses = losses.float().contiguous()
        bad = torch.empty(losses.shape[0], dtype=torch.int32)
        self.lib.actsearch_adam(losses.shape[0], losses.data_ptr(), *flat.segment_args, flat.data.data_ptr(),
                                flat.grad.data_ptr(), m.data_ptr(), v.data_ptr(), lr, beta1, beta2, eps, weight_decay,
                                1 - beta1 ** step, (1 - beta2 ** step) ** 0.5, bad.data_ptr())
        return bad.bool()

    def bind(self, h: torch.Tensor | tuple[int, ...], members: Sequence[int], modules: Sequence[torch.nn.Module],
             member_dim: int) -> tuple[Call, list[torch.Tensor]]:
        """The :class:`Call` for ``h`` (arguments as for calling the kernel; or the shape of a
        contiguous one) and the flat β list, memoized: a population binds the same few (shape,
        members, modules) every step."""
        shape = tuple(h.shape) if torch.is_tensor(h) else tuple(h)
        fmt = _memory_format(h) if torch.is_tensor(h) else torch.contiguous_format
        # Keyed by the modules' ids; the entry holds the modules, so no id is reused while it lives.
        key = (shape, fmt, tuple(members), tuple(map(id, modules)), member_dim)
        if key not in self._bound:
            if len(self._bound) >= 64:
                self._bound.clear()
            self._bound[key] = (*self._bind(shape, fmt, members, modules, member_dim), tuple(modules))
        call, betas, _ = self._bound[key]
        return call, betas

    def _bind(self, shape: tuple[int, ...], fmt: torch.memory_format, members: Sequence[int],
              modules: Sequence[torch.nn.Module], member_dim: int) -> tuple[Call, list[torch.Tensor]]:
        # geom = (K, runs per member, run length, values per channel in a row, C, member stride,
        # run stride): an MLP member is one run of N*C values (channel r % C); a CNN member one run
        # of C*positions per example (channel r / positions).
        k = len(members)
        if member_dim == 0:
            _, n, c = shape
            geom = (k, 1, n * c, 1, c, n * c, 0)
        else:
            n, kc = shape[:2]
            c, spatial = kc // k, math.prod(shape[2:])
            if fmt == torch.channels_last:  # (N, H, W, K*C) in memory: runs of C
                geom = (k, n * spatial, c, 1, c, c, kc)
            else:
                geom = (k, n, c * spatial, spatial, c, c * spatial, kc * spatial)
        betas: list[torch.Tensor] = []
        layout = []
        for i, mod in zip(members, modules):
            names = list(self.cands[i].betas)
            layout.append((len(betas), len(names)))
            for name in names:
                b = getattr(mod, name)
                if b.dtype != torch.float32 or b.numel() not in (1, geom[4]) or not b.is_contiguous():
                    raise FusedUnavailable(f"β {name} of shape {tuple(b.shape)} does not fit the kernel")
                betas.append(b)
        slots, per_channel = self.slots(tuple(layout), betas)
        return Call(geom, torch.tensor(members, dtype=torch.int32), tuple(layout), _ptrs(slots), per_channel), betas


# ----------------------------------------------------------------------------------- selection
#: Registered activations whose closed form the kernel compiles in place of their module.
_TWINS = frozenset(twin_names())


def as_candidate(spec: Any) -> Any | None:
    """The candidate the kernel compiles for an activation spec, or None (torch path)."""
    if hasattr(spec, "expr") and hasattr(spec, "betas") and hasattr(spec, "to_module"):
        return spec
    if not isinstance(spec, str):
        return None
    name = canonical_name(spec)
    if name is not None:
        op = ACTIVATIONS[name].op
        return Candidate(op.build(X)) if name in _TWINS and op is not None else None
    try:
        return parse(spec)
    except ActsearchError:
        return None


_WARNED: set[str] = set()


def population_kernel(activations: Sequence[Any], device: torch.device) -> PopulationKernel | None:
    """A fused kernel for these members on ``device``, or None where the torch path must run."""
    if device.type != "cpu" or not enabled():
        return None
    cands = [as_candidate(a) for a in activations]
    if any(c is None for c in cands):
        return None
    try:
        return PopulationKernel(cands)
    except FusedUnavailable as e:
        if str(e) not in _WARNED:
            _WARNED.add(str(e))
            warnings.warn(f"fused activations unavailable, using torch ops: {e}", RuntimeWarning, stacklevel=2)
        return None
