"""sympy -> torch: print a candidate as PyTorch source, and build modules from that source.

Like sympy's own printers, the target language is a table (sympy class -> torch template, taken
from the operator table) plus a few ``_print_<Class>`` methods for arithmetic. The source is the
artefact: :func:`module_source` is what ``actsearch export`` writes, and the in-memory module is
that same source compiled under a unique filename registered with ``linecache`` (as
``sympy.lambdify`` does), so a traceback inside a candidate shows the generated line; the entry
leaves ``linecache`` when the generated module is garbage-collected (a long search compiles
thousands).
"""
from __future__ import annotations

import itertools
import keyword
import math
import linecache
import re
import weakref
from types import ModuleType
from typing import Callable, Mapping, Protocol, Sequence

import sympy as sp

from ...errors import CompileError
from ..functions import EPS, sigmoid, softplus
from ..ops import torch_forms

__all__ = ["Printable", "TorchPrinter", "print_torch", "module_source", "load_source", "python_name",
           "compiled_function"]


class Printable(Protocol):
    """What the printer needs of an activation (:class:`actsearch.expressions.Candidate` has it)."""

    expr: sp.Expr
    betas: Mapping[str, float]  # β name -> initial value, in order
    x: sp.Symbol
    beta_trainable: bool
    beta_per_channel: bool

    @property
    def text(self) -> str: ...

    @property
    def latex(self) -> str: ...


_FORMS = torch_forms()
# Products that have a fused native kernel, with the function each form contains; see
# TorchPrinter._native.
_NATIVE_FORMS: list[tuple[str, Callable[[sp.Expr], sp.Expr], type]] = [
    ("F.silu({0})", lambda a: a * sigmoid(a), sigmoid),
    ("F.mish({0})", lambda a: a * sp.tanh(softplus(a)), sp.tanh),
    ("F.gelu({0})", lambda a: a * (1 + sp.erf(a / sp.sqrt(2))) / 2, sp.erf),
]
_counter = itertools.count()


