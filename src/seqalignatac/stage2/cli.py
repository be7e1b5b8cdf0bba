"""Thin click wrappers: ``seqalignatac annotate`` and ``seqalignatac evaluate``."""

from __future__ import annotations

import logging

import click

from ..cli_types import DEVICE, SEED, THREADS, progress_option
from .options import ANNOTATE_RANGES, GDA_RANGES
from .train import GDAConfig

_D = GDAConfig()


@click.command("annotate")
@click.option("--cells", required=True, type=click.Path(dir_okay=False), help="Stage 1's cell_embeddings.h5ad.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option("--method", type=click.Choice(["gda", "knn"]), default="gda", show_default=True,
              help="gda: graph domain adaptation (A2GNN); knn: kNN label transfer baseline.")
@click.option("--embedding-key", default="X_seqalignatac", show_default=True, help="obsm key of the cell embeddings.")
@click.option("--label-key", default="label", show_default=True, help="obs column with the reference labels.")
@click.option("--device", default="auto", show_default=True, type=DEVICE, help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", default=0, show_default=True, type=SEED)
@click.option("--threads", default=None, type=THREADS, help="CPU threads (default: torch's choice).")
@click.option("--k", "k", default=_D.k, show_default=True, type=GDA_RANGES["k"], help="Neighbours per cell in each kNN graph.")
@click.option("--target-depth", default=_D.target_depth, show_default=True, type=GDA_RANGES["target_depth"],
              help="K: propagation steps on the query graph.")
@click.option("--source-depth", default=_D.source_depth, show_default=True, type=GDA_RANGES["source_depth"],
              help="Propagation steps on the reference graph.")
@click.option("--head-depth", default=_D.head_depth, show_default=True, type=GDA_RANGES["head_depth"],
              help="Propagation steps of the classifier graph conv.")
@click.option("--alpha", default=_D.alpha, show_default=True, type=GDA_RANGES["alpha"], help="Weight of the domain loss.")
@click.option("--epochs", default=_D.epochs, show_default=True, type=GDA_RANGES["epochs"])
@click.option("--lr", default=_D.lr, show_default=True, type=GDA_RANGES["lr"], help="Adam learning rate.")
@click.option("--weight-decay", default=_D.weight_decay, show_default=True, type=GDA_RANGES["weight_decay"])
@click.option("--hidden", default=_D.hidden, show_default=True, type=GDA_RANGES["hidden"], help="Hidden width.")
@click.option("--dropout", default=_D.dropout, show_default=True, type=GDA_RANGES["dropout"])
@click.option("--class-weight", type=click.Choice(["balanced", "sqrt", "none"]), default=_D.class_weight,
              show_default=True, help="Reference class weights in the loss: inverse frequency, its square root, or none.")
@click.option("--label-smoothing", default=_D.label_smoothing, show_default=True, type=GDA_RANGES["label_smoothing"],
              help="Label smoothing of the classification losses (0: off).")
@click.option("--logit-adjust", default=_D.logit_adjust, show_default=True, type=GDA_RANGES["logit_adjust"],
              help="tau of logit-adjusted training: the loss sees logits + tau log(reference class prior) (0: off).")
@click.option("--im-weight", default=_D.im_weight, show_default=True, type=GDA_RANGES["im_weight"],
              help="Weight of SHOT's information-maximisation loss on the query predictions (0: off).")
@click.option("--im-diversity", default=_D.im_diversity, show_default=True, type=GDA_RANGES["im_diversity"],
              help="Weight of the diversity term (entropy of the mean query prediction) inside that loss.")
@click.option("--knn-method", type=click.Choice(["auto", "exact", "faiss"]), default=_D.knn_method, show_default=True,
              help="Exact neighbours (scikit-learn) or an approximate faiss index; auto: faiss above 50,000 cells.")
@click.option("--input-norm", type=click.Choice(["none", "l2", "zscore", "l2+zscore"]), default=_D.input_norm,
              show_default=True, help="Per-cell L2 and/or per-feature z-score (reference statistics) before the network.")
@click.option("--self-train-epochs", default=_D.self_train_epochs, show_default=True, type=GDA_RANGES["self_train_epochs"],
              help="Extra epochs trained with confident, class-balanced query pseudo-labels (0: off).")
@click.option("--pseudo-fraction", default=_D.pseudo_fraction, show_default=True, type=GDA_RANGES["pseudo_fraction"],
              help="Per predicted class, the most confident fraction of query cells used as pseudo-labels.")
@click.option("--pseudo-weight", default=_D.pseudo_weight, show_default=True, type=GDA_RANGES["pseudo_weight"],
              help="Weight of the pseudo-label loss.")
@click.option("--pseudo-agree/--no-pseudo-agree", default=_D.pseudo_agree, show_default=True,
              help="Pseudo-label only query cells on which GDA and kNN label transfer agree.")
@click.option("--ensemble", default=_D.ensemble, show_default=True, type=GDA_RANGES["ensemble"],
              help="Models trained with consecutive seeds; their probabilities are averaged.")
@click.option("--knn-mix", default=_D.knn_mix, show_default=True, type=GDA_RANGES["knn_mix"],
              help="Weight w of kNN label transfer in the final probabilities: (1 - w) GDA + w kNN.")
@click.option("--knn-space", type=click.Choice(["input", "hidden"]), default=_D.knn_space, show_default=True,
              help="Where the --knn-mix kNN runs: the input embedding or GDA's encoder output.")
@click.option("--knn-mix-k", default=_D.knn_mix_k, show_default=True, type=GDA_RANGES["knn_mix_k"],
              help="Neighbours of the --knn-mix kNN (0: --knn-k).")
@click.option("--knn-vote-power", default=_D.knn_vote_power, show_default=True, type=GDA_RANGES["knn_vote_power"],
              help="The --knn-mix kNN's class votes are divided by (reference cells of the class)^p "
                   "(0: plain vote fractions, 0.5: square root, 1: class-balanced).")
@click.option("--linear-mix", default=_D.linear_mix, show_default=True, type=GDA_RANGES["linear_mix"],
              help="Weight v of a class-balanced logistic regression on the input embedding in the final "
                   "probabilities: (1 - w - v) GDA + w kNN + v logistic regression (0: off).")
@click.option("--linear-c", default=_D.linear_c, show_default=True, type=GDA_RANGES["linear_c"],
              help="Inverse L2 regularization strength of that logistic regression.")
@click.option("--knn-k", default=15, show_default=True, type=ANNOTATE_RANGES["knn_k"], help="Neighbours voting in --method knn.")
@click.option("--unknown", type=click.Choice(["confidence", "distance", "both", "none"]), default="distance",
              show_default=True, help="How a query cell is called Unknown (docs/stage2.md, step 4).")
@click.option("--unknown-quantile", default=None, type=ANNOTATE_RANGES["unknown_quantile"],
              help="Tail fraction the Unknown threshold rejects: of the query's fitted inlier distances "
                   "(distance, per-cell test) or of held-out reference confidences (confidence).  "
                   "[default: 0.02; 0.01 for the per-cell distance test when --unknown-smooth > 0]")
@click.option("--unknown-k", default=30, show_default=True, type=ANNOTATE_RANGES["unknown_k"],
              help="Training reference cells of the predicted class whose mean cosine distance is a query "
                   "cell's --unknown distance score.")
@click.option("--unknown-smooth", default=30, show_default=True, type=ANNOTATE_RANGES["unknown_smooth"],
              help="Neighbourhood test of --unknown distance: a cell is also Unknown when the median score of "
                   "its K nearest query cells is in the tail (0: per-cell test only).")
@click.option("--unknown-smooth-quantile", default=0.005, show_default=True, type=ANNOTATE_RANGES["unknown_smooth_quantile"],
              help="Tail fraction of the fitted inlier smoothed scores that --unknown-smooth rejects.")
@click.option("--calibration-fraction", default=0.1, show_default=True, type=ANNOTATE_RANGES["calibration_fraction"],
              help="Reference cells per class held out of training to calibrate the Unknown threshold.")
@progress_option()
# Old spelling of --no-progress, kept so existing command lines and scripts still run.
@click.option("--quiet-progress", is_flag=True, hidden=True, help="Deprecated: use --no-progress.")
def annotate_command(cells, outdir, method, embedding_key, label_key, device, seed, threads, k, target_depth,
                     source_depth, head_depth, alpha, epochs, lr, weight_decay, hidden, dropout, class_weight,
                     label_smoothing, logit_adjust, im_weight, im_diversity,
                     knn_method, input_norm, self_train_epochs, pseudo_fraction, pseudo_weight, pseudo_agree, ensemble, knn_mix,
                     knn_space,
                     knn_mix_k, knn_vote_power, linear_mix, linear_c, knn_k, unknown, unknown_quantile, unknown_k, unknown_smooth,
                     unknown_smooth_quantile, calibration_fraction, progress, quiet_progress) -> None:
    """Stage 2: label the query cells of CELLS from its reference cells."""
    from .api import annotate_full, config_with
    from .outputs import read_cells, write_outputs

    logging.captureWarnings(True)
    adata = read_cells(cells)
    config = config_with(k=k, target_depth=target_depth, source_depth=source_depth, head_depth=head_depth,
                         alpha=alpha, epochs=epochs, lr=lr, weight_decay=weight_decay, hidden=hidden,
                         dropout=dropout, class_weight=class_weight, knn_method=knn_method, input_norm=input_norm,
                         self_train_epochs=self_train_epochs, pseudo_fraction=pseudo_fraction,
                         pseudo_weight=pseudo_weight, pseudo_agree=pseudo_agree, ensemble=ensemble, knn_mix=knn_mix,
                         knn_space=knn_space, knn_mix_k=knn_mix_k, knn_vote_power=knn_vote_power,
                         linear_mix=linear_mix, linear_c=linear_c, label_smoothing=label_smoothing,
                         logit_adjust=logit_adjust, im_weight=im_weight, im_diversity=im_diversity)
    res = annotate_full(adata, embedding_key, method, label_key=label_key, config=config, unknown=unknown,
                        unknown_quantile=unknown_quantile, unknown_k=unknown_k, unknown_smooth=unknown_smooth,
                        unknown_smooth_quantile=unknown_smooth_quantile, calibration_fraction=calibration_fraction,
                        knn_k=knn_k,
                        device=device, seed=seed, threads=threads, progress=False if quiet_progress else progress, source=cells)
    summary = write_outputs(res, outdir, label_key)
    msg = f"{summary['n_query']} query cells annotated ({method}); unknown rate {summary['unknown_rate']:.3f}"
    if summary["n_query_no_signal"]:
        msg += f" ({summary['n_query_no_signal']} Unknown for lack of signal: no accessible shared peak)"
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
