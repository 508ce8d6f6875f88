"""Evaluation: train child networks with a candidate activation and score them.

Datasets (:mod:`.data`, all offline), child networks (:mod:`.models`) and their initializers
(:mod:`.init`), the shared training recipe (:mod:`.recipe`: fidelity presets, data order,
optimizer, schedule), and two trainers that follow it exactly: one network (:func:`train_one`) and
K networks stacked into one (:func:`train_population`), whose activations run as fused C kernels
on CPU (:mod:`.kernels`). What a search scores is a :class:`Task` (:mod:`.task`: the built-in
presets, or a user's data, model, loss and metric; :mod:`.task_file` loads one from a file).
Results are :class:`TrainResult` s (:mod:`.results`). What a surrogate predicts from without
training — outputs, statistics and Fisher spectrum at init — is :mod:`.features`.
"""
from __future__ import annotations

from ._memory import retain_freed_memory
from ._threads import CHECK_EVERY, LIMIT_ENV, THREADS_ENV, ThreadPolicy, busy_elsewhere, usable_cpus
from .data import MNIST1D_OOD, MNIST1D_VARIANTS, Dataset, cache_dir, list_datasets, load_dataset, read_idx
from .features import (FEATURE_GROUPS, FEATURES_VERSION, FeatureSet, candidate_features, feature_names, layer_statistics,
                       population_features, squash)
from .init import fans, init_weight_, initialize_, list_initializers
from .models import CNN, MLP, ModelSpec, build_model, conv_output_sizes
from .population import (FUSE_MIN_WORK, StackedNet, activation_units, by_hand_applies, fusion_pays, loss_and_grads,
                         train_population)
from .recipe import (FIDELITIES, Fidelity, batch_order, checkpoints, epoch_batches, get_dataset, get_fidelity, split_fidelities, lr_at,
                     make_optimizer, prepare, resolve_device, score)
from .results import TrainResult, mean_std, overall_status, summarize
from .task import LOSSES, METRICS, Task, as_task, builtin_task
from .task_file import file_hash, find_task, load_task, task_record
from .train import train_one

__all__ = [
    "Dataset", "load_dataset", "list_datasets", "read_idx", "cache_dir", "MNIST1D_VARIANTS", "MNIST1D_OOD",
    "FEATURE_GROUPS", "FEATURES_VERSION", "FeatureSet", "candidate_features", "population_features", "feature_names", "layer_statistics",
    "squash",
    "fans", "init_weight_", "initialize_", "list_initializers",
    "ModelSpec", "MLP", "CNN", "build_model", "conv_output_sizes",
    "Fidelity", "FIDELITIES", "get_fidelity", "split_fidelities", "resolve_device", "get_dataset", "prepare", "epoch_batches",
    "batch_order", "make_optimizer", "lr_at", "checkpoints", "score",
    "TrainResult", "mean_std", "overall_status", "summarize",
    "Task", "as_task", "builtin_task", "LOSSES", "METRICS", "load_task", "find_task", "task_record", "file_hash",
    "train_one", "train_population", "StackedNet", "loss_and_grads", "by_hand_applies", "FUSE_MIN_WORK",
    "activation_units", "fusion_pays", "retain_freed_memory", "ThreadPolicy", "THREADS_ENV", "LIMIT_ENV", "CHECK_EVERY", "usable_cpus", "busy_elsewhere",
]
