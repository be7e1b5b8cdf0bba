"""`seqalignatac convert`: a thin click wrapper over :mod:`seqalignatac.io.convert`."""

from __future__ import annotations

import json

import click

from seqalignatac.io.convert import convert


@click.command("convert")
@click.option(
    "--matrix",
    required=True,
    type=click.Path(),
    help="MatrixMarket .mtx[.gz], a 10x filtered_peak_bc_matrix/ folder, or a 10x .h5.",
)
@click.option("--peaks", default=None, type=click.Path(), help="Peaks BED, or TSV with chrom/start/end header.")
@click.option("--cells", default=None, type=click.Path(), help="Cells TSV (first column = cell id) or barcodes.tsv.")
@click.option("--out", required=True, type=click.Path(), help="Output .h5ad; with --split-by, a folder.")
@click.option("--split-by", default=None, help="Cells-table column: write one .h5ad per value into --out.")
@click.option(
    "--cells-axis",
    type=click.Choice(["auto", "rows", "columns"]),
    default="auto",
    show_default=True,
    help="Which matrix axis holds cells (auto: matched against the cells table).",
)
def convert_command(matrix, peaks, cells, out, split_by, cells_axis):
    """MatrixMarket or 10x peak matrix -> .h5ad (cells x peaks)."""
    written = convert(matrix, out, peaks, cells, split_by, cells_axis)
    click.echo(json.dumps({"written": written}))
