"""The lecture's baseline activations: each a plain function plus an ``nn.Module`` twin (timm).

Modules take tensors laid out (N, C, ...): a per-channel parameter has shape (C,) and is viewed as
(1, C, 1, ...) so it broadcasts over any trailing dims; (N, C), (N, C, L) and (N, C, H, W) all work.
A module built without ``num_channels`` holds one scalar parameter shared by every channel.
Functions use ``torch.nn.functional`` primitives where they exist, for their numerics and kernels.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from typing import Any, Callable

from torch import Tensor, nn

__all__ = [
    "SELU_ALPHA", "SELU_LAMBDA", "GELU_SIGMOID_SCALE",
    "sigmoid", "tanh", "relu", "relu6", "leaky_relu", "prelu", "elu", "selu", "gelu", "gelu_tanh",
    "gelu_sigmoid", "silu", "swish", "maxout_channelwise", "hard_threshold", "softplus", "softsign",
    "identity", "hardtanh", "mish",
    "Sigmoid", "Tanh", "ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "SELU", "GELU", "GELUTanh",
    "GELUSigmoid", "SiLU", "Swish", "Maxout", "MaxoutActivation", "HardThreshold", "Softplus",
    "Softsign", "Identity", "Hardtanh", "Mish",
]

# Klambauer et al. 2017, eq. (14): the fixed point (mean 0, variance 1) of the SELU map; the same
# digits as torch's F.selu so the two agree to the last bit.
SELU_LAMBDA = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717
# Hendrycks & Gimpel 2016, sec. 2: Φ(x) ≈ σ(1.702 x).
GELU_SIGMOID_SCALE = 1.702


def _per_channel(p: Tensor, x: Tensor) -> Tensor:
    """View a parameter of shape (C,) or (1,) so it broadcasts over (N, C, ...) in x's dtype.

    An input whose channel count (dim 1; dim 0 of an unbatched (C,) input) is not C is refused, as
    ``nn.PReLU`` refuses it, rather than silently widened from 1 channel to C.
    """
    p = p.to(dtype=x.dtype)
    if p.numel() == 1:
        return p.reshape(())
    _check_channels(p.shape[0], x)
    if x.dim() < 2:  # an unbatched (C,) input
        return p
    shape = [1] * x.dim()
    shape[1] = p.numel()
    return p.view(shape)


def _check_channels(channels: int, x: Tensor) -> None:
    dim = 1 if x.dim() >= 2 else 0
    if x.dim() == 0 or x.shape[dim] != channels:
        raise ValueError(
            f"this activation was built with num_channels={channels} but got an input with "
            f"{x.shape[dim] if x.dim() > 0 else 0} channels on dim {dim} (shape {list(x.shape)})"
        )


def _channels(num_channels: int | None) -> int:
    if num_channels is not None and num_channels < 1:
        raise ValueError(f"num_channels must be a positive integer or None, got {num_channels}")
    return 1 if num_channels is None else num_channels


# --------------------------------------------------------------------------- functions
def _documented(name: str, fn: Callable[[Tensor], Tensor], doc: str) -> Callable[[Tensor], Tensor]:
    """A torch function as a function of this module, under its registry name and with a docstring
    that says where it comes from."""

    def f(x: Tensor) -> Tensor:
        return fn(x)

    f.__name__ = f.__qualname__ = name
    f.__doc__, f.__module__ = doc, __name__
    return f


# The functions that are torch's own, each with the paper it comes from.
sigmoid = _documented("sigmoid", torch.sigmoid, "σ(x) = 1/(1+e⁻ˣ): saturates, not zero-centred (the lecture).")
tanh = _documented("tanh", torch.tanh, "tanh(x) = 2σ(2x) − 1: zero-centred, still saturates (LeCun et al. 1998).")
relu = _documented("relu", F.relu, "max(0, x) (Nair & Hinton 2010; Glorot, Bordes & Bengio 2011).")
relu6 = _documented("relu6", F.relu6, "min(max(0, x), 6) = max(0, x) − max(0, x − 6) (Krizhevsky 2010).")
selu = _documented("selu", F.selu, "λ·elu_α(x), λ≈1.0507, α≈1.6733: self-normalizing (Klambauer et al. 2017).")
gelu = _documented("gelu", F.gelu, "x·Φ(x) = x·½(1 + erf(x/√2)), the exact form (Hendrycks & Gimpel 2016).")
silu = _documented("silu", F.silu, "x·σ(x) (Elfwing et al. 2017; Hendrycks & Gimpel 2016); the paper's Swish-1.")
softplus = _documented("softplus", F.softplus, "log(1 + eˣ), a smooth ReLU (Dugas et al. 2001); linear above x = 20.")
softsign = _documented("softsign", F.softsign, "x/(1 + |x|): tanh's shape, polynomial tails (Turian et al. 2009).")
hardtanh = _documented("hardtanh", F.hardtanh, "max(−1, min(1, x)): piecewise-linear tanh (Collobert 2004).")
mish = _documented("mish", F.mish, "x·tanh(softplus(x)) (Misra 2019, Mish).")

def leaky_relu(x: Tensor, negative_slope: float = 0.1) -> Tensor:
    """max(αx, x) with α = 0.1 as in the lecture (Maas, Hannun & Ng 2013 used 0.01)."""
    return F.leaky_relu(x, negative_slope)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """max(0, x) + α·min(0, x) with α learned, per channel on dim 1 (He et al. 2015, PReLU)."""
    if weight.numel() != 1:  # F.prelu's own message is RuntimeError "Mismatch of parameter numbers"
        _check_channels(weight.numel(), x)
    return F.prelu(x, weight.to(dtype=x.dtype))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    """x if x > 0 else α(eˣ − 1) (Clevert, Unterthiner & Hochreiter 2015, ELU)."""
    return F.elu(x, alpha)


def gelu_tanh(x: Tensor) -> Tensor:
    """½x(1 + tanh(√(2/π)(x + 0.044715x³))): GELU's tanh approximation (Hendrycks & Gimpel 2016)."""
    return F.gelu(x, approximate="tanh")


