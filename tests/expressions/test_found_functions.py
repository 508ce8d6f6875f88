"""Found functions work wherever a PyTorch module goes: torch.compile, pickling (a fresh process,
DataLoader spawn workers), torch.export with a dynamic batch, ONNX + onnxruntime, float64
gradcheck, TorchScript, per-channel β on every layout, timm's ``inplace`` keyword and a clear
error on a wrong channel count — for ``to_module``, ``get_activation`` and exported classes alike,
over generated expressions of the paper's space (see found_cases.py). timm: test_found_timm.py."""
from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.func import functional_call
from torch.utils.data import DataLoader

from tests.expressions.found_cases import (
    CASES, CHANNELS, EXPRESSIONS, GENERATED, IDS, ActivationDataset, conv_model, export_folder, factory, on_path,
    per_channel, perturbed,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = export_folder(tmp_path_factory.mktemp("found"))
    on_path(folder)
    return folder


@pytest.fixture(autouse=True)
def _exported_on_path(exported: Path) -> None:
    """Every test may build an exported class (their file is imported from ``exported``)."""


def _x(shape: tuple[int, ...] = (2, 3, 8, 8), seed: int = 1, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


# ---- torch.compile -------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_compiled_with_fullgraph_matches_eager_forward_and_backward(path: str, what: str) -> None:
    """``to_module`` modules failed here with ModuleNotFoundError: '<actsearch-…>' (their module
    could not be imported). aot_eager runs Dynamo and AOTAutograd (where that failed) without the
    C++ compiler; the inductor test below compiles two for real."""
    torch._dynamo.reset()
    model = conv_model(factory(path, what)(CHANNELS))
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
    x = _x()
    y, yc = model(x), compiled(x)
    torch.testing.assert_close(yc, y, rtol=1e-5, atol=1e-5)
    g = torch.autograd.grad(y.sum(), list(model.parameters()))
    gc = torch.autograd.grad(compiled(x).sum(), list(model.parameters()))
    for a, b in zip(gc, g):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("what", ["x*sigmoid(beta*x)", "beta0*sinc(x) + (1 - beta0)*sin(x)"])
def test_compiled_by_inductor_matches_eager(what: str) -> None:
    torch._dynamo.reset()
    model = conv_model(factory("to_module", what)(CHANNELS))
    compiled = torch.compile(model, fullgraph=True)
    x = _x()
    torch.testing.assert_close(compiled(x), model(x), rtol=1e-5, atol=1e-5)


# ---- pickling -------------------------------------------------------------------------------------
LOADER = textwrap.dedent("""
    import json, sys
    import torch
    assert "actsearch" not in sys.modules  # unpickling alone must find the classes
    out = {}
    for name in sys.argv[1:]:
        try:
            model, x, y = torch.load(name, weights_only=False)
            act = model[1]
            out[name] = {"diff": float((model(x) - y).abs().max()), "module": type(act).__module__,
                         "params": [round(float(p.sum()), 6) for p in act.parameters()]}
        except Exception as exc:  # reported per file: one broken class fails one case
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(out))
""")


@pytest.fixture(scope="module")
def reloaded(tmp_path_factory: pytest.TempPathFactory, exported: Path) -> dict[str, dict]:
    """Every case's model saved whole (``torch.save(model)``) and loaded in ONE fresh interpreter
    that has actsearch installed but not imported (torch's start-up is the slow part)."""
    folder = tmp_path_factory.mktemp("saved")
    files, trained = {}, {}
    for i, (path, what) in enumerate(CASES):
        model = conv_model(factory(path, what)(CHANNELS), seed=i)
        x = _x(seed=i)
        files[(path, what)] = str(folder / f"model{i}.pt")
        trained[(path, what)] = [round(float(p.detach().sum()), 6) for p in model[1].parameters()]
        torch.save((model, x, model(x).detach()), files[(path, what)])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(exported), str(ROOT)])}
    proc = subprocess.run([sys.executable, "-c", LOADER, *files.values()], capture_output=True, text=True,
                          timeout=300, cwd=folder, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    return {case: {**out[f], "trained": trained[case]} for case, f in files.items()}


@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_a_saved_model_loads_in_a_fresh_process(reloaded: dict, path: str, what: str) -> None:
    """``torch.save(model)`` failed with PicklingError: Can't pickle <class '<actsearch-…>.Activation'>."""
    report = reloaded[(path, what)]
    assert "error" not in report, report
    assert report["diff"] == 0.0
    assert report["module"] == type(factory(path, what)(CHANNELS)).__module__
    assert report["params"] == report["trained"]  # the trained β came back, not fresh initial values


@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_state_dict_deepcopy_and_in_process_pickle_round_trip(path: str, what: str) -> None:
    import pickle  # here: the round trip is the subject

    make = factory(path, what)
    act = perturbed(make(CHANNELS))
    x = _x((2, CHANNELS, 5))
    fresh = make(CHANNELS)
    fresh.load_state_dict(act.state_dict())
    for other in (fresh, copy.deepcopy(act), pickle.loads(pickle.dumps(act)),
                  pickle.loads(pickle.dumps(act, protocol=2))):
        assert type(other) is type(act)
        torch.testing.assert_close(other(x), act(x), rtol=0, atol=0)
    assert pickle.loads(pickle.dumps(type(act))) is type(act)  # the class itself pickles too


@pytest.mark.slow
def test_dataloader_spawn_workers_unpickle_the_activations() -> None:
    """A spawned worker (DataLoader, DDP) receives the dataset pickled: the generated classes
    must be found again in the worker's own interpreter."""
    picks = [e for e in EXPRESSIONS[:10]]
    acts = [perturbed(factory("to_module", e)(CHANNELS), seed=i) for i, e in enumerate(picks)]
    acts += [perturbed(factory("get_activation", n)(CHANNELS)) for n in ("swish", "prelu", "gelu")]
    data = ActivationDataset(acts)
    expected = torch.stack([data[i] for i in range(len(data))])
    loader = DataLoader(data, batch_size=2, num_workers=1, multiprocessing_context="spawn")
    got = torch.cat(list(loader))
    torch.testing.assert_close(got, expected, rtol=0, atol=0)


# ---- torch.export, ONNX -------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_torch_export_with_a_dynamic_batch(path: str, what: str) -> None:
    model = conv_model(factory(path, what)(CHANNELS)).eval()
    batch = torch.export.Dim("batch", min=1, max=64)
    program = torch.export.export(model, (_x((2, 3, 8, 8)),), dynamic_shapes=({0: batch},))
    for n in (1, 5):
        x = _x((n, 3, 8, 8), seed=n)
        torch.testing.assert_close(program.module()(x), model(x), rtol=1e-5, atol=1e-6)


class _Bank(nn.Module):
    """One convolution feeding every activation of a path: one ONNX export (the exporter's fixed
    cost is seconds) checks them all, each output compared on its own."""

    def __init__(self, acts: list[nn.Module]) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, CHANNELS, 3)
        self.acts = nn.ModuleList(perturbed(a, i) for i, a in enumerate(acts))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        h = self.conv(x)
        return tuple(act(h) for act in self.acts)


