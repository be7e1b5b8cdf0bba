"""`seqalignatac simulate`: a thin click wrapper over :mod:`seqalignatac.datasets.synthetic`."""

from __future__ import annotations

import json

import click

from seqalignatac.datasets.synthetic import SIMULATE_RANGES, simulate
from seqalignatac.params import SEED


@click.command("simulate")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--cells",
    "n_cells",
    default=2000,
    show_default=True,
    type=SIMULATE_RANGES["n_cells"],
    help="Cells over both files.",
)
@click.option(
    "--peaks", "n_peaks", default=5000, show_default=True, type=SIMULATE_RANGES["n_peaks"], help="True peaks."
)
@click.option(
    "--cell-types",
    "n_cell_types",
    default=5,
    show_default=True,
    type=SIMULATE_RANGES["n_cell_types"],
    help="Cell types.",
)
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option(
    "--novel-query-types",
    default=0,
    show_default=True,
    type=SIMULATE_RANGES["novel_query_types"],
    help="Extra cell types present only in the query (exercise the Unknown flag).",
)
@click.option(
    "--peaks-per-cell",
    "mean_peaks_per_cell",
    type=SIMULATE_RANGES["mean_peaks_per_cell"],
    default=None,
    help="Mean reads per cell in peaks [default: 10% of peaks, at most 1000].",
)
@click.option("--reference-fraction", default=0.6, show_default=True, type=SIMULATE_RANGES["reference_fraction"])
@click.option(
    "--edge-peaks",
    default=0,
    show_default=True,
    type=SIMULATE_RANGES["edge_peaks"],
    help="Peaks placed within 200 bp of a chromosome end (exercise extract's clipping).",
)
@click.option("--no-genome", is_flag=True, help="Skip the FASTA (large-scale benchmarks).")
def simulate_command(
    outdir,
    n_cells,
    n_peaks,
    n_cell_types,
    seed,
    novel_query_types,
    mean_peaks_per_cell,
    reference_fraction,
    edge_peaks,
    no_genome,
):
    """Synthetic genome + reference/query .h5ad with a batch effect (deterministic under --seed)."""
    out = simulate(
        outdir,
        n_cells,
        n_peaks,
        n_cell_types,
        seed,
        novel_query_types=novel_query_types,
        mean_peaks_per_cell=mean_peaks_per_cell,
        reference_fraction=reference_fraction,
        edge_peaks=edge_peaks,
        genome=not no_genome,
    )
    click.echo(json.dumps(out, indent=2))
