"""``actsearch fidelities``: the training presets, the child each trains, and what a candidate costs."""
from __future__ import annotations

import argparse
import time
from typing import Any

from ..evaluation import FIDELITIES, Fidelity, get_dataset, resolve_device, train_population
from ._common import add_device_option, add_threads_option, count, device

__all__ = ["add_parsers", "cmd_fidelities", "MEASURED", "ESTIMATED_FROM"]

#: Seconds per candidate measured by ``python benchmarks/bench_eval.py`` (populations of 16, the
#: fixed set of the paper's top 8 and 8 baselines, idle 2-core Intel Xeon with AVX-512; the CNNs timed
#: over 600 of their steps and extrapolated): results/speed/bench_eval-run3-c9de1ab.txt (quick 235.3,
#: standard 42.2 candidates/min) and results/speed/bench_eval-power.txt (power 28.6 candidates/min).
#: deep: results/speed/bench_eval-deep-run1.txt (34.3 candidates/min over 1000 of its 3000 steps).
#: mnist: ReLU trained alone on 1 thread (the 2-D CNN is slower per network in a population).
MEASURED: dict[str, tuple[float, str]] = {
    "quick": (60 / 235.3, "2-core Intel Xeon, populations of 16"),
    "standard": (60 / 42.2, "2-core Intel Xeon, populations of 16"),
    "power": (60 / 28.6, "2-core Intel Xeon, populations of 16"),
    "deep": (60 / 34.3 * 3000 / 1000, "2-core Intel Xeon, populations of 16"),
    "mnist": (7.0, "2-core machine, one network alone on 1 thread"),
}
#: A preset without a measurement: the measured preset that trains the same kind of child, scaled by
#: steps (the extra validation examples of the larger datasets aside).
ESTIMATED_FROM: dict[str, str] = {"smoke": "quick", "standard_bn": "power", "power_hard": "power",
                                  "full": "standard", "full_mlp": "quick"}


def _recorded(fid: Fidelity) -> tuple[float | None, str]:
    if fid.name in MEASURED:
        seconds, where = MEASURED[fid.name]
        return seconds, f"measured ({where})"
    base = ESTIMATED_FROM.get(fid.name)
    if base is None or base not in MEASURED:
        return None, "not measured (actsearch fidelities --measure)"
    seconds = MEASURED[base][0] * fid.steps / FIDELITIES[base].steps
    return seconds, f"estimated from {base} × {fid.steps}/{FIDELITIES[base].steps} steps"


def _measure(fid: Fidelity, dev: str, steps: int | None, population: int) -> float:
    """Seconds per candidate here: ReLU × ``population`` trained ``steps`` steps (all of the preset's
    by default), scaled to the preset's; the data are loaded before the clock starts."""
    steps = min(steps or fid.steps, fid.steps)
    short = fid.replace(steps=steps, eval_every=steps)
    get_dataset(fid.dataset, resolve_device(dev))
    t0 = time.perf_counter()
    train_population(["relu"] * population, short, list(range(population)), device=dev)
    return (time.perf_counter() - t0) / population * fid.steps / steps


def cmd_fidelities(args: argparse.Namespace) -> int:
    dev = device(args.device) if args.measure else "cpu"
    width = max(len(n) for n in FIDELITIES)
    child = max(len(f.describe()) for f in FIDELITIES.values())
    print(f"{'name':<{width}}  {'child':<{child}}  {'s/candidate':>11}  how")
    for name, fid in FIDELITIES.items():
        if args.measure:
            seconds = _measure(fid, dev, args.steps, args.population)
            how = f"measured here over {min(args.steps or fid.steps, fid.steps)} steps, population of {args.population}, {dev}"
        else:
            seconds, how = _recorded(fid)
        shown = f"{seconds:.3g}" if seconds is not None else "—"
        print(f"{name:<{width}}  {fid.describe():<{child}}  {shown:>11}  {how}")
    return 0


def add_parsers(sub: Any) -> None:
    s = sub.add_parser("fidelities", help="the training presets: child network, steps, seconds per candidate",
                       description="Every fidelity preset (--fidelity NAME): the child network it trains, the "
                       "data and the recipe, and the seconds a candidate costs when trained in a population — "
                       "measured on a 2-core machine, or estimated from a measured preset by steps; --measure "
                       "times each one here instead.")
    s.add_argument("--measure", action="store_true",
                   help="time every preset on this machine (a population of ReLUs each; minutes) "
                        "(default: print the recorded figures)")
    s.add_argument("--steps", type=count(1), default=None, metavar="N",
                   help="steps timed per preset with --measure, scaled to the preset's (fewer are quicker but "
                        "overstate the cost: short runs skip the fused kernels) (default: all of the preset's)")
    s.add_argument("--population", type=count(1, 4096), default=8, metavar="K",
                   help="candidates trained together with --measure (default: 8)")
    add_device_option(s)
    add_threads_option(s)
    s.set_defaults(run=cmd_fidelities)
