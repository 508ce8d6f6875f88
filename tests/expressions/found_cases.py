"""The activations the "using what was found" tests run everywhere a PyTorch module goes.

Three ways a user holds a found function — ``actsearch.to_module``, ``actsearch.get_activation``
and a class of a file written by ``actsearch export`` — over generated expressions of the paper's
space (a seeded sample of paper-1 and paper-2 structures), the 8 expressions of the report that
asked for this, and every named baseline.
"""
from __future__ import annotations

import importlib
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn
from torch.utils.data import Dataset

from actsearch import Candidate, get_activation, list_activations, load_space, parse, to_module, write_module
from actsearch.expressions import ACTIVATIONS

#: x·σ(βx), max(x, tanh x), cos x − x, x·asinh(x)², β·sinc x + (1−β)·sin x, min(x, sin x),
#: x·log(|x|+1), β₀·x·σ(β₁x).
ISSUE = ["x*sigmoid(beta*x)", "max(x, tanh(x))", "cos(x) - x", "x*asinh(x)**2", "mix(sinc(x), sin(x))",
         "min(x, sin(x))", "x*log(abs(x) + 1)", "beta0*x*sigmoid(beta1*x)"]
CHANNELS = 4


def _sample(space_name: str, n: int, seed: int) -> list[Candidate]:
    """``n`` distinct, non-degenerate structures of a shipped space, drawn with a fixed seed."""
    space = load_space(space_name)
    rng = random.Random(seed)
    out: dict[str, Candidate] = {}
    while len(out) < n:
        cand = space.build({name: rng.choice(choices) for name, choices in space.slots()})
        if not cand.is_degenerate and cand.key not in out:
            out[cand.key] = cand
    return list(out.values())


def _generated() -> list[Candidate]:
    return [*(parse(e) for e in ISSUE), *_sample("paper-1", 10, 2017), *_sample("paper-2", 4, 2017)]


GENERATED: list[Candidate] = _generated()
EXPRESSIONS: list[str] = [c.text for c in GENERATED]
BASELINES: list[str] = list_activations()

#: (path, what) for every activation; ``what`` is an expression's text or a baseline's name.
CASES: list[tuple[str, str]] = ([("to_module", e) for e in EXPRESSIONS] + [("get_activation", n) for n in BASELINES]
                                + [("export", e) for e in EXPRESSIONS])
IDS = [f"{path}:{what}" for path, what in CASES]


def export_folder(folder: Path) -> Path:
    """Write every generated expression to ``folder/found_acts.py`` (class ``Act<i>`` for the i-th)."""
    write_module(GENERATED, folder / "found_acts.py", names=[f"act {i}" for i in range(len(GENERATED))])
    return folder


def exported_class(what: str) -> type[nn.Module]:
    """The class of ``found_acts.py`` (its folder on sys.path: see :func:`export_folder`)."""
    module = importlib.import_module("found_acts")
    return getattr(module, f"Act{EXPRESSIONS.index(what)}")


def factory(path: str, what: str) -> Callable[..., nn.Module]:
    """``f(num_channels=None, **kwargs)`` -> a fresh module of the activation, by the user's path."""
    if path == "to_module":
        cand = GENERATED[EXPRESSIONS.index(what)]

        def make(num_channels: int | None = None, **kwargs: object) -> nn.Module:
            act = to_module(cand, num_channels)
            return type(act)(num_channels, **kwargs) if kwargs else act  # what act_layer= calls

        return make
    if path == "get_activation":
        return lambda num_channels=None, **kw: get_activation(what, num_channels, **kw)
    if path == "export":
        return exported_class(what)
    raise ValueError(path)


def activation_class(path: str, what: str) -> type[nn.Module]:
    """What a library takes as ``act_layer``: the class itself."""
    if path == "get_activation":
        return ACTIVATIONS[what].module
    if path == "export":
        return exported_class(what)
    return type(factory(path, what)(None))


def per_channel(path: str, what: str) -> bool:
    """Whether the activation holds a parameter per channel when built with num_channels."""
    return any(p.dim() > 0 and p.shape[0] == CHANNELS for p in factory(path, what)(CHANNELS).parameters())


def perturbed(act: nn.Module, seed: int = 0) -> nn.Module:
    """``act`` with every parameter moved to distinct seeded values, so a lost state shows."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in act.parameters():
            p.add_(torch.rand(p.shape, generator=g) * 0.5 + 0.25)
    return act


def conv_model(act: nn.Module, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, CHANNELS, 3), perturbed(act, seed))


class ActivationDataset(Dataset):
    """A dataset whose items go through activations: DataLoader workers must unpickle them."""

    def __init__(self, acts: list[nn.Module], n: int = 6) -> None:
        self.acts = acts
        self.x = torch.randn(n, CHANNELS, 3, generator=torch.Generator().manual_seed(1))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        with torch.no_grad():
            return torch.stack([act(self.x[i : i + 1])[0] for act in self.acts])


def on_path(folder: Path) -> None:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
