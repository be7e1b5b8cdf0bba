"""Ranges of the stage-2 settings: one click type per setting, used by the CLI, the ``[annotate]``
table of ``--config`` (docs/settings.md) and the API checks."""

from __future__ import annotations

import click

from seqalignatac.params import (
    FRACTION,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    float_range,
)
from seqalignatac.models.stage2.graphs import KNN_METHODS
from seqalignatac.models.stage2.train import CLASS_WEIGHTS

METHODS = ("gda", "knn")  # annotate --method: graph domain adaptation, or kNN label transfer alone

# GDAConfig fields (named --<field with '-'> in messages).
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
    "ensemble": POSITIVE_INT,
    "knn_mix": FRACTION,
    "knn_mix_k": NON_NEGATIVE_INT,  # 0: knn_k
    "knn_vote_power": FRACTION,
    "linear_mix": FRACTION,  # and at most 1 - knn_mix: checked with both values
    "linear_c": POSITIVE_FLOAT,
}

# Keyword arguments of annotate_full that are settings too.
ANNOTATE_RANGES = {
    "unknown_quantile": FRACTION_BELOW_ONE,
    "unknown_k": POSITIVE_INT,
    "unknown_smooth": NON_NEGATIVE_INT,  # 0: per-cell test only
    "unknown_smooth_quantile": FRACTION_BELOW_ONE,
    "calibration_fraction": float_range(0, 0.5, max_open=True),
    "knn_k": POSITIVE_INT,
}

# The settings `seqalignatac annotate` takes as options; every other one is a key of the
# [annotate] table of --config (docs/settings.md lists them).
CLI_SETTINGS = ("ensemble", "unknown_quantile")
SETTINGS_TABLE = "annotate"
CHOICES = {"class_weight": click.Choice(CLASS_WEIGHTS), "knn_method": click.Choice(KNN_METHODS)}
FILE_SETTINGS = {k: t for k, t in {**GDA_RANGES, **CHOICES, **ANNOTATE_RANGES}.items() if k not in CLI_SETTINGS}
