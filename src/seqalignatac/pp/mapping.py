"""Harmonize the query onto the reference peak set, binarize, drop peaks with no signal.

SANGO's recipe (method.md section 2): both peak sets are trimmed to a fixed width W around the
midpoint; a query peak maps to the reference peak whose window it overlaps by more than W/2 (the
largest overlap when several do); query peaks mapped onto the same reference peak are OR-ed.
Reference coordinates are canonical. Everything is sparse and done in row chunks, so 100,000 cells
x 200,000 peaks stays well under 8 GB.

The accessibility matrix keeps every mapped reference peak open in at least ``min_cells`` cells
(LSI and stage 2 use them all).  Only the sequence route (extract -> embed -> stage-1 network) has
a cost per peak, so a subset is marked for it (``var[keys.SEQUENCE_PEAK]``, written to peaks.bed):
every peak when there are at most ``max_sequence_peaks``, else the most frequently open ones.
"""

from __future__ import annotations

import logging
import math
import os

import click
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac import keys
from seqalignatac.errors import InputError
from seqalignatac.io import h5ad
from seqalignatac.io.atomic import publish_dir, write_h5ad, write_json
from seqalignatac.io.peaks import peak_ids, reconcile_chroms, to_pyranges, trimmed, write_bed
from seqalignatac.params import FRACTION_BELOW_ONE, NON_NEGATIVE_INT, POSITIVE_INT, check_all, int_range

log = logging.getLogger(__name__)

DEFAULT_OVERLAP_WIDTH = 500
DEFAULT_MIN_CELLS = 1  # accessibility keeps every peak with any signal
# The sequence route's cap.  Its cost grows with the peaks: extract is not the bound (500,000 peaks
# in 9 s, benchmarks/results/extract_throughput.md), NT embedding is (v2-50m ~1 peak/s on CPU,
# embed_throughput_cpu.md: a GPU job), and 100,000 peaks is the scale stage 1 was measured at
# (1,000,000 cells x 100,000 peaks: 10.1 GB, throughput_table.md).  Most peak sets fit whole.
DEFAULT_MAX_SEQUENCE_PEAKS = 100_000
# An extra floor on the sequence selection only: 0, since the cap bounds the cost and a fixed 1 %
# dropped 73 % of the Granja peaks whatever their number (docs/inputs.md).
DEFAULT_MIN_PEAK_FRAC = 0.0
# Option ranges, shared by the CLI, the API and `run`.
PREPARE_RANGES: dict[str, click.ParamType] = {
    "overlap_width": int_range(2),  # W/2 must be at least one base
    "min_peak_frac": FRACTION_BELOW_ONE,
    "min_cells": NON_NEGATIVE_INT,
    "max_sequence_peaks": POSITIVE_INT,
}
ROW_CHUNK = 20000
PREPARE_OUTPUTS = (keys.ACCESSIBILITY, keys.PEAKS_BED, keys.PREPARE_SUMMARY)


def _binarize(x: sp.csr_matrix) -> sp.csr_matrix:
    """0/1 uint8 CSR with sorted indices and no explicit zeros (reuses the index arrays)."""
    x.eliminate_zeros()
    if not x.has_canonical_format:
        x.sum_duplicates()
    return sp.csr_matrix((np.ones(x.nnz, dtype=np.uint8), x.indices, x.indptr), shape=x.shape)


def _merge_columns(x: sp.csr_matrix, colmap: np.ndarray, n_new: int) -> sp.csr_matrix:
    """Send column j to ``colmap[j]`` (-1 drops it), OR-ing columns that land together. Row chunks."""
    indptr = [np.zeros(1, dtype=np.int64)]
    indices, total = [], 0
    for lo in range(0, x.shape[0], ROW_CHUNK):
        sub = x[lo : lo + ROW_CHUNK]
        rows = np.repeat(np.arange(sub.shape[0], dtype=np.int32), np.diff(sub.indptr))
        cols = colmap[sub.indices]
        keep = cols >= 0
        m = sp.coo_matrix(
            (np.ones(int(keep.sum()), dtype=np.uint8), (rows[keep], cols[keep])), shape=(sub.shape[0], n_new)
        ).tocsr()
        m.sum_duplicates()
        indices.append(m.indices.astype(np.int32, copy=False))
        indptr.append(m.indptr[1:].astype(np.int64) + total)
        total += m.nnz
    return sp.csr_matrix(
        (np.ones(total, dtype=np.uint8), np.concatenate(indices), np.concatenate(indptr)), shape=(x.shape[0], n_new)
    )


