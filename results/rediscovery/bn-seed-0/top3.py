"""Activation functions found by actsearch in study 'paper-1-mnist1d-standard_bn-tpe-s0'.

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


def top1(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = -beta0*x + (1 - beta0)*Max(0, x)

    LaTeX: - \\beta_{0} x + \\left(1 - \\beta_{0}\\right) \\max\\left(0, x\\right)
    Rank 1 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 96): validation accuracy 0.9675 over seeds [0]; test 0.967. Nearest known activation: -0.25·identity (distance 0.707).
    """
    return (-beta0 + 1.0) * torch.relu(x) - (beta0 * x)


class Top1(nn.Module):
    """The activation f(x) = -beta0*x + (1 - beta0)*Max(0, x) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 96): validation accuracy 0.9675 over seeds [0]; test 0.967. Nearest known activation: -0.25·identity (distance 0.707).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x, _per_channel(self.beta0, x))


def top2(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = -beta0*x + (1 - beta0)*cos(x)

    LaTeX: - \\beta_{0} x + \\left(1 - \\beta_{0}\\right) \\cos{\\left(x \\right)}
    Rank 2 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 93): validation accuracy 0.9650 over seeds [0]; test 0.952. Nearest known activation: -0.99·swish, β=0.10 (distance 0.212).
    """
    return (-beta0 + 1.0) * torch.cos(x) - (beta0 * x)


class Top2(nn.Module):
    """The activation f(x) = -beta0*x + (1 - beta0)*cos(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 93): validation accuracy 0.9650 over seeds [0]; test 0.952. Nearest known activation: -0.99·swish, β=0.10 (distance 0.212).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x, _per_channel(self.beta0, x))


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = -beta0*x + x**2*(1 - beta0)

    LaTeX: - \\beta_{0} x + x^{2} \\left(1 - \\beta_{0}\\right)
    Rank 3 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 15): validation accuracy 0.9625 over seeds [0]; test 0.948. Nearest known activation: 0.50·square (distance 0.250).
    """
    return torch.square(x) * (-beta0 + 1.0) - (beta0 * x)


class Top3(nn.Module):
    """The activation f(x) = -beta0*x + x**2*(1 - beta0) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-mnist1d-standard_bn-tpe-s0' (trial 15): validation accuracy 0.9625 over seeds [0]; test 0.948. Nearest known activation: 0.50·square (distance 0.250).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
