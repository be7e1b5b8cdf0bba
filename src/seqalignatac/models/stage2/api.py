"""Stage 2 as a Python function: cell embeddings (AnnData) in, annotated query AnnData out.

:func:`annotate_full` runs five steps, each a function here: split and check the cells
(:func:`split_domains`, :func:`reference_labels`, :func:`calibration_split`), fit the ensemble of
GDA models (:func:`fit_gda`), the kNN and logistic-regression transfers and their mix
(:func:`class_probabilities`), the Unknown calibration and calls (:func:`query_evidence`,
:func:`~.unknown.call_unknown`) and the outputs (:func:`assemble_result`).  The fitted parts are kept
in an :class:`~.annotator.Annotator`, whose ``predict`` runs the same functions again.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np

from seqalignatac import keys
from seqalignatac.device import resolve_device
from seqalignatac.models.stage2.inputs import (
    ReferenceSet,
    calibration_split,
    reference_labels,
    split_domains,
)
from seqalignatac.models.stage2.options import check_annotate_options, config_with
from seqalignatac.models.stage2.results import Calls, Stage2Result, assemble_result, summary_head
from seqalignatac.models.stage2.train import GDAConfig, fit_gda, seed_everything, set_threads
from seqalignatac.models.stage2.transfer import class_probabilities, fit_linear
from seqalignatac.models.stage2.unknown import CLUSTER_Z, calibrate_unknown, confidence_entropy, query_evidence

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


# --- the cells: domains, labels, calibration split ---------------------------------------------


# --- settings ------------------------------------------------------------------------------------


# --- the transfers and the mix -------------------------------------------------------------------


# --- the ensemble of GDA models --------------------------------------------------------------------


# --- Unknown -----------------------------------------------------------------------------------


# --- outputs -----------------------------------------------------------------------------------


# --- the whole step ----------------------------------------------------------------------------


def annotate_full(
    cells: ad.AnnData,
    embedding_key: str = keys.EMBEDDING,
    method: str = "gda",
    *,
    labels_key: str | None = None,
    config: GDAConfig | dict[str, Any] | None = None,
    unknown: str = "distance",
    unknown_quantile: float | None = None,
    unknown_smooth: int = 15,
    unknown_smooth_quantile: float = 0.005,
    unknown_cluster_z: float = CLUSTER_Z,
    calibration_fraction: float = 0.1,
    knn_k: int = 15,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
    source: str | None = None,
) -> Stage2Result:
    """Annotate the query cells of ``cells`` and keep the fitted model.

    Parameters
    ----------
    cells
        Stage 1's cell embeddings: ``obs['domain']`` (reference/query), the reference labels in
        ``obs[labels_key]``, the embedding in ``obsm[embedding_key]``.  Not modified.
    embedding_key, method
        obsm key of the embedding; ``"gda"`` (A2GNN ensemble + kNN + logistic-regression mix) or
        ``"knn"`` (kNN label transfer alone).
    labels_key
        obs column with the reference labels; None: the one ``prepare`` recorded
        (:func:`seqalignatac.keys.labels_key_of`).
    config
        A :class:`GDAConfig`, or a dict of some of its fields (the rest default).
    unknown, unknown_quantile, unknown_smooth, unknown_smooth_quantile, unknown_cluster_z, calibration_fraction, knn_k
        The Unknown test and the kNN baseline (docs/stage2.md, docs/settings.md).
    device, seed, threads, progress, source
        Where and how to run; ``source`` names the input file in error messages.

    Returns
    -------
    Stage2Result
        ``query``: a copy of the query cells with the obs/obsm/uns fields :func:`assemble_result`
        writes; ``predictions`` (the predictions.csv table); ``summary``; ``train`` (GDA: the
        ensemble's probabilities and training curve); ``annotator``: the fitted
        :class:`~.annotator.Annotator`, whose ``predict(cells)`` gives the same predictions.

    Raises
    ------
    InputError
        A setting out of range or inconsistent cells, with a one-line message naming it.
    """
    from seqalignatac.models.stage2.annotator import Annotator

    config = config_with(**config) if isinstance(config, dict) else (config or GDAConfig())
    labels_key = keys.labels_key_of(cells, labels_key)
    settings: dict[str, Any] = {
        "embedding_key": embedding_key,
        "labels_key": labels_key,
        "unknown": unknown,
        "unknown_quantile": unknown_quantile,
        "unknown_smooth": unknown_smooth,
        "unknown_smooth_quantile": unknown_smooth_quantile,
        "unknown_cluster_z": unknown_cluster_z,
        "calibration_fraction": calibration_fraction,
        "knn_k": knn_k,
        "seed": seed,
        "device": device,
        "threads": threads,
    }
    check_annotate_options(method, config=config, **{k: v for k, v in settings.items() if k not in _NOT_CHECKED})
    set_threads(threads)
    seed_everything(seed)
    t0 = time.perf_counter()
    split = split_domains(cells, embedding_key, source)
    ref_str, has_label = reference_labels(split, labels_key, source)
    classes, y_ref, held, train_mask = calibration_split(ref_str, has_label, calibration_fraction, seed)
    ref = ReferenceSet(split.x_ref[train_mask], y_ref[train_mask], split.x_ref[held], y_ref[held])
    log.info(
        "stage 2 (%s): %d reference cells (%d trained on, %d held out for calibration), %d query cells, %d classes",
        method,
        split.x_ref.shape[0],
        int(train_mask.sum()),
        int(held.sum()),
        split.x_query.shape[0],
        classes.size,
    )
    train_res, graph_info, gda, linear = _fit(
        method, split, ref, y_ref, train_mask, held, classes.size, config, device, seed, threads, progress
    )
    q_proba, held_proba, knn_info = class_probabilities(
        method, config, ref, split.x_query, classes.size, knn_k, threads, gda, linear
    )
    conf, _ = confidence_entropy(q_proba)
    held_conf = confidence_entropy(held_proba)[0] if held.any() else np.array([])
    q_dist, h_dist, s_dist, clusters = query_evidence(settings, split.x_query, q_proba.argmax(axis=1), ref, threads)
    flags, unknown_info = calibrate_unknown(settings, conf, held_conf, q_dist, h_dist, s_dist, clusters)
    calls = Calls(
        q_proba,
        held_proba,
        flags,
        unknown_info,
        q_dist,
        None if train_res is None else train_res.query_hidden,
        s_dist,
        clusters,
    )
    tail: dict[str, Any] = {
        "graph": graph_info or knn_info,
        "config": config.to_dict() if method == "gda" else {"knn_k": knn_k},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if train_res is not None:
        tail.update(
            train_seconds=round(train_res.seconds, 3),
            device=str(resolve_device(device)),
            final_loss=train_res.curve[-1] if train_res.curve else None,
        )
    result = assemble_result(split, classes, calls, ref, summary_head(method, settings), tail)
    result.train = train_res
    result.annotator = Annotator(
        method=method,
        classes=[str(c) for c in classes],
        config=config,
        settings=settings,
        reference_ids=split.reference_ids,
        train_rows=np.flatnonzero(train_mask),
        held_rows=np.flatnonzero(held),
        reference=ref,
        linear=linear,
        networks=[] if train_res is None else train_res.models,
        unknown=unknown_info,
    )
    return result


# Settings recorded in the model but not range-checked (names, not values).
_NOT_CHECKED = ("embedding_key", "labels_key")


def _fit(method, split, ref, y_ref, train_mask, held, n_classes, config, device, seed, threads, progress):
    """GDA only: the trained ensemble, its graph sizes, its (query, held-out) probabilities, the logistic regression."""
    if method != "gda":
        return None, {}, None, None
    train_res, graph_info = fit_gda(split, y_ref, train_mask, n_classes, config, device, seed, threads, progress)
    gda = (train_res.query_proba, train_res.reference_proba[held])
    linear = fit_linear(ref, config.linear_c) if config.linear_mix > 0 else None
    return train_res, graph_info, gda, linear


def annotate(
    cells: ad.AnnData,
    embedding_key: str = keys.EMBEDDING,
    method: str = "gda",
    **kwargs: Any,
) -> tuple[ad.AnnData, dict[str, Any]]:
    """Annotate the query cells of a stage-1 ``cell_embeddings`` AnnData.

    Returns ``(query AnnData, summary)``: every query cell, with
    ``obs['seqalignatac_prediction' | '_unknown_reason' | '_confidence' | '_entropy' | '_unknown' |
    '_best_label']``, ``obsm['seqalignatac_proba']`` (class order in ``uns['seqalignatac']['classes']``),
    ``obsm['seqalignatac_hidden']`` (GDA) and ``uns['seqalignatac']['stage2']`` (the summary).
    Cells that stage 1 flagged as without signal (``obs['has_signal']`` False) are ``Unknown`` with
    reason ``no_signal`` and NaN numbers; they take no part in the graphs or the classifier.
    Keyword arguments: see :func:`annotate_full` (which also returns the fitted model).
    """
    res = annotate_full(cells, embedding_key, method, **kwargs)
    return res.query, res.summary