def _fill_kept(
    x: sp.csr_matrix, newcol: np.ndarray, out_indices: np.ndarray, out_indptr: np.ndarray, row0: int, pos0: int
) -> int:
    """Copy ``x`` restricted to kept columns (``newcol`` >= 0, order-preserving) into the output arrays."""
    pos = pos0
    for lo in range(0, x.shape[0], ROW_CHUNK):
        hi = min(lo + ROW_CHUNK, x.shape[0])
        a, b = int(x.indptr[lo]), int(x.indptr[hi])
        cols = newcol[x.indices[a:b]]
        mask = cols >= 0
        cs = np.concatenate([[0], np.cumsum(mask, dtype=np.int64)])
        ptr = x.indptr[lo : hi + 1].astype(np.int64) - a
        out_indptr[row0 + lo + 1 : row0 + hi + 1] = pos + cs[ptr[1:]]
        n = int(cs[-1])
        out_indices[pos : pos + n] = cols[mask]
        pos += n
    return pos


def _load(source, labels_key: str | None, what: str, label_what: str, is_reference: bool = False):
    """(binarized CSR, peak coordinates, cell ids, labels) of an .h5ad path or an in-memory AnnData."""
    if isinstance(source, (str, os.PathLike)):
        path, adata = source, h5ad.read_h5ad(source, what)
    else:  # an AnnData from the caller: messages name it by its role
        path, adata = f"<{what.split()[0]} AnnData>", source
    h5ad.check_unique(adata, path)
    x = h5ad.csr_matrix(adata, path)
    coords = h5ad.peak_coords(adata, path)
    lab = h5ad.labels(adata, labels_key, path, label_what) if labels_key else None
    if lab is not None and labels_key and is_reference:  # lab is None without labels_key
        h5ad.check_reference_classes(lab, labels_key, path)
    obs_names = adata.obs_names.to_numpy().astype(str)
    return _binarize(x), coords, obs_names, lab


def map_peaks(ref: pd.DataFrame, query: pd.DataFrame, width: int) -> tuple[np.ndarray, dict]:
    """For each query peak the index of the reference peak it maps to (-1: none), and chrom renames."""
    renames = reconcile_chroms(query["chrom"].unique(), ref["chrom"].unique())
    q_chrom = query["chrom"].map(lambda c: renames.get(c, c)).to_numpy()
    rs, re_ = trimmed(ref["start"].to_numpy(), ref["end"].to_numpy(), width)
    qs, qe = trimmed(query["start"].to_numpy(), query["end"].to_numpy(), width)
    joined = to_pyranges(q_chrom, qs, qe).join(to_pyranges(ref["chrom"].to_numpy(), rs, re_), suffix="_ref").df
    q2r = np.full(len(query), -1, dtype=np.int64)
    if len(joined):
        overlap = np.minimum(joined["End"], joined["End_ref"]) - np.maximum(joined["Start"], joined["Start_ref"])
        j = pd.DataFrame({"q": joined["idx"].to_numpy(), "r": joined["idx_ref"].to_numpy(), "ov": overlap.to_numpy()})
        j = j[j["ov"] > width / 2].sort_values(["q", "ov", "r"], ascending=[True, False, True])
        j = j.drop_duplicates("q")
        q2r[j["q"].to_numpy()] = j["r"].to_numpy()
    return q2r, {k: v for k, v in renames.items() if k != v}


def _where(source) -> str:
    return os.fspath(source) if isinstance(source, (str, os.PathLike)) else "(in memory)"


def _label_counts(lab: pd.Series | None) -> dict:
    if lab is None:
        return {"names": [], "counts": []}
    vc = lab.dropna().value_counts().sort_index()
    return {"names": [str(n) for n in vc.index], "counts": [int(c) for c in vc.to_numpy()]}


def _check_labels_key(labels_key: str, reference) -> None:
    """The label column keeps its name in the output, so it cannot be one of the columns prepare adds."""
    if labels_key in keys.RESERVED_OBS:
        raise InputError(
            f"--labels-key {labels_key!r} is a column seqAlignATAC adds to obs "
            f"({', '.join(keys.RESERVED_OBS)}); copy the labels to another column name",
            _where(reference),
        )


