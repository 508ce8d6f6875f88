"""Fused C activations (actsearch.fused) against the torch path and a float64 reference."""
from __future__ import annotations

import random
import warnings
from typing import Any

import pytest
import torch

from actsearch.evaluation import kernels
from actsearch.expressions import make_activation
from actsearch.evaluation.kernels import PopulationKernel, as_candidate, population_kernel
from actsearch.expressions import load_space
from actsearch.expressions import parse

pytestmark = pytest.mark.skipif(not kernels.enabled(), reason="no C compiler for the fused kernels")

CPU = torch.device("cpu")
# A grid over the range pre-activations live in, plus the points where the safe primitives switch
# (0, ±ε of log/√/division), tiny values (sinc's series) and large ones (overflow, softplus's cut).
SPECIAL = [0.0, 1e-7, -1e-7, 1e-3, -1e-3, 2e-3, -2e-3, 0.04, -0.06, 19.9, 20.1, 30.0, -30.0, 90.0, -90.0]
POINTS = torch.cat([torch.linspace(-6.0, 6.0, 113), torch.tensor(SPECIAL)])  # 128 values


def _paper_sample(n: int, seed: int = 0) -> list[Any]:
    space = load_space("paper-1")
    rng = random.Random(seed)
    return [space.build({name: rng.choice(choices) for name, choices in space.slots()}) for _ in range(n)]


def _reference(cand: Any, x: torch.Tensor, betas: list[torch.Tensor], dtype: torch.dtype, gy: torch.Tensor,
               channel_dim: int) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    """f, df/dx·gy and the per-channel dL/dβ by torch autograd on the printed torch code."""
    xs = x.detach().to(dtype).requires_grad_(True)
    bs = [b.detach().to(dtype).requires_grad_(True) for b in betas]
    shape = [1] * x.dim()
    shape[channel_dim] = -1
    y = cand.function(xs, *(b.view(shape) if b.dim() else b for b in bs))
    y = torch.as_tensor(y, dtype=dtype).expand_as(xs)
    if not y.requires_grad:  # a constant candidate
        return y.detach(), torch.zeros_like(xs), [torch.zeros_like(b) for b in bs]
    gx, *gb = torch.autograd.grad(y, [xs, *bs], gy.to(dtype), allow_unused=True)
    return y.detach(), gx if gx is not None else torch.zeros_like(xs), [
        g if g is not None else torch.zeros_like(b) for g, b in zip(gb, bs)]


def _close(got: torch.Tensor, ref64: torch.Tensor, what: str, t32: torch.Tensor | None = None) -> None:
    """``got`` (float32 kernel) within float32 rounding of the float64 reference — and, where torch's
    own float32 path ``t32`` is off (cancellation, overflow), no more than 4x as far off as it."""
    got, ref64 = got.double(), ref64.double()
    assert not torch.isfinite(got[~torch.isfinite(ref64)]).any(), f"{what}: finite where the exact value is not"
    ok = torch.isfinite(ref64) & (ref64.abs() < 1e30)
    tol = 1e-4 + 2e-3 * ref64.abs()
    if t32 is not None:
        ok &= torch.isfinite(t32)  # where float32 torch overflows, there is no float32 answer to match
        tol = tol + 4 * (t32.double() - ref64).abs().nan_to_num(posinf=0.0)
    err = (got - ref64).abs()
    bad = ok & ~(err <= tol)
    if bad.any():
        i = int(bad.nonzero()[0, 0]) if bad.dim() == 1 else tuple(bad.nonzero()[0].tolist())
        raise AssertionError(f"{what}: {got[i].item():.6g} where the exact value is {ref64[i].item():.6g}")


def _check_member(cand: Any, kernel: PopulationKernel, index: int, module: torch.nn.Module) -> None:
    """One member alone, MLP layout (1, N, C): forward, input gradient and per-channel β grads."""
    x = POINTS.view(1, 8, 16).clone().requires_grad_(True)
    gy = torch.linspace(-1.0, 1.0, 128).view(1, 8, 16)
    betas = [getattr(module, b) for b in cand.betas]
    y = kernel(x, [index], [module], 0)
    y.backward(gy)
    ref = _reference(cand, x[0], betas, torch.float64, gy[0], 1)
    t32 = _reference(cand, x[0], betas, torch.float32, gy[0], 1)
    label = f"{cand.text} (β {[b.detach()[:2].tolist() for b in betas]})"
    _close(y[0].detach(), ref[0], f"f of {label}", t32[0])
    _close(x.grad[0], ref[1], f"f' of {label}", t32[1])
    for b, rg, tg in zip(betas, ref[2], t32[2]):
        _close(b.grad, rg, f"d/dβ of {label}", tg)


