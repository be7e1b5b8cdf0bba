"""Advanced settings from one TOML file: ``--config settings.toml`` of ``train`` and ``annotate``.

The command line keeps the options users tune; every other setting of a step lives in a table of
the file named after the step (``[train]``, ``[annotate]``), checked with the same click types as
an option, so a bad value names the file, the table and the key.  ``docs/settings.md`` lists
every key.  ``--config`` may be given more than once: later files override earlier ones key by
key (the Nextflow modules put their own file first and the user's ``params.settings`` after it).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

import click

from seqalignatac.errors import InputError, require_file


def read_settings(
    paths: str | os.PathLike | Sequence[str | os.PathLike] | None,
    table: str,
    types: Mapping[str, click.ParamType | None],
) -> dict[str, Any]:
    """The ``[table]`` of the TOML file(s) ``paths`` (``{}`` when None or empty), values converted.

    ``types`` maps each allowed key to its click type (None: any TOML value, checked by the caller).
    Tables for other steps are ignored, so one file can hold the settings of every step.  With
    several files, a later file's value of a key replaces an earlier one's.
    """
    if paths is None:
        return {}
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    merged: dict[str, Any] = {}
    for path in paths:
        merged.update(_read_table(path, table, types))
    return merged


def _read_table(path: str | os.PathLike, table: str, types: Mapping[str, click.ParamType | None]) -> dict[str, Any]:
    path = require_file(path, "settings file")
    try:
        with open(path, "rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"not valid TOML ({e}); see docs/settings.md for the format", path) from None
    section = doc.get(table, {})
    if not isinstance(section, dict):
        raise InputError(f"[{table}] must be a table of key = value settings", path)
    unknown = sorted(set(section) - set(types))
    if unknown:
        raise InputError(f"[{table}] has no setting {unknown[0]!r}; the settings are: {', '.join(sorted(types))}", path)
    out: dict[str, Any] = {}
    for key, value in section.items():
        param_type = types[key]
        if param_type is None:
            out[key] = value
            continue
        try:
            out[key] = param_type.convert(value, None, None)
        except click.BadParameter as e:
            raise InputError(f"[{table}] {key} = {value!r}: {e.message}", path) from None
    return out


def settings_template(table: str, defaults: Mapping[str, Any], help_text: Mapping[str, str]) -> str:
    """A TOML table with every setting at its default and a comment saying what it does."""
    lines = [f"[{table}]"]
    for key, value in defaults.items():
        if key in help_text:
            lines.append(f"# {help_text[key]}")
        lines.append(f"{key} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
