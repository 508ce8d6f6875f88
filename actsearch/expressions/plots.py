"""Plots of activation functions (matplotlib, headless)."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .candidate import Candidate

__all__ = ["plot_function", "plot_functions", "pyplot", "save_figure", "PLOT_SUFFIXES"]

#: File types a plot may be written as (matplotlib's Agg backend writes them without extra packages).
PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".svgz", ".eps", ".ps", ".jpg", ".jpeg", ".tif", ".tiff", ".webp")


def pyplot() -> Any:
    """matplotlib.pyplot on the headless Agg backend (searches and experiments run on servers, in CI)."""
    import matplotlib  # start-up time: matplotlib.pyplot costs ~0.35 s and only plotting code needs it

    matplotlib.use("Agg")  # headless: selected before pyplot is imported
    import matplotlib.pyplot as plt  # start-up time (as above)

    return plt


def save_figure(fig: Any, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (its folder made if needed) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot().close(fig)
    return path


def _values(cand: Candidate, lo: float, hi: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = torch.linspace(lo, hi, 801, dtype=torch.float64, requires_grad=True)
    y = cand.evaluate(x)
    (dy,) = torch.autograd.grad(y.sum(), x, allow_unused=True)
    dy = torch.zeros_like(x) if dy is None else dy
    return x.detach(), y.detach(), dy.detach()


def plot_function(cand: Candidate, path: str | Path, lo: float = -5.0, hi: float = 5.0) -> Path:
    """f and f' side by side, written to ``path`` (PNG)."""
    plt = pyplot()
    x, y, dy = _values(cand, lo, hi)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2), constrained_layout=True)
    for ax, v, title in zip(axes, (y, dy), ("f(x)", "f'(x)")):
        ax.plot(x.numpy(), v.numpy(), color="C0")
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.set_title(title)
        ax.set_xlabel("x")
    fig.suptitle(f"${cand.latex}$" if len(cand.latex) < 120 else cand.text, fontsize=10)
    return save_figure(fig, path)


def plot_functions(
    cands: Sequence[Candidate], labels: Sequence[str], path: str | Path,
    lo: float = -5.0, hi: float = 5.0, title: str = "",
) -> Path:
    """Several activations on one pair of axes (f left, f' right)."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for i, (cand, label) in enumerate(zip(cands, labels)):
        x, y, dy = _values(cand, lo, hi)
        axes[0].plot(x.numpy(), y.numpy(), label=label, color=f"C{i % 10}")
        axes[1].plot(x.numpy(), dy.numpy(), color=f"C{i % 10}")
    for ax, t in zip(axes, ("f(x)", "f'(x)")):
        ax.axhline(0, color="0.7", lw=0.8)
        ax.set_title(t)
        ax.set_xlabel("x")
    axes[0].legend(fontsize=7)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)
