"""Benchmark: wall time of `seqalignatac demo` (the README's first command); target under 3 minutes
on a 2-core machine.

Runs the demo in a fresh folder exactly as a new user would (simulate, k-mer embeddings, stage 1,
stage 2, report), then once more in the same folder (everything up to date: the cost of a no-op
re-run).  Wall time, CPU time and peak RSS come from os.wait4 on the demo process; per-step
times from the runner's stamps.  The load average is recorded because the machine may be shared.

    python benchmarks/demo_walltime.py [--model nt-tiny]

Writes benchmarks/results/demo_walltime.{json,md} (demo_walltime_<model>.* for another model).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import machine_info

ROOT = Path(__file__).resolve().parents[1]
TARGET_S = 180.0


def timed(cmd: list[str], log_path: Path) -> dict:
    load = os.getloadavg()
    t = time.perf_counter()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    rc = os.waitstatus_to_exitcode(status)
    if rc:
        raise SystemExit(f"failed ({rc}): {shlex.join(cmd)}; see {log_path}")
    return {
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "load_average_start": load,
        "load_average_end": os.getloadavg(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=["kmer", "nt-tiny"], default="kmer")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--keep", default=None, help="keep the demo folder here instead of a temporary one")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="demo_bench_"))
    if work.exists():
        shutil.rmtree(work)
    cmd = [sys.executable, "-m", "seqalignatac", "demo", "--outdir", str(work), "--no-progress"]
    if args.model != "kmer":
        cmd += ["--model", args.model]
    date = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    log_dir = Path(tempfile.mkdtemp(prefix="demo_bench_logs_"))
    try:
        first = timed(cmd, log_dir / "first.log")
        stamps = work / "results" / "demo" / ".seqalignatac"
        steps = {
            f.name.split(".")[0]: {k: json.loads(f.read_text()).get(k) for k in ("seconds", "cpu_seconds")}
            for f in sorted(stamps.glob("*.done.json"))
        }
        metrics = json.loads((work / "results" / "demo" / "annotate" / "metrics.json").read_text())
        again = timed(cmd, log_dir / "again.log")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "demo_walltime",
        "date": date,
        "machine": machine_info(("seqalignatac", "numpy", "torch", "anndata", "umap-learn", "numba")),
        "command": shlex.join(cmd),
        "model": args.model,
        "first_run": first,
        "steps": steps,
        "rerun_all_up_to_date": again,
        "target_seconds": TARGET_S,
        "meets_target": first["wall_seconds"] < TARGET_S,
        "demo_accuracy": metrics["accuracy"],
        "demo_macro_f1": metrics["macro_f1"],
    }
    suffix = "" if args.model == "kmer" else f"_{args.model.replace('-', '_')}"
    res = Path(args.results)
    res.mkdir(parents=True, exist_ok=True)
    (res / f"demo_walltime{suffix}.json").write_text(json.dumps(result, indent=2) + "\n")
    m = result["machine"]
    rows = "\n".join(f"| {k} | {v['seconds']:.1f} | {(v['cpu_seconds'] or 0):.1f} |" for k, v in steps.items())
    la = ", ".join(f"{x:.2f}" for x in first["load_average_start"])
    md = f"""# `seqalignatac demo` wall time (model {args.model}); target under {TARGET_S:.0f} s on 2 cores

Date {date}; {m["cpu_model"]}, {m["cpu_count"]} cores, {m["mem_total"]} RAM; load average at the start {la}
(values above the core count mean other jobs shared the CPUs and the times below are inflated).
seqalignatac {m["versions"].get("seqalignatac")}, torch {m["versions"].get("torch")}, Python {m["python"]}.

| run | wall s | CPU s (user+sys) | peak RSS MiB |
| --- | --- | --- | --- |
| first run in a fresh folder (simulate + all steps) | **{first["wall_seconds"]:.1f}** | {first["cpu_seconds"]:.1f} | {first["peak_rss_mib"]:.0f} |
| second run, same folder (every step up to date) | {again["wall_seconds"]:.1f} | {again["cpu_seconds"]:.1f} | {again["peak_rss_mib"]:.0f} |

Within the first run, per step (wall / CPU seconds; the rest is Python start-up, imports and `simulate`):

| step | wall s | CPU s |
| --- | --- | --- |
{rows}

Demo result (simulated query with known labels): accuracy {metrics["accuracy"]:.3f}, macro-F1 {metrics["macro_f1"]:.3f}.

Command: `{shlex.join(cmd)}`
"""
    (res / f"demo_walltime{suffix}.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
