#!/usr/bin/env python
"""Stage-2 scale: kNN graphs + GDA training for a million simulated cells; time and peak memory.

Simulated cell embeddings (Gaussian classes; the query half carries a batch shift), then the
package's own steps: ``build_graph`` for each domain (faiss IVF index above 50,000 cells) and
``train_gda`` (full batch).  Peak memory is the process's maximum resident set size.

    flock /tmp/seqalignatac-heavy.lock python benchmarks/stage2_scale.py --cells 1000000 --epochs 10 --device cpu --threads 2
    python benchmarks/stage2_scale.py --cells 1000000 --device cuda        # GPU, the default epochs
    # writes benchmarks/results/stage2_scale_<device>.{md,json}
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def peak_rss_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def machine_info(device: str) -> dict:
    def first(path, key):
        try:
            return next(ln.split(":", 1)[1].strip() for ln in open(path) if ln.startswith(key))
        except (OSError, StopIteration):
            return ""

    import faiss
    import torch

    from seqalignatac import __version__

    info = {
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "mem_total": first("/proc/meminfo", "MemTotal"),
        "load_average_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "seqalignatac": __version__,
        "torch": torch.__version__,
        "faiss": faiss.__version__,
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def simulate(n_cells: int, dim: int, n_types: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.6, (n_types, dim)).astype(np.float32)
    shift = rng.normal(0, 1, dim).astype(np.float32)
    shift *= 3.0 / np.linalg.norm(shift)
    n_ref = n_cells // 2
    y_ref = rng.integers(0, n_types, n_ref)
    y_q = rng.integers(0, n_types, n_cells - n_ref)
    x_ref = centers[y_ref] + rng.standard_normal((n_ref, dim), dtype=np.float32)
    x_q = centers[y_q] + shift + rng.standard_normal((n_cells - n_ref, dim), dtype=np.float32)
    return x_ref, y_ref, x_q, y_q


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--types", type=int, default=10)
    ap.add_argument("--epochs", type=int, default=None, help="default: the package default")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()

    import torch

    from seqalignatac.device import resolve_device
    from seqalignatac.io.atomic import write_json, write_text
    from seqalignatac.models.stage2.graphs import build_graph
    from seqalignatac.models.stage2.train import GDAConfig, train_gda

    torch.set_num_threads(args.threads)
    cfg = GDAConfig() if args.epochs is None else GDAConfig(epochs=args.epochs)
    info = machine_info(args.device)
    device = resolve_device(args.device)
    t = time.perf_counter()
    x_ref, y_ref, x_q, y_q = simulate(args.cells, args.dim, args.types, args.seed)
    t_sim = time.perf_counter() - t

    t = time.perf_counter()
    a_ref = build_graph(x_ref, cfg.k, what="reference", threads=args.threads, seed=args.seed)
    t_ref = time.perf_counter() - t
    t = time.perf_counter()
    a_q = build_graph(x_q, cfg.k, what="query", threads=args.threads, seed=args.seed)
    t_q = time.perf_counter() - t
    rss_graphs = peak_rss_gib()

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.perf_counter()
    res = train_gda(
        x_ref,
        y_ref,
        np.ones(y_ref.size, bool),
        x_q,
        a_ref,
        a_q,
        args.types,
        cfg,
        device=device,
        seed=args.seed,
        progress=True,
    )
    t_train = time.perf_counter() - t
    acc = float((res.query_proba.argmax(1) == y_q).mean())
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/stage2_scale.py " + " ".join(sys.argv[1:]),
        "machine": info,
        "device": str(device),
        "cells": args.cells,
        "dim": args.dim,
        "types": args.types,
        "config": cfg.to_dict(),
        "seconds": {
            "simulate": round(t_sim, 1),
            "graph_reference": round(t_ref, 1),
            "graph_query": round(t_q, 1),
            "train": round(t_train, 1),
            "train_per_epoch": round(t_train / cfg.epochs, 2),
            "graphs_plus_train": round(t_ref + t_q + t_train, 1),
        },
        "graph_nnz": {"reference": int(a_ref.nnz), "query": int(a_q.nnz)},
        "peak_rss_gib": {"after_graphs": round(rss_graphs, 2), "end": round(peak_rss_gib(), 2)},
        "query_accuracy_simulated": round(acc, 4),
    }
    if device.type == "cuda":
        result["peak_gpu_gib"] = round(torch.cuda.max_memory_allocated() / 1024**3, 2)
    info["load_average_end"] = os.getloadavg()
    out = Path(args.out or ROOT / "benchmarks" / "results" / f"stage2_scale_{device.type}")
    write_json(out.with_suffix(".json"), result)
    s = result["seconds"]
    md = [
        f"# Stage 2 scale: {args.cells:,} simulated cells ({device})",
        "",
        f"Date {result['date']}; `{result['command']}`",
        "",
        f"Machine: {info['cpu_model']} x{info['cpu_count']}, {info['mem_total']}"
        + (f", GPU {info['gpu']}" if "gpu" in info else "")
        + f"; load average start {tuple(round(v, 2) for v in info['load_average_start'])}, "
        f"end {tuple(round(v, 2) for v in info['load_average_end'])}; torch {info['torch']}, faiss {info['faiss']}.",
        "",
        "| step | seconds |",
        "| --- | --- |",
        f"| kNN graph, reference ({len(y_ref):,} cells, k={cfg.k}) | {s['graph_reference']} |",
        f"| kNN graph, query ({len(y_q):,} cells) | {s['graph_query']} |",
        f"| GDA training, {cfg.epochs} epochs (hidden {cfg.hidden}, K={cfg.target_depth}) | {s['train']} "
        f"({s['train_per_epoch']} per epoch) |",
        f"| graphs + training | {s['graphs_plus_train']} |",
        "",
        f"Peak resident memory: {result['peak_rss_gib']['end']} GiB (after the graphs: "
        f"{result['peak_rss_gib']['after_graphs']} GiB)"
        + (f"; peak GPU memory {result['peak_gpu_gib']} GiB" if "peak_gpu_gib" in result else "")
        + ".",
        f"Graph non-zeros: reference {result['graph_nnz']['reference']:,}, query {result['graph_nnz']['query']:,}. "
        f"Simulated query accuracy: {acc:.3f}.",
    ]
    write_text(out.with_suffix(".md"), "\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
