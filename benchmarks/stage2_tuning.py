#!/usr/bin/env python
"""Choose stage-2 defaults WITHOUT the query labels of the reported pair (D6T1 -> D5T1).

Tuning sets (docs/stage2.md, "How the defaults were chosen"):
  * ``reverse``: the other Granja pair, reference BMMC_D5T1 -> query BMMC_D6T1 (method.md
    section 4: "on a different pair"), scored on D6T1's labels;
  * ``depth``: inside the reported pair's reference donor BMMC_D6T1 only, its cells split at
    the median number of accessible peaks into a "reference" (deeper) and a "query" half.
Both use the package's ``prepare`` (all 10,000 peaks) and stage-1 ``lsi``; the D5T1 labels of
the D6T1 -> D5T1 pair are never read here.  Each configuration is a set of ``GDAConfig``
overrides; every row reports arg-max accuracy and macro-F1 on both sets and their mean.

    python benchmarks/stage2_tuning.py [--grid default|quick] [--workdir DIR] [--threads 2]
    # writes benchmarks/results/stage2_tuning.{md,json}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from stage2_granja import DATA, LABEL, machine_info

# (name, GDAConfig overrides, LSI n_components).  Old defaults first, then one change at a
# time, then combinations of what helped.
OLD = {"input_norm": "none", "epochs": 100, "hidden": 64, "dropout": 0.1, "lr": 0.01, "class_weight": "balanced",
       "target_depth": 2, "self_train_epochs": 0, "ensemble": 1, "knn_mix": 0.0, "knn_space": "input"}
GRIDS: dict[str, list[tuple[str, dict, int]]] = {
    # Every configuration that was tried, in the order tried (rounds of about five).
    "default": [
        ("old defaults", OLD, 30),
        ("zscore", {**OLD, "input_norm": "zscore"}, 30),
        ("l2+zscore", {**OLD, "input_norm": "l2+zscore"}, 30),
        ("LSI 50 components", OLD, 50),
        ("epochs 200, lr 0.005", {**OLD, "epochs": 200, "lr": 0.005}, 30),
        ("hidden 128, dropout 0.3", {**OLD, "hidden": 128, "dropout": 0.3}, 30),
        ("class weight none", {**OLD, "class_weight": "none"}, 30),
        ("self-train 50", {**OLD, "self_train_epochs": 50}, 30),
        ("ensemble 3", {**OLD, "ensemble": 3}, 30),
        ("knn mix 0.2", {**OLD, "knn_mix": 0.2}, 30),
        ("knn mix 0.3", {**OLD, "knn_mix": 0.3}, 30),
        ("knn mix 0.5", {**OLD, "knn_mix": 0.5}, 30),
        ("knn mix 0.3 (hidden space)", {**OLD, "knn_mix": 0.3, "knn_space": "hidden"}, 30),
        ("knn mix 0.5 (hidden space)", {**OLD, "knn_mix": 0.5, "knn_space": "hidden"}, 30),
        ("self-train 50, knn mix 0.3", {**OLD, "self_train_epochs": 50, "knn_mix": 0.3}, 30),
        ("knn mix 0.3, target depth 4", {**OLD, "knn_mix": 0.3, "target_depth": 4}, 30),
        ("knn mix 0.3, hidden 128, dropout 0.3", {**OLD, "knn_mix": 0.3, "hidden": 128, "dropout": 0.3}, 30),
        ("knn mix 0.3, ensemble 3 (new defaults)", {**OLD, "knn_mix": 0.3, "ensemble": 3}, 30),
        ("knn mix 0.4, ensemble 3", {**OLD, "knn_mix": 0.4, "ensemble": 3}, 30),
        ("knn mix 0.3, ensemble 5", {**OLD, "knn_mix": 0.3, "ensemble": 5}, 30),
    ],
    "quick": [("old defaults", OLD, 30), ("knn mix 0.3, ensemble 3 (new defaults)", {**OLD, "knn_mix": 0.3, "ensemble": 3}, 30)],
}


def build_sets(workdir: Path, n_components: int) -> dict:
    """The two tuning sets as stage-1 cell AnnData (cached under ``workdir``)."""
    import anndata as ad

    from seqalignatac.convert import convert
    from seqalignatac.prepare import prepare
    from seqalignatac.stage1.lsi import lsi

    donors = workdir / "donors"
    if not (donors / "BMMC_D5T1.h5ad").exists():
        convert(DATA / "counts_peaks_x_cells.mtx.gz", donors, peaks=DATA / "peaks.bed", cells=DATA / "cells.tsv",
                split_by="Group")
    sets = {}
    for name, ref, qry in (("reverse", "BMMC_D5T1", "BMMC_D6T1"), ("depth", "BMMC_D6T1", None)):
        cache = workdir / f"tune_{name}_lsi{n_components}.h5ad"
        if cache.exists():
            sets[name] = ad.read_h5ad(cache)
            continue
        if qry is not None:
            acc, _ = prepare(donors / f"{ref}.h5ad", donors / f"{qry}.h5ad", LABEL, query_label_key=LABEL,
                             min_peak_frac=0.0)
        else:
            # Only D6T1: prepare it against itself, then split its cells by depth.
            acc, _ = prepare(donors / f"{ref}.h5ad", donors / f"{ref}.h5ad", LABEL, query_label_key=LABEL,
                             min_peak_frac=0.0)
            acc = acc[(acc.obs["domain"] == "reference").to_numpy()].copy()
            depth = np.diff(acc.X.tocsr().indptr)
            acc.obs["domain"] = np.where(depth >= np.median(depth), "reference", "query")
        cells, _ = lsi(acc, n_components=n_components)
        cells.write_h5ad(cache)
        sets[name] = cells
    return sets


def score(cells, overrides: dict, seed: int, threads: int) -> dict:
    from seqalignatac.metrics import evaluate
    from seqalignatac.stage2.api import annotate_full, config_with

    t = time.perf_counter()
    res = annotate_full(cells, method="gda", config=config_with(**overrides), unknown="none", seed=seed,
                        threads=threads, progress=False)
    obs = res.query.obs
    m = evaluate(obs["label"].astype(str), obs["seqalignatac_best_label"].astype(str))
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "seconds": round(time.perf_counter() - t, 1),
            "held_out_reference_accuracy": res.summary["held_out_reference_accuracy"]}


def knn_row(cells, threads: int) -> dict:
    from seqalignatac.metrics import evaluate
    from seqalignatac.stage2.api import annotate_full

    res = annotate_full(cells, method="knn", unknown="none", threads=threads, progress=False)
    obs = res.query.obs
    m = evaluate(obs["label"].astype(str), obs["seqalignatac_best_label"].astype(str))
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"],
            "held_out_reference_accuracy": res.summary["held_out_reference_accuracy"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="default", help=f"one of {', '.join(GRIDS)} or a JSON list of [name, overrides, lsi]")
    ap.add_argument("--workdir", default="/tmp/seqalignatac_stage2_granja")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "stage2_tuning"))
    args = ap.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    grid = GRIDS[args.grid] if args.grid in GRIDS else [tuple(r) for r in json.loads(args.grid)]
    info = machine_info()
    workdir = Path(args.workdir)
    rows, sets_by_nc = [], {}
    for nc in sorted({r[2] for r in grid}):
        sets_by_nc[nc] = build_sets(workdir, nc)
    baselines = {f"knn, LSI {nc}": {s: knn_row(c, args.threads) for s, c in sets.items()}
                 for nc, sets in sets_by_nc.items()}
    for name, overrides, nc in grid:
        r = {"name": name, "overrides": overrides, "lsi_components": nc}
        for s, c in sets_by_nc[nc].items():
            r[s] = score(c, overrides, args.seed, args.threads)
        r["mean_accuracy"] = float(np.mean([r[s]["accuracy"] for s in sets_by_nc[nc]]))
        r["mean_macro_f1"] = float(np.mean([r[s]["macro_f1"] for s in sets_by_nc[nc]]))
        rows.append(r)
        print(json.dumps({"name": name, **{s: [round(r[s]["accuracy"], 3), round(r[s]["macro_f1"], 3)]
                                           for s in sets_by_nc[nc]}}), flush=True)

    info["load_average_end"] = os.getloadavg()
    result = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": info,
              "command": "python benchmarks/stage2_tuning.py " + " ".join(sys.argv[1:]),
              "baselines": baselines, "rows": rows}
    from seqalignatac.atomic import write_json, write_text

    out = Path(args.out)
    write_json(out.with_suffix(".json"), result)
    lines = ["# Stage-2 tuning on sets that never see the reported pair's query labels", "",
             (f"Date {result['date']}; `{result['command']}`; {info['cpu_model']} x{info['cpu_count']}; load average "
             f"start {tuple(round(v, 2) for v in info['load_average_start'])}, end "
             f"{tuple(round(v, 2) for v in info['load_average_end'])}."), "",
             ("`reverse`: reference BMMC_D5T1 -> query BMMC_D6T1.  `depth`: BMMC_D6T1 alone, deeper half -> "
             "shallower half.  Arg-max accuracy / macro-F1; held-out = accuracy on the 10% held-out reference cells."),
             "", ("| configuration | LSI | reverse acc | reverse F1 | depth acc | depth F1 | mean acc | mean F1 | "
             "held-out (reverse) | seconds (reverse) |"), "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, b in baselines.items():
        lines.append(f"| {name} | | {b['reverse']['accuracy']:.3f} | {b['reverse']['macro_f1']:.3f} | "
                     f"{b['depth']['accuracy']:.3f} | {b['depth']['macro_f1']:.3f} | "
                     f"{(b['reverse']['accuracy'] + b['depth']['accuracy']) / 2:.3f} | "
                     f"{(b['reverse']['macro_f1'] + b['depth']['macro_f1']) / 2:.3f} | "
                     f"{b['reverse']['held_out_reference_accuracy']:.3f} | |")
    for r in rows:
        lines.append(f"| {r['name']} | {r['lsi_components']} | {r['reverse']['accuracy']:.3f} | {r['reverse']['macro_f1']:.3f} | "
                     f"{r['depth']['accuracy']:.3f} | {r['depth']['macro_f1']:.3f} | {r['mean_accuracy']:.3f} | "
                     f"{r['mean_macro_f1']:.3f} | {r['reverse']['held_out_reference_accuracy']:.3f} | "
                     f"{r['reverse']['seconds']} |")
    lines += ["", "Overrides per row: see the JSON file.  Unchanged fields keep GDAConfig's defaults."]
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
