"""Activation functions found by actsearch in study 'paper-1-mnist1d-standard-tpe-s2'.

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
    """f(x) = -cos(x) + softplus(x)

    LaTeX: - \\cos{\\left(x \\right)} + \\operatorname{softplus}\\left(x\\right)
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 39): validation accuracy 0.9475 over seeds [2]; test 0.949. Nearest known activation: 1.16·gelu (distance 0.219).
    """
    return F.softplus(x) - torch.cos(x)


class Top1(nn.Module):
    """The activation f(x) = -cos(x) + softplus(x) as a module; β per channel when num_channels is given.
    Rank 2 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 39): validation accuracy 0.9475 over seeds [2]; test 0.949. Nearest known activation: 1.16·gelu (distance 0.219).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top1(x)


def top2(x: torch.Tensor) -> torch.Tensor:
    """f(x) = cos(x) - sigmoid(x)

    LaTeX: \\cos{\\left(x \\right)} - \\sigma\\left(x\\right)
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 76): validation accuracy 0.9450 over seeds [2]; test 0.944. Nearest known activation: -0.42·swish, β=2.52 (distance 0.572).
    """
    return torch.cos(x) - torch.sigmoid(x)


class Top2(nn.Module):
    """The activation f(x) = cos(x) - sigmoid(x) as a module; β per channel when num_channels is given.
    Rank 3 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 76): validation accuracy 0.9450 over seeds [2]; test 0.944. Nearest known activation: -0.42·swish, β=2.52 (distance 0.572).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top2(x)


def top3(x: torch.Tensor) -> torch.Tensor:
    """f(x) = x*cos(x)

    LaTeX: x \\cos{\\left(x \\right)}
    Rank 5 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 29): validation accuracy 0.9425 over seeds [2]; test 0.941. Nearest known activation: -0.46·identity (distance 0.682).
    """
    return x * torch.cos(x)


class Top3(nn.Module):
    """The activation f(x) = x*cos(x) as a module; β per channel when num_channels is given.
    Rank 5 of study 'paper-1-mnist1d-standard-tpe-s2' (trial 29): validation accuracy 0.9425 over seeds [2]; test 0.941. Nearest known activation: -0.46·identity (distance 0.682).
    """

    def __init__(self, num_channels: int | None = None) -> None:
        super().__init__()
        self.num_channels = num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return top3(x)


__all__ = ['top1', 'Top1', 'top2', 'Top2', 'top3', 'Top3']
