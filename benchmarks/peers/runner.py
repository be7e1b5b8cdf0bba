"""Shared runner for the benchmark tables: measured subprocesses, machine facts, result files.

Every tool (ours and the peers) runs as a child process.  Wall time is measured from the moment
the heavy-job lock is held (waiting for another job does not count); peak memory is the largest
sum of RSS over the child's whole process tree, sampled every 0.2 s with psutil.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "benchmarks"
RESULTS = BENCH / "results"
SCRATCH = Path(os.environ.get("SEQALIGNATAC_BENCH_SCRATCH", BENCH / "_scratch"))
HEAVY_LOCK = Path(os.environ.get("SEQALIGNATAC_HEAVY_LOCK", "/tmp/seqalignatac-heavy.lock"))
# Off only for quick checks of the scripts themselves (--no-lock); recorded results hold the lock.
LOCK_ENABLED = True


@contextlib.contextmanager
def heavy_lock(enabled: bool = True) -> Iterator[float]:
    """Hold the machine-wide heavy-job lock; yields the seconds spent waiting for it."""
    if not (enabled and LOCK_ENABLED):
        yield 0.0
        return
    t0 = time.time()
    with open(HEAVY_LOCK, "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield time.time() - t0
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _tree_rss(proc: psutil.Process) -> int:
    total = 0
    try:
        procs = [proc] + proc.children(recursive=True)
    except psutil.Error:
        return 0
    for p in procs:
        with contextlib.suppress(psutil.Error):
            total += p.memory_info().rss
    return total


def run_measured(
    cmd: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    lock: bool = True,
    timeout_s: float | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` (stdout+stderr to ``log``); return rc, wall_s, peak_rss_mb, lock_wait_s, load."""
    log = Path(log)
    log.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ, **(env or {}))
    with heavy_lock(lock) as waited, open(log, "w") as out:
        load_before = os.getloadavg()
        t0 = time.time()
        proc = subprocess.Popen(list(cmd), stdout=out, stderr=subprocess.STDOUT, env=full_env, cwd=cwd)
        ps = psutil.Process(proc.pid)
        peak = 0
        timed_out = False
        while proc.poll() is None:
            peak = max(peak, _tree_rss(ps))
            if timeout_s is not None and time.time() - t0 > timeout_s:
                timed_out = True
                for child in ps.children(recursive=True):
                    with contextlib.suppress(psutil.Error):
                        child.kill()
                proc.kill()
                proc.wait()
                break
            time.sleep(0.2)
        wall = time.time() - t0
        load_after = os.getloadavg()
    return {
        "command": shlex.join(str(c) for c in cmd),
        "rc": proc.returncode,
        "timed_out": timed_out,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak / 2**20, 1),
        "lock_wait_s": round(waited, 1),
        "loadavg_1min_before_after": [round(load_before[0], 2), round(load_after[0], 2)],
        "log": str(log),
    }


def tail(path: Path, n: int = 5) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return " | ".join(line.strip()[-200:] for line in lines[-n:])


def machine_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "cpu_model": cpu,
        "cpu_cores": os.cpu_count(),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
        "os": platform.platform(),
        "python": sys.version.split()[0],
    }


def pip_versions(python: Path | str, names: Sequence[str]) -> dict[str, str]:
    """Installed versions of ``names`` in the environment of interpreter ``python``."""
    code = (
        "import json,sys\nfrom importlib import metadata\nout={}\n"
        "for n in sys.argv[1:]:\n    try: out[n]=metadata.version(n)\n    except Exception: out[n]=None\n"
        "print(json.dumps(out))"
    )
    try:
        res = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=120)
        versions = json.loads(res.stdout.strip().splitlines()[-1])
    except (OSError, ValueError, IndexError, subprocess.TimeoutExpired):
        return {n: None for n in names}
    res = subprocess.run([str(python), "--version"], capture_output=True, text=True)
    versions["python"] = (res.stdout or res.stderr).strip().replace("Python ", "")
    return versions


def write_json(path: Path, obj: Any) -> None:
    """Atomic JSON write (temporary name, then rename), as seqalignatac.io.atomic does."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp-write")
    tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")
    tmp.replace(path)


def write_text(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp-write")
    tmp.write_text(text)
    tmp.replace(path)


def add_table_args(ap, out_name: str) -> None:
    """Options every comparison table takes (data, reuse, timeout, lock, folders, render-only)."""
    ap.add_argument(
        "--data", type=Path, default=None, help="shared data folder (default $SEQALIGNATAC_DATA or ../shared/data)"
    )
    ap.add_argument("--reuse", action="store_true", help="keep runs that already finished")
    ap.add_argument("--timeout", type=float, default=None, help="seconds before a peer run is stopped")
    ap.add_argument("--no-lock", action="store_true", help="do not take the heavy-job lock (quick checks only)")
    ap.add_argument("--work", type=Path, default=SCRATCH / "work")
    ap.add_argument("--out", type=Path, default=RESULTS / out_name)
    ap.add_argument("--render-only", action="store_true", help="rewrite the Markdown from the JSON; run nothing")


def render_only(out: Path, render) -> None:
    """Rewrite a table's Markdown from its JSON."""
    write_text(out.with_suffix(".md"), render(json.loads(out.with_suffix(".json").read_text())))


def md_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A Markdown table; ``columns`` = [(key, header)]; floats to 3 decimals, None to '–'."""

    def fmt(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            if abs(v) >= 100:
                return f"{v:,.0f}"
            return f"{v:.1f}" if abs(v) > 1 else f"{v:.3f}"
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(h for _, h in columns) + " |"
    sep = "| " + " | ".join("---" for _ in columns) + " |"
    body = ["| " + " | ".join(fmt(r.get(k)) for k, _ in columns) + " |" for r in rows]
    return "\n".join([head, sep, *body]) + "\n"
