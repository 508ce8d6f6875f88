"""A candidate activation: a sympy expression in ``x`` with trainable constants β.

Two candidates that are the same function get the same :attr:`Candidate.key`, whatever their
structure (x·σ(x) and σ(x)·x, −(−x), max(x, x)…): sympy's automatic canonicalisation handles the
easy cases, a time-bounded ``simplify`` gives the printed canonical form, and the key itself is a
numeric fingerprint of the compiled function on fixed probe points, with β at two settings — the
same idea AQuaSurF (Bingham & Miikkulainen 2023) uses to drop numerically identical functions.
Degenerate candidates (no x, constant, non-finite, zero gradient) are detected before training.
"""
from __future__ import annotations

import hashlib
import signal
import threading
from contextlib import contextmanager
from functools import cached_property
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import sympy as sp
import torch
from sympy.core.sympify import _sympify
from torch import nn

from ..errors import CompileError
from .generated import compiled_members
from .printing.torch import compiled_function, print_torch

__all__ = ["X", "Candidate", "beta_symbol", "PROBE_RANGE", "PROBE_GRID"]

#: The pre-activation. Real, so sympy may simplify |x|², etc.
X = sp.Symbol("x", real=True)

#: Degeneracy is judged on this grid: pre-activations of a normalised net live well inside it.
PROBE_RANGE = (-6.0, 6.0)
# Rounded so that 0 — where 1/x and log x break — is on it exactly (linspace gives −3e−16).
PROBE_GRID = torch.linspace(*PROBE_RANGE, 241, dtype=torch.float64).round(decimals=12) + 0.0
# Fingerprint points: a regular grid plus irregular points, so that functions agreeing only on a
# lattice (sin(πx)-like coincidences) still differ.
_FP_POINTS = torch.cat(
    [
        torch.linspace(-5.0, 5.0, 41, dtype=torch.float64),
        torch.from_numpy(np.random.default_rng(20171016).normal(0.0, 2.5, 40)),
    ]
)
# β settings for the fingerprint: the initial values, and fixed "trained-looking" values, so that
# βx and x (equal at β=1) get different keys.
_FP_BETAS = np.random.default_rng(7).uniform(0.3, 2.0, 64)
_SIMPLIFY_SECONDS = 2.0


def beta_symbol(name: str) -> sp.Symbol:
    return sp.Symbol(name, real=True)


