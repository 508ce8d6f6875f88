"""Greedy layer-wise unsupervised pretraining, then supervised fine-tuning.

The recipe of Hinton, Osindero & Teh (2006, "A fast learning algorithm for deep belief nets") and
Bengio, Lamblin, Popovici & Larochelle (2007, "Greedy layer-wise training of deep networks") in
the autoencoder form the lecture teaches (module 7.1): hidden layer k is trained as the encoder of
an autoencoder that reconstructs h_{k-1} (h_0 = x) under the mean squared error; it is then frozen
and its output becomes the data for layer k+1. After the last hidden layer the output layer is
added and the whole network is fine-tuned on the supervised loss. Erhan et al. (2010, "Why does
unsupervised pre-training help deep learning?") read the result as a better starting point /
a regularizer, which the ``pretraining`` experiment puts to the test.

Usage::

    from actsearch.lecture import pretrain_greedy, fine_tune
    res = pretrain_greedy((256, 256, 256), x_unlabeled, activation="sigmoid", epochs=5)
    res.losses            # final reconstruction MSE of each layer
    fine_tune(res.model, x, y, epochs=10)

Models are :class:`actsearch.evaluation.MLP` (anything with ``layers``, ``acts`` and a ``head``; an
optional ``norms`` list is honoured), so a pretrained net is an ordinary child network.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from ..errors import ActsearchError
from ..evaluation import MLP, initialize_
from ..expressions import ActivationSpec

__all__ = ["LayerReport", "PretrainResult", "FineTuneResult", "pretrain_greedy", "fine_tune",
           "reconstruction_loss", "hidden_representation"]


@dataclass
class LayerReport:
    """One autoencoder stage: MSE of reconstructing the layer's input, before and after training."""

    layer: int  # 1-based hidden layer index
    in_features: int
    out_features: int
    initial_loss: float  # the random encoder + random decoder, before any update
    final_loss: float
    curve: list[float] = field(default_factory=list)  # MSE after each epoch


@dataclass
class PretrainResult:
    model: nn.Module
    layers: list[LayerReport]

    @property
    def losses(self) -> list[float]:
        """Final reconstruction loss of each hidden layer (the issue's "per-layer losses")."""
        return [r.final_loss for r in self.layers]

    @property
    def initial_losses(self) -> list[float]:
        return [r.initial_loss for r in self.layers]


@dataclass
class FineTuneResult:
    losses: list[float]  # supervised loss of every mini-batch
    accuracy: float | None = None  # on (x_eval, y_eval) when given


def _check(model: nn.Module) -> None:
    for attr in ("layers", "acts", "head"):
        if not hasattr(model, attr):
            raise ActsearchError(
                f"pretrain_greedy needs an MLP-like model with .layers, .acts and .head (an "
                f"actsearch.evaluation.MLP); {type(model).__name__} has no .{attr}"
            )


def _stage(model: nn.Module, k: int) -> nn.Module:
    """Layer k's encoder: Linear -> norm -> activation, exactly as the model's forward runs it."""
    norm = model.norms[k] if hasattr(model, "norms") else nn.Identity()
    return nn.Sequential(model.layers[k], norm, model.acts[k])


@torch.no_grad()
def hidden_representation(model: nn.Module, x: torch.Tensor, depth: int, batch_size: int = 4096) -> torch.Tensor:
    """h_depth of ``model`` for inputs ``x`` (h_0 = x flattened), in eval mode, in batches."""
    _check(model)
    was = model.training
    model.eval()
    outs = []
    for i in range(0, len(x), batch_size):
        h = x[i : i + batch_size].flatten(1)
        for k in range(depth):
            h = _stage(model, k)(h)
        outs.append(h)
    model.train(was)
    return torch.cat(outs) if outs else x.flatten(1)[:0]


