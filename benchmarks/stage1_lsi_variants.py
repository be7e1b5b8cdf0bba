#!/usr/bin/env python
"""Stage-1 LSI variants for cross-donor label transfer, chosen on the tuning sets only.

Tuning sets (benchmarks/_tuning_sets.py; the D5T1 labels of the reported D6T1 -> D5T1 pair are
never read): ``reverse`` (reference D5T1 -> query D6T1) and ``depth`` (D6T1, deeper half ->
shallower half).  Every variant is a set of ``seqalignatac.models.stage1.lsi`` keyword arguments; its
embedding is scored by (a) class-balanced logistic regression, (b) kNN (15, cosine) and (c) the
stage-2 GDA defaults (``annotate_full(method='gda', unknown='none')``, arg-max label), as
accuracy / macro-F1 on the query labels of each set.

    python benchmarks/stage1_lsi_variants.py [--variants NAME ...] [--gda-seeds 0 1] [--threads 1]
    # writes benchmarks/results/stage1_lsi_variants.{md,json} (with --variants: the other rows are kept)
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import machine_info
from _tuning_sets import SETS, accessibility_sets

RESULTS = ROOT / "benchmarks" / "results" / "stage1_lsi_variants"
# (name, lsi kwargs).  Round 1 (fit_on, size, depth cutoff, normalization, peak selection),
# round 2 (TF-IDF variants), round 3 (around the best of round 2).  A first round also tried a plain
# TF * (n / df) without any log: 0.09 accuracy everywhere (the rarest peaks dominate); removed.
# Round 1 also tried peak selection before the SVD (peaks open in >= 1 % / 3 % of the fit cells;
# ArchR-style iterative LSI on the 2,500 / 5,000 most variable peaks, reference and joint, and
# around the best of round 3): no gain anywhere, so lsi() no longer has it and those variants are
# gone from this list; their rows stay in benchmarks/results/stage1_lsi_variants.{md,json} as history.
J = {"lsi_fit_on": "all"}
PREVIOUS_DEFAULTS = {"lsi_fit_on": "reference", "lsi_tfidf": "log_tfidf"}
VARIANTS: list[tuple[str, dict]] = [
    ("reference fit (current default)", {}),
    ("joint fit (fit_on=all)", J),
    ("joint, 20 comps", {**J, "lsi_components": 20}),
    ("joint, 40 comps", {**J, "lsi_components": 40}),
    ("joint, zscore", {**J, "lsi_normalize": "zscore"}),
    ("joint, depth cutoff 0.5", {**J, "lsi_depth_corr_cutoff": 0.5}),
    ("joint, depth cutoff 1 (keep all)", {**J, "lsi_depth_corr_cutoff": 1.0}),
    ("joint, tf-logidf", {**J, "lsi_tfidf": "tf_logidf"}),
    ("reference, tf-logidf", {"lsi_tfidf": "tf_logidf"}),
    ("joint, logtf-logidf", {**J, "lsi_tfidf": "logtf_logidf"}),
    ("reference, logtf-logidf", {"lsi_tfidf": "logtf_logidf"}),
    ("joint, tf-logidf, depth cutoff 0.45", {**J, "lsi_tfidf": "tf_logidf", "lsi_depth_corr_cutoff": 0.45}),
    # round 3: around the best (joint logtf-logidf)
    ("joint, logtf-logidf, 20 comps", {**J, "lsi_tfidf": "logtf_logidf", "lsi_components": 20}),
    ("joint, logtf-logidf, 40 comps", {**J, "lsi_tfidf": "logtf_logidf", "lsi_components": 40}),
]


def score(cells, threads: int, gda_seeds: list[int]) -> dict:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier

    from seqalignatac import keys
    from seqalignatac.metrics import evaluate

    X = cells.obsm["X_seqalignatac"]
    ref = (cells.obs["domain"] == "reference").to_numpy()
    y = cells.obs[keys.labels_key_of(cells)].astype(str).to_numpy()
    out = {}
    for name, clf in (
        ("logreg", LogisticRegression(max_iter=3000, class_weight="balanced")),
        ("knn15", KNeighborsClassifier(15, metric="cosine")),
    ):
        p = clf.fit(X[ref], y[ref]).predict(X[~ref])
        m = evaluate(y[~ref], p)
        out[name] = (round(m["accuracy"], 4), round(m["macro_f1"], 4))
    if gda_seeds:
        from seqalignatac.models.stage2.api import annotate_full

        per_seed = []
        for seed in gda_seeds:
            q = annotate_full(cells, method="gda", unknown="none", seed=seed, threads=threads, progress=False).query
            m = evaluate(
                q.obs[keys.labels_key_of(cells)].astype(str).to_numpy(),
                q.obs["seqalignatac_best_label"].astype(str).to_numpy(),
            )
            per_seed.append((round(m["accuracy"], 4), round(m["macro_f1"], 4)))
        out["gda"] = tuple(round(float(v), 4) for v in np.mean(per_seed, axis=0))
        out["gda_per_seed"] = per_seed
    return out


def write(rows: list[dict], meta: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    scorers = [s for s in ("logreg", "knn15", "gda") if any(s in r["scores"][SETS[0]] for r in rows)]
    lines = [
        "# Stage-1 LSI variants (tuning sets only)",
        "",
        (
            f"{meta['date']}; `{meta['command']}`; machine: {meta['machine']['cpu_model']}, "
            f"{meta['machine']['cpu_count']} cores, load {meta['machine']['load_average_start']}."
        ),
        *[
            f"Rows not rerun by that command come from `{r['command']}` ({r['date']})."
            for r in meta.get("earlier_runs", [])
        ],
        "",
        (
            "Accuracy / macro-F1 on the query of each tuning set (reverse: D5T1 -> D6T1; depth: D6T1 deep -> shallow). "
            "`mean` = mean of the four numbers (acc and F1 on both sets) per scorer. logreg: class-balanced "
            "logistic regression; knn15: cosine kNN; gda: stage-2 defaults, arg-max label (unknown='none'), "
            f"mean over stage-2 seeds {meta['gda_seeds']}. A first round also tried a plain TF * (n / df) without any "
            "log (joint fit): 0.09 accuracy on both sets with every scorer; that variant was removed."
        ),
        "",
    ]
    head = (
        "| variant | lsi kwargs | dims | " + " | ".join(f"{s} reverse | {s} depth | {s} mean" for s in scorers) + " |"
    )
    lines += [head, "|" + " --- |" * (3 + 3 * len(scorers))]
    for r in rows:
        cells = [r["name"], "`" + json.dumps(r["kwargs"]) + "`", "/".join(str(r["dims"][s]) for s in SETS)]
        for s in scorers:
            v = [r["scores"][t].get(s) for t in SETS]
            if None in v:
                cells += ["", "", ""]
                continue
            cells += [f"{a:.3f} / {f:.3f}" for a, f in v]
            cells.append(f"{np.mean([x for p in v for x in p]):.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    RESULTS.with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--variants", nargs="*", help="names (or 0-based indices) to run; default all")
    ap.add_argument(
        "--gda-seeds",
        type=int,
        nargs="*",
        default=[0, 1],
        help="stage-2 seeds whose GDA scores are averaged (none: only logreg and kNN)",
    )
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    from seqalignatac.models.stage1.lsi import lsi

    chosen = VARIANTS
    if args.variants:
        chosen = [v for i, v in enumerate(VARIANTS) if v[0] in args.variants or str(i) in args.variants]
    meta = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python " + shlex.join(["benchmarks/stage1_lsi_variants.py", *sys.argv[1:]]),
        "gda_seeds": args.gda_seeds,
        "machine": machine_info(("seqalignatac", "numpy", "scipy", "scikit-learn", "torch")),
    }
    old = {}
    if args.variants and RESULTS.with_suffix(".json").exists():  # a partial rerun keeps the other rows
        prev = json.loads(RESULTS.with_suffix(".json").read_text())
        old = {r["name"]: r for r in prev["rows"]}
        meta["earlier_runs"] = [
            *prev["meta"].get("earlier_runs", []),
            {k: prev["meta"][k] for k in ("date", "command")},
        ]
    sets = accessibility_sets()
    for name, kw in chosen:
        row = {"name": name, "kwargs": kw, "scores": {}, "dims": {}, "seconds": {}, "date": meta["date"]}
        for sname in SETS:
            t = time.time()
            # Variants are overrides of the defaults of that time (reference fit, log-TF-IDF).
            cells, s = lsi(sets[sname], **{**PREVIOUS_DEFAULTS, **kw})
            row["dims"][sname] = s["dims"]
            row["scores"][sname] = score(cells, args.threads, args.gda_seeds)
            row["seconds"][sname] = round(time.time() - t, 1)
        old[name] = row
        print(name, json.dumps(row["scores"]), flush=True)
        order = [v[0] for v in VARIANTS]
        write(sorted(old.values(), key=lambda r: order.index(r["name"]) if r["name"] in order else len(order)), meta)


if __name__ == "__main__":
    main()
