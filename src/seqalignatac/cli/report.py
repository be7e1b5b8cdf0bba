"""`seqalignatac report`: thin click wrapper around :func:`seqalignatac.report.html.build_report`."""

from __future__ import annotations

from pathlib import Path

import click

from seqalignatac import keys
from seqalignatac.errors import InputError
from seqalignatac.params import MAX_UMAP_CELLS, SAFE_NAME, SEED, check


@click.command("report")
@click.option(
    "--pair-id", default=None, type=SAFE_NAME, help="Pair id (names the files); default: the --pair-dir folder name."
)
@click.option("--prepare-dir", type=click.Path(file_okay=False), default=None, help="Output folder of `prepare`.")
@click.option("--train-dir", type=click.Path(file_okay=False), default=None, help="Output folder of `train`.")
@click.option("--annotate-dir", type=click.Path(file_okay=False), default=None, help="Output folder of `annotate`.")
@click.option(
    "--extract-dir", type=click.Path(file_okay=False), default=None, help="Output folder of `extract` (optional)."
)
@click.option(
    "--embed-dir", type=click.Path(file_okay=False), default=None, help="Output folder of `embed` (optional)."
)
@click.option(
    "--pair-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Shortcut: OUTDIR/<pair_id> holding prepare/ extract/ embed/ train/ annotate/.",
)
@click.option(
    "--outdir",
    type=click.Path(file_okay=False),
    default=None,
    help="Where the report goes (default with --pair-dir: <pair-dir>/report).",
)
@click.option(
    "--index",
    "index_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Index mode: write INDEX/index.html over every INDEX/<pair_id>/report/.",
)
@click.option(
    "--max-umap-cells",
    default=20_000,
    show_default=True,
    type=MAX_UMAP_CELLS,
    help="UMAP a random subsample of at most this many cells.",
)
@click.option("--seed", default=0, show_default=True, type=SEED, help="Seed of the UMAP and the subsample.")
def report_command(
    pair_id,
    prepare_dir,
    train_dir,
    annotate_dir,
    extract_dir,
    embed_dir,
    pair_dir,
    outdir,
    index_dir,
    max_umap_cells,
    seed,
):
    """Self-contained HTML report (+ MultiQC table) for one pair, or an index over pairs."""
    from seqalignatac.report.html import build_index, build_report

    if index_dir is not None:
        if any(v is not None for v in (pair_id, prepare_dir, train_dir, annotate_dir, pair_dir)):
            raise InputError("--index builds the index only; do not combine it with per-pair options")
        if not Path(index_dir).is_dir():
            raise InputError("--index must be an existing results folder", index_dir)
        click.echo(str(build_index(index_dir)))
        return
    if pair_dir is not None:
        pd_ = Path(pair_dir)
        if not pd_.is_dir():
            raise InputError("--pair-dir is not a folder", pd_)
        if pair_id is None:
            pair_id = pd_.resolve().name
            check(pair_id, SAFE_NAME, "--pair-id (taken from the --pair-dir folder name; give --pair-id)")
        prepare_dir = prepare_dir or pd_ / keys.PREPARE_DIR
        extract_dir = extract_dir or pd_ / keys.EXTRACT_DIR
        embed_dir = embed_dir or pd_ / keys.EMBED_DIR
        train_dir = train_dir or pd_ / keys.TRAIN_DIR
        annotate_dir = annotate_dir or pd_ / keys.ANNOTATE_DIR
        outdir = outdir or pd_ / keys.REPORT_DIR
    missing = [
        name
        for name, v in (
            ("--pair-id", pair_id),
            ("--prepare-dir", prepare_dir),
            ("--train-dir", train_dir),
            ("--annotate-dir", annotate_dir),
            ("--outdir", outdir),
        )
        if v is None
    ]
    if missing:
        raise InputError(f"missing {', '.join(missing)}; give them, or --pair-dir for the standard layout, or --index")
    paths = build_report(
        pair_id,
        prepare_dir,
        train_dir,
        annotate_dir,
        outdir,
        extract_dir=extract_dir,
        embed_dir=embed_dir,
        max_umap_cells=max_umap_cells,
        seed=seed,
    )
    click.echo(str(paths["html"]))
