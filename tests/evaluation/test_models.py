"""Child networks and initializers: shapes, per-layer activation modules, init statistics."""
from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from actsearch.errors import ActsearchError
from actsearch.evaluation import fans, init_weight_, initialize_
from actsearch.evaluation import CNN, MLP, ModelSpec, build_model


class ChannelScale(nn.Module):
    """A per-channel parametric activation (like Swish's β): records the channels it was given."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.num_channels = num_channels
        self.beta = nn.Parameter(torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] == self.num_channels, "activation must see (N, C, ...) with C on dim 1"
        return x * torch.sigmoid(self.beta.view(1, -1, *([1] * (x.dim() - 2))) * x)


@pytest.mark.parametrize(
    "name, std",
    [
        ("small", lambda fi, fo: 0.01),
        ("normal", lambda fi, fo: 1.0),
        ("large", lambda fi, fo: 1.0),
        ("xavier", lambda fi, fo: 1 / math.sqrt(fi)),  # the lecture's Xavier
        ("lecun", lambda fi, fo: 1 / math.sqrt(fi)),
        ("xavier_normal", lambda fi, fo: math.sqrt(2 / (fi + fo))),
        ("xavier_uniform", lambda fi, fo: math.sqrt(2 / (fi + fo))),  # U(+-a) has std a/sqrt(3)
        ("he_normal", lambda fi, fo: math.sqrt(2 / fi)),
        ("he_uniform", lambda fi, fo: math.sqrt(2 / fi)),
        ("kaiming_normal", lambda fi, fo: math.sqrt(2 / fi)),
    ],
)
def test_initializer_std_matches_formula(name: str, std: object) -> None:
    torch.manual_seed(0)
    w = torch.empty(400, 300)
    init_weight_(w, name)
    fi, fo = fans(w)
    assert (fi, fo) == (300, 400)
    expected = std(fi, fo)  # type: ignore[operator]
    assert abs(w.std().item() / expected - 1) < 0.02
    assert abs(w.mean().item()) < 0.02 * expected


def test_conv_fans_and_constant_init() -> None:
    w = torch.empty(8, 3, 5)
    assert fans(w) == (15, 40)
    assert torch.all(init_weight_(w, "constant", 0.5) == 0.5)
    assert torch.all(init_weight_(w, "zeros") == 0)


def test_initialize_bias_and_unknown_name() -> None:
    m = MLP(10, 3, "relu", (20,))
    initialize_(m, "he_normal", bias=0.01)
    assert torch.all(m.layers[0].bias == 0.01) and torch.all(m.head.bias == 0.01)
    with pytest.raises(ActsearchError, match="did you mean 'he_normal'"):
        initialize_(m, "he_nromal")


def test_zero_init_keeps_hidden_units_identical() -> None:
    """The lecture's symmetry argument: with constant weights every hidden unit computes the same."""
    m = build_model(ModelSpec(widths=(6, 6), init="constant"), "tanh", (1, 5), 3)
    initialize_(m, "constant", value=0.1)
    h = m.acts[0](m.layers[0](torch.randn(4, 5)))
    assert torch.allclose(h, h[:, :1].expand_as(h))


def test_mlp_gives_each_layer_its_own_activation() -> None:
    m = MLP(12, 5, ChannelScale, widths=(7, 9), norm="batch", dropout=0.1)
    assert [a.num_channels for a in m.acts] == [7, 9]
    assert m.acts[0].beta is not m.acts[1].beta
    shared = ChannelScale(7)  # a module instance is copied per layer, never shared
    m2 = MLP(12, 5, shared, widths=(7, 7))
    assert m2.acts[0] is not shared and m2.acts[0].beta is not m2.acts[1].beta
    assert m(torch.randn(4, 1, 12)).shape == (4, 5)


@pytest.mark.parametrize("norm", ["none", "batch", "layer"])
def test_cnn_1d_and_2d_shapes(norm: str) -> None:
    c1 = CNN((1, 40), 10, ChannelScale, widths=(4, 6, 8), norm=norm)
    assert [a.num_channels for a in c1.acts] == [4, 6, 8]
    assert c1.out_spatial == (5,)  # 40 -> 19 -> 10 -> 5, the MNIST-1D paper's ConvBase
    assert c1(torch.randn(3, 1, 40)).shape == (3, 10)
    c2 = CNN((1, 28, 28), 10, "relu", widths=(4, 4), kernel_sizes=(3, 3), norm=norm)
    assert c2(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    # BatchNorm's mean subtraction cancels the bias of the layer before it (Ioffe & Szegedy 2015):
    # such a layer has none (the head keeps its own); LayerNorm does not cancel it.
    for net in (c1, c2, MLP(12, 5, "relu", widths=(7,), norm=norm)):
        assert all((layer.bias is None) == (norm == "batch") for layer in net.layers)
        assert net.head.bias is not None


def test_build_model_is_seeded_and_leaves_global_rng_alone() -> None:
    spec = ModelSpec(kind="cnn", widths=(4, 4, 4))
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = build_model(spec, "relu", (1, 40), 10, seed=7)
    assert torch.equal(torch.rand(1), before)  # global stream untouched
    b = build_model(spec, "relu", (1, 40), 10, seed=7)
    c = build_model(spec, "relu", (1, 40), 10, seed=8)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    assert not torch.equal(a.layers[0].weight, c.layers[0].weight)


def test_bad_architecture_messages() -> None:
    with pytest.raises(ValueError, match="kernel sizes"):
        CNN((1, 40), 10, "relu", widths=(4, 4), kernel_sizes=(3,))
    with pytest.raises(ValueError, match="too small"):
        CNN((1, 4), 10, "relu", widths=(4, 4), kernel_sizes=(5, 5))
    with pytest.raises(ValueError, match="normalization"):
        MLP(4, 2, "relu", (3,), norm="group")
