"""A restricted parser for activation expressions, built on the operator table.

``sympify``/``eval`` on user text executes Python, so they are never used. The text is parsed by
Python's *parser* only (``ast.parse``, which runs nothing) and the tree is walked with an
allow-list: numbers, the name ``x``, β names, the operator table's names as calls, and
+ − · / ** (or ^). Everything else — attributes, subscripts, lambdas, keywords, dunder names,
comprehensions — is refused with a message that says what is allowed.
"""
from __future__ import annotations

import ast
import functools
import math
import re
from typing import Callable

import sympy as sp

from ..errors import ParseError
from .candidate import X, Candidate, beta_symbol
from .registry import CALLABLE, lookup

__all__ = ["parse", "MAX_LENGTH", "MAX_DEPTH", "FLOAT32_MAX"]

MAX_LENGTH = 1000  # characters: a real activation is a few dozen
MAX_DEPTH = 40  # nesting of the expression tree
#: x**e with |e| above this is an overflow, not an activation. Nested powers multiply — (a**m)**n
#: is a**(m·n), and sympy merges it so — and the rule bounds the product along every nesting, so an
#: accepted expression is at most a polynomial of degree 16 in its parts: its expansion, derivative
#: and compiled form stay small (work and memory bounded with MAX_LENGTH).
MAX_EXPONENT = 16.0
#: The largest float32: a candidate trains in float32, so a constant beyond it is inf there.
FLOAT32_MAX = 3.4028234663852886e38
_BETA = re.compile(r"^(beta|β)(\d{0,3})$")
_CONSTANTS = {"pi": sp.pi, "π": sp.pi, "E": sp.E}
# On a constant the safe domain is not needed, and sympy's own text (sqrt(2), log(2)) must read
# back as the number it printed: √ and log of a positive constant are exact.
_EXACT_ON_CONSTANTS = {"sqrt": sp.sqrt, "log": sp.log}
#: Associative binary operators that also take more arguments, as sympy's Min and Max do.
_VARIADIC = frozenset({"min", "max"})


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.betas: dict[str, float] = {}
        self._fresh = 0

    def fail(self, what: str) -> ParseError:
        return ParseError(f"cannot parse {self.text!r}: {what}")

    def new_beta(self, init: float) -> sp.Symbol:
        """A fresh β for an operator that brings its own (scale(x), swish(x), rbf(a, b) …)."""
        while f"beta{self._fresh}" in self.betas:
            self._fresh += 1
        name = f"beta{self._fresh}"
        self.betas[name] = init
        return beta_symbol(name)

    def build(self, node: ast.AST, depth: int = 0) -> sp.Expr:
        if depth > MAX_DEPTH:
            raise self.fail(f"nested deeper than {MAX_DEPTH} levels")
        handler: Callable[[ast.AST, int], sp.Expr] | None = getattr(
            self, f"_{type(node).__name__}", None
        )
        if handler is None:
            raise self.fail(f"{_describe(node)} is not allowed in an activation expression "
                            "(allowed: numbers, x, beta, operator calls, + - * / ** ^)")
        return handler(node, depth + 1)

    def _Expression(self, node: ast.Expression, depth: int) -> sp.Expr:
        return self.build(node.body, depth)

    def _Constant(self, node: ast.Constant, depth: int) -> sp.Expr:
        v = node.value
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.fail(f"the constant {v!r} is not a number")
        if not math.isfinite(float(v)) or abs(v) > 1e6:
            raise self.fail(f"the constant {v!r} is out of range (|c| ≤ 1e6)")
        return sp.Integer(v) if isinstance(v, int) else sp.Float(v)

    def _Name(self, node: ast.Name, depth: int) -> sp.Expr:
        name = node.id
        if name.startswith("__"):
            raise self.fail(f"the name {name!r} is not allowed")
        if name == "x":
            return X
        if name in _CONSTANTS:
            return _CONSTANTS[name]
        m = _BETA.match(name)
        if m:
            canonical = "beta" + m.group(2)
            self.betas.setdefault(canonical, 1.0)
            return beta_symbol(canonical)
        hint = " (it is an operator: call it, e.g. {0}(x))".format(name) if name in CALLABLE else ""
        raise self.fail(f"unknown name {name!r}{hint}; the input is 'x', trainable constants are "
                        "'beta', 'beta1', …")

    def _UnaryOp(self, node: ast.UnaryOp, depth: int) -> sp.Expr:
        operand = self.build(node.operand, depth)
        if isinstance(node.op, ast.USub):
            return -operand
        if isinstance(node.op, ast.UAdd):
            return operand
        raise self.fail(f"the operator {type(node.op).__name__} is not allowed")

    def _BinOp(self, node: ast.BinOp, depth: int) -> sp.Expr:
        left, right = self.build(node.left, depth), self.build(node.right, depth)
        op = node.op
        if isinstance(op, ast.Add):
            return left + right
        if isinstance(op, ast.Sub):
            return left - right
        if isinstance(op, ast.Mult):
            return left * right
        if isinstance(op, ast.Div):
            if right.is_zero:
                raise self.fail("division by zero")
            return left / right
        if isinstance(op, ast.Pow):
            if not right.is_number or not right.is_real:
                raise self.fail("an exponent must be a number (use exp(...) for e^f(x))")
            if abs(float(right)) > MAX_EXPONENT:
                raise self.fail(f"the exponent {right} is out of range (|e| ≤ {MAX_EXPONENT:g})")
            if left.is_number and abs(float(left)) > 1e6:
                raise self.fail("the base of a constant power is out of range")
            power = _power(left) * abs(float(right))
            if power > MAX_EXPONENT:
                raise self.fail(f"nested powers raise x to the power {power:g}, out of range (the exponents "
                                f"along a nesting multiply: |m·n| ≤ {MAX_EXPONENT:g})")
            return left**right
        raise self.fail(f"the operator {type(op).__name__} is not allowed")

    def _Call(self, node: ast.Call, depth: int) -> sp.Expr:
        if not isinstance(node.func, ast.Name):
            raise self.fail(f"{_describe(node.func)} cannot be called; only operator names can")
        if node.keywords:
            raise self.fail("keyword arguments are not allowed")
        name = node.func.id
        if name.startswith("__"):
            raise self.fail(f"the name {name!r} is not allowed")
        try:
            op = lookup(name)
        except ParseError as exc:
            raise type(exc)(f"cannot parse {self.text!r}: {exc}") from None
        n = len(node.args)
        if n != op.arity and not (op.name in _VARIADIC and n > op.arity):
            raise self.fail(f"{op.name} takes {op.arity} argument{'s' * (op.arity > 1)}, got {n}")
        args = [self.build(a, depth) for a in node.args]
        if n > op.arity:  # sympy flattens min(0, min(x, y)) to Min(0, x, y), and prints it so
            return functools.reduce(op.build, args)
        betas = [self.new_beta(init) for init in op.betas]
        exact = _EXACT_ON_CONSTANTS.get(op.name)
        if exact is not None and args[0].is_number and args[0].is_positive:
            return exact(args[0])
        return op.build(*args, *betas)


