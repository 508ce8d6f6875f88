"""Periodic extrapolation: fit a periodic signal on one interval, score it on the next ones.

The target is y = sin(x) + 0.5·sin(2x) (period 2π). The network sees x in [0, 4π] only; the
validation split the search scores on is the next interval [4π, 6π], the test split the one after
([6π, 8π]). ReLU networks continue linearly and tanh networks flatten out outside the data, so
neither can extrapolate a period (Ziyin, Hartwig & Ueda 2020); their Snake activation x + sin²(x)
can. The metric is minus the mean squared error (higher is better).

    actsearch search --task examples/tasks/periodic_extrapolation.py --trials 32
    actsearch compare relu tanh "x + sin(x)**2" --task examples/tasks/periodic_extrapolation.py --seeds 5
"""
import math

import torch
from torch import nn

import actsearch


def signal(lo: float, hi: float, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.linspace(lo, hi, n).unsqueeze(1)
    return x, torch.sin(x) + 0.5 * torch.sin(2 * x)


x_train, y_train = signal(0, 4 * math.pi, 512)
x_val, y_val = signal(4 * math.pi, 6 * math.pi, 256)
x_test, y_test = signal(6 * math.pi, 8 * math.pi, 256)


def build(act):
    return nn.Sequential(nn.Linear(1, 64), act(64), nn.Linear(64, 64), act(64), nn.Linear(64, 1))


task = actsearch.Task(
    "periodic-extrapolation",
    data=(x_train, y_train, x_val, y_val, x_test, y_test),
    build=build, loss="mse", metric="neg_mse",
    steps=1200, batch_size=64, optimizer="adam", lr=5e-3, eval_every=300,
)
