"""Benchmark: candidates trained one by one (train_one) vs the population-batched engine.

Two sets of 16 candidates, each trained by both engines in the same run with the presets' per-step
work (`quick` MLP, `standard` CNN) and checkpoints:

- **fixed**: the paper's top 8 (Ramachandran et al. 2017, Table 2) and 8 common baselines;
- **paper-1**: 16 distinct functions drawn at random (``--draw-seed``, printed) from the paper's
  1-core-unit space — whatever they do: some diverge at once, some overflow, some train.

The MLP runs ``--mlp-steps`` (default: `quick`'s full 3000); the CNN's 4000 are cut to ``--cnn-steps`` and its
candidates/minute extrapolated to the full length (the kernel build is not scaled). Best of
``--repeats`` runs of each engine, interleaved; the batched time includes building the
population's fused kernels from cold (the object all populations share, built once per machine,
is kept). Beside each ratio: the **FLOP limit** — the multiply-adds of one training step
counted from the architecture (×2 for FLOPs, ×3 for forward + backward: 6·MACs per example), over
this machine's matmul peak measured on the spot (a 1024³ float32 GEMM on the threads in use) — and
the fraction of it each engine reaches. ``--contention`` runs everything again beside one busy
process (started and stopped here) and prints idle/contended ratios. The trainers choose their
threads themselves (:class:`actsearch.evaluation.ThreadPolicy`); ``--threads N`` fixes them.

    python benchmarks/bench_eval.py                  # ~6 minutes on 2 cores
    python benchmarks/bench_eval.py --contention     # ~12 minutes
    python benchmarks/bench_eval.py --compile        # torch.compile (inductor) vs the fused kernels, per step
    python benchmarks/bench_eval.py --fuse-threshold # where building the fused kernels starts to pay
    python benchmarks/bench_eval.py --mlp-fidelity deep --mlp-steps 1000 --kinds mlp   # the deep child

The first output line containing "ratio" is the MLP one.
"""
from __future__ import annotations

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F

from actsearch import parse
from actsearch.evaluation import (THREADS_ENV, ModelSpec, conv_output_sizes, fusion_pays, get_dataset,
                                  get_fidelity, kernels, train_one, train_population)
from actsearch.expressions import load_space

# The paper's top 8 (Table 2 of Ramachandran et al. 2017) and 8 baselines.
PAPER_TOP = ["x*sigmoid(x)", "max(x, sigmoid(x))", "cos(x)-x", "min(x, sin(x))", "atan(x)**2-x",
             "max(x, tanh(x))", "sinc(x)+x", "x*asinh(x)**2"]
BASELINES = ["relu", "gelu", "elu", "tanh", "softplus", "sigmoid", "selu", "leaky_relu"]


def fixed_set() -> list[Any]:
    return [parse(e) for e in PAPER_TOP] + list(BASELINES)


def drawn_set(seed: int, n: int = 16, space: str = "paper-1") -> list[Any]:
    """``n`` distinct, non-degenerate functions of ``space`` drawn with ``seed`` (divergers included)."""
    sp = load_space(space)
    structures = list(sp.enumerate())
    random.Random(seed).shuffle(structures)
    out, keys = [], set()
    for s in structures:
        cand = sp.build(s)
        if cand.key in keys or cand.degenerate_reason:
            continue
        keys.add(cand.key)
        out.append(cand)
        if len(out) == n:
            break
    return out


def label(c: Any) -> str:
    return c if isinstance(c, str) else c.text


# ------------------------------------------------------------------------------------ FLOPs
def macs_per_example(spec: ModelSpec, input_shape: Sequence[int], classes: int) -> int:
    """Multiply-adds of one forward pass of one example: the linear and conv layers."""
    if spec.kind == "mlp":
        dims = [math.prod(input_shape), *spec.widths, classes]
        return sum(a * b for a, b in zip(dims[:-1], dims[1:]))
    sizes = conv_output_sizes(input_shape[1:], spec.kernel_sizes, spec.stride, spec.padding)
    chans = [input_shape[0], *spec.widths]
    total = sum(math.prod(size) * c_out * c_in * math.prod([k] * len(size))
                for size, c_in, c_out, k in zip(sizes, chans[:-1], chans[1:], spec.kernel_sizes))
    return total + chans[-1] * math.prod(sizes[-1]) * classes


