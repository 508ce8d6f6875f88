"""Fused CPU kernels for a population's activations: one C loop per candidate and direction.

:func:`population_kernel` compiles a population's functions (printed by
:mod:`actsearch.expressions.printing.c`) into one shared library, built by the system C compiler
and cached on disk (:mod:`._build`); :class:`PopulationKernel` calls it for every layer, forward
and backward, all members at once. ``ACTSEARCH_FUSED=0`` turns it off.
"""
from __future__ import annotations

from ._build import KEEP_LIBRARIES, compile_units, compiler, jobs, kernel_dir, load, prune
from ._csrc import c_sources
from ._kernel import Call, PopulationKernel, as_candidate, clear_caches, enabled, population_kernel

__all__ = ["PopulationKernel", "Call", "population_kernel", "as_candidate", "enabled", "kernel_dir", "compiler",
           "jobs", "load", "compile_units", "prune", "KEEP_LIBRARIES", "c_sources", "clear_caches"]
