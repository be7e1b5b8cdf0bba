"""The package's errors: plain exceptions that the CLI turns into one clear line and an exit status.

Raise :class:`InputError` for anything the *user* can fix (bad file, bad column, bad
option).  Always name the file, row or column and say what to do.  Nothing here depends on
click: Python callers get ordinary exceptions, and ``seqalignatac.cli.main`` prints
``Error: <path>: <message>`` and exits with the error's ``exit_code`` (never a traceback).
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator


class SeqAlignATACError(Exception):
    """Base of the errors the CLI shows as one line ``<prefix><path>: <message>``; exit ``exit_code``."""

    exit_code = 1
    prefix = "Error: "  # what the CLI prints before the message

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.problem = message
        self.message = f"{self.path}: {message}" if self.path else message
        super().__init__(self.message)

    def format_message(self) -> str:
        return self.message

    def __str__(self) -> str:
        return self.message  # follows later additions to .message (e.g. "; kept: ...")


class InputError(SeqAlignATACError):
    """A problem with the user's input; printed as ``Error: <path>: <message>``, exit status 2."""

    exit_code = 2


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


# ------------------------------------------------------------------ faults of the machine, not the input

# errno -> what the user reads; these are the faults a full or read-only output disk gives.
WRITE_FAULTS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "not writable (read-only file system)",
    errno.EACCES: "not writable (permission denied)",
    errno.EPERM: "not writable (operation not permitted)",
}
INTERRUPTED_EXIT = 130  # 128 + SIGINT, what shells report for Ctrl-C


class OutputError(SeqAlignATACError):
    """Writing an output failed for a reason outside the program (full disk, read-only folder)."""

    exit_code = 1


class Interrupted(SeqAlignATACError):
    """Ctrl-C: exit 130 with one line saying what was kept for a rerun."""

    exit_code = INTERRUPTED_EXIT
    prefix = ""  # the line starts "Interrupted (Ctrl-C)", not "Error:"


def write_fault(exc: BaseException) -> OutputError | None:
    """The one-line error for a full/read-only disk behind ``exc``, else None."""
    code = fault_errno(exc)
    if code is None:
        return None
    path = next((e.filename for e in _chain(exc) if isinstance(e, OSError) and e.filename), None)
    path = path or _path_in(" ".join(str(e) for e in _chain(exc)))
    return OutputError(f"{os.fspath(path)}: {WRITE_FAULTS[code]}" if path else WRITE_FAULTS[code])


def _chain(exc: BaseException | None) -> Iterator[BaseException]:
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def _path_in(text: str) -> str | None:
    import re

    m = re.search(r"name = '([^']+)'", text)  # h5py's spelling of the file name
    return m.group(1) if m else None


def fault_errno(exc: BaseException) -> int | None:
    """The errno of a full/read-only disk behind ``exc`` (h5py and anndata wrap it), else None."""
    for e in _chain(exc):
        if isinstance(e, OSError) and e.errno in WRITE_FAULTS:
            return e.errno
    text = " ".join(str(e) for e in _chain(exc))
    return next((code for code in WRITE_FAULTS if f"errno = {code}," in text), None)


def renamed_fault(exc: BaseException, path: str | os.PathLike) -> OSError | None:
    """``exc`` as a plain OSError naming ``path`` (the file the user asked for, not our temp name)."""
    code = fault_errno(exc)
    return None if code is None else OSError(code, os.strerror(code), os.fspath(path))
