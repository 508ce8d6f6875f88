"""timm takes a found function's class as ``act_layer`` (it builds ``act_layer(inplace=True)``).

timm is not in the ``test`` extra: it requires torchvision, and pip would then replace the pinned
CPU torch with a CUDA build. ``.ci/run`` installs timm and torchvision 0.28.0 (the release built
for torch 2.13) without their dependencies; elsewhere these tests skip, saying so. PyPI's
torchvision wheel cannot load its C operators beside the CPU torch, and its ``__init__`` registers
fake kernels for two of them (``nms``, ``qnms``) unguarded; :func:`timm` declares their schemas
first, which is all its Python modules — everything timm uses to build a model — need.
"""
from __future__ import annotations

import importlib.util
from types import ModuleType

import pytest
import torch
from torch import nn

from actsearch import to_module
from tests.expressions.found_cases import EXPRESSIONS, activation_class, export_folder, on_path

MISSING = [m for m in ("timm", "torchvision") if importlib.util.find_spec(m) is None]
pytestmark = pytest.mark.skipif(
    bool(MISSING), reason=f"{' and '.join(MISSING)} not installed (.ci/run: pip install --no-deps timm torchvision==0.28.0)")

_SCHEMAS = ["nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
            "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"]
_LIBRARIES: list[object] = []  # a torch.library.Library un-registers its schemas when collected


@pytest.fixture(scope="module")
def timm(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    if not hasattr(torch.ops.torchvision, "nms"):
        lib = torch.library.Library("torchvision", "DEF")
        for schema in _SCHEMAS:
            lib.define(schema)
        _LIBRARIES.append(lib)
    on_path(export_folder(tmp_path_factory.mktemp("found_timm")))
    return pytest.importorskip("timm")


def _twins(timm: ModuleType, name: str, ours: type[nn.Module], theirs: type[nn.Module]) -> tuple[nn.Module, nn.Module]:
    """The same timm model with our act_layer and with torch's, sharing every weight."""
    torch.manual_seed(0)
    a = timm.create_model(name, pretrained=False, num_classes=3, act_layer=ours).eval()
    b = timm.create_model(name, pretrained=False, num_classes=3, act_layer=theirs).eval()
    b.load_state_dict(a.state_dict(), strict=False)
    return a, b


@pytest.mark.parametrize("path", ["to_module", "export"])
def test_resnet18_with_swish_as_act_layer_equals_timm_with_silu(timm: ModuleType, path: str) -> None:
    """x·σ(βx) at its initial β = 1 is SiLU: the two models give the same logits. This raised
    TypeError: __init__() got an unexpected keyword argument 'inplace'."""
    ours = activation_class(path, "x*sigmoid(beta*x)")
    a, b = _twins(timm, "resnet18", ours, nn.SiLU)
    assert sum(isinstance(m, ours) for m in a.modules()) >= 9  # every activation of the net is ours
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)
    a.train()
    a(x).square().mean().backward()
    betas = [m.beta for m in a.modules() if isinstance(m, ours)]
    assert all(beta.grad is not None and torch.isfinite(beta.grad).all() for beta in betas)


def test_convnext_atto_with_gelu_from_every_path_equals_timm_with_nn_gelu(timm: ModuleType) -> None:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for ours in (activation_class("get_activation", "gelu"), type(to_module("gelu(x)"))):
        a, b = _twins(timm, "convnext_atto", ours, nn.GELU)
        assert any(isinstance(m, ours) for m in a.modules())
        torch.testing.assert_close(a(x), b(x), rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("what", EXPRESSIONS)
def test_resnet18_trains_a_step_with_each_generated_expression(timm: ModuleType, what: str) -> None:
    ours = activation_class("to_module", what)
    torch.manual_seed(0)
    model = timm.create_model("resnet18", pretrained=False, num_classes=3, act_layer=ours)
    x = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    assert torch.isfinite(loss)
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
