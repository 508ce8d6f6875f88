"""Child networks that score a candidate activation: an MLP and a small CNN (1-D or 2-D).

Every hidden layer gets its OWN activation module from
:func:`actsearch.expressions.make_activation` (a per-channel β, as in Ramachandran et al. 2017,
must not be shared between layers), called with ``num_channels`` = that layer's width. Activations
see tensors laid out (N, C, ...), so a per-channel parameter lives on dim 1.

The layer order is Linear/Conv -> norm -> activation -> dropout (Ioffe & Szegedy 2015 put the
normalization before the nonlinearity). The population engine (:mod:`actsearch.evaluation.population`)
stacks K of these models; it reads their ``layers``/``norms``/``acts``/``head`` attributes, so the
attribute names are part of the contract.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ..expressions import ActivationSpec, make_activation
from .init import initialize_

__all__ = ["ModelSpec", "MLP", "CNN", "build_model", "conv_output_sizes"]


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of a child network (a value object: fidelities embed one)."""

    kind: str = "mlp"  # "mlp" | "cnn"
    # MLP: hidden widths. CNN: channels of each conv layer. 100-100 is the MNIST-1D paper's MLP.
    widths: tuple[int, ...] = (100, 100)
    kernel_sizes: tuple[int, ...] = (5, 3, 3)  # CNN only; the MNIST-1D paper's ConvBase
    stride: int = 2  # CNN only: stride 2 halves the length each layer (40 -> 19 -> 10 -> 5)
    padding: int = 1
    norm: str = "none"  # "none" | "batch" | "layer"
    dropout: float = 0.0
    # "default" keeps PyTorch's init (U(+-1/sqrt(fan_in))), which the MNIST-1D paper's published
    # numbers were obtained with; any name from actsearch.evaluation.init overrides it.
    init: str = "default"
    bias_init: float = 0.0


def _norm(kind: str, channels: int, dims: int) -> nn.Module:
    """A normalization for (N, C) (dims=0) or (N, C, *spatial) tensors."""
    if kind == "none":
        return nn.Identity()
    if kind == "batch":
        return (nn.BatchNorm1d, nn.BatchNorm1d, nn.BatchNorm2d)[dims](channels)
    if kind == "layer":
        # Over (C, *spatial) for convs: GroupNorm with one group is exactly LayerNorm per example.
        return nn.LayerNorm(channels) if dims == 0 else nn.GroupNorm(1, channels)
    raise ValueError(f"unknown normalization {kind!r}: use 'none', 'batch' or 'layer'")


def _bias_before(norm: str) -> bool:
    """Whether a layer feeding ``norm`` gets a bias. Not before BatchNorm: the batch mean removes
    it (Ioffe & Szegedy 2015, sec. 3.2: "the bias b can be ignored"), so its gradient is zero in
    exact arithmetic and pure rounding noise in float32 — which Adam, dividing by that noise's own
    scale, turns into steps of ±lr. The bias then random-walks; training never sees it, but
    evaluation does (the running mean lags it), and two float orders of the same network (a solo
    run and its population member) drift apart. LayerNorm normalizes over features, not the
    batch, so a per-feature bias still matters there."""
    return norm != "batch"