def _onnxruntime_outputs(bank: _Bank, x: torch.Tensor) -> list[torch.Tensor]:
    import onnxruntime  # here: the test extra installs it, the fixture below skips without it

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(bank, (_x(),), dynamo=True, verbose=False,
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1, max=64)},))
    session = onnxruntime.InferenceSession(program.model_proto.SerializeToString(),
                                           providers=["CPUExecutionProvider"])
    return [torch.from_numpy(y) for y in session.run(None, {session.get_inputs()[0].name: x.numpy()})]


@pytest.fixture(scope="module")
def onnx_outputs(exported: Path) -> dict[tuple[str, str], object]:
    """Per case: (onnxruntime's output, torch's output) at a batch the export did not see, or the
    exporter's error (which names the operator it could not translate)."""
    pytest.importorskip("onnxruntime", reason="the test extra installs onnxruntime")
    pytest.importorskip("onnxscript", reason="the test extra installs onnxscript (the dynamo exporter needs it)")
    out: dict[tuple[str, str], object] = {}
    x = _x((5, 3, 8, 8), seed=5)
    for path in ("to_module", "get_activation", "export"):
        cases = [(p, w) for p, w in CASES if p == path]
        try:
            runs = [(cases, bank := _Bank([factory(*c)(CHANNELS) for c in cases]).eval(), _onnxruntime_outputs(bank, x))]
        except Exception:  # one case broke the bank: export each alone to say which
            runs = []
            for case in cases:
                bank = _Bank([factory(*case)(CHANNELS)]).eval()
                try:
                    runs.append(([case], bank, _onnxruntime_outputs(bank, x)))
                except Exception as exc:
                    out[case] = f"{type(exc).__name__}: {exc}"
        for group, bank, ys in runs:
            with torch.no_grad():
                out.update({case: (y, ref) for case, y, ref in zip(group, ys, bank(x))})
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_onnx_dynamo_export_matches_onnxruntime(onnx_outputs: dict, path: str, what: str) -> None:
    """x1/(x2 ± ε) did not export: its torch.copysign became prims.signbit, which ONNX lacks."""
    result = onnx_outputs[(path, what)]
    assert isinstance(result, tuple), result
    torch.testing.assert_close(*result, rtol=1e-4, atol=1e-4)


