"""Confidence, entropy and the ``Unknown`` call, calibrated without query labels (docs/stage2.md, step 4).

``confidence``: a cell is ``Unknown`` when its confidence is below the ``quantile`` of the
held-out *reference* cells' confidences.  ``distance``: the score (:func:`distance_scores`) is a
query cell's squared Mahalanobis distance to the reference class that explains it best, in units
of that class's typical reference cell, after moving the query by the median offset of its cells
from their predicted class's reference centroid (:func:`robust_shift`).  The default test is the
neighbourhood one: each cell's score is replaced by the median log score of its K nearest query
cells (``unknown_smooth``, 15; :func:`smooth_scores`), and the cell is ``Unknown`` when that lies
beyond the ``1 - unknown_smooth_quantile`` point (0.005) of a normal fitted to the left side of
the smoothed scores (:func:`inlier_fit`), and at least :data:`SMOOTH_FLOOR_SD` per-cell standard
deviations above the per-cell scores' own fit.  The cluster test (OR-ed) calls every cell of a
query Leiden cluster of at least :data:`CLUSTER_MIN_CELLS` cells Unknown when the cluster's median
log score lies more than ``unknown_cluster_z`` (1.5) per-cell standard deviations above that fit:
a population next to a reference type (NK beside CD8 memory T cells) can sit below the
neighbourhood threshold cell by cell and still stand out as a whole (:func:`cluster_flags`).
``--unknown-quantile`` adds the per-cell test (OR-ed); with ``unknown_smooth 0`` the per-cell test
runs alone at 0.02.  Every default was chosen on tuning sets only
(benchmarks/results/unknown_calibration.md, benchmarks/results/unknown_alternatives.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqalignatac.models.stage2.clusters import LEIDEN_K, leiden_clusters, query_graph, query_neighbours
from seqalignatac.models.stage2.graphs import l2_normalize
from seqalignatac.models.stage2.inputs import ReferenceSet
from seqalignatac.models.stage2.unknown_reasons import (
    FAR_CLUSTER,
    FAR_FROM_REFERENCE,
    FAR_NEIGHBOURHOOD,
    LOW_CONFIDENCE,
)

STRATEGIES = ("confidence", "distance", "both", "none")


def confidence_entropy(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(proba, 1e-12, 1.0)
    return proba.max(axis=1), -(p * np.log(p)).sum(axis=1)


def robust_shift(query_x: np.ndarray, query_pred: np.ndarray, ref_x: np.ndarray, ref_y: np.ndarray) -> np.ndarray:
    """``query_x`` moved by the median offset of query cells from their predicted class's reference centroid.

    A batch shift common to all cells is removed, but not (as mean-centering would) the difference
    in class composition between reference and query, nor the pull of a query-only type.
    """
    classes = np.unique(ref_y)
    centroids = np.zeros((int(max(classes.max(), query_pred.max())) + 1, ref_x.shape[1]))
    known = np.zeros(centroids.shape[0], dtype=bool)
    for c in classes:
        centroids[c] = ref_x[ref_y == c].mean(axis=0)
        known[c] = True
    ok = known[query_pred]
    if not ok.any():
        return query_x
    shift = np.median(query_x[ok] - centroids[query_pred[ok]], axis=0)
    return query_x - shift


# Neighbourhood threshold floor, in per-cell inlier sd (benchmarks/results/unknown_calibration.md).
SMOOTH_FLOOR_SD = 1.0
# Weight, in cells, of the pooled covariance in each class's; inf: the pooled one alone (same file).
PRIOR_CELLS = float("inf")
# The cluster test skips clusters smaller than one cell's neighbour list: they carry no more
# evidence than the neighbourhood test (benchmarks/results/unknown_alternatives.md).
CLUSTER_MIN_CELLS = LEIDEN_K
# Default of ``unknown_cluster_z``: per-cell inlier sd between a cluster's median and the mean (same file).
CLUSTER_Z = 1.5


def class_density(
    train_x: np.ndarray, train_y: np.ndarray, prior_cells: float = PRIOR_CELLS
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class means, per-class whitening factors, class ids) of the unit-length training cells.

    Class c's covariance is its residual covariance shrunk toward the covariance pooled over every
    class (Ledoit-Wolf): ``(n_c S_c + prior_cells * S_pooled) / (n_c + prior_cells)``.  The pooled
    part keeps small classes and many dimensions well conditioned; the class's own part keeps a
    broad class (a differentiation continuum) from looking tight.  ``inf``: the pooled one alone.
    The factors ``L_c`` whiten: ``|(x - m_c) L_c|^2`` is the squared Mahalanobis distance; with
    ``prior_cells`` inf there is one factor, shared by every class.
    """
    from sklearn.covariance import LedoitWolf

    x = l2_normalize(train_x).astype(np.float64)
    ids = np.unique(train_y)
    col = np.searchsorted(ids, train_y)
    means = np.stack([x[col == j].mean(axis=0) for j in range(ids.size)])
    resid = x - means[col]
    pooled = LedoitWolf(assume_centered=True).fit(resid).covariance_
    if not np.isfinite(prior_cells):
        return means, np.linalg.cholesky(np.linalg.inv(pooled))[None], ids  # P = L L'
    factors = np.empty((ids.size, x.shape[1], x.shape[1]))
    for j in range(ids.size):
        r = resid[col == j]
        cov = (r.T @ r + prior_cells * pooled) / (r.shape[0] + prior_cells)
        factors[j] = np.linalg.cholesky(np.linalg.inv(cov))
    return means, factors, ids


