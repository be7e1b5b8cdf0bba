#!/usr/bin/env python
"""Stage-1 scale benchmark: time per epoch and peak memory at 100k-1M cells x 100k peaks.

Each size runs in a fresh subprocess (so its peak RSS is its own) that
1. builds a cells x peaks binary CSR directly (synthetic: each cell opens ``--peaks-per-cell``
   distinct random peaks; the simulator's default density of 1,000 open peaks per cell), and
   random "peak embeddings" of width ``--dim`` (NT-v2 500M is 1,024 wide).  The values do not
   matter for timing: every step costs the same whatever the pattern.
2. calls the real ``seqalignatac.models.stage1.train`` exactly as the CLI does (``free_input=True``),
   with ``max_steps_per_epoch=--steps`` so one shortened epoch runs: the measured per-step time
   times the full epoch's step count, plus the measured end-of-epoch evaluation, is the
   extrapolated time of a full epoch (a full CPU epoch at 1M cells is 10^11 peak x cell entries).
   With ``--full-epoch`` no extrapolation is done.

Writes ``<out>.json`` and ``<out>.md`` with the machine (CPU, cores, RAM, load), date, versions
and the exact command.

CPU:  flock /tmp/seqalignatac-heavy.lock python benchmarks/stage1_scale.py --device cpu --threads 2
GPU:  python benchmarks/stage1_scale.py --device cuda --full-epoch --out benchmarks/results/stage1_scale_gpu
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def synthetic(n_cells: int, n_peaks: int, per_cell: int, seed: int):
    """cells x peaks CSR (uint8, canonical: sorted distinct indices per row), built in chunks."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    counts = np.clip(rng.poisson(per_cell, n_cells), 1, n_peaks)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    indices = np.empty(int(indptr[-1]), dtype=np.int32)
    chunk = 20_000
    for s in range(0, n_cells, chunk):
        e = min(n_cells, s + chunk)
        for c in range(s, e):  # distinct sorted peaks per cell
            k = counts[c]
            idx = (
                rng.choice(n_peaks, size=k, replace=False)
                if k * 4 > n_peaks
                else np.unique(rng.integers(0, n_peaks, size=int(k * 1.02) + 8))[:k]
            )
            while len(idx) < k:  # rare: too many collisions, draw again
                idx = np.unique(np.concatenate([idx, rng.integers(0, n_peaks, size=k)]))[:k]
            idx.sort()
            indices[indptr[c] : indptr[c + 1]] = idx
    data = np.ones(len(indices), dtype=np.uint8)
    return sp.csr_matrix((data, indices, indptr), shape=(n_cells, n_peaks))


