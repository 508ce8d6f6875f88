"""Ctrl-C around the search's bookkeeping: deferred to the end of a step that must happen whole
(a storage call; asking a trial and tagging it), or ignored while a run fails its trials in flight."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["sigint_deferred", "sigint_ignored"]


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """A first Ctrl-C inside the block is raised when it ends, so what the block does — one
    storage call; asking a trial and tagging it as this run's — happens whole: cut in half, it
    leaves a trial RUNNING that no cleanup knows, or a pooled connection mid-transaction. A second
    Ctrl-C interrupts at once (a call hung on an unreachable server)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []

    def defer(signum: int, frame: Any) -> None:
        caught.append((signum, frame))
        if len(caught) > 1:
            raise KeyboardInterrupt

    old = signal.signal(signal.SIGINT, defer)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
        if len(caught) == 1:  # (a second one has raised already)
            if callable(old):
                old(*caught[0])
            elif old != signal.SIG_IGN:
                raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """While bookkeeping after Ctrl-C runs, a second Ctrl-C must not cut it short."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
