"""Writing the annotate/evaluate folder layout of docs/design.md (atomically)."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from seqalignatac import keys
from seqalignatac.errors import InputError, require_file
from seqalignatac.io.atomic import publish_dir, write_csv, write_h5ad, write_json
from seqalignatac.io.h5ad import read_h5ad
from seqalignatac.io.tables import restore_formulas
from seqalignatac.metrics import UNKNOWN, evaluate, summary_dict

METRICS_OUTPUTS = (keys.METRICS, keys.PER_CLASS, keys.CONFUSION)
# Every file annotate may write: one absent from a new run (no truth labels: no metrics) is dropped.
ANNOTATE_OUTPUTS = (
    keys.PREDICTIONS,
    keys.QUERY_ANNOTATED,
    keys.QUERY_CLUSTERS,
    *METRICS_OUTPUTS,
    keys.ANNOTATOR_DIR,
    keys.TRAINING_CURVE,
    keys.ANNOTATE_SUMMARY,
)


def read_cells(path: str | os.PathLike):
    return read_h5ad(path, "cell embeddings (.h5ad)", hint="pass stage 1's cell_embeddings.h5ad")


def metrics_tables(
    y_true: pd.Series, predictions: pd.DataFrame, reference_classes: list[str] | None = None
) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame]:
    """Metrics for ``predicted_label`` (Unknown counts as wrong) plus the arg-max labels; with the
    reference's classes also ``accuracy_known`` and ``novel_unknown_rate`` (:func:`evaluate`)."""
    res = evaluate(y_true.to_numpy(), predictions[keys.PREDICTED_LABEL].to_numpy(), known_classes=reference_classes)
    out = summary_dict(res)
    if keys.BEST_LABEL in predictions.columns:
        out["argmax"] = summary_dict(evaluate(y_true.to_numpy(), predictions[keys.BEST_LABEL].to_numpy()))
        for key in ("unknown_rate", "novel_unknown_rate", "n_cells_novel"):
            out["argmax"].pop(key, None)
        known = ~predictions[keys.PREDICTED_LABEL].eq(keys.UNKNOWN).to_numpy()
        if known.any():
            r = evaluate(y_true.to_numpy()[known], predictions[keys.PREDICTED_LABEL].to_numpy()[known])
            out["accuracy_on_called_cells"] = r["accuracy"]
    return out, res["per_class"], res["confusion"]


def write_metrics(
    outdir: Path,
    y_true: pd.Series,
    predictions: pd.DataFrame,
    extra: dict | None = None,
    reference_classes: list[str] | None = None,
) -> dict:
    metrics, per_class, confusion = metrics_tables(y_true, predictions, reference_classes)
    if extra:
        metrics.update(extra)
    write_json(outdir / keys.METRICS, metrics)
    write_csv(per_class, outdir / keys.PER_CLASS)
    write_csv(confusion, outdir / keys.CONFUSION)
    return metrics


def query_truth(query, labels_key: str) -> pd.Series | None:
    """The query's known labels (cells without one dropped), or None when there are none."""
    if labels_key not in query.obs.columns:
        return None
    lab = query.obs[labels_key]
    lab = lab[lab.notna() & (lab.astype(str).str.strip() != "")].astype(str)
    return lab if len(lab) else None


def read_truth(path: str | os.PathLike, labels_key: str | None = None) -> pd.Series:
    """Known labels by cell id from an .h5ad (``obs[labels_key]``) or a CSV/TSV (``cell_id`` column).

    ``labels_key`` None: for an .h5ad the column ``prepare`` recorded in it
    (:func:`seqalignatac.keys.labels_key_of`), else :data:`seqalignatac.keys.DEFAULT_LABELS_KEY`.
    """
    p = require_file(path, "truth file")
    if p.endswith(".h5ad"):
        adata = read_h5ad(p, "truth file", hint="pass an .h5ad with the labels in obs, or a CSV/TSV", backed=True)
        labels_key = keys.labels_key_of(adata, labels_key)
        obs = adata.obs
        if labels_key not in obs.columns:
            raise InputError(
                f"obs has no {labels_key!r} column (found: {', '.join(obs.columns)}); pass --labels-key", p
            )
        lab = obs[labels_key]
    else:
        labels_key = labels_key or keys.DEFAULT_LABELS_KEY
        sep = "\t" if p.endswith((".tsv", ".tsv.gz", ".txt")) else ","
        try:
            df = pd.read_csv(p, sep=sep)
        except Exception as e:
            raise InputError(f"cannot read as a table ({type(e).__name__}: {e})", p) from None
        if labels_key not in df.columns:
            raise InputError(
                f"no column {labels_key!r} (found: {', '.join(map(str, df.columns))}); pass --labels-key", p
            )
        id_col = keys.CELL_ID if keys.CELL_ID in df.columns else df.columns[0]
        lab = df.set_index(id_col)[labels_key]
        lab.index = lab.index.astype(str)
    lab = lab[lab.notna() & (lab.astype(str).str.strip() != "")].astype(str)
    lab.name = labels_key
    if lab.index.duplicated().any():
        raise InputError(f"cell id {lab.index[lab.index.duplicated()][0]!r} appears twice", p)
    return lab


