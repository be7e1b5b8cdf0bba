"""The Granja 2019 bone-marrow benchmark data: reference/query splits and label levels.

Real data lives outside the repository (``../shared/data`` beside the checkout, or the folder
named by ``--data`` / ``SEQALIGNATAC_DATA``).  The matrix ships as MatrixMarket (peaks x cells,
fragment counts); ``seqalignatac convert --split-by Group`` turns it into one cells x peaks .h5ad
per donor.  Nothing here looks at a query's labels except to keep them for scoring afterwards.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
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
    "01": "Progenitor",
    "05": "Progenitor",
    "06": "Progenitor",
    "15": "Progenitor",
    "07": "GMP",
    "11": "Mono",
    "12": "Mono",
    "16": "B",
    "17": "B",
    "19": "T",
    "20": "T",
    "21": "T",
    "22": "T",
    "23": "T",
    "24": "T",
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


def cells_with_coarse(data_dir: Path | str | None, out: Path) -> Path:
    """``cells.tsv`` plus a ``coarse_label`` column (derived from ``BioClassification``)."""
    folder = Path(data_dir or default_data_dir()) / GRANJA_DIR
    src = folder / "cells.tsv"
    if not src.is_file():
        raise FileNotFoundError(f"{src}: missing; point --data (or SEQALIGNATAC_DATA) at the shared data folder")
    cells = pd.read_csv(src, sep="\t", dtype={"cell_id": str})
    cells[COARSE_KEY] = [coarse_label(v) for v in cells[LABEL_KEY]]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp-write")
    cells.to_csv(tmp, sep="\t", index=False)
    tmp.replace(out)
    return out


def convert_command(data_dir: Path | str | None, cells_tsv: Path, outdir: Path, python: str) -> list[str]:
    """``seqalignatac convert`` of the Granja matrix into one .h5ad per donor (``Group``)."""
    folder = Path(data_dir or default_data_dir()) / GRANJA_DIR
    return [
        python,
        "-m",
        "seqalignatac",
        "convert",
        "--matrix",
        str(folder / "counts_peaks_x_cells.mtx.gz"),
        "--peaks",
        str(folder / "peaks.tsv"),
        "--cells",
        str(cells_tsv),
        "--out",
        str(outdir),
        "--split-by",
        DONOR_KEY,
    ]


def load_donor(convert_dir: Path, donor: str) -> ad.AnnData:
    """One donor's cells x peaks AnnData as written by ``seqalignatac convert --split-by Group``."""
    a = ad.read_h5ad(Path(convert_dir) / f"{donor}.h5ad")
    a.X = sp.csr_matrix(a.X, dtype=np.float32)
    for col in (LABEL_KEY, COARSE_KEY):
        a.obs[col] = a.obs[col].astype(str)
    return a


def donors(direction: str) -> tuple[str, str]:
    """(reference donor, query donor) of a direction name."""
    if direction not in DIRECTIONS:
        raise ValueError(f"unknown direction {direction!r}; choose from {sorted(DIRECTIONS)}")
    return DIRECTIONS[direction]


def drop_types(ref: ad.AnnData, coarse_group: str) -> ad.AnnData:
    """The reference without every cell of one coarse group (for the unknown-type table)."""
    keep = ref.obs[COARSE_KEY] != coarse_group
    if keep.all():
        raise ValueError(f"no reference cell belongs to {coarse_group!r}")
    return ref[keep.values].copy()
