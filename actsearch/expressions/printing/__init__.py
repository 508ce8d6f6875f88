"""Printers from sympy to code: PyTorch source (:mod:`.torch`: what candidates compile to and
``actsearch export`` writes) and float32 C (:mod:`.c`: the loops of the fused population kernels,
imported by them, not here — ``import actsearch`` need not load a C code generator), both derived
from the operator table's ``torch`` and ``c`` columns."""
from __future__ import annotations

from .torch import Printable, TorchPrinter, compiled_function, load_source, module_source, print_torch, python_name

__all__ = ["Printable", "TorchPrinter", "print_torch", "module_source", "load_source", "python_name",
           "compiled_function"]
