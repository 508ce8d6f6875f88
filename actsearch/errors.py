"""The exceptions actsearch raises for bad input.

Every user-facing failure is an :class:`ActsearchError`; the CLI prints its message as one line on
stderr and exits with status 2. Messages say what was wrong and what to do about it.
"""
from __future__ import annotations

__all__ = [
    "ActsearchError",
    "ParseError",
    "UnknownOperatorError",
    "UnknownActivationError",
    "SpaceError",
    "StudyNotFoundError",
    "DatasetError",
    "CandidateFailed",
]


class ActsearchError(Exception):
    """Base class: an error caused by the user's input, reported without a traceback."""


class ParseError(ActsearchError, ValueError):
    """An expression could not be parsed (malformed, or uses something that is not allowed)."""


class UnknownOperatorError(ParseError):
    """An expression or a space file names an operator that is not in the operator table."""


class UnknownActivationError(ActsearchError, KeyError):
    """``get_activation`` was given a name that is not registered."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class SpaceError(ActsearchError, ValueError):
    """A search-space file is malformed: the message names the file and the field."""


class StudyNotFoundError(ActsearchError, LookupError):
    """The named Optuna study does not exist in the given storage."""


class DatasetError(ActsearchError, ValueError):
    """A dataset name is unknown or its files cannot be read."""


class CandidateFailed(ActsearchError, RuntimeError):
    """A candidate could not be evaluated (diverged, degenerate, timed out).

    Like Optuna's ``TrialPruned`` this is control flow for a bad candidate, not a crash: the search
    records ``reason`` and goes on.
    """

    def __init__(self, reason: str, *, step: int | None = None) -> None:
        super().__init__(reason if step is None else f"{reason} at step {step}")
        self.reason = reason
        self.step = step