def _mapped_query_peaks(ref_coords: pd.DataFrame, q_coords: pd.DataFrame, width: int, query) -> tuple[np.ndarray, dict]:
    """:func:`map_peaks`, failing when no query peak maps (most often: two genome builds)."""
    q2r, renames = map_peaks(ref_coords, q_coords, width)
    if not (q2r >= 0).any():
        raise InputError(
            f"no query peak overlaps a reference peak by more than {width // 2} bp "
            f"(reference chromosomes: {', '.join(map(str, ref_coords['chrom'].unique()[:5]))}; query: "
            f"{', '.join(map(str, q_coords['chrom'].unique()[:5]))}); are both on the same genome build?",
            _where(query),
        )
    return q2r, renames


def _peaks_with_signal(n_open: np.ndarray, min_cells: int, reference) -> np.ndarray:
    """The peaks accessibility.h5ad keeps: open in at least ``min_cells`` cells (mask over reference peaks)."""
    keep = n_open >= int(min_cells)
    if not keep.any():
        raise InputError(
            f"no peak is open in at least {min_cells} cells; lower --min-cells (now {min_cells})", _where(reference)
        )
    return keep


def sequence_selection(
    n_open: np.ndarray, n_cells: int, min_cells: int, min_peak_frac: float, max_sequence_peaks: int, reference=None
) -> tuple[np.ndarray, int]:
    """The peaks of the sequence route: (mask, the minimum open cells it required).

    Peaks open in at least ``max(min_cells, ceil(min_peak_frac * n_cells))`` cells; when more than
    ``max_sequence_peaks`` pass, the ``max_sequence_peaks`` most frequently open of them (ties: the
    earlier peak in the reference's order).
    """
    threshold = max(int(min_cells), math.ceil(min_peak_frac * n_cells))
    selected = n_open >= threshold
    if not selected.any():
        raise InputError(
            f"no peak is open in at least {threshold} cells; lower --min-peak-frac (now {min_peak_frac})",
            _where(reference) if reference is not None else None,
        )
    if int(selected.sum()) > max_sequence_peaks:
        idx = np.flatnonzero(selected)
        top = idx[np.argsort(-n_open[idx], kind="stable")[:max_sequence_peaks]]
        selected = np.zeros_like(selected)
        selected[top] = True
    return selected, threshold


def _obs(ref_cells, q_cells, ref_lab: pd.Series, q_lab: pd.Series | None, labels_key: str, per_cell) -> pd.DataFrame:
    """Reference cells then query cells; ids prefixed by domain, since both files may reuse a barcode."""
    n_ref_cells, n_q_cells = len(ref_cells), len(q_cells)
    ref_lab_v = ref_lab.to_numpy()
    q_lab_v = q_lab.to_numpy() if q_lab is not None else np.full(n_q_cells, None, dtype=object)
    label_values = np.concatenate([ref_lab_v, q_lab_v])
    cats = sorted({v for v in label_values if v is not None})
    return pd.DataFrame(
        {
            keys.ORIGINAL_ID: np.concatenate([ref_cells, q_cells]),
            keys.DOMAIN: pd.Categorical(
                [keys.REFERENCE] * n_ref_cells + [keys.QUERY] * n_q_cells, categories=list(keys.DOMAINS)
            ),
            labels_key: pd.Categorical(label_values, categories=cats),
            keys.N_PEAKS: per_cell.astype(np.int64),
        },
        index=np.concatenate(
            [np.char.add(keys.ID_PREFIX[keys.REFERENCE], ref_cells), np.char.add(keys.ID_PREFIX[keys.QUERY], q_cells)]
        ).astype(object),
    )


def _var(
    ref_coords: pd.DataFrame, keep: np.ndarray, selected: np.ndarray, open_ref, open_q, q2r: np.ndarray
) -> pd.DataFrame:
    """The kept reference peaks (reference coordinates are canonical): open-cell counts, sequence selection."""
    kept = ref_coords.loc[keep].reset_index(drop=True)
    return pd.DataFrame(
        {
            "chrom": kept["chrom"].to_numpy(),
            "start": kept["start"].to_numpy(),
            "end": kept["end"].to_numpy(),
            "n_cells_reference": open_ref[keep].astype(np.int64),
            "n_cells_query": open_q[keep].astype(np.int64),
            "n_query_peaks": np.bincount(q2r[q2r >= 0], minlength=len(ref_coords))[keep].astype(np.int64),
            keys.SEQUENCE_PEAK: selected[keep],
        },
        index=peak_ids(kept["chrom"], kept["start"], kept["end"]),
    )


