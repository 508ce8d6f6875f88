"""Export candidates as a standalone Python module (torch only at run time).

The exported file IS the torch printer's generated source (see printing/torch.py): one plain function and
one ``nn.Module`` per activation, the expression and LaTeX in the docstrings. Names are turned
into identifiers and docstrings are escaped, so nothing a user or a study stores can add code.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .candidate import Candidate
from .printing.torch import module_source

__all__ = ["write_module", "export_source"]


def export_source(
    cands: Sequence[Candidate],
    names: Sequence[str] | None = None,
    docs: Sequence[str] | None = None,
    header: str | None = None,
) -> str:
    cands = list(cands)
    header = header or (
        "Activation functions exported by actsearch.\n\n"
        "Each has a plain function f(x, *betas) and an nn.Module (β per channel when\n"
        "num_channels is given). Needs only torch: `from this_file import *`."
    )
    return module_source(cands, names, docs, header)


def write_module(
    cands: Sequence[Candidate] | Candidate,
    path: str | Path,
    names: Sequence[str] | None = None,
    docs: Sequence[str] | None = None,
    header: str | None = None,
) -> Path:
    """Write ``cands`` to ``path`` as an importable module; returns the path."""
    if isinstance(cands, Candidate):
        cands = [cands]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(export_source(cands, names, docs, header), encoding="utf-8")
    return path
