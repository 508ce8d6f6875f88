"""How noisy is a fidelity's score? A fixed panel of functions on paired seeds.

A search can only climb a score whose noise is smaller than the differences it looks for. For one
fidelity, :func:`measure_noise` trains a fixed panel — ReLU, Swish, GELU, ELU, tanh, x·atan x,
cos x − x: smooth, even, periodic, saturating — on N seeds, the same seeds for every function (a
seed fixes the initial weights and the data order, so the differences to ReLU are paired), and
reports per function:

- the standard deviation of its paired difference to ReLU, on the search's score (validation
  accuracy) and on the test set;
- the minimal detectable effect of a paired t-test at 5 and 10 seeds, α = 0.05 two-sided, power 0.8:
  MDE = (t₁₋α/₂,ₙ₋₁ + t₀.₈,ₙ₋₁)·sd/√n (the usual normal-approximation formula with Student's t);
- the panel's ranking on two disjoint halves of the seeds, and Kendall's τ between the two halves'
  mean scores — a score that ranks functions should rank them the same way twice;
- the seconds one candidate costs (the panel trained as populations, as a search trains).

Two numbers then say whether a search at that fidelity has a point (:meth:`NoiseReport.room` and
:meth:`NoiseReport.power`): **room** — how far Swish is above ReLU and how far apart the panel's
best and worst functions are (a task where every good function ties ReLU leaves a search nothing
to find); **power** — the worst paired sd vs ReLU over the functions that train, and τ between the
halves (a score that cannot tell two functions apart cannot rank them).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

from scipy import stats

import torch

from ..evaluation import Task, as_task, get_dataset, mean_std
from .compare import candidate_of_text, entry

__all__ = ["PANEL", "NoiseRow", "NoiseReport", "measure_noise", "mde", "format_noise", "format_room_power", "format_grid",
           "TRAINS_OVER_CHANCE"]

#: The fixed panel: the paper's two baselines, the smooth and saturating functions the Swish paper
#: compared against (GELU, ELU, tanh, leaky ReLU, SELU), an even and a periodic function of its space.
PANEL = ("relu", "swish", "gelu", "elu", "tanh", "leaky_relu", "selu", "x*atan(x)", "cos(x) - x")
ALPHA, POWER = 0.05, 0.8
#: A function "trains" when every seed ends finite and its mean validation accuracy is at least this
#: multiple of chance (1 / classes): only those enter the power figure — a function that stays near
#: chance has a paired sd that says nothing about how well the score separates good functions.
TRAINS_OVER_CHANCE = 2.0


def mde(sd: float | None, n: int) -> float | None:
    """Minimal detectable effect of a two-sided paired t-test with ``n`` pairs (α 0.05, power 0.8)."""
    if sd is None or n < 2:
        return None
    return (stats.t.ppf(1 - ALPHA / 2, n - 1) + stats.t.ppf(POWER, n - 1)) * sd / math.sqrt(n)


@dataclass
class NoiseRow:
    name: str
    expression: str
    val: list[float]  # per seed (NaN where training diverged)
    test: list[float]
    ood: list[float]
    val_diff_sd: float | None = None  # paired difference to ReLU, validation score
    test_diff_sd: float | None = None
    val_diff_mean: float | None = None
    test_diff_mean: float | None = None

    @property
    def val_mean(self) -> float | None:
        return mean_std(self.val)[0]

    @property
    def test_mean(self) -> float | None:
        return mean_std(self.test)[0]

    @property
    def ood_mean(self) -> float | None:
        return mean_std(self.ood)[0]


@dataclass
class NoiseReport:
    fidelity: Task  # a built-in preset as a task (its `fidelity` set), or a user's
    seeds: list[int]
    rows: list[NoiseRow]
    seconds_per_candidate: float
    tau: float | None  # Kendall's τ between the two halves' mean validation scores
    tau_test: float | None
    halves: tuple[list[str], list[str]]  # the panel ranked on each half (validation score)
    num_classes: int | None = 10  # None: a user's task, whose metric has no chance level

    def worst_diff_sd(self, which: str = "val") -> float | None:
        sds = [getattr(r, f"{which}_diff_sd") for r in self.rows if r.name != "relu"]
        sds = [s for s in sds if s is not None]
        return max(sds) if sds else None

    def trains(self, row: NoiseRow) -> bool:
        """Whether ``row``'s function trains: finite on every seed and at least
        :data:`TRAINS_OVER_CHANCE` x chance on average (validation)."""
        mean = row.val_mean
        if not all(math.isfinite(v) for v in row.val) or mean is None:
            return False
        return self.num_classes is None or mean >= TRAINS_OVER_CHANCE / self.num_classes

    def room(self) -> tuple[float | None, float | None, float | None]:
        """(Swish − ReLU on validation, on test, the panel's spread: best − worst mean validation
        score), in accuracy (not points). None where the panel lacks Swish or ReLU."""
        by_name = {r.name: r for r in self.rows}
        swish = by_name.get("swish")
        ends = self.extremes()
        spread = ends[0].val_mean - ends[1].val_mean if ends else None
        if swish is None or "relu" not in by_name:
            return None, None, spread
        return swish.val_diff_mean, swish.test_diff_mean, spread

    def extremes(self) -> tuple[NoiseRow, NoiseRow] | None:
        """The rows with the best and the worst finite mean validation score (None if none has one)."""
        scored = [r for r in self.rows if r.val_mean is not None and math.isfinite(r.val_mean)]
        if not scored:
            return None
        return max(scored, key=lambda r: r.val_mean), min(scored, key=lambda r: r.val_mean)

    def power(self) -> tuple[float | None, str | None]:
        """The worst paired sd vs ReLU (validation) over the functions that train, and whose it is."""
        sds = [(r.val_diff_sd, r.name) for r in self.rows
               if r.name != "relu" and r.val_diff_sd is not None and self.trains(r)]
        return max(sds) if sds else (None, None)

    def mean_diff_sd(self, which: str = "val") -> float | None:
        sds = [getattr(r, f"{which}_diff_sd") for r in self.rows if r.name != "relu"]
        sds = [s for s in sds if s is not None]
        return math.sqrt(sum(s * s for s in sds) / len(sds)) if sds else None


def _paired(a: Sequence[float], b: Sequence[float]) -> tuple[float | None, float | None]:
    return mean_std([x - y for x, y in zip(a, b) if math.isfinite(x) and math.isfinite(y)])


def _ranking(rows: Sequence[NoiseRow], pick: slice, which: str) -> list[float]:
    return [mean_std(getattr(r, which)[pick])[0] or 0.0 for r in rows]


def measure_noise(fidelity: Any, seeds: Sequence[int], panel: Sequence[str] = PANEL, device: str = "cpu",
                  batch: int = 16) -> NoiseReport:
    """Train ``panel`` on ``seeds`` at ``fidelity`` (populations of ``batch``) and measure its noise."""
    fid = as_task(fidelity)
    entries = [entry(p) for p in panel]
    # Named functions as the search trains them: candidates of the operator table (fused kernels
    # on CPU, β as a parameter), not torch's modules, which a population applies member by member
    # through autograd (a 16-member `standard` population, 300 steps: 22.6 s vs 13.6 s).
    acts = [candidate_of_text(p) for p in panel]
    seeds = list(seeds)
    members = [(i, s) for i in range(len(entries)) for s in seeds]
    t0 = time.perf_counter()
    results = []
    for lo in range(0, len(members), batch):
        chunk = members[lo:lo + batch]
        results += fid.evaluate([acts[i] for i, _ in chunk], [s for _, s in chunk], device=device)
    seconds = (time.perf_counter() - t0) / len(members)

    def value(v: float | None) -> float:
        return float(v) if v is not None and math.isfinite(v) else math.nan

    rows = [NoiseRow(name, expr, [], [], []) for name, expr, _ in entries]
    for (i, _), r in zip(members, results):
        rows[i].val.append(value(r.val_accuracy))
        rows[i].test.append(value(r.test_accuracy))
        rows[i].ood.append(value(r.ood_accuracy))
    relu = next(r for r in rows if r.name == "relu")
    for r in rows:
        if r is not relu:
            r.val_diff_mean, r.val_diff_sd = _paired(r.val, relu.val)
            r.test_diff_mean, r.test_diff_sd = _paired(r.test, relu.test)
    half = len(seeds) // 2
    first, second = slice(0, half), slice(half, 2 * half)
    tau = tau_test = None
    if half >= 2:
        tau = float(stats.kendalltau(_ranking(rows, first, "val"), _ranking(rows, second, "val")).statistic)
        tau_test = float(stats.kendalltau(_ranking(rows, first, "test"), _ranking(rows, second, "test")).statistic)
    order = lambda pick: [r.name for _, r in sorted(zip(_ranking(rows, pick, "val"), rows), key=lambda t: -t[0])]  # noqa: E731
    # chance, for "trains": a built-in child's classes; a user's task (any metric) has none
    classes = get_dataset(fid.fidelity.dataset, torch.device("cpu")).num_classes if fid.fidelity is not None else None
    return NoiseReport(fid, seeds, rows, seconds, tau, tau_test, (order(first), order(second)), classes)


def _signed(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:+.2f}"


def _pts(v: float | None) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{100 * v:.2f}"


def format_noise(rep: NoiseReport) -> str:
    """The noise table of one fidelity: per function its scores, the sd of its paired difference to
    ReLU and the effect 5 and 10 paired seeds could detect (all in accuracy points)."""
    n = len(rep.seeds)
    lines = [f"fidelity {rep.fidelity.name}: {rep.fidelity.describe()}; {n} paired seeds {rep.seeds[0]}…{rep.seeds[-1]}; "
             f"{rep.seconds_per_candidate:.2f} s per candidate (populations)",
             f"{'function':<14}{'val':>7}{'test':>7}{'ood':>7}  {'Δval±sd':>14}  {'Δtest±sd':>14}  "
             f"{'MDE5 val':>9}{'MDE10 val':>10}{'MDE10 test':>11}"]
    for r in rep.rows:
        dv = "—" if r.val_diff_mean is None else f"{100 * r.val_diff_mean:+.2f}±{_pts(r.val_diff_sd)}"
        dt = "—" if r.test_diff_mean is None else f"{100 * r.test_diff_mean:+.2f}±{_pts(r.test_diff_sd)}"
        lines.append(f"{r.name:<14}{_pts(r.val_mean):>7}{_pts(r.test_mean):>7}{_pts(r.ood_mean):>7}  {dv:>14}  {dt:>14}  "
                     f"{_pts(mde(r.val_diff_sd, 5)):>9}{_pts(mde(r.val_diff_sd, 10)):>10}{_pts(mde(r.test_diff_sd, 10)):>11}")
    tau = "—" if rep.tau is None else f"{rep.tau:+.2f}"
    tau_t = "—" if rep.tau_test is None else f"{rep.tau_test:+.2f}"
    lines.append(f"paired-difference sd vs ReLU (val): worst {_pts(rep.worst_diff_sd())}, rms {_pts(rep.mean_diff_sd())} "
                 f"points; (test): worst {_pts(rep.worst_diff_sd('test'))}, rms {_pts(rep.mean_diff_sd('test'))} points")
    lines.append(f"Kendall τ between the two halves of the seeds: {tau} (val), {tau_t} (test); "
                 f"ranked on half 1: {' > '.join(rep.halves[0])}; half 2: {' > '.join(rep.halves[1])}")
    lines.append(format_room_power(rep))
    return "\n".join(lines)


def format_room_power(rep: NoiseReport) -> str:
    """Two lines: the room (Swish − ReLU, the panel's spread) and the power (worst paired sd over
    the functions that train, τ between the halves)."""
    sv, st, spread = rep.room()
    ends = rep.extremes()
    span = f" ({ends[0].name} {_pts(ends[0].val_mean)} … {ends[1].name} {_pts(ends[1].val_mean)})" if ends else ""
    sd, who = rep.power()
    trains = [r.name for r in rep.rows if rep.trains(r) and r.name != "relu"]
    left = [r.name for r in rep.rows if not rep.trains(r)]
    tau = "—" if rep.tau is None else f"{rep.tau:+.2f}"
    return (f"room: Swish − ReLU {_signed(sv)} (val), {_signed(st)} (test) points; the panel's spread "
            f"{_pts(spread)} points{span}\n"
            f"power: worst paired sd vs ReLU over the {len(trains)} functions that train {_pts(sd)} points"
            f"{f' ({who})' if who else ''}; Kendall τ between the halves {tau}"
            + (f"; not training (under {TRAINS_OVER_CHANCE:g}x chance or diverged): {', '.join(left)}" if left else ""))


def format_grid(reports: Sequence[NoiseReport]) -> str:
    """A summary of several fidelities (a grid): a header and, per fidelity, ReLU's validation score,
    the room and the power, in points."""
    lines = ["summary (accuracy points; room: Swish − ReLU and the panel's spread; power: worst paired sd vs "
             "ReLU over the functions that train, τ between the halves)",
             f"{'fidelity':<46}{'ReLU val':>8}{'Δ val':>10}{'Δ test':>10}{'spread':>9}{'worst sd':>10}{'τ':>7}"
             f"{'s/cand':>9}"]
    for rep in reports:
        sv, st, spread = rep.room()
        sd, _ = rep.power()
        relu = next(r for r in rep.rows if r.name == "relu")
        tau = "—" if rep.tau is None else f"{rep.tau:+.2f}"
        lines.append(f"{rep.fidelity.name:<46}{_pts(relu.val_mean):>8}{_signed(sv):>10}{_signed(st):>10}"
                     f"{_pts(spread):>9}{_pts(sd):>10}{tau:>7}{rep.seconds_per_candidate:>9.2f}")
    return "\n".join(lines)
