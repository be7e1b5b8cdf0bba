"""Stage-1 settings: the command-line options' ranges and the ``[train]`` table of ``--config``.

One click type per setting, used by the CLI, by the settings file (``settings_file.read_settings``)
and by the Python API's checks, so every entry point refuses the same values with the same
message.  ``docs/settings.md`` lists every ``[train]`` key (a test keeps them in step).
"""

from __future__ import annotations

from typing import Any

import click

from seqalignatac.params import (
    FRACTION_BELOW_ONE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    float_range,
)

# TrainConfig fields; `hidden` (a list of widths), `betas` and `activation` are checked apart.
TRAIN_RANGES: dict[str, click.ParamType] = {
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
ACTIVATIONS = ("gelu", "relu")
MISSING_EMBEDDINGS = ("error", "drop")

# lsi() keyword arguments: the same names as their [train] keys.
LSI_RANGES: dict[str, click.ParamType] = {
    "lsi_components": POSITIVE_INT,
    "lsi_depth_corr_cutoff": float_range(0, 1, min_open=True),
    "lsi_n_iter": POSITIVE_INT,
    "seed": SEED,
}
LSI_CHOICES = {
    "lsi_normalize": ("l2", "zscore", "none"),
    "lsi_fit_on": ("reference", "all"),
    "lsi_tfidf": ("log_tfidf", "tf_logidf", "logtf_logidf"),
}

# The settings that are command-line options; every other one is a [train] key.
CLI_OPTIONS = ("epochs", "patience", "seed", "threads", "device")


def setting_name(key: str) -> str:
    """How an error names a setting: ``--epochs`` for a command-line option, the key otherwise."""
    return "--" + key.replace("_", "-") if key in CLI_OPTIONS else key


class Widths(click.ParamType):
    """Hidden-layer widths: a TOML list ``[256, 128]`` (``[]``: no hidden layer), one integer, or
    the string ``"256,128"`` / ``"none"`` (``run --train-opt hidden=...``)."""

    name = "widths"

    def convert(self, value: Any, param, ctx) -> tuple[int, ...]:
        if isinstance(value, str):
            text = value.strip()
            value = [] if text.lower() in ("", "none", "0") else text.split(",")
        elif not isinstance(value, (list, tuple)):
            value = [value]
        try:
            return tuple(POSITIVE_INT.convert(v.strip() if isinstance(v, str) else v, param, ctx) for v in value)
        except click.BadParameter as e:
            self.fail(f"widths must be integers >= 1 ({e.message})", param, ctx)


class Betas(click.ParamType):
    """Adam's two betas, each in [0, 1): a TOML list ``[0.95, 0.9995]``."""

    name = "betas"

    def convert(self, value: Any, param, ctx) -> tuple[float, float]:
        if isinstance(value, str):
            value = value.split(",")
        if not isinstance(value, (list, tuple)) or len(value) != 2:
            self.fail(f"two numbers in [0, 1) expected, e.g. [0.95, 0.9995], got {value!r}", param, ctx)
        return tuple(BETA.convert(v, param, ctx) for v in value)  # type: ignore[return-value]


class Flag(click.ParamType):
    """A TOML boolean (``true``/``false``), or click's boolean words in a string (``run --train-opt``)."""

    name = "boolean"

    def convert(self, value: Any, param, ctx) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            return click.BOOL.convert(value, param, ctx)
        self.fail(f"true or false expected, got {value!r}", param, ctx)


WIDTHS = Widths()
BETAS = Betas()
FLAG = Flag()

# The [train] table of --config: key -> click type.  nt keys are TrainConfig fields or train()
# keywords; lsi_* keys are lsi() keywords.  docs/settings.md documents each one.
TRAIN_SETTINGS: dict[str, click.ParamType] = {
    # nt: network and optimizer
    "hidden": WIDTHS,
    "bottleneck": TRAIN_RANGES["bottleneck"],
    "activation": click.Choice(ACTIVATIONS),
    "dropout": TRAIN_RANGES["dropout"],
    "lr": TRAIN_RANGES["lr"],
    "betas": BETAS,
    # nt: steps, early stopping, metrics
    "batch_size": TRAIN_RANGES["batch_size"],
    "cell_block_size": TRAIN_RANGES["cell_block_size"],
    "max_step_entries": TRAIN_RANGES["max_step_entries"],
    "max_steps_per_epoch": TRAIN_RANGES["max_steps_per_epoch"],
    "holdout_fraction": TRAIN_RANGES["holdout_fraction"],
    "min_delta": TRAIN_RANGES["min_delta"],
    "eval_cells": TRAIN_RANGES["eval_cells"],
    "eval_entries": TRAIN_RANGES["eval_entries"],
    # nt: inputs and runs
    "missing_embeddings": click.Choice(MISSING_EMBEDDINGS),
    "checkpoint_minutes": CHECKPOINT_MINUTES,
    # both methods
    "resume": FLAG,
    # lsi
    "lsi_components": LSI_RANGES["lsi_components"],
    "lsi_normalize": click.Choice(LSI_CHOICES["lsi_normalize"]),
    "lsi_fit_on": click.Choice(LSI_CHOICES["lsi_fit_on"]),
    "lsi_tfidf": click.Choice(LSI_CHOICES["lsi_tfidf"]),
    "lsi_depth_corr_cutoff": LSI_RANGES["lsi_depth_corr_cutoff"],
    "lsi_n_iter": LSI_RANGES["lsi_n_iter"],
}
NT_RUN_SETTINGS = ("missing_embeddings", "checkpoint_minutes")  # train() keywords, not TrainConfig fields
