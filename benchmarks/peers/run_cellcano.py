"""Run Cellcano 1.0.4 (PyPI ``Cellcano``) on an exchange folder; runs inside its own Python 3.8 venv.

``python run_cellcano.py --exchange DIR --outdir OUT`` writes Cellcano's documented inputs (a COO
matrix prefix: ``<prefix>.mtx.gz`` features x cells, ``<prefix>_genes.tsv``, ``<prefix>_barcodes.tsv``;
metadata CSV with a ``celltype`` column), then calls its own command line exactly as its README
shows, with every default (``--model MLP``, ``--fs F-test``, ``--num_features 3000``; predict does
the two-round knowledge-distillation step by default because the query has >= 1000 cells):

    Cellcano train -i ref -m ref_meta.csv -o OUT --prefix train_
    Cellcano predict -i query --trained_model OUT/train_MLP_model -o OUT --prefix predict_

One input differs from Cellcano's intended one: its features are meant to be ArchR *gene scores*
computed from fragment/BAM files (``Cellcano preprocess``, which drives ArchR through rpy2).  No
fragment files exist for this data, and R packages cannot be installed on this machine (CRAN and
Bioconductor are unreachable; ArchR is GitHub-only), so Cellcano gets the shared peak counts as its
features, through the same COO route it offers for any matrix.  Cellcano offers no unknown-type
output.  Its own seed (1993, in Cellcano/utils/_utils.py) is left as is.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import scipy.io

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402


def _write_coo(prefix: Path, x, cell_ids, feature_ids) -> None:
    with gzip.open(str(prefix) + ".mtx.gz", "wb") as fh:
        scipy.io.mmwrite(fh, x.T.tocoo())  # Cellcano reads features x cells and transposes
    pd.Series(list(feature_ids)).to_csv(str(prefix) + "_genes.tsv", sep="\t", header=False, index=False)
    pd.Series(list(cell_ids)).to_csv(str(prefix) + "_barcodes.tsv", sep="\t", header=False, index=False)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run Cellcano on an exchange folder.")
    ap.add_argument("--exchange", required=True, type=Path)
    ap.add_argument("--outdir", required=True, type=Path)
    args = ap.parse_args(argv)
    t0 = time.time()
    data = exchange.read(args.exchange)
    out = args.outdir.resolve()
    inputs = out / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    peaks = data["peaks"]["peak_id"].to_numpy()
    _write_coo(inputs / "ref", data["ref_x"], data["ref_ids"], peaks)
    _write_coo(inputs / "query", data["query_x"], data["query_ids"], peaks)
    pd.DataFrame({"celltype": data["ref_labels"]}, index=pd.Index(data["ref_ids"], name="barcode")).to_csv(
        inputs / "ref_meta.csv"
    )
    cellcano = str(Path(sys.executable).parent / "Cellcano")
    env = dict(os.environ, MPLBACKEND="Agg")
    subprocess.run(
        [
            cellcano,
            "train",
            "-i",
            str(inputs / "ref"),
            "-m",
            str(inputs / "ref_meta.csv"),
            "-o",
            str(out),
            "--prefix",
            "train_",
        ],
        check=True,
        env=env,
    )
    subprocess.run(
        [
            cellcano,
            "predict",
            "-i",
            str(inputs / "query"),
            "--trained_model",
            str(out / "train_MLP_model"),
            "-o",
            str(out),
            "--prefix",
            "predict_",
        ],
        check=True,
        env=env,
    )
    res = pd.read_csv(out / "predict_celltypes.csv", index_col=0)
    res.index = res.index.astype(str)
    pred = res.loc[list(data["query_ids"]), "pred_celltype"].astype(str).to_numpy()
    exchange.write_predictions(out / "predictions.csv", data["query_ids"], pred)
    (out / "cellcano_run.json").write_text(json.dumps({"tool": "Cellcano", "total_s": time.time() - t0}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
