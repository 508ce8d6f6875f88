"""Baseline activations checked against torch.nn.functional and their defining formulas."""
from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from actsearch.expressions import baselines as B
from actsearch.expressions.activations import (
    Maxout, MaxoutActivation, PReLU, Swish, describe_activations, get_activation, list_activations,
    make_activation, resolve_activation_name,
)
from actsearch.errors import UnknownActivationError

TOL = dict(rtol=1e-6, atol=1e-6)


def _x(*shape: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*shape, generator=g, dtype=torch.float64) * 4  # reaches relu6's kink at 6
    return x.requires_grad_(True)


def _value_and_grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = fn(x)
    (g,) = torch.autograd.grad(y, x, torch.ones_like(y))
    return y.detach(), g


def _assert_same(fn, ref, x: torch.Tensor) -> None:
    y1, g1 = _value_and_grad(fn, x)
    y2, g2 = _value_and_grad(ref, x)
    torch.testing.assert_close(y1, y2, **TOL)
    torch.testing.assert_close(g1, g2, **TOL)


REFERENCES = {
    "sigmoid": torch.sigmoid,
    "tanh": torch.tanh,
    "relu": F.relu,
    "relu6": F.relu6,
    "leaky_relu": lambda x: F.leaky_relu(x, 0.1),
    "elu": F.elu,
    "selu": F.selu,
    "gelu": F.gelu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_sigmoid": lambda x: x * torch.sigmoid(1.702 * x),
    "silu": F.silu,
    "softplus": F.softplus,
    "hardtanh": F.hardtanh,
    "identity": lambda x: x,
    "mish": F.mish,
    "prelu": lambda x: F.prelu(x, torch.full((1,), 0.25, dtype=x.dtype)),
    "swish": F.silu,  # β starts at 1
}


@pytest.mark.parametrize("name", sorted(REFERENCES))
def test_module_matches_torch_functional(name: str) -> None:
    module = get_activation(name).double()
    _assert_same(module, REFERENCES[name], _x(64, 3, 5))


@pytest.mark.parametrize(
    "name, formula",
    [
        ("relu6", lambda x: torch.clamp(x, min=0) - torch.clamp(x - 6, min=0)),  # lecture's
        ("leaky_relu", lambda x: torch.maximum(0.1 * x, x)),
        ("elu", lambda x: torch.where(x > 0, x, torch.expm1(x))),
        ("selu", lambda x: B.SELU_LAMBDA * torch.where(x > 0, x, B.SELU_ALPHA * torch.expm1(x))),
        ("gelu", lambda x: x * 0.5 * (1 + torch.erf(x / 2**0.5))),
        ("hardtanh", lambda x: torch.clamp(x, -1, 1)),
        ("softplus", lambda x: torch.log1p(torch.exp(x))),
    ],
)
def test_module_matches_its_defining_formula(name: str, formula) -> None:
    _assert_same(get_activation(name).double(), formula, _x(64, 3, seed=1))


def test_leaky_relu_slope_is_configurable() -> None:
    x = _x(10, 4)
    _assert_same(B.LeakyReLU(negative_slope=0.01).double(), lambda t: F.leaky_relu(t, 0.01), x)
    assert get_activation("leaky_relu", negative_slope=0.2).negative_slope == 0.2


def test_selu_constants_match_torch() -> None:
    x = torch.tensor([-3.0, -1.0, 2.0], dtype=torch.float64)
    expected = B.SELU_LAMBDA * torch.where(x > 0, x, B.SELU_ALPHA * torch.expm1(x))
    torch.testing.assert_close(F.selu(x), expected, rtol=1e-15, atol=0)
    assert abs(B.SELU_LAMBDA - 1.0507) < 1e-4 and abs(B.SELU_ALPHA - 1.6733) < 1e-4


def test_gelu_sigmoid_approximates_exact_gelu() -> None:
    x = torch.linspace(-10, 10, 20001, dtype=torch.float64)
    err = (B.gelu_sigmoid(x) - F.gelu(x)).abs().max().item()
    assert err < 0.021  # max |x·σ(1.702x) − x·Φ(x)| ≈ 0.0203, near |x| ≈ 2
    assert (B.gelu_tanh(x) - F.gelu(x)).abs().max().item() < 1e-3  # tanh form is much closer


