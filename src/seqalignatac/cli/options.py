"""Option decorators shared by the commands: the one progress switch and the settings file."""

from __future__ import annotations

import click


def progress_option(what: str = "Progress bar"):
    """Every command's ``--progress/--no-progress``; unset (None), ``progress.progress_enabled`` decides."""
    return click.option(
        "--progress/--no-progress", default=None, help=f"{what} on stderr (default: only when stderr is a terminal)."
    )


def config_option(table: str):
    """The ``--config`` option of a step whose advanced settings live in ``[table]``."""
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        multiple=True,
        help=f"TOML file with advanced settings in a [{table}] table (docs/settings.md); "
        "repeat it to layer files (later ones win).",
    )
