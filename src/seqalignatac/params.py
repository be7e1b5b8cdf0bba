"""Click parameter types shared by every command, and the same checks for Python API callers.

Each numeric option's range is one click type, defined next to the code that uses the value; the
API functions validate their arguments with :func:`check` against that same type, so a bad value
gives the same message from the command line (a usage error, exit 2) and from Python
(:class:`~seqalignatac.errors.InputError`).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from typing import Any

import click

from seqalignatac.errors import InputError

SEED_MAX = 2**32 - 1  # numpy's default_rng and torch.manual_seed both accept 0 .. 2^32 - 1


class FiniteFloatRange(click.FloatRange):
    """``click.FloatRange`` that also refuses NaN and +-inf.

    NaN compares False with every bound, so a plain FloatRange lets ``nan`` through (and ``inf``
    whenever that side is unbounded); a NaN learning rate trains a network that predicts NaN.
    """

    name = "float"

    def convert(self, value: Any, param, ctx) -> float:
        if isinstance(value, bool):  # JSON true/false from `run --*-opt` is not a number
            self.fail(f"{value!r} is not a number.", param, ctx)
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        return super().convert(number, param, ctx)


class StrictIntRange(click.IntRange):
    """``click.IntRange`` that refuses non-integral numbers instead of truncating them (2.5 -> 2)."""

    name = "integer"

    def convert(self, value: Any, param, ctx) -> int:
        if isinstance(value, bool):
            self.fail(f"{value!r} is not an integer.", param, ctx)
        if isinstance(value, float) and not value.is_integer():
            self.fail(f"{value!r} is not an integer.", param, ctx)
        return super().convert(value, param, ctx)


def int_range(min: int | None = None, max: int | None = None, **kw: Any) -> StrictIntRange:
    return StrictIntRange(min, max, **kw)


def float_range(min: float | None = None, max: float | None = None, **kw: Any) -> FiniteFloatRange:
    return FiniteFloatRange(min, max, **kw)


POSITIVE_INT = int_range(1)
NON_NEGATIVE_INT = int_range(0)
THREADS = int_range(1)
SEED = int_range(0, SEED_MAX)
FINITE_FLOAT = float_range()
POSITIVE_FLOAT = float_range(0, min_open=True)
NON_NEGATIVE_FLOAT = float_range(0)
FRACTION = float_range(0, 1)  # [0, 1]
FRACTION_BELOW_ONE = float_range(0, 1, max_open=True)  # [0, 1): e.g. a tail quantile, a dropout rate
MAX_UMAP_CELLS = int_range(100)  # report, run, demo: the UMAP subsample


class DeviceType(click.ParamType):
    """One rule for every ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""

    name = "device"
    PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")

    def convert(self, value: Any, param, ctx) -> str:
        text = str(value).strip().lower()
        if not self.PATTERN.match(text):
            self.fail(f"{value!r} is not a device; use auto, cpu, cuda or cuda:N.", param, ctx)
        return text


DEVICE = DeviceType()


class SafeName(click.ParamType):
    """A name that becomes a file or folder name: the samplesheet's pair_id rule."""

    name = "name"

    def convert(self, value: Any, param, ctx) -> str:
        from seqalignatac.io.samplesheet import name_problem

        problem = name_problem(str(value))
        if problem:
            self.fail(problem, param, ctx)
        return str(value)


SAFE_NAME = SafeName()


def check(value: Any, param_type: click.ParamType, option: str, path: str | os.PathLike | None = None) -> Any:
    """``value`` converted by ``param_type`` as the CLI would, or InputError naming ``option``."""
    try:
        return param_type.convert(value, None, None)
    except click.BadParameter as e:
        raise InputError(f"invalid value for {option}: {e.message}", path) from None


def check_all(
    values: Mapping[str, Any],
    types: Mapping[str, click.ParamType],
    path=None,
    option_name=lambda key: "--" + key.replace("_", "-"),
) -> None:
    """:func:`check` every ``values[key]`` that has a type in ``types`` (None: the option's default)."""
    for key, param_type in types.items():
        if key in values and values[key] is not None:
            check(values[key], param_type, option_name(key), path)
