"""Greedy layer-wise pretraining API (actsearch.pretrain)."""
from __future__ import annotations

import pytest
import torch

from actsearch.errors import ActsearchError
from actsearch.evaluation import MLP
from actsearch.lecture import fine_tune, hidden_representation, pretrain_greedy


def _data(n: int = 256, d: int = 20, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs on a 3-dimensional subspace (so an autoencoder has something to find), 2 classes."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 3, generator=g)
    x = torch.sigmoid(z @ torch.randn(3, d, generator=g))
    return x, (z[:, 0] > 0).long()


def test_pretraining_lowers_each_layers_reconstruction_loss() -> None:
    x, _ = _data()
    res = pretrain_greedy((16, 8, 8), x, epochs=8, lr=1e-2, batch_size=32, seed=0)
    assert isinstance(res.model, MLP) and len(res.layers) == 3
    for r in res.layers:
        assert r.final_loss < r.initial_loss
        assert len(r.curve) == 8
    assert res.losses == [r.final_loss for r in res.layers]
    assert [(r.in_features, r.out_features) for r in res.layers] == [(20, 16), (16, 8), (8, 8)]


def test_lower_layers_are_frozen_and_head_untouched() -> None:
    x, _ = _data()
    torch.manual_seed(1)
    model = MLP(20, 2, "tanh", (12, 6))
    head = model.head.weight.detach().clone()
    seen: list[torch.Tensor] = []
    orig = model.layers[1].forward

    def spy(h: torch.Tensor) -> torch.Tensor:  # snapshot layer 1's weights while layer 2 trains
        seen.append(model.layers[0].weight.detach().clone())
        return orig(h)

    model.layers[1].forward = spy  # type: ignore[method-assign]
    pretrain_greedy(model, x, epochs=2, batch_size=64, seed=0)
    assert len(seen) > 2
    assert all(torch.equal(s, seen[0]) for s in seen)  # layer 1 frozen during layer 2's stage
    assert torch.equal(model.head.weight, head)  # the output layer is left for fine-tuning


def test_deterministic() -> None:
    x, _ = _data()
    a = pretrain_greedy((8,), x, epochs=2, seed=3)
    b = pretrain_greedy((8,), x, epochs=2, seed=3)
    assert a.losses == b.losses
    assert torch.equal(a.model.layers[0].weight, b.model.layers[0].weight)


def test_fine_tune_learns_and_unfreezes() -> None:
    x, y = _data(512)
    res = pretrain_greedy((16, 16), x, num_classes=2, epochs=3, lr=1e-2, seed=0)
    for p in res.model.parameters():
        p.requires_grad_(False)
    ft = fine_tune(res.model, x, y, epochs=20, lr=0.5, batch_size=64, x_eval=x, y_eval=y)
    assert all(p.requires_grad for p in res.model.parameters())
    assert sum(ft.losses[-8:]) / 8 < 0.7 * ft.losses[0]
    assert ft.accuracy is not None and ft.accuracy > 0.75
    h = hidden_representation(res.model, x, 2)
    assert h.shape == (512, 16)


def test_bad_input() -> None:
    x, _ = _data()
    with pytest.raises(ActsearchError, match="positive"):
        pretrain_greedy((0, 4), x)
    with pytest.raises(ActsearchError, match=r"\.layers"):
        pretrain_greedy(torch.nn.Linear(20, 2), x)
    with pytest.raises(ActsearchError, match="no unlabeled"):
        pretrain_greedy((4,), x[:0])