def read_predictions(path: str | os.PathLike) -> pd.DataFrame:
    p = require_file(path, "predictions CSV")
    try:
        df = restore_formulas(
            pd.read_csv(p, dtype={keys.CELL_ID: str, keys.PREDICTED_LABEL: str, keys.BEST_LABEL: str})
        )
    except Exception as e:
        raise InputError(f"cannot read as CSV ({type(e).__name__}: {e})", p) from None
    for col in (keys.CELL_ID, keys.PREDICTED_LABEL):
        if col not in df.columns:
            raise InputError(f"no column {col!r}; pass the predictions.csv written by `seqalignatac annotate`", p)
    return df


def evaluate_files(predictions: str, truth: str, labels_key: str | None, outdir: str | os.PathLike) -> dict:
    """`seqalignatac evaluate`: score a predictions.csv against known labels; write the tables."""
    pred = read_predictions(predictions)
    lab = read_truth(truth, labels_key)
    common = pred[keys.CELL_ID].isin(lab.index).to_numpy()
    if not common.any():
        raise InputError(
            f"no cell id of {predictions} has a {lab.name!r} label here; check that the files belong together",
            truth,
        )
    if not common.all():
        warnings.warn(f"{int((~common).sum())} predicted cells have no known label and are not scored", stacklevel=2)
    pred = pred[common].reset_index(drop=True)
    y = lab.loc[pred[keys.CELL_ID]].reset_index(drop=True)
    with publish_dir(outdir, owned=METRICS_OUTPUTS) as stage:
        return write_metrics(
            stage,
            y,
            pred,
            {"n_predictions_without_truth": int((~common).sum())},
            reference_classes=reference_classes_of(predictions, pred),
        )


def reference_classes_of(predictions_path: str | os.PathLike, predictions: pd.DataFrame) -> list[str]:
    """The reference's classes: from annotate_summary.json beside predictions.csv when it is there,
    else every class the predictions name (arg-max and top-3 columns)."""
    summary = Path(predictions_path).with_name(keys.ANNOTATE_SUMMARY)
    if summary.is_file():
        try:
            classes = json.loads(summary.read_text()).get("classes")
        except (OSError, ValueError):
            classes = None
        if classes:
            return [str(c) for c in classes]
    cols = [c for c in (keys.BEST_LABEL, "top1_label", "top2_label", "top3_label") if c in predictions.columns]
    if not cols:  # only predicted_label: every named class but Unknown
        cols = [keys.PREDICTED_LABEL]
    names = pd.unique(predictions[cols].to_numpy().ravel())
    return sorted({str(c) for c in names if isinstance(c, str) and c and c != UNKNOWN})


def write_outputs(result, outdir: str | os.PathLike, labels_key: str | None = None) -> dict[str, Any]:
    """predictions.csv, query_annotated.h5ad, metrics (when the query has labels in ``obs[labels_key]``,
    default: the run's labels key), the model folder (``model/``, :class:`~.annotator.Annotator`),
    training curve (GDA) and summary."""
    with publish_dir(outdir, owned=ANNOTATE_OUTPUTS) as stage:  # all-new or all-old, never a mix
        return _write_annotate_files(result, stage, labels_key or result.summary["labels_key"])


def _write_annotate_files(result, out: Path, labels_key: str) -> dict[str, Any]:
    summary = dict(result.summary)
    write_csv(result.predictions, out / keys.PREDICTIONS, index=False)
    write_h5ad(result.query, out / keys.QUERY_ANNOTATED)
    if result.clusters is not None:
        write_csv(result.clusters, out / keys.QUERY_CLUSTERS, index=False)
    truth = query_truth(result.query, labels_key)
    if truth is not None:
        pred = result.predictions.set_index(keys.CELL_ID).loc[truth.index].reset_index()
        metrics = write_metrics(out, truth.reset_index(drop=True), pred, reference_classes=list(summary["classes"]))
        summary["metrics"] = {
            k: metrics[k] for k in ("accuracy", "macro_f1", "unknown_rate", "accuracy_known", "novel_unknown_rate")
        }
        summary["metrics"]["argmax_accuracy"] = metrics["argmax"]["accuracy"]
        summary["metrics"]["argmax_macro_f1"] = metrics["argmax"]["macro_f1"]
    if result.annotator is not None:
        result.annotator.save(out / keys.ANNOTATOR_DIR)
    if result.train is not None:
        write_csv(pd.DataFrame(result.train.curve), out / keys.TRAINING_CURVE, sep="\t", index=False)
    summary["outputs"] = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    write_json(out / keys.ANNOTATE_SUMMARY, summary)
    return summary


__all__ = ["evaluate_files", "write_outputs", "read_cells"]
