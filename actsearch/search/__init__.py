"""Search: Optuna decides which candidates to train and how far.

A study's settings (:mod:`.settings`) live in the study, in an Optuna storage (:mod:`.storage`:
SQLite, a journal file, PostgreSQL for many machines). Samplers and pruners by name
(:mod:`.samplers`; the shared base :mod:`._space_sampler`; the surrogate sampler :mod:`.surrogate` and its
predictor :mod:`.predictor`); one batch of trials asked, trained as a population and told (:mod:`.batch`);
the loop over batches, the shared budget and local workers (:mod:`.driver`, :mod:`.trials`); the
reference activations every study is measured against (:mod:`.references`); one worker of a
distributed search (:mod:`.worker`); optuna-dashboard on the storage (:mod:`.dashboard`).
"""
from __future__ import annotations

from ._signals import sigint_deferred, sigint_ignored
from .batch import Batch, Item, OnTrial, Reporter, has_heartbeats
from .dashboard import free_port, serve
from .driver import RunConfig, open_study, run_search, run_worker
from .references import REFERENCE_SEARCH_LIMIT, drop_duplicate_references, reference_candidates, setup_references
from .samplers import (COSTS, PRUNERS, SAMPLERS, EvolutionSampler, ExhaustiveSampler, activation_cost, make_pruner,
                       make_sampler, population_seeds, seed_for_worker)
from .predictor import KAPPA, PREDICTORS, Prediction, Predictor, make_predictor
from .surrogate import DEFAULT_GROUPS, DEFAULT_PREDICTOR, POOL_ENUMERATE, POOL_SIZE, FeatureCache, SurrogateSampler, study_training_set
from .settings import (BUDGET_ATTR, DEFAULTS, MAX_SEED, MAX_SEEDS, OBJECTIVE_PAIRS, OBJECTIVES, EVALUATED_FAILURES, OWN_FAILURES, MAX_RETRIES, REFERENCES_ATTR, SETTINGS_ATTR, SearchSettings,
                       build_settings, fidelity_for, task_for, TASK_FIDELITY, normalize_dataset, space_hash, space_to_dict, study_name_for)
from .storage import (DEFAULT_STORAGE, RetryingRDBStorage, artifact_dir, artifact_store, create_or_load_study,
                      heartbeat_settings, is_transient, load_study, open_storage, read_settings, resolve_storage,
                      stored_settings)
from .trials import (BudgetState, Heartbeat, budget_state, cleanup_run, counted, evaluated_keys, over_budget,
                     replaced_numbers, requeue, retry_lost)
from .worker import OnStart, WorkerResult, check_compatible, run_distributed_worker, trial_kind

__all__ = [
    "SearchSettings", "MAX_SEED", "MAX_SEEDS", "OBJECTIVES", "OBJECTIVE_PAIRS", "SETTINGS_ATTR", "BUDGET_ATTR", "REFERENCES_ATTR", "EVALUATED_FAILURES", "OWN_FAILURES", "MAX_RETRIES", "DEFAULTS",
    "build_settings", "fidelity_for", "task_for", "TASK_FIDELITY", "normalize_dataset", "space_hash", "space_to_dict", "study_name_for",
    "DEFAULT_STORAGE", "RetryingRDBStorage", "artifact_dir", "artifact_store", "create_or_load_study",
    "heartbeat_settings", "is_transient", "load_study", "open_storage", "read_settings", "resolve_storage",
    "stored_settings",
    "SAMPLERS", "PRUNERS", "COSTS", "make_sampler", "make_pruner", "EvolutionSampler", "ExhaustiveSampler",
    "activation_cost", "population_seeds", "seed_for_worker",
    "SurrogateSampler", "FeatureCache", "DEFAULT_GROUPS", "DEFAULT_PREDICTOR", "POOL_ENUMERATE", "POOL_SIZE", "study_training_set",
    "KAPPA", "PREDICTORS", "Prediction", "Predictor", "make_predictor",
    "Batch", "Item", "Reporter", "OnTrial", "has_heartbeats",
    "RunConfig", "open_study", "run_search", "run_worker",
    "REFERENCE_SEARCH_LIMIT", "drop_duplicate_references", "reference_candidates", "setup_references",
    "BudgetState", "Heartbeat", "budget_state", "cleanup_run", "counted", "evaluated_keys", "over_budget",
    "replaced_numbers", "requeue", "retry_lost",
    "OnStart", "WorkerResult", "check_compatible", "run_distributed_worker", "trial_kind",
    "serve", "free_port", "sigint_deferred", "sigint_ignored",
]