def test_paper_space_sample_matches_float64_reference() -> None:
    """150 random functions of the paper's space, per-channel β set away from their initial values."""
    cands = _paper_sample(150)
    kernel = PopulationKernel(cands)
    gen = torch.Generator().manual_seed(1)
    for i, cand in enumerate(cands):
        module = cand.to_module(16)
        for p in module.parameters():
            with torch.no_grad():
                p.copy_(torch.empty(p.shape).uniform_(0.3, 1.7, generator=gen))
        _check_member(cand, kernel, i, module)


NAMED = ["sigmoid", "tanh", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "gelu_tanh",
         "gelu_sigmoid", "silu", "softplus", "identity", "hardtanh", "mish"]


def test_registered_twins_equal_the_registry_modules() -> None:
    """A name is compiled from its operator-table row: it must be the registry's function."""
    cands = [as_candidate(n) for n in NAMED]
    kernel = PopulationKernel(cands)
    for i, name in enumerate(NAMED):
        x = POINTS.view(1, 8, 16).clone().requires_grad_(True)
        y = kernel(x, [i], [torch.nn.Identity()], 0)
        y.backward(torch.ones_like(y))
        xr = POINTS.view(8, 16).clone().requires_grad_(True)
        ref = make_activation(name, 16)(xr)
        ref.backward(torch.ones_like(ref))
        assert torch.allclose(y[0].detach(), ref.detach(), rtol=1e-5, atol=1e-5), name
        assert torch.allclose(x.grad[0], xr.grad, rtol=1e-5, atol=1e-5), name


def test_cnn_layout_several_members_with_channel_betas() -> None:
    """(N, K*C, L) with K = 3 different functions side by side, β per channel."""
    cands = [parse("x*sigmoid(beta*x)"), parse("max(x, sin(x))"), parse("exp(-beta*abs(x - 1))*x")]
    kernel = PopulationKernel(cands)
    n, c, length = 4, 5, 6
    modules = [cand.to_module(c) for cand in cands]
    for m in modules:
        for p in m.parameters():
            with torch.no_grad():
                p.copy_(torch.linspace(0.5, 1.5, c))
    x = (torch.randn(n, 3 * c, length, generator=torch.Generator().manual_seed(0)) * 3).requires_grad_(True)
    gy = torch.randn(n, 3 * c, length, generator=torch.Generator().manual_seed(1))
    y = kernel(x, [0, 1, 2], modules, 1)
    y.backward(gy)
    for k, (cand, m) in enumerate(zip(cands, modules)):
        part = slice(k * c, (k + 1) * c)
        betas = [getattr(m, b) for b in cand.betas]
        ref_y, ref_gx, ref_gb = _reference(cand, x[:, part], betas, torch.float64, gy[:, part], 1)
        _close(y[:, part].detach(), ref_y, cand.text)
        _close(x.grad[:, part], ref_gx, cand.text)
        for b, rg in zip(betas, ref_gb):
            _close(b.grad, rg, f"β of {cand.text}")


def test_members_are_dispatched_by_index_after_a_drop() -> None:
    """Stack positions map to kernel functions through ``members``: [2, 0] after dropping 1."""
    cands = [parse("sin(x)"), parse("x**2"), parse("tanh(x)")]
    kernel = PopulationKernel(cands)
    x = torch.randn(2, 3, 4)
    y = kernel(x, [2, 0], [torch.nn.Identity()] * 2, 0)
    assert torch.allclose(y[0], torch.tanh(x[0]), atol=1e-6) and torch.allclose(y[1], torch.sin(x[1]), atol=1e-6)


def test_when_the_torch_path_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    assert population_kernel(["relu", parse("x*sigmoid(beta*x)"), "x*tanh(x)"], CPU) is not None
    assert population_kernel(["relu", "prelu"], CPU) is None  # a parameter C cannot see
    assert population_kernel(["relu", torch.nn.GELU()], CPU) is None  # an arbitrary module
    assert population_kernel(["relu"], torch.device("meta")) is None
    assert as_candidate("swish") is None  # the registry's Swish has its own β parameter
    monkeypatch.setenv("ACTSEARCH_FUSED", "0")
    assert population_kernel(["relu"], CPU) is None


