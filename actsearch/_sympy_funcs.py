"""sympy Functions for the numerically delicate primitives of the operator table.

σ, softplus, log(|x|+ε), √ on a safe domain and the guarded division are *primitives*: sympy must
never expand them into exp/log forms, because x/(1+exp(−x)) overflows to inf/inf = NaN in float32
for x ≲ −89, and its gradient does so even earlier. Each class knows its derivative (``fdiff``),
its LaTeX, and how to evaluate numerically; the torch form lives in the operator table (ops.py).
"""
from __future__ import annotations

import sympy as sp

#: ε of the safe primitives. 1e-3 keeps |f'| ≤ 1/ε = 1e3 (log, division) and 1/(2√ε) ≈ 16 (√),
#: so one unlucky pre-activation cannot blow a float32 gradient up.
EPS = 1e-3

__all__ = ["EPS", "sigmoid", "softplus", "logabs", "sqrtabs", "safediv"]


class sigmoid(sp.Function):  # noqa: N801 - named like sympy's own functions
    """σ(x) = 1/(1+e^{−x}), kept whole so it prints to the stable ``torch.sigmoid``."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_zero:
            return sp.Rational(1, 2)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return (1 / (1 + sp.exp(-self.args[0]))).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        return _power(exp) % r"\sigma\left(%s\right)" % printer._print(self.args[0])


class softplus(sp.Function):  # noqa: N801
    """log(1+eˣ), kept whole so it prints to the overflow-free ``F.softplus``."""

    nargs = 1

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        if arg.is_zero:
            return sp.log(2)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return sp.log(1 + sp.exp(self.args[0])).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        return _power(exp) % r"\operatorname{softplus}\left(%s\right)" % printer._print(self.args[0])


class logabs(sp.Function):  # noqa: N801
    """log(|x|+ε): the paper's log on a domain where it is finite (Ramachandran et al. 2017)."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a = self.args[0]
        return sp.sign(a) / (sp.Abs(a) + EPS)

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return sp.log(sp.Abs(self.args[0]) + EPS).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        return _power(exp) % r"\log\left(\left|%s\right| + \epsilon\right)" % printer._print(self.args[0])


class sqrtabs(sp.Function):  # noqa: N801
    """√(|x|+ε): √ on a safe domain — defined for x < 0 and with a bounded slope at 0."""

    nargs = 1

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a = self.args[0]
        return sp.sign(a) / (2 * sqrtabs(a))

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return sp.sqrt(sp.Abs(self.args[0]) + EPS).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        return _power(exp) % r"\sqrt{\left|%s\right| + \epsilon}" % printer._print(self.args[0])


class safediv(sp.Function):  # noqa: N801
    """x1/(x2 ± ε), the sign of ε following x2, so that |denominator| ≥ ε.

    The paper found division poor "unless the denominator stays away from 0"; the plain x1/(x2+ε)
    still explodes at x2 = −ε, this form never does.
    """

    nargs = 2

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        den = b + EPS * _sign_nonzero(b)
        if argindex == 1:
            return 1 / den
        return -a / den**2

    def _eval_evalf(self, prec: int) -> sp.Expr:
        a, b = self.args
        return (a / (b + EPS * _sign_nonzero(b))).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return self.args[0].is_real and self.args[1].is_real

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        a, b = (printer._print(arg) for arg in self.args)
        return _power(exp) % (r"\frac{%s}{%s \pm \epsilon}" % (a, b))


def _sign_nonzero(b: sp.Expr) -> sp.Expr:
    """sign(b) with sign(0) = +1, as torch's ``copysign(ε, b)`` treats +0."""
    return sp.Piecewise((1, b >= 0), (-1, True))


def _power(exp: str | None) -> str:
    """A LaTeX wrapper for f(x)^exp (sympy passes ``exp`` when printing powers of a function)."""
    return "%s" if exp is None else r"\left(%s\right)^{" + exp.replace("%", "%%") + "}"
