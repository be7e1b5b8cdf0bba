"""Errors that the CLI turns into one clear line and a non-zero exit (never a traceback).

Raise :class:`InputError` for anything the *user* can fix (bad file, bad column, bad
option).  Always name the file, row or column and say what to do.
"""

from __future__ import annotations

import os

import click


class InputError(click.ClickException):
    """A problem with the user's input; printed as ``Error: <path>: <message>``."""

    exit_code = 2

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


def require_file(path: str | os.PathLike, what: str = "input file") -> str:
    """Return ``path`` as str if it is a readable file, else raise :class:`InputError`."""
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InputError(f"{what} does not exist; check the path", p)
    if os.path.isdir(p):
        raise InputError(f"{what} is a directory, expected a file", p)
    if not os.access(p, os.R_OK):
        raise InputError(f"{what} is not readable (check permissions)", p)
    return p
