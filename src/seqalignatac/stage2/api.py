"""Stage 2 as a Python function: cell embeddings (AnnData) in, annotated query AnnData out."""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, replace
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd

from ..cli_types import DEVICE, SEED, THREADS, check_all
from ..device import resolve_device
from ..errors import InputError
from ..metrics import UNKNOWN
from ..stage1 import SIGNAL_KEY
from ..unknown_reasons import NO_SIGNAL, REASON_COLUMN, REASONS
from .graphs import EXACT_MAX_CELLS, KNN_METHODS, build_graph, clip_k, l2_normalize, neighbour_votes
from .options import ANNOTATE_RANGES, GDA_RANGES
from .train import (
    CLASS_WEIGHTS,
    INPUT_NORMS,
    GDAConfig,
    TrainResult,
    seed_everything,
    train_gda,
)
from .unknown import (
    STRATEGIES,
    call_unknown,
    confidence_entropy,
    distance_scores,
    held_out_mask,
    smooth_scores,
    unknown_reasons,
)

log = logging.getLogger(__name__)

METHODS = ("gda", "knn")


@dataclass
class Stage2Result:
    query: ad.AnnData
    summary: dict[str, Any]
    predictions: pd.DataFrame
    train: TrainResult | None = None


def _validate(cells: ad.AnnData, embedding_key: str, label_key: str, source: str | None):
    """Split ``cells`` into reference and query; every user mistake -> InputError."""
    if "domain" not in cells.obs.columns:
        raise InputError(
            "obs has no 'domain' column; stage 2 needs obs['domain'] = 'reference' or 'query' "
            "for every cell (run `seqalignatac prepare` then `train`, which set it)",
            source,
        )
    domain = cells.obs["domain"].astype(str).to_numpy()
    bad = sorted(set(domain) - {"reference", "query"})
    if bad:
        raise InputError(
            f"obs['domain'] has values {bad[:5]}; only 'reference' and 'query' are allowed", source
        )
    if embedding_key not in cells.obsm:
        from_train = "stage1" in (cells.uns.get("seqalignatac") or {})
        hint = ("pass the right --embedding-key" if from_train else
                "it is not the cell_embeddings.h5ad written by `seqalignatac train`: run train first")
        raise InputError(f"obsm has no {embedding_key!r} (found: {', '.join(cells.obsm.keys()) or 'none'}); {hint}",
                         source)
    x = np.asarray(cells.obsm[embedding_key])
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"obsm[{embedding_key!r}] must be a cells x dims matrix, got shape {x.shape}", source)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        first = cells.obs_names[np.flatnonzero(~finite)[0]]
        raise InputError(
            f"obsm[{embedding_key!r}] has NaN or infinite values in {int((~finite).sum())} cells "
            f"(first: {first!r}); re-run stage 1 or drop those cells",
            source,
        )
    is_ref = domain == "reference"
    if not (~is_ref).any():
        raise InputError("the query has no cells (no obs['domain'] == 'query'); nothing to annotate", source)
    if not is_ref.any():
        raise InputError("the reference has no cells (no obs['domain'] == 'reference')", source)
    if label_key not in cells.obs.columns:
        raise InputError(
            f"obs has no {label_key!r} column, so the reference has no labels; pass --label-key", source
        )
    labels = cells.obs[label_key]
    ref_labels = labels[is_ref]
    has_label = ref_labels.notna().to_numpy() & (ref_labels.astype(str).str.strip() != "").to_numpy()
    if not has_label.any():
        raise InputError(
            f"the reference has no labels: obs[{label_key!r}] is empty for all {int(is_ref.sum())} reference cells",
            source,
        )
    if not has_label.all():
        warnings.warn(
            f"{int((~has_label).sum())} reference cells have no label; they stay in the graph but are not trained on",
            stacklevel=3,
        )
    ref_str = ref_labels.astype(str).to_numpy()
    if (ref_str[has_label] == UNKNOWN).any():
        raise InputError(f"the reference label {UNKNOWN!r} is reserved for unknown cells; rename that class", source)
    counts = pd.Series(ref_str[has_label]).value_counts()
    singles = sorted(counts.index[counts < 2])
    if singles:
        warnings.warn(
            f"reference classes with a single cell: {', '.join(map(str, singles))}; "
            "they are trained on but cannot be held out for calibration",
            stacklevel=3,
        )
    return x.astype(np.float32), is_ref, ref_str, has_label


