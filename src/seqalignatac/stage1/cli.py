"""``seqalignatac train``: a thin click wrapper around :func:`train` and :func:`lsi`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from ..cli_types import DEVICE, SEED, THREADS, progress_option
from ..errors import InputError, require_file
from .data import check_prepared
from .options import CHECKPOINT_MINUTES, LSI_RANGES, TRAIN_RANGES

log = logging.getLogger(__name__)


def _widths(ctx, param, value: str) -> tuple[int, ...]:
    if value is None or value.strip() in ("", "none", "0"):
        return ()
    try:
        out = tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(f"comma-separated integers expected, got {value!r}") from None
    if any(v < 1 for v in out):
        raise click.BadParameter("every width must be >= 1")
    return out


def read_accessibility(path: str):
    from ..anndata_io import read_h5ad

    adata = read_h5ad(path, "accessibility file", hint="pass the accessibility.h5ad written by prepare")
    check_prepared(adata, path)
    return adata


@click.command(context_settings={"show_default": True})
@click.option("--accessibility", required=True, type=click.Path(dir_okay=False),
              help="accessibility.h5ad from prepare (cells x peaks, binarized).")
@click.option("--embeddings", type=click.Path(dir_okay=False),
              help="Peak embedding store (embeddings.h5) from embed; required for --method nt.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--method", type=click.Choice(["nt", "lsi"]), default="nt",
              help="nt: sequence-to-accessibility network; lsi: TF-IDF + SVD ablation (no sequence).")
@click.option("--device", type=DEVICE, default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=SEED, default=0)
@click.option("--threads", type=THREADS, default=None, help="CPU threads for torch (default: torch's choice).")
@click.option("--hidden", "hidden", default="256", callback=_widths,
              help="Hidden layer widths before the bottleneck, comma separated ('none' for no hidden layer).")
@click.option("--bottleneck", type=TRAIN_RANGES["bottleneck"], default=32, help="Cell-embedding size h.")
@click.option("--activation", type=click.Choice(["gelu", "relu"]), default="gelu")
@click.option("--dropout", type=TRAIN_RANGES["dropout"], default=0.2, help="Dropout before the bottleneck.")
@click.option("--epochs", type=TRAIN_RANGES["epochs"], default=300, help="Maximum epochs.")
@click.option("--patience", type=TRAIN_RANGES["patience"], default=20, help="Stop after this many epochs without a better held-out AUROC.")
@click.option("--lr", type=TRAIN_RANGES["lr"], default=1e-2)
@click.option("--batch-size", type=TRAIN_RANGES["batch_size"], default=128, help="Peaks per step.")
@click.option("--cell-block-size", type=TRAIN_RANGES["cell_block_size"], default=0,
              help="Cells per step (0: all cells if they fit the per-step budget, else blocks of it).")
@click.option("--max-step-entries", type=TRAIN_RANGES["max_step_entries"], default=None,
              help="Per-step budget of peak x cell entries (default 2^25 on CPU, 2^28 on GPU).")
@click.option("--max-steps-per-epoch", type=TRAIN_RANGES["max_steps_per_epoch"], default=0,
              help="0: an epoch visits every (peak, cell) pair; else a random subset of this many steps "
                   "(more frequent early-stopping checks at atlas scale).")
@click.option("--holdout-fraction", type=TRAIN_RANGES["holdout_fraction"], default=0.1,
              help="Peaks held out for early stopping and the held-out AUROC/AUPRC.")
@click.option("--checkpoint-minutes", type=CHECKPOINT_MINUTES, default=10.0,
              help="Also checkpoint within an epoch this often (checkpoints are always written at epoch ends).")
@click.option("--resume", is_flag=True, help="Continue the run whose checkpoint is in --outdir.")
@click.option("--lsi-components", type=LSI_RANGES["n_components"], default=30, help="LSI: SVD components computed.")
@click.option("--lsi-normalize", type=click.Choice(["l2", "zscore", "none"]), default="l2",
              help="LSI: per-cell L2, per-component z-score, or raw scores.")
@click.option("--lsi-fit-on", type=click.Choice(["reference", "all"]), default="all",
              help="LSI: fit the IDF and SVD on the reference cells (query projected onto them) or on all "
                   "cells, reference and query together (no labels used).")
@click.option("--lsi-tfidf", type=click.Choice(["log_tfidf", "tf_logidf", "logtf_logidf"]), default="logtf_logidf",
              help="LSI: TF-IDF variant (ArchR's LSI methods 2, 1, 3): log1p(1e4 TF n/df), 1e4 TF log1p(n/df), "
                   "log1p(1e4 TF) log1p(n/df).")
@click.option("--depth-corr-cutoff", type=LSI_RANGES["depth_corr_cutoff"], default=0.75,
              help="LSI: drop components whose |corr| with log depth exceeds this.")
@click.option("--missing-embeddings", type=click.Choice(["error", "drop"]), default="error",
              help="Peaks of the matrix without an embedding (e.g. on contigs absent from the FASTA): "
                   "stop with an error, or train on the others and count them.")
@progress_option()
def train_command(accessibility, embeddings, outdir, method, device, seed, threads, hidden, bottleneck,
                  activation, dropout, epochs, patience, lr, batch_size, cell_block_size, max_step_entries,
                  max_steps_per_epoch, holdout_fraction, checkpoint_minutes, resume, lsi_components, lsi_normalize,
                  lsi_fit_on, lsi_tfidf, depth_corr_cutoff, missing_embeddings, progress):
    """Stage 1: cell embeddings (obsm['X_seqalignatac']) for reference and query cells together."""
    if method == "nt" and not embeddings:
        raise InputError("--embeddings is required for --method nt (or use --method lsi)")
    adata = read_accessibility(accessibility)
    if method == "lsi":
        from .lsi import lsi

        _, summary = lsi(adata, n_components=lsi_components, depth_corr_cutoff=depth_corr_cutoff,
                         normalize=lsi_normalize, fit_on=lsi_fit_on, tfidf_variant=lsi_tfidf, seed=seed,
                         outdir=outdir, resume=resume, path=accessibility)
        click.echo(f"LSI: {summary['n_cells']} cells x {summary['dims']} dims "
                   f"(dropped components {summary['dropped_components'] or 'none'}){_no_signal_note(summary)} "
                   f"-> {Path(outdir)}", err=True)
        return
    require_file(embeddings, "embedding store")
    from .trainer import TrainConfig, train

    cfg = TrainConfig(hidden=hidden, bottleneck=bottleneck, activation=activation, dropout=dropout,
                      epochs=epochs, patience=patience, lr=lr, batch_size=batch_size,
                      cell_block_size=cell_block_size, max_step_entries=max_step_entries,
                      holdout_fraction=holdout_fraction, max_steps_per_epoch=max_steps_per_epoch, seed=seed)
    _, summary = train(adata, embeddings, config=cfg, device=device, threads=threads, outdir=outdir,
                       resume=resume, checkpoint_minutes=checkpoint_minutes, progress=progress,
                       path=accessibility, free_input=True, missing_embeddings=missing_embeddings)
    click.echo(f"stage 1: {summary['n_cells']} cells x {summary['dims']} dims, held-out AUROC "
               f"{summary['heldout_auroc']:.3f} (best epoch {summary['best_epoch']}){_no_signal_note(summary)} "
               f"-> {Path(outdir)}", err=True)


def _no_signal_note(summary: dict) -> str:
    n = summary.get("n_dropped_cells", 0)
    return f"; {n} cells without an accessible peak kept unembedded" if n else ""
