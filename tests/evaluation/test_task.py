"""actsearch.Task: both forms, seeds, failures of the user's code, the dry check, loading from a
file, the built-in presets as tasks, and .npz datasets. Tiny data and a few steps: seconds."""
from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import actsearch
from actsearch.errors import DatasetError, TaskError
from actsearch.evaluation import (Task, builtin_task, file_hash, find_task, load_dataset, load_task, task_record,
                                  train_population)


def _regression() -> tuple[torch.Tensor, ...]:
    x = torch.linspace(-2, 2, 96).unsqueeze(1)
    y = torch.sin(2 * x)
    return x[::2], y[::2], x[1::4], y[1::4], x[3::4], y[3::4]


def _build(act):
    return nn.Sequential(nn.Linear(1, 8), act(8), nn.Linear(8, 1))


def _task(**kw) -> Task:
    args = dict(data=_regression(), build=_build, loss="mse", steps=30, batch_size=16, lr=1e-2, eval_every=10)
    return Task("sine", **{**args, **kw})


def test_public_name_and_defaults() -> None:
    assert actsearch.Task is Task
    t = _task(metric=None, eval_every=None)
    assert t.metric == "neg_mse" and t.eval_every == 7  # mse implies neg_mse; 4 checkpoints by default
    assert Task("c", data=_regression(), build=_build).metric == "accuracy"


def test_recipe_form_trains_scores_and_is_fixed_by_its_seed() -> None:
    t = _task()
    a, b, c = t.run("relu", 0), t.run("relu", 0), t.run("relu", 1)
    assert a.status == "ok" and a.steps == 30 and [s for s, _ in a.curve] == [10, 20, 30]
    assert a.val_accuracy == a.curve[-1][1] < 0 and a.test_accuracy is not None and a.test_accuracy < 0
    assert a.curve == b.curve and a.test_accuracy == b.test_accuracy  # the seed fixes init and data order
    assert a.curve != c.curve
    # the score is the metric of the trained model on the validation split: check it by hand
    torch.manual_seed(0)
    x, y, xv, yv, _, _ = _regression()
    assert a.val_accuracy > -nn.functional.mse_loss(torch.zeros_like(yv), yv).item()  # better than predicting 0


def test_seed_fixes_the_users_initialization_and_minibatch_order() -> None:
    inits, batches = [], []

    def build(act):
        m = _build(act)
        inits.append(m[0].weight.detach().clone())
        return m

    def loss(out, y):
        batches.append(y.detach().clone())
        return nn.functional.mse_loss(out, y)

    t = _task(build=build, loss=loss, steps=3, eval_every=3)
    t.run("relu", 5)
    t.run("relu", 5)
    t.run("relu", 6)
    assert torch.equal(inits[0], inits[1]) and not torch.equal(inits[0], inits[2])
    # per run: 3 training steps, then the metric (minus this loss) on validation and test
    assert len(batches) == 15 and all(torch.equal(p, q) for p, q in zip(batches[0:5], batches[5:10]))
    assert not torch.equal(batches[0], batches[10])


def test_activation_factory_makes_a_fresh_module_per_layer() -> None:
    made = []

    def build(act):
        a1, a2 = act(8), act(8)
        made.extend([a1, a2])
        return nn.Sequential(nn.Linear(1, 8), a1, nn.Linear(8, 8), a2, nn.Linear(8, 1))

    _task(build=build, steps=2, eval_every=2).run(actsearch.parse("x*sigmoid(beta*x)"), 0)
    assert made[0] is not made[1] and all(isinstance(m, nn.Module) for m in made)
    assert {p.shape for p in made[0].parameters()} == {torch.Size([8])}  # β per channel, one per layer


def test_non_finite_loss_fails_that_run_with_its_reason() -> None:
    calls = []

    def loss(out, y):
        calls.append(1)
        v = nn.functional.mse_loss(out, y)
        return v * math.inf if len(calls) == 12 else v

    r = _task(loss=loss, metric="neg_mse").run("relu", 0)
    assert r.status == "diverged" and r.reason == "loss is inf at step 12" and r.test_accuracy is None


def test_exception_in_users_code_fails_one_run_the_others_go_on() -> None:
    def train(act, seed, report):
        if seed == 1:
            raise ValueError("boom on seed 1")
        report(5, 0.5)
        return 0.5

    rs = Task("loop", train=train).evaluate(["relu", "relu", "tanh"], [0, 1, 2])
    assert [r.status for r in rs] == ["ok", "error", "ok"]
    assert rs[1].reason == "the task's code raised ValueError: boom on seed 1"