def matmul_peak() -> float:
    """This machine's float32 GEMM rate now, on the threads in use (GFLOP/s, best of 5)."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(4):
            a @ b
        best = min(best, (time.perf_counter() - t) / 4)
    return 2 * 1024**3 / best / 1e9


# ------------------------------------------------------------------------------------ engines
def cold_kernels() -> None:
    """Forget every built fused kernel (disk and memory), so a batched run pays its compilation —
    all but the object every population shares (the dispatcher and step helpers: a search builds
    it once per machine, with its first population), which is carried into the new directory."""
    shared = list(kernels.kernel_dir().glob("obj-*.o"))
    os.environ["ACTSEARCH_KERNEL_DIR"] = tempfile.mkdtemp(prefix="actsearch-bench-kernels-")
    for obj in shared:
        shutil.copy2(obj, kernels.kernel_dir() / obj.name)
    kernels.clear_caches()


@dataclass
class Timing:
    solo: float  # seconds, one by one, timed steps
    pop: float  # seconds, batched, timed steps (kernel build included)
    build: float
    scale: float  # full preset length / timed steps
    n: int
    statuses: str

    def per_candidate(self) -> tuple[float, float]:
        """Seconds per candidate at the preset's full length (one-by-one, batched)."""
        return self.solo * self.scale / self.n, ((self.pop - self.build) * self.scale + self.build) / self.n

    @property
    def ratio(self) -> float:
        a, b = self.per_candidate()
        return a / b


def measure(fidelity: str, steps: int, cands: list[Any], repeats: int) -> Timing:
    fid = get_fidelity(fidelity)
    short = fid.replace(steps=steps, eval_every=min(fid.eval_every, steps), time_limit=1e9)
    data = get_dataset(fid.dataset, torch.device("cpu"))  # load outside the timings
    fuse = fusion_pays(fid, data.input_shape, len(cands)) and kernels.enabled()  # as at full length
    seeds = list(range(len(cands)))
    # Warm both engines at their own shapes (oneDNN JIT-compiles a kernel per convolution shape).
    train_one(cands[0], short.replace(steps=5, eval_every=5), seed=0)
    train_population(cands, short.replace(steps=5, eval_every=5), seeds, fused=fuse)
    # Best of `repeats`, interleaved: on a shared machine a single run can stall for seconds.
    t_solo = t_pop = float("inf")
    solo = pop = []
    for _ in range(repeats):
        t = time.perf_counter()
        solo = [train_one(c, short, seed=s) for c, s in zip(cands, seeds)]
        t_solo = min(t_solo, time.perf_counter() - t)
        cold_kernels()
        t = time.perf_counter()
        pop = train_population(cands, short, seeds, fused=fuse)
        t_pop = min(t_pop, time.perf_counter() - t)
    build = 0.0
    if fuse:
        cold_kernels()
        t = time.perf_counter()
        kernels.population_kernel(cands, torch.device("cpu"))
        build = time.perf_counter() - t
    counts: dict[str, int] = {}
    for r in pop:
        counts[r.status] = counts.get(r.status, 0) + 1
    differ = sum(a.status != b.status for a, b in zip(solo, pop))
    statuses = ", ".join(f"{v} {k}" for k, v in counts.items()) + (f"; {differ} differ from one-by-one" if differ else "")
    return Timing(t_solo, t_pop, build, fid.steps / steps, len(cands), statuses)


def report(name: str, fidelity: str, t: Timing, peak: float) -> None:
    fid = get_fidelity(fidelity)
    data = get_dataset(fid.dataset, torch.device("cpu"))
    flops = 6 * macs_per_example(fid.model, data.input_shape, data.num_classes) * fid.batch_size * fid.steps
    limit = flops / (peak * 1e9)  # seconds per candidate at the matmul peak
    solo, pop = t.per_candidate()
    print(f"{name}: one-by-one {60 / solo:.1f} cand/min ({limit / solo:.1%} of the FLOP limit), batched "
          f"{60 / pop:.1f} cand/min ({limit / pop:.1%}); ratio {t.ratio:.2f}x  [limit {limit:.2f} s per candidate: "
          f"{flops / 1e9:.0f} GFLOP at {peak:.0f} GFLOP/s; kernels built in {t.build:.2f}s; {t.statuses}]")


