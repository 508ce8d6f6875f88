"""What defines a study: its settings, its name, and the user attributes a search keeps in it.

:class:`SearchSettings` is stored in the study at creation (``actsearch_settings``), so that
``actsearch worker`` needs only a storage URL and a study name; :func:`build_settings` makes them
from a command's options, filled in from the study's own when it exists.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .._version import __version__
from ..errors import ActsearchError, DatasetError, TaskError
from ..evaluation import (MNIST1D_VARIANTS, Fidelity, Task, builtin_task, file_hash, find_task, get_fidelity, list_datasets,
                          load_dataset)
from ..expressions import Space, load_space, space_from_dict
from .samplers import COSTS, SAMPLERS

__all__ = ["SearchSettings", "MAX_SEED", "MAX_SEEDS", "OBJECTIVES", "OBJECTIVE_PAIRS", "SETTINGS_ATTR", "BUDGET_ATTR", "REFERENCES_ATTR", "EVALUATED_FAILURES", "OWN_FAILURES", "MAX_RETRIES", "DEFAULTS",
           "space_hash", "space_to_dict", "study_name_for", "fidelity_for", "task_for", "build_settings", "normalize_dataset",
           "TASK_FIDELITY"]

#: Seeds are 0 … MAX_SEED: a worker's sampler stream adds 7919 × (its index ≤ 250,000) and numpy's
#: RandomState takes seeds below 2³².
MAX_SEED = 2**31 - 1
#: Training seeds per candidate, at most.
MAX_SEEDS = 1000
#: Study user attribute holding :class:`SearchSettings` — all a worker needs besides storage+name.
SETTINGS_ATTR = "actsearch_settings"
#: Study user attribute: the total number of trials the study may count (:func:`actsearch.search.trials.counted`).
BUDGET_ATTR = "budget"
#: Study user attribute: the reference activations trained beside the space (:mod:`.references`).
REFERENCES_ATTR = "references"
#: Failures that say something about the function (a later equivalent trial copies them);
#: "interrupted" or a stale worker says nothing, so an equivalent trial is trained instead.
EVALUATED_FAILURES = ("degenerate", "diverged", "error")
#: Statuses a FAIL trial gets from actsearch itself; a FAIL trial with any other status (none, or
#: "ok" when its worker died between scoring and telling) was failed by a stale heartbeat.
OWN_FAILURES = (*EVALUATED_FAILURES, "over_budget", "interrupted", "duplicate_reference")
#: How many times a trial whose worker died is re-queued: a candidate that was running when its
#: worker died MAX_RETRIES + 1 times (e.g. one that exhausts the machine's memory) is given up.
MAX_RETRIES = 3


@dataclass(frozen=True)
class SearchSettings:
    """What defines a study; stored in it at creation so ``actsearch worker`` needs nothing else.

    Everything that changes a trial's score is here (space, dataset, fidelity, seeds); pruner and
    batch size only change how fast the study gets there and may differ between runs.
    """

    space: str  # shipped space name or path, for display and the study name
    dataset: str
    fidelity: str
    sampler: str
    seed: int = 0
    seeds: int = 1  # training seeds per candidate: the score is the mean over them (paired: same seeds for all)
    cost: str = "time"  # nsga2's cost objective: "time" (fwd+bwd µs) or "ops" (sympy op count)
    # What a trial's value is: "val" (validation accuracy) or "ood" (accuracy on the shifted test set,
    # Vitvitskyi et al. 2026); nsga2 searches the trade-off of `objectives`: "val,cost" or "val,ood".
    objective: str = "val"
    objectives: str = "val,cost"
    space_def: dict[str, Any] | None = None  # the space itself, so a worker elsewhere can rebuild it
    version: str = ""  # actsearch version that created the study (filled in at construction)
    space_hash: str = ""  # sha256 of the canonical space_def (filled in at construction)
    # A user's task (--task): {"name", "source", "hash"} (:func:`actsearch.evaluation.task_record`);
    # then `fidelity` is "task" and `dataset` the task's name. None: the built-in child of `fidelity`.
    task: dict[str, str] | None = None
    data_hash: str = ""  # sha256 of a --dataset FILE.npz, checked wherever the study's trials are trained

    def __post_init__(self) -> None:
        if not self.version:
            object.__setattr__(self, "version", __version__)
        if not self.space_hash and self.space_def is not None:
            object.__setattr__(self, "space_hash", space_hash(self.space_def))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SearchSettings:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in fields})

    def load_space(self) -> Space:
        if self.space_def is not None:
            return space_from_dict(self.space_def, f"<study space {self.space}>")
        return load_space(self.space)

    @property
    def task_key(self) -> tuple[str, str] | None:
        """What makes two tasks the same for a study: the name and the file's hash (not its path,
        which differs from machine to machine)."""
        return None if self.task is None else (str(self.task.get("name")), str(self.task.get("hash")))

    @property
    def multi_objective(self) -> bool:
        return self.sampler == "nsga2"

    @property
    def objective_names(self) -> list[str]:
        """The study's objectives in order: ["val"], ["ood"], or nsga2's two."""
        return self.objectives.split(",") if self.multi_objective else [self.objective]

    @property
    def directions(self) -> list[str]:
        return ["minimize" if o == "cost" else "maximize" for o in self.objective_names]


def space_hash(space_def: dict[str, Any]) -> str:
    """sha256 of a space definition in canonical JSON: what a worker checks before it trains."""
    blob = json.dumps(space_def, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def space_to_dict(space: Space) -> dict[str, Any]:
    """The inverse of :func:`actsearch.expressions.space_from_dict` (what a space file would hold)."""
    return {
        "name": space.name, "description": space.description, "core_units": space.core_units,
        "unary": list(space.unary), "binary": list(space.binary),
        "beta": {"trainable": space.beta_trainable, "per_channel": space.beta_per_channel},
        "units": [{"inputs": list(ins)} for ins in space.inputs],
    }


def study_name_for(settings: SearchSettings) -> str:
    """Deterministic, so re-running the same command resumes the same study. A space file's study
    is named after the space's own ``name`` (what the file says it is), not after the file."""
    named = (settings.space_def or {}).get("name")
    space = str(named) if named else (Path(settings.space).stem if settings.space.endswith(".toml") else settings.space)
    dataset = Path(settings.dataset).stem if settings.dataset.endswith(".npz") else settings.dataset
    seeds = f"-x{settings.seeds}" if settings.seeds != 1 else ""
    objective = "-" + settings.objectives.replace(",", "-") if settings.multi_objective and settings.objectives != "val,cost" \
        else ("-ood" if not settings.multi_objective and settings.objective == "ood" else "")
    return f"{space}-{dataset}-{settings.fidelity}-{settings.sampler}-s{settings.seed}{seeds}{objective}"


