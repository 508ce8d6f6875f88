"""Activation functions found by actsearch in study 'paper-1-mnist1d-standard_bn-tpe-s1'.

The top 3 by mean validation accuracy. Needs only torch: `from this_file import *`.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: ε of the safe primitives (log(|x|+ε), √(|x|+ε), x1/(x2±ε)): bounds the slope near 0.
EPS = 0.001


def _per_channel(p: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """View a per-channel (C,) parameter so it broadcasts over x laid out (N, C, ...)."""
    return p if p.dim() == 0 else p.view(1, -1, *([1] * (x.dim() - 2)))


def top1(x: torch.Tensor) -> torch.Tensor:
    """f(x) = asinh(x)*sigmoid(x**3)

    LaTeX: \\operatorname{asinh}{\\left(x \\right)} \\sigma\\left(x^{3}\\right)
    Rank 3 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 16): validation accuracy 0.9625 over seeds [1]; test 0.965. Nearest known activation: 0.55·swish, β=3.16 (distance 0.152).
    """
    return torch.asinh(x) * torch.sigmoid(x ** 3.0)


class Top1(nn.Module):
    """The activation f(x) = asinh(x)*sigmoid(x**3) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 16): validation accuracy 0.9625 over seeds [1]; test 0.965. Nearest known activation: 0.55·swish, β=3.16 (distance 0.152).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x)


def top2(x: torch.Tensor) -> torch.Tensor:
    """f(x) = sigmoid(x)*softplus(x)

    LaTeX: \\sigma\\left(x\\right) \\operatorname{softplus}\\left(x\\right)
    Rank 4 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 71): validation accuracy 0.9600 over seeds [1]; test 0.96. Nearest known activation: 0.98·relu (distance 0.046).
    """
    return torch.sigmoid(x) * F.softplus(x)


class Top2(nn.Module):
    """The activation f(x) = sigmoid(x)*softplus(x) as a module; β per channel when num_channels is given.
    Rank 4 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 71): validation accuracy 0.9600 over seeds [1]; test 0.96. Nearest known activation: 0.98·relu (distance 0.046).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x)


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = asinh(x)*sigmoid(beta0*x)

    LaTeX: \\operatorname{asinh}{\\left(x \\right)} \\sigma\\left(\\beta_{0} x\\right)
    Rank 5 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 10): validation accuracy 0.9575 over seeds [1]; test 0.966. Nearest known activation: 0.53·mish (distance 0.119).
    """
    return torch.asinh(x) * torch.sigmoid(beta0 * x)


class Top3(nn.Module):
    """The activation f(x) = asinh(x)*sigmoid(beta0*x) as a module; β per channel when num_channels is given.
    Rank 5 of study 'paper-1-mnist1d-standard_bn-tpe-s1' (trial 10): validation accuracy 0.9575 over seeds [1]; test 0.966. Nearest known activation: 0.53·mish (distance 0.119).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
