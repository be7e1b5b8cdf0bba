"""Thin click wrappers: ``seqalignatac annotate`` and ``seqalignatac evaluate``."""

from __future__ import annotations

import logging
from dataclasses import fields

import click

from seqalignatac import keys
from seqalignatac.cli.options import config_option, progress_option
from seqalignatac.io.settings import read_settings
from seqalignatac.models.stage2.options import ANNOTATE_RANGES, FILE_SETTINGS, GDA_RANGES, METHODS, SETTINGS_TABLE
from seqalignatac.models.stage2.train import GDAConfig
from seqalignatac.models.stage2.unknown import STRATEGIES
from seqalignatac.params import DEVICE, SEED, THREADS

_D = GDAConfig()


@click.command("annotate")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="Stage 1's cell_embeddings.h5ad.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--method",
    type=click.Choice(METHODS),
    default="gda",
    show_default=True,
    help="gda: graph domain adaptation (A2GNN); knn: kNN label transfer baseline.",
)
@click.option("--embedding-key", default=keys.EMBEDDING, show_default=True, help="obsm key of the cell embeddings.")
@click.option(
    "--labels-key", default=None, help="obs column with the reference labels (default: the one `prepare` recorded)."
)
@click.option("--device", default="auto", show_default=True, type=DEVICE, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--threads", default=None, type=THREADS, help="CPU threads (default: torch's choice).")
@click.option(
    "--unknown",
    type=click.Choice(STRATEGIES),
    default="distance",
    show_default=True,
    help="How a query cell is called Unknown (docs/stage2.md, step 4).",
)
@click.option(
    "--unknown-quantile",
    default=None,
    type=ANNOTATE_RANGES["unknown_quantile"],
    help="Tail fraction the Unknown threshold rejects: of the query's fitted inlier distances "
    "(distance, per-cell test) or of held-out reference confidences (confidence).  "
    "[default: 0.02 for confidence; for distance, the per-cell test is off unless given, "
    "and 0.02 when unknown_smooth is 0]",
)
@click.option(
    "--ensemble",
    default=_D.ensemble,
    show_default=True,
    type=GDA_RANGES["ensemble"],
    help="GDA models trained with consecutive seeds; their probabilities are averaged.",
)
@config_option(SETTINGS_TABLE)
@progress_option()
# Old spelling of --no-progress, kept so existing command lines and scripts still run.
@click.option("--quiet-progress", is_flag=True, hidden=True, help="Deprecated: use --no-progress.")
def annotate_command(
    cells,
    outdir,
    method,
    embedding_key,
    labels_key,
    device,
    seed,
    threads,
    unknown,
    unknown_quantile,
    ensemble,
    config_path,
    progress,
    quiet_progress,
) -> None:
    """Stage 2: label the query cells of CELLS from its reference cells.

    Every other setting (graph k, depths, epochs, mix weights, Unknown test sizes) is a key of the
    [annotate] table of the --config file: docs/settings.md lists them with their defaults.
    """
    from seqalignatac.models.stage2.api import annotate_full
    from seqalignatac.models.stage2.options import config_with
    from seqalignatac.models.stage2.outputs import read_cells, write_outputs

    logging.captureWarnings(True)
    settings = read_settings(config_path, SETTINGS_TABLE, FILE_SETTINGS)
    config_names = {f.name for f in fields(GDAConfig)}
    config = config_with(ensemble=ensemble, **{k: v for k, v in settings.items() if k in config_names})
    keywords = {k: v for k, v in settings.items() if k not in config_names}
    adata = read_cells(cells)
    res = annotate_full(
        adata,
        embedding_key,
        method,
        labels_key=labels_key,
        config=config,
        unknown=unknown,
        unknown_quantile=unknown_quantile,
        device=device,
        seed=seed,
        threads=threads,
        progress=False if quiet_progress else progress,
        source=cells,
        **keywords,
    )
    summary = write_outputs(res, outdir)
    msg = f"{summary['n_query']} query cells annotated ({method}); unknown rate {summary['unknown_rate']:.3f}"
    if summary["n_query_no_signal"]:
        msg += f" ({summary['n_query_no_signal']} Unknown for lack of signal: no accessible shared peak)"
    if "metrics" in summary:
        m = summary["metrics"]
        msg += f"; accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"
    click.echo(msg, err=True)


@click.command("evaluate")
@click.option("--predictions", required=True, type=click.Path(dir_okay=False), help="predictions.csv from annotate.")
@click.option(
    "--truth",
    required=True,
    type=click.Path(dir_okay=False),
    help=".h5ad (labels in obs) or CSV/TSV (cell_id column + label column).",
)
@click.option(
    "--labels-key",
    default=None,
    help="Column with the known labels (default: for an .h5ad the one `prepare` recorded, "
    f"else {keys.DEFAULT_LABELS_KEY!r}).",
)
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
def evaluate_command(predictions, truth, labels_key, outdir) -> None:
    """Accuracy, macro-F1, per-class table and confusion matrix of PREDICTIONS against TRUTH."""
    from seqalignatac.models.stage2.outputs import evaluate_files

    logging.captureWarnings(True)
    m = evaluate_files(predictions, truth, labels_key, outdir)
    click.echo(
        f"{m['n_cells']} cells: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
        f"unknown rate {m['unknown_rate']:.3f}",
        err=True,
    )