def _input_summary(source, cells: int, peaks: int, labels_key: str, lab: pd.Series | None, empty: int) -> dict:
    """One input's part of the summary."""
    return {
        "path": _where(source),
        "cells": cells,
        "peaks": peaks,
        keys.LABELS_KEY: labels_key,
        "labels": _label_counts(lab),
        "cells_without_shared_peaks": empty,
    }


def _peak_counts(
    q2r: np.ndarray, keep: np.ndarray, selected: np.ndarray, q_open_per_peak: np.ndarray, q_total_nnz: int
) -> dict:
    """What mapping, the no-signal filter and the sequence selection kept, in peaks and in query accessibility."""
    n_mapped = int((q2r >= 0).sum())
    n_ref_peaks, n_keep = len(keep), int(keep.sum())
    q_to_kept = (q2r >= 0) & keep[np.maximum(q2r, 0)]  # query peaks whose reference peak survived
    q_to_selected = (q2r >= 0) & selected[np.maximum(q2r, 0)]
    per_ref = np.bincount(q2r[q2r >= 0], minlength=n_ref_peaks)
    q_mapped_nnz = int(q_open_per_peak[q2r >= 0].sum())
    return {
        "query_peaks_mapped": n_mapped,
        "query_peaks_unmapped": int(len(q2r) - n_mapped),
        "query_peaks_mapped_to_kept": int(q_to_kept.sum()),
        "reference_peaks_with_query_peak": int((per_ref > 0).sum()),
        "reference_peaks_with_several_query_peaks": int((per_ref > 1).sum()),
        "peaks_kept": n_keep,
        "peaks_dropped_rare": int(n_ref_peaks - n_keep),
        "peaks_selected_for_sequence": int(selected.sum()),
        # Share of the query's (binarized) accessibility that lands on a reference peak / a kept peak.
        "query_accessibility_retained_mapped": round(q_mapped_nnz / q_total_nnz, 6),
        "query_accessibility_retained": round(int(q_open_per_peak[q_to_kept].sum()) / q_total_nnz, 6),
        "query_accessibility_retained_sequence": round(int(q_open_per_peak[q_to_selected].sum()) / q_total_nnz, 6),
    }


