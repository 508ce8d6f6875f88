"""Activation functions found by actsearch in study 'paper-1-poisson-pinn-task-tpe-s0'.

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
    """f(x) = exp(-beta0*(x**2 - atan(x))**2)

    LaTeX: e^{- \\beta_{0} \\left(x^{2} - \\operatorname{atan}{\\left(x \\right)}\\right)^{2}}
    Rank 1 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 25): validation accuracy 2.1744 over seeds [0]; test 2.1744. Nearest known activation: 0.27·sigmoid (distance 0.902).
    """
    return torch.exp(-(beta0 * torch.square(torch.square(x) - torch.atan(x))))


class Top1(nn.Module):
    """The activation f(x) = exp(-beta0*(x**2 - atan(x))**2) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 25): validation accuracy 2.1744 over seeds [0]; test 2.1744. Nearest known activation: 0.27·sigmoid (distance 0.902).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x, _per_channel(self.beta0, x))


def top2(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = exp(-beta0*(-x**3 + cos(x))**2)

    LaTeX: e^{- \\beta_{0} \\left(- x^{3} + \\cos{\\left(x \\right)}\\right)^{2}}
    Rank 2 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 26): validation accuracy 2.1306 over seeds [0]; test 2.1306. Nearest known activation: 0.15·sigmoid (distance 0.921).
    """
    return torch.exp(-(beta0 * torch.square(torch.cos(x) - x ** 3.0)))


class Top2(nn.Module):
    """The activation f(x) = exp(-beta0*(-x**3 + cos(x))**2) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 26): validation accuracy 2.1306 over seeds [0]; test 2.1306. Nearest known activation: 0.15·sigmoid (distance 0.921).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x, _per_channel(self.beta0, x))


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 1.0) -> torch.Tensor:
    """f(x) = exp(-beta0*(-x**3 + Abs(x))**2)

    LaTeX: e^{- \\beta_{0} \\left(- x^{3} + \\left|{x}\\right|\\right)^{2}}
    Rank 4 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 6): validation accuracy 1.9491 over seeds [0]; test 1.9491. Nearest known activation: 0.26·sigmoid (distance 0.909).
    """
    return torch.exp(-(beta0 * torch.square(torch.abs(x) - x ** 3.0)))


class Top3(nn.Module):
    """The activation f(x) = exp(-beta0*(-x**3 + Abs(x))**2) as a module; β per channel when num_channels is given.
    Rank 4 of study 'paper-1-poisson-pinn-task-tpe-s0' (trial 6): validation accuracy 1.9491 over seeds [0]; test 1.9491. Nearest known activation: 0.26·sigmoid (distance 0.909).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