def _power(expr: sp.Expr) -> float:
    """The largest product of |exponents| along any path of nested powers in ``expr`` (1 if none):
    what a new exponent multiplies. Constant parts do not count."""
    if not expr.free_symbols:
        return 1.0
    inner = max((_power(a) for a in expr.args if isinstance(a, sp.Expr)), default=1.0)
    if isinstance(expr, sp.Pow) and expr.exp.is_number:
        return max(1.0, abs(float(expr.exp))) * inner
    return inner


def _describe(node: ast.AST) -> str:
    kinds = {
        ast.Attribute: "attribute access", ast.Subscript: "subscripting", ast.Lambda: "a lambda",
        ast.Compare: "a comparison", ast.BoolOp: "a boolean operator", ast.IfExp: "an if-else",
        ast.Starred: "unpacking", ast.JoinedStr: "an f-string", ast.List: "a list",
        ast.Tuple: "a tuple", ast.Dict: "a dict", ast.Set: "a set", ast.NamedExpr: "assignment",
        ast.ListComp: "a comprehension", ast.GeneratorExp: "a comprehension",
        ast.Await: "await", ast.Slice: "a slice",
    }
    return kinds.get(type(node), type(node).__name__)


def parse(text: str) -> Candidate:
    """Parse an expression such as ``"x*sigmoid(beta*x)"`` into a :class:`Candidate`.

    Raises :class:`~actsearch.errors.ParseError` (one clear line) for anything else. Never
    evaluates Python.
    """
    if not isinstance(text, str):
        raise ParseError(f"an expression must be text, not {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise ParseError(f"the expression is {len(text)} characters long (at most {MAX_LENGTH})")
    if not text.strip():
        raise ParseError("the expression is empty")
    if "\x00" in text:
        raise ParseError("the expression contains a NUL character")
    builder = _Builder(text)
    try:
        # ^ means power in maths; Python would read it as xor, with the wrong precedence.
        tree = ast.parse(text.strip().replace("^", "**"), mode="eval")
    except SyntaxError as exc:
        raise ParseError(f"cannot parse {text!r}: {exc.msg}") from None
    except (ValueError, RecursionError, MemoryError, OverflowError) as exc:
        raise ParseError(f"cannot parse {text!r}: {type(exc).__name__}") from None
    try:
        expr = builder.build(tree)
    except ParseError:
        raise
    except (RecursionError, MemoryError, OverflowError, ValueError, TypeError, ZeroDivisionError) as exc:
        raise ParseError(f"cannot parse {text!r}: {exc or type(exc).__name__}") from None
    if not isinstance(expr, sp.Expr) or expr.has(sp.zoo, sp.nan, sp.oo, -sp.oo, sp.I):
        raise ParseError(f"cannot parse {text!r}: it is not a finite real function of x")
    if _power(expr) > MAX_EXPONENT:  # sympy merged powers of one base: x**16*x**16 is x**32
        raise ParseError(f"cannot parse {text!r}: it raises x to the power {_power(expr):g}, out of range "
                         f"(|e| ≤ {MAX_EXPONENT:g}, exponents of nested or merged powers counted together)")
    _check_constants(expr, text)
    return Candidate(expr, builder.betas, source=text)


def _check_constants(expr: sp.Expr, text: str) -> None:
    """Every constant part (a subtree without x or β) must be a finite float32 number: exp(999999)
    parses as a number, but in float32 — what the candidate trains in and prints to — it is inf."""
    walk = sp.preorder_traversal(expr)
    for sub in walk:
        if sub.free_symbols or not isinstance(sub, sp.Expr):
            continue
        walk.skip()  # a constant's own parts need no second look
        try:
            value = complex(sp.N(sub, 17))
        except (OverflowError, ValueError, TypeError, ZeroDivisionError, RecursionError):
            value = complex(math.inf)
        if not (math.isfinite(value.real) and abs(value.real) <= FLOAT32_MAX):
            raise ParseError(f"cannot parse {text!r}: the constant {_short(sub)} is not a finite float32 number "
                             f"(|c| ≤ {FLOAT32_MAX:.3g}); write the function with constants in range")


def _short(e: sp.Expr) -> str:
    s = str(e)
    return s if len(s) <= 40 else s[:37] + "…"
