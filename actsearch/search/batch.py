"""One batch of trials asked of an Optuna study, trained as one population, told.

One step of a worker (:func:`actsearch.search.driver.run_worker`, which loops over them): ask the
study for a batch of K trials (``study.ask()`` K times; the sampler sees the earlier ones running,
TPE through its constant liar), build each trial's candidate from the grammar, and sort the batch:

- degenerate (constant, non-finite, no x …) → told ``FAIL`` with the reason, never trained;
- equivalent (same :attr:`Candidate.key`) to a trial the study already finished → told that
  trial's values (or its failure), ``duplicate_of`` = its number, never trained;
- equivalent to a trial still running (in this batch, or in another worker with a lower trial
  number) → waits for it and then copies it;
- otherwise trained by the study's task (:meth:`actsearch.evaluation.Task.evaluate`: a built-in
  child all together as one population, a user's model one at a time), every candidate on the
  same seeds. Checkpoints are reported to the trial; a member whose trial
  the pruner stops leaves the stack at once. Then ``study.tell``.

What each trial records is in its user attributes (:meth:`Batch._describe`, :meth:`Batch._finish`);
the f/f′ plot of every trained candidate is an Optuna artifact.
"""
from __future__ import annotations

import os
import re
import socket
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import optuna
from optuna.trial import FrozenTrial, Trial, TrialState

from ..evaluation import TrainResult, overall_status, summarize
from ..expressions import Candidate, Space, plot_function
from ._signals import sigint_deferred
from .samplers import activation_cost, population_seeds
from .settings import EVALUATED_FAILURES, SearchSettings, task_for
from .trials import beat, beats_in_attrs, over_budget, replaced_numbers

__all__ = ["Batch", "Item", "Reporter", "OnTrial", "has_heartbeats"]

OnTrial = Callable[[FrozenTrial], None]


# ------------------------------------------------------------------------------------ helpers


def _slug(text: str, limit: int = 60) -> str:
    """A file name's worth of ``text``: "x*sigmoid(beta0*x)" -> "x-sigmoid-beta0-x"."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-.").lower()
    return slug[:limit].rstrip("-.") or "f"


def _safe_set(trial: Trial, key: str, value: Any) -> None:
    try:
        trial.set_user_attr(key, value)
    except (RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
        pass  # finished meanwhile (another process cleaned up after an interrupt)


def _report(item: Item, value: float, step: int) -> None:
    """``trial.report``, unless the trial was finished meanwhile by someone else: this worker was
    stopped (SIGSTOP, a frozen container) past the grace period, another failed its trial as stale
    and trains the retry. The item is then taken: it leaves the population and is never told."""
    try:
        item.trial.report(value, step)
    except optuna.exceptions.UpdateFinishedTrialError:
        item.taken = item.pruned = True


def has_heartbeats(study: optuna.Study) -> bool:
    """Whether a dead worker's trials are found stale: the storage's heartbeats (a database), or
    actsearch's own in trial attributes (a journal file). Without either they never leave RUNNING."""
    storage = study._storage
    return getattr(storage, "get_heartbeat_interval", lambda: None)() is not None or beats_in_attrs(storage)


@dataclass(eq=False)  # identity semantics: items are used as set members
class Item:
    trial: Trial
    cand: Candidate | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    leader: Item | None = None  # an equivalent trial whose result this one copies
    wait_for: int | None = None  # trial number running in another worker
    members: list[int] = field(default_factory=list)  # population indices (one per seed)
    pruned: bool = False
    done: bool = False
    taken: bool = False  # finished by another worker while this one was stopped (see _report)


