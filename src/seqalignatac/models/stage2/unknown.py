"""Confidence, entropy and the ``Unknown`` call, calibrated without query labels.

``confidence``: a cell is ``Unknown`` when its confidence is below the ``quantile`` of the
held-out *reference* cells' confidences.  ``distance`` (docs/stage2.md, step 4): the score is a
query cell's mean cosine distance to the k (``--unknown-k``, 30) nearest training cells of its
predicted class, in units of that class's median reference distance, after moving the query
by the median offset of its cells from their predicted class's reference centroid
(:func:`robust_shift`); the threshold
is the ``1 - quantile`` point of a normal fitted to the left side of the query's own log scores
(:func:`inlier_fit`), never below the reference cells' own ``1 - quantile`` score.  With
``--unknown-smooth K`` (default 30) a second, neighbourhood-level test is OR-ed in: each query cell's
score is replaced by the median log score of its K nearest query cells (:func:`smooth_scores`), which
averages the per-cell noise of sparse data away, and a cell is ``Unknown`` when that smoothed score
lies beyond the ``1 - --unknown-smooth-quantile`` point (default 0.005) of the same left-side normal
fit applied to the smoothed scores; the per-cell test then runs at quantile 0.01 unless
``--unknown-quantile`` is given (benchmarks/results/unknown_calibration.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seqalignatac.models.stage2.graphs import l2_normalize
from seqalignatac.models.stage2.inputs import ReferenceSet
from seqalignatac.models.stage2.unknown_reasons import FAR_FROM_REFERENCE, FAR_NEIGHBOURHOOD, LOW_CONFIDENCE

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


def class_density(train_x: np.ndarray, train_y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(class means, shared within-class precision, class ids) of the unit-length training cells.

    One covariance pooled over the classes' residuals (Ledoit-Wolf shrinkage, so small classes
    and many dimensions stay well conditioned): the directions in which reference cells of one type
    vary little are the ones a query cell leaving its type must cross.
    """
    from sklearn.covariance import LedoitWolf

    x = l2_normalize(train_x)
    ids = np.unique(train_y)
    means = np.stack([x[train_y == c].mean(axis=0) for c in ids])
    resid = x - means[np.searchsorted(ids, train_y)]
    return means, LedoitWolf(assume_centered=True).fit(resid).precision_, ids


def class_mahalanobis(x: np.ndarray, means: np.ndarray, precision: np.ndarray, chunk: int = 50_000) -> np.ndarray:
    """Squared Mahalanobis distance of each unit-length row of ``x`` to every class mean (cells x classes)."""
    xn = l2_normalize(x)
    out = np.empty((xn.shape[0], means.shape[0]), dtype=np.float64)
    m_p = means @ precision  # (x-m)'P(x-m) = x'Px - 2 x'Pm + m'Pm, in row chunks
    m_term = np.einsum("cd,cd->c", m_p, means)
    for lo in range(0, xn.shape[0], chunk):
        xb = xn[lo : lo + chunk].astype(np.float64)
        out[lo : lo + chunk] = np.einsum("nd,nd->n", xb @ precision, xb)[:, None] - 2.0 * xb @ m_p.T + m_term
    return np.maximum(out, 0.0)


