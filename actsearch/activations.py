"""Baseline activation registry: every activation of the lecture, reachable by name.

Every activation is a plain function plus an ``nn.Module`` twin (timm's layout; both live in
:mod:`actsearch._baselines`). Modules are applied to tensors laid out as (N, C, ...): a per-channel
parameter lives on dim 1. Names are case-insensitive and '-' == '_'; an unknown name raises
:class:`~actsearch.errors.UnknownActivationError` with a "did you mean ..." hint rather than
timm's bare KeyError.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Callable, Union

from torch import nn

from ._baselines import (
    GELU, ELU, SELU, GELUSigmoid, GELUTanh, Hardtanh, HardThreshold, Identity, LeakyReLU, Maxout,
    MaxoutActivation, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softplus, Swish, Tanh,
)
from .errors import UnknownActivationError

__all__ = [
    "get_activation", "make_activation", "list_activations", "describe_activations",
    "resolve_activation_name", "ActivationSpec",
    # the module twins (their functions are in actsearch._baselines)
    "ELU", "GELU", "GELUSigmoid", "GELUTanh", "HardThreshold", "Hardtanh", "Identity", "LeakyReLU",
    "Maxout", "MaxoutActivation", "Mish", "PReLU", "ReLU", "ReLU6", "SELU", "Sigmoid", "SiLU",
    "Softplus", "Swish", "Tanh",
]

# Canonical name -> (factory(num_channels, **kwargs) -> nn.Module, one-line formula). One row per
# activation, so the registry, the CLI listing and the lecture's activation zoo cannot drift apart.
_TABLE: dict[str, tuple[Callable[..., nn.Module], str]] = {
    "sigmoid": (lambda c, **kw: Sigmoid(**kw), "1 / (1 + exp(-x))"),
    "tanh": (lambda c, **kw: Tanh(**kw), "tanh(x)"),
    "relu": (lambda c, **kw: ReLU(**kw), "max(0, x)"),
    "relu6": (lambda c, **kw: ReLU6(**kw), "max(0, x) - max(0, x - 6)"),
    "leaky_relu": (lambda c, **kw: LeakyReLU(**kw), "max(0.1*x, x)"),
    "prelu": (lambda c, **kw: PReLU(c, **kw),
              "max(0, x) + alpha*min(0, x), alpha learned (init 0.25)"),
    "elu": (lambda c, **kw: ELU(**kw), "x if x > 0 else exp(x) - 1"),
    "selu": (lambda c, **kw: SELU(**kw),
             "1.0507*(x if x > 0 else 1.6733*(exp(x) - 1))"),
    "gelu": (lambda c, **kw: GELU(**kw), "x * Phi(x) = x/2 * (1 + erf(x/sqrt(2)))"),
    "gelu_tanh": (lambda c, **kw: GELUTanh(**kw),
                  "x/2 * (1 + tanh(sqrt(2/pi)*(x + 0.044715*x^3)))"),
    "gelu_sigmoid": (lambda c, **kw: GELUSigmoid(**kw), "x * sigmoid(1.702*x)"),
    "silu": (lambda c, **kw: SiLU(**kw), "x * sigmoid(x)"),
    "swish": (lambda c, **kw: Swish(c, **kw), "x * sigmoid(beta*x), beta learned (init 1)"),
    "maxout": (lambda c, **kw: MaxoutActivation(c, **kw),
               "max_j (a_j*x + b_j), j=1..k, a, b learned (init: ReLU)"),
    "hard_threshold": (lambda c, **kw: HardThreshold(**kw), "1 if x > 0 else 0 (zero gradient)"),
    "softplus": (lambda c, **kw: Softplus(**kw), "log(1 + exp(x))"),
    "identity": (lambda c, **kw: Identity(**kw), "x"),
    "hardtanh": (lambda c, **kw: Hardtanh(**kw), "max(-1, min(1, x))"),
    "mish": (lambda c, **kw: Mish(**kw), "x * tanh(softplus(x))"),
}

# name -> factory(num_channels) -> nn.Module (the skeleton's interface, kept for callers).
_REGISTRY: dict[str, Callable[..., nn.Module]] = {name: f for name, (f, _) in _TABLE.items()}

# Other spellings users type (torch's class names lower-cased, HF/timm names, the paper's names).
_ALIASES: dict[str, str] = {
    "logistic": "sigmoid",
    "relu_6": "relu6",
    "leakyrelu": "leaky_relu", "lrelu": "leaky_relu", "leaky": "leaky_relu",
    "gelu_erf": "gelu", "gelu_exact": "gelu",
    "gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelutanh": "gelu_tanh",
    "quick_gelu": "gelu_sigmoid", "gelu_quick": "gelu_sigmoid", "gelusigmoid": "gelu_sigmoid",
    "swish_1": "silu", "swish1": "silu",  # Ramachandran et al. call β = 1 "Swish-1"
    "swish_beta": "swish",
    "max_out": "maxout",
    "step": "hard_threshold", "heaviside": "hard_threshold", "hardthreshold": "hard_threshold",
    "linear": "identity", "none": "identity",
    "hard_tanh": "hardtanh",
    "soft_plus": "softplus",
}

ActivationSpec = Union[str, nn.Module, type, Callable[..., Any]]


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def resolve_activation_name(name: str) -> str | None:
    """The canonical registry name for ``name`` (an alias or any casing), or None if unknown."""
    key = _key(name)
    if key in _REGISTRY:
        return key
    return _ALIASES.get(key)


def list_activations() -> list[str]:
    """Canonical names of the registered activations, sorted (aliases left out)."""
    return sorted(_REGISTRY)


def describe_activations() -> list[tuple[str, str]]:
    """(name, one-line formula) for every registered activation, sorted by name."""
    return [(name, _TABLE[name][1]) for name in list_activations()]


def get_activation(name: str, num_channels: int | None = None, **kwargs: Any) -> nn.Module:
    """A fresh baseline activation module by name ("did you mean" on a typo).

    ``num_channels`` sizes per-channel parameters (prelu, swish, maxout); without it they are one
    shared scalar. ``kwargs`` go to the module (``negative_slope=`` for leaky_relu, ``k=`` for
    maxout).
    """
    canonical = resolve_activation_name(name)
    if canonical is None:
        key = _key(name)
        close = difflib.get_close_matches(key, [*_REGISTRY, *_ALIASES], n=3)
        close = list(dict.fromkeys(_ALIASES.get(c, c) for c in close))  # aliases -> canonical
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownActivationError(
            f"unknown activation {name!r}{hint} (known: {', '.join(list_activations())})"
        )
    return _REGISTRY[canonical](num_channels, **kwargs)


def make_activation(spec: ActivationSpec, num_channels: int | None = None) -> nn.Module:
    """Turn what a user passes as ``activation=`` into a fresh module for one layer.

    Accepts a registered name, an expression in the operator grammar ("x*sigmoid(beta*x)"),
    a candidate (anything with ``to_module``), an ``nn.Module`` instance (deep-copied so layers do
    not share parameters), an ``nn.Module`` class, or a factory ``f(num_channels) -> nn.Module``.
    """
    if isinstance(spec, str):
        canonical = resolve_activation_name(spec)
        if canonical is not None:  # before the expression test: "leaky-relu" is a name
            return _REGISTRY[canonical](num_channels)
        if any(ch in spec for ch in "()*+-/^ ") or spec.strip() == "x":
            from .parser import parse  # an expression, not a name

            return parse(spec).to_module(num_channels)
        return get_activation(spec, num_channels)
    if hasattr(spec, "to_module"):
        return spec.to_module(num_channels)
    if isinstance(spec, nn.Module):
        return copy.deepcopy(spec)
    if isinstance(spec, type) and issubclass(spec, nn.Module):
        params = inspect.signature(spec).parameters
        return spec(num_channels) if "num_channels" in params else spec()
    if callable(spec):
        out = spec(num_channels)
        if not isinstance(out, nn.Module):
            raise TypeError(f"activation factory returned {type(out).__name__}, not an nn.Module")
        return out
    raise TypeError(f"cannot make an activation from {type(spec).__name__}")
