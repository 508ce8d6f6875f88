"""Activation functions found by actsearch in study 'paper-1-tabular-digits-task-tpe-s0'.

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
    """f(x) = atan(x) + exp(-x**2)

    LaTeX: \\operatorname{atan}{\\left(x \\right)} + e^{- x^{2}}
    Rank 1 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 29): validation accuracy 0.9638 over seeds [0]; test 0.9611. Nearest known activation: 1.65·softsign (distance 0.306).
    """
    return torch.atan(x) + torch.exp(-(torch.square(x)))


class Top1(nn.Module):
    """The activation f(x) = atan(x) + exp(-x**2) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 29): validation accuracy 0.9638 over seeds [0]; test 0.9611. Nearest known activation: 1.65·softsign (distance 0.306).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x)


def top2(x: torch.Tensor, beta0: torch.Tensor | float = 0.0) -> torch.Tensor:
    """f(x) = Max(beta0 + x, softplus(x))

    LaTeX: \\max\\left(\\beta_{0} + x, \\operatorname{softplus}\\left(x\\right)\\right)
    Rank 3 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 16): validation accuracy 0.9582 over seeds [0]; test 0.9472. Nearest known activation: softplus (distance 0.000).
    """
    return torch.maximum(F.softplus(x), beta0 + x)


class Top2(nn.Module):
    """The activation f(x) = Max(beta0 + x, softplus(x)) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 16): validation accuracy 0.9582 over seeds [0]; test 0.9472. Nearest known activation: softplus (distance 0.000).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x, _per_channel(self.beta0, x))


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 0.0) -> torch.Tensor:
    """f(x) = Max(beta0 + x, cos(x))

    LaTeX: \\max\\left(\\beta_{0} + x, \\cos{\\left(x \\right)}\\right)
    Rank 4 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 24): validation accuracy 0.9554 over seeds [0]; test 0.9556. Nearest known activation: 1.01·leaky_relu (distance 0.210).
    """
    return torch.maximum(torch.cos(x), beta0 + x)


class Top3(nn.Module):
    """The activation f(x) = Max(beta0 + x, cos(x)) as a module; β per channel when num_channels is given.
    Rank 4 of study 'paper-1-tabular-digits-task-tpe-s0' (trial 24): validation accuracy 0.9554 over seeds [0]; test 0.9556. Nearest known activation: 1.01·leaky_relu (distance 0.210).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
