"""Benchmark: `extract` on 500,000 peaks (target: under a minute on a 2-core machine).

Genome: the real hg19 partial genome in ../shared/data (bgzip, 184 Mb: chr20, chr22, chrX part)
when present, else a synthetic 200 Mb genome. Peaks: random 200-800 bp intervals, sorted like a
real BED. Both the bgzip FASTA and a plain copy of it are timed, each through the real CLI
(`seqalignatac extract`, a fresh process, so import time and peak RSS are included).

    flock /tmp/seqalignatac-heavy.lock python benchmarks/extract_throughput.py

Writes benchmarks/results/extract_throughput.{json,md}.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gzip
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from _common import machine_info, timed

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data" / "hg19_partial_genome" / "hg19_subset.fa.gz"


def fai_lengths(fasta: Path) -> dict[str, int]:
    import pyfaidx

    fa = pyfaidx.Fasta(str(fasta))
    return {k: len(fa[k]) for k in fa.keys()}


def synthetic_genome(path: Path, total: int, rng) -> None:
    bases = np.frombuffer(b"ACGT", dtype=np.uint8)
    with open(path, "wb") as fh:
        for i, n in enumerate([total // 4] * 4):
            fh.write(f">chr{i + 1}\n".encode())
            seq = bases[rng.integers(0, 4, n)]
            lines = seq[: n // 60 * 60].reshape(-1, 60)
            fh.write(np.hstack([lines, np.full((len(lines), 1), 10, np.uint8)]).tobytes())


def random_bed(path: Path, lengths: dict[str, int], n: int, rng) -> None:
    names = list(lengths)
    sizes = np.array([lengths[c] for c in names], dtype=np.int64)
    chrom = np.sort(rng.choice(len(names), n, p=sizes / sizes.sum()))
    width = rng.integers(200, 801, n)
    start = (rng.random(n) * (sizes[chrom] - width - 2000)).astype(np.int64) + 1000
    order = np.lexsort((start, chrom))
    chrom, start, width = chrom[order], start[order], width[order]
    with open(path, "w") as fh:
        for c, s, w, i in zip(chrom, start, width, range(n)):
            fh.write(f"{names[c]}\t{s}\t{s + w}\tpeak{i}\n")


def run_extract(bed: Path, fasta: Path, out: Path, width: str) -> dict:
    cmd = [
        sys.executable,
        "-m",
        "seqalignatac",
        "-q",
        "extract",
        "--peaks",
        str(bed),
        "--fasta",
        str(fasta),
        "--out",
        str(out),
        "--width",
        width,
    ]
    wall, rss = timed(cmd)
    summary = json.loads(Path(str(out) + ".summary.json").read_text())
    return {
        "command": shlex.join(cmd),
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(rss / 1024, 1),
        "written": summary["written"],
        "clipped": summary["clipped_at_chromosome_end"],
        "fraction_n": summary["fraction_n"],
        "output_mb": round(out.stat().st_size / 2**20, 1),
        "peaks_per_s": round(summary["written"] / wall),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--peaks", type=int, default=500_000)
    ap.add_argument("--width", default="1002")
    ap.add_argument("--workdir", default=None, help="scratch folder (default: a temporary one, removed)")
    ap.add_argument("--results", default=str(ROOT / "benchmarks" / "results"))
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    info = machine_info(("seqalignatac", "pyfaidx", "numpy"))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="extract_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    runs = {}
    try:
        if SHARED.exists():
            gz = work / "genome.fa.gz"
            for suffix in ("", ".fai", ".gzi"):
                shutil.copy(str(SHARED) + suffix, str(gz) + suffix)
            plain = work / "genome.fa"
            with gzip.open(SHARED, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 24)
            genome = "hg19 partial genome (chr20, chr22, chrX:1-70Mb; 184 Mb)"
        else:
            gz = None
            plain = work / "genome.fa"
            synthetic_genome(plain, 200_000_000, rng)
            genome = "synthetic 200 Mb genome (4 contigs)"
        lengths = fai_lengths(plain)
        bed = work / "peaks.bed"
        random_bed(bed, lengths, args.peaks, rng)
        runs["plain"] = run_extract(bed, plain, work / "plain.fa", args.width)
        if gz is not None:
            runs["bgzip"] = run_extract(bed, gz, work / "bgzip.fa", args.width)
            same = subprocess.run(["cmp", "-s", str(work / "plain.fa"), str(work / "bgzip.fa")]).returncode == 0
            runs["bgzip"]["identical_to_plain"] = same
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = os.getloadavg()
    result = {
        "benchmark": "extract_throughput",
        "date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "flock /tmp/seqalignatac-heavy.lock python "
        + shlex.join(["benchmarks/extract_throughput.py", *sys.argv[1:]]),
        "peaks": args.peaks,
        "width": args.width,
        "genome": genome,
        "machine": info,
        "runs": runs,
        "target": "500,000 peaks in under 60 s",
        "meets_target": all(r["wall_s"] < 60 for r in runs.values()),
    }
    out = Path(args.results)
    out.mkdir(parents=True, exist_ok=True)
    (out / "extract_throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"# extract throughput ({result['date_utc']})",
        "",
        f"`{result['command']}`",
        "",
        f"{args.peaks:,} random 200-800 bp peaks, window {args.width} bp, genome: {genome}.",
        "",
        f"Machine: {info['cpu_model']}, {info['cpu_count']} cores, {info['mem_total']} RAM; load average "
        f"{info['load_average_start']} at start, {info['load_average_end']} at end (machine shared with other jobs). "
        f"Python {info['python']}, pyfaidx {info['versions']['pyfaidx']}, numpy {info['versions']['numpy']}.",
        "",
        "| FASTA | wall s (CLI, incl. start-up) | peaks/s | peak RSS MB | output MB | clipped | identical |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for k, r in runs.items():
        md.append(
            f"| {k} | {r['wall_s']} | {r['peaks_per_s']:,} | {r['peak_rss_mb']} | {r['output_mb']} | "
            f"{r['clipped']} | {r.get('identical_to_plain', '')} |"
        )
    md += ["", f"Target: {result['target']}: {'met' if result['meets_target'] else 'NOT met'}.", ""]
    (out / "extract_throughput.md").write_text("\n".join(md))
    print("\n".join(md))


if __name__ == "__main__":
    main()
