#!/usr/bin/env python
"""The default LSI path on the Granja tuning pair: reference BMMC_D5T1 -> query BMMC_D6T1.

``prepare`` with its defaults (no option given), stage 1 ``lsi`` with its defaults, stage 2
``annotate --method gda`` with its defaults; scored on the D6T1 labels (accuracy and macro-F1 of
the most probable class, as benchmarks/stage2_granja.py).  Only this direction is run: the
query labels of D6T1 -> D5T1 are held out for the final check.

Run it with ``PYTHONPATH`` pointing at the checkout to measure (before/after a change):

    PYTHONPATH=src python benchmarks/default_path_tuning.py [--threads 2] [--out result.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _tuning_sets import DATA, LABEL, WORKDIR, donors  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workdir", default=str(WORKDIR))
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="also write the result here (JSON)")
    args = ap.parse_args()
    if not DATA.is_dir():
        sys.exit(f"real data not found at {DATA}")
    warnings.filterwarnings("ignore", category=UserWarning)

    import seqalignatac
    from seqalignatac.models.stage1.lsi import lsi
    from seqalignatac.models.stage2.api import annotate_full
    from seqalignatac.models.stage2.outputs import metrics_tables, query_truth
    from seqalignatac.pp.mapping import prepare

    t0 = time.perf_counter()
    d = donors(Path(args.workdir))
    acc, prep = prepare(d / "BMMC_D5T1.h5ad", d / "BMMC_D6T1.h5ad", LABEL, query_labels_key=LABEL)
    cells, lsi_summary = lsi(acc)
    res = annotate_full(cells, method="gda", seed=args.seed, threads=args.threads, progress=False)
    truth = query_truth(res.query, LABEL)
    pred = res.predictions.set_index("cell_id").loc[truth.index].reset_index()
    m, _, _ = metrics_tables(truth.reset_index(drop=True), pred)
    result = {
        "pair": "BMMC_D5T1 -> BMMC_D6T1",
        "seqalignatac": str(Path(seqalignatac.__file__).parent),
        "peaks_in_accessibility": int(acc.n_vars),
        "peaks_selected_for_sequence": prep.get("peaks_selected_for_sequence"),
        "lsi_dims": lsi_summary["dims"],
        "accuracy": m["argmax"]["accuracy"],
        "macro_f1": m["argmax"]["macro_f1"],
        "accuracy_with_unknown": m["accuracy"],
        "macro_f1_with_unknown": m["macro_f1"],
        "unknown_rate": m["unknown_rate"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    print(json.dumps(result, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