class TorchPrinter:
    """Prints a sympy expression in ``x`` and β symbols as a torch expression string."""

    def __init__(self, symbol_names: dict[sp.Symbol, str], natives: bool = True) -> None:
        self.names = symbol_names
        self.natives = natives  # False: print every primitive as written (for reference checks)

    def doprint(self, expr: sp.Expr) -> str:
        return self._print(expr)

    def _print(self, e: sp.Expr) -> str:
        if e.is_Number or (e.is_number and not e.free_symbols):
            return self._number(e)
        if e.is_Symbol:
            try:
                return self.names[e]
            except KeyError:
                raise CompileError(f"unknown symbol {e} in the expression") from None
        method = getattr(self, f"_print_{type(e).__name__}", None)
        if method is not None:
            return method(e)
        template = _FORMS.get(type(e))
        if template is None:
            raise CompileError(f"no torch form for {type(e).__name__} (in {e})")
        return template.format(*(self._print(a) for a in e.args))

    @staticmethod
    def _number(e: sp.Expr) -> str:
        try:
            value = complex(sp.N(e, 17))
        except (OverflowError, ValueError, TypeError) as exc:
            raise CompileError(f"the constant {e} has no float value ({type(exc).__name__})") from None
        if value.imag != 0:
            raise CompileError(f"complex constant {e} in the expression")
        if not math.isfinite(value.real):  # `inf` / `nan` would be bare names in the source
            raise CompileError(f"the constant {e} is not finite ({value.real})")
        return repr(float(value.real))

    def _print_Add(self, e: sp.Add) -> str:
        # x-dependent, positive terms first: "x - cos(x)" rather than "-cos(x) + x".
        terms = sorted(sp.Add.make_args(e), key=lambda t: (t.is_number, _negative(t), str(t)))
        out = self._print(terms[0])
        for t in terms[1:]:
            if _negative(t):
                out += f" - {self._paren(-t, sp.Mul)}"
            else:
                out += f" + {self._paren(t, sp.Add)}"
        return out

    def _print_Mul(self, e: sp.Mul) -> str:
        factors = sp.Mul.make_args(e)
        coeff = sp.Mul(*[f for f in factors if f.is_number])
        native = self._native(e, factors)
        if native is not None:
            return native
        if coeff == -1:
            return f"-{self._paren(-e, sp.Pow)}"
        num: list[str] = [] if coeff == 1 else [self._number(coeff)]
        den: list[sp.Expr] = []
        for f in factors:
            if f.is_number:
                continue
            if f.is_Pow and f.exp.is_Number and f.exp < 0:
                den.append(f.base if f.exp == -1 else sp.Pow(f.base, -f.exp))
            else:
                num.append(self._paren(f, sp.Mul))
        if coeff.is_Number and coeff < 0 and coeff != -1:
            num[0] = f"({num[0]})"
        top = " * ".join(num) or "1.0"
        if not den:
            return top
        bottom = " * ".join(self._paren(f, sp.Mul) for f in den)
        return f"{top} / ({bottom})" if len(den) > 1 else f"{top} / {self._paren(den[0], sp.Pow)}"

    def _native(self, e: sp.Expr, factors: Sequence[sp.Expr]) -> str | None:
        """a·σ(a), a·tanh(softplus(a)), a·Φ(a) → one fused native kernel (F.silu, F.mish, F.gelu).

        A peephole rewrite: eager PyTorch runs each elementwise op as its own kernel (and keeps
        its output for backward), so x*sigmoid(x) costs ~1.4-2.4x F.silu forward+backward. A
        hand-written autograd.Function with the symbolic derivative was slower still (measured).
        """
        if not self.natives:
            return None
        # e / form(a) can only be a number if e has the form's function to cancel it: without
        # it, skip the division (sympy's slowest step when a search keys thousands of structures).
        forms = [(template, form) for template, form, head in _NATIVE_FORMS if e.has(head)]
        for a in factors:
            if a.is_number:
                continue
            for template, form in forms:
                ratio = e / form(a)  # sympy cancels equal factors: a number iff e = c·form(a)
                if ratio.is_number and ratio != 0:
                    call = template.format(self._print(a))
                    return call if ratio == 1 else f"{self._number(ratio)} * {call}"
        return None

    def _print_Pow(self, e: sp.Pow) -> str:
        base, exp = e.args
        b = self._paren(base, sp.Pow)
        if exp == 2:
            return f"torch.square({self._print(base)})"
        if exp == sp.Rational(1, 2):
            return f"torch.sqrt({self._print(base)})"
        if exp == -1:
            return f"1.0 / {b}"
        if exp.is_Number:
            return f"{b} ** {self._number(exp)}"
        return f"torch.pow({self._print(base)}, {self._print(exp)})"

    def _fold(self, e: sp.Expr, torch_fn: str, clamp: str) -> str:
        """n-ary Max/Min as nested torch.maximum; a constant argument becomes a clamp.

        max(a, 0) prints as ``torch.relu``: its gradient at the tie is 0 (torch's convention),
        where ``clamp_min`` would pass 1, and max(x,0) + e^{min(x,0)} − 1 (ELU) would get slope 2
        at 0 instead of 1.
        """
        consts = [a for a in e.args if a.is_number]
        others = [self._print(a) for a in e.args if not a.is_number]
        out = others[0]
        for o in others[1:]:
            out = f"{torch_fn}({out}, {o})"
        for c in consts:
            if clamp == "clamp_min" and c == 0:
                out = f"torch.relu({out})"
            else:
                out = f"torch.{clamp}({out}, {self._number(c)})"
        return out

    def _print_Max(self, e: sp.Max) -> str:
        return self._fold(e, "torch.maximum", "clamp_min")

    def _print_Min(self, e: sp.Min) -> str:
        # min(max(a, lo), hi) is hardtanh (ReLU6 …): torch's form has gradient 0 at both ends,
        # as F.hardtanh / F.relu6 do; nested clamps would pass 1 at the ends.
        if len(e.args) == 2:
            hi = next((a for a in e.args if a.is_number), None)
            inner = next((a for a in e.args if isinstance(a, sp.Max)), None)
            if hi is not None and inner is not None and len(inner.args) == 2:
                lo = next((a for a in inner.args if a.is_number), None)
                arg = next((a for a in inner.args if not a.is_number), None)
                if lo is not None and arg is not None and bool(lo < hi):
                    return (f"F.hardtanh({self._print(arg)}, {self._number(lo)}, "
                            f"{self._number(hi)})")
        return self._fold(e, "torch.minimum", "clamp_max")

    def _print_safediv(self, e: sp.Expr) -> str:
        a, b = e.args
        if b.is_number:  # a constant denominator: move it away from 0 now
            c = float(sp.N(b))
            return f"{self._paren(a, sp.Mul)} / {c + (EPS if c >= 0 else -EPS)!r}"
        return _FORMS[type(e)].format(self._print(a), self._print(b))

    def _print_sinc(self, e: sp.Expr) -> str:
        # The table's template divides its argument by π: a sum must be parenthesised first.
        return _FORMS[type(e)].format(self._paren(e.args[0], sp.Mul))

    def _paren(self, e: sp.Expr, outer: type) -> str:
        s = self._print(e)
        needs = (
            e.is_Add
            or (outer in (sp.Mul, sp.Pow) and e.is_Mul)
            or (outer is sp.Pow and e.is_Pow)
            or (e.is_Number and e < 0)
            or s.startswith("-")
        )
        return f"({s})" if needs else s


