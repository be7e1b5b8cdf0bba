"""Stage 2's result: the per-cell calls turned into the predictions table, the annotated query
AnnData (every query cell, named by the user's barcodes) and the summary."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.models.stage2.clusters import cluster_table, novelty
from seqalignatac.models.stage2.inputs import ReferenceSet, SplitCells
from seqalignatac.models.stage2.train import TrainResult
from seqalignatac.models.stage2.unknown import confidence_entropy, unknown_reasons
from seqalignatac.models.stage2.unknown_reasons import NO_SIGNAL, REASONS

if TYPE_CHECKING:  # the model object is built from these results; no import at run time
    from seqalignatac.models.stage2.annotator import Annotator


@dataclass
class Stage2Result:
    query: ad.AnnData
    summary: dict[str, Any]
    predictions: pd.DataFrame
    clusters: pd.DataFrame | None = None  # query_clusters.csv: does the reference explain each cluster
    train: TrainResult | None = None
    annotator: Annotator | None = None  # the fitted model: save(folder), load(folder).predict(cells)


def _spread(values: np.ndarray, rows: np.ndarray, fill: Any) -> np.ndarray:
    """``values`` (one per True of ``rows``) placed at those rows; ``fill`` elsewhere."""
    values = np.asarray(values)
    dtype = object if values.dtype == object or isinstance(fill, str) else np.result_type(values.dtype, type(fill))
    out = np.full((rows.size, *values.shape[1:]), fill, dtype=dtype)
    out[rows] = values
    return out


@dataclass
class Calls:
    """What one run computed for the query cells with signal (and the held-out reference cells)."""

    q_proba: np.ndarray
    held_proba: np.ndarray
    flags: np.ndarray
    unknown_info: dict
    q_dist: np.ndarray | None
    hidden: np.ndarray | None  # GDA's encoder output of the first model (None for knn)
    s_dist: np.ndarray | None = None  # the neighbourhood scores (None: that test is off)
    clusters: np.ndarray | None = None  # Leiden cluster of each query cell with signal


def assemble_result(
    split: SplitCells,
    classes: np.ndarray,
    calls: Calls,
    ref: ReferenceSet,
    summary_head: dict[str, Any],
    summary_tail: dict[str, Any],
) -> Stage2Result:
    """The query AnnData, predictions table and summary of a run (every query cell, with signal or not).

    Parameters
    ----------
    split, classes
        The run's cells (:func:`split_domains`) and class order.
    calls
        Probabilities, Unknown flags and thresholds, distance scores, hidden layer of the query
        cells with signal (and the held-out reference probabilities).
    ref
        The training and held-out reference cells (held-out accuracy, cell counts).
    summary_head, summary_tail
        Summary entries placed before and after the computed ones.

    Returns
    -------
    Stage2Result
        ``query``: a copy of the query cells (named by ``obs['original_id']`` when present) with
        ``obs['seqalignatac_prediction' | '_unknown_reason' | '_confidence' | '_entropy' | '_unknown'
        | '_best_label']``, ``obsm['seqalignatac_proba']`` (and ``obsm['seqalignatac_hidden']`` for
        GDA), ``uns['seqalignatac']['classes' | 'stage2']``; ``predictions``; ``summary``.
    """
    q_proba = calls.q_proba
    conf, ent = confidence_entropy(q_proba)
    best = classes[q_proba.argmax(axis=1)]
    predicted = np.where(calls.flags, keys.UNKNOWN, best)
    reasons = unknown_reasons(calls.flags, calls.unknown_info, conf, calls.q_dist, calls.s_dist)
    nov = np.full(best.size, np.nan)
    if calls.s_dist is not None and "novelty_log_mean" in calls.unknown_info:
        nov = novelty(calls.s_dist, calls.unknown_info)
    clusters = None
    if calls.clusters is not None:
        # a cluster past the threshold is not explained; without the neighbourhood test, only the Unknown share says so
        threshold = calls.unknown_info.get("novelty_threshold", np.inf)
        clusters = cluster_table(calls.clusters, best, calls.flags, nov, threshold)
    order = np.argsort(-q_proba, axis=1, kind="stable")[:, :3]
    top = []  # (labels, probabilities) of the 3 most likely classes, for the cells with signal
    for j in range(3):
        if j < classes.size:
            top.append((classes[order[:, j]], np.take_along_axis(q_proba, order[:, j : j + 1], 1)[:, 0]))
        else:
            top.append((np.full(order.shape[0], "", dtype=object), np.full(order.shape[0], np.nan)))

    # Back to every query cell: those without signal get Unknown (no_signal) and no numbers.
    all_cells, no_signal = split.all_cells, split.no_signal
    is_query_all = all_cells.obs[keys.DOMAIN].astype(str).to_numpy() == keys.QUERY
    query = all_cells[is_query_all].copy()
    if keys.ORIGINAL_ID in query.obs.columns:
        # The user's own barcodes (prepare prefixes ids only to keep reference and query apart), so
        # predictions join back to the user's query file and `evaluate` scores against it.
        query.obs_names = pd.Index(query.obs[keys.ORIGINAL_ID].astype(str).to_numpy())
    sig = ~no_signal[is_query_all]
    predicted, best = _spread(predicted, sig, keys.UNKNOWN), _spread(best, sig, "")
    conf, ent, q_proba = _spread(conf, sig, np.nan), _spread(ent, sig, np.nan), _spread(q_proba, sig, np.nan)
    flags, reasons = _spread(calls.flags, sig, True), _spread(reasons, sig, NO_SIGNAL)
    pred = pd.DataFrame(
        {
            keys.CELL_ID: query.obs_names.to_numpy(),
            keys.PREDICTED_LABEL: predicted,
            keys.CONFIDENCE: conf,
            keys.ENTROPY: ent,
            keys.IS_UNKNOWN: flags,
            keys.UNKNOWN_REASON: reasons,
            keys.BEST_LABEL: best,
        }
    )
    for j, (labels_j, probs_j) in enumerate(top):
        pred[f"top{j + 1}_label"] = _spread(labels_j, sig, "")
        pred[f"top{j + 1}_prob"] = _spread(probs_j, sig, np.nan)
    pred[keys.NOVELTY] = _spread(nov, sig, np.nan)
    pred[keys.QUERY_CLUSTER] = _cluster_column(calls.clusters, sig)

    obs = query.obs
    obs[keys.PREDICTION] = pd.Categorical(predicted)
    obs[keys.UNKNOWN_REASON_OBS] = pd.Categorical(reasons)
    obs[keys.CONFIDENCE_OBS] = conf.astype(np.float32)
    obs[keys.ENTROPY_OBS] = ent.astype(np.float32)
    obs[keys.IS_UNKNOWN_OBS] = flags
    # missing: no signal.  numpy's stubs reject None here, which np.where takes as an object scalar.
    obs[keys.BEST_LABEL_OBS] = pd.Categorical(np.where(best == "", None, best))  # type: ignore[call-overload]
    obs[keys.NOVELTY_OBS] = pred[keys.NOVELTY].to_numpy(dtype=np.float32)
    obs[keys.QUERY_CLUSTER_OBS] = pd.Categorical(pred[keys.QUERY_CLUSTER].astype("string").to_numpy())
    query.obsm[keys.PROBA] = q_proba.astype(np.float32)
    if calls.hidden is not None:
        query.obsm[keys.HIDDEN] = _spread(calls.hidden, sig, np.nan).astype(np.float32)
    reason_counts = pd.Series(reasons[flags]).value_counts()
    held_acc = float((calls.held_proba.argmax(1) == ref.y_held).mean()) if ref.y_held.size else None
    summary: dict[str, Any] = {
        **summary_head,
        "n_reference": int(split.is_ref.sum()),
        "n_reference_trained": int(ref.y_train.size),
        "n_reference_held_out": int(ref.y_held.size),
        "n_reference_no_signal": int(no_signal[~is_query_all].sum()),
        "n_query": int(sig.size),
        "n_query_no_signal": int((~sig).sum()),
        keys.CLASSES: [str(c) for c in classes],
        "unknown": calls.unknown_info,
        "unknown_rate": float(flags.mean()),
        "unknown_reasons": {r: int(reason_counts.get(r, 0)) for r in REASONS},
        "held_out_reference_accuracy": held_acc,
        "query_clusters": None if clusters is None else int(len(clusters)),
        "query_clusters_not_explained": None
        if clusters is None
        else [int(c) for c in clusters.loc[~clusters[keys.EXPLAINED], keys.QUERY_CLUSTER]],
        **summary_tail,
    }
    uns = dict(query.uns.get(keys.UNS, {}))
    uns[keys.CLASSES] = summary[keys.CLASSES]
    uns["stage2"] = {k: v for k, v in summary.items() if k != keys.CLASSES and v is not None}  # h5ad has no None
    query.uns[keys.UNS] = uns
    return Stage2Result(query=query, summary=summary, predictions=pred, clusters=clusters)


def _cluster_column(clusters: np.ndarray | None, sig: np.ndarray) -> pd.arrays.IntegerArray:
    """The query_cluster column: the cluster of each cell with signal, missing for the others."""
    out = pd.array(np.full(sig.size, pd.NA), dtype="Int64")
    if clusters is not None:
        out[sig] = clusters
    return out


def summary_head(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {
        "method": method,
        "embedding_key": settings["embedding_key"],
        "labels_key": settings["labels_key"],
        "seed": settings["seed"],
    }