def fidelity_for(settings: SearchSettings) -> Fidelity:
    """The preset a study's trials train at, on the study's dataset (a built-in task's)."""
    if settings.task is not None:
        raise ActsearchError(f"this study scores the task {settings.task.get('name')!r}, not a built-in fidelity")
    return get_fidelity(settings.fidelity).replace(dataset=settings.dataset)


#: The ``fidelity`` a study of a user's task records.
TASK_FIDELITY = "task"


def task_for(settings: SearchSettings, study: str = "") -> Task:
    """What a study's trials are scored by: its user's task (loaded and checked against the
    recorded hash) or its built-in fidelity on its dataset (a ``.npz`` file checked against its hash)."""
    if settings.task is not None:
        return find_task(settings.task, study)
    if settings.data_hash:
        _check_data_file(settings.dataset, settings.data_hash, study)
    return builtin_task(settings.fidelity, settings.dataset)


_CHECKED: set[tuple[str, str]] = set()


def _check_data_file(path: str, want: str, study: str) -> None:
    if (path, want) in _CHECKED:
        return
    try:
        got = file_hash(path)
    except OSError:
        raise TaskError(f"study {study!r} trains on the dataset file {path}, which is not here") from None
    if got != want:
        raise TaskError(f"study {study!r} was created with another {path} (file hash {want}, now {got}): "
                        "refusing to mix their trials (use another --study)")
    _CHECKED.add((path, want))


#: What a new study gets for an option the command did not give.
DEFAULTS: dict[str, Any] = {"space": "paper-1", "fidelity": "standard", "sampler": "tpe", "seed": 0, "seeds": 1,
                            "cost": "time", "objective": "val", "objectives": "val,cost"}