class Candidate:
    """A scalar activation f(x; β) — sympy-backed, compiled on demand.

    ``betas`` maps each β symbol's name to its initial value (in order). ``structure`` holds the
    grammar choices that produced it (empty for a parsed expression).
    """

    x = X

    def __init__(
        self,
        expr: sp.Expr,
        betas: Mapping[str, float] | None = None,
        *,
        source: str | None = None,
        structure: Mapping[str, Any] | None = None,
        core_units: int | None = None,
        beta_trainable: bool = True,
        beta_per_channel: bool = True,
    ) -> None:
        if isinstance(expr, str):
            # sympify(text) runs it as Python: text goes through the restricted parser only.
            raise TypeError("Candidate takes a sympy expression; parse text with actsearch.parse")
        if not isinstance(expr, sp.Basic):
            expr = _sympify(expr)  # numbers: strict mode never parses strings
        present = {s.name for s in expr.free_symbols}
        betas = dict(betas or {})
        unknown = present - set(betas) - {"x"}
        if unknown:
            raise ValueError(f"symbols {sorted(unknown)} are neither x nor a declared β")
        # Only the β that survived canonicalisation are parameters (max(β, β) has one).
        self.betas: dict[str, float] = {k: float(v) for k, v in betas.items() if k in present}
        self.expr: sp.Expr = expr
        self.source = source
        self.structure = dict(structure or {})
        self.core_units = core_units
        self.beta_trainable = beta_trainable  # False: β stay at their initial values (buffers)
        self.beta_per_channel = beta_per_channel  # the paper trains one β per channel

    # ---- text forms ------------------------------------------------------------------------
    @cached_property
    def text(self) -> str:
        return str(self.expr)  # sympy's printer is slow and a candidate's expression never changes

    @property
    def latex(self) -> str:
        return sp.latex(self.expr)

    @cached_property
    def canonical(self) -> Candidate:
        """The simplest equal form sympy finds within a time bound (itself if none is better)."""
        simpler = _bounded_simplify(self.expr, _SIMPLIFY_SECONDS)
        if simpler is None or sp.count_ops(simpler) >= sp.count_ops(self.expr):
            return self
        try:
            other = Candidate(simpler, self.betas, source=self.source, structure=self.structure,
                              core_units=self.core_units, beta_trainable=self.beta_trainable,
                              beta_per_channel=self.beta_per_channel)
            same = other.key == self.key and set(other.betas) == set(self.betas)
        except (CompileError, ValueError, TypeError):
            return self
        return other if same else self

    def __repr__(self) -> str:
        return f"Candidate({self.text!r})"

    def __str__(self) -> str:
        return self.text

    # ---- compiled forms --------------------------------------------------------------------
    @cached_property
    def _compiled(self) -> tuple[Callable[..., torch.Tensor], type]:
        return compiled_members(self)  # type: ignore[return-value]

    @property
    def torch_source(self) -> str:
        return print_torch(self.expr, list(self.betas), X)

    @cached_property
    def function(self) -> Callable[..., torch.Tensor]:
        """``f(x, *betas)`` on tensors (β default to their initial values)."""
        if "_compiled" in self.__dict__:
            return self._compiled[0]
        return compiled_function(self)  # type: ignore[return-value]

    def to_module(self, num_channels: int | None = None) -> nn.Module:
        """A fresh ``nn.Module``; β are ``nn.Parameter`` s, one per channel if num_channels."""
        return self._compiled[1](num_channels)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.function(x)

    def evaluate(self, x: torch.Tensor, betas: Mapping[str, float] | None = None) -> torch.Tensor:
        """f on a tensor, with β at their initial values unless ``betas`` says otherwise."""
        values = dict(self.betas, **(betas or {}))
        y = self.function(x, *(torch.as_tensor(values[b], dtype=x.dtype) for b in self.betas))
        return torch.as_tensor(y, dtype=x.dtype).expand_as(x)

    # ---- identity --------------------------------------------------------------------------
    @cached_property
    def key(self) -> str:
        """Equivalence key: equal functions (as families in β) get equal keys."""
        with np.errstate(all="ignore"):
            inits = self.evaluate(_FP_POINTS).numpy()
            moved = {b: float(_FP_BETAS[i]) for i, b in enumerate(self.betas)}
            shifted = self.evaluate(_FP_POINTS, moved).numpy() if self.betas else inits[:0]
        text = "".join(map(_quantize, np.concatenate([inits, shifted]).tolist()))
        return f"{hashlib.sha1(text.encode()).hexdigest()[:16]}-b{len(self.betas)}"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Candidate) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    @cached_property
    def degenerate_reason(self) -> str | None:
        """Why this candidate cannot be a useful activation, or None if it might be."""
        if X not in self.expr.free_symbols:
            return "does not depend on x"
        grid = PROBE_GRID.clone().requires_grad_(True)
        try:
            y = self.evaluate(grid)
            (g,) = torch.autograd.grad(y.sum(), grid, allow_unused=True)
        except (RuntimeError, CompileError) as exc:
            return f"cannot be evaluated: {exc}"
        y = y.detach()
        bad = ~torch.isfinite(y)
        if bad.any():
            at = float(PROBE_GRID[bad][0])
            return f"non-finite on the probe grid (f({at:g}) = {float(y[bad][0])})"
        if float(y.max() - y.min()) <= 1e-6 * (1.0 + float(y.abs().max())):
            return "constant on the probe grid"
        if g is None or not torch.isfinite(g).all():
            return "non-finite gradient on the probe grid"
        if float(g.abs().max()) < 1e-8:
            return "zero gradient on the probe grid (backprop cannot train through it)"
        return None

    @property
    def is_degenerate(self) -> bool:
        return self.degenerate_reason is not None

    def op_count(self) -> int:
        """A cost proxy: sympy's operation count."""
        return int(sp.count_ops(self.expr))


def _quantize(v: float) -> str:
    if not np.isfinite(v):
        return "nan" if np.isnan(v) else ("inf" if v > 0 else "-inf")
    if abs(v) < 1e-9:
        return "0"
    return f"{v:.8g}"


@contextmanager
def _time_limit(seconds: float) -> Iterator[None]:
    """SIGALRM-based limit; only usable in the main thread (elsewhere: no limit applies)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        raise TimeoutError("no time limit available off the main thread")

    def _raise(signum: int, frame: object) -> None:
        raise TimeoutError

    old = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _bounded_simplify(expr: sp.Expr, seconds: float) -> sp.Expr | None:
    try:
        with _time_limit(seconds):
            return sp.simplify(expr)
    except (TimeoutError, RecursionError, ValueError, TypeError, AttributeError):
        return None
