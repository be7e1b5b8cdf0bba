"""Stage 2 as a Python function: cell embeddings (AnnData) in, annotated query AnnData out.

:func:`annotate_full` runs five steps, each a function here: split and check the cells
(:func:`split_domains`, :func:`reference_labels`, :func:`calibration_split`), fit the ensemble of
GDA models (:func:`fit_gda`), the kNN and logistic-regression transfers and their mix
(:func:`class_probabilities`), the Unknown calibration and calls (:func:`unknown_scores`,
:func:`~.unknown.call_unknown`) and the outputs (:func:`assemble_result`).  The fitted parts are kept
in an :class:`~.annotator.Annotator`, whose ``predict`` runs the same functions again.
"""

from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.params import DEVICE, SEED, THREADS, check_all
from seqalignatac.device import resolve_device
from seqalignatac.errors import InputError
from seqalignatac.models.stage2.unknown_reasons import NO_SIGNAL, REASONS
from seqalignatac.models.stage2.graphs import (
    EXACT_MAX_CELLS,
    KNN_METHODS,
    build_graph,
    clip_k,
    l2_normalize,
    neighbour_votes,
)
from seqalignatac.models.stage2.options import ANNOTATE_RANGES, GDA_RANGES, METHODS
from seqalignatac.models.stage2.train import CLASS_WEIGHTS, GDAConfig, TrainResult, seed_everything, train_gda
from seqalignatac.models.stage2.unknown import (
    STRATEGIES,
    call_unknown,
    confidence_entropy,
    distance_scores,
    held_out_mask,
    smooth_scores,
    unknown_reasons,
)

if TYPE_CHECKING:
    from seqalignatac.models.stage2.annotator import Annotator

log = logging.getLogger(__name__)


@dataclass
class Stage2Result:
    query: ad.AnnData
    summary: dict[str, Any]
    predictions: pd.DataFrame
    train: TrainResult | None = None
    annotator: Annotator | None = None  # the fitted model: save(folder), load(folder).predict(cells)


# --- the cells: domains, labels, calibration split ---------------------------------------------

@dataclass
class SplitCells:
    """The cells of one run: those with signal split into reference and query, plus where they sit."""

    all_cells: ad.AnnData  # every cell given
    no_signal: np.ndarray  # over all_cells: no accessible shared peak (kept out, called Unknown)
    cells: ad.AnnData  # the cells with signal
    is_ref: np.ndarray  # over cells
    x_ref: np.ndarray
    x_query: np.ndarray

    @property
    def reference_ids(self) -> list[str]:
        return [str(c) for c in self.cells.obs_names[self.is_ref]]


def split_domains(cells: ad.AnnData, embedding_key: str, source: str | None = None) -> SplitCells:
    """Check ``obs['domain']`` and ``obsm[embedding_key]`` and split the cells with signal."""
    no_signal = _no_signal_cells(cells, source)
    all_cells = cells
    if no_signal.any():
        cells = cells[~no_signal]
    if keys.DOMAIN not in cells.obs.columns:
        raise InputError(
            f"obs has no {keys.DOMAIN!r} column; stage 2 needs obs[{keys.DOMAIN!r}] = {keys.REFERENCE!r} or "
            f"{keys.QUERY!r} for every cell (run `seqalignatac prepare` then `train`, which set it)",
            source,
        )
    domain = cells.obs[keys.DOMAIN].astype(str).to_numpy()
    bad = sorted(set(domain) - set(keys.DOMAINS))
    if bad:
        raise InputError(
            f"obs[{keys.DOMAIN!r}] has values {bad[:5]}; only {keys.REFERENCE!r} and {keys.QUERY!r} are allowed",
            source,
        )
    if embedding_key not in cells.obsm:
        from_train = "stage1" in (cells.uns.get(keys.UNS) or {})
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
    is_ref = domain == keys.REFERENCE
    if not (~is_ref).any():
        raise InputError(f"the query has no cells (no obs[{keys.DOMAIN!r}] == {keys.QUERY!r}); nothing to annotate",
                         source)
    if not is_ref.any():
        raise InputError(f"the reference has no cells (no obs[{keys.DOMAIN!r}] == {keys.REFERENCE!r})", source)
    x = x.astype(np.float32)
    return SplitCells(all_cells, no_signal, cells, is_ref, x[is_ref], x[~is_ref])