def run_all(args: argparse.Namespace, sets: dict[str, list[Any]], tag: str) -> dict[str, Timing]:
    peak = matmul_peak()
    print(f"{tag}: matmul peak {peak:.0f} GFLOP/s on {torch.get_num_threads()} thread(s)", flush=True)
    out = {}
    for preset, steps, kind in (("quick" if args.mlp_fidelity is None else args.mlp_fidelity, args.mlp_steps, "MLP"),
                                (args.cnn_fidelity, args.cnn_steps, "CNN")):
        if kind.lower() not in args.kinds.split(","):
            continue
        for set_name, cands in sets.items():
            t = measure(preset, steps, cands, args.repeats)
            report(f"{tag} {kind} [{preset}, {set_name}, {steps} of {get_fidelity(preset).steps} steps timed]", preset,
                   t, peak)
            out[f"{kind} {set_name}"] = t
    return out


# ------------------------------------------------------------------------------- torch.compile
def compile_comparison(repeats: int = 50) -> None:
    """One population training step (forward, loss, backward; K = 16, the fixed set) three ways:
    eager torch ops, torch.compile (inductor) of the same, and the fused C kernels (with the
    hand-written MLP step where it applies). Compile and kernel-build times are printed apart."""
    from actsearch.evaluation import StackedNet, build_model, loss_and_grads

    cands = [parse(e) for e in PAPER_TOP] * 2
    for preset, kind in (("quick", "mlp"), ("standard", "cnn")):
        fid = get_fidelity(preset)
        data = get_dataset(fid.dataset, torch.device("cpu"))
        models = [build_model(fid.model, c, data.input_shape, data.num_classes, seed=i) for i, c in enumerate(cands)]
        k = len(cands)
        x = data.x_train[: k * 100].view(k, 100, *data.input_shape)
        y = data.y_train[: k * 100].view(k, 100)

        def timed(step: Callable[[], Any]) -> float:
            for _ in range(5):
                step()
            t = time.perf_counter()
            for _ in range(repeats):
                step()
            return (time.perf_counter() - t) / repeats * 1e3

        for model in models:  # dynamo imports a function's module by name: register the generated ones
            for act in model.acts:
                namespace = type(act).forward.__globals__
                if "__actsearch_module__" in namespace:
                    sys.modules.setdefault(namespace["__name__"], namespace["__actsearch_module__"])
        torch_net = StackedNet(models, kind, 0.0, data.input_shape, None)

        def loss() -> torch.Tensor:
            logits = torch_net.forward(x)
            return F.cross_entropy(logits.transpose(1, 2), y, reduction="none").mean(1).sum()

        def eager() -> None:
            torch_net.zero_grad()
            loss().backward()

        compiled_loss = torch.compile(loss, dynamic=False)  # static shapes: one population, one shape

        def compiled() -> None:
            torch_net.zero_grad()
            compiled_loss().backward()

        t = time.perf_counter()
        compiled()
        t_compile = time.perf_counter() - t
        cold_kernels()
        t = time.perf_counter()
        kernel = kernels.population_kernel(cands, torch.device("cpu"))
        t_build = time.perf_counter() - t
        fused_net = StackedNet(models, kind, 0.0, data.input_shape, kernel)
        ms = {"eager": timed(eager), "compiled": timed(compiled), "fused": timed(lambda: loss_and_grads(fused_net, x, y))}
        grouped = ""
        if fused_net.member_major:  # the same kernels on the grouped convolutions (autograd), as before member-major
            fused_net.member_major = False
            grouped = f" (on grouped convolutions, the layout before member-major: {timed(lambda: loss_and_grads(fused_net, x, y)):.2f} ms)"
        steps = fid.steps
        print(f"{preset} step (K={k}): eager {ms['eager']:.2f} ms; torch.compile {ms['compiled']:.2f} ms after "
              f"{t_compile:.1f} s compiling; fused C kernels {ms['fused']:.2f} ms after {t_build:.2f} s building"
              f"{grouped}. A {steps}-step population: compile {t_compile + steps * ms['compiled'] / 1e3:.1f} s, fused "
              f"{t_build + steps * ms['fused'] / 1e3:.1f} s (steps alone, no optimizer or evaluation)", flush=True)


