"""Benchmark: peak memory of `prepare` on 100,000 cells x 200,000 peaks (target: under 8 GB).

The data come from the package's own simulator (`--no-genome`: only the matrices): 60,000
reference + 40,000 query cells, 200,000 true peaks (about 190,000 per file after the simulated
peak-set differences), a mean of 3,000 reads per reference cell in peaks (query 0.6x), i.e.
roughly 2,500 accessible peaks per reference cell, as in a good 10x scATAC library.
Simulation and `seqalignatac prepare` each run in their own process; their peak RSS is read with
os.wait4 (that child's own rusage), so the number is prepare's alone.

    flock /tmp/seqalignatac-heavy.lock python benchmarks/prepare_memory.py

Writes benchmarks/results/prepare_memory.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import shutil
import sys
import tempfile
from pathlib import Path

from _common import machine_info, timed

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=100_000)
    ap.add_argument("--peaks", type=int, default=200_000)
    ap.add_argument("--reads-per-cell", type=float, default=3000)
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument(
        "--simulate-scale",
        action="store_true",
        help="instead: time `simulate` alone at 1,000,000 cells x 100,000 peaks (100 reads/cell, no "
        "genome) -> results/simulate_scale.{json,md}",
    )
    args = ap.parse_args()
    info = machine_info(("seqalignatac", "anndata", "scipy", "numpy"))
    if args.simulate_scale:
        return simulate_scale(args, info)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prepare_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sim_code = (
            "from seqalignatac.datasets.synthetic import simulate; "
            f"simulate({str(work / 'sim')!r}, n_cells={args.cells}, n_peaks={args.peaks}, n_cell_types=10, "
            f"seed=0, mean_peaks_per_cell={args.reads_per_cell}, genome=False, chunk_cells=5000)"
        )
        sim_cmd = [sys.executable, "-c", sim_code]
        sim_wall, sim_rss = timed(sim_cmd)
        params = json.loads((work / "sim" / "simulation.json").read_text())
        base = [
            sys.executable,
            "-m",
            "seqalignatac",
            "-q",
            "prepare",
            "--reference",
            str(work / "sim" / "reference.h5ad"),
            "--query",
            str(work / "sim" / "query.h5ad"),
            "--labels-key",
            "cell_type",
            "--query-labels-key",
            "cell_type",
        ]
        runs = {}
        # default filter (1 % of cells), and no filter at all (every mapped peak kept: the largest output)
        for name, extra in (("default", []), ("no_filter", ["--min-peak-frac", "0"])):
            cmd = base + ["--outdir", str(work / name)] + extra
            wall, rss = timed(cmd)
            summary = json.loads((work / name / "prepare_summary.json").read_text())
            runs[name] = {
                "command": shlex.join(cmd),
                "wall_s": round(wall, 1),
                "peak_rss_gb": round(rss / 2**20, 2),
                "peaks_kept": summary["peaks_kept"],
                "output_nnz": summary["nnz"],
                "query_accessibility_retained": summary["query_accessibility_retained"],
                "output_mb": round((work / name / "accessibility.h5ad").stat().st_size / 2**20, 1),
            }
        sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in (work / "sim").glob("*.h5ad")}
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    result = {
        "benchmark": "prepare_memory",
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "flock /tmp/seqalignatac-heavy.lock python "
        + shlex.join(["benchmarks/prepare_memory.py", *sys.argv[1:]]),
        "machine": info,
        "data": {
            k: params[k]
            for k in (
                "reference_cells",
                "query_cells",
                "reference_peaks",
                "query_peaks",
                "reference_nnz",
                "query_nnz",
                "mean_peaks_per_cell",
            )
        },
        "simulate": {
            "command": shlex.join(sim_cmd),
            "wall_s": round(sim_wall, 1),
            "peak_rss_gb": round(sim_rss / 2**20, 2),
        },
        "prepare": runs,
        "file_sizes_mb": sizes,
        "target": "prepare on 100,000 cells x 200,000 peaks under 8 GB",
    }
    result["meets_target"] = all(r["peak_rss_gb"] < 8 for r in runs.values())
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "prepare_memory.json").write_text(json.dumps(result, indent=2) + "\n")
    d, s = result["data"], result["simulate"]
    md = [
        f"# prepare memory ({result['date_utc']})",
        "",
        f"`{result['command']}`",
        "",
        f"Data (seqalignatac simulate, no genome): {d['reference_cells']:,} reference + {d['query_cells']:,} query cells; "
        f"{d['reference_peaks']:,} reference / {d['query_peaks']:,} query peaks; non-zeros {d['reference_nnz']:,} + "
        f"{d['query_nnz']:,}.",
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, {info['mem_total']} RAM; load average "
        f"{info['load_average_start']} at start, {info['load_average_end']} at end (shared with other jobs). "
        f"Python {info['python']}, anndata {info['versions']['anndata']}, scipy {info['versions']['scipy']}, numpy {info['versions']['numpy']}.",
        "",
        "| step | wall s | peak RSS GB |",
        "| --- | --- | --- |",
        f"| simulate ({args.cells:,} cells x {args.peaks:,} peaks, chunked) | {s['wall_s']} | {s['peak_rss_gb']} |",
        *[
            f"| prepare, {k} (CLI, incl. reading and writing h5ad) | {r['wall_s']} | {r['peak_rss_gb']} |"
            for k, r in runs.items()
        ],
        "",
        *[
            f"prepare {k}: kept {r['peaks_kept']:,} peaks, {r['output_nnz']:,} non-zeros (accessibility.h5ad "
            f"{r['output_mb']} MB); query accessibility retained {r['query_accessibility_retained']}."
            for k, r in runs.items()
        ],
        "",
        f"Target: {result['target']}: {'met' if result['meets_target'] else 'NOT met'}.",
        "",
    ]
    (out / "prepare_memory.md").write_text("\n".join(md))
    print("\n".join(md))


def simulate_scale(args, info: dict) -> None:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="simulate_bench_"))
    try:
        code = (
            "from seqalignatac.datasets.synthetic import simulate; "
            f"simulate({str(work)!r}, n_cells=1_000_000, n_peaks=100_000, n_cell_types=10, seed=0, "
            "mean_peaks_per_cell=100, genome=False)"
        )
        cmd = [sys.executable, "-c", code]
        wall, rss = timed(cmd)
        params = json.loads((work / "simulation.json").read_text())
        sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in work.glob("*.h5ad")}
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    result = {
        "benchmark": "simulate_scale",
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "flock /tmp/seqalignatac-heavy.lock python benchmarks/prepare_memory.py --simulate-scale",
        "machine": info,
        "simulate_command": shlex.join(cmd),
        "wall_s": round(wall, 1),
        "peak_rss_gb": round(rss / 2**20, 2),
        "file_sizes_mb": sizes,
        "data": {
            k: params[k]
            for k in ("reference_cells", "query_cells", "reference_peaks", "query_peaks", "reference_nnz", "query_nnz")
        },
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "simulate_scale.json").write_text(json.dumps(result, indent=2) + "\n")
    d = result["data"]
    md = [
        f"# simulate at 1,000,000 cells ({result['date_utc']})",
        "",
        f"`{result['command']}`",
        "",
        f"{d['reference_cells']:,} reference + {d['query_cells']:,} query cells, {d['reference_peaks']:,} / "
        f"{d['query_peaks']:,} peaks, {d['reference_nnz'] + d['query_nnz']:,} non-zeros, no genome.",
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, {info['mem_total']} RAM; load average "
        f"{info['load_average_start']} at start, {info['load_average_end']} at end (shared with other jobs).",
        "",
        f"Wall {result['wall_s']} s, peak RSS {result['peak_rss_gb']} GB (incl. writing both .h5ad files).",
        "",
    ]
    (out / "simulate_scale.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
