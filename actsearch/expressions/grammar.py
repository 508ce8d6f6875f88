"""Search spaces: the core-unit grammar of Ramachandran, Zoph & Le (2017), §3.

A core unit is b(u1(a1), u2(a2)): two unary operators applied to inputs a1, a2, combined by a
binary operator. The inputs of unit i are the pre-activation ``x`` or the outputs ``u1 … u(i−1)``
of earlier units; the activation is the output of the last unit. A space file (TOML, see
``search_spaces/``) names the number of units and the allowed operators. One unit (25·25·10 =
6,250 structures with the paper's operators) is small enough to enumerate; more need a sampler.

The grammar is exposed three ways: :meth:`Space.count` (exact size), :meth:`Space.enumerate`
(every structure once) and :meth:`Space.suggest` (define-by-run: one categorical choice per slot,
which any Optuna sampler can drive).
"""
from __future__ import annotations

import itertools
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..errors import ActsearchError, SpaceError
from ..paths import read_text
from .candidate import Candidate
from .ops import OPS, PAPER_BINARY, PAPER_UNARY
from .parser import parse
from .registry import lookup

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Space", "load_space", "list_spaces", "SPACES_DIR", "DEFAULT_SPACE"]

#: Where the shipped space files live (the repository's ``search_spaces/``; installed alongside).
SPACES_DIR = Path(__file__).resolve().parents[2] / "search_spaces"
_PACKAGED_DIR = Path(__file__).resolve().parents[1] / "search_spaces"
DEFAULT_SPACE = "paper-1"
MAX_UNITS = 4


@dataclass(frozen=True)
class Space:
    """A grammar of activation functions (immutable; load one with :func:`load_space`)."""

    name: str
    core_units: int
    unary: tuple[str, ...]
    binary: tuple[str, ...]
    inputs: tuple[tuple[str, ...], ...]  # per unit: what its unary slots may read
    beta_trainable: bool = True
    beta_per_channel: bool = True
    description: str = ""
    path: str | None = field(default=None, compare=False)

    # ---- the define-by-run description -----------------------------------------------------
    def slots(self) -> list[tuple[str, tuple[str, ...]]]:
        """(parameter name, choices) in sampling order — one categorical per slot."""
        out: list[tuple[str, tuple[str, ...]]] = []
        for i in range(1, self.core_units + 1):
            ins = self.inputs[i - 1]
            for s in (1, 2):
                if len(ins) > 1:
                    out.append((f"u{i}_in{s}", ins))
                out.append((f"u{i}_unary{s}", self.unary))
            out.append((f"u{i}_binary", self.binary))
        return out

    def count(self) -> int:
        """The exact number of structures (before equivalent ones are merged)."""
        return math.prod(len(choices) for _, choices in self.slots())

    def enumerate(self) -> Iterator[dict[str, str]]:
        """Every structure once, as a choices dict (feed it to :meth:`build`)."""
        names = [n for n, _ in self.slots()]
        for combo in itertools.product(*(c for _, c in self.slots())):
            yield dict(zip(names, combo))

    def suggest(self, trial: Any) -> Candidate:
        """Sample a candidate with an Optuna trial (``suggest_categorical`` per slot)."""
        return self.build({n: trial.suggest_categorical(n, list(c)) for n, c in self.slots()})

    # ---- structure -> candidate ------------------------------------------------------------
    def expression_text(self, choices: Mapping[str, str]) -> str:
        """The structure as text in operator names, e.g. ``max(x, sigmoid(x))``."""
        outputs: dict[str, str] = {"x": "x"}
        for i in range(1, self.core_units + 1):
            ins = self.inputs[i - 1]
            args = []
            for s in (1, 2):
                source = choices.get(f"u{i}_in{s}", ins[0])
                op = choices[f"u{i}_unary{s}"]
                args.append(_call(op, outputs[source]))
            outputs[f"u{i}"] = f"{choices[f'u{i}_binary']}({args[0]}, {args[1]})"
        return outputs[f"u{self.core_units}"]

    def build(self, choices: Mapping[str, str]) -> Candidate:
        cand = parse(self.expression_text(choices))
        cand.structure = dict(choices)
        cand.core_units = self.core_units
        cand.beta_trainable = self.beta_trainable
        cand.beta_per_channel = self.beta_per_channel
        return cand

    def summary(self) -> str:
        return (f"{self.name}: {self.core_units} core unit(s), {len(self.unary)} unary × "
                f"{len(self.binary)} binary ops, {self.count():,} structures")


def _call(op: str, arg: str) -> str:
    return arg if op == "x" else f"{op}({arg})"


# ---- loading ---------------------------------------------------------------------------------
def list_spaces() -> list[Path]:
    for d in (SPACES_DIR, _PACKAGED_DIR):
        if d.is_dir():
            return sorted(d.glob("*.toml"))
    return []


