"""Shape analysis: which known activation a candidate looks like, and how closely.

A candidate f is compared with each reference family g (ReLU, Swish x·σ(βx), GELU, ELU, tanh, …)
over x ∈ [−5, 5] — where a batch-normalised pre-activation lives — after fitting a scale a (and
β for Swish, by a log-grid then golden-section search). The distance is the normalised RMS
residual ‖f − a·g‖ / ‖f‖: 0 for a perfect match up to scale, 1 when g explains nothing.

Point reflection. A network computes the same functions with f as with its point reflection
f̃(x) = −f(−x): for a layer  y = W₂ f(W₁ h + b₁) + b₂,  negating the weights before and after,

    W₂ f(W₁ h + b₁) = (−W₂) · (−f(−(−W₁ h − b₁))) = (−W₂) f̃((−W₁) h + (−b₁)),

and a BatchNorm before it commutes with the sign (BN_{γ,−β}(−z) = −BN_{γ,β}(z): the mean flips,
the variance does not). PyTorch's initializers are symmetric in sign, so the two networks also
start from the same distribution: f and f̃ are one shape to a search. Every fit is therefore made
to f and to f̃, and the better one is kept (``Match.reflected`` says when it is f̃): σ(−x)·min(0, x)
is x·σ(x)·[x > 0]'s reflection, i.e. Swish-like. ``reflect=False`` gives the one-sided analysis.

"Swish-like" (Ramachandran et al. 2017): the nearest family is Swish or one of its look-alikes
(SiLU = Swish-1, GELU ≈ x·σ(1.702x)) and the fitted Swish is within
:data:`SWISH_LIKE_THRESHOLD`. ReLU is Swish with β → ∞, so β is capped at :data:`SWISH_BETA_MAX`
and ReLU is its own family: a ReLU-shaped candidate is nearest to ReLU, not to Swish.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from ..expressions import OPS, Candidate, X, families

__all__ = ["Match", "FAMILIES", "nearest", "shape_distances", "swish_fit", "is_swish_like",
           "SWISH_LIKE_THRESHOLD", "SHAPE_RANGE"]

SHAPE_RANGE = (-5.0, 5.0)
#: Normalised RMS distance below which a fitted Swish "is" the candidate. At 0.1 the curves are
#: indistinguishable on a plot; x·σ(1.702x) vs exact GELU is ≈ 0.01, ReLU vs x·σ(x) ≈ 0.12.
SWISH_LIKE_THRESHOLD = 0.1
SWISH_BETA_MIN, SWISH_BETA_MAX = 0.1, 10.0
_SWISH_FAMILY = {"swish", "silu", "gelu"}
_X = torch.linspace(*SHAPE_RANGE, 1001, dtype=torch.float64)

_Ref = Callable[[torch.Tensor], torch.Tensor]
#: Operators that are shapes a candidate may take without being activations (even functions, waves).
_SHAPE_OPS = ("abs", "square", "sin")
#: Reference families, simplest first: on a tie the simpler explanation wins — the registry's
#: families (each its module twin: identity, ReLU … Mish), then the shape operators.
FAMILIES: dict[str, _Ref] = {
    **{a.name: a.build_module() for a in families()},
    **{name: Candidate(OPS[name].build(X)).function for name in _SHAPE_OPS},
}


@dataclass(frozen=True)
class Match:
    """The best fit of one reference family: f ≈ scale · g_β(x), or, ``reflected``, −f(−x) ≈ it."""

    name: str
    distance: float
    scale: float
    beta: float | None = None
    reflected: bool = False

    def __str__(self) -> str:
        beta = f", β={self.beta:.2f}" if self.beta is not None else ""
        scale = "" if abs(self.scale - 1) < 5e-3 else f"{self.scale:.2f}·"
        side = ", as −f(−x)" if self.reflected else ""
        return f"{scale}{self.name}{beta} (distance {self.distance:.3f}{side})"


def _values(f: Candidate | _Ref) -> torch.Tensor:
    with torch.no_grad():
        if isinstance(f, Candidate):
            return f.evaluate(_X).detach()
        return torch.as_tensor(f(_X), dtype=torch.float64).expand_as(_X)


def _sides(f: Candidate | _Ref, reflect: bool) -> list[tuple[bool, torch.Tensor]]:
    """f on the grid, and (``reflect``) its point reflection −f(−x) — the grid is symmetric about 0."""
    y = _values(f)
    return [(False, y), (True, -y.flip(0))] if reflect else [(False, y)]


def _better(a: Match, b: Match) -> Match:
    """The closer fit; f itself unless its reflection is closer by more than rounding."""
    return b if b.distance < a.distance - 1e-9 else a


def _fit(y: torch.Tensor, g: torch.Tensor) -> tuple[float, float]:
    """Least-squares scale a for y ≈ a·g, and the normalised RMS residual."""
    norm_y = float(y.norm())
    gg = float(g.dot(g))
    if not math.isfinite(norm_y) or norm_y == 0.0 or gg == 0.0:
        return 0.0, math.inf
    a = float(y.dot(g)) / gg
    return a, float((y - a * g).norm()) / norm_y


def swish_fit(f: Candidate | _Ref, reflect: bool = True) -> Match:
    """Best x·σ(βx) (β in [0.1, 10]) and scale for f (or, ``reflect``, for −f(−x) if closer)."""
    fits = [_swish_fit(y, side) for side, y in _sides(f, reflect)]
    return fits[0] if len(fits) == 1 else _better(*fits)


def _swish_fit(y: torch.Tensor, reflected: bool) -> Match:
    def dist(log_beta: float) -> float:
        return _fit(y, _X * torch.sigmoid(math.exp(log_beta) * _X))[1]

    lo, hi = math.log(SWISH_BETA_MIN), math.log(SWISH_BETA_MAX)
    grid = [lo + (hi - lo) * i / 40 for i in range(41)]
    best = min(grid, key=dist)
    a, b = max(lo, best - (hi - lo) / 40), min(hi, best + (hi - lo) / 40)
    phi = (math.sqrt(5) - 1) / 2
    for _ in range(40):  # golden-section refinement around the best grid point
        c, d = b - phi * (b - a), a + phi * (b - a)
        if dist(c) < dist(d):
            b = d
        else:
            a = c
    log_beta = (a + b) / 2
    scale, distance = _fit(y, _X * torch.sigmoid(math.exp(log_beta) * _X))
    return Match("swish", distance, scale, math.exp(log_beta), reflected)


def shape_distances(f: Candidate | _Ref, reflect: bool = True) -> list[Match]:
    """Every reference family's best fit, nearest first (stable: simpler families win ties)."""
    sides = _sides(f, reflect)
    matches = []
    for name, g in FAMILIES.items():
        gy = _values(g)
        fits = [Match(name, d, a, None, side) for side, y in sides for a, d in [_fit(y, gy)]]
        matches.append(fits[0] if len(fits) == 1 else _better(*fits))
    matches.append(swish_fit(f, reflect))
    order = {m.name: i for i, m in enumerate(matches)}
    # Distances within 1e-3 count as a tie, broken by simplicity (table order).
    return sorted(matches, key=lambda m: (round(m.distance, 3), order[m.name]))


def nearest(f: Candidate | _Ref, reflect: bool = True) -> Match:
    """The nearest known activation to f, with its fitted scale (and β for Swish)."""
    return shape_distances(f, reflect)[0]


def is_swish_like(f: Candidate | _Ref, reflect: bool = True) -> bool:
    """True when f's nearest family is Swish-shaped and the fitted Swish is within threshold (f, or
    with ``reflect`` its point reflection: one shape to a network)."""
    matches = shape_distances(f, reflect)
    swish = next(m for m in matches if m.name == "swish")
    return (
        matches[0].name in _SWISH_FAMILY
        and swish.distance < SWISH_LIKE_THRESHOLD
        and swish.scale > 0
    )
