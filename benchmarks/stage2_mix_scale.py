#!/usr/bin/env python
"""Stage-2 scale, the steps after training: the default probability mix and the Unknown call.

``benchmarks/stage2_scale.py`` times the graphs and GDA training; this times what ``annotate``
does next with its defaults on the same simulated embeddings (half reference, half query with a
batch shift): the mixed-in kNN label transfer (``--knn-mix-k 50``, faiss above 50,000 reference
cells), the class-balanced logistic regression (``linear_mix``), the Unknown test (Mahalanobis
distances to every class + the neighbourhood smoothing, ``unknown_smooth`` 15), the Leiden
clusters of the query (``query_clusters.csv``, resolution 3) and the thresholds with the cluster
test (``unknown_cluster_z``).

    python benchmarks/stage2_mix_scale.py --cells 1000000 --threads 2
    # writes benchmarks/results/stage2_mix_scale_cpu.{md,json}
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from stage2_scale import machine_info, peak_rss_gib, simulate  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--types", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage2_mix_scale_cpu"))
    args = ap.parse_args()

    from seqalignatac.io.atomic import write_json, write_text
    from seqalignatac.models.stage2.clusters import leiden_clusters, query_graph
    from seqalignatac.models.stage2.inputs import ReferenceSet
    from seqalignatac.models.stage2.train import GDAConfig
    from seqalignatac.models.stage2.transfer import fit_linear, knn_transfer, linear_proba
    from seqalignatac.models.stage2.unknown import (
        CLUSTER_Z,
        call_unknown,
        confidence_entropy,
        distance_scores,
        smooth_scores,
    )

    info = machine_info("cpu")
    cfg = GDAConfig()
    x_ref, y_ref, x_q, y_q = simulate(args.cells, args.dim, args.types, args.seed)
    rng = np.random.default_rng(args.seed)
    held = rng.random(x_ref.shape[0]) < 0.1
    train = ~held
    times = {}

    t = time.perf_counter()
    kq, kh, _ = knn_transfer(
        x_ref, y_ref, train, held, x_q, args.types, cfg.knn_mix_k, args.threads, vote_power=cfg.knn_vote_power
    )
    times["knn_transfer_k50"] = time.perf_counter() - t
    t = time.perf_counter()
    params = fit_linear(ReferenceSet(x_ref[train], y_ref[train], x_ref[held], y_ref[held]), cfg.linear_c)
    lq, lh = linear_proba(params, x_q, args.types), linear_proba(params, x_ref[held], args.types)
    times["logistic_regression"] = time.perf_counter() - t
    # GDA's share is taken by the kNN probabilities here (training is timed by stage2_scale.py).
    proba = (1 - cfg.linear_mix) * kq + cfg.linear_mix * lq
    t = time.perf_counter()
    best = proba.argmax(1)
    q_dist, h_dist = distance_scores(x_q, best, x_ref[held], y_ref[held], x_ref[train], y_ref[train])
    times["unknown_mahalanobis"] = time.perf_counter() - t
    t = time.perf_counter()
    graph = query_graph(x_q, 15, args.threads)  # one query kNN for the smoothing and the clusters
    times["query_knn_k16"] = time.perf_counter() - t
    t = time.perf_counter()
    s_dist = smooth_scores(x_q, q_dist, 15, args.threads, graph)
    times["unknown_smoothing_k15"] = time.perf_counter() - t
    t = time.perf_counter()
    clusters = leiden_clusters(x_q, args.seed, args.threads, graph)
    times["query_clusters_leiden"] = time.perf_counter() - t
    conf, _ = confidence_entropy(proba)
    t = time.perf_counter()
    flags, _ = call_unknown(
        "distance",
        0.02,
        conf,
        confidence_entropy(lh)[0],
        q_dist,
        h_dist,
        s_dist,
        0.005,
        0.0,
        clusters=clusters,
        cluster_z=CLUSTER_Z,
    )
    times["unknown_thresholds_and_cluster_test"] = time.perf_counter() - t
    accuracy = float((best == y_q).mean())
    info["load_average_end"] = __import__("os").getloadavg()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "command": "python benchmarks/stage2_mix_scale.py " + " ".join(sys.argv[1:]),
        "cells": args.cells,
        "dim": args.dim,
        "types": args.types,
        "seconds": {k: round(v, 1) for k, v in times.items()},
        "total_seconds": round(sum(times.values()), 1),
        "peak_rss_gib": round(peak_rss_gib(), 2),
        "accuracy_mix": accuracy,
        "unknown_rate": float(flags.mean()),
        "query_clusters": int(clusters.max()) + 1,
    }
    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    lines = [
        f"# Stage-2 mix + Unknown at {args.cells:,} simulated cells (CPU)",
        "",
        f"{result['date']}; `{result['command']}`; {info['cpu_model']} x{info['cpu_count']}; load "
        f"{tuple(round(v, 2) for v in info['load_average_start'])} -> "
        f"{tuple(round(v, 2) for v in info['load_average_end'])}.",
        "",
        f"{args.cells // 2:,} reference + {args.cells - args.cells // 2:,} query cells, {args.dim} dims, "
        f"{args.types} types.  Graphs and GDA training: `benchmarks/results/stage2_scale_cpu.md`.",
        "",
        "| step | seconds |",
        "| --- | --- |",
    ]
    lines += [f"| {k} | {v:.1f} |" for k, v in result["seconds"].items()]
    lines += [
        f"| **total** | **{result['total_seconds']:.1f}** |",
        "",
        f"Peak RSS {result['peak_rss_gib']} GiB; mixed accuracy {accuracy:.3f}; Unknown rate "
        f"{result['unknown_rate']:.3f} (no novel type in this simulation); {result['query_clusters']} query "
        "clusters (Leiden, resolution 3).",
    ]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