def distance_scores(
    query_x: np.ndarray,
    query_pred: np.ndarray,
    held_x: np.ndarray,
    held_y: np.ndarray,
    train_x: np.ndarray,
    train_y: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """How far each cell lies from the reference class that explains it best, in class units.

    Returns (query scores, reference scores).  A score is the smallest, over the reference classes,
    of the squared Mahalanobis distance to the class mean (:func:`class_density`) divided by that
    class's median over its own reference cells, so 1 is a typical reference cell of the class.
    The query is first moved by :func:`robust_shift`; the reference scores are the held-out cells'.
    Taking the best class rather than the predicted one: a query type next to a reference type
    (NK beside CD8 memory T cells) is still far from it along the directions CD8 cells keep fixed.
    """
    qx = robust_shift(query_x, query_pred, np.concatenate([train_x, held_x]), np.concatenate([train_y, held_y]))
    means, precision, ids = class_density(train_x, train_y)
    own = class_mahalanobis(train_x, means, precision)[np.arange(train_y.size), np.searchsorted(ids, train_y)]
    scale = np.array([np.median(own[train_y == c]) for c in ids])
    scale = np.maximum(scale, 1e-12)
    qn = (class_mahalanobis(qx, means, precision) / scale).min(axis=1)
    hn = (class_mahalanobis(held_x, means, precision) / scale).min(axis=1) if held_x.shape[0] else np.zeros(0)
    return qn, hn


def smooth_scores(query_x: np.ndarray, scores: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
    """Each query cell's score replaced by the median log score of its k nearest query cells (itself
    included; cosine on the input embedding), returned in score units (``inf`` stays ``inf``)."""
    n = query_x.shape[0]
    k = max(1, min(int(k), n))
    xn = l2_normalize(query_x)
    if n > 50_000:
        import faiss

        index = faiss.IndexHNSWFlat(xn.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.add(xn)
        _, idx = index.search(xn, k)
    else:
        from sklearn.neighbors import NearestNeighbors

        _, idx = NearestNeighbors(n_neighbors=k, n_jobs=threads).fit(xn).kneighbors(xn)
    with np.errstate(divide="ignore"):
        logs = np.log(np.maximum(np.where(np.isnan(scores), np.inf, scores), 1e-12))
    return np.exp(np.median(logs[idx], axis=1))


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
) -> tuple[np.ndarray, dict]:
    """Boolean Unknown flags for the query plus the thresholds used (:func:`unknown_flags` applies them).

    ``quantile`` sets the confidence test and, unless ``distance_quantile`` is given, the per-cell
    distance test; ``smooth_dist`` (from :func:`smooth_scores`) adds the neighbourhood test at
    ``smooth_quantile`` (0 or ``None`` scores: off)."""
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
        if dq <= 0:
            info["distance_note"] = "quantile 0: no cell is called Unknown by distance"
        else:
            finite = np.log(np.maximum(query_dist[np.isfinite(query_dist)], 1e-12))
            floor = float(np.quantile(held_dist, 1.0 - dq)) if held_dist.size else 0.0
            thr_d = floor
            if finite.size >= 10:
                mu, sd = inlier_fit(finite)
                thr_d = max(floor, float(np.exp(mu + float(norm.ppf(1.0 - dq)) * sd)))
                info.update(distance_inlier_log_mean=mu, distance_inlier_log_sd=sd)
            info["distance_reference_floor"] = floor
            info["distance_threshold"] = thr_d
        if smooth_dist is not None and smooth_quantile > 0:
            # Neighbourhood test: no reference floor (smoothing narrows the spread, so the per-cell
            # reference quantile would sit far out in the smoothed distribution).
            fin_s = np.log(np.maximum(smooth_dist[np.isfinite(smooth_dist)], 1e-12))
            if fin_s.size >= 10:
                mu_s, sd_s = inlier_fit(fin_s)
                z = float(norm.ppf(1.0 - smooth_quantile))
                info.update(
                    smooth_quantile=smooth_quantile,
                    smooth_threshold=float(np.exp(mu_s + z * sd_s)),
                    # the per-cell `novelty` column: (log smoothed score - mean) / sd, Unknown above z
                    novelty_log_mean=mu_s,
                    novelty_log_sd=sd_s,
                    novelty_threshold=z,
                )
            info["smooth_unknown_rate"] = float(_smooth_flags(info, smooth_dist).mean())
    return unknown_flags(info, query_conf, query_dist, smooth_dist), info


def unknown_flags(
    info: dict, query_conf: np.ndarray, query_dist: np.ndarray | None = None, smooth_dist: np.ndarray | None = None
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
    return flags


def _smooth_flags(info: dict, smooth_dist: np.ndarray) -> np.ndarray:
    flags = ~np.isfinite(smooth_dist)
    if "smooth_threshold" in info:
        flags |= smooth_dist > info["smooth_threshold"]
    return flags


def unknown_reasons(
    flags: np.ndarray, info: dict, query_conf: np.ndarray, query_dist: np.ndarray | None = None
) -> np.ndarray:
    """The ``unknown_reason`` of each query cell ('' when labelled), from the thresholds in ``info``.

    A cell flagged by several tests gets the first of: low confidence, per-cell distance,
    neighbourhood distance (the only test left when the first two pass).
    """
    reasons = np.full(flags.size, "", dtype=object)
    low = np.zeros(flags.size, dtype=bool)
    if "confidence_threshold" in info:
        low = flags & (query_conf < info["confidence_threshold"])
    far = np.zeros(flags.size, dtype=bool)
    if "distance_threshold" in info and query_dist is not None:
        far = flags & ~low & (query_dist > info["distance_threshold"])
    reasons[flags] = FAR_NEIGHBOURHOOD
    reasons[far] = FAR_FROM_REFERENCE
    reasons[low] = LOW_CONFIDENCE
    return reasons


def unknown_scores(
    settings: dict[str, Any], x_query: np.ndarray, best_idx: np.ndarray, ref: ReferenceSet, threads: int | None
):
    """(query distance scores, held-out reference scores, smoothed query scores); None where the
    ``settings['unknown']`` test does not use them (docs/stage2.md, step 4)."""
    q_dist = h_dist = s_dist = None
    if settings["unknown"] in ("distance", "both") and ref.y_held.size:
        q_dist, h_dist = distance_scores(x_query, best_idx, ref.x_held, ref.y_held, ref.x_train, ref.y_train)
        if _smoothing(settings):
            s_dist = smooth_scores(x_query, q_dist, settings["unknown_smooth"], threads)
    return q_dist, h_dist, s_dist


def _smoothing(settings: dict[str, Any]) -> bool:
    return settings["unknown_smooth"] > 0 and settings["unknown_smooth_quantile"] > 0


def calibrate_unknown(
    settings: dict[str, Any], conf: np.ndarray, held_conf: np.ndarray, q_dist, h_dist, s_dist
) -> tuple[np.ndarray, dict]:
    """Unknown flags and thresholds: the per-cell distance test, OR-ed with the neighbourhood test
    when ``unknown_smooth`` > 0 (then the per-cell test defaults to quantile 0.01, else 0.02; the
    confidence test always defaults to 0.02)."""
    quantile, smoothing = settings["unknown_quantile"], _smoothing(settings)
    conf_q = 0.02 if quantile is None else quantile
    dist_q = (0.01 if smoothing else 0.02) if quantile is None else quantile
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
    )
    if q_dist is not None:
        info["smooth_k"] = int(settings["unknown_smooth"])
    return flags, info
