"""Read and check the user's .h5ad files (cells x peaks) with clear errors."""

from __future__ import annotations

import os
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac.errors import InputError, require_file
from seqalignatac.io.peaks import coords_from_var, looks_like_peak_ids

# What to do about an unreadable user file; callers reading a step's output name that step instead.
NOT_H5AD_HINT = "is it an AnnData file? Use `seqalignatac convert` for MatrixMarket or 10x input"


def read_h5ad(path: str | os.PathLike, what: str = "input .h5ad", hint: str = NOT_H5AD_HINT, backed: bool = False):
    """``anndata.read_h5ad`` with one-line InputErrors for missing, unreadable or non-h5ad files.

    ``what`` names the file in the "does not exist" message; ``hint`` says what to do when it is
    not an AnnData file; ``backed`` opens it read-only on disk (only ``obs``/``var`` are loaded).
    """
    import anndata as ad

    p = require_file(path, what)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ad.read_h5ad(p, backed="r" if backed else None)
    except Exception as exc:  # h5py/anndata raise many types for a bad file
        first_line = (str(exc).splitlines() or [""])[0][:160]
        raise InputError(f"cannot read as .h5ad ({type(exc).__name__}: {first_line}); {hint}", p) from None


def csr_matrix(adata, path) -> sp.csr_matrix:
    """``adata.X`` as CSR (dense and CSC inputs converted); InputError when absent or empty."""
    x = adata.X
    if x is None:
        raise InputError("has no X matrix", path)
    if not sp.issparse(x):
        x = sp.csr_matrix(np.asarray(x))
    x = sp.csr_matrix(x) if not isinstance(x, sp.csr_matrix) else x
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise InputError(f"matrix is empty ({x.shape[0]} cells x {x.shape[1]} peaks)", path)
    check_counts(x, path)
    if x.nnz == 0 or not np.any(x.data):
        raise InputError(f"matrix has no non-zero values ({x.shape[0]} cells x {x.shape[1]} peaks)", path)
    return x


def check_counts(x: sp.spmatrix, path) -> None:
    """NaN, infinite or negative entries would binarize silently (NaN -> 1, -3 -> 1): refuse them, counted."""
    data = np.asarray(x.data)
    if data.dtype.kind in "fc":
        bad = ~np.isfinite(data)
        if bad.any():
            raise InputError(
                f"matrix has {int(bad.sum())} NaN or infinite entries (of {x.nnz} stored); "
                "expected counts or 0/1 accessibility: fix or drop those cells/peaks",
                path,
            )
    if data.dtype.kind in "fi":
        neg = data < 0
        if neg.any():
            raise InputError(
                f"matrix has {int(neg.sum())} negative entries; expected counts or 0/1 accessibility", path
            )


def check_unique(adata, path) -> None:
    """Duplicate cell or peak names are an input error (they make the mapping ambiguous)."""
    for axis, names in (("cell", adata.obs_names), ("peak", adata.var_names)):
        dup = names.duplicated()
        if dup.any():
            first = names[dup][0]
            raise InputError(
                f"{int(dup.sum())} duplicate {axis} names (first: '{first}'); "
                f"make them unique (e.g. adata.{'obs' if axis == 'cell' else 'var'}_names_make_unique())",
                path,
            )


def peak_coords(adata, path) -> pd.DataFrame:
    """Coordinates of the peaks (columns) of a cells x peaks AnnData; detects a transposed file."""
    has_cols = any(c in adata.var.columns for c in ("chrom", "chr", "seqnames"))
    if not has_cols and not looks_like_peak_ids(adata.var_names) and looks_like_peak_ids(adata.obs_names):
        raise InputError(
            "the rows (obs) look like peaks and the columns like cells; expected cells x peaks: "
            "transpose it (adata.T) before use",
            path,
        )
    coords = coords_from_var(adata.var, path)
    check_distinct_coords(coords, adata.var_names, path)
    return coords


def check_distinct_coords(coords: pd.DataFrame, names, path) -> None:
    """Two peak names on one interval would be one reference peak counted twice: refuse, naming both."""
    dup = coords.duplicated(["chrom", "start", "end"], keep=False).to_numpy()
    if not dup.any():
        return
    rows = np.flatnonzero(dup)
    first = coords.iloc[rows[0]]
    same = rows[
        (
            (coords.iloc[rows]["chrom"] == first["chrom"])
            & (coords.iloc[rows]["start"] == first["start"])
            & (coords.iloc[rows]["end"] == first["end"])
        ).to_numpy()
    ]
    n_extra = int(coords.duplicated(["chrom", "start", "end"]).sum())
    raise InputError(
        f"peaks '{names[same[0]]}' and '{names[same[1]]}' have the same coordinates "
        f"{first['chrom']}:{first['start']}-{first['end']} ({n_extra} duplicate peak(s) in all); "
        "keep one of them or sum their counts",
        path,
    )


def labels(adata, key: str, path, what: str = "label key") -> pd.Series:
    """``obs[key]`` as strings with NaN for missing; InputError if absent or all missing."""
    if key not in adata.obs.columns:
        cols = ", ".join(map(str, adata.obs.columns[:20])) or "(none)"
        raise InputError(f"{what} '{key}' is not an obs column; available: {cols}", path)
    s = adata.obs[key]
    out = pd.Series(s.astype(object).where(s.notna(), None).to_numpy(), index=adata.obs_names, dtype=object)
    out = out.map(
        lambda v: None if v is None or (isinstance(v, str) and v.strip() in ("", "nan", "NaN", "NA")) else str(v)
    )
    if out.isna().all():
        raise InputError(f"{what} '{key}' has no labels (every value is missing)", path)
    return out


def check_reference_classes(lab: pd.Series, key: str, path) -> None:
    """Refuse reference labels that cannot train a classifier, before any work starts.

    The reserved ``Unknown`` (in any case or spacing), classes that differ only by case or
    surrounding spaces (merging them silently would be a wrong result), and a single class.
    """
    from seqalignatac.metrics import UNKNOWN

    names = pd.Series(pd.unique(lab.dropna()), dtype=object).astype(str)
    folded = names.str.strip().str.casefold()
    reserved = names[folded == UNKNOWN.casefold()]
    if len(reserved):
        raise InputError(
            f"obs column '{key}': the label {reserved.iloc[0]!r} is reserved for cells the method calls "
            "unknown; rename that class in the reference",
            path,
        )
    groups = names.groupby(folded.to_numpy()).agg(list)
    clash = groups[groups.map(len) > 1]
    if len(clash):
        variants = ", ".join(repr(v) for v in sorted(clash.iloc[0]))
        raise InputError(
            f"obs column '{key}': labels {variants} differ only by case or spaces "
            f"({len(clash)} such group(s)); make them identical or clearly distinct",
            path,
        )
    if len(names) < 2:
        only = names.iloc[0] if len(names) else ""
        raise InputError(
            f"obs column '{key}': the reference has a single class ({only!r}); annotation needs at "
            "least 2 labelled cell types",
            path,
        )