def _negative(t: sp.Expr) -> bool:
    coeff = sp.Mul(*[f for f in sp.Mul.make_args(t) if f.is_number])
    return bool(coeff.is_real and coeff.is_negative)


def print_torch(
    expr: sp.Expr, beta_names: Sequence[str], x: sp.Symbol, natives: bool = True
) -> str:
    names = {x: "x"}
    names.update({s: s.name for s in expr.free_symbols if s.name in beta_names})
    return TorchPrinter(names, natives).doprint(expr)


_PRELUDE = f'''\
import math

import torch
import torch.nn.functional as F
from torch import nn

#: ε of the safe primitives (log(|x|+ε), √(|x|+ε), x1/(x2±ε)): bounds the slope near 0.
EPS = {EPS!r}


def _per_channel(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-channel (C,) parameter so it broadcasts over x laid out (N, C, ...).

    An input whose channel count (dim 1; dim 0 of a 1-D input) is not C is refused, as
    ``nn.PReLU`` refuses it: broadcasting would silently widen a 1-channel input to C channels.
    """
    if p.dim() == 0:
        return p
    dim = 1 if x.dim() >= 2 else 0
    if x.dim() == 0 or x.shape[dim] != p.shape[0]:
        raise ValueError(
            f"this activation was built with num_channels={{p.shape[0]}} but got an input with "
            f"{{x.shape[dim] if x.dim() > 0 else 0}} channels on dim {{dim}} (shape {{list(x.shape)}})"
        )
    shape = [1] * x.dim()
    shape[dim] = -1
    return p.view(shape)
'''


def python_name(text: str, *, cls: bool = False) -> str:
    """A safe Python identifier from arbitrary text (names in exported code are never raw input)."""
    words = re.findall(r"[A-Za-z0-9]+", text) or ["activation"]
    if cls:
        name = "".join(w[:1].upper() + w[1:] for w in words)
    else:
        name = "_".join(w.lower() for w in words)
    if name[0].isdigit() or keyword.iskeyword(name):
        name = ("A" if cls else "f_") + name
    return name[:60]


def _docstring(text: str, indent: str) -> str:
    """Text as a triple-quoted literal that cannot close early or smuggle code."""
    safe = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    # Control characters (NUL makes the file uncompilable) become escapes inside the literal.
    safe = re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", lambda m: f"\\x{ord(m.group()):02x}", safe)
    lines = safe.strip().splitlines() or [""]
    if len(lines) == 1:
        return f'{indent}"""{lines[0]}"""'
    body = "\n".join((indent + ln) if ln else "" for ln in lines[1:])
    return f'{indent}"""{lines[0]}\n{body}\n{indent}"""'


def _function_source(cand: Printable, fn: str, doc: str) -> str:
    """``def fn(x, *betas)`` of one candidate, β defaulting to their initial values."""
    body = print_torch(cand.expr, list(cand.betas), cand.x)
    beta_args = "".join(f", {b}: torch.Tensor | float = {v!r}" for b, v in cand.betas.items())
    return f'''

def {fn}(x: torch.Tensor{beta_args}) -> torch.Tensor:
{_docstring(doc, "    ")}
    return {body}
'''


