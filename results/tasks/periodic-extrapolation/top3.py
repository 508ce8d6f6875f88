"""Activation functions found by actsearch in study 'paper-1-periodic-extrapolation-task-tpe-s0'.

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
    """f(x) = exp(-beta0*Abs(sin(x) - sinc(x)))

    LaTeX: e^{- \\beta_{0} \\left|{\\sin{\\left(x \\right)} - \\operatorname{sinc}{\\left(x \\right)}}\\right|}
    Rank 1 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 30): validation accuracy -0.0918 over seeds [0]; test -0.3408. Nearest known activation: 0.78·sigmoid (distance 0.528).
    """
    return torch.exp(-(beta0 * torch.abs(torch.sin(x) - torch.sinc(x / math.pi))))


class Top1(nn.Module):
    """The activation f(x) = exp(-beta0*Abs(sin(x) - sinc(x))) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 30): validation accuracy -0.0918 over seeds [0]; test -0.3408. Nearest known activation: 0.78·sigmoid (distance 0.528).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x, _per_channel(self.beta0, x))


def top2(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = beta0*cos(x) + (1 - beta0)*sin(x)

    LaTeX: \\beta_{0} \\cos{\\left(x \\right)} + \\left(1 - \\beta_{0}\\right) \\sin{\\left(x \\right)}
    Rank 2 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 26): validation accuracy -0.1579 over seeds [0]; test -0.2123. Nearest known activation: 0.50·sin (distance 0.687).
    """
    return (-beta0 + 1.0) * torch.sin(x) + beta0 * torch.cos(x)


class Top2(nn.Module):
    """The activation f(x) = beta0*cos(x) + (1 - beta0)*sin(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 26): validation accuracy -0.1579 over seeds [0]; test -0.2123. Nearest known activation: 0.50·sin (distance 0.687).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x, _per_channel(self.beta0, x))


def top3(x: torch.Tensor, beta0: torch.Tensor | float = 0.5) -> torch.Tensor:
    """f(x) = beta0*sinc(x) + (1 - beta0)*sin(x)

    LaTeX: \\beta_{0} \\operatorname{sinc}{\\left(x \\right)} + \\left(1 - \\beta_{0}\\right) \\sin{\\left(x \\right)}
    Rank 3 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 10): validation accuracy -0.1712 over seeds [0]; test -0.3237. Nearest known activation: 0.50·sin (distance 0.599).
    """
    return (-beta0 + 1.0) * torch.sin(x) + beta0 * torch.sinc(x / math.pi)


class Top3(nn.Module):
    """The activation f(x) = beta0*sinc(x) + (1 - beta0)*sin(x) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-periodic-extrapolation-task-tpe-s0' (trial 10): validation accuracy -0.1712 over seeds [0]; test -0.3237. Nearest known activation: 0.50·sin (distance 0.599).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        shape = () if num_channels is None else (num_channels,)
        self.beta0 = nn.Parameter(torch.full(shape, 0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x, _per_channel(self.beta0, x))


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
