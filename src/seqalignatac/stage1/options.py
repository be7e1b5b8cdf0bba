"""Ranges of the stage-1 settings: one click type per option, used by the CLI and by the API checks."""

from __future__ import annotations

from ..cli_types import (
    FRACTION_BELOW_ONE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    float_range,
    int_range,
)

# TrainConfig fields (the option is --<field with '-'>; `hidden` is a list of widths, checked apart).
TRAIN_RANGES = {
    "bottleneck": POSITIVE_INT,
    "dropout": float_range(0, 0.9),
    "epochs": POSITIVE_INT,
    "patience": POSITIVE_INT,
    "lr": POSITIVE_FLOAT,
    "batch_size": POSITIVE_INT,
    "cell_block_size": NON_NEGATIVE_INT,  # 0: all cells that fit the per-step budget
    "max_step_entries": POSITIVE_INT,
    "holdout_fraction": float_range(0.01, 0.5),
    "seed": SEED,
    "eval_cells": POSITIVE_INT,
    "eval_entries": POSITIVE_INT,
    "min_delta": NON_NEGATIVE_FLOAT,
    "max_steps_per_epoch": NON_NEGATIVE_INT,  # 0: full epochs
}
BETA = FRACTION_BELOW_ONE  # each of Adam's betas
CHECKPOINT_MINUTES = NON_NEGATIVE_FLOAT

# lsi() keyword arguments; their CLI options carry an --lsi- prefix where the name alone is vague.
LSI_RANGES = {
    "n_components": POSITIVE_INT,
    "depth_corr_cutoff": float_range(0, 1, min_open=True),
    "min_peak_frac": FRACTION_BELOW_ONE,
    "var_peaks": NON_NEGATIVE_INT,
    "var_clusters": int_range(2),
    "n_iter": POSITIVE_INT,
    "seed": SEED,
}
LSI_OPTION_NAMES = {"n_components": "--lsi-components", "normalize": "--lsi-normalize", "fit_on": "--lsi-fit-on",
                    "tfidf_variant": "--lsi-tfidf"}


def lsi_option(key: str) -> str:
    return LSI_OPTION_NAMES.get(key, "--" + key.replace("_", "-"))
