"""Class 2 of issue 14: two runs (or two standalone steps) writing into the same output folder.

The second refuses at once with a message naming the other run (pid, host, start time); a lock
left by a run that died is detected as stale and taken over with a log line.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_helpers import FAST_RUN, leftovers, run_cli, sample_sheet

from seqalignatac.cli.main import cli
from seqalignatac.io.locks import FolderBusy, FolderLock
from seqalignatac.workflow.pipeline import RUN_LOCK

HOLD = """
import sys, time
from seqalignatac.io.locks import FolderLock
lock = FolderLock(sys.argv[1], "test").acquire()
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def holder():
    """Start a process that holds a lock file until it is killed; yields a starter."""
    procs = []

    def start(lock_path: Path) -> subprocess.Popen:
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(lock_path)], stdout=subprocess.PIPE, text=True)
        assert p.stdout.readline().strip() == "held"
        procs.append(p)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def test_second_run_refuses_at_once_naming_the_first(sim, tmp_path, holder):
    out = tmp_path / "out"
    first = holder(out / RUN_LOCK)
    t0 = time.perf_counter()
    res = CliRunner().invoke(
        cli,
        ["run", "--samplesheet", str(sample_sheet(tmp_path, sim)), "--outdir", str(out), *FAST_RUN, "--no-progress"],
    )
    assert time.perf_counter() - t0 < 30  # at once: no step started
    assert res.exit_code == 1, res.output
    line = res.output.strip().splitlines()[-1]
    assert line.startswith(f"Error: {out}: output folder {out} is in use by another run")
    assert f"pid {first.pid} on {socket.gethostname()}, started " in line
    assert sorted(p.name for p in out.iterdir()) == [RUN_LOCK]  # nothing was written


def test_stale_lock_after_a_crash_is_taken_over(sim, tmp_path, holder, caplog):
    out = tmp_path / "out"
    dead = holder(out / RUN_LOCK)
    dead.kill()  # the kernel drops its flock; the file with its details stays behind
    dead.wait()
    assert json.loads((out / RUN_LOCK).read_text())["pid"] == dead.pid
    with caplog.at_level(logging.WARNING, logger="seqalignatac.io.locks"):
        res = CliRunner().invoke(
            cli,
            [
                "run",
                "--samplesheet",
                str(sample_sheet(tmp_path, sim)),
                "--outdir",
                str(out),
                *FAST_RUN,
                "--no-progress",
            ],
        )
    assert res.exit_code == 0, res.output
    assert any(f"stale lock of an ended run (pid {dead.pid}" in r.getMessage() for r in caplog.records)
    assert (out / RUN_LOCK).read_text() == ""  # released cleanly: the next run sees no stale holder
    assert (out / "p" / "report" / "p_report.html").is_file()


@pytest.mark.slow
def test_two_real_runs_at_once_one_refuses(sim, tmp_path):
    """Both runs started together on one folder: exactly one runs, the other refuses naming it."""
    sheet = sample_sheet(tmp_path, sim)
    args = ["run", "--samplesheet", str(sheet), "--outdir", str(tmp_path / "out"), *FAST_RUN, "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [
        subprocess.Popen([sys.executable, "-m", "seqalignatac", *args], stderr=subprocess.PIPE, text=True, env=env)
        for _ in range(2)
    ]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 1], results
    refused = next(err for rc, err in results if rc == 1)
    winner = next(p for p, (rc, _) in zip(procs, results) if rc == 0)
    assert f"is in use by another run (pid {winner.pid} on {socket.gethostname()}" in refused.strip().splitlines()[-1]
    assert leftovers(tmp_path / "out") == []


@pytest.mark.parametrize("step", ["annotate", "train"])
def test_standalone_steps_into_one_folder_refuse(sim, prepared, tmp_path, holder, step):
    """A step whose folder another process is publishing into refuses instead of mixing outputs."""
    from seqalignatac.models.stage1 import lsi
    from seqalignatac.models.stage1.data import read_accessibility

    cells_dir = tmp_path / "cells"
    lsi(read_accessibility(str(prepared / "accessibility.h5ad")), outdir=cells_dir)
    out = tmp_path / step
    other = holder(tmp_path / f".{step}.lock")
    args = {
        "annotate": ["annotate", "--cells", str(cells_dir / "cell_embeddings.h5ad"), "--method", "knn"],
        "train": ["train", "--accessibility", str(prepared / "accessibility.h5ad"), "--method", "lsi"],
    }[step]
    res = CliRunner().invoke(cli, [*args, "--outdir", str(out)])
    assert res.exit_code == 1, res.output
    assert f"is in use by another run (pid {other.pid}" in res.output.strip().splitlines()[-1]
    assert not out.exists() and leftovers(tmp_path) == []


def test_lock_api(tmp_path):
    path = tmp_path / "x.lock"
    with FolderLock(path, "folder x"):
        with pytest.raises(FolderBusy, match=r"folder x is in use by another run \(pid \d+ on .*, started 20"):
            FolderLock(path, "folder x").acquire()
    with FolderLock(path, "folder x"):  # released: free again
        assert json.loads(path.read_text())["pid"] == os.getpid()


@pytest.mark.slow
def test_sigkilled_run_leaves_a_stale_lock_that_the_next_run_takes(sim, tmp_path):
    """A real run killed with SIGKILL: the next run proceeds (the kernel released the lock)."""
    sheet = sample_sheet(tmp_path, sim)
    out = tmp_path / "out"
    args = ["run", "--samplesheet", str(sheet), "--outdir", str(out), *FAST_RUN, "--no-progress"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqalignatac", *args],
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    deadline = time.time() + 120
    while time.time() < deadline and not ((out / RUN_LOCK).exists() and (out / RUN_LOCK).read_text()):
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    res = run_cli(args)
    assert res.returncode == 0, res.stderr
    assert f"taking over the stale lock of an ended run (pid {proc.pid}" in res.stderr
