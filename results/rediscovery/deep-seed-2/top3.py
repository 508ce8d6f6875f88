"""Activation functions found by actsearch in study 'paper-1-mnist1d-large-deep-tpe-s2'.

The search's own top 3 by mean validation accuracy: leaderboard ranks 1, 2, 3. Needs only torch: `from this_file import *`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: ε of the safe primitives (log(|x|+ε), √(|x|+ε), x1/(x2±ε)): bounds the slope near 0.
EPS = 0.001


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
            f"this activation was built with num_channels={p.shape[0]} but got an input with "
            f"{x.shape[dim] if x.dim() > 0 else 0} channels on dim {dim} (shape {list(x.shape)})"
        )
    shape = [1] * x.dim()
    shape[dim] = -1
    return p.view(shape)


def rank1(x: torch.Tensor) -> torch.Tensor:
    """f(x) = -x*sigmoid(softplus(x))

    LaTeX: - x \\sigma\\left(\\operatorname{softplus}\\left(x\\right)\\right)
    Rank 1 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 57): validation accuracy 0.7646 over seeds [2]; test 0.7735. Nearest known activation: -1.48·swish, β=0.17 (distance 0.046).
    """
    return -(x * torch.sigmoid(F.softplus(x)))


class Rank1(nn.Module):
    """The activation f(x) = -x*sigmoid(softplus(x)) as a module; β per channel when num_channels is given.

    ``inplace`` is accepted for timm's and torchvision's ``act_layer(inplace=True)`` and ignored: the input is never modified.
    Rank 1 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 57): validation accuracy 0.7646 over seeds [2]; test 0.7735. Nearest known activation: -1.48·swish, β=0.17 (distance 0.046).
    """

    def __init__(self, num_channels: int | None = None, inplace: bool = False) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return -(x * torch.sigmoid(F.softplus(x)))


def rank2(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = beta0*x*sigmoid(softplus(x))

    LaTeX: \\beta_{0} x \\sigma\\left(\\operatorname{softplus}\\left(x\\right)\\right)
    Rank 2 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 65): validation accuracy 0.7533 over seeds [2]; test 0.764. Nearest known activation: 1.48·swish, β=0.17 (distance 0.046).
    """
    return beta0 * x * torch.sigmoid(F.softplus(x))


class Rank2(nn.Module):
    """The activation f(x) = beta0*x*sigmoid(softplus(x)) as a module; β per channel when num_channels is given.

    ``inplace`` is accepted for timm's and torchvision's ``act_layer(inplace=True)`` and ignored: the input is never modified.
    Rank 2 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 65): validation accuracy 0.7533 over seeds [2]; test 0.764. Nearest known activation: 1.48·swish, β=0.17 (distance 0.046).
    """

    def __init__(self, num_channels: int | None = None, inplace: bool = False) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta0 = _per_channel(self.beta0, x)
        return beta0 * x * torch.sigmoid(F.softplus(x))


def rank3(x: torch.Tensor, beta0: torch.Tensor | float = 0.0) -> torch.Tensor:
    """f(x) = (beta0 + x)*sigmoid(softplus(x))

    LaTeX: \\left(\\beta_{0} + x\\right) \\sigma\\left(\\operatorname{softplus}\\left(x\\right)\\right)
    Rank 3 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 88): validation accuracy 0.7496 over seeds [2]; test 0.76. Nearest known activation: 1.48·swish, β=0.17 (distance 0.046).
    """
    return (beta0 + x) * torch.sigmoid(F.softplus(x))


class Rank3(nn.Module):
    """The activation f(x) = (beta0 + x)*sigmoid(softplus(x)) as a module; β per channel when num_channels is given.

    ``inplace`` is accepted for timm's and torchvision's ``act_layer(inplace=True)`` and ignored: the input is never modified.
    Rank 3 of study 'paper-1-mnist1d-large-deep-tpe-s2' (trial 88): validation accuracy 0.7496 over seeds [2]; test 0.76. Nearest known activation: 1.48·swish, β=0.17 (distance 0.046).
    """

    def __init__(self, num_channels: int | None = None, inplace: bool = False) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        beta0 = _per_channel(self.beta0, x)
        return (beta0 + x) * torch.sigmoid(F.softplus(x))


__all__ = ['rank1', 'Rank1', 'rank2', 'Rank2', 'rank3', 'Rank3']