def test_a_broken_compiler_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("CC", "false")  # exits 1 for every flag set
    monkeypatch.setenv("ACTSEARCH_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr("actsearch.evaluation.kernels._kernel._WARNED", set())
    with pytest.warns(RuntimeWarning, match="fused activations unavailable"):
        assert population_kernel(["x*cos(x)"], CPU) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert population_kernel(["x*cos(x)"], CPU) is None  # said once


def test_libraries_are_cached_on_disk_by_source(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.setenv("ACTSEARCH_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr("actsearch.evaluation.kernels._build._LIBS", {})
    PopulationKernel([parse("x*cosh(x)")])
    built = sorted(p.name for p in tmp_path.iterdir())
    assert len(built) == 2 and built[0].startswith("obj-") and built[1].endswith(".so")  # + the shared object
    monkeypatch.setattr("actsearch.evaluation.kernels._build._LIBS", {})
    PopulationKernel([parse("x*cosh(x)")])
    assert sorted(p.name for p in tmp_path.iterdir()) == built  # no second build, no temp left
    shared = tmp_path / built[0]
    stamp = shared.stat().st_mtime_ns
    kernel = PopulationKernel([parse("x*sinh(x)"), parse("tanh(x)")])  # another population: the dispatcher's object reused
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("obj-")) == [built[0]]
    assert shared.stat().st_mtime_ns == stamp and len(list(tmp_path.glob("pop-*.so"))) == 2
    y = kernel.forward(torch.ones(2, 1, 3), kernel.bind((2, 1, 3), [0, 1], [torch.nn.Identity()] * 2, 0)[0])
    assert torch.allclose(y, torch.tensor([[[1.1752] * 3], [[0.7616] * 3]]), atol=1e-4)


def test_the_kernel_cache_keeps_the_newest_libraries(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    import os

    for i in range(5):
        lib = tmp_path / f"pop-{i}.so"
        lib.write_bytes(b"")
        os.utime(lib, (1000 + i, 1000 + i))
    monkeypatch.setattr("actsearch.evaluation.kernels._build.KEEP_LIBRARIES", 2)
    kernels.prune(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pop-3.so", "pop-4.so"]


def test_channels_last_cnn_layout_matches_the_contiguous_one() -> None:
    """The population engine runs its convolutions in channels_last memory: (N, H, W, K*C)."""
    cands = [parse("x*sigmoid(beta*x)"), parse("max(x, sin(x))"), parse("exp(-beta*abs(x - 1))*x")]
    kernel = PopulationKernel(cands)
    c = 5
    modules = [cand.to_module(c) for cand in cands]
    for m in modules:
        for p in m.parameters():
            with torch.no_grad():
                p.copy_(torch.linspace(0.5, 1.5, c))
    base = torch.randn(4, 3 * c, 2, 6, generator=torch.Generator().manual_seed(0)) * 3
    gy = torch.randn(4, 3 * c, 2, 6, generator=torch.Generator().manual_seed(1))
    outs = []
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = base.clone(memory_format=fmt).requires_grad_(True)
        for m in modules:
            m.zero_grad()
        y = kernel(x, [0, 1, 2], modules, 1)
        y.backward(gy.contiguous(memory_format=fmt))
        outs.append((y.detach().contiguous(), x.grad.contiguous(), [p.grad.clone() for m in modules for p in m.parameters()]))
    # Not bitwise: a run's vector body and scalar tail may round one value differently.
    assert torch.allclose(outs[0][0], outs[1][0], rtol=1e-6, atol=1e-6)
    assert torch.allclose(outs[0][1], outs[1][1], rtol=1e-6, atol=1e-6)
    for a, b in zip(outs[0][2], outs[1][2]):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-5)


def test_a_library_split_over_translation_units_computes_the_same(monkeypatch: pytest.MonkeyPatch,
                                                                   tmp_path: Any) -> None:
    """The members' loops are compiled in parallel, one unit per CPU: 1 or 3 units, same kernel."""
    monkeypatch.setenv("ACTSEARCH_KERNEL_DIR", str(tmp_path))
    cands = [parse("x*sigmoid(beta*x)"), parse("max(x, sin(x))"), parse("sinc(x)+x"), parse("atan(x)**2-x")]
    modules = [cand.to_module(16) for cand in cands]
    x = POINTS.view(1, 8, 16).expand(4, 8, 16).contiguous()
    gy = torch.linspace(-1.0, 1.0, 128).view(1, 8, 16).expand(4, 8, 16).contiguous()
    outs = []
    for units in (1, 3):
        monkeypatch.setattr("actsearch.evaluation.kernels._kernel._build.jobs", lambda units=units: units)
        assert len(kernels.c_sources(cands, units)) == units + 2  # + the tables', the dispatcher's
        kernel = PopulationKernel(cands)
        xg = x.clone().requires_grad_(True)
        for m in modules:
            m.zero_grad()
        kernel(xg, [0, 1, 2, 3], modules, 0).backward(gy)
        outs.append((kernel(x, [0, 1, 2, 3], modules, 0), xg.grad, modules[0].beta.grad.clone()))
    assert len(list(tmp_path.glob("pop-*.so"))) == 2  # two builds (the split is part of the source)
    for a, b in zip(*outs):
        assert torch.equal(a, b)


def test_a_compile_error_names_the_compilers_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    good, bad = tmp_path / "good.c", tmp_path / "bad.c"
    good.write_text("int f(void) { return 1; }\n")
    bad.write_text("int g(void) { return undeclared_name; }\n")
    error = kernels.compile_units(kernels.compiler() or "cc", ["-O2"], [good, bad], tmp_path / "bad.so")
    assert error is not None and "error:" in error and "undeclared_name" in error
    assert kernels.compile_units(kernels.compiler() or "cc", ["-O2"], [good], tmp_path / "good.so") is None
    assert (tmp_path / "good.so").exists()


@pytest.mark.parametrize("weight_decay", [0.0, 0.01])
def test_the_c_adam_step_is_torchs_fused_adam(weight_decay: float) -> None:
    """PopulationKernel.adam against torch's fused CPU Adam on the same values: bitwise equal where
    torch runs its vector loop (a tensor's values but its last size % 16), for 300 steps of
    gradients spread over eight orders of magnitude (zeros included: moments decaying away); the
    same pass tells the member whose gradient turned NaN."""
    from actsearch.evaluation.recipe import ADAM_BETAS, ADAM_EPS

    from torch import nn

    from actsearch.evaluation._flat import FlatParams

    kernel = population_kernel(["relu"], CPU)
    assert kernel is not None
    gen = torch.Generator().manual_seed(0)
    n = 16 * 1000
    flat = FlatParams({"p": torch.randn(4, n // 4, generator=gen)}, [[nn.Parameter(torch.zeros(16))]] + [[]] * 3)
    p = flat.data
    n = p.numel()  # the stacked (4, 4000) and member 0's 16 β
    ref = p.clone().requires_grad_(True)
    opt = torch.optim.Adam([ref], lr=1e-2, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=weight_decay, fused=True)
    m, v = torch.zeros(n), torch.zeros(n)
    for step in range(1, 301):
        g = torch.randn(n, generator=gen) * 10 ** torch.empty(n).uniform_(-7, 1, generator=gen)
        g[: n // 10] = 0.0
        g[2 * 4000] = float("nan") if step == 300 else g[2 * 4000]  # member 2's, at the last step
        ref.grad = g.clone()
        opt.step()
        flat.grad.copy_(g)
        bad = kernel.adam(flat, m, v, 1e-2, ADAM_BETAS, ADAM_EPS, weight_decay, step, torch.zeros(4))
        assert bad.tolist() == [False, False, step == 300, False]
    for ours, theirs in ((p, ref.detach()), (m, opt.state[ref]["exp_avg"]), (v, opt.state[ref]["exp_avg_sq"])):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0, equal_nan=True)  # bitwise, the NaN too


def test_a_flat_stack_keeps_its_views_and_compacts_in_member_order() -> None:
    """FlatParams: stacked tensors and β are views of one buffer (gradients of another) before and
    after a drop; the drop keeps each survivor's values, gradients and β objects, in order."""
    from torch import nn

    from actsearch.evaluation._flat import FlatParams

    k = 4
    params = {"w": torch.randn(k, 3, 2), "b": torch.randn(k, 3)}
    betas = [[nn.Parameter(torch.full((3,), float(i)))] if i % 2 else [] for i in range(k)]
    before = {name: t.clone() for name, t in params.items()}
    flat = FlatParams(params, betas)
    for t in [*params.values(), *(b for bs in betas for b in bs)]:
        assert t.untyped_storage().data_ptr() == flat.data.untyped_storage().data_ptr()
        assert t.grad is not None and t.grad.untyped_storage().data_ptr() == flat.grad.untyped_storage().data_ptr()
    flat.grad.copy_(torch.arange(flat.grad.numel(), dtype=torch.float32))
    grads = {name: t.grad.clone() for name, t in params.items()}  # type: ignore[union-attr]
    kept_beta = betas[3][0]
    index = flat.keep([1, 3])
    assert flat.k == 2 and flat.data.numel() == index.numel() == 2 * (6 + 3) + 2 * 3
    for name, t in params.items():
        assert torch.equal(t.detach(), before[name][[1, 3]]) and torch.equal(t.grad, grads[name][[1, 3]])  # type: ignore[arg-type]
    assert flat.betas[1][0] is kept_beta and torch.equal(kept_beta.detach(), torch.full((3,), 3.0))
    assert kept_beta.untyped_storage().data_ptr() == flat.data.untyped_storage().data_ptr()
    assert flat.segments[2].tolist() == [0, 1, 0, 1, 0, 1]  # w and b per member, then member 1's β
