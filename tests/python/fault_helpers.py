"""Shared pieces of the fault tests: small file systems that fill up or are read-only, a finished
pipeline to point steps at, and what-is-left-on-disk checks."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest


def mount_tmpfs(folder: Path, size: str = "2m") -> Path:
    """A small tmpfs at ``folder`` (we are root in CI); skips the test where mounting is not allowed."""
    folder.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({res.stderr.strip() or res.returncode})")
    return folder


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


def unmount(folder: Path) -> None:
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def fill_up(folder: Path, leave_bytes: int = 0) -> None:
    """Fill the file system holding ``folder`` until at most ``leave_bytes`` are free."""
    st = os.statvfs(folder)
    free = st.f_bavail * st.f_frsize - leave_bytes
    with open(folder / ".filler", "wb") as fh:
        try:
            while free > 0:
                n = min(free, 1 << 20)
                fh.write(b"\0" * n)
                free -= n
            fh.flush()
        except OSError:  # full: that is the point
            pass


def tree(folder: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under ``folder`` (what a reader would see)."""
    out = {}
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            out[str(p.relative_to(folder))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def leftovers(folder: Path) -> list[str]:
    """Temporary or staging entries anywhere under ``folder`` (none may survive a failed write)."""
    return sorted(
        str(p.relative_to(folder))
        for p in folder.rglob("*")
        if ".tmp-" in p.name or p.name.endswith((".staging", ".old"))
    )


def run_cli(args: list[str], cwd: Path | None = None, env: dict | None = None, timeout: int = 300, raw: bool = False):
    """The real command in a fresh interpreter: exit codes 139 (segfault) and 130 are seen as such.

    ``raw``: stdout/stderr as bytes, carriage returns kept (text mode turns them into newlines)."""
    e = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "seqalignatac", *args],
        capture_output=True,
        text=not raw,
        cwd=cwd,
        env=e,
        timeout=timeout,
    )


def assert_one_line_fault(returncode: int, stderr: str, *needles: str) -> str:
    """A machine fault: non-zero (not a crash), no traceback, last line `Error: <path>: <cause>`."""
    assert returncode not in (0, 139, -11), stderr
    assert "Traceback" not in stderr, stderr
    line = stderr.strip().splitlines()[-1]
    assert line.startswith("Error: "), stderr
    for n in needles:
        assert n in line, line
    return line


def sample_sheet(tmp_path: Path, sim: dict, pair_id: str = "p") -> Path:
    sheet = tmp_path / "pairs.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query,query_labels_key\n"
        f"{pair_id},{sim['reference']},{sim['labels_key']},{sim['query']},{sim['labels_key']}\n"
    )
    return sheet


# A fast pipeline: LSI stage 1, kNN stage 2 (seconds on a CPU).
FAST_RUN = ["--train-method", "lsi", "--annotate-method", "knn", "--max-umap-cells", "200", "--threads", "1"]