#: Single objectives, and nsga2's pairs.
OBJECTIVES = ("val", "ood")
OBJECTIVE_PAIRS = ("val,cost", "val,ood")


def normalize_dataset(name: str) -> str:
    """A dataset name as the registry spells it ("MNIST_1D" → "mnist1d"), or a ``.npz`` file (loaded
    once here, so a bad one is a one-line error before anything runs)."""
    if name.strip().lower().endswith(".npz"):
        load_dataset(name.strip())
        return name.strip()
    key = name.strip().lower().replace("-", "").replace("_", "")
    known = {n.replace("-", ""): n for n in list_datasets()}
    if key not in known:
        raise DatasetError(f"unknown dataset {name!r} (known: {', '.join(list_datasets())})")
    return known[key]


def build_settings(given: Mapping[str, Any], stored: Mapping[str, Any] | None = None) -> SearchSettings:
    """Settings from a command's options (``given``: only those it gave), filled in from the
    settings an existing study was created with (``stored``), then :data:`DEFAULTS`. Options that
    define a study default to None on the command line for this reason: ``--study NAME`` alone
    resumes a study as it was created."""
    base: dict[str, Any] = {**DEFAULTS, **(stored or {}), **{k: v for k, v in given.items() if v is not None}}
    task = given.get("task") if given.get("task") is not None else (stored or {}).get("task")
    if task is not None:  # a user's task replaces the fidelity and dataset
        if given.get("task") is not None and (given.get("fidelity") is not None or given.get("dataset") is not None):
            raise ActsearchError("--task sets the data, model and training itself: drop --fidelity and --dataset")
        if base["sampler"] == "surrogate":
            raise ActsearchError("the surrogate sampler measures its features on a built-in child; with --task "
                                 "use tpe, random, evolution, nsga2 or exhaustive")
        base["fidelity"], base["dataset"] = TASK_FIDELITY, task["name"]
        dataset, fid_name, data_hash = task["name"], TASK_FIDELITY, ""
    else:
        fid_name = get_fidelity(base["fidelity"]).name
        dataset = normalize_dataset(base.get("dataset") or get_fidelity(base["fidelity"]).dataset)
        data_hash = file_hash(dataset) if dataset.endswith(".npz") else ""
    if base["sampler"] not in SAMPLERS:
        raise ActsearchError(f"unknown sampler {base['sampler']!r} (use one of: {', '.join(SAMPLERS)})")
    if base["cost"] not in COSTS:
        raise ActsearchError(f"unknown cost {base['cost']!r}: use {' or '.join(repr(c) for c in COSTS)}")
    if base["objective"] not in OBJECTIVES:
        raise ActsearchError(f"unknown objective {base['objective']!r}: use {' or '.join(OBJECTIVES)}")
    pair = ",".join(p.strip() for p in str(base["objectives"]).split(","))
    if pair not in OBJECTIVE_PAIRS:
        raise ActsearchError(f"unknown objectives {base['objectives']!r}: use {' or '.join(OBJECTIVE_PAIRS)} (nsga2)")
    wants_ood = base["objective"] == "ood" or (base["sampler"] == "nsga2" and "ood" in pair)
    if wants_ood and dataset not in MNIST1D_VARIANTS:
        raise ActsearchError(f"the ood objective needs a dataset with a shifted test set (an MNIST-1D one: "
                             f"{', '.join(MNIST1D_VARIANTS)}), not {dataset!r}")
    if given.get("space") is not None or "space_def" not in base:
        base["space_def"] = space_to_dict(load_space(base["space"]))
    settings = SearchSettings(space=base["space"], dataset=dataset, fidelity=fid_name, sampler=base["sampler"],
                              seed=int(base["seed"]), seeds=int(base["seeds"]), cost=base["cost"],
                              objective=base["objective"], objectives=pair, space_def=base["space_def"],
                              task=dict(task) if task is not None else None, data_hash=data_hash)
    if not 1 <= settings.seeds <= MAX_SEEDS:
        raise ActsearchError(f"--seeds must be from 1 to {MAX_SEEDS}, got {settings.seeds}")
    if not 0 <= settings.seed <= MAX_SEED:
        raise ActsearchError(f"--seed must be from 0 to {MAX_SEED}, got {settings.seed}")
    return settings
