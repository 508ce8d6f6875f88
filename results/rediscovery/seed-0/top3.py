"""Activation functions found by actsearch in study 'paper-1-mnist1d-standard-tpe-s0'.

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


def top1(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = beta0*x*sin(x)

    LaTeX: \\beta_{0} x \\sin{\\left(x \\right)}
    Rank 1 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 80): validation accuracy 0.9550 over seeds [0]; test 0.949. Nearest known activation: -0.15·square (distance 0.669).
    """
    return beta0 * x * torch.sin(x)


class Top1(nn.Module):
    """The activation f(x) = beta0*x*sin(x) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 80): validation accuracy 0.9550 over seeds [0]; test 0.949. Nearest known activation: -0.15·square (distance 0.669).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x, _per_channel(self.beta0, x))


def top2(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x*atan(x)

    LaTeX: x \\operatorname{atan}{\\left(x \\right)}
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 89): validation accuracy 0.9475 over seeds [0]; test 0.958. Nearest known activation: 1.29·abs (distance 0.086).
    """
    return x * torch.atan(x)


class Top2(nn.Module):
    """The activation f(x) = x*atan(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 89): validation accuracy 0.9475 over seeds [0]; test 0.958. Nearest known activation: 1.29·abs (distance 0.086).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x)


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = beta0*x*Min(0, x)

    LaTeX: \\beta_{0} x \\min\\left(0, x\\right)
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 107): validation accuracy 0.9450 over seeds [0]; test 0.957. Nearest known activation: 0.50·square (distance 0.707).
    """
    return beta0 * x * torch.clamp_max(x, 0.0)


class Top3(nn.Module):
    """The activation f(x) = beta0*x*Min(0, x) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s0' (trial 107): validation accuracy 0.9450 over seeds [0]; test 0.957. Nearest known activation: 0.50·square (distance 0.707).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
