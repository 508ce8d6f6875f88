"""Analysis: what a study found and what it means.

The leaderboard, its verification on fresh paired seeds and its export (:mod:`.leaderboard`);
paired comparisons beside ReLU and Swish and the transfer check (:mod:`.compare`); which known
activation a function looks like (:mod:`.shape`); a function's accuracy predicted untrained from
a study's trials (:mod:`.predict`); the tables (:mod:`.report`); and the Swish
rediscovery, search to verdict (:mod:`.rediscover`). Pipelines only: the command line is
:mod:`actsearch.cli`'s.
"""
from __future__ import annotations

from .compare import ALPHA, CSV_FIELDS, Entry, candidate_of_text, compare, entry, holm, found, pm, read_csv, reference_entries, transfer, write_csv
from .leaderboard import BASELINES, Row, export_top, leaderboard, top_candidates, verify
from .noise import PANEL, NoiseReport, NoiseRow, format_grid, format_noise, mde, measure_noise
from .predict import MIN_TRAINED, Predicted, format_predictions, predict_accuracy
from .rediscover import (STRICT_BETA_MIN, RediscoverOptions, rediscover, swish_like_info, transfer_only, verdict,
                         verdict_only)
from .report import format_failures, format_leaderboard, format_transfer, format_verify, study_summary
from .shape import (FAMILIES, SHAPE_RANGE, SWISH_LIKE_THRESHOLD, Match, is_swish_like, nearest, shape_distances,
                    swish_fit)

__all__ = [
    "ALPHA", "CSV_FIELDS", "Entry", "compare", "entry", "holm", "found", "pm", "read_csv", "reference_entries", "transfer",
    "write_csv",
    "BASELINES", "Row", "export_top", "leaderboard", "top_candidates", "verify",
    "PANEL", "NoiseReport", "NoiseRow", "format_grid", "format_noise", "mde", "measure_noise",
    "MIN_TRAINED", "Predicted", "candidate_of_text", "format_predictions", "predict_accuracy",
    "STRICT_BETA_MIN", "RediscoverOptions", "rediscover", "swish_like_info", "transfer_only", "verdict", "verdict_only",
    "format_failures", "format_leaderboard", "format_transfer", "format_verify", "study_summary",
    "FAMILIES", "SHAPE_RANGE", "SWISH_LIKE_THRESHOLD", "Match", "is_swish_like", "nearest", "shape_distances",
    "swish_fit",
]
