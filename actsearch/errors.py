"""Every exception actsearch raises on purpose, and the one "did you mean" helper.

Every user-facing failure is an :class:`ActsearchError`; the CLI prints its message as one line on
stderr and exits with status 2. Messages say what was wrong and what to do about it. The module
sits at the bottom of the import graph (it imports nothing of actsearch), so every layer can raise
these and the CLI can catch them all.
"""
from __future__ import annotations

import difflib
from typing import Callable, Iterable

__all__ = [
    "ActsearchError",
    "ParseError",
    "UnknownOperatorError",
    "UnknownActivationError",
    "UnknownInitializerError",
    "UnknownFidelityError",
    "UnknownExperimentError",
    "SpaceError",
    "TaskError",
    "StudyNotFoundError",
    "ForeignStudyError",
    "StorageError",
    "DatasetError",
    "CompileError",
    "CodegenError",
    "FusedUnavailable",
    "IncompatibleWorkerError",
    "DeviceError",
    "CandidateFailed",
    "did_you_mean",
    "one_line",
]


def did_you_mean(name: str, known: Iterable[str], *, n: int = 3, cutoff: float = 0.6, sep: str = ", ",
                 canonical: Callable[[str], str] | None = None) -> str:
    """``"; did you mean 'a', 'b'?"`` for the names in ``known`` close to ``name``, or ``""``.

    The hint every "unknown X" message appends (operators, activations, initializers, fidelities,
    datasets, experiments): ``difflib``'s close matches, in order of closeness, each mapped through
    ``canonical`` (an alias stands for its canonical name), without repeats.
    """
    close = difflib.get_close_matches(name, list(known), n=n, cutoff=cutoff)
    close = list(dict.fromkeys(canonical(c) for c in close) if canonical else dict.fromkeys(close))
    return f"; did you mean {sep.join(repr(c) for c in close)}?" if close else ""


def one_line(text: str) -> str:
    """A message as the one line bad input gets: lines joined, and every character that is not
    printable (a newline, NEL, a line separator, a control character inside user input) escaped."""
    joined = " ".join(part.strip() for part in text.splitlines() if part.strip()) or "(no message)"
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in joined)


class ActsearchError(Exception):
    """Base class: an error caused by the user's input, reported without a traceback."""


class _LookupMessage(ActsearchError, KeyError):
    """A failed lookup by name: a KeyError (so ``except KeyError`` works) that prints its message
    as written rather than KeyError's repr() of it."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ParseError(ActsearchError, ValueError):
    """An expression could not be parsed (malformed, or uses something that is not allowed)."""


class UnknownOperatorError(ParseError):
    """An expression or a space file names an operator that is not in the operator table."""


class UnknownActivationError(_LookupMessage):
    """``get_activation`` was given a name that is not registered."""


class UnknownInitializerError(_LookupMessage):
    """An initializer name is not in the table (:mod:`actsearch.evaluation.init`)."""


class UnknownFidelityError(_LookupMessage):
    """A fidelity preset name is not defined (:data:`actsearch.evaluation.FIDELITIES`)."""


class UnknownExperimentError(_LookupMessage):
    """``experiment NAME`` with a NAME that is not registered."""


class SpaceError(ActsearchError, ValueError):
    """A search-space file is malformed: the message names the file and the field."""


class StudyNotFoundError(ActsearchError, LookupError):
    """The named Optuna study does not exist in the given storage."""


class ForeignStudyError(ActsearchError):
    """A study that ``actsearch search`` did not create (plain Optuna, another tool): never adopted
    or written to, since its direction, parameters and attributes mean something else."""


class StorageError(ActsearchError):
    """The storage failed under a running command: unreachable past the patience limit, full,
    deleted or damaged. Finished trials stay where they were written; the message says what to do."""


class DatasetError(ActsearchError, ValueError):
    """A dataset name is unknown or its files cannot be read."""


class TaskError(ActsearchError, ValueError):
    """A user's task cannot be used: its file or object is missing, or its dry run fails (the
    model is not a module, shapes do not fit, the loss or metric is not a finite number), or a
    study was created with another task."""


class CompileError(ActsearchError):
    """The expression uses something the torch printer has no form for."""


class CodegenError(ActsearchError):
    """An expression the C printer has no form for."""


class FusedUnavailable(ActsearchError):
    """No fused kernel for this population (no compiler, an expression C cannot express …)."""


class IncompatibleWorkerError(ActsearchError):
    """This worker would not produce trials comparable with the study's."""


class DeviceError(ActsearchError, ValueError):
    """A device name torch does not know, or a device this machine does not have."""


class CandidateFailed(ActsearchError, RuntimeError):
    """A candidate could not be evaluated (diverged, degenerate, timed out).

    Like Optuna's ``TrialPruned`` this is control flow for a bad candidate, not a crash: the search
    records ``reason`` and goes on.
    """

    def __init__(self, reason: str, *, step: int | None = None) -> None:
        super().__init__(reason if step is None else f"{reason} at step {step}")
        self.reason = reason
        self.step = step