class MLP(nn.Module):
    """Fully connected net: input (N, *shape) is flattened; hidden layers, then a linear head."""

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        activation: ActivationSpec = "relu",
        widths: Sequence[int] = (100, 100),
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        dims = [in_features, *widths]
        self.layers = nn.ModuleList(nn.Linear(a, b, bias=_bias_before(norm)) for a, b in zip(dims[:-1], dims[1:]))
        self.norms = nn.ModuleList(_norm(norm, w, 0) for w in widths)
        self.acts = nn.ModuleList(make_activation(activation, w) for w in widths)
        self.dropout = float(dropout)
        self.head = nn.Linear(dims[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.flatten(1)
        for layer, norm, act in zip(self.layers, self.norms, self.acts):
            h = act(norm(layer(h)))
            if self.dropout:
                h = nn.functional.dropout(h, self.dropout, self.training)
        return self.head(h)


def conv_output_sizes(spatial: Sequence[int], kernel_sizes: Sequence[int], stride: int,
                      padding: int) -> list[list[int]]:
    """The spatial size after each conv layer: floor((L + 2p - k) / s) + 1, PyTorch's Conv output."""
    sizes, cur = [], list(spatial)
    for k in kernel_sizes:
        cur = [(n + 2 * padding - k) // stride + 1 for n in cur]
        sizes.append(cur)
    return sizes


class CNN(nn.Module):
    """Small CNN (the MNIST-1D paper's ConvBase generalized): strided convs, flatten, linear head.

    ``input_shape`` is (C, L) for a 1-D CNN or (C, H, W) for a 2-D one.
    """

    def __init__(
        self,
        input_shape: Sequence[int],
        num_classes: int,
        activation: ActivationSpec = "relu",
        widths: Sequence[int] = (25, 25, 25),
        kernel_sizes: Sequence[int] = (5, 3, 3),
        stride: int = 2,
        padding: int = 1,
        norm: str = "none",
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if len(kernel_sizes) != len(widths):
            raise ValueError(f"{len(widths)} conv layers but {len(kernel_sizes)} kernel sizes")
        spatial = list(input_shape[1:])
        dims = len(spatial)
        if dims not in (1, 2):
            raise ValueError(f"CNN input must be (C, L) or (C, H, W), got {tuple(input_shape)}")
        conv = nn.Conv1d if dims == 1 else nn.Conv2d
        chans = [int(input_shape[0]), *widths]
        self.layers = nn.ModuleList(
            conv(a, b, k, stride=stride, padding=padding, bias=_bias_before(norm))
            for a, b, k in zip(chans[:-1], chans[1:], kernel_sizes)
        )
        sizes = conv_output_sizes(spatial, kernel_sizes, stride, padding)
        if any(min(size) < 1 for size in sizes):
            raise ValueError(f"input {tuple(input_shape)} is too small for {len(widths)} conv layers")
        spatial = sizes[-1]
        self.norms = nn.ModuleList(_norm(norm, w, dims) for w in widths)
        self.acts = nn.ModuleList(make_activation(activation, w) for w in widths)
        self.dropout = float(dropout)
        self.out_spatial = tuple(spatial)
        self.head = nn.Linear(chans[-1] * math.prod(spatial), num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        for layer, norm, act in zip(self.layers, self.norms, self.acts):
            h = act(norm(layer(h)))
            if self.dropout:
                h = nn.functional.dropout(h, self.dropout, self.training)
        return self.head(h.flatten(1))


def build_model(
    spec: ModelSpec,
    activation: ActivationSpec,
    input_shape: Sequence[int],
    num_classes: int,
    seed: int | None = None,
) -> nn.Module:
    """Build and initialize a child network; with ``seed`` the weights depend on nothing else.

    Seeding happens inside ``torch.random.fork_rng`` so the caller's global RNG stream is left
    untouched; the population engine builds each member through this same function, which is
    what makes a batched member start exactly where the model trained alone starts.
    """
    with torch.random.fork_rng(devices=[]):
        if seed is not None:
            torch.manual_seed(seed)
        if spec.kind == "mlp":
            model: nn.Module = MLP(math.prod(input_shape), num_classes, activation, spec.widths, spec.norm, spec.dropout)
        elif spec.kind == "cnn":
            model = CNN(input_shape, num_classes, activation, spec.widths, spec.kernel_sizes,
                        spec.stride, spec.padding, spec.norm, spec.dropout)
        else:
            raise ValueError(f"unknown model kind {spec.kind!r}: use 'mlp' or 'cnn'")
        initialize_(model, spec.init, spec.bias_init)
    return model
