"""Preprocessing, scanpy style: ``sa.pp.harmonize`` (the ``prepare`` step) and ``sa.pp.peak_sequences``
(the ``extract`` step).  AnnData in, AnnData out; the same code the command line runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from seqalignatac import keys
from seqalignatac.pp.mapping import (
    DEFAULT_MAX_SEQUENCE_PEAKS,
    DEFAULT_MIN_CELLS,
    DEFAULT_MIN_PEAK_FRAC,
    DEFAULT_OVERLAP_WIDTH,
    prepare,
)
from seqalignatac.pp.sequences import DEFAULT_WIDTH, extract_sequences

__all__ = ["harmonize", "peak_sequences"]


def harmonize(
    reference: Any,
    query: Any,
    labels_key: str = keys.DEFAULT_LABELS_KEY,
    *,
    query_labels_key: str | None = None,
    overlap_width: int = DEFAULT_OVERLAP_WIDTH,
    min_peak_frac: float = DEFAULT_MIN_PEAK_FRAC,
    min_cells: int = DEFAULT_MIN_CELLS,
    max_sequence_peaks: int = DEFAULT_MAX_SEQUENCE_PEAKS,
):
    """Put the query on the reference's peaks: one binarized AnnData of reference + query cells.

    Parameters
    ----------
    reference, query
        AnnData objects or ``.h5ad`` paths, cells x peaks (counts or 0/1), peaks named
        ``chrom:start-end`` or described by ``var['chrom', 'start', 'end']``.
    labels_key
        ``reference.obs`` column with the cell types. It keeps this name in the result.
    query_labels_key
        ``query.obs`` column with known query cell types (evaluation only, never trained on);
        stored under ``labels_key``.
    overlap_width, min_cells
        Peak mapping window; peaks open in fewer than ``min_cells`` cells are dropped.
    max_sequence_peaks, min_peak_frac
        The peaks of the sequence route (``var['sequence_peak']``): all when there are at most
        ``max_sequence_peaks``, else the most frequently open; ``min_peak_frac`` is an extra floor
        (``seqalignatac prepare --help``).

    Returns
    -------
    AnnData of reference + query cells x kept reference peaks. ``obs`` gets ``domain``
    (``reference``/``query``), ``original_id`` (the barcode in its input), ``n_peaks`` and
    ``labels_key``; ``var`` gets ``chrom``, ``start``, ``end``, per-domain open-cell counts and
    ``sequence_peak``;
    ``uns['seqalignatac']`` gets ``labels_key`` and the ``prepare`` summary.
    """
    adata, _ = prepare(
        reference,
        query,
        labels_key,
        query_labels_key,
        overlap_width=overlap_width,
        min_peak_frac=min_peak_frac,
        min_cells=min_cells,
        max_sequence_peaks=max_sequence_peaks,
    )
    return adata


def peak_sequences(
    adata, fasta: str | os.PathLike, width: int | str = DEFAULT_WIDTH, key_added: str = keys.SEQUENCE
) -> None:
    """DNA sequence of every peak of ``adata`` selected for the sequence route, from a genome FASTA.

    Parameters
    ----------
    adata
        AnnData with peaks as ``var`` (``var['chrom', 'start', 'end']``, e.g. from :func:`harmonize`).
        Only the peaks with ``var['sequence_peak']`` True get a sequence when the column exists
        (the others get ``""``: :func:`seqalignatac.tl.embed_peaks` skips them).
    fasta
        Genome FASTA path.
    width
        Window centred on each peak midpoint (default 1002 = 167 NT 6-mer tokens), or ``"native"``.
    key_added
        ``var`` column that receives the upper-case sequences.

    Writes ``adata.var[key_added]`` and ``adata.uns['seqalignatac']['extract']`` (the summary).
    """
    var = adata.var
    if keys.SEQUENCE_PEAK in var:
        var = var[var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)]
    peaks = pd.DataFrame(
        {
            "chrom": var["chrom"].astype(str).to_numpy(),
            "start": var["start"].to_numpy(),
            "end": var["end"].to_numpy(),
            "name": var.index.astype(str),
        }
    )
    from seqalignatac.embed.fasta_io import read_fasta

    with tempfile.TemporaryDirectory(prefix="seqalignatac-") as tmp:
        out = Path(tmp) / keys.PEAKS_FASTA
        summary = extract_sequences(peaks, fasta, out, width)
        ids, seqs = read_fasta(out)
    by_id = dict(zip(ids, seqs))
    adata.var[key_added] = [by_id.get(i, "") for i in adata.var_names.astype(str)]
    adata.uns.setdefault(keys.UNS, {})["extract"] = summary
