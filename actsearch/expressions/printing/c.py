"""sympy → float32 C: a candidate and its derivatives as the loops of the fused population kernels
(:mod:`actsearch.evaluation.kernels`, which adds the fixed C around them).

For each candidate f(x; β), :func:`function_source` writes ``fwd_i`` (y = f) and ``bwd_i`` (∂L/∂x
and the per-element ∂L/∂β), one vectorisable loop each, from the operator table's ``c`` column
and sympy's symbolic derivatives with ``sympy.cse``. Before differentiating, max/min/sinc/safediv
are rewritten into forms whose derivatives are torch's at ties (see :func:`_torch_ties`), so the C
and the torch printer's output agree there too. The loops read and write through the names the
kernel library's prelude defines (``HIDDEN``, ``_max``, ``_sigmoid`` …).
"""
from __future__ import annotations

import functools
import math
from typing import Any

import sympy as sp
from sympy.codegen.ast import float32, real
from sympy.printing.c import C99CodePrinter

from ...errors import CodegenError
from ..functions import EPS, safediv
from ..ops import c_forms

__all__ = ["function_source"]


# ------------------------------------------------------------------ sympy forms with torch's ties
class _Real(sp.Function):
    """Real-valued for real arguments (else sympy differentiates |f| through re and im)."""

    def _eval_is_real(self) -> bool | None:
        return all(a.is_real for a in self.args) or None


class _StepOpen(_Real):  # 1 for a > 0, 0 for a ≤ 0 (torch.relu's slope)
    nargs = 1


class _StepClosed(_Real):  # 1 for a ≥ 0, 0 for a < 0 (clamp_max's slope at the bound)
    nargs = 1


class _ClampMin(_Real):
    """max(a, c), c a constant, as the torch printer writes it: torch.relu for c = 0 (slope 0 at the
    tie), else clamp_min (slope 1 at the tie)."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, c = self.args
        return (_StepOpen(a - c) if c == 0 else _StepClosed(a - c)) if argindex == 1 else sp.S.Zero


class _ClampMax(_Real):
    """min(a, c), c a constant: clamp_max, slope 1 at the tie."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, c = self.args
        return _StepClosed(c - a) if argindex == 1 else sp.S.Zero


class _Hardtanh(_Real):
    """min(max(a, lo), hi): F.hardtanh, slope 0 at both ends."""

    nargs = 3

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, lo, hi = self.args
        return _StepOpen(a - lo) * _StepOpen(hi - a) if argindex == 1 else sp.S.Zero


