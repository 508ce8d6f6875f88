"""Activation functions found by actsearch in study 'paper-1-mnist1d-large-power-tpe-s0'.

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
    """f(x) = beta0*Min(0, x) + (1 - beta0)*sinc(x)

    LaTeX: \\beta_{0} \\min\\left(0, x\\right) + \\left(1 - \\beta_{0}\\right) \\operatorname{sinc}{\\left(x \\right)}
    Rank 2 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 14): validation accuracy 0.9833 over seeds [0]; test 0.9852. Nearest known activation: 0.53·swish, β=0.85 (distance 0.199, as −f(−x)).
    """
    return (-beta0 + 1.0) * torch.sinc(x / math.pi) + beta0 * torch.clamp_max(x, 0.0)


class Top1(nn.Module):
    """The activation f(x) = beta0*Min(0, x) + (1 - beta0)*sinc(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 14): validation accuracy 0.9833 over seeds [0]; test 0.9852. Nearest known activation: 0.53·swish, β=0.85 (distance 0.199, as −f(−x)).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x, _per_channel(self.beta0, x))


def top2(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = beta0*Min(0, x) + (1 - beta0)*cos(x)

    LaTeX: \\beta_{0} \\min\\left(0, x\\right) + \\left(1 - \\beta_{0}\\right) \\cos{\\left(x \\right)}
    Rank 4 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 25): validation accuracy 0.9821 over seeds [0]; test 0.9822. Nearest known activation: 0.57·gelu (distance 0.247, as −f(−x)).
    """
    return (-beta0 + 1.0) * torch.cos(x) + beta0 * torch.clamp_max(x, 0.0)


class Top2(nn.Module):
    """The activation f(x) = beta0*Min(0, x) + (1 - beta0)*cos(x) as a module; β per channel when num_channels is given.
    Rank 4 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 25): validation accuracy 0.9821 over seeds [0]; test 0.9822. Nearest known activation: 0.57·gelu (distance 0.247, as −f(−x)).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x, _per_channel(self.beta0, x))


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = beta0*asinh(x) + (1 - beta0)*Min(0, x)

    LaTeX: \\beta_{0} \\operatorname{asinh}{\\left(x \\right)} + \\left(1 - \\beta_{0}\\right) \\min\\left(0, x\\right)
    Rank 5 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 58): validation accuracy 0.9819 over seeds [0]; test 0.9827. Nearest known activation: 0.79·elu (distance 0.095, as −f(−x)).
    """
    return (-beta0 + 1.0) * torch.clamp_max(x, 0.0) + beta0 * torch.asinh(x)


class Top3(nn.Module):
    """The activation f(x) = beta0*asinh(x) + (1 - beta0)*Min(0, x) as a module; β per channel when num_channels is given.
    Rank 5 of study 'paper-1-mnist1d-large-power-tpe-s0' (trial 58): validation accuracy 0.9819 over seeds [0]; test 0.9827. Nearest known activation: 0.79·elu (distance 0.095, as −f(−x)).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
