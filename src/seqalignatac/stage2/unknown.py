"""Confidence, entropy and the ``Unknown`` call, calibrated without query labels.

Thresholds come from held-out *reference* cells (never trained on): a cell is ``Unknown``
when its confidence is below the ``quantile`` of the held-out cells' confidences, and/or
(``distance`` test) when it lies farther from the training reference cells *of its predicted
class* than all but a ``quantile`` of the held-out reference cells lie from theirs.  The
distance is measured in the input embedding after centering each domain on its own mean (a
crude removal of a global batch shift), in units of the class's median held-out distance; the
held-out threshold is multiplied by how much larger the query's median distance is (noisier
query cells sit farther from everything, not only from the wrong classes).
"""

from __future__ import annotations

import numpy as np

from .graphs import l2_normalize

STRATEGIES = ("confidence", "distance", "both", "none")


def confidence_entropy(proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = np.clip(proba, 1e-12, 1.0)
    return proba.max(axis=1), -(p * np.log(p)).sum(axis=1)


def held_out_mask(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified held-out reference cells; classes with fewer than 5 cells keep all for training."""
    rng = np.random.default_rng(seed)
    held = np.zeros(y.size, dtype=bool)
    if fraction <= 0:
        return held
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < 5:
            continue
        n = max(1, int(round(fraction * idx.size)))
        held[rng.choice(idx, size=n, replace=False)] = True
    return held


def mean_knn_distance(points: np.ndarray, base: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
    """Mean cosine distance from each point to its k nearest ``base`` rows (kNN index, not all pairs)."""
    from sklearn.neighbors import NearestNeighbors

    base_n, pts_n = l2_normalize(base), l2_normalize(points)
    k = max(1, min(k, base_n.shape[0]))
    if base_n.shape[0] > 50_000:
        import faiss

        index = faiss.IndexHNSWFlat(base_n.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.add(base_n)
        sims, _ = index.search(pts_n, k)
        return 1.0 - sims.mean(axis=1)
    nn = NearestNeighbors(n_neighbors=k, n_jobs=threads).fit(base_n)
    dist, _ = nn.kneighbors(pts_n)
    return (dist**2 / 2.0).mean(axis=1)  # ||a-b||^2 / 2 = 1 - cos on unit vectors


def class_distance(
    points: np.ndarray,
    point_class: np.ndarray,
    base: np.ndarray,
    base_class: np.ndarray,
    k: int,
    threads: int | None = None,
) -> np.ndarray:
    """Mean cosine distance from each point to the k nearest ``base`` rows of the point's class."""
    out = np.full(points.shape[0], np.nan, dtype=np.float64)
    for c in np.unique(point_class):
        sel = point_class == c
        ref = base[base_class == c]
        if ref.shape[0] == 0:
            continue
        out[sel] = mean_knn_distance(points[sel], ref, k, threads)
    return out


def distance_scores(
    query_x: np.ndarray,
    query_pred: np.ndarray,
    held_x: np.ndarray,
    held_y: np.ndarray,
    train_x: np.ndarray,
    train_y: np.ndarray,
    k: int,
    threads: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-class distances of query and held-out cells, divided by the class's held-out median.

    ``query_x`` is shifted by (reference mean - query mean) first.
    """
    ref_mean = np.concatenate([train_x, held_x]).mean(axis=0)
    qx = query_x - query_x.mean(axis=0) + ref_mean
    hd = class_distance(held_x, held_y, train_x, train_y, k, threads)
    qd = class_distance(qx, query_pred, train_x, train_y, k, threads)
    scale = {c: np.median(hd[held_y == c]) for c in np.unique(held_y)}
    pooled = float(np.median(hd)) if hd.size else 1.0
    def unit(d: np.ndarray, cls: np.ndarray) -> np.ndarray:
        s = np.array([scale.get(c, pooled) for c in cls], dtype=np.float64)
        return d / np.maximum(s, 1e-12)
    qn = unit(qd, query_pred)
    qn[np.isnan(qn)] = np.inf  # a class with no training cell cannot vouch for anyone
    return qn, unit(hd, held_y)


def call_unknown(
    strategy: str,
    quantile: float,
    query_conf: np.ndarray,
    held_conf: np.ndarray,
    query_dist: np.ndarray | None = None,
    held_dist: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """Boolean Unknown flags for the query plus the thresholds used."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; use one of {', '.join(STRATEGIES)}")
    flags = np.zeros(query_conf.size, dtype=bool)
    info: dict = {"strategy": strategy, "quantile": quantile}
    if strategy == "none" or held_conf.size == 0:
        info["note"] = "no held-out reference cells" if strategy != "none" else "disabled"
        return flags, info
    if strategy in ("confidence", "both"):
        thr = float(np.quantile(held_conf, quantile))
        info["confidence_threshold"] = thr
        flags |= query_conf < thr
    if strategy in ("distance", "both"):
        assert query_dist is not None and held_dist is not None
        # A batch effect inflates every query distance; rescale the held-out threshold by the
        # ratio of medians (a novel type that is a minority of the query barely moves the median).
        finite = query_dist[np.isfinite(query_dist)]
        inflation = float(np.median(finite) / np.median(held_dist)) if finite.size else 1.0
        thr_d = float(np.quantile(held_dist, 1.0 - quantile)) * max(1.0, inflation)
        info["distance_inflation"] = inflation
        info["distance_threshold"] = thr_d
        flags |= query_dist > thr_d
    return flags, info
