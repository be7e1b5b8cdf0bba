"""`seqalignatac extract`: a thin click wrapper over :mod:`seqalignatac.pp.sequences`."""

from __future__ import annotations

import json

import click

from seqalignatac.pp.sequences import DEFAULT_WIDTH, extract_sequences


@click.command("extract")
@click.option("--peaks", required=True, type=click.Path(), help="BED of peaks (chrom, start, end, name).")
@click.option("--fasta", required=True, type=click.Path(), help="Genome FASTA, plain or bgzip (.fa.gz).")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output FASTA of peak sequences.")
@click.option(
    "--width",
    default=str(DEFAULT_WIDTH),
    show_default=True,
    help="Window width in bp centered on the peak midpoint (a multiple of 6), or 'native'.",
)
@click.option(
    "--summary", default=None, type=click.Path(dir_okay=False), help="Summary JSON [default: OUT.summary.json]."
)
def extract_command(peaks, fasta, out, width, summary):
    """One upper-case sequence per peak; reports clipped peaks, absent contigs and N content."""
    result = extract_sequences(peaks, fasta, out, width=width, summary=summary)
    click.echo(
        json.dumps(
            {k: result[k] for k in ("written", "clipped_at_chromosome_end", "peaks_on_absent_contigs", "fraction_n")}
        )
    )