class Reporter:
    """Turns the engine's per-member checkpoints into per-trial reports and prune decisions.

    With several seeds a trial reports the mean over its seeds at a step once every live member
    has reported it. The engine reports members in ascending index order and silently drops a
    diverged one, so a member that has not reported step s when a later member does is gone.
    """

    def __init__(self, items: list[Item], prune: bool) -> None:
        self.items, self.prune = items, prune
        self.owner = {m: it for it in items for m in it.members}
        self.last: dict[int, int] = {}  # member -> last step reported
        self.accs: dict[tuple[int, int], dict[int, float]] = {}  # (trial, step) -> member -> acc
        self.dead: set[int] = set()
        self.sent: set[tuple[int, int]] = set()

    def __call__(self, i: int, step: int, acc: float) -> bool:
        for j in range(i):  # anyone before i that missed this checkpoint has left the stack
            if self.last.get(j, 0) < step:
                self.dead.add(j)
        self.last[i] = step
        item = self.owner[i]
        self.accs.setdefault((item.trial.number, step), {})[i] = acc
        for other in {self.owner[j] for j in range(i + 1)}:
            self._flush(other, step)
        return item.pruned

    def _flush(self, item: Item, step: int) -> None:
        key = (item.trial.number, step)
        live = [m for m in item.members if m not in self.dead]
        got = self.accs.get(key, {})
        if key in self.sent or not live or any(m not in got for m in live):
            return
        self.sent.add(key)
        if item.pruned:
            return
        _report(item, statistics.fmean(got.values()), step)
        if self.prune and not item.taken and item.trial.should_prune():
            item.pruned = True


