"""Shared helpers for the benchmark scripts: the machine record and timing a child process."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shlex
import subprocess
import time
from collections.abc import Iterable

DEFAULT_PACKAGES = ("seqalignatac", "numpy", "scipy", "anndata", "torch")


def _first(path: str, key: str) -> str:
    try:
        return next(ln.split(":", 1)[1].strip() for ln in open(path) if ln.startswith(key))
    except (OSError, StopIteration):
        return ""


def machine_info(packages: Iterable[str] = DEFAULT_PACKAGES) -> dict:
    """CPU, memory, load average now (other jobs inflate timings), Python and package versions."""
    info = {
        "cpu_model": _first("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "mem_total": _first("/proc/meminfo", "MemTotal"),
        "load_average_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "versions": {},
    }
    for pkg in packages:
        try:
            info["versions"][pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            info["versions"][pkg] = None
    return info


def timed(cmd: list[str]) -> tuple[float, int]:
    """Wall seconds and peak RSS (KiB) of one child process (os.wait4 gives that child's own rusage)."""
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed ({status}): {shlex.join(cmd)}")
    return wall, usage.ru_maxrss
