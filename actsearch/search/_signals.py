"""Stopping a search by a signal: Ctrl-C (SIGINT), SIGTERM (a scheduler, ``kill``, a container
stopping) and SIGHUP (the terminal closed) all stop it the same way — a KeyboardInterrupt
(:class:`Stopped` for the last two, which says which signal) that fails the trials in flight and keeps
every finished one. Around the search's bookkeeping such a signal is deferred to the end of a step
that must happen whole (a storage call; asking a trial and tagging it), or ignored while a run
fails its trials in flight."""
from __future__ import annotations

import contextlib
import signal
import threading
from typing import Any, Iterator

__all__ = ["STOP_SIGNALS", "Stopped", "stop_on_signals", "sigint_deferred", "sigint_ignored"]

#: The signals that stop a search cleanly.
STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A search stopped by SIGTERM or SIGHUP: handled as Ctrl-C; ``signum`` gives the exit status
    (128 + signum, as the shell reports a process the signal ended)."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    def __reduce__(self) -> tuple[Any, tuple[int]]:  # (pickled between worker processes)
        return Stopped, (self.signum,)


def _raise_stopped(signum: int, frame: Any) -> None:
    raise Stopped(signum)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Inside the block SIGTERM and SIGHUP raise :class:`Stopped`, as SIGINT raises
    KeyboardInterrupt (their default would end the process on the spot, leaving its trials
    RUNNING and the workers it started training on)."""
    if not _main_thread():
        yield
        return
    # A signal the process was started ignoring (``nohup`` ignores SIGHUP) stays ignored.
    others = [s for s in STOP_SIGNALS if s != signal.SIGINT and signal.getsignal(s) != signal.SIG_IGN]
    old = {s: signal.signal(s, _raise_stopped) for s in others}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """A first stop signal inside the block is acted on when it ends, so what the block does — one
    storage call; asking a trial and tagging it as this run's — happens whole: cut in half, it
    leaves a trial RUNNING that no cleanup knows, or a pooled connection mid-transaction. A second
    one interrupts at once (a call hung on an unreachable server)."""
    if not _main_thread():
        yield
        return
    caught: list[tuple[int, Any]] = []

    def defer(signum: int, frame: Any) -> None:
        caught.append((signum, frame))
        if len(caught) > 1:
            raise Stopped(signum) if signum != signal.SIGINT else KeyboardInterrupt

    old = {s: signal.signal(s, defer) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if len(caught) == 1:  # (a second one has raised already)
            signum, frame = caught[0]
            handler = old[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL and signum != signal.SIGINT:
                signal.raise_signal(signum)  # what it would have done: end the process
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """While bookkeeping after a stop signal runs, a second one must not cut it short."""
    if not _main_thread():
        yield
        return
    old = {s: signal.signal(s, signal.SIG_IGN) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
