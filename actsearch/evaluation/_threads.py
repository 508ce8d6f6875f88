"""How many threads the trainers use: the CPUs this process may run on, less those other busy
processes hold right now — re-checked every few seconds while training.

Why: a training step is thousands of tiny parallel regions. With every CPU busy elsewhere, each
region waits for a thread whose core another process holds, and a 2-thread population ran 2.6×
slower beside one busy process than on 1 thread (4.5× beside two; ``benchmarks/bench_eval.py
--contention``). Counting the runnable processes (``procs_running`` in /proc/stat, the kernel's
own count, less this thread) tells how many CPUs are taken; the trainers then use the rest, and
go back to all of them when the machine is idle again. ``ACTSEARCH_THREADS=N`` (``--threads N``)
fixes the count instead.

OpenMP's wait policy is left as it is: its idle threads spin for a while between parallel regions,
which is what makes the idle machine fast (with ``OMP_WAIT_POLICY=PASSIVE`` a 2-thread ``train_one``
at ``standard`` took 3× as long idle); the spinning is harmful only beside a busy process, and
there this policy has already gone down to one thread — none left to spin.
"""
from __future__ import annotations

import os
import time

import torch

__all__ = ["ThreadPolicy", "THREADS_ENV", "LIMIT_ENV", "CHECK_EVERY", "usable_cpus", "busy_elsewhere"]

#: Environment variable that fixes the trainers' thread count (``--threads`` sets it).
THREADS_ENV = "ACTSEARCH_THREADS"
#: Environment variable capping the automatic count (a local worker process: CPUs / workers).
LIMIT_ENV = "ACTSEARCH_THREAD_LIMIT"
#: Seconds between two looks at the machine while training.
CHECK_EVERY = 2.0


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask, cgroup-pinned runs included)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def _running_here() -> int:
    """This process's threads that are runnable now (state R in /proc/self/task/*/stat)."""
    n = 0
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/stat", "rb") as fh:
                n += fh.read().rsplit(b")", 1)[1].split()[0] == b"R"
        except (OSError, IndexError):
            continue
    return max(1, n)


def busy_elsewhere(samples: int = 3) -> int:
    """Runnable threads of other processes, now: the kernel's count less this process's own, the
    least of a few looks (a process that merely woke for a moment is not a competitor); 0 where
    there is no /proc."""
    seen = []
    for _ in range(samples):
        try:
            with open("/proc/stat", "rb") as fh:
                line = next(ln for ln in fh if ln.startswith(b"procs_running"))
            seen.append(int(line.split()[1]) - _running_here())
        except (OSError, StopIteration, ValueError, IndexError):
            return 0
        time.sleep(0.0005)
    return max(0, min(seen))


class ThreadPolicy:
    """The thread count of one training run (a context manager that restores the caller's count):
    fixed (``ACTSEARCH_THREADS``, or ``fixed``), or the usable CPUs less the busy ones, re-checked
    every :data:`CHECK_EVERY` seconds (:meth:`adapt`). ``limit`` caps it (local worker processes
    share the CPUs: ``ACTSEARCH_THREAD_LIMIT``)."""

    def __init__(self, fixed: int | None = None, limit: int | None = None) -> None:
        env = os.environ.get(THREADS_ENV, "").strip()
        if fixed is None and env:
            try:
                fixed = max(1, int(env))
            except ValueError:
                fixed = None  # the CLI validates --threads; a stray value here means "auto"
        self.fixed = fixed
        if limit is None and os.environ.get(LIMIT_ENV, "").strip().isdigit():
            limit = max(1, int(os.environ[LIMIT_ENV]))
        self.limit = limit
        self.last = -float("inf")
        self.before = torch.get_num_threads()

    def __enter__(self) -> ThreadPolicy:
        self.adapt(force=True)
        return self

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.before)  # the caller's setting, as it was

    def wanted(self) -> int:
        if self.fixed is not None:
            return self.fixed
        cpus = min(usable_cpus(), self.limit or usable_cpus())
        return max(1, cpus - busy_elsewhere())

    def adapt(self, force: bool = False) -> int:
        """Set torch's thread count for what the machine has free now (at most every few seconds)."""
        now = time.monotonic()
        if force or (self.fixed is None and now - self.last >= CHECK_EVERY):
            self.last = now
            n = self.wanted()
            if n != torch.get_num_threads():
                torch.set_num_threads(n)
        return torch.get_num_threads()