def _no_signal_cells(cells: ad.AnnData, source: str | None) -> np.ndarray:
    """Cells that stage 1 flagged as having no accessible peak (``obs[SIGNAL_KEY]`` False)."""
    if SIGNAL_KEY not in cells.obs.columns:
        return np.zeros(cells.n_obs, dtype=bool)
    no_signal = ~cells.obs[SIGNAL_KEY].astype(bool).to_numpy()
    if no_signal.any() and "domain" in cells.obs.columns:
        is_query = cells.obs["domain"].astype(str).to_numpy() == "query"
        if is_query.any() and no_signal[is_query].all():
            raise InputError(f"none of the {int(is_query.sum())} query cells has an accessible shared peak, so "
                             "nothing can be compared with the reference; check that the query's peaks overlap "
                             "the reference's (same genome build? see prepare_summary.json)", source)
    return no_signal


def _spread(values: np.ndarray, rows: np.ndarray, fill: Any) -> np.ndarray:
    """``values`` (one per True of ``rows``) placed at those rows; ``fill`` elsewhere."""
    values = np.asarray(values)
    dtype = object if values.dtype == object or isinstance(fill, str) else np.result_type(values.dtype, type(fill))
    out = np.full((rows.size, *values.shape[1:]), fill, dtype=dtype)
    out[rows] = values
    return out


def _check_config(config: GDAConfig) -> None:
    """The option ranges (the CLI's own types, so the same messages) and the cross-option rules."""
    check_all(config.to_dict(), GDA_RANGES)
    if config.input_norm not in INPUT_NORMS:
        raise InputError(f"--input-norm must be one of {', '.join(INPUT_NORMS)}, not {config.input_norm!r}")
    if config.knn_space not in ("input", "hidden"):
        raise InputError(f"--knn-space must be input or hidden, not {config.knn_space!r}")
    if config.class_weight not in CLASS_WEIGHTS:
        raise InputError(f"--class-weight must be one of {', '.join(CLASS_WEIGHTS)}, not {config.class_weight!r}")
    if config.knn_method not in KNN_METHODS:
        raise InputError(f"--knn-method must be one of {', '.join(KNN_METHODS)}, not {config.knn_method!r}")
    if not config.linear_mix <= 1.0 - config.knn_mix:
        raise InputError(f"--linear-mix must be in [0, 1 - --knn-mix] = [0, {1.0 - config.knn_mix:g}], "
                         f"not {config.linear_mix}")


def check_annotate_options(method: str = "gda", unknown: str = "distance", config: GDAConfig | None = None,
                           device: str = "auto", seed: int = 0, threads: int | None = None, **options: Any) -> None:
    """Every annotate setting checked as the CLI checks it (InputError naming the option)."""
    if method not in METHODS:
        raise InputError(f"--method must be one of {', '.join(METHODS)}, not {method!r}")
    if unknown not in STRATEGIES:
        raise InputError(f"--unknown must be one of {', '.join(STRATEGIES)}, not {unknown!r}")
    check_all({**options, "device": device, "seed": seed, "threads": threads},
              {**ANNOTATE_RANGES, "device": DEVICE, "seed": SEED, "threads": THREADS})
    _check_config(config or GDAConfig())