def gelu_sigmoid(x: Tensor) -> Tensor:
    """x·σ(1.702x): GELU's sigmoid approximation (Hendrycks & Gimpel 2016) = Swish, β=1.702."""
    return x * torch.sigmoid(1.702 * x)  # GELU_SIGMOID_SCALE: a literal, TorchScript reads no global float


def swish(x: Tensor, beta: Tensor | float = 1.0) -> Tensor:
    """x·σ(βx), β learnable per channel (Ramachandran, Zoph & Le 2017, "Searching for Activation
    Functions").

    β → 0 gives x/2 (linear), β → ∞ gives ReLU: Swish interpolates between the two.
    """
    if isinstance(beta, Tensor):  # one return per type: TorchScript refines the Union per branch
        return x * torch.sigmoid(_per_channel(beta, x) * x)
    return x * torch.sigmoid(beta * x)


def maxout_channelwise(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """maxⱼ (aⱼ·x + bⱼ) per channel, ``weight``/``bias`` (C, k) or (1, k) (Goodfellow 2013).

    This is Maxout restricted to one input per unit so that it maps (N, C, ...) -> (N, C, ...) and
    can replace any activation; the layer form mixes inputs, see :class:`Maxout`.
    """
    k = weight.shape[-1]
    if weight.shape[0] != 1:
        _check_channels(weight.shape[0], x)
    shape = [1] * (x.dim() + 1)
    shape[-1] = k
    if weight.shape[0] != 1:
        shape[1 if x.dim() >= 2 else 0] = weight.shape[0]
    a = weight.to(dtype=x.dtype).reshape(shape)
    b = bias.to(dtype=x.dtype).reshape(shape)
    return torch.amax(x.unsqueeze(-1) * a + b, dim=-1)


class _StepFunction(torch.autograd.Function):
    """1[x > 0] whose backward is the true derivative: zero (the delta at 0 is ignored)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:  # type: ignore[override]
        return (x > 0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:  # type: ignore[override]
        return torch.zeros_like(grad)


def hard_threshold(x: Tensor) -> Tensor:
    """1[x > 0]: the perceptron's step (Rosenblatt 1958; McCulloch & Pitts 1943).

    Its derivative is 0 for every x ≠ 0 (and undefined at 0), so every gradient that flows back
    through it is zero and nothing before it can learn by backpropagation — the lecture's reason
    for replacing it with sigmoid/ReLU, which keep the sign-based output but pass a gradient. The
    op still sits in an autograd graph (backward returns zeros), so a network using it runs.
    """
    return _StepFunction.apply(x)


def identity(x: Tensor) -> Tensor:
    """x: no non-linearity (a deep linear network collapses to one linear map)."""
    return x


# --------------------------------------------------------------------------- modules
_INPLACE = ("``inplace`` is accepted, as timm and torchvision pass it (``act_layer(inplace=True)``), "
            "and ignored: the input is never modified.")


class _Pointwise(nn.Module):
    """A parameter-free activation: a function applied element-wise (its docstring is the function's)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()


def _pointwise(name: str, fn: Any) -> type[nn.Module]:
    """The ``nn.Module`` twin of a parameter-free function (timm's layout: function + module).

    ``forward`` calls ``fn`` by closure, not through a class attribute, so that
    ``torch.jit.script`` can compile it.
    """

    def forward(self: nn.Module, x: Tensor) -> Tensor:
        return fn(x)

    doc = f"{fn.__doc__}\n\n{_INPLACE}"
    return type(name, (_Pointwise,), {"__doc__": doc, "forward": forward, "__module__": __name__})


Sigmoid = _pointwise("Sigmoid", sigmoid)
Tanh = _pointwise("Tanh", tanh)
ReLU = _pointwise("ReLU", relu)
ReLU6 = _pointwise("ReLU6", relu6)
SELU = _pointwise("SELU", selu)
GELU = _pointwise("GELU", gelu)
GELUTanh = _pointwise("GELUTanh", gelu_tanh)
GELUSigmoid = _pointwise("GELUSigmoid", gelu_sigmoid)
SiLU = _pointwise("SiLU", silu)
HardThreshold = _pointwise("HardThreshold", hard_threshold)
Softplus = _pointwise("Softplus", softplus)
Softsign = _pointwise("Softsign", softsign)
Identity = _pointwise("Identity", identity)
Hardtanh = _pointwise("Hardtanh", hardtanh)
Mish = _pointwise("Mish", mish)


class _Constant(nn.Module):
    """An activation with one fixed float constant (leaky ReLU's slope, ELU's α)."""

    constant = "negative_slope"

    def __init__(self, value: float) -> None:
        super().__init__()
        setattr(self, self.constant, float(value))

    def extra_repr(self) -> str:
        return f"{self.constant}={getattr(self, self.constant)}"


class LeakyReLU(_Constant):
    __doc__ = f"{leaky_relu.__doc__}\n\n{_INPLACE}"

    def __init__(self, negative_slope: float = 0.1, inplace: bool = False) -> None:
        super().__init__(negative_slope)

    def forward(self, x: Tensor) -> Tensor:
        return leaky_relu(x, self.negative_slope)


class ELU(_Constant):
    __doc__ = f"{elu.__doc__}\n\n{_INPLACE}"
    constant = "alpha"

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(alpha)

    def forward(self, x: Tensor) -> Tensor:
        return elu(x, self.alpha)


class _Learned(nn.Module):
    """An activation with one learned parameter of shape (C,) per channel, or (1,) shared."""

    parameter = "weight"

    def __init__(self, num_channels: int | None, init: float) -> None:
        super().__init__()
        setattr(self, self.parameter, nn.Parameter(torch.full((_channels(num_channels),), float(init))))

    def extra_repr(self) -> str:
        return f"num_parameters={getattr(self, self.parameter).numel()}"


class PReLU(_Learned):
    __doc__ = (f"PReLU: ``weight`` (α), shape (C,) per channel or (1,) shared; init 0.25 (He et al. 2015)."
               f"\n\n{_INPLACE}")

    def __init__(self, num_channels: int | None = None, init: float = 0.25, inplace: bool = False) -> None:
        super().__init__(num_channels, init)

    def forward(self, x: Tensor) -> Tensor:
        return prelu(x, self.weight)


class Swish(_Learned):
    __doc__ = (f"Swish x·σ(βx): ``beta`` of shape (C,) per channel, or (1,) shared; init 1.0 (= SiLU)."
               "\n\nRamachandran, Zoph & Le 2017 found it by the very search this package runs."
               f"\n\n{_INPLACE}")
    parameter = "beta"

    def __init__(self, num_channels: int | None = None, beta: float = 1.0, inplace: bool = False) -> None:
        super().__init__(num_channels, beta)

    def forward(self, x: Tensor) -> Tensor:
        return swish(x, self.beta)


class MaxoutActivation(nn.Module):
    """Channel-wise Maxout maxⱼ (aⱼx + bⱼ), j = 1..k, a, b learned per channel (Goodfellow 2013).

    Initialized to ReLU — slopes evenly spaced from 1 to 0, offsets 0, so the pieces are x, …, 0
    — which starts a network at a known baseline; training can bend it into Leaky ReLU, |x| or any
    convex piecewise-linear function with k pieces. ``inplace`` is accepted (timm's and torchvision's
    convention) and ignored.
    """

    def __init__(self, num_channels: int | None = None, k: int = 2, inplace: bool = False) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"maxout needs k >= 1 affine pieces, got {k}")
        c = _channels(num_channels)
        slopes = torch.linspace(1.0, 0.0, k) if k > 1 else torch.ones(1)
        self.weight = nn.Parameter(slopes.repeat(c, 1))
        self.bias = nn.Parameter(torch.zeros(c, k))

    def forward(self, x: Tensor) -> Tensor:
        return maxout_channelwise(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"num_channels={self.weight.shape[0]}, k={self.weight.shape[1]}"


class Maxout(nn.Module):
    """Maxout layer: hᵢ(x) = maxⱼ (wᵢⱼᵀx + bᵢⱼ), j = 1..k (Goodfellow et al. 2013, Maxout Networks).

    The lecture's definition: k affine maps per unit (k times the parameters of a linear layer),
    no saturation, no dead units; it generalizes ReLU (max(wᵀx+b, 0)) and Leaky ReLU. Maps
    (..., in_features) -> (..., out_features). Piece j of unit i is row i·k + j of ``linear``.
    """

    def __init__(self, in_features: int, out_features: int, k: int = 2, bias: bool = True) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"maxout needs k >= 1 affine pieces, got {k}")
        self.out_features = out_features
        self.k = k
        self.linear = nn.Linear(in_features, out_features * k, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        z = self.linear(x)
        return z.view(*z.shape[:-1], self.out_features, self.k).amax(dim=-1)

    def extra_repr(self) -> str:
        return f"k={self.k}"
