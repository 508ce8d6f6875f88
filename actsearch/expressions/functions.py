"""sympy Functions for the numerically delicate primitives of the operator table.

σ, softplus, log(|x|+ε), √ on a safe domain and the guarded division are *primitives*: sympy must
never expand them into exp/log forms, because x/(1+exp(−x)) overflows to inf/inf = NaN in float32
for x ≲ −89, and its gradient does so even earlier. Each class knows its derivative (``fdiff``),
its LaTeX, and how to evaluate numerically (through its closed form, :meth:`_Primitive.closed`);
the torch and C forms live in the operator table (:mod:`actsearch.expressions.ops`).
"""
from __future__ import annotations

import sympy as sp

#: ε of the safe primitives. 1e-3 keeps |f'| ≤ 1/ε = 1e3 (log, division) and 1/(2√ε) ≈ 16 (√),
#: so one unlucky pre-activation cannot blow a float32 gradient up.
EPS = 1e-3

__all__ = ["EPS", "sigmoid", "softplus", "logabs", "sqrtabs", "safediv"]


class _Primitive(sp.Function):
    """What every primitive shares: real for real arguments, evaluated numerically through its
    closed form, printed in LaTeX from :attr:`latex_form` (a %-template over the printed args)."""

    latex_form = ""

    @classmethod
    def closed(cls, *args: sp.Expr) -> sp.Expr:
        """The closed form in sympy's own functions (numerical evaluation only: never simplified to)."""
        raise NotImplementedError

    def _eval_evalf(self, prec: int) -> sp.Expr:
        return self.closed(*self.args).evalf(prec)

    def _eval_is_real(self) -> bool | None:
        return all(a.is_real for a in self.args) or None

    def _latex(self, printer: sp.printing.latex.LatexPrinter, exp: str | None = None) -> str:
        body = self.latex_form % tuple(printer._print(a) for a in self.args)
        return body if exp is None else r"\left(%s\right)^{%s}" % (body, exp)


class sigmoid(_Primitive):  # noqa: N801 - named like sympy's own functions
    """σ(x) = 1/(1+e^{−x}), kept whole so it prints to the stable ``torch.sigmoid``."""

    nargs = 1
    latex_form = r"\sigma\left(%s\right)"

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        return sp.Rational(1, 2) if arg.is_zero else None

    @classmethod
    def closed(cls, a: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-a))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0]) * (1 - sigmoid(self.args[0]))


class softplus(_Primitive):  # noqa: N801
    """log(1+eˣ), kept whole so it prints to the overflow-free ``F.softplus``."""

    nargs = 1
    latex_form = r"\operatorname{softplus}\left(%s\right)"

    @classmethod
    def eval(cls, arg: sp.Expr) -> sp.Expr | None:
        return sp.log(2) if arg.is_zero else None

    @classmethod
    def closed(cls, a: sp.Expr) -> sp.Expr:
        return sp.log(1 + sp.exp(a))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return sigmoid(self.args[0])


class _AbsPlusEps(_Primitive):
    """g(|x| + ε) for a g singular at 0 (log, √): finite for every x, slope bounded at 0. The
    derivative is sign(x)·g'(|x| + ε), written back in the primitive itself where g' contains g."""

    nargs = 1
    outer = staticmethod(sp.log)

    @classmethod
    def closed(cls, a: sp.Expr) -> sp.Expr:
        return cls.outer(sp.Abs(a) + EPS)

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, u = self.args[0], sp.Dummy("u", positive=True)
        slope = sp.diff(self.outer(u), u).subs(self.outer(u), self)
        return sp.sign(a) * slope.subs(u, sp.Abs(a) + EPS)


class logabs(_AbsPlusEps):  # noqa: N801
    """log(|x|+ε): the paper's log on a domain where it is finite (Ramachandran et al. 2017)."""

    latex_form = r"\log\left(\left|%s\right| + \epsilon\right)"


class sqrtabs(_AbsPlusEps):  # noqa: N801
    """√(|x|+ε): √ on a safe domain — defined for x < 0 and with a bounded slope at 0."""

    latex_form = r"\sqrt{\left|%s\right| + \epsilon}"
    outer = staticmethod(sp.sqrt)


class safediv(_Primitive):  # noqa: N801
    """x1/(x2 ± ε), the sign of ε following x2, so that |denominator| ≥ ε.

    The paper found division poor "unless the denominator stays away from 0"; the plain x1/(x2+ε)
    still explodes at x2 = −ε, this form never does.
    """

    nargs = 2
    latex_form = r"\frac{%s}{%s \pm \epsilon}"

    @classmethod
    def closed(cls, a: sp.Expr, b: sp.Expr) -> sp.Expr:
        return a / (b + EPS * _sign_nonzero(b))

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        a, b = self.args
        den = b + EPS * _sign_nonzero(b)
        return 1 / den if argindex == 1 else -a / den**2


def _sign_nonzero(b: sp.Expr) -> sp.Expr:
    """sign(b) with sign(0) = +1, as the torch and C forms (ε with b's sign bit) treat +0."""
    return sp.Piecewise((1, b >= 0), (-1, True))