@pytest.mark.parametrize("shape", [(8, 3), (8, 3, 7), (8, 3, 4, 5)])
def test_prelu_per_channel_matches_f_prelu(shape: tuple[int, ...]) -> None:
    m = PReLU(num_channels=3).double()
    assert m.weight.shape == (3,) and torch.all(m.weight == 0.25)
    with torch.no_grad():
        m.weight.copy_(torch.tensor([0.1, -0.5, 2.0]))
    x = _x(*shape)
    _assert_same(m, lambda t: F.prelu(t, m.weight.detach()), x)
    c = [1] * len(shape)
    c[1] = 3
    a = m.weight.detach().view(c)
    _assert_same(m, lambda t: torch.clamp(t, min=0) + a * torch.clamp(t, max=0), x)
    assert PReLU().weight.shape == (1,)


@pytest.mark.parametrize("shape", [(8, 3), (8, 3, 7), (8, 3, 4, 5)])
def test_swish_beta_is_learnable_per_channel(shape: tuple[int, ...]) -> None:
    m = Swish(num_channels=3).double()
    assert m.beta.shape == (3,) and torch.all(m.beta == 1.0)
    with torch.no_grad():
        m.beta.copy_(torch.tensor([0.5, 1.0, 3.0]))
    x = _x(*shape)
    c = [1] * len(shape)
    c[1] = 3
    beta = m.beta.detach().view(c)
    _assert_same(m, lambda t: t * torch.sigmoid(beta * t), x)
    m(x).sum().backward()
    assert m.beta.grad is not None and m.beta.grad.shape == (3,)
    assert torch.all(m.beta.grad.abs() > 0)
    # the gradient is ∂/∂β of Σ x·σ(βx) = Σ x²·σ'(βx), summed over all but the channel dim
    s = torch.sigmoid(beta * x.detach())
    manual = (x.detach() ** 2 * s * (1 - s)).transpose(0, 1).reshape(3, -1).sum(1)
    torch.testing.assert_close(m.beta.grad, manual, **TOL)
    assert Swish().beta.shape == (1,)


def test_maxout_layer_matches_manual_computation() -> None:
    torch.manual_seed(0)
    layer = Maxout(in_features=6, out_features=4, k=3).double()
    x = _x(5, 6)
    y = layer(x)
    assert y.shape == (5, 4)
    w = layer.linear.weight.view(4, 3, 6)
    b = layer.linear.bias.view(4, 3)
    pieces = torch.einsum("nd,ikd->nik", x, w) + b  # (N, unit, piece)
    torch.testing.assert_close(y, pieces.max(dim=-1).values, **TOL)
    y.sum().backward()
    assert layer.linear.weight.grad is not None


def test_maxout_activation_is_channelwise_and_starts_as_relu() -> None:
    m = MaxoutActivation(num_channels=3, k=2).double()
    x = _x(8, 3, 5)
    _assert_same(m, F.relu, x)
    with torch.no_grad():  # the lecture's max(0.5x, -0.5x) on channel 1 only
        m.weight[1] = torch.tensor([0.5, -0.5])
    y = m(x)
    torch.testing.assert_close(y[:, 1], 0.5 * x[:, 1].abs(), **TOL)
    torch.testing.assert_close(y[:, 0], F.relu(x[:, 0]), **TOL)
    y.sum().backward()
    assert m.weight.grad.shape == (3, 2) and m.bias.grad.shape == (3, 2)
    k4 = get_activation("maxout", 3, k=4)
    assert k4.weight.shape == (3, 4)


def test_hard_threshold_is_a_step_with_zero_gradient() -> None:
    x = torch.tensor([-2.0, -1e-9, 0.0, 1e-9, 3.0], dtype=torch.float64, requires_grad=True)
    m = get_activation("hard_threshold")
    y = m(x)
    assert y.tolist() == [0.0, 0.0, 0.0, 1.0, 1.0]
    y.sum().backward()
    assert torch.equal(x.grad, torch.zeros_like(x))
    # inside a network it runs, and nothing before it receives a learning signal
    net = nn.Sequential(nn.Linear(4, 8), m, nn.Linear(8, 1))
    net(torch.randn(16, 4)).pow(2).mean().backward()
    assert torch.count_nonzero(net[0].weight.grad) == 0
    assert net[2].weight.grad is not None


