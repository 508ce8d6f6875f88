"""Baseline activation registry (skeleton: the full registry is being filled in).

Every activation is a plain function plus an ``nn.Module`` twin (timm's layout). Modules are
applied to tensors laid out as (N, C, ...): a per-channel parameter lives on dim 1.
"""
from __future__ import annotations

import copy
import difflib
import inspect
from typing import Any, Callable, Union

import torch
from torch import nn

from .errors import UnknownActivationError

__all__ = ["get_activation", "make_activation", "list_activations", "ActivationSpec"]

# name -> factory(num_channels) -> nn.Module
_REGISTRY: dict[str, Callable[[int | None], nn.Module]] = {
    "relu": lambda c: nn.ReLU(),
    "tanh": lambda c: nn.Tanh(),
    "sigmoid": lambda c: nn.Sigmoid(),
}

ActivationSpec = Union[str, nn.Module, type, Callable[..., Any]]


def list_activations() -> list[str]:
    return sorted(_REGISTRY)


def get_activation(name: str, num_channels: int | None = None) -> nn.Module:
    """A fresh baseline activation module by name ("did you mean" on a typo)."""
    key = name.strip().lower().replace("-", "_")
    if key not in _REGISTRY:
        close = difflib.get_close_matches(key, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        raise UnknownActivationError(
            f"unknown activation {name!r}{hint} (known: {', '.join(list_activations())})"
        )
    return _REGISTRY[key](num_channels)


def make_activation(spec: ActivationSpec, num_channels: int | None = None) -> nn.Module:
    """Turn what a user passes as ``activation=`` into a fresh module for one layer.

    Accepts a registered name, an expression in the operator grammar ("x*sigmoid(beta*x)"),
    a candidate (anything with ``to_module``), an ``nn.Module`` instance (deep-copied so layers do
    not share parameters), an ``nn.Module`` class, or a factory ``f(num_channels) -> nn.Module``.
    """
    if isinstance(spec, str):
        key = spec.strip().lower().replace("-", "_")
        if key in _REGISTRY:
            return _REGISTRY[key](num_channels)
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
