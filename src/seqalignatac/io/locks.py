"""Folder locks: one writer per output folder, and a refusal that names the other writer.

A lock is ``fcntl.flock`` on an open file.  The kernel drops it when its process dies (crash,
``kill -9``, power off of a client of a local disk), so a lock file left behind is *stale* and is
simply taken over; the holder's pid, host, start time and command are written into the file so a
second writer can say who holds it.
"""

from __future__ import annotations

import datetime as _dt
import errno
import fcntl
import json
import logging
import os
import socket
import sys
from pathlib import Path

from seqalignatac.errors import InputError

log = logging.getLogger(__name__)


class FolderBusy(InputError):
    """Another process holds the lock of an output folder; exit status 1 (not a usage error)."""

    exit_code = 1


class FolderLock:
    """``with FolderLock(path, what):`` holds ``path`` (a lock file) or raises :class:`FolderBusy`."""

    def __init__(self, path: str | os.PathLike, what: str):
        self.path = Path(path)
        self.what = what  # e.g. "output folder results/": named in the refusal
        self._fd: int | None = None

    def acquire(self) -> FolderLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _read_holder(fd)
            os.close(fd)
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise FolderBusy(
                f"{self.what} is in use by another run ({describe(holder)}); wait for it to finish "
                f"or use another output folder",
                self.path.parent,
            ) from None
        previous = _read_holder(fd)
        if previous:  # the file outlived its holder: the kernel released the flock when it died
            log.warning("%s: taking over the stale lock of an ended run (%s)", self.path, describe(previous))
        _write_holder(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)  # an empty file means: released cleanly
        except OSError:  # e.g. the disk went read-only; the kernel lock goes with the close anyway
            pass
        os.close(self._fd)  # closing drops the flock; the file stays (unlinking it would race)
        self._fd = None

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def holder_info() -> dict:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]) if sys.argv else "",
    }


def describe(holder: dict | None) -> str:
    if not holder:
        return "holder unknown"
    text = f"pid {holder.get('pid')} on {holder.get('host')}, started {holder.get('started')}"
    return text + (f": {holder['command']}" if holder.get("command") else "")


def _read_holder(fd: int) -> dict | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        raw = os.read(fd, 65536)
        return json.loads(raw) if raw.strip() else None
    except (OSError, ValueError):
        return None


def _write_holder(fd: int) -> None:
    data = (json.dumps(holder_info()) + "\n").encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
    except OSError as e:  # a full disk must not turn a held lock into a crash; the flock is what counts
        log.debug("could not record the lock holder in %s: %s", fd, e)