def worker(args) -> dict:
    import anndata as ad
    import pandas as pd
    import torch

    from seqalignatac.models.stage1 import train

    if args.threads:
        torch.set_num_threads(args.threads)
    t0 = time.time()
    X = synthetic(args.cells, args.peaks, args.peaks_per_cell, args.seed)
    E = np.random.default_rng(args.seed + 1).standard_normal((args.peaks, args.dim), dtype=np.float32)
    obs = pd.DataFrame(
        {"domain": np.where(np.arange(args.cells) % 5 < 3, "reference", "query")},
        index=pd.RangeIndex(args.cells).astype(str),
    )
    adata = ad.AnnData(
        X, obs=obs, var=pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(args.peaks)])
    )
    del X
    t_data = time.time() - t0
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    if args.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    stamps: list[float] = []

    def on_step(step: int) -> None:
        if args.device == "cuda" and step % 50 == 0:
            torch.cuda.synchronize()
        stamps.append(time.time())

    t1 = time.time()
    _, summary = train(
        adata,
        E,
        device=args.device,
        threads=args.threads,
        epochs=1,
        patience=1,
        max_steps_per_epoch=0 if args.full_epoch else args.steps,
        progress=False,
        callback=on_step,
        free_input=True,
        batch_size=args.batch_size,
        cell_block_size=args.cell_block_size,
        max_step_entries=args.max_step_entries,
    )
    if args.device == "cuda":
        torch.cuda.synchronize()
    t_end = time.time()
    warm = min(args.warmup, len(stamps) - 2)
    step_s = (stamps[-1] - stamps[warm]) / (len(stamps) - 1 - warm)
    setup_s = stamps[0] - t1 - step_s  # transposition, moving to the device, first-step overheads
    eval_write_s = t_end - stamps[-1]
    full = summary["full_epoch_steps"]
    res = dict(
        cells=args.cells,
        peaks=args.peaks,
        dim=args.dim,
        nnz=summary["nnz"],
        density=summary["density"],
        device=summary["device"],
        threads=torch.get_num_threads(),
        batch_size=args.batch_size,
        cell_block_size=summary["cell_block_size"],
        n_cell_blocks=summary["n_cell_blocks"],
        steps_measured=len(stamps),
        full_epoch_steps=full,
        seconds_per_step=step_s,
        setup_seconds=round(setup_s, 2),
        eval_seconds=round(eval_write_s, 2),
        epoch_seconds=round(step_s * full + eval_write_s, 1),
        extrapolated=not args.full_epoch,
        data_build_seconds=round(t_data, 1),
        peak_rss_gb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        rss_after_data_gb=round(rss_data, 2),
        entries_per_second=round(step_s and args.batch_size * min(args.cells, summary["cell_block_size"]) / step_s),
    )
    if args.device == "cuda":
        res["gpu_peak_memory_gb"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        res["gpu"] = torch.cuda.get_device_name()
    return res


def machine() -> dict:
    import torch

    cpu = platform.processor()
    try:
        cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    from importlib.metadata import version

    return dict(
        cpu=cpu,
        cores=os.cpu_count(),
        ram_gb=round(mem, 1),
        load_average=os.getloadavg(),
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        python=platform.python_version(),
        torch=torch.__version__,
        numpy=np.__version__,
        scipy=version("scipy"),
        anndata=version("anndata"),
        cuda=torch.cuda.get_device_name() if torch.cuda.is_available() else None,
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cells", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    p.add_argument("--peaks", type=int, default=100_000)
    p.add_argument("--peaks-per-cell", type=int, default=1000)
    p.add_argument("--dim", type=int, default=1024)
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--cell-block-size", type=int, default=0)
    p.add_argument("--max-step-entries", type=int, default=None)
    p.add_argument("--steps", type=int, default=30, help="steps measured (without --full-epoch)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--full-epoch", action="store_true", help="run whole epochs instead of extrapolating")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(HERE / "results" / "stage1_scale_cpu"))
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        args.cells = args.cells[0]
        print("RESULT " + json.dumps(worker(args)), flush=True)
        return
    command = "python benchmarks/stage1_scale.py " + " ".join(sys.argv[1:])
    info = machine()
    rows = []
    for n in args.cells:
        cmd = [sys.executable, __file__, "--worker", "--cells", str(n)] + [
            a for i, a in enumerate(sys.argv[1:]) if not _is_cells_arg(sys.argv[1:], i)
        ]
        t = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        lines = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not lines:
            print(proc.stderr[-3000:], file=sys.stderr)
            rows.append(dict(cells=n, error=f"exit {proc.returncode}", wall_seconds=round(time.time() - t, 1)))
            continue
        r = json.loads(lines[-1][7:])
        r["wall_seconds"] = round(time.time() - t, 1)
        r["load_average_after"] = os.getloadavg()
        rows.append(r)
        print(json.dumps(r), flush=True)
    info["load_average_end"] = os.getloadavg()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(machine=info, command=command, results=rows), indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(info, command, rows, args))
    print(f"wrote {out.with_suffix('.md')}")


def _is_cells_arg(argv: list[str], i: int) -> bool:
    """True for '--cells' and the numbers after it."""
    j = i
    while j >= 0 and argv[j] != "--cells" and not argv[j].startswith("--"):
        j -= 1
    return j >= 0 and argv[j] == "--cells"


def markdown(info: dict, command: str, rows: list[dict], args) -> str:
    how = (
        "full epochs"
        if args.full_epoch
        else (
            f"{args.steps} steps measured (after {args.warmup} warm-up steps), per-step time x the full epoch's "
            "steps + the measured end-of-epoch evaluation = **extrapolated** epoch time"
        )
    )
    lines = [
        "# Stage-1 scale benchmark",
        "",
        f"- date: {info['date']}; machine: {info['cpu']}, {info['cores']} cores, {info['ram_gb']} GB RAM"
        + (f", GPU {info['cuda']}" if info.get("cuda") else ""),
        f"- load average at start {tuple(round(x, 2) for x in info['load_average'])}, at end "
        f"{tuple(round(x, 2) for x in info['load_average_end'])} (the machine is shared; other jobs were running)",
        f"- versions: python {info['python']}, torch {info['torch']}, numpy {info['numpy']}, scipy {info['scipy']}, "
        f"anndata {info['anndata']}",
        f"- command: `{command}`",
        f"- data: synthetic binary matrix, {args.peaks:,} peaks, ~{args.peaks_per_cell:,} open peaks per cell; random "
        f"{args.dim}-wide peak embeddings; default network (hidden 256, bottleneck 32), batch {args.batch_size} peaks",
        f"- method: {how}",
        "- peak RSS: the whole worker process (matrix construction included), from `getrusage`",
        "",
        "| cells | nnz | device | threads | cell blocks x size | steps/epoch | s/step | epoch (s) | extrapolated | peak RSS (GB) |"
        + (" GPU mem (GB) |" if args.device == "cuda" else ""),
        "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if args.device == "cuda" else ""),
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['cells']:,} | failed: {r['error']} |")
            continue
        lines.append(
            f"| {r['cells']:,} | {r['nnz']:,} | {r['device']} | {r['threads']} | {r['n_cell_blocks']} x {r['cell_block_size']:,} "
            f"| {r['full_epoch_steps']:,} | {r['seconds_per_step']:.3f} | {r['epoch_seconds']:,.0f} "
            f"| {'yes' if r['extrapolated'] else 'no'} | {r['peak_rss_gb']} |"
            + (f" {r.get('gpu_peak_memory_gb')} |" if args.device == "cuda" else "")
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