def prepare(
    reference,
    query,
    labels_key: str = keys.DEFAULT_LABELS_KEY,
    query_labels_key: str | None = None,
    overlap_width: int = DEFAULT_OVERLAP_WIDTH,
    min_peak_frac: float = DEFAULT_MIN_PEAK_FRAC,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_sequence_peaks: int = DEFAULT_MAX_SEQUENCE_PEAKS,
):
    """Reference + query cells x shared (reference) peaks, binarized; returns ``(AnnData, summary)``.

    ``reference`` and ``query``: .h5ad paths or AnnData objects (cells x peaks; neither is modified).

    A peak is kept when open in at least ``min_cells`` cells (reference and query together).  The
    peaks for the sequence route, ``var[keys.SEQUENCE_PEAK]``, are those open in at least
    ``max(min_cells, ceil(min_peak_frac * all cells))`` cells, the ``max_sequence_peaks`` most
    frequently open when more pass (:func:`sequence_selection`).  See docs/design.md for the layout.
    """
    import anndata as ad

    check_all(
        dict(
            overlap_width=overlap_width,
            min_peak_frac=min_peak_frac,
            min_cells=min_cells,
            max_sequence_peaks=max_sequence_peaks,
        ),
        PREPARE_RANGES,
    )
    _check_labels_key(labels_key, reference)
    x_ref, ref_coords, ref_cells, ref_lab = _load(
        reference, labels_key, "reference .h5ad", "--labels-key", is_reference=True
    )
    x_q, q_coords, q_cells, q_lab = _load(query, query_labels_key, "query .h5ad", "--query-labels-key")

    # Query columns onto reference peaks (OR-ed where several land on one), then the no-signal filter.
    q2r, renames = _mapped_query_peaks(ref_coords, q_coords, overlap_width, query)
    q_total_nnz = x_q.nnz
    q_open_per_peak = np.bincount(x_q.indices, minlength=len(q_coords))
    n_ref_peaks = len(ref_coords)
    xq_ref = _merge_columns(x_q, q2r, n_ref_peaks)
    del x_q
    n_ref_cells, n_q_cells = x_ref.shape[0], xq_ref.shape[0]
    n_cells = n_ref_cells + n_q_cells
    open_ref = np.bincount(x_ref.indices, minlength=n_ref_peaks)
    open_q = np.bincount(xq_ref.indices, minlength=n_ref_peaks)
    n_open = open_ref + open_q
    keep = _peaks_with_signal(n_open, min_cells, reference)
    # (its threshold is at least min_cells: the selection is a subset of the kept peaks)
    selected, seq_threshold = sequence_selection(
        n_open, n_cells, min_cells, min_peak_frac, max_sequence_peaks, reference
    )
    n_keep = int(keep.sum())
    newcol = np.full(n_ref_peaks, -1, dtype=np.int64)
    newcol[keep] = np.arange(n_keep)

    # Output CSR assembled in place: exact nnz known from per-column counts. Each input is
    # dropped once copied, so the peak holds one input and the output.
    out_indices = np.empty(int(open_ref[keep].sum()) + int(open_q[keep].sum()), dtype=np.int32)
    out_indptr = np.zeros(n_cells + 1, dtype=np.int64)
    pos = _fill_kept(x_ref, newcol, out_indices, out_indptr, 0, 0)
    del x_ref
    pos = _fill_kept(xq_ref, newcol, out_indices, out_indptr, n_ref_cells, pos)
    del xq_ref
    assert pos == len(out_indices)
    x = sp.csr_matrix((np.ones(pos, dtype=np.uint8), out_indices, out_indptr), shape=(n_cells, n_keep))

    per_cell = np.diff(out_indptr)
    empty_ref, empty_q = int((per_cell[:n_ref_cells] == 0).sum()), int((per_cell[n_ref_cells:] == 0).sum())
    if empty_ref or empty_q:
        log.warning("%d reference and %d query cells have no accessible shared peak", empty_ref, empty_q)
    summary = {
        "reference": _input_summary(reference, n_ref_cells, n_ref_peaks, labels_key, ref_lab, empty_ref),
        "query": _input_summary(query, n_q_cells, len(q_coords), query_labels_key or "", q_lab, empty_q),
        "overlap_width": int(overlap_width),
        "min_peak_frac": float(min_peak_frac),
        "min_cells_per_peak": int(min_cells),
        "max_sequence_peaks": int(max_sequence_peaks),
        "min_cells_per_sequence_peak": int(seq_threshold),
        "chromosome_renames": {str(k): str(v) for k, v in renames.items()},
        **_peak_counts(q2r, keep, selected, q_open_per_peak, q_total_nnz),
        "cells": {"reference": n_ref_cells, "query": n_q_cells},
        "nnz": int(x.nnz),
    }
    out = ad.AnnData(
        X=x,
        obs=_obs(ref_cells, q_cells, ref_lab, q_lab, labels_key, per_cell),
        var=_var(ref_coords, keep, selected, open_ref, open_q, q2r),
    )
    out.uns[keys.UNS] = {"prepare": summary, keys.LABELS_KEY: labels_key}
    return out, summary


def run_prepare(reference, query, labels_key, query_labels_key=None, outdir=".", **kw) -> dict:
    """:func:`prepare` + write ``accessibility.h5ad``, ``peaks.bed``, ``prepare_summary.json`` to ``outdir``.

    ``peaks.bed`` (what extract reads) holds only the peaks selected for the sequence route.
    """
    adata, summary = prepare(reference, query, labels_key, query_labels_key, **kw)
    seq = adata.var[adata.var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)]
    with publish_dir(outdir, owned=PREPARE_OUTPUTS) as stage:  # the folder is all-new or all-old
        write_h5ad(adata, stage / keys.ACCESSIBILITY)
        write_bed(
            pd.DataFrame({"chrom": seq["chrom"], "start": seq["start"], "end": seq["end"], "name": seq.index}),
            stage / keys.PEAKS_BED,
        )
        write_json(stage / keys.PREPARE_SUMMARY, summary)
    return summary
