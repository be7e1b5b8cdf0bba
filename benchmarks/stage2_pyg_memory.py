#!/usr/bin/env python
"""Stage-2 propagation and graph normalisation: the hand-written code vs PyTorch Geometric; memory and time.

One forward + backward of the stage-2 query propagation (``A_hat^2 X``, X = cells x 64, a loss
``sum(out * w)``, the gradient to X) on a cosine kNN graph (k = 15, faiss IVF, simulated
Gaussian cell types, the package's ``knn_indices``), for each implementation:

* ``hand_scipy``  the package's ``propagate`` (custom autograd, no stored activations) on
                  ``Graph(backend="scipy")``: scipy CSR products (the CPU default before PyG);
* ``hand_torch``  the same autograd function on ``Graph(backend="torch")``, the default now:
                  PyG's ``SimpleConv(aggr="sum")`` on torch sparse CSR row blocks;
* ``pyg_csr``     ``torch_geometric.nn.SimpleConv(aggr="sum")`` applied twice to PyG's normalised
                  graph as a torch sparse CSR ``adj_t`` (fused ``spmm``), ordinary autograd;
* ``pyg_edges``   the same layer on ``edge_index`` + ``edge_weight`` (PyG's gather/scatter
                  message passing: one message per edge and channel).

and the normalisation ``D^-1/2 (A + I) D^-1/2`` of the kNN table: ``norm_scipy`` (the previous
scipy code, kept here as the reference) vs ``norm_pyg`` (the package's ``normalized_adjacency``:
``to_undirected`` + ``gcn_norm``).

Every measurement runs in a fresh process; memory is the rise of the process's peak resident set
(VmHWM, reset through /proc/self/clear_refs) over its resident set just before the step, so it
counts numpy, scipy and torch allocations alike.  Time is the median of ``--repeats`` runs.

    python benchmarks/stage2_pyg_memory.py --cells 100000 300000 1000000
    # writes benchmarks/results/stage2_pyg_memory.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PROPAGATIONS = ("hand_scipy", "hand_torch", "pyg_csr", "pyg_edges")
NORMS = ("norm_scipy", "norm_pyg")
GIB = 1024**3


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(key))


def reset_peak() -> int:
    """Reset VmHWM to the current RSS; return the current RSS in bytes."""
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    return _status_kib("VmRSS:") * 1024


def peak_rss() -> int:
    return _status_kib("VmHWM:") * 1024


def knn_table(n: int, k: int, cache: Path, threads: int) -> np.ndarray:
    path = cache / f"stage2_pyg_knn_{n}_{k}.npy"
    if path.exists():
        return np.load(path)
    from seqalignatac.models.stage2.graphs import knn_indices

    rng = np.random.default_rng(0)
    centers = rng.normal(0, 1.6, (10, 32)).astype(np.float32)
    x = centers[rng.integers(0, 10, n)] + rng.standard_normal((n, 32), dtype=np.float32)
    idx = knn_indices(x, k, method="faiss", threads=threads, seed=0)
    del x
    np.save(path, idx.astype(np.int32))
    return np.load(path)


def norm_scipy(idx: np.ndarray):
    """The scipy normalisation this package used before PyG (the reference)."""
    import scipy.sparse as sp

    n, k = idx.shape
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    a = sp.csr_matrix((np.ones(n * k, dtype=np.float32), (rows, idx.ravel())), shape=(n, n))
    a = a.maximum(a.T).tocsr()
    a.setdiag(1.0)
    a.data[:] = 1.0
    deg = np.asarray(a.sum(axis=1)).ravel()
    dinv = 1.0 / np.sqrt(deg)
    a = sp.diags(dinv.astype(np.float32)) @ a @ sp.diags(dinv.astype(np.float32))
    a = a.tocsr().astype(np.float32)
    a.sort_indices()
    return a


def worker(variant: str, n: int, k: int, hidden: int, depth: int, repeats: int, cache: Path, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)
    from seqalignatac.models.stage2.graphs import normalized_adjacency

    idx = knn_table(n, k, cache, threads)
    out: dict = {"variant": variant, "cells": n}
    if variant in NORMS:
        fn = norm_scipy if variant == "norm_scipy" else normalized_adjacency
        fn(np.minimum(idx[:1000], 999))  # warm-up: imports and first-call costs are not measured
        times, peak = [], 0
        for _ in range(repeats):
            base = reset_peak()
            t = time.perf_counter()
            a = fn(idx)
            times.append(time.perf_counter() - t)
            peak = max(peak, peak_rss() - base)
            nnz = int(a.nnz)
            if _ < repeats - 1:
                del a
        out.update(
            seconds=float(np.median(times)),
            peak_extra_gib=peak / GIB,
            nnz=nnz,
            graph_gib=(a.data.nbytes + a.indices.nbytes + a.indptr.nbytes) / GIB,
        )
        if variant == "norm_pyg":
            ref = norm_scipy(idx)
            same = np.array_equal(ref.indptr, a.indptr) and np.array_equal(ref.indices, a.indices)
            out["same_sparsity_as_scipy"] = bool(same)
            out["max_abs_diff_vs_scipy"] = float(np.abs(ref.data - a.data).max()) if same else None
        return out

    from seqalignatac.models.stage2.model import Graph, propagate

    a = normalized_adjacency(idx)
    del idx
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(n, hidden, generator=gen).requires_grad_(True)
    w = torch.randn(n, hidden, generator=gen)
    if variant.startswith("hand"):
        g = Graph(a, backend="scipy" if variant == "hand_scipy" else "torch")
        del a

        def step():
            return propagate(x, g, depth)
    else:
        from torch_geometric.nn import SimpleConv
        from torch_geometric.utils import to_torch_csr_tensor

        conv = SimpleConv(aggr="sum")
        coo = a.tocoo()
        edge_index = torch.from_numpy(np.vstack([coo.row, coo.col]).astype(np.int64))
        weight = torch.from_numpy(coo.data)
        del a, coo
        if variant == "pyg_csr":
            # adj_t = A_hat^T = A_hat (symmetric)
            adj = to_torch_csr_tensor(edge_index, weight, n, is_coalesced=True)
            del edge_index, weight

            def step():
                h = x
                for _ in range(depth):
                    h = conv(h, adj)
                return h
        else:

            def step():
                h = x
                for _ in range(depth):
                    h = conv(h, edge_index, weight)
                return h

    # Warm-up on a 1000-cell graph (imports, first-call costs), then the measured runs.
    full = (x, w)
    x = x[:1000].detach().requires_grad_(True)
    w = w[:1000]
    if variant.startswith("hand"):
        g_full, g = (
            g,
            Graph(
                normalized_adjacency(np.minimum(knn_table(n, k, cache, threads)[:1000], 999)),
                backend=g.scipy is not None and "scipy" or "torch",
            ),
        )
        (step() * w).sum().backward()
        g = g_full
    else:
        from torch_geometric.utils import to_torch_csr_tensor as _csr

        small = normalized_adjacency(np.minimum(knn_table(n, k, cache, threads)[:1000], 999)).tocoo()
        ei = torch.from_numpy(np.vstack([small.row, small.col]).astype(np.int64))
        h = x
        for _ in range(depth):
            h = conv(h, _csr(ei, torch.from_numpy(small.data), 1000, is_coalesced=True))
            h = conv(h, ei, torch.from_numpy(small.data))
        (h * w).sum().backward()
    x, w = full
    times, peak = [], 0
    for _ in range(repeats):
        x.grad = None
        base = reset_peak()
        t = time.perf_counter()
        loss = (step() * w).sum()
        loss.backward()
        times.append(time.perf_counter() - t)
        peak = max(peak, peak_rss() - base)
        del loss
    out.update(
        seconds=float(np.median(times)), peak_extra_gib=peak / GIB, grad_checksum=float(x.grad.double().abs().sum())
    )
    return out


def run_worker(args, variant: str, n: int) -> dict:
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        variant,
        "--cells",
        str(n),
        "--k",
        str(args.k),
        "--hidden",
        str(args.hidden),
        "--depth",
        str(args.depth),
        "--repeats",
        str(args.repeats),
        "--cache",
        str(args.cache),
        "--threads",
        str(args.threads),
    ]
    load = os.getloadavg()[0]
    # Fixed glibc mmap threshold: large buffers are returned to the system when freed, so the
    # resident set before a step does not hold freed memory that the step then reuses unseen.
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout, env=env)
    if proc.returncode != 0:
        return {
            "variant": variant,
            "cells": n,
            "error": proc.stderr.strip().splitlines()[-1:],
            "returncode": proc.returncode,
            "load1": load,
        }
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["load1"] = load
    return res


LABELS = {
    "hand_scipy": 'hand-written autograd, scipy CSR (the former CPU default; backend="scipy")',
    "hand_torch": "**hand-written autograd, PyG SimpleConv on torch CSR blocks (now the default)**",
    "pyg_csr": "PyG SimpleConv on torch CSR adj_t, torch autograd",
    "pyg_edges": "PyG SimpleConv on edge_index + edge_weight (gather/scatter)",
    "norm_scipy": "normalisation, previous scipy code",
    "norm_pyg": "normalisation, PyG to_undirected + gcn_norm",
}


def render(result: dict) -> str:
    """The markdown table; sizes that were not run are extrapolated linearly from the two largest measured."""
    rows = result["rows"]
    cells = sorted({r["cells"] for r in rows})
    info = result["machine"]
    lines = [
        "# Stage-2 propagation and normalisation: hand-written vs PyTorch Geometric (CPU)",
        "",
        f"Date {result['date']}; commands: " + "; ".join(f"`{c}`" for c in result["commands"]),
        "",
        f"Machine: {info['cpu_model']} x{info['cpu_count']} ({info['threads']} torch threads), {info['mem_total']}, "
        f"shared with other jobs; torch {info['torch']}, torch_geometric {info['torch_geometric']} (no pyg-lib, "
        f"torch-sparse or torch-scatter), scipy {info['scipy']}.",
        "",
        f"Propagation: one forward + backward of `A_hat^{result['depth']} X`, X = cells x {result['hidden']} float32, "
        f"k = {result['k']} cosine kNN graph (faiss IVF, simulated cell types); the graph and X are held before the "
        "step and not counted. Normalisation: kNN table -> scipy CSR `D^-1/2 (A + I) D^-1/2`. "
        "*Extra peak* = rise of the peak resident set over the resident set just before the step (fresh process "
        f"per cell; glibc mmap threshold fixed). Seconds: median of {result['repeats']} runs; `load` = 1-minute load "
        "average when the process started (2 cores: timings above ~2 are slowed by other jobs; memory is not).",
        "",
        "| implementation | " + " | ".join(f"{n:,} cells: extra peak GiB / s (load)" for n in cells) + " |",
        "| --- |" + " --- |" * len(cells),
    ]
    for v in LABELS:
        vr = {r["cells"]: r for r in rows if r["variant"] == v}
        if not vr:
            continue
        cols = []
        for n in cells:
            r = vr.get(n)
            if r and "peak_extra_gib" in r:
                cols.append(f"{r['peak_extra_gib']:.2f} / {r['seconds']:.2f} ({r['load1']:.1f})")
            else:
                done = sorted(m for m, q in vr.items() if "peak_extra_gib" in q)
                if len(done) >= 2:
                    (n0, n1) = done[-2:]
                    p0, p1 = vr[n0]["peak_extra_gib"], vr[n1]["peak_extra_gib"]
                    est = p1 + (p1 - p0) * (n - n1) / (n1 - n0)
                    cols.append(f"~{est:.1f} extrapolated (not run: over this machine's ~6 GB budget)")
                else:
                    cols.append("not run")
        lines.append(f"| {LABELS[v]} | " + " | ".join(cols) + " |")
    checks = [r for r in rows if r["variant"] == "norm_pyg" and "max_abs_diff_vs_scipy" in r]
    if checks:
        lines += [
            "",
            "PyG normalisation vs the scipy code: "
            + "; ".join(
                f"{r['cells']:,} cells: same sparsity {r['same_sparsity_as_scipy']}, max |diff| "
                f"{r['max_abs_diff_vs_scipy']:g}, {r['nnz']:,} non-zeros"
                for r in checks
            )
            + ".",
        ]
    grads = {}
    for r in rows:
        if "grad_checksum" in r:
            grads.setdefault(r["cells"], set()).add(round(r["grad_checksum"], 1))
    lines += [
        "",
        "Gradient checksums (sum |dX|) agree across the implementations at each size: "
        + ", ".join(f"{n:,}: {'yes' if len(g) == 1 else 'no ' + str(sorted(g))}" for n, g in sorted(grads.items()))
        + ".",
    ]
    lines += [
        "",
        f"Load average: start {tuple(round(v, 2) for v in info['load_average_start'])}, "
        f"end {tuple(round(v, 2) for v in info['load_average_end'])}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cells", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", nargs="+", default=list(PROPAGATIONS + NORMS))
    ap.add_argument("--skip", nargs="*", default=[], help="variant:cells pairs not to run (too large here)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp"))
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    ap.add_argument(
        "--merge",
        type=Path,
        nargs="*",
        default=[],
        help="earlier result JSONs whose rows this run's rows replace (same variant and cells) or extend",
    )
    args = ap.parse_args()

    if args.worker:
        res = worker(
            args.worker, args.cells[0], args.k, args.hidden, args.depth, args.repeats, args.cache, args.threads
        )
        print(json.dumps(res))
        return

    import scipy
    import torch
    import torch_geometric

    info = {
        "cpu_model": next(
            (ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), ""
        ),
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "mem_total": next(ln.split(":", 1)[1].strip() for ln in open("/proc/meminfo") if ln.startswith("MemTotal")),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_geometric": torch_geometric.__version__,
        "scipy": scipy.__version__,
        "load_average_start": os.getloadavg(),
    }
    rows = []
    for n in args.cells:
        t = time.perf_counter()
        knn_table(n, args.k, args.cache, args.threads)  # cached, built once per size
        print(f"kNN table for {n:,} cells ready ({time.perf_counter() - t:.0f} s)", flush=True)
        for v in args.variants:
            if f"{v}:{n}" in args.skip:
                rows.append({"variant": v, "cells": n, "skipped": "estimated over this machine's budget"})
                continue
            res = run_worker(args, v, n)
            print(json.dumps(res), flush=True)
            rows.append(res)
    info["load_average_end"] = os.getloadavg()
    command = "python benchmarks/stage2_pyg_memory.py " + " ".join(sys.argv[1:])
    commands = [command]
    for path in args.merge:
        old = json.loads(path.read_text())
        mine = {(r["variant"], r["cells"]) for r in rows}
        rows = [r for r in old["rows"] if (r["variant"], r["cells"]) not in mine] + rows
        commands = old.get("commands", [old.get("command")]) + commands
        info["load_average_start"] = old["machine"]["load_average_start"]
    rows.sort(key=lambda r: (r["cells"], list(LABELS).index(r["variant"])))
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "commands": commands,
        "machine": info,
        "k": args.k,
        "hidden": args.hidden,
        "depth": args.depth,
        "repeats": args.repeats,
        "rows": rows,
    }
    out = Path(args.out or ROOT / "benchmarks" / "results" / "stage2_pyg_memory")
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(render(result))
    print(render(result))
    print(f"wrote {out.with_suffix('.json')} and .md")


if __name__ == "__main__":
    main()