def test_unknown_name_says_did_you_mean() -> None:
    with pytest.raises(UnknownActivationError, match="did you mean 'relu'"):
        get_activation("rleu")
    with pytest.raises(UnknownActivationError, match="did you mean 'leaky_relu'"):
        get_activation("leaky_rellu")
    with pytest.raises(KeyError):  # still a KeyError for callers that catch that
        get_activation("no_such_thing")


@pytest.mark.parametrize(
    "alias, canonical",
    [
        ("leaky-relu", "leaky_relu"), ("LeakyReLU", "leaky_relu"), ("lrelu", "leaky_relu"),
        ("gelu_erf", "gelu"), ("GELU", "gelu"), ("linear", "identity"), ("Swish-1", "silu"),
        ("ReLU6", "relu6"), ("quick_gelu", "gelu_sigmoid"), ("step", "hard_threshold"),
        ("gelu-tanh", "gelu_tanh"), ("  PReLU ", "prelu"),
    ],
)
def test_aliases_and_spelling(alias: str, canonical: str) -> None:
    assert resolve_activation_name(alias) == canonical
    assert type(get_activation(alias)) is type(get_activation(canonical))
    assert type(make_activation(alias)) is type(get_activation(canonical))


def test_make_activation_accepts_each_kind() -> None:
    assert isinstance(make_activation("relu"), B.ReLU)
    assert make_activation("swish", num_channels=5).beta.shape == (5,)
    proto = Swish(num_channels=2)
    a, b = make_activation(proto), make_activation(proto)
    assert a is not proto and a.beta is not proto.beta and a.beta is not b.beta  # deep copies
    torch.testing.assert_close(a.beta, proto.beta)
    assert make_activation(PReLU, num_channels=4).weight.shape == (4,)  # class with num_channels
    assert isinstance(make_activation(nn.Tanh), nn.Tanh)  # class without it
    assert make_activation(lambda c: MaxoutActivation(c, k=3), 2).weight.shape == (2, 3)
    with pytest.raises(TypeError, match="not an nn.Module"):
        make_activation(lambda c: "relu")
    with pytest.raises(TypeError):
        make_activation(3.0)  # type: ignore[arg-type]


def test_listing_and_descriptions() -> None:
    names = list_activations()
    required = {
        "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "gelu",
        "gelu_tanh", "gelu_sigmoid", "silu", "swish", "maxout", "hard_threshold", "softplus",
        "identity", "hardtanh",
    }
    assert required <= set(names) and names == sorted(names)
    described = describe_activations()
    assert [n for n, _ in described] == names
    assert all(isinstance(f, str) and f and "\n" not in f for _, f in described)


@pytest.mark.parametrize("name", list_activations())
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_every_activation_keeps_shape_and_stays_finite(name: str, dtype: torch.dtype) -> None:
    for channels in (None, 3):
        m = get_activation(name, channels).to(dtype)
        x = (torch.randn(4, 3, 5, generator=torch.Generator().manual_seed(2)) * 10).to(dtype)
        x.requires_grad_(True)
        y = m(x)
        assert y.shape == (4, 3, 5) and y.dtype == dtype
        assert torch.isfinite(y).all()
        y.sum().backward()
        assert torch.isfinite(x.grad).all()
    assert get_activation(name) is not get_activation(name)  # fresh each time


@pytest.mark.parametrize("name", ["prelu", "swish", "maxout"])
def test_parameter_gradients_pass_gradcheck(name: str) -> None:
    m = get_activation(name, 3).double()
    with torch.no_grad():  # move off the init so the pieces/slopes are all distinct
        for p in m.parameters():
            p.add_(torch.linspace(-0.3, 0.4, p.numel(), dtype=p.dtype).view_as(p))
    x = _x(2, 3, 4)
    params = tuple(m.parameters())

    def fn(inp: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        named = {n: q for (n, _), q in zip(m.named_parameters(), ps)}
        return torch.func.functional_call(m, named, (inp,))

    assert torch.autograd.gradcheck(fn, (x, *params))


def test_parameters_follow_input_dtype_without_conversion() -> None:
    # float32 parameters on a float64 input: the functions cast, so a mixed call still works
    x = _x(4, 3, 5)
    for name in ("prelu", "swish", "maxout"):
        assert get_activation(name, 3)(x).dtype == torch.float64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", list_activations())
def test_runs_on_cuda(name: str) -> None:
    m = get_activation(name, 3).cuda()
    x = torch.randn(4, 3, 5, device="cuda")
    assert m(x).device.type == "cuda"
