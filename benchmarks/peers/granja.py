"""The Granja 2019 bone-marrow benchmark data: reference/query splits and label levels.

Real data lives outside the repository (``../shared/data`` beside the checkout, or the folder
named by ``--data`` / ``SEQALIGNATAC_DATA``).  The matrix ships as MatrixMarket (peaks x cells,
fragment counts); this module turns it into cells x peaks AnnData per donor.  Nothing here looks
at a query's labels except to store them in ``obs`` for scoring afterwards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.io
import scipy.sparse as sp

GRANJA_DIR = "granja2019_bmmc_hemato"
LABEL_KEY = "BioClassification"
COARSE_KEY = "coarse_label"
DONOR_KEY = "Group"
DONORS = ("BMMC_D6T1", "BMMC_D5T1")

# Directions of the benchmark: (name, reference donor, query donor).
DIRECTIONS = {
    "D6toD5": ("BMMC_D6T1", "BMMC_D5T1"),
    "D5toD6": ("BMMC_D5T1", "BMMC_D6T1"),
}

# The 6 coarse groups of issue 7, by the numeric prefix of the 16 fine labels.
_COARSE_BY_PREFIX = {
    "01": "Progenitor", "05": "Progenitor", "06": "Progenitor", "15": "Progenitor",
    "07": "GMP",
    "11": "Mono", "12": "Mono",
    "16": "B", "17": "B",
    "19": "T", "20": "T", "21": "T", "22": "T", "23": "T", "24": "T",
    "25": "NK",
}


def default_data_dir() -> Path:
    """``$SEQALIGNATAC_DATA`` if set, else ``../shared/data`` beside the repository."""
    env = os.environ.get("SEQALIGNATAC_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data"


def coarse_label(fine: str) -> str:
    """Map a Granja ``BioClassification`` (e.g. ``11_CD14.Mono.1``) to its coarse group."""
    m = re.match(r"^(\d\d)_", str(fine))
    if not m or m.group(1) not in _COARSE_BY_PREFIX:
        raise ValueError(f"label {fine!r} has no coarse group (expected one of the 16 Granja types)")
    return _COARSE_BY_PREFIX[m.group(1)]


def load_granja(data_dir: Path | str | None = None) -> ad.AnnData:
    """All 14,125 cells x 10,000 peaks, CSR float32 counts, with ``obs`` from ``cells.tsv``.

    ``var`` carries ``chrom``/``start``/``end`` (0-based BED) and ``var_names`` are
    ``chrom:start-end``; ``obs['coarse_label']`` holds the 6-group label.
    """
    folder = Path(data_dir or default_data_dir()) / GRANJA_DIR
    mtx = folder / "counts_peaks_x_cells.mtx.gz"
    for f in (mtx, folder / "cells.tsv", folder / "peaks.tsv"):
        if not f.is_file():
            raise FileNotFoundError(f"{f}: missing; point --data (or SEQALIGNATAC_DATA) at the shared data folder")
    cells = pd.read_csv(folder / "cells.tsv", sep="\t", index_col="cell_id")
    peaks = pd.read_csv(folder / "peaks.tsv", sep="\t")
    x = sp.csr_matrix(scipy.io.mmread(mtx).T, dtype=np.float32)
    if x.shape != (len(cells), len(peaks)):
        raise ValueError(f"{mtx}: shape {x.shape[::-1]} does not match peaks.tsv x cells.tsv")
    var = pd.DataFrame(
        {"chrom": peaks["chrom"].astype(str).values,
         "start": peaks["chromStart"].astype(np.int64).values,
         "end": peaks["chromEnd"].astype(np.int64).values},
        index=pd.Index(
            peaks["chrom"].astype(str) + ":" + peaks["chromStart"].astype(str) + "-" + peaks["chromEnd"].astype(str),
            name=None,
        ),
    )
    obs = cells.copy()
    obs.index = obs.index.astype(str)
    obs[COARSE_KEY] = [coarse_label(v) for v in obs[LABEL_KEY]]
    for col in (LABEL_KEY, COARSE_KEY, DONOR_KEY):
        obs[col] = obs[col].astype(str)
    return ad.AnnData(X=x, obs=obs, var=var)


def split(adata: ad.AnnData, direction: str) -> tuple[ad.AnnData, ad.AnnData]:
    """Reference and query AnnData for one direction (copies, same peaks)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose from {sorted(DIRECTIONS)}")
    ref_donor, query_donor = DIRECTIONS[direction]
    ref = adata[adata.obs[DONOR_KEY] == ref_donor].copy()
    query = adata[adata.obs[DONOR_KEY] == query_donor].copy()
    return ref, query


def drop_types(ref: ad.AnnData, coarse_group: str) -> ad.AnnData:
    """The reference without every cell of one coarse group (for the unknown-type table)."""
    keep = ref.obs[COARSE_KEY] != coarse_group
    if keep.all():
        raise ValueError(f"no reference cell belongs to {coarse_group!r}")
    return ref[keep.values].copy()