@torch.no_grad()
def reconstruction_loss(encoder: nn.Module, decoder: nn.Module, h: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean squared reconstruction error of ``h`` (mean over examples and units)."""
    total, n = 0.0, 0
    for i in range(0, len(h), batch_size):
        hb = h[i : i + batch_size]
        total += nn.functional.mse_loss(decoder(encoder(hb)), hb, reduction="sum").item()
        n += hb.numel()
    return total / max(n, 1)


def pretrain_greedy(
    model_or_widths: nn.Module | Sequence[int],
    x_unlabeled: torch.Tensor,
    *,
    activation: ActivationSpec = "sigmoid",
    num_classes: int = 10,
    epochs: int = 5,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
    init: str = "default",
) -> PretrainResult:
    """Pretrain every hidden layer of a model greedily as an autoencoder (in place).

    ``model_or_widths`` is an MLP-like model or hidden widths (then an :class:`MLP` with
    ``activation`` and a ``num_classes``-way head is built, weights by ``init``). Layer k is
    trained with Adam (``lr``) for ``epochs`` passes to reconstruct h_{k-1} through a fresh linear
    decoder; layers below it are frozen (their output is computed once, without gradients) and
    the head is left untouched for :func:`fine_tune`. Returns the per-layer reconstruction losses.
    """
    x = x_unlabeled.flatten(1)
    if len(x) == 0:
        raise ActsearchError("pretrain_greedy got no unlabeled examples")
    if isinstance(model_or_widths, nn.Module):
        model = model_or_widths
        _check(model)
    else:
        widths = tuple(int(w) for w in model_or_widths)
        if not widths or min(widths) < 1:
            raise ActsearchError(f"hidden widths must be positive integers, got {model_or_widths!r}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = initialize_(MLP(x.shape[1], num_classes, activation, widths), init)
    gen = torch.Generator().manual_seed(seed)
    reports: list[LayerReport] = []
    h = x
    for k in range(len(model.layers)):
        encoder = _stage(model, k)
        layer = model.layers[k]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed * 1000 + k)
            decoder = nn.Linear(layer.out_features, layer.in_features).to(h.device, h.dtype)
        before = reconstruction_loss(encoder, decoder, h)
        params = [*encoder.parameters(), *decoder.parameters()]
        opt = torch.optim.Adam(params, lr=lr)
        curve = []
        encoder.train()
        for _ in range(epochs):
            perm = torch.randperm(len(h), generator=gen).to(h.device)
            for i in range(0, len(h), batch_size):
                hb = h[perm[i : i + batch_size]]
                loss = nn.functional.mse_loss(decoder(encoder(hb)), hb)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            curve.append(reconstruction_loss(encoder, decoder, h))
        after = curve[-1] if curve else before
        if not math.isfinite(after):
            raise ActsearchError(f"pretraining layer {k + 1} diverged (reconstruction loss {after}); lower lr")
        reports.append(LayerReport(k + 1, layer.in_features, layer.out_features, before, after, curve))
        h = hidden_representation(model, x, k + 1)  # the frozen stack's output feeds the next stage
    return PretrainResult(model, reports)


def fine_tune(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    *,
    epochs: int = 10,
    lr: float = 0.1,
    momentum: float = 0.0,
    batch_size: int = 128,
    seed: int = 0,
    x_eval: torch.Tensor | None = None,
    y_eval: torch.Tensor | None = None,
) -> FineTuneResult:
    """Train the whole network (every layer unfrozen, head included) on cross-entropy with
    mini-batch SGD, the supervised stage of the lecture's recipe."""
    for p in model.parameters():
        p.requires_grad_(True)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    gen = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(y), generator=gen).to(y.device)
        for i in range(0, len(y) - batch_size + 1, batch_size):  # full batches only: equal-weight steps
            idx = perm[i : i + batch_size]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            if not torch.isfinite(loss):
                losses.append(float("nan"))
                return FineTuneResult(losses, None)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    acc = None
    if x_eval is not None and y_eval is not None:
        model.eval()
        with torch.no_grad():
            acc = (model(x_eval).argmax(1) == y_eval).float().mean().item()
        model.train()
    return FineTuneResult(losses, acc)
