"""Thin click wrappers: ``seqalignatac annotate`` and ``seqalignatac evaluate``."""

from __future__ import annotations

import logging

import click

from .train import GDAConfig

_D = GDAConfig()


@click.command("annotate")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="Stage 1's cell_embeddings.h5ad.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--method", type=click.Choice(["gda", "knn"]), default="gda", show_default=True,
              help="gda: graph domain adaptation (A2GNN); knn: kNN label transfer baseline.")
@click.option("--embedding-key", default="X_seqalignatac", show_default=True, help="obsm key of the cell embeddings.")
@click.option("--label-key", default="label", show_default=True, help="obs column with the reference labels.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--threads", default=None, type=int, help="CPU threads (default: torch's choice).")
@click.option("--k", "k", default=_D.k, show_default=True, type=int, help="Neighbours per cell in each kNN graph.")
@click.option("--target-depth", default=_D.target_depth, show_default=True, type=int,
              help="K: propagation steps on the query graph.")
@click.option("--source-depth", default=_D.source_depth, show_default=True, type=int,
              help="Propagation steps on the reference graph.")
@click.option("--head-depth", default=_D.head_depth, show_default=True, type=int,
              help="Propagation steps of the classifier graph conv.")
@click.option("--alpha", default=_D.alpha, show_default=True, type=float, help="Weight of the domain loss.")
@click.option("--epochs", default=_D.epochs, show_default=True, type=int)
@click.option("--lr", default=_D.lr, show_default=True, type=float, help="Adam learning rate.")
@click.option("--weight-decay", default=_D.weight_decay, show_default=True, type=float)
@click.option("--hidden", default=_D.hidden, show_default=True, type=int, help="Hidden width.")
@click.option("--dropout", default=_D.dropout, show_default=True, type=float)
@click.option("--class-weight", type=click.Choice(["balanced", "none"]), default=_D.class_weight, show_default=True)
@click.option("--knn-method", type=click.Choice(["auto", "exact", "faiss"]), default=_D.knn_method, show_default=True,
              help="Exact neighbours (scikit-learn) or an approximate faiss index; auto: faiss above 50,000 cells.")
@click.option("--input-norm", type=click.Choice(["none", "l2", "zscore", "l2+zscore"]), default=_D.input_norm,
              show_default=True, help="Per-cell L2 and/or per-feature z-score (reference statistics) before the network.")
@click.option("--self-train-epochs", default=_D.self_train_epochs, show_default=True, type=int,
              help="Extra epochs trained with confident, class-balanced query pseudo-labels (0: off).")
@click.option("--pseudo-fraction", default=_D.pseudo_fraction, show_default=True, type=float,
              help="Per predicted class, the most confident fraction of query cells used as pseudo-labels.")
@click.option("--pseudo-weight", default=_D.pseudo_weight, show_default=True, type=float,
              help="Weight of the pseudo-label loss.")
@click.option("--ensemble", default=_D.ensemble, show_default=True, type=int,
              help="Models trained with consecutive seeds; their probabilities are averaged.")
@click.option("--knn-mix", default=_D.knn_mix, show_default=True, type=float,
              help="Weight w of kNN label transfer in the final probabilities: (1 - w) GDA + w kNN.")
@click.option("--knn-space", type=click.Choice(["input", "hidden"]), default=_D.knn_space, show_default=True,
              help="Where the --knn-mix kNN runs: the input embedding or GDA's encoder output.")
@click.option("--knn-k", default=15, show_default=True, type=int, help="Neighbours voting in --method knn.")
@click.option("--unknown", type=click.Choice(["confidence", "distance", "both", "none"]), default="distance",
              show_default=True, help="How a query cell is called Unknown (thresholds from held-out reference cells).")
@click.option("--unknown-quantile", default=0.05, show_default=True, type=float,
              help="Fraction of held-out reference cells the Unknown threshold would reject.")
@click.option("--calibration-fraction", default=0.1, show_default=True, type=float,
              help="Reference cells per class held out of training to calibrate the Unknown threshold.")
@click.option("--quiet-progress", is_flag=True, help="No progress bar.")
def annotate_command(cells, outdir, method, embedding_key, label_key, device, seed, threads, k, target_depth,
                     source_depth, head_depth, alpha, epochs, lr, weight_decay, hidden, dropout, class_weight,
                     knn_method, input_norm, self_train_epochs, pseudo_fraction, pseudo_weight, ensemble, knn_mix, knn_space,
                     knn_k, unknown, unknown_quantile, calibration_fraction, quiet_progress) -> None:
    """Stage 2: label the query cells of CELLS from its reference cells."""
    from .api import annotate_full, config_with
    from .outputs import read_cells, write_outputs

    logging.captureWarnings(True)
    adata = read_cells(cells)
    config = config_with(k=k, target_depth=target_depth, source_depth=source_depth, head_depth=head_depth,
                         alpha=alpha, epochs=epochs, lr=lr, weight_decay=weight_decay, hidden=hidden,
                         dropout=dropout, class_weight=class_weight, knn_method=knn_method, input_norm=input_norm,
                         self_train_epochs=self_train_epochs, pseudo_fraction=pseudo_fraction,
                         pseudo_weight=pseudo_weight, ensemble=ensemble, knn_mix=knn_mix,
                         knn_space=knn_space)
    res = annotate_full(adata, embedding_key, method, label_key=label_key, config=config, unknown=unknown,
                        unknown_quantile=unknown_quantile, calibration_fraction=calibration_fraction, knn_k=knn_k,
                        device=device, seed=seed, threads=threads, progress=not quiet_progress, source=cells)
    summary = write_outputs(res, outdir, label_key)
    msg = f"{summary['n_query']} query cells annotated ({method}); unknown rate {summary['unknown_rate']:.3f}"
    if "metrics" in summary:
        m = summary["metrics"]
        msg += f"; accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}"
    click.echo(msg, err=True)


@click.command("evaluate")
@click.option("--predictions", required=True, type=click.Path(dir_okay=False), help="predictions.csv from annotate.")
@click.option("--truth", required=True, type=click.Path(dir_okay=False),
              help=".h5ad (labels in obs) or CSV/TSV (cell_id column + label column).")
@click.option("--label-key", default="label", show_default=True, help="Column with the known labels.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False))
def evaluate_command(predictions, truth, label_key, outdir) -> None:
    """Accuracy, macro-F1, per-class table and confusion matrix of PREDICTIONS against TRUTH."""
    from .outputs import evaluate_files

    logging.captureWarnings(True)
    m = evaluate_files(predictions, truth, label_key, outdir)
    click.echo(f"{m['n_cells']} cells: accuracy {m['accuracy']:.3f}, macro-F1 {m['macro_f1']:.3f}, "
               f"unknown rate {m['unknown_rate']:.3f}", err=True)
