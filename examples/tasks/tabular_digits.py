"""Tabular classification: a deep, narrow MLP on scikit-learn's digits (no download).

scikit-learn ships the 1,797 8x8 handwritten digits inside its package (``load_digits``). The
64 pixel values are standardized per feature with the training split's statistics; the split is
60/20/20 with a fixed seed. The network is a plain stack of 6 hidden layers of 32 units without
normalization — deep enough that how the activation passes gradients through the stack matters
(saturating functions train slowly there), small enough for seconds per candidate on a laptop.

    actsearch search --task examples/tasks/tabular_digits.py --trials 32
    actsearch compare relu tanh sigmoid --task examples/tasks/tabular_digits.py --seeds 5

``data`` is a function here: it is called once, when the data is first needed.
"""
import numpy as np
from sklearn.datasets import load_digits
from torch import nn

import actsearch


def data():
    x, y = load_digits(return_X_y=True)
    order = np.random.default_rng(0).permutation(len(y))
    x, y = x[order].astype(np.float32), y[order]
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    mean, std = x[:a].mean(0), x[:a].std(0) + 1e-6
    x = (x - mean) / std
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]


def build(act, width=32, depth=6):
    layers, inputs = [], 64
    for _ in range(depth):
        layers += [nn.Linear(inputs, width), act(width)]
        inputs = width
    return nn.Sequential(*layers, nn.Linear(width, 10))


task = actsearch.Task("tabular-digits", data=data, build=build, loss="cross_entropy", metric="accuracy",
                      steps=500, batch_size=64, lr=3e-3, eval_every=125)
