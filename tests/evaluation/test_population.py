"""The population-batched engine: each member must follow its solo trajectory (train_one)."""
from __future__ import annotations

import statistics
from typing import Any

import pytest
import torch
from torch import nn

from actsearch.evaluation.kernels import enabled as fused_enabled, population_kernel
from actsearch.evaluation import ModelSpec
from actsearch.expressions import parse
from actsearch.evaluation import train_population
from actsearch.evaluation import Fidelity, get_fidelity, train_one


class ChannelSwish(nn.Module):
    """x * sigmoid(beta x) with a per-channel trainable beta (Ramachandran et al. 2017)."""

    def __init__(self, num_channels: int) -> None:
        super().__init__()
        self.beta = nn.Parameter(torch.ones(num_channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(self.beta.view(1, -1, *([1] * (x.dim() - 2))) * x)


class ExpExp(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(torch.exp(3 * x))


ACTS: list[Any] = ["relu", "tanh", ChannelSwish, lambda c: nn.GELU()]
SMOKE = get_fidelity("smoke").replace(steps=100, eval_every=50)


def _compare(fid: Fidelity, acts: list[Any], seeds: list[int], fused: bool | None = None) -> None:
    trace: dict[int, list[float]] = {}
    pop = train_population(acts, fid, seeds, trace=trace, fused=fused)
    for i, (act, seed) in enumerate(zip(acts, seeds)):
        solo_trace: list[float] = []
        solo = train_one(act, fid, seed=seed, trace=solo_trace)
        assert pop[i].status == solo.status == "ok"
        assert len(trace[i]) == len(solo_trace) == fid.steps
        worst = max(abs(a - b) for a, b in zip(trace[i], solo_trace))
        assert worst < 1e-4, f"member {i} ({act}) drifts from its solo run by {worst}"
        assert [s for s, _ in pop[i].curve] == [s for s, _ in solo.curve]
        # 1e-4 in the loss can still flip a borderline test example or two (200 examples)
        assert abs(pop[i].test_accuracy - solo.test_accuracy) <= 0.0151  # type: ignore[operator]


def test_mlp_members_follow_their_solo_trajectories() -> None:
    _compare(SMOKE, ACTS, [0, 1, 2, 3])


def test_same_activation_different_seeds() -> None:
    _compare(SMOKE.replace(steps=40), ["relu", "relu"], [5, 6])


@pytest.mark.parametrize("norm", ["batch", "layer"])
def test_normalized_mlp_matches(norm: str) -> None:
    _compare(SMOKE.replace(model=ModelSpec(widths=(16, 16), norm=norm), steps=60), ACTS[:3], [0, 1, 2])


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_cnn_members_follow_their_solo_trajectories(norm: str) -> None:
    fid = SMOKE.replace(model=ModelSpec(kind="cnn", widths=(6, 8, 8), norm=norm), steps=60, eval_every=30)
    _compare(fid, ACTS[:3], [0, 1, 2])


def test_diverged_member_does_not_poison_the_others() -> None:
    acts: list[Any] = ["relu", ExpExp, "tanh"]
    pop = train_population(acts, SMOKE, [0, 1, 2])
    bad = train_one(ExpExp, SMOKE, seed=1)
    assert pop[1].status == "diverged" == bad.status and pop[1].steps == bad.steps
    assert pop[1].reason == bad.reason and pop[1].test_accuracy is None
    for i in (0, 2):
        solo = train_one(acts[i], SMOKE, seed=i)
        assert pop[i].status == "ok" and pop[i].steps == SMOKE.steps
        assert abs(pop[i].final_loss - solo.final_loss) < 1e-4  # type: ignore[operator]
        assert [s for s, _ in pop[i].curve] == [s for s, _ in solo.curve]
        assert [a for _, a in pop[i].curve] == pytest.approx([a for _, a in solo.curve], abs=0.02)


def test_huge_lr_member_diverges_alone() -> None:
    fid = SMOKE.replace(optimizer="sgd", lr=1e12, steps=30)
    res = train_population(["relu", "tanh"], fid, [0, 1])
    solo = train_one("relu", fid, seed=0)
    assert res[0].status == "diverged" and res[0].steps == solo.steps


def test_report_prunes_one_member_only() -> None:
    calls: list[tuple[int, int]] = []

    def report(i: int, step: int, acc: float) -> bool:
        calls.append((i, step))
        return i == 1 and step >= 50

    res = train_population(ACTS[:3], SMOKE, [0, 1, 2], report=report)
    assert res[1].status == "pruned" and res[1].steps == 50 and res[1].test_accuracy is not None
    assert [r.status for r in (res[0], res[2])] == ["ok", "ok"]
    assert (1, 100) not in calls and (0, 100) in calls and (2, 50) in calls
    solo = train_one(ACTS[2], SMOKE, seed=2)
    assert abs(res[2].final_loss - solo.final_loss) < 1e-4  # type: ignore[operator]


def test_time_limit_and_argument_checks() -> None:
    res = train_population(["relu", "tanh"], SMOKE.replace(time_limit=0.0), [0, 1])
    assert [r.status for r in res] == ["timeout", "timeout"] and res[0].steps == 1
    assert train_population([], SMOKE, []) == []
    with pytest.raises(ValueError, match="seeds"):
        train_population(["relu"], SMOKE, [0, 1])


@pytest.mark.slow
def test_long_runs_match_in_distribution() -> None:
    """Over thousands of steps rounding makes trajectories part; the mean accuracy must not. 16
    seeds: one run's test accuracy spreads ~0.02 here, so with 8 the 1-point bound was one standard
    error of the gap (the fused path, the default at this length, landed at
    1.5 points on seeds 0-7 — and 0.1 on seeds 8-15, the torch-ops population 0.9 and 0.0)."""
    fid = get_fidelity("quick").replace(steps=1500, eval_every=1500)
    seeds = list(range(16))
    pop = train_population(["relu"] * 16, fid, seeds)
    solo = [train_one("relu", fid, seed=s) for s in seeds]
    gap = statistics.mean(r.test_accuracy for r in pop) - statistics.mean(r.test_accuracy for r in solo)  # type: ignore[misc]
    assert abs(gap) < 0.01


def _compare_on(fid: Fidelity, acts: list[Any], seeds: list[int], data: Any) -> None:
    trace: dict[int, list[float]] = {}
    pop = train_population(acts, fid, seeds, dataset=data, trace=trace)
    for i, (act, seed) in enumerate(zip(acts, seeds)):
        solo_trace: list[float] = []
        solo = train_one(act, fid, seed=seed, dataset=data, trace=solo_trace)
        assert pop[i].status == solo.status == "ok"
        worst = max(abs(a - b) for a, b in zip(trace[i], solo_trace))
        assert worst < 1e-4, f"member {i} ({act}) drifts from its solo run by {worst}"


def test_2d_cnn_members_follow_their_solo_trajectories() -> None:
    """The im2col convolution in 2-D (kernel 3x3, stride 2, padding 1) on a synthetic image set."""
    from actsearch.evaluation import Dataset

    gen = torch.Generator().manual_seed(0)
    x = torch.randn(360, 1, 8, 8, generator=gen)
    y = (x[:, 0, :4].sum((1, 2)) > x[:, 0, 4:].sum((1, 2))).long()
    data = Dataset("img", x[:240], y[:240], x[240:300], y[240:300], x[300:], y[300:], 2, (1, 8, 8))
    fid = SMOKE.replace(model=ModelSpec(kind="cnn", widths=(4, 6), kernel_sizes=(3, 3)), steps=40, eval_every=20)
    _compare_on(fid, ["relu", "x*asinh(x)**2", ChannelSwish], [0, 1, 2], data)


def test_paper_candidates_match() -> None:
    """Compiled grammar candidates (max/min ties, sinc, asinh) follow their solo trajectories."""
    fid = SMOKE.replace(steps=30)
    _compare(fid, ["max(x, tanh(x))", "sinc(x)+x", "min(x, sin(x))", "x*asinh(x)**2"], [0, 1, 2, 3])


def test_cnn_paper_candidates_match() -> None:
    fid = SMOKE.replace(model=ModelSpec(kind="cnn", widths=(6, 8, 8)), steps=40, eval_every=20)
    _compare(fid, ["max(x, sigmoid(x))", "cos(x)-x", "atan(x)**2-x", "gelu"], [0, 1, 2, 3])


# ---------------------------------------------------------------- fused C activations (CPU)
needs_cc = pytest.mark.skipif(not fused_enabled(), reason="no C compiler for the fused kernels")
FUSED: list[Any] = ["relu", parse("x*sigmoid(beta*x)"), parse("max(x, sin(x))"), "gelu", parse("x*atan(x) + beta")]


@needs_cc
def test_fused_members_follow_their_solo_trajectories() -> None:
    """The C kernels (per-channel β included) against train_one's torch ops: same 1e-4 bound."""
    assert population_kernel(FUSED, torch.device("cpu")) is not None
    _compare(SMOKE, FUSED, [0, 1, 2, 3, 4], fused=True)


@needs_cc
@pytest.mark.parametrize("norm", ["none", "batch"])
def test_fused_cnn_members_follow_their_solo_trajectories(norm: str) -> None:
    fid = SMOKE.replace(model=ModelSpec(kind="cnn", widths=(6, 8, 8), norm=norm), steps=60, eval_every=30)
    _compare(fid, FUSED[:4], [0, 1, 2, 3], fused=True)


@needs_cc
def test_fused_and_torch_paths_give_the_same_trajectories() -> None:
    runs = []
    for fused in (True, False):
        trace: dict[int, list[float]] = {}
        train_population(FUSED, SMOKE, [0, 1, 2, 3, 4], trace=trace, fused=fused)
        runs.append(trace)
    for i in range(len(FUSED)):
        assert max(abs(a - b) for a, b in zip(runs[0][i], runs[1][i])) < 1e-4


@needs_cc
def test_fused_diverged_and_pruned_members_leave_the_kernel_dispatch_right() -> None:
    """A member that diverges (exp(exp(3x))) and one pruned mid-run are dropped from the stack; the
    survivors keep their own functions (dispatch by member index) and their solo trajectories."""
    acts: list[Any] = ["relu", parse("exp(exp(3*x))"), parse("x*sigmoid(beta*x)"), "tanh"]
    trace: dict[int, list[float]] = {}
    res = train_population(acts, SMOKE, [0, 1, 2, 3], trace=trace, fused=True,
                           report=lambda i, step, acc: i == 0 and step >= 50)
    bad = train_one(acts[1], SMOKE, seed=1)
    assert res[1].status == "diverged" == bad.status and res[1].steps == bad.steps
    assert res[0].status == "pruned" and res[0].steps == 50
    for i in (2, 3):
        solo_trace: list[float] = []
        solo = train_one(acts[i], SMOKE, seed=i, trace=solo_trace)
        assert res[i].status == "ok" == solo.status
        assert max(abs(a - b) for a, b in zip(trace[i], solo_trace)) < 1e-4


def test_fusion_is_kept_for_runs_long_enough_to_repay_the_build() -> None:
    from actsearch.evaluation import FUSE_MIN_WORK, activation_units

    std, quick = get_fidelity("standard"), get_fidelity("quick")
    assert activation_units(quick.model, (1, 40)) == 200
    assert activation_units(std.model, (1, 40)) == 32 * (19 + 10 + 5)  # 40 -> 19 -> 10 -> 5
    assert activation_units(std.model.__class__(kind="cnn", widths=(4,), kernel_sizes=(3,)), (1, 28, 28)) == 4 * 14 * 14  # (28 + 2 - 3) // 2 + 1
    smoke_work = SMOKE.steps * SMOKE.batch_size * 32 * 8
    assert smoke_work < FUSE_MIN_WORK < std.steps * std.batch_size * activation_units(std.model, (1, 40)) * 8


@needs_cc
@pytest.mark.parametrize("blas", [True, False])
def test_hand_written_mlp_backward_equals_autograd(blas: bool) -> None:
    """The hand-written step (actsearch.evaluation._backprop) against autograd on the same stack: losses and every gradient,
    per-channel β included, after a member was dropped (dispatch by member index). ``blas``: the
    whole step in one C call on BLAS SGEMM (PopulationKernel.mlp_step), else on torch's batched GEMMs."""
    from actsearch.evaluation import StackedNet, build_model, by_hand_applies, loss_and_grads

    acts: list[Any] = [parse("x*sigmoid(beta*x)"), "relu", parse("max(x, sin(x))"), parse("x*atan(x) + beta"),
                       parse("sinc(x)+x")]
    spec = ModelSpec(widths=(12, 9))
    models = [build_model(spec, a, (20,), 7, seed=s) for s, a in enumerate(acts)]
    gen = torch.Generator().manual_seed(0)
    for m in models:
        for p in m.acts.parameters():
            with torch.no_grad():
                p.copy_(torch.empty(p.shape).uniform_(0.3, 1.7, generator=gen))
    net = StackedNet(models, "mlp", 0.0, (20,), population_kernel(acts, torch.device("cpu")))
    assert by_hand_applies(net) and net.kernel is not None
    if blas and net.kernel.gemm is None:
        pytest.skip("torch carries no BLAS SGEMM here (not an MKL build)")
    if not blas:
        net.kernel.gemm = None
    net.keep([0, 1, 3, 4])
    x = torch.randn(4, 30, 20, generator=gen) * 2
    y = torch.randint(0, 7, (4, 30), generator=gen)
    runs = []
    for by_hand in (True, False):
        losses = loss_and_grads(net, x, y, by_hand=by_hand)
        runs.append((losses, [p.grad.clone() for p in net.parameters()]))
    (hand_loss, hand), (auto_loss, auto) = runs
    assert torch.allclose(hand_loss, auto_loss, rtol=1e-6, atol=1e-7)
    assert len(hand) == len(auto) == 6 + 2 + 2  # w, b per layer and head; a β per layer of members 0 and 3
    for name, a, b in zip([*net.params, *["β"] * 4], hand, auto):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-6), name


@needs_cc
@pytest.mark.parametrize("norm", ["none", "batch"])
@pytest.mark.parametrize("dropped", [False, True])
def test_member_major_cnn_equals_the_grouped_convolutions(dropped: bool, norm: str) -> None:
    """A plain 1-D CNN with fused activations runs member-major (columns + batched GEMMs): the
    same logits (per-member batches and one shared batch) and every gradient as the grouped
    convolutions on the same stack, to float rounding — uneven padding, a 1-channel first layer,
    per-channel β, and after a member was dropped; its hand-written step (_backprop) the same as
    autograd's on the member-major ops."""
    from actsearch.evaluation import StackedNet, build_model, loss_and_grads

    acts: list[Any] = [parse("x*sigmoid(beta*x)"), "relu", parse("max(x, sin(x))"), parse("x*atan(x) + beta")]
    spec = ModelSpec(kind="cnn", widths=(5, 7, 6), kernel_sizes=(5, 3, 4), stride=2, padding=1, norm=norm)
    models = [build_model(spec, a, (1, 23), 4, seed=s) for s, a in enumerate(acts)]
    net = StackedNet(models, "cnn", 0.0, (1, 23), population_kernel(acts, torch.device("cpu")))
    assert net.member_major
    if norm == "batch":  # running statistics away from (0, 1), so the shared (eval) batch tests them
        gen = torch.Generator().manual_seed(1)
        for name, b in net.buffers.items():
            b.copy_(torch.rand(b.shape, generator=gen) + (0.5 if name.startswith("rv") else -0.5))
    if dropped:
        net.keep([0, 2, 3])
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(net.k, 9, 1, 23, generator=gen)
    y = torch.randint(0, 4, (net.k, 9), generator=gen)
    shared = torch.randn(11, 1, 23, generator=gen)
    runs = []
    start = {name: b.clone() for name, b in net.buffers.items()}
    for member_major, by_hand in ((True, True), (True, False), (False, False)):
        net.member_major = member_major
        for name, b in net.buffers.items():
            b.copy_(start[name])
        losses = loss_and_grads(net, x, y, by_hand=by_hand)
        after = [b.clone() for b in net.buffers.values()]  # the running statistics one step updated
        runs.append((losses, [p.grad.clone() for p in net.parameters()], net.forward(shared).detach(), after))
    (hand_loss, hand_grads, _, hand_buf), (mm_loss, mm_grads, mm_shared, mm_buf), (gc_loss, gc_grads, gc_shared, gc_buf) = runs
    for a, b, c in zip(hand_buf, mm_buf, gc_buf):
        assert torch.equal(a, b) and torch.allclose(b, c, rtol=1e-5, atol=1e-6)
    assert torch.allclose(mm_loss, gc_loss, rtol=1e-5, atol=1e-6)
    assert torch.allclose(mm_shared, gc_shared, rtol=1e-5, atol=1e-5)
    assert torch.equal(hand_loss, mm_loss)  # the hand-written step: autograd's member-major ops, by hand
    stacked = len(net.params)  # w and b per layer and head; with BatchNorm: w, γ, β per layer and head
    assert stacked == (8 if norm == "none" else 11)
    assert len(mm_grads) == len(gc_grads) == len(hand_grads) == stacked + 3 * 2  # β per layer of two members
    for name, a, b, c in zip([*net.params, *["β"] * 6], mm_grads, gc_grads, hand_grads):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
        assert torch.allclose(c, a, rtol=1e-6, atol=1e-7), f"{name} by hand"


def test_hand_written_backward_only_where_it_applies() -> None:
    from actsearch.evaluation import StackedNet, build_model, by_hand_applies

    def net(spec: ModelSpec, kernel: bool, kind: str = "mlp") -> StackedNet:
        models = [build_model(spec, "relu", (1, 20), 3, seed=0)]
        return StackedNet(models, kind, spec.dropout, (1, 20),
                          population_kernel(["relu"], torch.device("cpu")) if kernel else None)

    assert not by_hand_applies(net(ModelSpec(widths=(4,)), kernel=False))  # torch activations
    if fused_enabled():
        assert by_hand_applies(net(ModelSpec(widths=(4,)), kernel=True))
        assert not by_hand_applies(net(ModelSpec(widths=(4,), norm="layer"), kernel=True))
        assert not by_hand_applies(net(ModelSpec(widths=(4,), dropout=0.1), kernel=True))
        assert by_hand_applies(net(ModelSpec(kind="cnn", widths=(4,), kernel_sizes=(3,)), True, "cnn"))  # member-major
        assert by_hand_applies(net(ModelSpec(kind="cnn", widths=(4,), kernel_sizes=(3,), norm="batch"), True, "cnn"))
        assert not by_hand_applies(net(ModelSpec(kind="cnn", widths=(4,), kernel_sizes=(3,), norm="layer"), True, "cnn"))
        assert not by_hand_applies(net(ModelSpec(kind="cnn", widths=(4,), kernel_sizes=(3,), dropout=0.1), True, "cnn"))
    assert not by_hand_applies(net(ModelSpec(kind="cnn", widths=(4,), kernel_sizes=(3,)), False, "cnn"))