# --------------------------------------------------------------------------------------- batch
class Batch:
    """One ask/tell round; :meth:`abort` fails whatever it has not told (Ctrl-C)."""

    def __init__(self, study: optuna.Study, space: Space, settings: SearchSettings, *, device: str,
                 store: Any, run_id: str, plots: bool, on_trial: OnTrial | None) -> None:
        self.study, self.space, self.settings = study, space, settings
        self.device, self.store, self.run_id, self.plots, self.on_trial = device, store, run_id, plots, on_trial
        self.task = task_for(settings, study.study_name)
        self.seeds = list(population_seeds(settings.seed, settings.seeds))
        self.items: list[Item] = []
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    # ---- ask
    def ask(self) -> Item:
        with sigint_deferred():  # a Ctrl-C here must not leave a trial that abort() cannot see
            trial = self.study.ask()
            item = Item(trial)
            self.items.append(item)
            _safe_set(trial, "run", self.run_id)
            _safe_set(trial, "worker", self.worker)
            beat(self.study._storage, trial._trial_id)  # a journal's first beat: before anything can kill it
        try:
            item.cand = self.space.suggest(trial)
        except Exception as exc:  # the grammar produced something the compiler refuses
            self._fail(item, "error", f"cannot build the candidate: {exc}")
            return item
        self._describe(item)
        return item

    def _describe(self, item: Item) -> None:
        cand = item.cand
        assert cand is not None
        attrs = {"expression": cand.text, "latex": cand.latex, "key": cand.key,
                 "structure": self.space.expression_text(item.trial.params),
                 "core_units": cand.core_units, "op_count": cand.op_count()}
        for k, v in attrs.items():
            _safe_set(item.trial, k, v)

    # ---- sort
    def classify(self, index: dict[str, FrozenTrial], running: dict[str, int]) -> None:
        """Decide for each asked trial: fail, copy, wait or train (see the module doc)."""
        leaders: dict[str, Item] = {}
        for item in self.items:
            if item.done or item.cand is None:
                continue
            reason = item.cand.degenerate_reason
            if reason is not None:
                self._fail(item, "degenerate", reason)
                continue
            key = item.cand.key
            if key in index:
                self._copy(item, index[key])
            elif key in leaders:
                item.leader = leaders[key]
            elif running.get(key, item.trial.number) < item.trial.number:
                item.wait_for = running[key]
            else:
                leaders[key] = item

    # ---- train
    def train(self) -> None:
        todo = [it for it in self.items if not it.done and it.leader is None and it.wait_for is None
                and it.cand is not None]
        if not todo:
            return
        acts: list[Any] = []
        for it in todo:
            it.members = list(range(len(acts), len(acts) + len(self.seeds)))
            acts += [it.cand] * len(self.seeds)
        reporter = Reporter(todo, prune=not self.settings.multi_objective)
        seeds = self.seeds * len(todo)
        try:
            results = self.task.evaluate(acts, seeds, device=self.device, report=reporter)
        except Exception:  # one bad member must not sink the batch: retry them one at a time
            results = self._train_one_by_one(acts, seeds)
        self._late_duplicates(todo)
        for it in todo:
            self._finish(it, [results[m] for m in it.members], reporter)
        for it in self.items:  # trials equivalent to one trained here copy its outcome
            if it.leader is not None and not it.done:
                self._copy(it, self.study._storage.get_trial(it.leader.trial._trial_id))

    def _late_duplicates(self, todo: list[Item]) -> None:
        """Another worker may have asked an equivalent trial in the instant between this batch's
        asks and its key being written (so neither saw the other): the lower trial number keeps the
        original, a higher one trained here is marked ``duplicate_of`` it — trained, counted once."""
        mine = {it.trial.number for it in self.items}
        trials = self.study.get_trials(deepcopy=False)
        replaced = replaced_numbers(trials)
        first: dict[str, int] = {}
        for t in trials:
            key = t.user_attrs.get("key")
            if (key is None or t.number in mine or t.number in replaced or "duplicate_of" in t.user_attrs
                    or t.state == TrialState.WAITING
                    or (t.state == TrialState.FAIL and t.user_attrs.get("status") not in EVALUATED_FAILURES)):
                continue
            first[key] = min(first.get(key, t.number), t.number)
        for it in todo:
            n = first.get(it.cand.key) if it.cand is not None else None
            if n is not None and n < it.trial.number:
                _safe_set(it.trial, "duplicate_of", n)

    def _train_one_by_one(self, acts: list[Any], seeds: list[int]) -> list[TrainResult]:
        out = []
        for act, seed in zip(acts, seeds):
            try:
                out.append(self.task.run(act, seed, device=self.device))
            except Exception as exc:
                out.append(TrainResult("error", None, None, 0, 0.0, [], f"training raised {type(exc).__name__}: {exc}"))
        return out

    def _finish(self, item: Item, rs: list[TrainResult], reporter: Reporter) -> None:
        if item.taken or self.study._storage.get_trial(item.trial._trial_id).state.is_finished():
            self._taken(item)  # its retry is someone else's now: nothing of this run is written to it
            return
        status, reason = overall_status(rs)
        if any(r.status == "error" for r in rs):
            status, reason = "error", next(r.reason for r in rs if r.status == "error")
        attrs = {"status": status, **summarize(rs), "seeds": self.seeds, "trained_with": len(reporter.owner)}
        if reason:
            attrs["fail_reason" if status in EVALUATED_FAILURES else "note"] = reason
        for k, v in attrs.items():
            _safe_set(item.trial, k, v)
        if status in EVALUATED_FAILURES:
            self._tell(item, state=TrialState.FAIL)
            return
        if not self.settings.multi_objective:  # checkpoints the reporter could not flush (last member gone)
            for step, acc in rs[0].curve:
                if (item.trial.number, step) not in reporter.sent and len(rs) == 1:
                    _report(item, acc, step)
        self._plot(item)
        if item.pruned or status == "pruned":
            self._tell(item, state=TrialState.PRUNED)
            return
        values: list[float] = []
        for objective in self.settings.objective_names:
            if objective == "cost":
                assert item.cand is not None
                cost = activation_cost(item.cand, self.settings.cost)
                _safe_set(item.trial, "cost", cost)
                values.append(cost)
            else:
                value = attrs["ood_accuracy_mean" if objective == "ood" else "accuracy_mean"]
                if value is None:  # every seed's test set left out (the settings ensure a shifted set exists)
                    self._fail(item, "error", f"no {objective} accuracy to score")
                    return
                values.append(value)
        self._tell(item, values=values)

    def _plot(self, item: Item) -> None:
        """The f/f′ plot: an artifact for the dashboard, and a file a user finds without it,
        ``plots/STUDY/TRIAL-SLUG.png`` beside the artifact folder (its path in the attribute ``plot``)."""
        if not self.plots or self.store is None or item.cand is None:
            return
        try:
            base = getattr(self.store, "_base_path", None)  # Optuna keeps the folder it was given here
            if base is not None:
                folder = Path(base).parent / "plots" / _slug(self.study.study_name)
                folder.mkdir(parents=True, exist_ok=True)
                path = plot_function(item.cand, folder / f"{item.trial.number}-{_slug(item.cand.text)}.png")
                _safe_set(item.trial, "plot", str(path))
                optuna.artifacts.upload_artifact(artifact_store=self.store, file_path=str(path),
                                                 study_or_trial=item.trial, mimetype="image/png")
                return
            with tempfile.TemporaryDirectory() as d:
                path = plot_function(item.cand, os.path.join(d, f"trial-{item.trial.number}-f.png"))
                optuna.artifacts.upload_artifact(artifact_store=self.store, file_path=str(path),
                                                 study_or_trial=item.trial, mimetype="image/png")
        except Exception as exc:  # a plot is a convenience, never a reason to lose a trial
            _safe_set(item.trial, "plot_error", f"{type(exc).__name__}: {exc}")

    # ---- tell
    def _copy(self, item: Item, orig: FrozenTrial) -> None:
        """Tell ``item`` what the equivalent trial ``orig`` got, without training."""
        _safe_set(item.trial, "duplicate_of", orig.number)
        for k in ("status", "accuracy_mean", "accuracy_std", "val_accuracies", "test_accuracy_mean",
                  "test_accuracy_std", "ood_accuracy_mean", "ood_accuracy_std", "seeds", "fail_reason", "cost"):
            if k in orig.user_attrs:
                _safe_set(item.trial, k, orig.user_attrs[k])
        if orig.state == TrialState.COMPLETE:
            self._tell(item, values=list(orig.values))
        elif orig.state == TrialState.PRUNED:
            for step, v in sorted(orig.intermediate_values.items()):
                _report(item, v, step)
            self._tell(item, state=TrialState.PRUNED)
        else:
            self._tell(item, state=TrialState.FAIL)

    def _fail(self, item: Item, status: str, reason: str) -> None:
        _safe_set(item.trial, "status", status)
        _safe_set(item.trial, "fail_reason", reason)
        self._tell(item, state=TrialState.FAIL)

    def _tell(self, item: Item, values: list[float] | None = None, state: TrialState | None = None) -> None:
        if item.taken:  # another worker finished it (see _report)
            self._taken(item)
            return
        frozen = self.study.tell(item.trial, values=values, state=state, skip_if_finished=True)
        item.done = True
        if frozen.state != (state or TrialState.COMPLETE):  # it was finished elsewhere (skip_if_finished)
            self._taken(item)
            return
        if self.on_trial is not None:
            self.on_trial(frozen)

    def _taken(self, item: Item) -> None:
        """Drop a trial another worker finished while this one was stopped (see :func:`_report`)."""
        item.done = True
        print(f"actsearch: trial {item.trial.number} was failed as stale and retried by another worker while "
              "this one was stopped; its result here is dropped, moving on", file=sys.stderr)

    def admit(self, items: list[Item], budget: int) -> int:
        """Fail the just-asked trials that exceed the study's budget (another worker asked first);
        returns how many were admitted."""
        over = over_budget(self.study, [i.trial.number for i in items], budget)
        for item in items:
            if item.trial.number in over and not item.done:
                self._fail(item, "over_budget", f"the study's budget of {budget} trials was used by other workers")
        return len(items) - len(over)

    def abort(self, reason: str = "interrupted") -> None:
        """Fail every trial of the batch not yet told — kept in the study, not lost."""
        for item in self.items:
            if not item.done:
                _safe_set(item.trial, "status", "interrupted")
                _safe_set(item.trial, "fail_reason", reason)
                self._tell(item, state=TrialState.FAIL)
