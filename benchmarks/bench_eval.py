"""Benchmark: candidates trained one by one (train_one) vs the population-batched engine.

Both engines train the same 16 candidates from the paper's space (Ramachandran et al. 2017: its
top 8 plus common baselines) with the same per-step work as the presets (`quick` MLP,
`standard` CNN) and the presets' checkpoints. The MLP runs the preset's full 3000 steps; the
CNN's 4000 are cut to 600 (--mlp-steps/--cnn-steps) to stay under 5 minutes, and its
candidates/minute is extrapolated to the full step count — conservatively for the batched engine:
its fixed costs (building 16 models, the final evaluations; ~50 ms) are scaled with the steps,
its kernel build is not. Best of 3 runs of each engine, interleaved. Also prints the
cost of a compiled activation against its native torch twin (x*sigmoid(x) vs F.silu, forward +
backward).

    python benchmarks/bench_eval.py            # ~2-3 minutes on 2 cores
    python benchmarks/bench_eval.py --threads 1 --mlp-steps 600 --cnn-steps 300

The first output line containing "ratio" is the MLP one (CI greps it).
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from actsearch.evaluation import fusion_pays, get_dataset, get_fidelity, kernels, train_one, train_population

# The paper's top 8 (Table 2 of Ramachandran et al. 2017) and 8 baselines.
PAPER_TOP = ["x*sigmoid(x)", "max(x, sigmoid(x))", "cos(x)-x", "min(x, sin(x))", "atan(x)**2-x",
             "max(x, tanh(x))", "sinc(x)+x", "x*asinh(x)**2"]
BASELINES = ["relu", "gelu", "elu", "tanh", "softplus", "sigmoid", "selu", "leaky_relu"]

_FALLBACK: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "x*sigmoid(x)": lambda x: x * torch.sigmoid(x),
    "max(x, sigmoid(x))": lambda x: torch.maximum(x, torch.sigmoid(x)),
    "cos(x)-x": lambda x: torch.cos(x) - x,
    "min(x, sin(x))": lambda x: torch.minimum(x, torch.sin(x)),
    "atan(x)**2-x": lambda x: torch.atan(x) ** 2 - x,
    "max(x, tanh(x))": lambda x: torch.maximum(x, torch.tanh(x)),
    "sinc(x)+x": lambda x: torch.sinc(x / torch.pi) + x,  # torch.sinc is the normalized sin(pi x)/(pi x)
    "x*asinh(x)**2": lambda x: x * torch.asinh(x) ** 2,
}


class Lambda(nn.Module):
    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.fn = fn

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def candidates() -> tuple[list[Any], str]:
    """The 16 candidates, compiled by actsearch.parse when the grammar exists, else torch lambdas."""
    try:
        from actsearch import parse  # type: ignore[attr-defined]

        exprs: list[Any] = [parse(e) for e in PAPER_TOP]
        how = "actsearch.parse"
    except ImportError:
        exprs = [(lambda fn: (lambda c: Lambda(fn)))(_FALLBACK[e]) for e in PAPER_TOP]
        how = "torch lambdas (actsearch.parse unavailable)"
    return exprs + list(BASELINES), how


def cold_kernels() -> None:
    """Forget every built fused kernel (disk and memory), so a batched run pays its compilation."""
    os.environ["ACTSEARCH_KERNEL_DIR"] = tempfile.mkdtemp(prefix="actsearch-bench-kernels-")
    kernels.clear_caches()


def kernel_build_seconds(cands: list[Any]) -> float:
    if not kernels.enabled():
        return 0.0
    cold_kernels()
    t = time.perf_counter()
    kernels.population_kernel(cands, torch.device("cpu"))
    return time.perf_counter() - t


def compare(label: str, fidelity: str, steps: int, cands: list[Any], repeats: int = 3) -> None:
    fid = get_fidelity(fidelity)
    # The preset's checkpoints (validation every eval_every steps), so evaluation scales with the steps.
    short = fid.replace(steps=steps, eval_every=min(fid.eval_every, steps), time_limit=1e9)
    data = get_dataset(fid.dataset, torch.device("cpu"))  # load outside the timings
    # Fuse as the engine would at the preset's full length (the timed run is cut short).
    fuse = fusion_pays(fid, data.input_shape, len(cands)) and kernels.enabled()
    seeds = list(range(len(cands)))
    # Warm up both engines at their own shapes (oneDNN JIT-compiles a kernel per convolution shape).
    train_one(cands[0], short.replace(steps=5, eval_every=5), seed=0)
    train_population(cands, short.replace(steps=5, eval_every=5), seeds, fused=fuse)

    # Best of `repeats`, the engines interleaved: on a shared 2-core machine a 2-thread run can
    # stall a whole OS time slice in every parallel region (seen: one-by-one 3-6x slower for one
    # repeat), which would make either engine look arbitrarily good.
    t_solo = t_pop = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        solo = [train_one(c, short, seed=s) for c, s in zip(cands, seeds)]
        t_solo = min(t_solo, time.perf_counter() - t)
        cold_kernels()  # the batched time includes building its fused kernels (sympy + C compiler)
        t = time.perf_counter()
        pop = train_population(cands, short, seeds, fused=fuse)
        t_pop = min(t_pop, time.perf_counter() - t)

    build = kernel_build_seconds(cands) if fuse else 0.0
    scale = fid.steps / steps  # extrapolate to the preset's full length
    per_min = lambda secs: 60.0 * len(cands) / secs  # noqa: E731
    bad = [i for i, (a, b) in enumerate(zip(solo, pop)) if a.status != b.status]
    print(f"{label} [{fidelity}, {len(cands)} candidates, {steps} of {fid.steps} steps timed, best of {repeats}]: "
          f"one-by-one {t_solo:.1f}s, batched {t_pop:.1f}s (fused kernels "
          + (f"built in {build:.2f}s, counted in each batched run)" if fuse else "off)"))
    # The kernel build is paid once per population, not per step: extrapolate only the training.
    t_pop_full = (t_pop - build) * scale + build
    print(f"{label}: one-by-one {per_min(t_solo * scale):.1f} candidates/min, batched {per_min(t_pop_full):.1f} "
          f"candidates/min at full {fidelity} length; ratio {t_solo * scale / t_pop_full:.2f}x"
          + (f" (status differs for {bad})" if bad else ""))


def activation_cost(repeats: int) -> None:
    try:
        from actsearch import parse  # type: ignore[attr-defined]

        compiled: nn.Module = parse("x*sigmoid(x)").to_module()
        how = 'actsearch.parse("x*sigmoid(x)").to_module()'
    except ImportError:
        compiled, how = Lambda(_FALLBACK["x*sigmoid(x)"]), "lambda x: x*sigmoid(x)"
    for shape in ((100, 100), (100, 32, 19)):  # an MLP layer, a `standard` CNN layer
        x = torch.randn(shape, requires_grad=True)
        g = torch.randn(shape)

        def run(f: Callable[[torch.Tensor], torch.Tensor]) -> float:
            for _ in range(20):
                f(x).backward(g)
            t = time.perf_counter()
            for _ in range(repeats):
                f(x).backward(g)
            return (time.perf_counter() - t) / repeats * 1e6

        t_native, t_comp = run(F.silu), run(compiled)
        print(f"activation fwd+bwd on {tuple(shape)}: compiled {how} {t_comp:.1f} us, native F.silu "
              f"{t_native:.1f} us, cost {t_comp / t_native:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mlp-steps", type=int, default=3000, help="steps timed per MLP candidate")
    ap.add_argument("--cnn-steps", type=int, default=600, help="steps timed per CNN candidate")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repeats per engine (the best counts)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    cands, how = candidates()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; candidates via {how}")
    t0 = time.perf_counter()
    compare("MLP", "quick", args.mlp_steps, cands, args.repeats)
    compare("CNN", "standard", args.cnn_steps, cands, args.repeats)
    activation_cost(500)
    print(f"total {time.perf_counter() - t0:.0f}s")


if __name__ == "__main__":
    main()
