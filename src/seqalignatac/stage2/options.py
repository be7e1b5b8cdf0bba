"""Ranges of the stage-2 settings: one click type per option, used by the CLI and by the API checks."""

from __future__ import annotations

from ..cli_types import (
    FRACTION,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    float_range,
)

# GDAConfig fields (the option is --<field with '-'>).
GDA_RANGES = {
    "k": POSITIVE_INT,
    "target_depth": NON_NEGATIVE_INT,
    "source_depth": NON_NEGATIVE_INT,
    "head_depth": NON_NEGATIVE_INT,
    "hidden": POSITIVE_INT,
    "dropout": FRACTION_BELOW_ONE,  # 1 would drop every unit
    "alpha": NON_NEGATIVE_FLOAT,
    "epochs": POSITIVE_INT,
    "lr": POSITIVE_FLOAT,
    "weight_decay": NON_NEGATIVE_FLOAT,
    "chunk_nnz": POSITIVE_INT,
    "self_train_epochs": NON_NEGATIVE_INT,
    "pseudo_fraction": float_range(0, 1, min_open=True),
    "pseudo_weight": NON_NEGATIVE_FLOAT,
    "ensemble": POSITIVE_INT,
    "knn_mix": FRACTION,
    "knn_mix_k": NON_NEGATIVE_INT,  # 0: annotate's --knn-k
    "knn_vote_power": FRACTION,
    "linear_mix": FRACTION,  # and at most 1 - knn_mix: checked with both values
    "linear_c": POSITIVE_FLOAT,
    "label_smoothing": FRACTION_BELOW_ONE,
    "logit_adjust": NON_NEGATIVE_FLOAT,
    "im_weight": NON_NEGATIVE_FLOAT,
    "im_diversity": NON_NEGATIVE_FLOAT,
}

# Keyword arguments of annotate_full that are options too.
ANNOTATE_RANGES = {
    "unknown_quantile": FRACTION_BELOW_ONE,
    "unknown_k": POSITIVE_INT,
    "unknown_smooth": NON_NEGATIVE_INT,  # 0: per-cell test only
    "unknown_smooth_quantile": FRACTION_BELOW_ONE,
    "calibration_fraction": float_range(0, 0.5, max_open=True),
    "knn_k": POSITIVE_INT,
}