def _resolve(name_or_path: str | Path) -> Path:
    try:
        p = Path(name_or_path)
        if p.is_file():
            return p
        for d in (SPACES_DIR, _PACKAGED_DIR):
            candidate = d / f"{name_or_path}.toml"
            if candidate.is_file():
                return candidate
    except (OSError, ValueError) as exc:  # a NUL byte, a name too long …
        raise SpaceError(f"no space file {str(name_or_path)[:200]!r} ({getattr(exc, 'strerror', None) or exc})") from None
    known = ", ".join(f.stem for f in list_spaces())
    raise SpaceError(f"no space file {str(name_or_path)!r} (a path, or one of: {known})")


def load_space(name_or_path: str | Path = DEFAULT_SPACE) -> Space:
    """Load a space file by path or by the name of a shipped space (``paper-1``, ``tiny`` …)."""
    path = _resolve(name_or_path)
    where = str(path)
    text = read_text(path, "space file", limit=1 << 20)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpaceError(f"{where}: not valid TOML: {exc}") from None
    return space_from_dict(data, where)


def space_from_dict(data: Mapping[str, Any], where: str = "<space>") -> Space:
    """Validate a parsed space file; every error names the file and the field."""

    def fail(fieldname: str, what: str) -> SpaceError:
        return SpaceError(f"{where}: field '{fieldname}': {what}")

    known = {"name", "description", "core_units", "unary", "binary", "beta", "units"}
    extra = set(data) - known
    if extra:
        raise fail(sorted(extra)[0], f"unknown field (allowed: {', '.join(sorted(known))})")
    name = data.get("name", Path(where).stem)
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "must be a non-empty string")
    units = data.get("core_units", 1)
    if isinstance(units, bool) or not isinstance(units, int) or not 1 <= units <= MAX_UNITS:
        raise fail("core_units", f"must be an integer from 1 to {MAX_UNITS}, got {units!r}")
    ops = {}
    for kind, arity, paper in (("unary", 1, PAPER_UNARY), ("binary", 2, PAPER_BINARY)):
        value = data.get(kind, "paper")
        if value == "paper":
            value = list(paper)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise fail(kind, 'must be a list of operator names or "paper"')
        if not value:
            raise fail(kind, "is empty: a space needs at least one operator")
        try:
            names = tuple(dict.fromkeys(lookup(v, arity=arity).name for v in value))
        except ActsearchError as exc:
            raise fail(kind, str(exc)) from None
        ops[kind] = names
    beta = data.get("beta", {})
    if not isinstance(beta, dict):
        raise fail("beta", "must be a table with 'trainable' and 'per_channel'")
    for key in beta:
        if key not in ("trainable", "per_channel"):
            raise fail(f"beta.{key}", "unknown field (allowed: trainable, per_channel)")
        if not isinstance(beta[key], bool):
            raise fail(f"beta.{key}", f"must be true or false, got {beta[key]!r}")
    inputs = _inputs(data.get("units"), units, fail)
    description = data.get("description", "")
    if not isinstance(description, str):
        raise fail("description", "must be a string")
    return Space(
        name=name.strip(), core_units=units, unary=ops["unary"], binary=ops["binary"],
        inputs=inputs, beta_trainable=beta.get("trainable", True),
        beta_per_channel=beta.get("per_channel", True), description=description, path=where,
    )


def _inputs(spec: Any, units: int, fail: Any) -> tuple[tuple[str, ...], ...]:
    """Per-unit input wiring: by default unit i reads x or any earlier unit's output."""
    default = tuple(tuple(["x"] + [f"u{j}" for j in range(1, i)]) for i in range(1, units + 1))
    if spec is None:
        return default
    if not isinstance(spec, list) or len(spec) != units or not all(isinstance(u, dict) for u in spec):
        raise fail("units", f"must be a list of {units} tables ([[units]]), one per core unit")
    out = []
    for i, unit in enumerate(spec, start=1):
        ins = unit.get("inputs")
        if not isinstance(ins, list) or not ins or not all(isinstance(v, str) for v in ins):
            raise fail(f"units[{i}].inputs", 'must be a non-empty list such as ["x", "u1"]')
        for v in ins:
            if v == "x":
                continue
            if not (v.startswith("u") and v[1:].isdigit() and v == f"u{int(v[1:])}" and int(v[1:]) >= 1):
                raise fail(f"units[{i}].inputs", f"{v!r} is neither 'x' nor a unit like 'u1' (units count from 1)")
            if int(v[1:]) >= i:
                raise fail(f"units[{i}].inputs", f"unit {i} reads {v}: that is a cycle "
                           "(a unit may read only x and earlier units)")
        out.append(tuple(dict.fromkeys(ins)))
    return tuple(out)


assert all(OPS[n].arity == 1 for n in PAPER_UNARY)