def _activation_source(cand: Printable, name: str, doc: str) -> str:
    fn = python_name(name)
    cls = python_name(name, cls=True)
    shape = "(num_channels,)" if cand.beta_per_channel else "()"
    if cand.beta_trainable:
        params = "".join(
            f"\n        self.{b} = nn.Parameter(torch.full(shape, {v!r}))"
            for b, v in cand.betas.items()
        )
    else:  # fixed β: buffers follow .to(device) but are not trained
        params = "".join(
            f"\n        self.register_buffer({b!r}, torch.full(shape, {v!r}))"
            for b, v in cand.betas.items()
        )
    init = (
        f"\n        shape = () if num_channels is None else {shape}" + params
        if cand.betas
        else "\n        self.num_channels = num_channels"
    )
    # forward repeats the function's body rather than calling it: with β as tensors only and ε
    # as a local, torch.jit.script compiles it (it reads no global float and no Tensor | float).
    body = print_torch(cand.expr, list(cand.betas), cand.x)
    lines = [f"{b} = _per_channel(self.{b}, x)" for b in cand.betas]
    if re.search(r"\bEPS\b", body):
        lines.append(f"EPS = {EPS!r}")
    lines.append(f"return {body}")
    forward = "".join(f"\n        {line}" for line in lines)
    fdoc = f"f(x) = {cand.text}\n\nLaTeX: {cand.latex}\n{doc}"
    cdoc = (f"The activation f(x) = {cand.text} as a module; β per channel when num_channels is given.\n\n"
            "``inplace`` is accepted for timm's and torchvision's ``act_layer(inplace=True)`` and ignored: "
            "the input is never modified." + (chr(10) + doc if doc else ""))
    return _function_source(cand, fn, fdoc) + f'''

class {cls}(nn.Module):
{_docstring(cdoc, "    ")}

    def __init__(self, num_channels: int | None = None, inplace: bool = False) -> None:
        super().__init__(){init}

    def forward(self, x: torch.Tensor) -> torch.Tensor:{forward}
'''


def module_source(
    cands: Sequence[Printable],
    names: Sequence[str] | None = None,
    docs: Sequence[str] | None = None,
    header: str = "Activation functions found by actsearch.",
) -> str:
    """Python source of a module with one function and one ``nn.Module`` per candidate.

    The module needs only torch at run time. ``names`` become identifiers after sanitising and
    ``docs``/``header`` become docstrings after escaping, so no input can add code.
    """
    names = list(names or [])
    names += [f"activation_{i}" for i in range(len(names), len(cands))]
    docs = list(docs or []) + [""] * len(cands)
    # Identifiers the module binds or its methods read: an activation named "torch", "f" (class
    # F), "super" or "x" (forward's argument) would shadow one and break the file.
    taken: set[str] = {"annotations", "math", "torch", "F", "nn", "EPS", "super", "x", "self"}
    parts = [_docstring(header, "") + "\nfrom __future__ import annotations\n\n" + _PRELUDE]
    exports = []
    for cand, name, doc in zip(cands, names, docs):
        base = python_name(name)[:50]  # room for a suffix under python_name's 60-char cap
        unique = base
        for i in itertools.count(2):
            if python_name(unique) not in taken and python_name(unique, cls=True) not in taken:
                break
            unique = f"{base}_{i}"
        taken.update((python_name(unique), python_name(unique, cls=True)))
        parts.append(_activation_source(cand, unique, doc))
        exports += [python_name(unique), python_name(unique, cls=True)]
    parts.append(f"\n\n__all__ = {exports!r}\n")
    return "".join(parts)


def load_source(source: str, label: str = "candidate", name: str | None = None) -> ModuleType:
    """Execute generated source as a module registered with linecache (readable tracebacks).

    The entry is removed when the module is garbage-collected, as ``sympy.lambdify`` does for its
    functions. The module's own namespace holds the module (``__actsearch_module__``), so it lives
    as long as anything defined in it — a function, a class, an ``nn.Module`` built from that
    class — and the generated lines stay readable exactly as long as they can run. ``name`` is the
    module's ``__name__`` (an importable one, see :mod:`actsearch.expressions.generated`); by
    default the module is named after its pseudo file name and cannot be imported.
    """
    filename = f"<actsearch-{python_name(label)}-{next(_counter)}>"
    code = compile(source, filename, "exec")
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = ModuleType(name or filename)
    module.__file__ = filename
    module.__dict__["__actsearch_module__"] = module
    weakref.finalize(module, linecache.cache.pop, filename, None)
    exec(code, module.__dict__)  # noqa: S102 - source printed by us from the operator table
    return module


def compiled_function(cand: Printable) -> Callable[..., object]:
    """The function alone, f(x, *betas): what fingerprints, probes and plots evaluate — without the
    module class and the LaTeX of :func:`actsearch.expressions.generated.compiled_members` (a search keys thousands of structures)."""
    source = "from __future__ import annotations\n\n" + _PRELUDE + _function_source(cand, "activation", f"f(x) = {cand.text}")
    return load_source(source, label=cand.text[:40]).activation
