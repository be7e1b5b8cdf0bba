"""`seqalignatac prepare`: a thin click wrapper over :mod:`seqalignatac.pp.mapping`."""

from __future__ import annotations

import json

import click

from seqalignatac import keys
from seqalignatac.pp.mapping import (
    DEFAULT_MAX_SEQUENCE_PEAKS,
    DEFAULT_MIN_CELLS,
    DEFAULT_MIN_PEAK_FRAC,
    DEFAULT_OVERLAP_WIDTH,
    PREPARE_RANGES,
    run_prepare,
)


@click.command("prepare")
@click.option("--reference", required=True, type=click.Path(), help="Reference .h5ad (cells x peaks, labeled).")
@click.option("--query", required=True, type=click.Path(), help="Query .h5ad (cells x peaks).")
@click.option(
    "--labels-key",
    default=keys.DEFAULT_LABELS_KEY,
    show_default=True,
    help="obs column with the reference cell types; it keeps this name in every output.",
)
@click.option(
    "--query-labels-key",
    default=None,
    help="obs column of the query with known labels (evaluation only; stored under --labels-key).",
)
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--overlap-width",
    default=DEFAULT_OVERLAP_WIDTH,
    show_default=True,
    type=PREPARE_RANGES["overlap_width"],
    help="W: peaks trimmed to W bp around the midpoint must overlap by more than W/2.",
)
@click.option(
    "--min-peak-frac",
    default=DEFAULT_MIN_PEAK_FRAC,
    show_default=True,
    type=PREPARE_RANGES["min_peak_frac"],
    help="Sequence route only (peaks.bed): leave out peaks open in fewer than this fraction of all cells.",
)
@click.option(
    "--min-cells",
    default=DEFAULT_MIN_CELLS,
    show_default=True,
    type=PREPARE_RANGES["min_cells"],
    help="Drop peaks open in fewer than this many cells (from accessibility.h5ad and peaks.bed).",
)
@click.option(
    "--max-sequence-peaks",
    default=DEFAULT_MAX_SEQUENCE_PEAKS,
    show_default=True,
    type=PREPARE_RANGES["max_sequence_peaks"],
    help="Sequence route only (peaks.bed): at most this many peaks, the most frequently open ones.",
)
def prepare_command(
    reference, query, labels_key, query_labels_key, outdir, overlap_width, min_peak_frac, min_cells, max_sequence_peaks
):
    """Map query peaks onto reference peaks, binarize, drop peaks with no signal, select the sequence peaks."""
    summary = run_prepare(
        reference,
        query,
        labels_key,
        query_labels_key,
        outdir,
        overlap_width=overlap_width,
        min_peak_frac=min_peak_frac,
        min_cells=min_cells,
        max_sequence_peaks=max_sequence_peaks,
    )
    click.echo(
        json.dumps(
            {
                k: summary[k]
                for k in (
                    "cells",
                    "peaks_kept",
                    "peaks_selected_for_sequence",
                    "query_peaks_mapped",
                    "query_accessibility_retained",
                )
            }
        )
    )
