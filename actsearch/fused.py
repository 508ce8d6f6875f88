"""Fused CPU kernels for a population's activations: one C loop per candidate and direction.

Why: in eager PyTorch every elementwise op of a candidate is its own kernel, and in a population
of K the activations are K *different* op sequences on K slices (plus the split and cat around
them), so they do not batch; several of the paper's primitives (asinh, sinc, the bool masks of
max/min) are not even vectorised on CPU. On a 2-core machine they cost as much as the matmuls.
Here each candidate f(x; β) becomes one C loop for the forward and one for the backward, whose
derivatives sympy computes symbolically (∂f/∂x and every ∂f/∂β, common subexpressions shared by
``sympy.cse``; the source is written by :mod:`actsearch._cgen`); GCC vectorises the loops and calls
glibc's vector math library (libmvec). One call per layer and direction runs every member of the
population on its own function, members in parallel on torch's OpenMP threads; dropping a member
needs no recompilation. Measured in ``benchmarks/bench_eval.py``.

One shared library per population, built by the system C compiler (``$CC`` or ``cc``; ~0.1-1 s,
inside the population's timed run) and cached on disk by the hash of its source and of the CPU
(it is built with -march=native) under ``$ACTSEARCH_KERNEL_DIR`` (default ``<cache>/kernels``; the
newest :data:`KEEP_LIBRARIES` are kept).
β tensors are per channel (C,) or scalar.

Semantics follow the torch printer (:mod:`actsearch.compiler`): the same safe primitives from the
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
import hashlib
import math
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from ._cgen import CodegenError, c_source
from .errors import ActsearchError

__all__ = ["FusedUnavailable", "PopulationKernel", "population_kernel", "as_candidate",
           "kernel_dir", "enabled"]


class FusedUnavailable(ActsearchError):
    """No fused kernel for this population (no compiler, an expression C cannot express …)."""


# --------------------------------------------------------------------------------- build & load
def enabled() -> bool:
    """Fusion is on unless ``ACTSEARCH_FUSED=0``, and needs a C compiler."""
    return os.environ.get("ACTSEARCH_FUSED", "1") != "0" and _compiler() is not None


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def kernel_dir() -> Path:
    from .data import cache_dir

    return Path(os.environ.get("ACTSEARCH_KERNEL_DIR") or cache_dir() / "kernels")


# Tried in order: vectorised with glibc's vector math, plain optimised, portable.
_VEC = ["-O3", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fno-builtin-sinf",
        "-fno-builtin-cosf"]
_FLAGS = [
    [*_VEC, "-fopenmp", "-DACTSEARCH_LIBMVEC", "-lmvec", "-lm"],
    [*_VEC, "-fopenmp", "-lm"],
    [*_VEC, "-fopenmp-simd", "-lm"],
    ["-O2", "-lm"],
]
_LIBS: dict[str, ctypes.CDLL] = {}


@functools.lru_cache(maxsize=1)
def _host_cpu() -> str:
    """What -march=native depends on: the architecture, CPU model and instruction-set flags."""
    info = [platform.machine(), platform.processor()]
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            info += sorted({ln.strip() for ln in fh if ln.startswith(("model name", "flags", "Features"))})
    except OSError:
        pass
    return "\n".join(info)


#: Libraries kept in the kernel cache (~80 kB each); older ones are deleted after a build.
KEEP_LIBRARIES = 512


def _prune(directory: Path) -> None:
    libs = sorted(directory.glob("pop-*.so"), key=lambda p: p.stat().st_mtime)
    for old in libs[: max(0, len(libs) - KEEP_LIBRARIES)]:
        try:
            old.unlink()  # a process that loaded it keeps its mapping
        except OSError:
            pass


def _load(source: str) -> ctypes.CDLL:
    cc = _compiler()
    if cc is None:
        raise FusedUnavailable("no C compiler (set $CC)")
    # -march=native code must not be reused on another CPU (a home directory shared by a cluster).
    digest = hashlib.sha256(f"{cc}\n{_FLAGS}\n{_host_cpu()}\n{source}".encode()).hexdigest()[:24]
    if digest in _LIBS:
        return _LIBS[digest]
    directory = kernel_dir()
    so = directory / f"pop-{digest}.so"
    if not so.exists():
        directory.mkdir(parents=True, exist_ok=True)
        errors = []
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            src, out = Path(tmp) / "k.c", Path(tmp) / "k.so"
            src.write_text(source, encoding="utf-8")
            for flags in _FLAGS:
                libs = [f for f in flags if f.startswith("-l")]
                cmd = [cc, *[f for f in flags if not f.startswith("-l")], "-shared", "-fPIC", str(src),
                       "-o", str(out), *libs]
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
                if proc.returncode == 0:
                    os.replace(out, so)  # atomic: concurrent workers may build the same library
                    _prune(directory)
                    break
                errors.append(proc.stderr.strip().splitlines()[-1:] or ["?"])
            else:
                raise FusedUnavailable(f"{cc} could not build the fused kernels: {errors[-1][0]}")
    lib = ctypes.CDLL(str(so))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.actsearch_forward.argtypes = [i64, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr]
    lib.actsearch_backward.argtypes = [i64, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.actsearch_forward.restype = lib.actsearch_backward.restype = ctypes.c_int
    _LIBS[digest] = lib
    return lib


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
    def forward(ctx: Any, h: torch.Tensor, kernel: PopulationKernel, geom: tuple[int, ...],  # type: ignore[override]
                fids: torch.Tensor, layout: tuple[tuple[int, int], ...], *betas: torch.Tensor) -> torch.Tensor:
        fmt = _memory_format(h)
        h = h.contiguous(memory_format=fmt)
        y = torch.empty_like(h)  # same strides as h
        slots, per_channel = kernel.slots(layout, betas)
        rc = kernel.lib.actsearch_forward(geom[0], fids.data_ptr(), *geom[1:], h.data_ptr(), y.data_ptr(),
                                          _ptrs(slots), per_channel.data_ptr())
        if rc:
            raise MemoryError("fused activation kernel: out of memory")
        ctx.kernel, ctx.geom, ctx.fids, ctx.layout, ctx.fmt = kernel, geom, fids, layout, fmt
        ctx.save_for_backward(h, *betas)
        return y

    @staticmethod
    def backward(ctx: Any, gy: torch.Tensor) -> Any:  # type: ignore[override]
        h, *betas = ctx.saved_tensors
        gy = gy.contiguous(memory_format=ctx.fmt)
        gx = torch.empty_like(h)
        grads = [torch.empty_like(b) if need else None
                 for b, need in zip(betas, ctx.needs_input_grad[5:])]
        slots, per_channel = ctx.kernel.slots(ctx.layout, betas)
        gslots, _ = ctx.kernel.slots(ctx.layout, grads)
        rc = ctx.kernel.lib.actsearch_backward(ctx.geom[0], ctx.fids.data_ptr(), *ctx.geom[1:], h.data_ptr(),
                                               gy.data_ptr(), gx.data_ptr(), _ptrs(slots),
                                               per_channel.data_ptr(), _ptrs(gslots))
        if rc:
            raise MemoryError("fused activation kernel: out of memory")
        return (gx, None, None, None, None, *grads)


class PopulationKernel:
    """The compiled activations of one population; ``cands[i]`` is member i's function."""

    def __init__(self, cands: Sequence[Any]) -> None:
        self.cands = list(cands)
        self.nbetas = [len(c.betas) for c in self.cands]
        self.maxb = max([1, *self.nbetas])
        try:
            source = c_source(self.cands)
        except CodegenError as e:
            raise FusedUnavailable(str(e)) from e
        except Exception as e:  # sympy left something unprintable (an unevaluated Derivative …)
            raise FusedUnavailable(f"C code generation failed: {type(e).__name__}: {e}") from e
        self.lib = _load(source)

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
        """Apply member ``members[k]``'s activation to its slice of ``h``.

        ``member_dim`` 0: h is (K, N, C) (stacked MLP); 1: h is (N, K*C, *spatial) (grouped CNN),
        contiguous or, 4-D, channels_last.
        ``modules[k]`` holds that member's β for this layer (attributes named as its candidate's).
        """
        # geom = (K, runs per member, run length, values per channel in a row, C, member stride,
        # run stride): an MLP member is one run of N*C values (channel r % C); a CNN member one run
        # of C*positions per example (channel r / positions).
        k = len(members)
        if member_dim == 0:
            _, n, c = h.shape
            geom = (k, 1, n * c, 1, c, n * c, 0)
        else:
            n, kc = h.shape[:2]
            c, spatial = kc // k, math.prod(h.shape[2:])
            if _memory_format(h) == torch.channels_last:  # (N, H, W, K*C) in memory: runs of C
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
        fids = torch.tensor(members, dtype=torch.int32)
        return _Apply.apply(h, self, geom, fids, tuple(layout), *betas)


# ----------------------------------------------------------------------------------- selection
# Registered activations without parameters whose operator-table row is the same function.
_TWINS = ("sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh",
          "gelu_sigmoid", "silu", "softplus", "identity", "hardtanh", "mish")


def as_candidate(spec: Any) -> Any | None:
    """The candidate the kernel compiles for an activation spec, or None (torch path)."""
    from .activations import resolve_activation_name
    from .candidate import X, Candidate

    if hasattr(spec, "expr") and hasattr(spec, "betas") and hasattr(spec, "to_module"):
        return spec
    if not isinstance(spec, str):
        return None
    name = resolve_activation_name(spec)
    if name is not None:
        if name not in _TWINS:
            return None
        from .ops import lookup

        return Candidate(lookup("x" if name == "identity" else name).build(X))
    try:
        from .parser import parse

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