def class_mahalanobis(x: np.ndarray, means: np.ndarray, factors: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """Squared Mahalanobis distance of each unit-length row of ``x`` to every class (cells x classes)."""
    xn = l2_normalize(x)
    out = np.empty((xn.shape[0], means.shape[0]), dtype=np.float64)
    shared = factors.shape[0] == 1
    if shared:  # whiten once: |z - w_c|^2 with z = x L, w_c = m_c L
        wm = means @ factors[0]
        wm_sq = np.square(wm).sum(axis=1)
    for lo in range(0, xn.shape[0], chunk):
        xb = xn[lo : lo + chunk].astype(np.float64)
        if shared:
            z = xb @ factors[0]
            out[lo : lo + chunk] = np.maximum(np.square(z).sum(axis=1)[:, None] - 2.0 * z @ wm.T + wm_sq, 0.0)
            continue
        for j in range(means.shape[0]):
            out[lo : lo + chunk, j] = np.square((xb - means[j]) @ factors[j]).sum(axis=1)
    return out


def distance_scores(
    query_x: np.ndarray,
    query_pred: np.ndarray,
    held_x: np.ndarray,
    held_y: np.ndarray,
    train_x: np.ndarray,
    train_y: np.ndarray,
    prior_cells: float = PRIOR_CELLS,
) -> tuple[np.ndarray, np.ndarray]:
    """How far each cell lies from the reference class that explains it best, in class units.

    Returns (query scores, held-out reference scores).  A score is the smallest, over the reference
    classes, of the squared Mahalanobis distance to the class (:func:`class_density`) divided by
    that class's median over its own reference cells (training cells leave-one-out, held-out
    cells as they are), so 1 is a typical reference cell.  The query is first moved by
    :func:`robust_shift`.  The best class, not the predicted one: a query type next to a reference
    type (NK beside CD8 memory T cells) is still far from it along the directions CD8 cells keep fixed.
    """
    qx = robust_shift(query_x, query_pred, np.concatenate([train_x, held_x]), np.concatenate([train_y, held_y]))
    means, factors, ids = class_density(train_x, train_y, prior_cells)
    col = np.searchsorted(ids, train_y)
    n = np.bincount(col, minlength=ids.size)
    # Leave-one-out: a training cell is part of its class mean, which pulls it (n / (n - 1))^2 closer.
    own = class_mahalanobis(train_x, means, factors)[np.arange(train_y.size), col]
    own = own * (n[col] / np.maximum(n[col] - 1, 1)) ** 2
    held = class_mahalanobis(held_x, means, factors) if held_x.shape[0] else np.zeros((0, ids.size))
    known = np.flatnonzero(np.isin(held_y, ids))
    held_col = np.searchsorted(ids, held_y[known])
    held_own = held[known, held_col]
    scale = np.full(ids.size, np.nan)
    for j in range(ids.size):
        v = np.concatenate([own[(col == j) & (n[col] > 1)], held_own[held_col == j]])
        if v.size:
            scale[j] = np.median(v)
    fallback = float(np.nanmedian(scale)) if np.isfinite(scale).any() else 1.0  # a one-cell class
    scale = np.maximum(np.where(np.isnan(scale), fallback, scale), 1e-12)
    qn = (class_mahalanobis(qx, means, factors) / scale).min(axis=1)
    hn = (held / scale).min(axis=1) if held_x.shape[0] else np.zeros(0)
    return qn, hn


def smooth_scores(
    query_x: np.ndarray, scores: np.ndarray, k: int, threads: int | None = None, neighbours: np.ndarray | None = None
) -> np.ndarray:
    """Each query cell's score replaced by the median log score of its k nearest query cells (itself
    included; cosine on the input embedding), returned in score units (``inf`` stays ``inf``).
    ``neighbours``: a :func:`query_neighbours` table with at least k columns, to reuse."""
    idx = query_neighbours(query_x, k, threads) if neighbours is None else neighbours[:, : max(1, int(k))]
    return np.exp(np.median(_log_scores(scores)[idx], axis=1))


def _log_scores(scores: np.ndarray) -> np.ndarray:
    """Log scores; NaN (no class to compare with) counts as infinitely far."""
    with np.errstate(divide="ignore"):
        return np.log(np.maximum(np.where(np.isnan(scores), np.inf, scores), 1e-12))


def inlier_fit(log_scores: np.ndarray, lo: float = 0.10, hi: float = 0.40) -> tuple[float, float]:
    """(mean, sd) of a normal matched to the ``lo`` and ``hi`` quantiles: the left side of the data,
    which stays with the bulk when up to ~half of the cells form a far tail (novel types)."""
    from scipy.stats import norm

    a, b = np.quantile(log_scores, [lo, hi])
    za, zb = norm.ppf(lo), norm.ppf(hi)
    sd = float((b - a) / (zb - za))
    return float(b - zb * sd), sd


def call_unknown(
    strategy: str,
    quantile: float,
    query_conf: np.ndarray,
    held_conf: np.ndarray,
    query_dist: np.ndarray | None = None,
    held_dist: np.ndarray | None = None,
    smooth_dist: np.ndarray | None = None,
    smooth_quantile: float = 0.0,
    distance_quantile: float | None = None,
    smooth_floor: float | None = None,
    clusters: np.ndarray | None = None,
    cluster_z: float = 0.0,
) -> tuple[np.ndarray, dict]:
    """Boolean Unknown flags for the query plus the thresholds used (:func:`unknown_flags` applies them).

    ``quantile`` sets the confidence test and, unless ``distance_quantile`` is given, the per-cell
    distance test; ``smooth_dist`` (from :func:`smooth_scores`) adds the neighbourhood test at
    ``smooth_quantile`` (0 or ``None`` scores: off), never below ``smooth_floor`` (default
    :data:`SMOOTH_FLOOR_SD`) standard deviations of the per-cell scores' inlier fit; ``clusters``
    (the query's Leiden clusters) adds the cluster test at ``cluster_z`` (0: off)."""
    smooth_floor = SMOOTH_FLOOR_SD if smooth_floor is None else smooth_floor
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    info: dict = {"strategy": strategy, "quantile": quantile}
    if strategy == "none" or held_conf.size == 0:
        info["note"] = "no held-out reference cells" if strategy != "none" else "disabled"
        return unknown_flags(info, query_conf), info
    if strategy in ("confidence", "both"):
        info["confidence_threshold"] = float(np.quantile(held_conf, quantile))
    if strategy in ("distance", "both"):
        assert query_dist is not None and held_dist is not None
        # The query's own inlier distribution (batch effects and shallower cells widen it in ways
        # the reference cannot show): a normal fitted to the left side of log scores; a cell is
        # Unknown beyond its (1 - quantile) point, and never below the reference's own quantile.
        from scipy.stats import norm

        dq = quantile if distance_quantile is None else distance_quantile
        info["distance_quantile"] = dq
        finite = np.log(np.maximum(query_dist[np.isfinite(query_dist)], 1e-12))
        cell_fit = inlier_fit(finite) if finite.size >= 10 else None
        if cell_fit is not None:
            info.update(distance_inlier_log_mean=cell_fit[0], distance_inlier_log_sd=cell_fit[1])
        if dq <= 0:
            info["distance_note"] = "quantile 0: no cell is called Unknown by distance"
        else:
            floor = float(np.quantile(held_dist, 1.0 - dq)) if held_dist.size else 0.0
            thr_d = floor
            if cell_fit is not None:
                thr_d = max(floor, float(np.exp(cell_fit[0] + float(norm.ppf(1.0 - dq)) * cell_fit[1])))
            info["distance_reference_floor"] = floor
            info["distance_threshold"] = thr_d
        if smooth_dist is not None and smooth_quantile > 0:
            # Neighbourhood test: no reference floor (smoothing narrows the spread, so the per-cell
            # reference quantile would sit far out in the smoothed distribution).
            fin_s = np.log(np.maximum(smooth_dist[np.isfinite(smooth_dist)], 1e-12))
            if fin_s.size >= 10:
                mu_s, sd_s = inlier_fit(fin_s)
                log_thr = mu_s + float(norm.ppf(1.0 - smooth_quantile)) * sd_s
                if cell_fit is not None:
                    # Smoothing shrinks the spread, so a known type whose scores sit a little
                    # higher (a type-specific batch effect) would stand out as a whole: the
                    # neighbourhood must also be far in units of single cells' spread.
                    log_thr = max(log_thr, cell_fit[0] + smooth_floor * cell_fit[1])
                info.update(
                    smooth_quantile=smooth_quantile,
                    smooth_floor_sd=smooth_floor,
                    smooth_threshold=float(np.exp(log_thr)),
                    # the `novelty` column: (log smoothed score - mean) / sd; Unknown above the threshold
                    novelty_log_mean=mu_s,
                    novelty_log_sd=sd_s,
                    novelty_threshold=(log_thr - mu_s) / max(sd_s, 1e-12),
                )
            info["smooth_unknown_rate"] = float(_smooth_flags(info, smooth_dist).mean())
        if clusters is not None and cluster_z > 0 and cell_fit is not None:
            info.update(cluster_z=float(cluster_z), cluster_min_cells=CLUSTER_MIN_CELLS)
            info["cluster_unknown_rate"] = float(cluster_flags(info, query_dist, clusters).mean())
    return unknown_flags(info, query_conf, query_dist, smooth_dist, clusters), info


def unknown_flags(
    info: dict,
    query_conf: np.ndarray,
    query_dist: np.ndarray | None = None,
    smooth_dist: np.ndarray | None = None,
    clusters: np.ndarray | None = None,
) -> np.ndarray:
    """The Unknown flags that the thresholds of :func:`call_unknown` (``info``) give these scores."""
    flags = np.zeros(query_conf.size, dtype=bool)
    if "confidence_threshold" in info:
        flags |= query_conf < info["confidence_threshold"]
    if "distance_threshold" in info:
        flags |= query_dist > info["distance_threshold"]
    if "smooth_unknown_rate" in info:  # the neighbourhood test ran
        # its scores come with it: call_unknown and Annotator score with the settings that made info
        assert smooth_dist is not None
        flags |= _smooth_flags(info, smooth_dist)
    if "cluster_z" in info:  # the cluster test ran: the same holds for its clusters
        assert query_dist is not None and clusters is not None
        flags |= cluster_flags(info, query_dist, clusters)
    return flags


def cluster_scores(info: dict, query_dist: np.ndarray, clusters: np.ndarray):
    """Per cluster (pandas Series indexed by cluster): the median log score of its cells in per-cell
    inlier sd above the inlier mean of ``info`` (:func:`call_unknown`), and its size."""
    import pandas as pd

    by = pd.Series(_log_scores(query_dist)).groupby(clusters)
    z = (by.median() - info["distance_inlier_log_mean"]) / max(info["distance_inlier_log_sd"], 1e-12)
    return z, by.size()


def cluster_flags(info: dict, query_dist: np.ndarray, clusters: np.ndarray) -> np.ndarray:
    """True for the cells of every cluster of at least ``info['cluster_min_cells']`` cells whose
    :func:`cluster_scores` z is above ``info['cluster_z']``."""
    z, size = cluster_scores(info, query_dist, clusters)
    far = z.index[(z > info["cluster_z"]).to_numpy() & (size >= info["cluster_min_cells"]).to_numpy()]
    return np.isin(clusters, far.to_numpy())


def _smooth_flags(info: dict, smooth_dist: np.ndarray) -> np.ndarray:
    flags = ~np.isfinite(smooth_dist)
    if "smooth_threshold" in info:
        flags |= smooth_dist > info["smooth_threshold"]
    return flags


def unknown_reasons(
    flags: np.ndarray,
    info: dict,
    query_conf: np.ndarray,
    query_dist: np.ndarray | None = None,
    smooth_dist: np.ndarray | None = None,
) -> np.ndarray:
    """The ``unknown_reason`` of each query cell ('' when labelled), from the thresholds in ``info``.

    A cell flagged by several tests gets the first of: low confidence, per-cell distance,
    neighbourhood distance, query cluster (the only test left when the others pass).
    """
    reasons = np.full(flags.size, "", dtype=object)
    low = np.zeros(flags.size, dtype=bool)
    if "confidence_threshold" in info:
        low = flags & (query_conf < info["confidence_threshold"])
    far = np.zeros(flags.size, dtype=bool)
    if "distance_threshold" in info and query_dist is not None:
        far = flags & ~low & (query_dist > info["distance_threshold"])
    reasons[flags] = FAR_CLUSTER if "cluster_z" in info else FAR_NEIGHBOURHOOD
    if smooth_dist is not None and "smooth_unknown_rate" in info:
        reasons[flags & _smooth_flags(info, smooth_dist)] = FAR_NEIGHBOURHOOD
    reasons[far] = FAR_FROM_REFERENCE
    reasons[low] = LOW_CONFIDENCE
    return reasons


def unknown_scores(
    settings: dict[str, Any],
    x_query: np.ndarray,
    best_idx: np.ndarray,
    ref: ReferenceSet,
    threads: int | None,
    neighbours: np.ndarray | None = None,
):
    """(query distance scores, held-out reference scores, smoothed query scores); None where the
    ``settings['unknown']`` test does not use them (docs/stage2.md, step 4).  ``neighbours``: the
    query's kNN table (:func:`~.clusters.query_graph`), shared with the clustering."""
    q_dist = h_dist = s_dist = None
    if settings["unknown"] in ("distance", "both") and ref.y_held.size:
        q_dist, h_dist = distance_scores(x_query, best_idx, ref.x_held, ref.y_held, ref.x_train, ref.y_train)
        if _smoothing(settings):
            s_dist = smooth_scores(x_query, q_dist, settings["unknown_smooth"], threads, neighbours)
    return q_dist, h_dist, s_dist


def query_evidence(
    settings: dict[str, Any], x_query: np.ndarray, best_idx: np.ndarray, ref: ReferenceSet, threads: int | None
):
    """:func:`unknown_scores` plus the query's Leiden clusters, from one kNN search of the query."""
    graph = query_graph(x_query, settings["unknown_smooth"], threads)
    q_dist, h_dist, s_dist = unknown_scores(settings, x_query, best_idx, ref, threads, graph)
    return q_dist, h_dist, s_dist, leiden_clusters(x_query, settings["seed"], threads, graph)


def _smoothing(settings: dict[str, Any]) -> bool:
    return settings["unknown_smooth"] > 0 and settings["unknown_smooth_quantile"] > 0


def calibrate_unknown(
    settings: dict[str, Any],
    conf: np.ndarray,
    held_conf: np.ndarray,
    q_dist,
    h_dist,
    s_dist,
    clusters: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Unknown flags and thresholds: the neighbourhood test when ``unknown_smooth`` > 0 and the
    cluster test when ``unknown_cluster_z`` > 0 (on ``clusters``), with the per-cell distance test
    OR-ed in only when ``unknown_quantile`` is given; without the neighbourhood test the per-cell
    test runs at 0.02 (the confidence test always defaults to 0.02)."""
    quantile, smoothing = settings["unknown_quantile"], _smoothing(settings)
    conf_q = 0.02 if quantile is None else quantile
    dist_q = (0.0 if smoothing else 0.02) if quantile is None else quantile
    flags, info = call_unknown(
        settings["unknown"],
        conf_q,
        conf,
        held_conf,
        q_dist,
        h_dist,
        s_dist,
        settings["unknown_smooth_quantile"] if smoothing else 0.0,
        dist_q,
        clusters=clusters,
        cluster_z=settings["unknown_cluster_z"],
    )
    if q_dist is not None:
        info["smooth_k"] = int(settings["unknown_smooth"])
    return flags, info
