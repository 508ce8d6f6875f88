"""Files and folders a command reads or writes, checked before any work starts.

A ``verify --csv`` to a folder that cannot be written should fail in a second, not after an hour
of training: every command checks its output paths up front (:func:`output_file`,
:func:`output_dir`) and reads its input files through :func:`read_text`, which turns the OS's
errors (missing, a folder, unreadable, not text, a device that never ends) into one line that says
what to do. Like :mod:`actsearch.errors` it imports nothing of actsearch, so every layer can use it.
"""
from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

from .errors import ActsearchError

__all__ = ["PathError", "output_file", "output_dir", "read_text", "MAX_INPUT_BYTES"]

#: Input files are small (a space file, a study's CSV): anything larger is not what was meant.
MAX_INPUT_BYTES = 16 << 20


class PathError(ActsearchError, OSError):
    """A path a command needs cannot be read or written."""


_F = TypeVar("_F", bound=Callable[..., Any])


def _guarded(check: _F) -> _F:
    """The OS's own refusals of a path (a NUL byte, a name too long, a loop of links) as PathError."""
    @functools.wraps(check)
    def run(path: Any, what: str, *args: Any, **kwargs: Any) -> Any:
        if "\x00" in str(path):
            raise PathError(f"{what} {str(path)!r} contains a NUL byte")
        try:
            return check(path, what, *args, **kwargs)
        except PathError:
            raise
        except (OSError, ValueError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise PathError(f"{what} {str(path)[:200]!r}: {reason}") from None

    return run  # type: ignore[return-value]


def _existing_ancestor(path: Path) -> Path:
    for p in (path, *path.parents):
        if p.exists():
            return p
    return Path(".")


@_guarded
def output_dir(path: str | os.PathLike[str], what: str) -> Path:
    """``path`` as a folder this process can write files in: created (with its parents) if missing,
    and a file created and removed there, the one test no permission bit or mount flag fools."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PathError(f"{what} {path} exists and is not a folder: give a folder path")
    base = _existing_ancestor(path)
    if not base.is_dir():
        raise PathError(f"{what} {path}: {base} is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise PathError(f"{what} {path}: cannot write there ({exc.strerror or type(exc).__name__})") from None
    return path


@_guarded
def output_file(path: str | os.PathLike[str], what: str, suffixes: Iterable[str] | None = None) -> Path:
    """``path`` as a file this process can write (its folder made if needed); ``suffixes``: the
    file types allowed (".png", ".csv" …)."""
    path = Path(path)
    if not str(path).strip() or path.name in ("", ".", ".."):
        raise PathError(f"{what} {str(path)!r} is not a file name")
    if path.is_dir():
        raise PathError(f"{what} {path} is a folder: give a file name inside it")
    allowed = [s.lower() for s in suffixes] if suffixes is not None else None
    if allowed is not None and path.suffix.lower() not in allowed:
        raise PathError(f"{what} {path}: unsupported file type {path.suffix or '(none)'!r} "
                        f"(use one of: {', '.join(allowed)})")
    output_dir(path.parent, f"{what} {path}: folder")
    if path.exists():
        try:
            with path.open("ab"):  # opened for writing, nothing written
                pass
        except OSError as exc:
            raise PathError(f"{what} {path}: cannot write it ({exc.strerror or type(exc).__name__})") from None
    return path


@_guarded
def read_text(path: str | os.PathLike[str], what: str, limit: int = MAX_INPUT_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``limit`` bytes, or a one-line :class:`PathError`."""
    path = Path(path)
    try:
        if not path.is_file():
            raise PathError(f"{what} {path} is not a regular file")
        with path.open("rb") as fh:
            data = fh.read(limit + 1)
    except PathError:
        raise
    except OSError as exc:
        raise PathError(f"cannot read {what} {path}: {exc.strerror or type(exc).__name__}") from None
    if len(data) > limit:
        raise PathError(f"{what} {path} is larger than {limit >> 20} MB: not a {what}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise PathError(f"{what} {path} is not UTF-8 text") from None
