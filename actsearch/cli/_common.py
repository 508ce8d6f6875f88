"""What the commands share: one-line usage errors, common options, the device, the progress line."""
from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any, Callable, Iterable, NoReturn, TextIO

from optuna.trial import TrialState

from ..errors import DeviceError, TaskError, one_line
from ..evaluation import FIDELITIES, THREADS_ENV, Task, list_datasets, load_task, resolve_device
from ..search import MAX_SEED, PRUNERS, SAMPLERS, trial_kind

__all__ = ["EXIT_USAGE", "Parser", "add_storage_option", "add_run_options", "add_threads_option", "add_device_option",
           "add_task_option", "task_option", "check_study_task",
           "device", "Progress", "count", "amount", "one_of", "FIDELITY_CHOICES", "SAMPLER_CHOICES", "DATASET_CHOICES",
           "SEED", "PORT"]

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit status 2, like all bad input."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {one_line(message)} (see --help)\n")


def count(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [minimum, maximum]; anything else is a one-line usage error."""
    def whole_number(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number") from None
        if value < minimum or (maximum is not None and value > maximum):
            bound = f"from {minimum} to {maximum}" if maximum is not None else f"at least {minimum}"
            raise argparse.ArgumentTypeError(f"{value} is out of range (must be {bound})")
        return value

    return whole_number


def amount(above: float) -> Callable[[str], float]:
    """An argparse type: a finite number greater than ``above``."""
    def number(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
        if not math.isfinite(value) or value <= above:
            raise argparse.ArgumentTypeError(f"{value:g} is out of range (must be a number above {above:g})")
        return value

    return number


def one_of(names: Iterable[str]) -> str:
    """The choices an option takes, for its help: derived from the code's own table, never typed twice."""
    return "one of: " + ", ".join(names)


#: What --fidelity, --sampler and --dataset accept, read from the tables that define them.
FIDELITY_CHOICES = one_of(FIDELITIES)
SAMPLER_CHOICES = one_of(SAMPLERS)
DATASET_CHOICES = one_of(list_datasets())

#: A seed: sampler streams add 7919 × worker to it and must stay below 2³² (numpy's RandomState).
SEED = count(0, MAX_SEED)
PORT = count(0, 65535)


def add_storage_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--storage", metavar="URL", default=None,
                   help="Optuna storage: a URL (sqlite:///FILE, postgresql+psycopg2://USER:PASSWORD@HOST/DB, "
                        "journal:FILE), a .db file (SQLite) or a .log file (journal) "
                        "(default: sqlite:///results/actsearch.db)")


def add_run_options(s: argparse.ArgumentParser) -> None:
    """How a search or a worker runs (not part of the study: may change between runs)."""
    s.add_argument("--pruner", default="median", metavar="NAME",
                   help=f"when to stop a candidate's training early: {one_of(PRUNERS)} (default: median)")
    s.add_argument("--batch", type=count(1, 4096), default=8, metavar="K",
                   help="candidates trained together as one population (default: 8)")
    s.add_argument("--artifacts", metavar="DIR", default=None,
                   help="folder of the dashboard's artifacts (default: artifacts/ next to the storage file)")
    s.add_argument("--no-plots", action="store_true",
                   help="write no f/f' plot per trial (default: one per trained trial, in the artifacts and in "
                        "plots/STUDY/TRIAL-EXPRESSION.png beside the artifact folder)")
    s.add_argument("--quiet", action="store_true", help="print no progress line (default: one line per trial)")
    add_threads_option(s)


def add_threads_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--threads", type=count(1, 1024), default=None, metavar="N",
                   help=f"training threads (default: the CPUs other processes leave free, re-checked while "
                        f"training; also ${THREADS_ENV})")


def add_device_option(s: argparse.ArgumentParser) -> None:
    s.add_argument("--device", default="auto", metavar="DEVICE",
                   help="where to train: cpu, cuda, cuda:N or auto (auto: CUDA when there is one) (default: auto)")


def add_task_option(s: Any) -> None:  # a parser or a group of it
    s.add_argument("--task", metavar="FILE.py[:NAME]", default=None,
                   help="your own task (data, model, loss, metric) instead of a built-in fidelity: a Python file "
                        "or package.module:NAME holding an actsearch.Task (object `task` by default) "
                        "(default: none: a built-in fidelity)")


