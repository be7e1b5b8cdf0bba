#!/usr/bin/env python
"""How the LSI defaults (number of components, per-cell normalization) were chosen.

Data: the Granja 2019 BMMC matrix in ../shared/data (10,000 random peaks x 14,125 cells).
Donor BMMC_D6T1 (10,335 cells) plays the reference, BMMC_D5T1 the query.  LSI is fitted on
the reference and every setting is scored by 5-fold stratified kNN (k=15) accuracy and macro-F1
*inside the reference* (BioClassification labels).  No query label is looked at
(docs/method.md section 4).

    python benchmarks/stage1_lsi_defaults.py            # writes benchmarks/results/stage1_lsi_defaults.{md,json}
"""

from __future__ import annotations

import json
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parent.parent / "shared" / "data" / "granja2019_bmmc_hemato"


def load_granja(folder: Path = DATA):
    import anndata as ad
    import pandas as pd
    import scipy.io

    X = scipy.io.mmread(folder / "counts_peaks_x_cells.mtx.gz").T.tocsr()
    obs = pd.read_csv(folder / "cells.tsv", sep="\t", index_col=0)
    a = ad.AnnData(X, obs=obs)
    a.obs["domain"] = np.where(a.obs["Group"] == "BMMC_D6T1", "reference", "query")
    a.obs["label"] = a.obs["BioClassification"].astype(str)
    return a


def reference_cv(cells, k: int = 15, seed: int = 0) -> tuple[float, float]:
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier

    ref = cells[cells.obs["domain"] == "reference"]
    X, y = ref.obsm["X_seqalignatac"], ref.obs["label"].astype(str).to_numpy()
    pred = cross_val_predict(KNeighborsClassifier(k), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=seed))
    return float(accuracy_score(y, pred)), float(f1_score(y, pred, average="macro"))


def main() -> None:
    from seqalignatac.models.stage1 import lsi

    if not DATA.is_dir():
        sys.exit(f"real data not found at {DATA}")
    a = load_granja()
    rows = []
    for n in (10, 20, 30, 50, 128):
        for norm in ("l2", "none", "zscore"):
            t = time.time()
            cells, s = lsi(a, lsi_components=n, lsi_normalize=norm)
            acc, f1 = reference_cv(cells)
            rows.append(
                dict(
                    n_components=n,
                    normalize=norm,
                    dims=s["dims"],
                    dropped=s["dropped_components"],
                    accuracy=round(acc, 4),
                    macro_f1=round(f1, 4),
                    seconds=round(time.time() - t, 1),
                )
            )
            print(json.dumps(rows[-1]), flush=True)
    info = dict(
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        load_average=os.getloadavg(),
        cores=os.cpu_count(),
        command="python benchmarks/stage1_lsi_defaults.py",
    )
    out = HERE / "results" / "stage1_lsi_defaults"
    out.parent.mkdir(exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(dict(info=info, results=rows), indent=2) + "\n")
    lines = [
        "# LSI defaults: 5-fold kNN inside the Granja reference donor (no query labels)",
        "",
        f"- date {info['date']}, {info['cores']} cores, load average {tuple(round(x, 2) for x in info['load_average'])}",
        f"- command: `{info['command']}`",
        "- data: Granja 2019 BMMC, 10,000 random peaks; reference = BMMC_D6T1 (10,335 cells), 16 BioClassification types",
        "- score: 5-fold stratified kNN (k=15) on the LSI embedding of reference cells",
        "",
        "| components | normalize | dims kept | dropped (depth) | accuracy | macro-F1 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['n_components']} | {r['normalize']} | {r['dims']} | {r['dropped']} | {r['accuracy']:.3f} | "
        f"{r['macro_f1']:.3f} |"
        for r in rows
    ]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
