"""Run scMINGLE 1.1.0 (PyPI ``scMINGLE``) on an exchange folder; runs inside its own venv.

``python run_scmingle.py --exchange DIR --outdir OUT [--uncover-novel]`` writes
``OUT/predictions.csv`` (``cell_id,predicted_label,confidence``) and ``OUT/scmingle_run.json``.

Defaults: everything of ``scMINGLE.predict`` as released (cl_model='default', batch_size=256,
num_epochs=150, lr=1e-4, k_neighbor=1; inside it ``cl_train``: target_samples=300, masking 0.15,
hidden 144, outputs 16, 100 epochs, lr 1e-3), device 'cpu'; source: the signatures in
scMINGLE/network.py of the 1.1.0 wheel.  ``uncover_novel`` (the convex-hull "Novel type" test) is
off by default and switched on only for the unknown-type table.

Facts about the release that shape this wrapper (read in the wheel):
- ``predict`` needs a label column in the *query* too (its LabelEncoder transforms it to score the
  run); we fill it with a placeholder (the first reference class), so no query label reaches it.
- It densifies both matrices (``toarray()``) and builds dense n x n adjacency matrices.
- The ``explainer`` argument is ignored: the GNNExplainer interpretation (200 epochs over the
  whole graph) always runs, *after* the annotations are written, and it does not change them.
  We honour the documented ``explainer=False`` by stopping ``predict`` when it reaches that step
  (``--with-explainer`` runs it in full), so wall time and memory cover annotation only.
- With ``uncover_novel=True`` the flag is written to a new column ``annotation`` = 'Novel type'
  (not to the prediction column); we map it to ``Unknown``.
- Randomness comes from unseeded numpy/torch calls; we seed numpy, random and torch with 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")  # cl_train calls plt.show()

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402

SEED = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run scMINGLE on an exchange folder.")
    ap.add_argument("--exchange", required=True, type=Path)
    ap.add_argument("--outdir", required=True, type=Path)
    ap.add_argument("--uncover-novel", action="store_true")
    ap.add_argument("--with-explainer", action="store_true", help="also run the interpretation step")
    args = ap.parse_args(argv)
    import scMINGLE
    import scMINGLE.network as network

    class _StopBeforeExplainer(Exception):
        pass

    if not args.with_explainer:

        def _no_explainer(*_a, **_k):
            raise _StopBeforeExplainer

        network.Explainer = _no_explainer  # predict() looks the name up in its module at call time

    np.random.seed(SEED)
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))

    data = exchange.read(args.exchange)
    var = pd.DataFrame({"peak": data["peaks"]["peak_id"].to_numpy()}, index=data["peaks"]["peak_id"].to_numpy())
    train = ad.AnnData(
        X=data["ref_x"], obs=pd.DataFrame({"cell_type": data["ref_labels"]}, index=data["ref_ids"]), var=var.copy()
    )
    placeholder = np.full(len(data["query_ids"]), sorted(set(data["ref_labels"]))[0], dtype=object)
    test = ad.AnnData(
        X=data["query_x"], obs=pd.DataFrame({"cell_type": placeholder}, index=data["query_ids"]), var=var.copy()
    )

    args.outdir.mkdir(parents=True, exist_ok=True)
    save_path = str(args.outdir) + os.sep
    t0 = time.time()
    try:
        scMINGLE.predict(
            train,
            test,
            "cpu",
            cell_row="cell_type",
            peak_col="peak",
            explainer=args.with_explainer,
            uncover_novel=args.uncover_novel,
            save_path=save_path,
        )
    except _StopBeforeExplainer:
        pass
    total = time.time() - t0
    result_csv = args.outdir / "MINGLE" / "result.csv"
    res = pd.read_csv(result_csv)
    tail = res.iloc[-len(data["query_ids"]) :]  # rows: resampled reference, then the query
    pred = tail["Annotations of MINGLE"].astype(str).to_numpy()
    if args.uncover_novel and "annotation" in tail.columns:
        pred = np.where(tail["annotation"].astype(str).to_numpy() == "Novel type", exchange.UNKNOWN, pred)
    exchange.write_predictions(args.outdir / "predictions.csv", data["query_ids"], pred)
    info = {
        "tool": "scMINGLE",
        "total_s": total,
        "annotation_s": os.path.getmtime(result_csv) - t0,
        "uncover_novel": args.uncover_novel,
        "explainer_run": args.with_explainer,
        "seed": SEED,
    }
    (args.outdir / "scmingle_run.json").write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
