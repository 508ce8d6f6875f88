"""Activations by name, and what a model accepts as ``activation=``.

:func:`get_activation` builds a registered activation's module twin by name (the registry,
:mod:`actsearch.expressions.registry`, holds one row per function; timm's layout of function +
module lives in :mod:`actsearch.expressions.baselines`). Modules are applied to tensors laid out
as (N, C, ...): a per-channel parameter lives on dim 1. Names are case-insensitive and '-' == '_';
an unknown name raises :class:`~actsearch.errors.UnknownActivationError` with a "did you mean ..."
hint rather than timm's bare KeyError. :func:`make_activation` also takes expressions, candidates,
modules, classes and factories, so baselines and discovered activations share one interface.
"""
from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Union

from torch import nn

from ..errors import UnknownActivationError, did_you_mean
from .baselines import (
    ELU, GELU, SELU, GELUSigmoid, GELUTanh, Hardtanh, HardThreshold, Identity, LeakyReLU, Maxout,
    MaxoutActivation, Mish, PReLU, ReLU, ReLU6, Sigmoid, SiLU, Softplus, Softsign, Swish, Tanh,
)
from .parser import parse
from .registry import ACTIVATIONS, canonical_name

__all__ = [
    "get_activation", "make_activation", "list_activations", "describe_activations",
    "resolve_activation_name", "activation_hint", "ActivationSpec",
    # the module twins (their functions are in actsearch.expressions.baselines)
    "ELU", "GELU", "GELUSigmoid", "GELUTanh", "HardThreshold", "Hardtanh", "Identity", "LeakyReLU",
    "Maxout", "MaxoutActivation", "Mish", "PReLU", "ReLU", "ReLU6", "SELU", "Sigmoid", "SiLU",
    "Softplus", "Softsign", "Swish", "Tanh",
]

ActivationSpec = Union[str, nn.Module, type, Callable[..., Any]]

#: The registry's name for a spelling (alias, casing), or None: the public name of the lookup.
resolve_activation_name = canonical_name


def list_activations() -> list[str]:
    """Canonical names of the registered activations, sorted (aliases left out)."""
    return sorted(ACTIVATIONS)


def describe_activations() -> list[tuple[str, str]]:
    """(name, one-line formula) for every registered activation, sorted by name."""
    return [(name, ACTIVATIONS[name].formula) for name in list_activations()]


def get_activation(name: str, num_channels: int | None = None, **kwargs: Any) -> nn.Module:
    """A fresh baseline activation module by name ("did you mean" on a typo).

    ``num_channels`` sizes per-channel parameters (prelu, swish, maxout); without it they are one
    shared scalar. ``kwargs`` go to the module (``negative_slope=`` for leaky_relu, ``k=`` for
    maxout).
    """
    canonical = canonical_name(name)
    if canonical is None:
        raise UnknownActivationError(
            f"unknown activation {name!r}{activation_hint(name)} (known: {', '.join(list_activations())})")
    return ACTIVATIONS[canonical].build_module(num_channels, **kwargs)


def activation_hint(name: str) -> str:
    """"; did you mean …?" over the registered names and aliases (an alias stands for its name)."""
    spellings = [n for a in ACTIVATIONS.values() for n in (a.name, *a.aliases)]
    return did_you_mean(name.strip().lower().replace("-", "_"), spellings,
                        canonical=lambda c: canonical_name(c) or c)


def make_activation(spec: ActivationSpec, num_channels: int | None = None) -> nn.Module:
    """Turn what a user passes as ``activation=`` into a fresh module for one layer.

    Accepts a registered name, an expression in the operator grammar ("x*sigmoid(beta*x)"),
    a candidate (anything with ``to_module``), an ``nn.Module`` instance (deep-copied so layers do
    not share parameters), an ``nn.Module`` class, or a factory ``f(num_channels) -> nn.Module``.
    """
    if isinstance(spec, str):
        canonical = canonical_name(spec)
        if canonical is not None:  # before the expression test: "leaky-relu" is a name
            return ACTIVATIONS[canonical].build_module(num_channels)
        if any(ch in spec for ch in "()*+-/^ ") or spec.strip() == "x":
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