# ---- numerics -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_float64_gradcheck_in_the_input_and_every_parameter(path: str, what: str) -> None:
    act = perturbed(factory(path, what)(CHANNELS)).double()
    names = [n for n, _ in act.named_parameters()]
    x = _x((3, CHANNELS, 2), seed=3, dtype=torch.float64).requires_grad_(True)
    params = [p.detach().clone().requires_grad_(True) for p in act.parameters()]

    def f(x: torch.Tensor, *ps: torch.Tensor) -> torch.Tensor:
        return functional_call(act, dict(zip(names, ps)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5, rtol=1e-4)


LAYOUTS = {  # name -> (layer, input shape, memory format)
    "Linear": (lambda: nn.Linear(5, CHANNELS), (3, 5), None),
    "Conv1d": (lambda: nn.Conv1d(2, CHANNELS, 3), (3, 2, 7), None),
    "Conv2d": (lambda: nn.Conv2d(2, CHANNELS, 3), (3, 2, 6, 6), None),
    "Conv2d-channels_last": (lambda: nn.Conv2d(2, CHANNELS, 3), (3, 2, 6, 6), torch.channels_last),
    "Conv3d": (lambda: nn.Conv3d(2, CHANNELS, 3), (2, 2, 5, 5, 5), None),
    "Conv3d-channels_last": (lambda: nn.Conv3d(2, CHANNELS, 3), (2, 2, 5, 5, 5), torch.channels_last_3d),
}


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("i", range(len(EXPRESSIONS)), ids=EXPRESSIONS)
def test_per_channel_beta_on_every_layout_matches_the_function_channel_by_channel(layout: str, i: int) -> None:
    """Each channel c computes f(x; β[c]) — checked against the candidate's plain function."""
    make_layer, shape, fmt = LAYOUTS[layout]
    torch.manual_seed(0)
    layer, act = make_layer(), perturbed(factory("to_module", EXPRESSIONS[i])(CHANNELS))
    x = _x(shape)
    if fmt is not None:
        layer, x = layer.to(memory_format=fmt), x.contiguous(memory_format=fmt)
    with torch.no_grad():
        h = layer(x)
        y = act(h)
        cand = GENERATED[i]
        for c in range(CHANNELS):
            betas = [getattr(act, b)[c] for b in cand.betas]
            expected = torch.as_tensor(cand.function(h[:, c], *betas)).expand_as(h[:, c])
            torch.testing.assert_close(y[:, c], expected, rtol=1e-6, atol=1e-6)


# ---- TorchScript, keywords, channel counts -----------------------------------------------------------
@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_jit_script_matches_eager(path: str, what: str) -> None:
    """TorchScript failed on about half: a Tensor | float β hint, the global EPS, ``type(self).fn``."""
    act = perturbed(factory(path, what)(CHANNELS))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation warning
        scripted = torch.jit.script(act)
    x = _x((3, CHANNELS, 4))
    torch.testing.assert_close(scripted(x), act(x), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("path", "what"), CASES, ids=IDS)
def test_the_inplace_keyword_of_timm_and_torchvision_is_accepted_and_leaves_the_input(path: str, what: str) -> None:
    """timm builds ``act_layer(inplace=True)``: that raised TypeError."""
    make = factory(path, what)
    x = _x((3, CHANNELS, 4))
    before = x.clone()
    for act in (make(inplace=True), make(CHANNELS, inplace=True), make(inplace=False)):
        y = perturbed(act)(x)
        torch.testing.assert_close(x, before, rtol=0, atol=0)
        assert y.shape == x.shape


# (an exported class holds the parameters its to_module twin holds; the file is written later)
PER_CHANNEL = [(p, w) for p, w in CASES if per_channel("to_module" if p == "export" else p, w)]


@pytest.mark.parametrize(("path", "what"), PER_CHANNEL, ids=[f"{p}:{w}" for p, w in PER_CHANNEL])
@pytest.mark.parametrize("wrong", [1, CHANNELS + 1, CHANNELS - 1])
def test_a_wrong_channel_count_is_refused_naming_both_numbers(path: str, what: str, wrong: int) -> None:
    """A 1-channel input was silently widened to num_channels channels."""
    act = factory(path, what)(CHANNELS)
    for shape in [(2, wrong), (2, wrong, 5), (2, wrong, 5, 5), (2, wrong, 3, 3, 3)]:
        with pytest.raises(ValueError, match=rf"num_channels={CHANNELS} .* {wrong} channels on dim 1"):
            act(torch.randn(shape))
    assert act(torch.randn(2, CHANNELS, 5)).shape == (2, CHANNELS, 5)
