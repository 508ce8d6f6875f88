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
def _handling(signals: list[int], handler: Any) -> Iterator[dict[int, Any]]:
    """``handler`` for ``signals`` inside the block (main thread only: elsewhere nothing is
    installed and the dict is empty); the handlers before it are yielded and restored after."""
    old = {s: signal.signal(s, handler) for s in signals} if _main_thread() else {}
    try:
        yield old
    finally:
        for s, previous in old.items():
            signal.signal(s, previous)


def stop_on_signals() -> contextlib.AbstractContextManager[dict[int, Any]]:
    """Inside the block SIGTERM and SIGHUP raise :class:`Stopped`, as SIGINT raises
    KeyboardInterrupt (their default would end the process on the spot, leaving its trials
    RUNNING and the workers it started training on). A signal the process was started ignoring
    (``nohup`` ignores SIGHUP) stays ignored."""
    return _handling([s for s in STOP_SIGNALS if s != signal.SIGINT and signal.getsignal(s) != signal.SIG_IGN],
                     _raise_stopped)


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """A first stop signal inside the block is acted on when it ends, so what the block does — one
    storage call; asking a trial and tagging it as this run's — happens whole: cut in half, it
    leaves a trial RUNNING that no cleanup knows, or a pooled connection mid-transaction. A second
    one interrupts at once (a call hung on an unreachable server)."""
    caught: list[tuple[int, Any]] = []

    def defer(signum: int, frame: Any) -> None:
        caught.append((signum, frame))
        if len(caught) > 1:
            raise Stopped(signum) if signum != signal.SIGINT else KeyboardInterrupt

    try:
        with _handling(list(STOP_SIGNALS), defer) as old:
            yield
    finally:  # also when the block raised: a caller that retries the call must not lose the signal
        if len(caught) == 1:  # (a second one has raised already)
            signum, frame = caught[0]
            handler = old[signum]
            if callable(handler):
                handler(signum, frame)
            elif handler == signal.SIG_DFL and signum != signal.SIGINT:
                signal.raise_signal(signum)  # what it would have done: end the process
            elif handler != signal.SIG_IGN:
                raise KeyboardInterrupt


def sigint_ignored() -> contextlib.AbstractContextManager[dict[int, Any]]:
    """While bookkeeping after a stop signal runs, a second one must not cut it short."""
    return _handling(list(STOP_SIGNALS), signal.SIG_IGN)