# --------------------------------------------------------------------------- FUSE_MIN_WORK
def fuse_threshold(steps: int = 300, repeats: int = 3) -> None:
    """Where building the fused kernels starts to pay: per preset (16 members, the fixed set), the
    per-step time of the torch-ops and fused engines (warm, best of ``repeats`` runs of ``steps``)
    and a cold build; break-even = build / (saving per step) steps, printed as activation
    evaluations (steps x batch x units x members, the unit of FUSE_MIN_WORK)."""
    from actsearch.evaluation import FUSE_MIN_WORK, activation_units

    cands = fixed_set()
    seeds = list(range(len(cands)))
    for preset in ("quick", "standard"):
        fid = get_fidelity(preset)
        data = get_dataset(fid.dataset, torch.device("cpu"))
        short = fid.replace(steps=steps, eval_every=steps, time_limit=1e9)
        per_step = {}
        for fused in (False, True):
            train_population(cands, short.replace(steps=5, eval_every=5), seeds, fused=fused)  # warm, kernels cached
            best = float("inf")
            for _ in range(repeats):
                t = time.perf_counter()
                train_population(cands, short, seeds, fused=fused)
                best = min(best, time.perf_counter() - t)
            per_step[fused] = best / steps
        builds = []
        for _ in range(repeats):
            cold_kernels()
            t = time.perf_counter()
            kernels.population_kernel(cands, torch.device("cpu"))
            builds.append(time.perf_counter() - t)
        build = sorted(builds)[len(builds) // 2]
        saving = per_step[False] - per_step[True]
        work_per_step = fid.batch_size * activation_units(fid.model, data.input_shape) * len(cands)
        even = build / saving if saving > 0 else float("inf")
        print(f"fuse threshold [{preset}, K={len(cands)}]: torch ops {per_step[False] * 1e3:.2f} ms/step, fused "
              f"{per_step[True] * 1e3:.2f} ms/step, build {build:.2f} s (median of {repeats}, cold) -> pays after "
              f"{even:.0f} steps = {even * work_per_step:.2g} activation evaluations (FUSE_MIN_WORK = "
              f"{FUSE_MIN_WORK:.2g})", flush=True)


def busy_process() -> subprocess.Popen:
    """Another program wanting a CPU all the time (a laptop's browser, a second search …)."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp-steps", type=int, default=3000, help="steps timed per MLP candidate")
    ap.add_argument("--cnn-steps", type=int, default=600, help="steps timed per CNN candidate")
    ap.add_argument("--cnn-fidelity", default="standard", help="the CNN's preset (power: its BatchNorm child)")
    ap.add_argument("--mlp-fidelity", default=None, help="the MLP's preset (default quick; deep: the plain 16-layer child)")
    ap.add_argument("--kinds", default="mlp,cnn", help="which children to time: mlp, cnn or mlp,cnn (default)")
    ap.add_argument("--threads", type=int, default=0, help="fix the trainers' threads (0: their own choice)")
    ap.add_argument("--repeats", type=int, default=2, help="timed repeats per engine (the best counts)")
    ap.add_argument("--draw-seed", type=int, default=2026, help="seed of the 16 functions drawn from paper-1")
    ap.add_argument("--contention", action="store_true", help="measure again beside one busy process")
    ap.add_argument("--compile", action="store_true", help="torch.compile vs the fused kernels, per step")
    ap.add_argument("--fuse-threshold", action="store_true", help="where building the fused kernels pays")
    args = ap.parse_args()
    if args.threads:
        os.environ[THREADS_ENV] = str(args.threads)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, trainer threads: "
          f"{os.environ.get(THREADS_ENV, 'their own choice (ThreadPolicy)')}")
    t0 = time.perf_counter()
    if args.fuse_threshold:
        fuse_threshold()
        print(f"total {time.perf_counter() - t0:.0f}s")
        return
    if args.compile:
        # Compile from cold, as a search's new population would: inductor's caches in a fresh folder.
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="actsearch-bench-inductor-")
        compile_comparison()
        print(f"total {time.perf_counter() - t0:.0f}s")
        return
    drawn = drawn_set(args.draw_seed)
    print(f"paper-1 draw (seed {args.draw_seed}): " + "; ".join(label(c) for c in drawn))
    sets = {"fixed": fixed_set(), "paper-1": drawn}
    idle = run_all(args, sets, "idle")
    if args.contention:
        busy = busy_process()
        try:
            time.sleep(1.0)
            loaded = run_all(args, sets, "contended")
        finally:
            busy.kill()
            busy.wait()
        for key, t in idle.items():
            c = loaded[key]
            (s_i, p_i), (s_c, p_c) = t.per_candidate(), c.per_candidate()
            print(f"contended/idle {key}: one-by-one {s_c / s_i:.2f}x, batched {p_c / p_i:.2f}x the idle time; "
                  f"batched vs one-by-one {c.ratio:.2f}x contended ({t.ratio:.2f}x idle)")
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
