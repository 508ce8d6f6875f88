"""Build and load a population's fused-kernel library (see :mod:`._kernel`): the system C
compiler over the translation units :func:`._csrc.c_sources` writes, in parallel, with
the first flag set that works; the library cached on disk by the hash of its source, the compiler,
the flags and the CPU (it is built with -march=native), and in memory per process."""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

from ...errors import FusedUnavailable
from ..data import cache_dir

__all__ = ["compiler", "kernel_dir", "jobs", "load", "compile_units", "prune", "KEEP_LIBRARIES"]


def compiler() -> str | None:
    """``$CC``, else ``cc`` or ``gcc`` on the PATH, else None."""
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def kernel_dir() -> Path:
    """Where built libraries are cached: ``$ACTSEARCH_KERNEL_DIR`` or ``<cache>/kernels``."""
    return Path(os.environ.get("ACTSEARCH_KERNEL_DIR") or cache_dir() / "kernels")


# Tried in order: vectorised with glibc's vector math, plain optimised, portable. -O2, not -O3:
# the loops are vectorised by their `omp simd` either way (same speed, bench_eval's candidates),
# and the build is ~40% shorter.
_VEC = ["-O2", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-fno-builtin-sinf",
        "-fno-builtin-cosf"]
_FLAGS = [
    [*_VEC, "-fopenmp", "-DACTSEARCH_LIBMVEC", "-lmvec", "-lm"],
    [*_VEC, "-fopenmp", "-lm"],
    [*_VEC, "-fopenmp-simd", "-lm"],
    ["-O2", "-lm"],
]
_LIBS: dict[str, ctypes.CDLL] = {}


def forget_loaded() -> None:
    """Drop the in-process cache of loaded libraries (the disk cache stays)."""
    _LIBS.clear()


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


def prune(directory: Path) -> None:
    """Delete all but the newest :data:`KEEP_LIBRARIES` libraries in ``directory``."""
    libs = sorted(directory.glob("pop-*.so"), key=lambda p: p.stat().st_mtime)
    objs = sorted(directory.glob("obj-*.o"), key=lambda p: p.stat().st_mtime)  # a few: one per flag set
    for old in libs[: max(0, len(libs) - KEEP_LIBRARIES)] + objs[: max(0, len(objs) - 8)]:
        try:
            old.unlink()  # a process that loaded it keeps its mapping
        except OSError:
            pass


def jobs() -> int:
    """Compiler processes for one build: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def compile_units(cc: str, flags: list[str], sources: list[Path], out: Path,
                  kept: dict[int, Path] | None = None) -> str | None:
    """Compile ``sources`` in parallel, link them into ``out``; None, or the compiler's first error
    line. ``kept[i]``: where unit i's object is cached — used when it is there, else stored there."""
    libs = [f for f in flags if f.startswith("-l")]
    cflags = [f for f in flags if not f.startswith("-l")]
    kept = kept or {}
    objs = [kept[i] if i in kept and kept[i].exists() else src.with_suffix(".o") for i, src in enumerate(sources)]
    procs = [subprocess.Popen([cc, *cflags, "-fPIC", "-c", str(src), "-o", str(obj)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
             for src, obj in zip(sources, objs) if obj.parent == src.parent]
    errors = []
    for proc in procs:
        err = proc.communicate(timeout=300)[1]
        errors.append((err or f"{cc} exited {proc.returncode}") if proc.returncode else "")
    if not any(errors):
        for i, obj in enumerate(objs):
            if i in kept and obj != kept[i]:
                os.replace(obj, kept[i])  # atomic, as the libraries
                objs[i] = kept[i]
        link = subprocess.run([cc, *cflags, "-shared", *map(str, objs), "-o", str(out), *libs],
                              capture_output=True, text=True, timeout=300)
        if link.returncode == 0:
            return None
        errors.append(link.stderr)
    lines = [ln.strip() for e in errors for ln in e.strip().splitlines()]
    return next((ln for ln in lines if "error:" in ln), lines[-1] if lines else "?")


def _digest(cc: str, flags: object, text: str) -> str:
    return hashlib.sha256(f"{cc}\n{flags}\n{_host_cpu()}\n{text}".encode()).hexdigest()[:24]


def load(sources: list[str], shared: int = 0) -> ctypes.CDLL:
    """The library built from ``sources`` (one string per translation unit), with its entry points
    typed. The last ``shared`` units are the same for every library (the dispatcher and the step
    helpers: 0.3 s of a ~0.45 s build on 2 cores): their objects are cached and built only once."""
    cc = compiler()
    if cc is None:
        raise FusedUnavailable("no C compiler (set $CC)")
    # -march=native code must not be reused on another CPU (a home directory shared by a cluster).
    text = "\n/* unit */\n".join(sources)
    digest = _digest(cc, _FLAGS, text)
    if digest in _LIBS:
        return _LIBS[digest]
    directory = kernel_dir()
    so = directory / f"pop-{digest}.so"
    if not so.exists():
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            srcs = [Path(tmp) / f"k{i}.c" for i in range(len(sources))]
            for src, source in zip(srcs, sources):
                src.write_text(source, encoding="utf-8")
            out = Path(tmp) / "k.so"
            for flags in _FLAGS:
                kept = {i: directory / f"obj-{_digest(cc, flags, sources[i])}.o"
                        for i in range(len(sources) - shared, len(sources))}
                error = compile_units(cc, flags, srcs, out, kept)
                if error is None:
                    os.replace(out, so)  # atomic: concurrent workers may build the same library
                    prune(directory)
                    break
            else:
                raise FusedUnavailable(f"{cc} could not build the fused kernels: {error}")
    lib = ctypes.CDLL(str(so))
    i64, ptr = ctypes.c_int64, ctypes.c_void_p
    lib.actsearch_forward.argtypes = [i64, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr]
    lib.actsearch_backward.argtypes = [i64, ptr, i64, i64, i64, i64, i64, i64, ptr, ptr, ptr, ptr, ptr, ptr]
    lib.actsearch_forward.restype = lib.actsearch_backward.restype = ctypes.c_int
    lib.actsearch_cross_entropy.argtypes = [i64, i64, i64, ptr, ptr, ptr, ptr]
    lib.actsearch_mlp_step.argtypes = [i64, i64, ptr, i64, *[ptr] * 13]
    lib.actsearch_mlp_step.restype = ctypes.c_int
    lib.actsearch_nonfinite_flat.argtypes = [i64, ptr, i64, ptr, ptr, ptr, ptr, ptr]
    lib.actsearch_adam.argtypes = [i64, ptr, i64, *[ptr] * 7, *[ctypes.c_double] * 7, ptr]
    lib.actsearch_im2col.argtypes = [i64] * 9 + [ptr, ptr]
    lib.actsearch_col2im.argtypes = [i64] * 8 + [ptr, ptr]
    lib.actsearch_cross_entropy.restype = lib.actsearch_nonfinite_flat.restype = lib.actsearch_adam.restype = None
    lib.actsearch_bn_forward.argtypes = [i64, i64, i64, *[ptr] * 8, i64, ctypes.c_double, ctypes.c_double]
    lib.actsearch_bn_backward.argtypes = [i64, i64, i64, *[ptr] * 8]
    lib.actsearch_bn_forward.restype = lib.actsearch_bn_backward.restype = None
    lib.actsearch_im2col.restype = lib.actsearch_col2im.restype = None
    _LIBS[digest] = lib
    return lib
