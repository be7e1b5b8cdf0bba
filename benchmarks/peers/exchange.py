"""The folder through which the benchmark hands data to a tool and takes its predictions back.

Plain files only (scipy ``.npz`` CSR, TSV, CSV), so a tool running in its own virtual environment
(another Python, older numpy/pandas) reads them without our package.  The query's true labels are
never written here: they stay with the runner, which scores the predictions afterwards.

Layout::

    ref_counts.npz    CSR float32, reference cells x peaks (fragment counts)
    query_counts.npz  CSR float32, query cells x peaks (same peaks, same order)
    ref_cells.tsv     cell_id <TAB> label
    query_cells.tsv   cell_id
    peaks.tsv         peak_id <TAB> chrom <TAB> start <TAB> end   (0-based BED)

Predictions: CSV ``cell_id,predicted_label,confidence`` (``Unknown`` for rejected cells).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

UNKNOWN = "Unknown"


def write(folder: Path, ref_x, ref_ids, ref_labels, query_x, query_ids, peaks: pd.DataFrame) -> Path:
    """Write one exchange folder (``peaks`` has index peak_id and columns chrom/start/end)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    sp.save_npz(folder / "ref_counts.npz", sp.csr_matrix(ref_x, dtype=np.float32))
    sp.save_npz(folder / "query_counts.npz", sp.csr_matrix(query_x, dtype=np.float32))
    pd.DataFrame({"cell_id": list(ref_ids), "label": list(ref_labels)}).to_csv(
        folder / "ref_cells.tsv", sep="\t", index=False
    )
    pd.DataFrame({"cell_id": list(query_ids)}).to_csv(folder / "query_cells.tsv", sep="\t", index=False)
    p = peaks[["chrom", "start", "end"]].copy()
    p.insert(0, "peak_id", list(peaks.index))
    p.to_csv(folder / "peaks.tsv", sep="\t", index=False)
    return folder


def read(folder: Path) -> dict:
    """Everything a tool may use: matrices, ids, reference labels, peaks (no query labels)."""
    folder = Path(folder)
    ref = pd.read_csv(folder / "ref_cells.tsv", sep="\t", dtype=str)
    query = pd.read_csv(folder / "query_cells.tsv", sep="\t", dtype=str)
    peaks = pd.read_csv(folder / "peaks.tsv", sep="\t", dtype={"peak_id": str, "chrom": str})
    return {
        "ref_x": sp.load_npz(folder / "ref_counts.npz").tocsr(),
        "query_x": sp.load_npz(folder / "query_counts.npz").tocsr(),
        "ref_ids": ref["cell_id"].to_numpy(),
        "ref_labels": ref["label"].to_numpy(),
        "query_ids": query["cell_id"].to_numpy(),
        "peaks": peaks,
    }


def write_predictions(path: Path, cell_ids, labels, confidence=None) -> None:
    """CSV ``cell_id,predicted_label,confidence`` written to a temporary name, then renamed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    conf = np.full(len(cell_ids), np.nan) if confidence is None else np.asarray(confidence, dtype=float)
    tmp = path.with_name(path.name + ".tmp-write")
    with open(tmp, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["cell_id", "predicted_label", "confidence"])
        for c, l, p in zip(cell_ids, labels, conf):
            w.writerow([c, l, "" if np.isnan(p) else f"{p:.6g}"])
    tmp.replace(path)


def read_predictions(path: Path) -> pd.DataFrame:
    df = pd.read_csv(path, dtype={"cell_id": str, "predicted_label": str})
    missing = {"cell_id", "predicted_label"} - set(df.columns)
    if missing:
        raise ValueError(f"{path}: missing column(s) {sorted(missing)}")
    return df.set_index("cell_id")