def test_loop_form_reports_prunes_and_returns_a_score() -> None:
    seen = []

    def train(act, seed, report):
        m = act(3)
        assert isinstance(m, nn.Module)
        for step in (10, 20, 30):
            if report(step, step / 100 + seed):
                return step / 100 + seed
        return 0.3 + seed

    t = Task("loop", train=train)
    r = t.run("relu", 0, report=lambda s, v: seen.append((s, v)) or False)
    assert r.status == "ok" and r.val_accuracy == r.test_accuracy == 0.3 and seen == [(10, 0.1), (20, 0.2), (30, 0.3)]
    r = t.run("relu", 0, report=lambda s, v: s >= 20)
    assert r.status == "pruned" and r.curve == [(10, 0.1), (20, 0.2)] and r.reason == "pruned at step 20"
    pair = Task("pair", train=lambda act, seed, report: (0.7, 0.6)).run("relu", 0)
    assert (pair.val_accuracy, pair.test_accuracy) == (0.7, 0.6)
    nan = Task("nan", train=lambda act, seed, report: float("nan")).run("relu", 0)
    assert nan.status == "diverged"


def test_evaluate_reports_per_member_and_prunes_one() -> None:
    calls = []

    def report(i, step, value):
        calls.append((i, step))
        return i == 0 and step == 10

    rs = _task().evaluate(["relu", "tanh"], [0, 0], report=report)
    assert [r.status for r in rs] == ["pruned", "ok"]
    assert calls == [(0, 10), (1, 10), (1, 20), (1, 30)]


def test_builtin_fidelity_is_a_task_on_the_population_engine() -> None:
    t = builtin_task("smoke")
    assert t.name == "smoke" and t.fidelity is actsearch.get_fidelity("smoke") and t.steps == 60
    got = t.evaluate(["relu", "tanh"], [0, 1])
    want = train_population(["relu", "tanh"], "smoke", [0, 1])
    assert [r.curve for r in got] == [r.curve for r in want]
    assert [r.test_accuracy for r in got] == [r.test_accuracy for r in want]
    assert builtin_task("smoke", "mnist1d").fidelity.dataset == "mnist1d"


@pytest.mark.parametrize("kw, message", [
    (dict(build=lambda act: "not a module"), "build(act) returned str, not an nn.Module"),
    (dict(build=lambda act: nn.Sequential(nn.Linear(3, 8), act(8), nn.Linear(8, 1))), "does not take x_train of shape (48, 1)"),
    (dict(build=lambda act: nn.Sequential(nn.Linear(1, 2))), "output (4, 2) does not match y_train (4, 1)"),
    (dict(metric=lambda out, y: "good"), "the metric returned str, not a number"),
    (dict(metric=lambda out, y: float("nan")), "the metric is nan on the untrained model"),
    (dict(loss=lambda out, y: out), "the loss must be a finite scalar tensor"),
    (dict(data=_regression()[:4]), "data must be (x_train, y_train, x_val, y_val, x_test, y_test)"),
    (dict(data=(*_regression()[:3], torch.zeros(5, 1), *_regression()[4:])), "x_val has 24 examples but y_val has 5"),
    (dict(batch_size=500), "batch_size 500 exceeds the 48 training examples"),
    (dict(data=lambda: 1 / 0), "its data function raised ZeroDivisionError"),
])
def test_dry_check_finds_a_broken_task_before_training(kw, message) -> None:
    with pytest.raises(TaskError) as err:
        _task(**kw).check()
    assert message in str(err.value) and "\n" not in str(err.value)


def test_cross_entropy_needs_enough_classes() -> None:
    x = torch.randn(40, 3)
    y = torch.arange(40) % 4
    t = Task("c", data=(x, y, x, y, x, y), build=lambda act: nn.Sequential(nn.Linear(3, 3)), batch_size=8)
    with pytest.raises(TaskError, match="more classes than the largest label"):
        t.check()


@pytest.mark.parametrize("kw, message", [
    (dict(loss="hinge"), "unknown loss 'hinge'"), (dict(metric="f1"), "unknown metric 'f1'"),
    (dict(optimizer="lbfgs"), "unknown optimizer 'lbfgs'"), (dict(steps=0), "steps must be a whole number"),
    (dict(lr=-1.0), "lr must be a positive number"), (dict(train=lambda a, s, r: 0.0), "either train= or data="),
])
def test_bad_arguments_are_refused_at_construction(kw, message) -> None:
    with pytest.raises(TaskError, match=message):
        _task(**kw)
    with pytest.raises(TaskError, match="needs data= and build="):
        Task("x", data=_regression())


