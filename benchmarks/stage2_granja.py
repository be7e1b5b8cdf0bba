#!/usr/bin/env python
"""Stage 2 on the real Granja 2019 BMMC pair: reference BMMC_D6T1 -> query BMMC_D5T1, 16 labels.

Every step is the package's own: ``convert`` (MatrixMarket -> one .h5ad per donor),
``prepare`` (all 10,000 peaks: ``min_peak_frac=0``), stage 1 ``lsi`` (defaults) and stage 2
``annotate`` with its defaults, ``--method gda`` and ``--method knn``.  Stage-2 defaults were
chosen before this script was run, on simulated data and on a split *inside* the reference
donor (docs/stage2.md); the query labels are only used here, to score.

Second experiment: ``25_NK`` is removed from the reference (before LSI), and the Unknown rate
is reported on query NK cells and on the other query cells.

    python benchmarks/stage2_granja.py [--workdir DIR] [--threads 2]
    # writes benchmarks/results/stage2_granja.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "granja2019_bmmc_hemato"
LABEL = "BioClassification"
NOVEL = "25_NK"


def machine_info() -> dict:
    def first(path, key):
        try:
            return next(ln.split(":", 1)[1].strip() for ln in open(path) if ln.startswith(key))
        except (OSError, StopIteration):
            return ""

    import sklearn
    import torch

    from seqalignatac import __version__

    return {
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "mem_total": first("/proc/meminfo", "MemTotal"),
        "load_average_start": os.getloadavg(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "seqalignatac": __version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
    }


def build_cells(workdir: Path, drop_reference_label: str | None = None, threads: int = 2):
    """convert -> prepare (all peaks) -> LSI; optionally without one reference class."""
    from seqalignatac.io.convert import convert
    from seqalignatac.models.stage1.lsi import lsi
    from seqalignatac.pp.mapping import prepare

    donors = workdir / "donors"
    if not (donors / "BMMC_D5T1.h5ad").exists():
        convert(
            DATA / "counts_peaks_x_cells.mtx.gz",
            donors,
            peaks=DATA / "peaks.bed",
            cells=DATA / "cells.tsv",
            split_by="Group",
        )
    acc, prep_summary = prepare(
        donors / "BMMC_D6T1.h5ad", donors / "BMMC_D5T1.h5ad", LABEL, query_labels_key=LABEL, min_peak_frac=0.0
    )
    if drop_reference_label is not None:
        keep = ~((acc.obs["domain"] == "reference") & (acc.obs[LABEL] == drop_reference_label)).to_numpy()
        acc = acc[keep].copy()
    cells, lsi_summary = lsi(acc)
    print(f"built: {acc.n_obs} cells x {acc.n_vars} peaks, LSI {lsi_summary['dims']} dims", flush=True)
    return cells, {"n_peaks": int(acc.n_vars), "n_cells": int(acc.n_obs), "lsi_dims": lsi_summary["dims"]}


# The A2GNN core alone (no ensembling, no kNN mixing): shown for comparison, never used to choose.
CORE = {"ensemble": 1, "knn_mix": 0.0, "linear_mix": 0.0}


def run_method(
    cells, method: str, seed: int, threads: int, name: str | None = None, overrides: dict | None = None
) -> tuple[dict, object]:
    from seqalignatac.models.stage2.api import annotate_full
    from seqalignatac.models.stage2.options import config_with
    from seqalignatac.models.stage2.outputs import metrics_tables, query_truth

    t = time.perf_counter()
    res = annotate_full(
        cells, method=method, seed=seed, threads=threads, progress=False, config=config_with(**(overrides or {}))
    )
    secs = time.perf_counter() - t
    truth = query_truth(res.query, LABEL)
    pred = res.predictions.set_index("cell_id").loc[truth.index].reset_index()
    m, per_class, _ = metrics_tables(truth.reset_index(drop=True), pred)
    row = {
        "method": name or method,
        "accuracy": m["argmax"]["accuracy"],
        "macro_f1": m["argmax"]["macro_f1"],
        "accuracy_with_unknown": m["accuracy"],
        "macro_f1_with_unknown": m["macro_f1"],
        "unknown_rate": m["unknown_rate"],
        "per_class_f1": m["argmax"]["per_class_f1"],
        "seconds": round(secs, 1),
        "config": res.summary["config"],
        "unknown": res.summary["unknown"],
    }
    return row, res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default="/tmp/seqalignatac_stage2_granja")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage2_granja"))
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real data not found at {DATA}")
    warnings.filterwarnings("ignore", category=UserWarning)
    info = machine_info()
    workdir = Path(args.workdir)
    t0 = time.perf_counter()

    cells, build = build_cells(workdir, threads=args.threads)
    rows = [run_method(cells, m, args.seed, args.threads)[0] for m in ("gda", "knn")]
    rows.insert(1, run_method(cells, "gda", args.seed, args.threads, "gda core (ensemble 1, no kNN mix)", CORE)[0])
    print({r["method"]: (round(r["accuracy"], 3), round(r["macro_f1"], 3)) for r in rows}, flush=True)

    cells_nk, build_nk = build_cells(workdir, drop_reference_label=NOVEL, threads=args.threads)
    novel = []
    for m in ("gda", "knn"):
        row, res = run_method(cells_nk, m, args.seed, args.threads)
        q = res.query.obs
        is_nk = (q[LABEL].astype(str) == NOVEL).to_numpy()
        unk = q["seqalignatac_unknown"].to_numpy()
        novel.append(
            {
                "method": m,
                "unknown_rate_query_nk": float(unk[is_nk].mean()),
                "unknown_rate_query_others": float(unk[~is_nk].mean()),
                "n_query_nk": int(is_nk.sum()),
                "nk_predicted_as": q.loc[is_nk, "seqalignatac_best_label"].value_counts().head(3).to_dict(),
                "accuracy_others_argmax": float(
                    (q[LABEL].astype(str) == q["seqalignatac_best_label"].astype(str))[~is_nk].mean()
                ),
            }
        )

    info["load_average_end"] = os.getloadavg()
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": info,
        "command": "python benchmarks/stage2_granja.py " + " ".join(sys.argv[1:]),
        "data": build,
        "data_without_nk": build_nk,
        "results": rows,
        "nk_left_out": novel,
        "targets": {"accuracy": 0.72, "macro_f1": 0.60},
        "baselines_from_data_readme": {"lsi_logreg": [0.686, 0.507], "lsi_knn15": [0.634, 0.483]},
        "total_seconds": round(time.perf_counter() - t0, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from seqalignatac.io.atomic import write_json, write_text

    write_json(out.with_suffix(".json"), result)
    lines = [
        "# Stage 2 on Granja 2019 BMMC: reference BMMC_D6T1 -> query BMMC_D5T1 (16 labels)",
        "",
        f"Date {result['date']}; `{result['command']}`; {info['cpu_model']} x{info['cpu_count']}, "
        f"{info['mem_total']}; load average start {tuple(round(v, 2) for v in info['load_average_start'])}, "
        f"end {tuple(round(v, 2) for v in info['load_average_end'])}; torch {info['torch']}.",
        "",
        f"Features: `prepare` (all {build['n_peaks']} peaks) + stage-1 LSI ({build['lsi_dims']} dims), "
        "stage-2 defaults (chosen without query labels, docs/stage2.md; `benchmarks/stage2_tuning.py`). "
        "Stage-1 LSI defaults: fitted on reference + query cells together, ArchR's logtf-logidf "
        "(benchmarks/results/stage1_lsi_variants.md). "
        "`gda` = the stage-2 defaults (A2GNN x 3 seeds averaged; final probabilities 0.3 GDA + 0.6 kNN label "
        "transfer (k 50, votes / class size^0.5) + 0.1 class-balanced logistic regression); "
        "`gda core` = one A2GNN model, no mixing.",
        "",
        "| method | accuracy | macro-F1 | accuracy (Unknown = wrong) | macro-F1 (Unknown = wrong) | unknown rate | seconds |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['accuracy_with_unknown']:.3f} | "
            f"{r['macro_f1_with_unknown']:.3f} | {r['unknown_rate']:.3f} | {r['seconds']} |"
        )
    lines += [
        "",
        "Accuracy and macro-F1 use the arg-max label (every cell called), as the baselines do. "
        "Target: accuracy >= 0.72 and macro-F1 >= 0.60; LSI + logistic regression reaches 0.686 / 0.507, "
        "LSI + kNN(15) 0.634 / 0.483 (data README).",
        "",
        f"## `{NOVEL}` left out of the reference",
        "",
        "| method | Unknown rate, query NK | Unknown rate, other query cells | NK cells called (arg-max) | accuracy on the others |",
        "| --- | --- | --- | --- | --- |",
    ]
    for r in novel:
        lines.append(
            f"| {r['method']} | {r['unknown_rate_query_nk']:.3f} (n={r['n_query_nk']}) | "
            f"{r['unknown_rate_query_others']:.3f} | {r['nk_predicted_as']} | {r['accuracy_others_argmax']:.3f} |"
        )
    lines += [
        "",
        "## Per-class F1 (arg-max)",
        "",
        "| class | " + " | ".join(r["method"] for r in rows) + " |",
        "| --- | " + " | ".join("---" for _ in rows) + " |",
    ]
    for c in rows[0]["per_class_f1"]:
        lines.append(f"| {c} | " + " | ".join(f"{r['per_class_f1'][c]:.3f}" for r in rows) + " |")
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    print(json.dumps({r["method"]: [round(r["accuracy"], 3), round(r["macro_f1"], 3)] for r in rows}), novel)


if __name__ == "__main__":
    main()