def reference_labels(split: SplitCells, labels_key: str, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The reference cells' labels as strings and which of them have one (warnings for odd classes)."""
    cells, is_ref = split.cells, split.is_ref
    if labels_key not in cells.obs.columns:
        raise InputError(
            f"obs has no {labels_key!r} column, so the reference has no labels; pass --labels-key", source
        )
    ref_labels = cells.obs[labels_key][is_ref]
    has_label = ref_labels.notna().to_numpy() & (ref_labels.astype(str).str.strip() != "").to_numpy()
    if not has_label.any():
        raise InputError(
            f"the reference has no labels: obs[{labels_key!r}] is empty for all {int(is_ref.sum())} reference cells",
            source,
        )
    if not has_label.all():
        warnings.warn(
            f"{int((~has_label).sum())} reference cells have no label; they stay in the graph but are not trained on",
            stacklevel=3,
        )
    ref_str = ref_labels.astype(str).to_numpy()
    if (ref_str[has_label] == keys.UNKNOWN).any():
        raise InputError(f"the reference label {keys.UNKNOWN!r} is reserved for unknown cells; rename that class",
                         source)
    counts = pd.Series(ref_str[has_label]).value_counts()
    singles = sorted(counts.index[counts < 2])
    if singles:
        warnings.warn(
            f"reference classes with a single cell: {', '.join(map(str, singles))}; "
            "they are trained on but cannot be held out for calibration",
            stacklevel=3,
        )
    return ref_str, has_label


def calibration_split(ref_str: np.ndarray, has_label: np.ndarray, fraction: float,
                      seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(class order, class index per reference cell (-1: no label), held-out mask, training mask)."""
    classes = np.array(sorted(set(ref_str[has_label])), dtype=object)
    class_index = {c: i for i, c in enumerate(classes)}
    y_ref = np.array([class_index.get(c, -1) for c in np.where(has_label, ref_str, "")], dtype=np.int64)
    labeled = np.flatnonzero(has_label)
    held = np.zeros(y_ref.size, dtype=bool)
    held[labeled[held_out_mask(y_ref[labeled], fraction, seed)]] = True
    return classes, y_ref, held, has_label & ~held


@dataclass
class ReferenceSet:
    """The labeled reference cells the transfers and the distance test use: training and held-out."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, labels, training mask, held-out mask), as :func:`knn_transfer` takes them."""
        n_train, n_held = self.y_train.size, self.y_held.size
        train = np.r_[np.ones(n_train, dtype=bool), np.zeros(n_held, dtype=bool)]
        return np.vstack([self.x_train, self.x_held]), np.r_[self.y_train, self.y_held], train, ~train


def _no_signal_cells(cells: ad.AnnData, source: str | None) -> np.ndarray:
    """Cells that stage 1 flagged as having no accessible peak (``obs[HAS_SIGNAL]`` False)."""
    if keys.HAS_SIGNAL not in cells.obs.columns:
        return np.zeros(cells.n_obs, dtype=bool)
    no_signal = ~cells.obs[keys.HAS_SIGNAL].astype(bool).to_numpy()
    if no_signal.any() and keys.DOMAIN in cells.obs.columns:
        is_query = cells.obs[keys.DOMAIN].astype(str).to_numpy() == keys.QUERY
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


# --- settings ------------------------------------------------------------------------------------

def _check_config(config: GDAConfig) -> None:
    """The option ranges (the CLI's own types, so the same messages) and the cross-option rules."""
    check_all(config.to_dict(), GDA_RANGES)
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


def config_with(**overrides: Any) -> GDAConfig:
    """A :class:`GDAConfig` with the given fields replaced (``None`` values keep the default)."""
    names = {f.name for f in fields(GDAConfig)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise InputError(f"config has no setting {unknown[0]!r}; the settings are: {', '.join(sorted(names))}")
    return replace(GDAConfig(), **{k: v for k, v in overrides.items() if v is not None})


# --- the transfers and the mix -------------------------------------------------------------------

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


def _rescale(proba: np.ndarray, scale: np.ndarray) -> np.ndarray:
    p = proba * scale[None, :].astype(np.float32)
    return (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fit_linear(ref: ReferenceSet, c: float = 1.0) -> dict[str, np.ndarray]:
    """Class-balanced multinomial logistic regression on the training cells' input embedding:
    ``classes`` (class indices), and ``coef`` and ``intercept`` unless a single class was trained on."""
    from sklearn.linear_model import LogisticRegression

    yt = ref.y_train
    if np.unique(yt).size < 2:  # one class: logistic regression is undefined, all mass on it
        return {"classes": np.unique(yt).astype(np.int64)}
    clf = LogisticRegression(C=float(c), class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notices
        clf.fit(ref.x_train, yt)
    # Fortran order, as scikit-learn's lbfgs leaves coef_ (so no copy here): a loaded model is put
    # in the same layout, and BLAS then gives the same last bits (docs/stage2.md, Outputs).
    return {"classes": clf.classes_.astype(np.int64), "coef": np.asfortranarray(clf.coef_),
            "intercept": clf.intercept_}


def linear_proba(params: dict[str, np.ndarray], x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of the logistic regression :func:`fit_linear` returned."""
    from sklearn.linear_model import LogisticRegression

    proba = np.zeros((x.shape[0], n_classes), dtype=np.float32)
    if "coef" not in params:
        proba[:, params["classes"]] = 1.0
        return proba
    if x.shape[0]:
        clf = LogisticRegression()
        clf.classes_, clf.coef_, clf.intercept_ = params["classes"], params["coef"], params["intercept"]
        proba[:, params["classes"]] = clf.predict_proba(x)
    return proba


def class_probabilities(method: str, config: GDAConfig, ref: ReferenceSet, x_query: np.ndarray, n_classes: int,
                        knn_k: int, threads: int | None, gda: tuple[np.ndarray, np.ndarray] | None = None,
                        linear: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """(query, held-out reference) class probabilities and the kNN size used.

    ``knn``: kNN label transfer alone.  ``gda``: ``(1 - w - v) GDA + w kNN + v logistic regression``
    (``w = config.knn_mix``, ``v = config.linear_mix``; kNN is strong in-domain, GDA across the
    shift, logistic regression on rare classes), ``gda`` = the ensemble's (query, held-out) probabilities.
    """
    x_all, y_all, train, held = ref.stacked()
    if method == "knn":
        q, h, kk = knn_transfer(x_all, y_all, train, held, x_query, n_classes, knn_k, threads)
        return q, h, {"knn_k": int(kk)}
    w, v = float(config.knn_mix), float(config.linear_mix)
    g = max(0.0, 1.0 - w - v)  # max: rounding when w + v = 1
    q, h = g * gda[0], g * gda[1]
    if w > 0:
        kq, kh, _ = knn_transfer(x_all, y_all, train, held, x_query, n_classes, config.knn_mix_k or knn_k, threads,
                                 vote_power=config.knn_vote_power)
        q, h = q + w * kq, h + w * kh
    if v > 0:
        q = q + v * linear_proba(linear, x_query, n_classes)
        h = h + v * linear_proba(linear, ref.x_held, n_classes)
    return q, h, {}


# --- the ensemble of GDA models --------------------------------------------------------------------

def domain_graphs(split: SplitCells, config: GDAConfig, threads: int | None, seed: int):
    """The reference and query kNN graphs (normalized adjacencies), built the same way every time."""
    a_ref = build_graph(split.x_ref, config.k, what="reference", method=config.knn_method, threads=threads, seed=seed)
    a_query = build_graph(split.x_query, config.k, what="query", method=config.knn_method, threads=threads, seed=seed)
    return a_ref, a_query


def fit_gda(split: SplitCells, y_ref: np.ndarray, train_mask: np.ndarray, n_classes: int, config: GDAConfig,
            device: str, seed: int, threads: int | None, progress: bool | None) -> tuple[TrainResult, dict]:
    """Train ``config.ensemble`` A2GNN models on the two graphs: (result, graph sizes)."""
    a_ref, a_query = domain_graphs(split, config, threads, seed)
    res = train_gda(split.x_ref, np.maximum(y_ref, 0), train_mask, split.x_query, a_ref, a_query, n_classes, config,
                    device=resolve_device(device), seed=seed, progress=progress)
    return res, {"reference_nnz": int(a_ref.nnz), "query_nnz": int(a_query.nnz)}


# --- Unknown -----------------------------------------------------------------------------------

def unknown_scores(settings: dict[str, Any], x_query: np.ndarray, best_idx: np.ndarray, ref: ReferenceSet,
                   threads: int | None):
    """(query distance scores, held-out reference scores, smoothed query scores); None where the
    ``settings['unknown']`` test does not use them (docs/stage2.md, step 4)."""
    q_dist = h_dist = s_dist = None
    if settings["unknown"] in ("distance", "both") and ref.y_held.size:
        q_dist, h_dist = distance_scores(x_query, best_idx, ref.x_held, ref.y_held, ref.x_train, ref.y_train,
                                         settings["unknown_k"], threads)
        if _smoothing(settings):
            s_dist = smooth_scores(x_query, q_dist, settings["unknown_smooth"], threads)
    return q_dist, h_dist, s_dist


def _smoothing(settings: dict[str, Any]) -> bool:
    return settings["unknown_smooth"] > 0 and settings["unknown_smooth_quantile"] > 0


def calibrate_unknown(settings: dict[str, Any], conf: np.ndarray, held_conf: np.ndarray, q_dist, h_dist,
                      s_dist) -> tuple[np.ndarray, dict]:
    """Unknown flags and thresholds: the per-cell distance test, OR-ed with the neighbourhood test
    when ``unknown_smooth`` > 0 (then the per-cell test defaults to quantile 0.01, else 0.02; the
    confidence test always defaults to 0.02)."""
    quantile, smoothing = settings["unknown_quantile"], _smoothing(settings)
    conf_q = 0.02 if quantile is None else quantile
    dist_q = (0.01 if smoothing else 0.02) if quantile is None else quantile
    flags, info = call_unknown(settings["unknown"], conf_q, conf, held_conf, q_dist, h_dist, s_dist,
                               settings["unknown_smooth_quantile"] if smoothing else 0.0, dist_q)
    if q_dist is not None:
        info["k"] = int(settings["unknown_k"])
        info["smooth_k"] = int(settings["unknown_smooth"])
    return flags, info


# --- outputs -----------------------------------------------------------------------------------

@dataclass
class Calls:
    """What one run computed for the query cells with signal (and the held-out reference cells)."""

    q_proba: np.ndarray
    held_proba: np.ndarray
    flags: np.ndarray
    unknown_info: dict
    q_dist: np.ndarray | None
    hidden: np.ndarray | None  # GDA's encoder output of the first model (None for knn)


def assemble_result(split: SplitCells, classes: np.ndarray, calls: Calls, ref: ReferenceSet,
                    summary_head: dict[str, Any], summary_tail: dict[str, Any]) -> Stage2Result:
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
    reasons = unknown_reasons(calls.flags, calls.unknown_info, conf, calls.q_dist)
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
    pred = pd.DataFrame({keys.CELL_ID: query.obs_names.to_numpy(), keys.PREDICTED_LABEL: predicted,
                         keys.CONFIDENCE: conf, keys.ENTROPY: ent, keys.IS_UNKNOWN: flags,
                         keys.UNKNOWN_REASON: reasons, keys.BEST_LABEL: best})
    for j, (labels_j, probs_j) in enumerate(top):
        pred[f"top{j + 1}_label"] = _spread(labels_j, sig, "")
        pred[f"top{j + 1}_prob"] = _spread(probs_j, sig, np.nan)

    obs = query.obs
    obs[keys.PREDICTION] = pd.Categorical(predicted)
    obs[keys.UNKNOWN_REASON_OBS] = pd.Categorical(reasons)
    obs[keys.CONFIDENCE_OBS] = conf.astype(np.float32)
    obs[keys.ENTROPY_OBS] = ent.astype(np.float32)
    obs[keys.IS_UNKNOWN_OBS] = flags
    obs[keys.BEST_LABEL_OBS] = pd.Categorical(np.where(best == "", None, best))  # missing: no signal
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
        **summary_tail,
    }
    uns = dict(query.uns.get(keys.UNS, {}))
    uns[keys.CLASSES] = summary[keys.CLASSES]
    uns["stage2"] = {k: v for k, v in summary.items() if k != keys.CLASSES and v is not None}  # h5ad has no None
    query.uns[keys.UNS] = uns
    return Stage2Result(query=query, summary=summary, predictions=pred)


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
    unknown, unknown_quantile, unknown_k, unknown_smooth, unknown_smooth_quantile, calibration_fraction, knn_k
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
    settings = {"embedding_key": embedding_key, "labels_key": labels_key, "unknown": unknown,
                "unknown_quantile": unknown_quantile, "unknown_k": unknown_k, "unknown_smooth": unknown_smooth,
                "unknown_smooth_quantile": unknown_smooth_quantile, "calibration_fraction": calibration_fraction,
                "knn_k": knn_k, "seed": seed, "device": device, "threads": threads}
    check_annotate_options(method, unknown, config, device, seed, threads, unknown_quantile=unknown_quantile,
                           unknown_k=unknown_k, unknown_smooth=unknown_smooth,
                           unknown_smooth_quantile=unknown_smooth_quantile,
                           calibration_fraction=calibration_fraction, knn_k=knn_k)
    _set_threads(threads)
    seed_everything(seed)
    t0 = time.perf_counter()
    split = split_domains(cells, embedding_key, source)
    ref_str, has_label = reference_labels(split, labels_key, source)
    classes, y_ref, held, train_mask = calibration_split(ref_str, has_label, calibration_fraction, seed)
    ref = ReferenceSet(split.x_ref[train_mask], y_ref[train_mask], split.x_ref[held], y_ref[held])
    log.info(
        "stage 2 (%s): %d reference cells (%d trained on, %d held out for calibration), %d query cells, %d classes",
        method, split.x_ref.shape[0], int(train_mask.sum()), int(held.sum()), split.x_query.shape[0], classes.size,
    )
    train_res, graph_info, gda, linear = None, {}, None, None
    if method == "gda":
        train_res, graph_info = fit_gda(split, y_ref, train_mask, classes.size, config, device, seed, threads,
                                        progress)
        gda = (train_res.query_proba, train_res.reference_proba[held])
        linear = fit_linear(ref, config.linear_c) if config.linear_mix > 0 else None
    q_proba, held_proba, knn_info = class_probabilities(method, config, ref, split.x_query, classes.size, knn_k,
                                                        threads, gda, linear)
    conf, _ = confidence_entropy(q_proba)
    held_conf = confidence_entropy(held_proba)[0] if held.any() else np.array([])
    q_dist, h_dist, s_dist = unknown_scores(settings, split.x_query, q_proba.argmax(axis=1), ref, threads)
    flags, unknown_info = calibrate_unknown(settings, conf, held_conf, q_dist, h_dist, s_dist)
    calls = Calls(q_proba, held_proba, flags, unknown_info, q_dist,
                  None if train_res is None else train_res.query_hidden)
    tail: dict[str, Any] = {"graph": graph_info or knn_info,
                            "config": config.to_dict() if method == "gda" else {"knn_k": knn_k},
                            "seconds": round(time.perf_counter() - t0, 3)}
    if train_res is not None:
        tail.update(train_seconds=round(train_res.seconds, 3), device=str(resolve_device(device)),
                    final_loss=train_res.curve[-1] if train_res.curve else None)
    result = assemble_result(split, classes, calls, ref, _summary_head(method, settings), tail)
    result.train = train_res
    result.annotator = Annotator(method=method, classes=[str(c) for c in classes], config=config, settings=settings,
                                 reference_ids=split.reference_ids, train_rows=np.flatnonzero(train_mask),
                                 held_rows=np.flatnonzero(held), reference=ref, linear=linear,
                                 networks=[] if train_res is None else train_res.models, unknown=unknown_info)
    return result


def _summary_head(method: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"method": method, "embedding_key": settings["embedding_key"], "labels_key": settings["labels_key"],
            "seed": settings["seed"]}


def _set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))


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
