"""Activation functions found by actsearch in study 'paper-1-mnist1d-standard-tpe-s1'.

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
    """f(x) = Abs(x)*sqrtabs(x)

    LaTeX: \\left|{x}\\right| \\sqrt{\\left|x\\right| + \\epsilon}
    Rank 1 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 60): validation accuracy 0.9600 over seeds [1]; test 0.964. Nearest known activation: 0.50·square (distance 0.111).
    """
    return torch.abs(x) * torch.sqrt(torch.abs(x) + EPS)


class Top1(nn.Module):
    """The activation f(x) = Abs(x)*sqrtabs(x) as a module; β per channel when num_channels is given.
    Rank 1 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 60): validation accuracy 0.9600 over seeds [1]; test 0.964. Nearest known activation: 0.50·square (distance 0.111).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x)


def top2(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x*tanh(x)

    LaTeX: x \\tanh{\\left(x \\right)}
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 41): validation accuracy 0.9550 over seeds [1]; test 0.956. Nearest known activation: 0.99·abs (distance 0.043).
    """
    return x * torch.tanh(x)


class Top2(nn.Module):
    """The activation f(x) = x*tanh(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 41): validation accuracy 0.9550 over seeds [1]; test 0.956. Nearest known activation: 0.99·abs (distance 0.043).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x)


def top3(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x*asinh(x)

    LaTeX: x \\operatorname{asinh}{\\left(x \\right)}
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 86): validation accuracy 0.9525 over seeds [1]; test 0.967. Nearest known activation: 0.52·square (distance 0.108).
    """
    return x * torch.asinh(x)


class Top3(nn.Module):
    """The activation f(x) = x*asinh(x) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s1' (trial 86): validation accuracy 0.9525 over seeds [1]; test 0.967. Nearest known activation: 0.52·square (distance 0.108).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x)


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
