"""MatrixMarket (+ peaks + cells tables) or a 10x Cell Ranger ATAC peak matrix -> .h5ad (cells x peaks).

Inputs understood:
* ``--matrix m.mtx[.gz] --peaks peaks.bed|peaks.tsv --cells cells.tsv`` (either orientation: the
  axis whose length matches the cells table is taken as cells);
* ``--matrix filtered_peak_bc_matrix/`` (10x folder: matrix.mtx[.gz], peaks.bed[.gz] or
  features.tsv[.gz], barcodes.tsv[.gz]);
* ``--matrix filtered_peak_bc_matrix.h5`` (10x HDF5; only 'Peaks' features of a multiome file).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac import keys
from seqalignatac.errors import InputError, require_file
from seqalignatac.io.atomic import write_h5ad
from seqalignatac.io.h5ad import check_counts
from seqalignatac.io.peaks import parse_peak_ids, peak_ids, read_peak_table

log = logging.getLogger(__name__)


def _open_text(path: str):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path)


def read_cells_table(path: str | os.PathLike) -> pd.DataFrame:
    """Cells table: one id per line (10x barcodes.tsv), or a TSV/CSV with a header (first column = id)."""
    p = require_file(path, "cells file")
    with _open_text(p) as fh:
        lines = [ln.rstrip("\n\r") for ln in fh if ln.strip()]
    if not lines:
        raise InputError("cells file is empty", p)
    sep = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    first = lines[0].split(sep)
    header_words = {"barcode", "barcodes", "cell", "cells", keys.CELL_ID, "cellid", "cell_name", "obs_names", ""}
    if len(first) > 1 or first[0].strip().lower() in header_words:
        rows = [ln.split(sep) for ln in lines[1:]]
        bad = [i for i, r in enumerate(rows) if len(r) != len(first)]
        if bad:
            raise InputError(f"line {bad[0] + 2} has {len(rows[bad[0]])} fields, the header has {len(first)}", p)
        df = pd.DataFrame(rows, columns=[c.strip() for c in first])
        idcol = df.columns[0]
        df.index = df.pop(idcol).astype(str).to_numpy()
        for c in df.columns:  # numbers stay numbers (FRIP, TotalReads, UMAP1 ...)
            num = pd.to_numeric(df[c], errors="coerce")
            if num.notna().all():
                df[c] = num
    else:
        df = pd.DataFrame(index=[ln.split(sep)[0] for ln in lines])
    if len(df) == 0:
        raise InputError("cells file lists no cells", p)
    df.index.name = None
    return df


def _find(folder: Path, *names: str) -> str | None:
    for n in names:
        for cand in (folder / n, folder / (n + ".gz")):
            if cand.exists():
                return str(cand)
    return None


def _read_mtx(path: str) -> sp.csr_matrix:
    import scipy.io

    p = require_file(path, "matrix file")
    try:
        with _open_text(p) as fh:
            head = fh.readline()
        if not head.startswith("%%MatrixMarket"):
            raise ValueError("no %%MatrixMarket header")
        with open(p, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with gzip.open(p, "rb") if gz else open(p, "rb") as fh:
            m = scipy.io.mmread(fh)
    except (ValueError, OSError, EOFError, IndexError) as exc:
        raise InputError(f"not a readable MatrixMarket file ({str(exc).splitlines()[0][:120]})", p) from None
    return sp.csr_matrix(m)


def _features_10x(path: str) -> pd.DataFrame:
    """10x features.tsv (id, name, type[, chrom, start, end]) or peaks.bed -> peak table."""
    if os.path.basename(path).startswith("features"):
        with _open_text(path) as fh:
            rows = [ln.rstrip("\n").split("\t") for ln in fh if ln.strip()]
        df = pd.DataFrame({"id": [r[0] for r in rows], "type": [r[2] if len(r) > 2 else "Peaks" for r in rows]})
        return df
    return read_peak_table(path, "peaks file")


def _read_10x_h5(path: str):
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"not a readable HDF5 file ({exc})", path) from None
    with f:
        group = (
            f["matrix"]
            if "matrix" in f
            else next((f[k] for k in f if isinstance(f[k], h5py.Group) and "indptr" in f[k]), None)
        )
        if group is None or not all(k in group for k in ("data", "indices", "indptr", "shape", "barcodes")):
            raise InputError(
                "not a 10x peak matrix .h5 (expected a 'matrix' group with data, indices, indptr, "
                "shape, barcodes, features)",
                path,
            )
        n_feat, n_bc = (int(v) for v in group["shape"][:])
        x = sp.csr_matrix((group["data"][:], group["indices"][:], group["indptr"][:]), shape=(n_bc, n_feat))
        barcodes = group["barcodes"][:].astype(str)
        if "features" in group:
            ids = group["features"]["id"][:].astype(str)
            types = (
                group["features"]["feature_type"][:].astype(str)
                if "feature_type" in group["features"]
                else np.full(len(ids), "Peaks")
            )
        elif "peaks" in group:
            ids, types = group["peaks"][:].astype(str), np.full(n_feat, "Peaks")
        else:
            raise InputError("10x .h5 has no 'features' (or 'peaks') dataset naming the peaks", path)
    return x, barcodes, pd.DataFrame({"id": ids, "type": types})


def read_matrix(matrix, peaks=None, cells=None, cells_axis: str = "auto"):
    """Return an AnnData (cells x peaks) from any supported input (see module doc)."""
    mpath = os.fspath(matrix)
    if not os.path.exists(mpath):
        raise InputError("matrix does not exist; check the path", mpath)
    peak_table = None
    if os.path.isdir(mpath):
        folder = Path(mpath)
        mtx = _find(folder, "matrix.mtx")
        if mtx is None:
            raise InputError("folder has no matrix.mtx[.gz]; expected a 10x filtered_peak_bc_matrix/ folder", mpath)
        peaks = peaks or _find(folder, "peaks.bed", "features.tsv")
        cells = cells or _find(folder, "barcodes.tsv")
        if peaks is None or cells is None:
            raise InputError("10x folder needs peaks.bed (or features.tsv) and barcodes.tsv", mpath)
        x = _read_mtx(mtx)
        peak_table = _features_10x(peaks)
        source, axis_default = mtx, "columns"
    elif mpath.endswith(".h5"):
        x, barcodes, feats = _read_10x_h5(mpath)
        keep = (feats["type"] == "Peaks").to_numpy()
        if not keep.any():
            raise InputError("10x .h5 has no 'Peaks' features", mpath)
        x = x[:, np.flatnonzero(keep)] if not keep.all() else x
        coords = parse_peak_ids(feats.loc[keep, "id"], mpath)
        obs = pd.DataFrame(index=barcodes)
        if cells is not None:
            obs = read_cells_table(cells)
            if len(obs) != x.shape[0]:
                raise InputError(f"cells file has {len(obs)} cells, the .h5 {x.shape[0]} barcodes", cells)
        return _finish(x, coords, obs, mpath)
    else:
        if peaks is None or cells is None:
            raise InputError("a MatrixMarket matrix needs --peaks (BED/TSV) and --cells (TSV)", mpath)
        x = _read_mtx(mpath)
        source, axis_default = mpath, None
    if peak_table is None:
        peak_table = read_peak_table(peaks, "peaks file")
    if "id" in peak_table.columns and "chrom" not in peak_table.columns:  # 10x features.tsv
        keep = np.flatnonzero((peak_table["type"] == "Peaks").to_numpy())
        rows_are_features = (
            axis_default == "columns"
            or cells_axis == "columns"
            or (x.shape[0] == len(peak_table) and x.shape[1] != len(peak_table))
        )
        if len(keep) < len(peak_table):
            x = x[keep] if rows_are_features else x[:, keep]
        peak_table = parse_peak_ids(peak_table.loc[keep, "id"], peaks)
    obs = read_cells_table(cells)
    x = _orient(
        x,
        len(peak_table),
        len(obs),
        cells_axis if cells_axis != "auto" else (axis_default or "auto"),
        source,
        peaks,
        cells,
    )
    return _finish(x, peak_table, obs, source)


def _orient(x: sp.csr_matrix, n_peaks: int, n_cells: int, cells_axis: str, source, peaks, cells) -> sp.csr_matrix:
    r, c = x.shape
    if cells_axis == "auto":
        if (r, c) == (n_cells, n_peaks) and (c, r) != (n_cells, n_peaks):
            cells_axis = "rows"
        elif (c, r) == (n_cells, n_peaks):
            cells_axis = "columns"  # includes the square case: MatrixMarket/10x store peaks x cells
            if r == c:
                log.warning("square matrix: taking columns as cells (10x convention); use --cells-axis to override")
    expect = (n_cells, n_peaks) if cells_axis == "rows" else (n_peaks, n_cells)
    if cells_axis not in ("rows", "columns") or (r, c) != expect:
        raise InputError(
            f"matrix is {r} x {c}, but the peaks file lists {n_peaks} peaks and the cells file "
            f"{n_cells} cells; check that they belong together",
            source,
        )
    return x.T.tocsr() if cells_axis == "columns" else x


def _finish(x: sp.csr_matrix, peak_table: pd.DataFrame, obs: pd.DataFrame, source):
    import anndata as ad

    if x.shape[0] == 0 or x.shape[1] == 0 or x.nnz == 0:
        raise InputError(f"matrix is empty ({x.shape[0]} cells x {x.shape[1]} peaks, {x.nnz} non-zeros)", source)
    check_counts(x, source)
    var = peak_table.copy()
    var.index = peak_ids(var["chrom"], var["start"], var["end"])
    for axis, names in (("cell", pd.Index(obs.index)), ("peak", var.index)):
        dup = names.duplicated()
        if dup.any():
            raise InputError(f"{int(dup.sum())} duplicate {axis} names (first: '{names[dup][0]}')", source)
    var = var.drop(columns=[c for c in ("name",) if c in var.columns and (var[c] == var.index).all()])
    for c in var.columns:
        if var[c].dtype == object:
            num = pd.to_numeric(var[c], errors="coerce")
            var[c] = num if num.notna().all() else var[c].astype(str)
    x = x.astype(np.float32)
    x.sum_duplicates()
    x.eliminate_zeros()
    return ad.AnnData(X=x, obs=obs, var=var)


def _safe_name(value: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(value)).strip("._") or "unnamed"


def convert(matrix, out, peaks=None, cells=None, split_by: str | None = None, cells_axis: str = "auto") -> list[str]:
    """Convert and write; with ``split_by`` ``out`` is a folder holding ``<value>.h5ad`` per value."""
    adata = read_matrix(matrix, peaks, cells, cells_axis)
    if split_by is None:
        write_h5ad(adata, out)
        return [os.fspath(out)]
    if split_by not in adata.obs.columns:
        cols = ", ".join(map(str, adata.obs.columns[:20])) or "(none: the cells file has only ids)"
        raise InputError(
            f"--split-by column '{split_by}' is not in the cells table; available: {cols}", cells or matrix
        )
    values = adata.obs[split_by]
    missing = int(values.isna().sum())
    if missing:
        log.warning("%d cells with no '%s' value are not written", missing, split_by)
    groups = pd.unique(values.dropna().astype(str))
    names = {g: _safe_name(g) for g in groups}
    if len(set(names.values())) < len(names):
        raise InputError(f"values of '{split_by}' collide as file names ({sorted(names.values())})", cells or matrix)
    outdir = Path(out)
    written = []
    for g in groups:
        mask = (values.astype(str) == g).to_numpy() & values.notna().to_numpy()
        path = outdir / f"{names[g]}.h5ad"
        write_h5ad(adata[mask].copy(), path)
        written.append(str(path))
    return written