def knn_transfer(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    train_mask: np.ndarray,
    held: np.ndarray,
    x_query: np.ndarray,
    n_classes: int,
    knn_k: int,
    threads: int | None,
    vote_power: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """kNN label transfer (cosine, vote fractions): (query proba, held-out proba, k used).

    ``vote_power`` > 0 divides each class's vote fraction by the class's number of training cells
    to that power, then renormalises (0.5: by its square root; 1: fully class-balanced votes), so
    rare classes are not out-voted by large neighbours.
    """
    from sklearn.neighbors import KNeighborsClassifier

    kk = clip_k(knn_k, int(train_mask.sum()) + 1, "reference")
    xr = l2_normalize(x_ref)
    q_proba = np.zeros((x_query.shape[0], n_classes), dtype=np.float32)
    held_proba = np.zeros((int(held.sum()), n_classes), dtype=np.float32)
    if int(train_mask.sum()) > EXACT_MAX_CELLS:
        # Approximate neighbours for atlas-sized references, as for the graphs.
        votes = neighbour_votes(xr[train_mask], y_ref[train_mask], np.vstack([x_query, xr[held]]), max(kk, 1),
                                n_classes, threads=threads)
        q_proba, held_proba = votes[: x_query.shape[0]], votes[x_query.shape[0]:]
    else:
        clf = KNeighborsClassifier(n_neighbors=max(kk, 1), n_jobs=threads)
        clf.fit(xr[train_mask], y_ref[train_mask])
        cols = clf.classes_
        q_proba[:, cols] = clf.predict_proba(l2_normalize(x_query))
        if held.any():
            held_proba[:, cols] = clf.predict_proba(xr[held])
    if vote_power > 0:
        counts = np.bincount(y_ref[train_mask], minlength=n_classes).astype(np.float64)
        scale = 1.0 / np.maximum(counts, 1.0) ** float(vote_power)
        q_proba, held_proba = (_rescale(p, scale) for p in (q_proba, held_proba))
    return q_proba, held_proba, int(kk)


def linear_transfer(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    train_mask: np.ndarray,
    held: np.ndarray,
    x_query: np.ndarray,
    n_classes: int,
    c: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Class-balanced multinomial logistic regression on the input embedding: (query, held-out) proba."""
    from sklearn.linear_model import LogisticRegression

    q_proba = np.zeros((x_query.shape[0], n_classes), dtype=np.float32)
    held_proba = np.zeros((int(held.sum()), n_classes), dtype=np.float32)
    yt = y_ref[train_mask]
    if np.unique(yt).size < 2:  # one class: logistic regression is undefined, all mass on it
        q_proba[:, yt[0]] = 1.0
        held_proba[:, yt[0]] = 1.0
        return q_proba, held_proba
    clf = LogisticRegression(C=float(c), class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notices
        clf.fit(x_ref[train_mask], yt)
    q_proba[:, clf.classes_] = clf.predict_proba(x_query)
    if held.any():
        held_proba[:, clf.classes_] = clf.predict_proba(x_ref[held])
    return q_proba, held_proba


def _rescale(proba: np.ndarray, scale: np.ndarray) -> np.ndarray:
    p = proba * scale[None, :].astype(np.float32)
    return (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def annotate_full(
    cells: ad.AnnData,
    embedding_key: str = "X_seqalignatac",
    method: str = "gda",
    *,
    label_key: str = "label",
    config: GDAConfig | None = None,
    unknown: str = "distance",
    unknown_quantile: float | None = None,
    unknown_k: int = 30,
    unknown_smooth: int = 30,
    unknown_smooth_quantile: float = 0.005,
    calibration_fraction: float = 0.1,
    knn_k: int = 15,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
    source: str | None = None,
) -> Stage2Result:
    """Annotate the query cells of ``cells``; see :func:`annotate` for the return layout."""
    config = config or GDAConfig()
    check_annotate_options(method, unknown, config, device, seed, threads, unknown_quantile=unknown_quantile,
                           unknown_k=unknown_k, unknown_smooth=unknown_smooth,
                           unknown_smooth_quantile=unknown_smooth_quantile,
                           calibration_fraction=calibration_fraction, knn_k=knn_k)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    seed_everything(seed)
    t0 = time.perf_counter()
    # Cells without signal (no accessible shared peak, no embedding) stay out of the graphs and the
    # classifier, but every query cell gets a row: those are written back as Unknown (no_signal).
    all_cells = cells
    no_signal = _no_signal_cells(cells, source)
    if no_signal.any():
        cells = cells[~no_signal]
    x, is_ref, ref_str, has_label = _validate(cells, embedding_key, label_key, source)
    classes = np.array(sorted(set(ref_str[has_label])), dtype=object)
    class_index = {c: i for i, c in enumerate(classes)}
    y_ref = np.array([class_index.get(c, -1) for c in np.where(has_label, ref_str, "")], dtype=np.int64)
    x_ref, x_query = x[is_ref], x[~is_ref]
    labeled = np.flatnonzero(has_label)
    held = np.zeros(x_ref.shape[0], dtype=bool)
    held[labeled[held_out_mask(y_ref[labeled], calibration_fraction, seed)]] = True
    train_mask = has_label & ~held
    log.info(
        "stage 2 (%s): %d reference cells (%d trained on, %d held out for calibration), %d query cells, %d classes",
        method, x_ref.shape[0], int(train_mask.sum()), int(held.sum()), x_query.shape[0], classes.size,
    )

    train_res: TrainResult | None = None
    if method == "gda":
        dev = resolve_device(device)
        a_ref = build_graph(x_ref, config.k, what="reference", method=config.knn_method, threads=threads, seed=seed)
        a_query = build_graph(x_query, config.k, what="query", method=config.knn_method, threads=threads, seed=seed)
        input_knn = None
        mix_k = config.knn_mix_k or knn_k
        if config.pseudo_agree and config.self_train_epochs > 0:
            input_knn = knn_transfer(x_ref, y_ref, train_mask, held, x_query, classes.size, mix_k, threads,
                                     vote_power=config.knn_vote_power)
        train_res = train_gda(
            x_ref, np.maximum(y_ref, 0), train_mask, x_query, a_ref, a_query, classes.size, config,
            device=dev, seed=seed, progress=progress, query_knn_proba=None if input_knn is None else input_knn[0],
        )
        graph_info = {"reference_nnz": int(a_ref.nnz), "query_nnz": int(a_query.nnz)}
        # Final probabilities: (1 - w - v) GDA + w kNN label transfer + v logistic regression
        # (kNN is strong in-domain, GDA across the shift, logistic regression on rare classes).
        w, v = float(config.knn_mix), float(config.linear_mix)
        g = max(0.0, 1.0 - w - v)  # max: rounding when w + v = 1
        q_proba, held_proba = g * train_res.query_proba, g * train_res.reference_proba[held]
        if w > 0:
            if config.knn_space == "hidden":
                kq, kh, _ = knn_transfer(train_res.reference_hidden, y_ref, train_mask, held, train_res.query_hidden,
                                         classes.size, mix_k, threads, vote_power=config.knn_vote_power)
            elif input_knn is not None:
                kq, kh, _ = input_knn
            else:
                kq, kh, _ = knn_transfer(x_ref, y_ref, train_mask, held, x_query, classes.size, mix_k, threads,
                                         vote_power=config.knn_vote_power)
            q_proba, held_proba = q_proba + w * kq, held_proba + w * kh
        if v > 0:
            lq, lh = linear_transfer(x_ref, y_ref, train_mask, held, x_query, classes.size, config.linear_c)
            q_proba, held_proba = q_proba + v * lq, held_proba + v * lh
    else:
        q_proba, held_proba, kk = knn_transfer(x_ref, y_ref, train_mask, held, x_query, classes.size, knn_k, threads)
        graph_info = {"knn_k": int(kk)}

    conf, ent = confidence_entropy(q_proba)
    held_conf, _ = confidence_entropy(held_proba) if held.any() else (np.array([]), None)
    best_idx = q_proba.argmax(axis=1)
    q_dist = h_dist = None
    if unknown in ("distance", "both") and held.any():
        q_dist, h_dist = distance_scores(
            x_query, best_idx, x_ref[held], y_ref[held], x_ref[train_mask], y_ref[train_mask], unknown_k, threads
        )
    # Unknown (docs/stage2.md, step 4): per-cell distance test, OR-ed with the neighbourhood test on
    # scores smoothed over the query's own kNN graph when --unknown-smooth > 0 (then the per-cell
    # test defaults to quantile 0.01, else 0.02; the confidence test always defaults to 0.02).
    smoothing = unknown_smooth > 0 and unknown_smooth_quantile > 0
    conf_q = 0.02 if unknown_quantile is None else unknown_quantile
    dist_q = (0.01 if smoothing else 0.02) if unknown_quantile is None else unknown_quantile
    s_dist = smooth_scores(x_query, q_dist, unknown_smooth, threads) if (q_dist is not None and smoothing) else None
    flags, unknown_info = call_unknown(unknown, conf_q, conf, held_conf, q_dist, h_dist, s_dist,
                                       unknown_smooth_quantile if smoothing else 0.0, dist_q)
    if q_dist is not None:
        unknown_info["k"] = int(unknown_k)
        unknown_info["smooth_k"] = int(unknown_smooth)
    best = classes[best_idx]
    predicted = np.where(flags, UNKNOWN, best)

    reasons = unknown_reasons(flags, unknown_info, conf, q_dist)
    order = np.argsort(-q_proba, axis=1, kind="stable")[:, :3]
    top = []  # (labels, probabilities) of the 3 most likely classes, for the cells with signal
    for j in range(3):
        if j < classes.size:
            top.append((classes[order[:, j]], np.take_along_axis(q_proba, order[:, j : j + 1], 1)[:, 0]))
        else:
            top.append((np.full(order.shape[0], "", dtype=object), np.full(order.shape[0], np.nan)))

    # Back to every query cell: those without signal get Unknown (no_signal) and no numbers.
    is_query_all = all_cells.obs["domain"].astype(str).to_numpy() == "query"
    query = all_cells[is_query_all].copy()
    if "original_id" in query.obs.columns:
        # The user's own barcodes (prepare prefixes ids only to keep reference and query apart), so
        # predictions join back to the user's query file and `evaluate` scores against it.
        query.obs_names = pd.Index(query.obs["original_id"].astype(str).to_numpy())
    sig = ~no_signal[is_query_all]
    predicted, best = _spread(predicted, sig, UNKNOWN), _spread(best, sig, "")
    conf, ent, q_proba = _spread(conf, sig, np.nan), _spread(ent, sig, np.nan), _spread(q_proba, sig, np.nan)
    flags, reasons = _spread(flags, sig, True), _spread(reasons, sig, NO_SIGNAL)
    pred = pd.DataFrame(
        {
            "cell_id": query.obs_names.to_numpy(),
            "predicted_label": predicted,
            "confidence": conf,
            "entropy": ent,
            "is_unknown": flags,
            REASON_COLUMN: reasons,
            "best_label": best,
        }
    )
    for j, (labels_j, probs_j) in enumerate(top):
        pred[f"top{j + 1}_label"] = _spread(labels_j, sig, "")
        pred[f"top{j + 1}_prob"] = _spread(probs_j, sig, np.nan)

    obs = query.obs
    obs["seqalignatac_prediction"] = pd.Categorical(predicted)
    obs["seqalignatac_unknown_reason"] = pd.Categorical(reasons)
    obs["seqalignatac_confidence"] = conf.astype(np.float32)
    obs["seqalignatac_entropy"] = ent.astype(np.float32)
    obs["seqalignatac_unknown"] = flags
    obs["seqalignatac_best_label"] = pd.Categorical(np.where(best == "", None, best))  # missing: no signal
    query.obsm["seqalignatac_proba"] = q_proba.astype(np.float32)
    if train_res is not None:
        query.obsm["seqalignatac_hidden"] = _spread(train_res.query_hidden, sig, np.nan).astype(np.float32)
    reason_counts = pd.Series(reasons[flags]).value_counts()

    summary: dict[str, Any] = {
        "method": method,
        "embedding_key": embedding_key,
        "label_key": label_key,
        "seed": seed,
        "n_reference": int(x_ref.shape[0]),
        "n_reference_trained": int(train_mask.sum()),
        "n_reference_held_out": int(held.sum()),
        "n_reference_no_signal": int(no_signal[~is_query_all].sum()),
        "n_query": int(sig.size),
        "n_query_no_signal": int((~sig).sum()),
        "classes": [str(c) for c in classes],
        "unknown": unknown_info,
        "unknown_rate": float(flags.mean()),
        "unknown_reasons": {r: int(reason_counts.get(r, 0)) for r in REASONS},
        "held_out_reference_accuracy": (
            float((held_proba.argmax(1) == y_ref[held]).mean()) if held.any() else None
        ),
        "graph": graph_info,
        "config": config.to_dict() if method == "gda" else {"knn_k": knn_k},
        "seconds": round(time.perf_counter() - t0, 3),
    }
    if train_res is not None:
        summary["train_seconds"] = round(train_res.seconds, 3)
        summary["device"] = str(dev)
        summary["final_loss"] = train_res.curve[-1] if train_res.curve else None
    uns = dict(query.uns.get("seqalignatac", {}))
    uns["classes"] = summary["classes"]
    uns["stage2"] = {k: v for k, v in summary.items() if k != "classes" and v is not None}  # h5ad has no None
    query.uns["seqalignatac"] = uns
    return Stage2Result(query=query, summary=summary, predictions=pred, train=train_res)


def annotate(
    cells: ad.AnnData,
    embedding_key: str = "X_seqalignatac",
    method: str = "gda",
    **kwargs: Any,
) -> tuple[ad.AnnData, dict[str, Any]]:
    """Annotate the query cells of a stage-1 ``cell_embeddings`` AnnData.

    Returns ``(query AnnData, summary)``: every query cell, with
    ``obs['seqalignatac_prediction' | '_unknown_reason' | '_confidence' | '_entropy' | '_unknown' |
    '_best_label']``, ``obsm['seqalignatac_proba']`` (class order in ``uns['seqalignatac']['classes']``).
    Cells that stage 1 flagged as without signal (``obs['has_signal']`` False) are ``Unknown`` with
    reason ``no_signal`` and NaN numbers; they take no part in the graphs or the classifier.
    Keyword arguments: see :func:`annotate_full`.
    """
    res = annotate_full(cells, embedding_key, method, **kwargs)
    return res.query, res.summary


def config_with(**overrides: Any) -> GDAConfig:
    """A :class:`GDAConfig` with the given fields replaced (``None`` values keep the default)."""
    return replace(GDAConfig(), **{k: v for k, v in overrides.items() if v is not None})