# ------------------------------------------------------------------------------------ files
TASK_FILE = """
import torch
from torch import nn
import actsearch

x = torch.linspace(-1, 1, 64).unsqueeze(1)
task = actsearch.Task("{name}", data=(x, x ** 2, x, x ** 2, x, x ** 2), loss="mse", steps=4, batch_size=8,
                      build=lambda act: nn.Sequential(nn.Linear(1, 4), act(4), nn.Linear(4, 1)))
other = 3
"""


def _write(path: Path, name: str = "square") -> Path:
    path.write_text(textwrap.dedent(TASK_FILE.format(name=name)))
    return path


def test_load_task_from_a_file_and_a_module(tmp_path: Path, monkeypatch) -> None:
    f = _write(tmp_path / "mytask.py")
    t = load_task(str(f))
    assert t.name == "square" and t.source == str(f) and t.hash == file_hash(f) and len(t.hash) == 16
    assert task_record(t) == {"name": "square", "source": str(f), "hash": t.hash}
    assert load_task(f"{f}:task").hash == t.hash
    monkeypatch.syspath_prepend(str(tmp_path))
    assert load_task("mytask:task").name == "square"
    assert find_task(task_record(t)) is not None


@pytest.mark.parametrize("spec, message", [
    ("{d}/nope.py", "no such file"),
    ("{d}/t.py:missing", "has no object 'missing' (it defines: task; use"),
    ("{d}/t.py:other", "other is a int, not an actsearch.Task"),
    ("{d}/t.py:1x", "is not a Python name"),
    ("{d}/broken.py", "running {d}/broken.py raised NameError"),
    ("no_such_module_here:task", "no file or module 'no_such_module_here'"),
])
def test_load_task_errors_are_one_line(tmp_path: Path, spec: str, message: str) -> None:
    _write(tmp_path / "t.py")
    (tmp_path / "broken.py").write_text("undefined_name\n")
    with pytest.raises(TaskError) as err:
        load_task(spec.format(d=tmp_path))
    assert message.format(d=tmp_path) in str(err.value) and "\n" not in str(err.value)


def test_a_changed_task_file_is_refused(tmp_path: Path, monkeypatch) -> None:
    f = _write(tmp_path / "t.py")
    rec = task_record(load_task(str(f)))
    monkeypatch.setattr("actsearch.evaluation.task_file._LOADED", {})  # another process: it loads the file again
    _write(f, name="renamed")
    with pytest.raises(TaskError, match="was created with task 'square'.*refusing to mix"):
        find_task(rec, "s")
    f.write_text(f.read_text().replace("renamed", "square") + "# edited\n")
    with pytest.raises(TaskError, match="refusing to mix"):
        find_task(rec, "s")


# -------------------------------------------------------------------------------------- npz
def test_npz_dataset_loads_with_and_without_a_test_split(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(100, 6)).astype(np.float32), rng.integers(0, 3, 100)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    d = load_dataset(str(tmp_path / "a.npz"))
    assert d.input_shape == (1, 6) and d.num_classes == 3
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (72, 8, 20)  # 20% test, then 10% of the rest for val
    np.savez(tmp_path / "b.npz", x=x, y=y, x_test=x[:30], y_test=y[:30])
    d = load_dataset(str(tmp_path / "b.npz"))
    assert (len(d.y_train) + len(d.y_val), len(d.y_test)) == (100, 30)
    r = actsearch.train_one("relu", actsearch.get_fidelity("smoke").replace(dataset=str(tmp_path / "b.npz")), seed=0)
    assert r.status == "ok" and 0 <= r.test_accuracy <= 1


@pytest.mark.parametrize("arrays, message", [
    (dict(x=np.zeros((20, 3))), "no array 'y'"),
    (dict(x=np.zeros((20, 3)), y=np.zeros(19, int)), "y must be one class index per row of x (20)"),
    (dict(x=np.full((20, 3), np.nan), y=np.arange(20) % 2), "x holds NaN"),
    (dict(x=np.zeros((20, 3)), y=np.arange(20) * 0.5), "y must hold class indices"),
    (dict(x=np.zeros(20), y=np.arange(20) % 2), "x must be numbers shaped"),
    (dict(x=np.zeros((20, 3)), y=np.arange(20) % 2, x_test=np.zeros((5, 3))), "x_test and y_test go together"),
    (dict(x=np.zeros((20, 3)), y=np.zeros(20, int)), "at least 2 classes"),
])
def test_bad_npz_is_one_line(tmp_path: Path, arrays, message) -> None:
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(DatasetError) as err:
        load_dataset(str(tmp_path / "bad.npz"))
    assert message in str(err.value) and "\n" not in str(err.value)
    (tmp_path / "junk.npz").write_text("not a zip")
    with pytest.raises(DatasetError, match="not a readable .npz file"):
        load_dataset(str(tmp_path / "junk.npz"))
