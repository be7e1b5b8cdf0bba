"""Ranges of the stage-2 settings: one click type per setting, used by the CLI, the ``[annotate]``
table of ``--config`` (docs/settings.md) and the API checks."""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

import click

from seqalignatac.errors import InputError
from seqalignatac.models.stage2.graphs import KNN_METHODS
from seqalignatac.models.stage2.train import CLASS_WEIGHTS, GDAConfig
from seqalignatac.models.stage2.unknown import STRATEGIES
from seqalignatac.params import (
    DEVICE,
    FRACTION,
    FRACTION_BELOW_ONE,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    SEED,
    THREADS,
    check_all,
    float_range,
)

METHODS = ("gda", "knn")  # annotate --method: graph domain adaptation, or kNN label transfer alone

# GDAConfig fields (named --<field with '-'> in messages).
GDA_RANGES: dict[str, click.ParamType] = {
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
ANNOTATE_RANGES: dict[str, click.ParamType] = {
    "unknown_quantile": FRACTION_BELOW_ONE,
    "unknown_smooth": NON_NEGATIVE_INT,  # 0: per-cell test only
    "unknown_smooth_quantile": FRACTION_BELOW_ONE,
    "unknown_cluster_z": NON_NEGATIVE_FLOAT,  # 0: no cluster test
    "calibration_fraction": float_range(0, 0.5, max_open=True),
    "knn_k": POSITIVE_INT,
}

# The settings `seqalignatac annotate` takes as options; every other one is a key of the
# [annotate] table of --config (docs/settings.md lists them).
CLI_SETTINGS = ("ensemble", "unknown_quantile")
SETTINGS_TABLE = "annotate"
CHOICES: dict[str, click.ParamType] = {
    "class_weight": click.Choice(CLASS_WEIGHTS),
    "knn_method": click.Choice(KNN_METHODS),
}
FILE_SETTINGS: dict[str, click.ParamType] = {
    k: t for k, t in {**GDA_RANGES, **CHOICES, **ANNOTATE_RANGES}.items() if k not in CLI_SETTINGS
}


# Settings that are options of `seqalignatac annotate` (an error names them --like-this).
CLI_OPTIONS = (*CLI_SETTINGS, "device", "seed", "threads")


def setting_name(key: str) -> str:
    """How an error names a setting: ``--ensemble`` for a command-line option, the key otherwise."""
    return "--" + key.replace("_", "-") if key in CLI_OPTIONS else key


def _check_config(config: GDAConfig) -> None:
    """The setting ranges (the CLI's own types, so the same messages) and the cross-setting rules."""
    check_all(config.to_dict(), GDA_RANGES, option_name=setting_name)
    if config.class_weight not in CLASS_WEIGHTS:
        raise InputError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, not {config.class_weight!r}")
    if config.knn_method not in KNN_METHODS:
        raise InputError(f"knn_method must be one of {', '.join(KNN_METHODS)}, not {config.knn_method!r}")
    if not config.linear_mix <= 1.0 - config.knn_mix:
        raise InputError(
            f"linear_mix must be in [0, 1 - knn_mix] = [0, {1.0 - config.knn_mix:g}], not {config.linear_mix}"
        )


def check_annotate_options(
    method: str = "gda",
    unknown: str = "distance",
    config: GDAConfig | None = None,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    **options: Any,
) -> None:
    """Every annotate setting checked as the CLI checks it (InputError naming the option)."""
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if unknown not in STRATEGIES:
        raise InputError(f"--unknown must be one of {', '.join(STRATEGIES)}, not {unknown!r}")
    check_all(
        {**options, "device": device, "seed": seed, "threads": threads},
        {**ANNOTATE_RANGES, "device": DEVICE, "seed": SEED, "threads": THREADS},
        option_name=setting_name,
    )
    _check_config(config or GDAConfig())


def config_with(**overrides: Any) -> GDAConfig:
    """A :class:`GDAConfig` with the given fields replaced (``None`` values keep the default)."""
    names = {f.name for f in fields(GDAConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InputError(f"config has no setting {unknown[0]!r}; the settings are: {', '.join(sorted(names))}")
    return replace(GDAConfig(), **{k: v for k, v in overrides.items() if v is not None})