class _Max2(_Real):
    """max(a, b) of two functions, unflattened: torch.maximum splits the gradient of a tie."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        return sp.Heaviside(a - b, sp.S.Half) if argindex == 1 else sp.Heaviside(b - a, sp.S.Half)


class _Min2(_Real):
    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        return sp.Heaviside(b - a, sp.S.Half) if argindex == 1 else sp.Heaviside(a - b, sp.S.Half)


class _CopySign1(_Real):  # ±1 by the sign bit, as torch.copysign reads −0.0
    nargs = 1


class _SafeDiv(_Real):
    """safediv with ε's sign from copysign, as its torch and C forms (fdiff in functions.py reads
    sign(0) = +1 also for −0.0)."""

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        den = b + EPS * _CopySign1(b)
        return 1 / den if argindex == 1 else -a / den**2


class _DSinc(_Real):
    nargs = 1


class _Sinc(_Real):
    """sin(a)/a with its derivative as one guarded function (sympy's has 0/0 at a = 0)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return _DSinc(self.args[0])


class _CPrinter(C99CodePrinter):
    """float32 C for the operator table's primitives (its ``c`` column) and their derivatives."""

    _EXTRA = {
        sp.Heaviside: "_heaviside({0})", sp.sign: "_sign({0})", _StepOpen: "_step({0}, 0.0f)",
        _StepClosed: "_step({0}, 1.0f)", _ClampMin: "_max({0}, {1})", _ClampMax: "_min({0}, {1})",
        _Max2: "_max({0}, {1})", _Min2: "_min({0}, {1})", _Hardtanh: "_min(_max({0}, {1}), {2})",
        _Sinc: "_sinc({0})", _DSinc: "_dsinc({0})", _CopySign1: "copysignf(1.0f, {0})",
    }
    _GATES = (sp.Heaviside, _StepOpen, _StepClosed)

    def __init__(self) -> None:
        super().__init__({"type_aliases": {real: float32}})
        self.forms = {**c_forms(), **self._EXTRA}
        self.forms[_SafeDiv] = self.forms[safediv]

    def _print_Mul(self, expr: sp.Mul) -> str:
        # A step factor gates the rest to exactly 0, as torch's masked gradient does: the inactive
        # branch of a max may be inf at the same point (0 * inf would be NaN).
        gates = [f for f in expr.args if isinstance(f, self._GATES)]
        if not gates:
            return super()._print_Mul(expr)
        rest = sp.Mul(*[f for f in expr.args if not isinstance(f, self._GATES)])
        gate = " * ".join(self._print(g) for g in gates)
        return f"_gate({gate}, {self._print(rest)})"

    def _print(self, expr: Any, **kwargs: Any) -> str:
        if isinstance(expr, sp.Basic) and expr.is_number and not expr.is_Relational:
            value = complex(sp.N(expr, 17))
            if value.imag != 0 or not math.isfinite(value.real):
                raise CodegenError(f"constant {expr} has no float32 C form")
            return f"({value.real!r}f)"
        if isinstance(expr, (sp.Max, sp.Min)):
            fn = "_max" if isinstance(expr, sp.Max) else "_min"
            out = self._print(expr.args[0])
            for a in expr.args[1:]:
                out = f"{fn}({out}, {self._print(a)})"
            return out
        form = self.forms.get(type(expr)) if isinstance(expr, sp.Basic) else None
        if form is not None:
            return form.format(*(self._print(a) for a in expr.args))
        if isinstance(expr, sp.Function) and not isinstance(expr, sp.Piecewise) and type(expr) not in (
                sp.exp, sp.log, sp.sqrt):
            raise CodegenError(f"no C form for {type(expr).__name__}")
        return super()._print(expr, **kwargs)

    def _print_Pow(self, expr: sp.Pow) -> str:
        base, exp = expr.args
        b = self._print(base)
        if exp == 2:
            return f"_sq({b})"
        if exp == 3:
            return f"(_sq({b}) * ({b}))"
        if exp == -1:
            return f"(1.0f / ({b}))"
        if exp == -2:
            return f"(1.0f / _sq({b}))"
        if exp == sp.Rational(1, 2):
            return f"sqrtf({b})"
        if exp == sp.Rational(-1, 2):
            return f"(1.0f / sqrtf({b}))"
        return f"powf({b}, {self._print(exp)})"


def _torch_ties(e: sp.Expr) -> sp.Expr:
    """The expression as the torch printer folds it (printing.torch.TorchPrinter._fold): n-ary max/min
    as nested binary ones, constants last as clamps, min(max(a, lo), hi) as hardtanh; sinc with a
    guarded derivative. Same values; the derivatives then agree with torch's at ties too."""
    if e.is_Atom:
        return e
    if isinstance(e, sp.Min) and len(e.args) == 2:
        hi = next((a for a in e.args if a.is_number), None)
        inner = next((a for a in e.args if isinstance(a, sp.Max) and len(a.args) == 2), None)
        lo = next((a for a in inner.args if a.is_number), None) if inner is not None else None
        if hi is not None and lo is not None and bool(lo < hi):
            arg = next(a for a in inner.args if not a.is_number)  # type: ignore[union-attr]
            return _Hardtanh(_torch_ties(arg), lo, hi)
    args = [_torch_ties(a) for a in e.args]
    if isinstance(e, (sp.Max, sp.Min)):
        pair, clamp = (_Max2, _ClampMin) if isinstance(e, sp.Max) else (_Min2, _ClampMax)
        others = [a for a in args if not a.is_number]
        out = others[0]
        for o in others[1:]:
            out = pair(out, o)
        for c in (a for a in args if a.is_number):
            out = clamp(out, c)
        return out
    if isinstance(e, sp.sinc):
        return _Sinc(args[0])
    if isinstance(e, safediv):
        return _SafeDiv(*args)
    return e.func(*args)


@functools.lru_cache(maxsize=4096)
def function_source(expr: sp.Expr, betas: tuple[str, ...], x: sp.Symbol, index: int) -> str:
    """C source of ``fwd_<index>`` and ``bwd_<index>`` for f(x; β)."""
    v = sp.Symbol("v_x", real=True)
    bs = [sp.Symbol(f"v_b{j}", real=True) for j in range(len(betas))]
    subs = {x: v, **{s: bs[betas.index(s.name)] for s in expr.free_symbols if s.name in betas}}
    f = _torch_ties(expr.xreplace(subs))
    grads = [sp.diff(f, s) for s in (v, *bs)]
    printer = _CPrinter()

    def body(outputs: list[tuple[str, sp.Expr]]) -> str:
        temps, reduced = sp.cse([e for _, e in outputs], symbols=sp.numbered_symbols("t"))
        lines = [f"      const float {t} = {printer.doprint(e)};" for t, e in temps]
        lines += [target.format(printer.doprint(e)) for (target, _), e in zip(outputs, reduced)]
        return "\n".join(lines)

    load = "      const float v_x = X[r];\n" + "".join(
        f"      const float v_b{j} = B[{j}][r];\n" for j in range(len(bs)))
    fwd = body([("      Y[r] = {};", f)])
    bwd = body([("      GX[r] = GY[r] * ({});", grads[0])]
               + [(f"      G[{j}][r] += GY[r] * ({{}});", g) for j, g in enumerate(grads[1:])])
    return f"""
HIDDEN void fwd_{index}(int64_t N, int64_t R, int64_t sn, const float* X0, float* Y0, const float* const* B) {{
  (void)B;
  for (int64_t n = 0; n < N; n++) {{
    const float* restrict X = X0 + n * sn;
    float* restrict Y = Y0 + n * sn;
    #pragma omp simd
    for (int64_t r = 0; r < R; r++) {{
{load}{fwd}
    }}
  }}
}}
HIDDEN void bwd_{index}(int64_t N, int64_t R, int64_t sn, const float* X0, const float* GY0, float* GX0,
                        const float* const* B, float* const* G) {{
  (void)B; (void)G;
  for (int64_t n = 0; n < N; n++) {{
    const float* restrict X = X0 + n * sn;
    const float* restrict GY = GY0 + n * sn;
    float* restrict GX = GX0 + n * sn;
    #pragma omp simd
    for (int64_t r = 0; r < R; r++) {{
{load}{bwd}
    }}
  }}
}}
"""
