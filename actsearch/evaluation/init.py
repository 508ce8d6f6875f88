"""Weight initializers by name (the lecture's list plus the standard library forms).

fan_in of a weight is the number of inputs one output unit sees (in_features, or in_channels x
kernel size). The names and their standard deviations:

=================  =====================================  ============================================
name               distribution                           source
=================  =====================================  ============================================
zeros              0                                      symmetry is never broken (lecture)
constant           ``value``                              ditto
small              0.01 * N(0, 1)                         lecture; activations shrink layer by layer
normal / large     N(0, 1)                                lecture; saturates sigmoid/tanh units
xavier             N(0, 1) / sqrt(fan_in)                 the lecture's "Xavier" (= LeCun 1998)
lecun              N(0, 1) / sqrt(fan_in)                 LeCun et al. 1998, "Efficient BackProp"
xavier_normal      N(0, 2 / (fan_in + fan_out))           Glorot & Bengio 2010
xavier_uniform     U(+-sqrt(6 / (fan_in + fan_out)))      Glorot & Bengio 2010
he / he_normal     N(0, 1) * sqrt(2 / fan_in)             He et al. 2015, "Delving deep into rectifiers"
he_uniform         U(+-sqrt(6 / fan_in))                  He et al. 2015
default            PyTorch's own layer init (kept as is)  torch.nn.Linear.reset_parameters
=================  =====================================  ============================================

Biases are 0 by default; a small positive constant (0.01) is the lecture's option for ReLU units,
which keeps them active at the start. All draws use the global torch RNG, so a seeded caller
(``torch.manual_seed``) gets the same weights every time.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import UnknownInitializerError, did_you_mean

__all__ = ["init_weight_", "initialize_", "list_initializers", "fans"]


def fans(weight: torch.Tensor) -> tuple[int, int]:
    """(fan_in, fan_out) of a Linear (out, in) or Conv (out, in, *kernel) weight."""
    if weight.dim() < 2:
        raise ValueError(f"fan_in is undefined for a {weight.dim()}-d tensor")
    receptive = math.prod(weight.shape[2:]) if weight.dim() > 2 else 1
    return weight.shape[1] * receptive, weight.shape[0] * receptive


def _normal(std: Callable[[int, int], float]) -> Callable[[torch.Tensor, float], None]:
    def init(w: torch.Tensor, value: float) -> None:
        fi, fo = fans(w)
        w.normal_(0.0, std(fi, fo))

    return init


def _uniform(bound: Callable[[int, int], float]) -> Callable[[torch.Tensor, float], None]:
    def init(w: torch.Tensor, value: float) -> None:
        fi, fo = fans(w)
        b = bound(fi, fo)
        w.uniform_(-b, b)

    return init


_INITS: dict[str, Callable[[torch.Tensor, float], None]] = {
    "zeros": lambda w, v: w.zero_(),
    "constant": lambda w, v: w.fill_(v),
    "small": lambda w, v: w.normal_(0.0, 0.01),
    "normal": lambda w, v: w.normal_(0.0, 1.0),
    "large": lambda w, v: w.normal_(0.0, 1.0),
    "xavier": _normal(lambda fi, fo: 1.0 / math.sqrt(fi)),
    "lecun": _normal(lambda fi, fo: 1.0 / math.sqrt(fi)),
    "xavier_normal": _normal(lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
    "xavier_uniform": _uniform(lambda fi, fo: math.sqrt(6.0 / (fi + fo))),
    "he": _normal(lambda fi, fo: math.sqrt(2.0 / fi)),
    "he_normal": _normal(lambda fi, fo: math.sqrt(2.0 / fi)),
    "he_uniform": _uniform(lambda fi, fo: math.sqrt(6.0 / fi)),
    "default": lambda w, v: None,
}


def list_initializers() -> list[str]:
    return sorted(_INITS)


def _lookup(name: str) -> Callable[[torch.Tensor, float], None]:
    key = name.strip().lower().replace("-", "_").replace("glorot", "xavier").replace("kaiming", "he")
    if key not in _INITS:
        raise UnknownInitializerError(
            f"unknown initializer {name!r}{did_you_mean(key, _INITS)} (known: {', '.join(list_initializers())})")
    return _INITS[key]


@torch.no_grad()
def init_weight_(weight: torch.Tensor, name: str, value: float = 0.0) -> torch.Tensor:
    """Fill ``weight`` in place with initializer ``name``; ``value`` is for ``constant``."""
    _lookup(name)(weight, value)
    return weight


@torch.no_grad()
def initialize_(module: nn.Module, weight: str = "he_normal", bias: float = 0.0, value: float = 0.0) -> nn.Module:
    """Initialize every Linear/Conv layer of ``module``: weights by name, biases to ``bias``.

    ``weight="default"`` leaves PyTorch's init untouched (biases too). Normalization layers keep
    gamma=1, beta=0 (Ioffe & Szegedy 2015).
    """
    init = _lookup(weight)
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv1d, nn.Conv2d)):
            if weight == "default":
                continue
            init(m.weight, value)
            if m.bias is not None:
                m.bias.fill_(bias)
    return module