def task_option(args: argparse.Namespace) -> Task | None:
    """The task ``--task`` names, loaded and dry-checked (one line and exit 2 when it is broken)."""
    spec = getattr(args, "task", None)
    return load_task(spec) if spec is not None else None


def check_study_task(stored: dict[str, Any] | None, task: Task | None, study: str) -> None:
    """Refuse a ``--task`` other than the one study ``study`` recorded (``stored``: its settings)."""
    if task is None or stored is None:
        return
    rec = stored.get("task")
    if rec is None:
        raise TaskError(f"study {study!r} trains a built-in fidelity, not a task: drop --task or use another --study")
    if (rec.get("name"), rec.get("hash")) != (task.name, task.hash):
        raise TaskError(f"study {study!r} was created with task {rec.get('name')!r} (file hash {rec.get('hash')}); "
                        f"--task {task.source} is {task.name!r} (hash {task.hash}): refusing to mix their trials")


def device(name: str) -> str:
    """The torch device a ``--device`` names (auto: CUDA when there is one), or a one-line error."""
    try:
        return str(resolve_device(name))
    except DeviceError as exc:
        raise DeviceError(f"bad --device {str(name)[:60]!r}: {exc}") from None


# ------------------------------------------------------------------------------------ progress
def _plural(kind: str, n: int) -> str:
    """ "1 duplicate", "2 duplicates"; the other kinds are adjectives ("2 trained", "1 failed")."""
    return kind + "s" if kind == "duplicate" and n != 1 else kind


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


class Progress:
    """One status line on stderr: trials done, best so far (expression, accuracy), ETA. Redrawn in
    place on a terminal, one line per trial otherwise (logs, CI)."""

    def __init__(self, stream: TextIO | None = None, quiet: bool = False) -> None:
        self.stream, self.quiet = stream if stream is not None else sys.stderr, quiet  # sys.stderr now, not at import
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.done, self.t0, self.span = 0, 0, time.perf_counter(), 1
        self.best: tuple[float, str] | None = None
        self.kinds = {"trained": 0, "duplicate": 0, "pruned": 0, "failed": 0}
        self.goal: int | None = None  # the study's trial count this run goes to, when it resumes one

    def start(self, study: Any, settings: Any, total: int, span: int = 1) -> None:
        """``span``: trials that finish together (batch × workers), for an honest ETA."""
        self.total, self.t0, self.span = total, time.perf_counter(), max(1, span)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            self._consider(t)
        space = settings.load_space()
        resumed = len(study.trials) - len(study.get_trials(deepcopy=False, states=(TrialState.WAITING,)))
        goal = f" to go (goal {self.goal})" if self.goal is not None else ""
        what = (f"task {settings.task.get('name')}" if getattr(settings, "task", None) else
                f"{settings.dataset} at {settings.fidelity} fidelity")
        self._print(f"study {study.study_name}: {space.summary()}; {what}, sampler {settings.sampler}"
                    + (f" (resuming after {resumed} trials)" if resumed else "") + f"; {total} trials{goal}",
                    final=True)

    def _consider(self, t: Any) -> None:
        if t.values and (self.best is None or t.values[0] > self.best[0]):
            self.best = (float(t.values[0]), str(t.user_attrs.get("expression", "?")))

    def __call__(self, t: Any) -> None:
        self.done += 1
        self.kinds[trial_kind(t)] += 1
        if t.state == TrialState.COMPLETE:
            self._consider(t)
        self.total = max(self.total, self.done)  # queued retries come on top of the run's own trials
        elapsed = time.perf_counter() - self.t0
        # A batch's trials are told together: rate = elapsed per *batch*, not per first trial told.
        finished = max(1, min(self.total, -(-self.done // self.span) * self.span))
        eta = elapsed / finished * max(0, self.total - finished)
        best = f"best {self.best[0]:.4f} {self.best[1][:40]}" if self.best else "best —"
        counts = ", ".join(f"{v} {_plural(k, v)}" for k, v in self.kinds.items() if v)
        self._print(f"[{self.done:>{len(str(self.total))}}/{self.total}] {best} | {counts} | "
                    f"{_duration(elapsed)} elapsed, ETA {_duration(eta)}", final=self.done >= self.total)

    def _print(self, line: str, final: bool = False) -> None:
        if self.quiet:
            return
        if self.tty:
            self.stream.write("\r\033[K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and not self.quiet and self.done < self.total:
            self.stream.write("\n")
