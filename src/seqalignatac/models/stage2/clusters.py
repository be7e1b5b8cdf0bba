"""Query cell clusters and how well the reference explains each (the report's view of novel types).

A count of ``Unknown`` cells does not tell a user whether they are scattered noise or one population
the reference lacks.  The query cells are clustered (Leiden on their kNN graph, as scanpy does) and
each cluster gets the median ``novelty`` of its cells: the neighbourhood score of the Unknown test
as a z-score against the query's typical cells (:func:`novelty`).  A cluster is *not explained*
when that median is past the Unknown threshold or when most of its cells are ``Unknown``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.models.stage2.graphs import l2_normalize

LEIDEN_K = 15  # neighbours of the clustering graph (scanpy's default)
# Finer than scanpy's 1: a population the size of Granja's NK cells (~3 % of the query) gets its own
# cluster, which the Unknown cluster test needs (benchmarks/results/unknown_alternatives.md).
LEIDEN_RESOLUTION = 3.0


def query_neighbours(x: np.ndarray, k: int, threads: int | None = None) -> np.ndarray:
    """Indices of each row's k nearest rows by cosine (itself first); an HNSW index past 50,000 rows."""
    n = x.shape[0]
    k = max(1, min(int(k), n))
    xn = l2_normalize(x)
    if n > 50_000:
        import faiss

        index = faiss.IndexHNSWFlat(xn.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
        index.add(xn)
        return index.search(xn, k)[1]
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k, n_jobs=threads).fit(xn).kneighbors(xn)[1]


def query_graph(x: np.ndarray, smooth_k: int, threads: int | None = None) -> np.ndarray:
    """One kNN table of the query for both the Unknown neighbourhood test and the clusters (the
    search is the costly part at a million cells: about 45 s each)."""
    return query_neighbours(x, max(int(smooth_k), LEIDEN_K + 1), threads)


def leiden_clusters(
    x: np.ndarray,
    seed: int = 0,
    threads: int | None = None,
    neighbours: np.ndarray | None = None,
    resolution: float = LEIDEN_RESOLUTION,
) -> np.ndarray:
    """Leiden communities (modularity at ``resolution``) of the query's kNN graph, numbered by size.
    ``neighbours``: a :func:`query_neighbours` table with at least ``LEIDEN_K + 1`` columns, to reuse."""
    import random

    import igraph

    n = x.shape[0]
    if n < 3:
        return np.zeros(n, dtype=np.int64)
    idx = query_neighbours(x, LEIDEN_K + 1, threads) if neighbours is None else neighbours[:, : LEIDEN_K + 1]
    src = np.repeat(np.arange(n), idx.shape[1])
    edges = np.stack([src, idx.ravel()], axis=1)
    edges = edges[(edges[:, 1] >= 0) & (edges[:, 0] != edges[:, 1])]
    graph = igraph.Graph(n=n, edges=edges, directed=False).simplify()
    igraph.set_random_number_generator(random.Random(seed))  # the same cells give the same clusters
    try:
        member = np.asarray(
            graph.community_leiden(objective_function="modularity", resolution=resolution, n_iterations=-1).membership
        )
    finally:
        igraph.set_random_number_generator(random)
    # Cluster 0 is the largest: stable names for the report and the table.
    sizes = np.bincount(member)
    rank = np.empty_like(sizes)
    rank[np.argsort(-sizes, kind="stable")] = np.arange(sizes.size)
    return rank[member].astype(np.int64)


def novelty(smoothed: np.ndarray, info: dict) -> np.ndarray:
    """The neighbourhood score as a z-score of the query's inlier fit (``inf`` stays ``inf``)."""
    mu, sd = info["novelty_log_mean"], info["novelty_log_sd"]
    with np.errstate(divide="ignore"):
        return (np.log(np.maximum(smoothed, 1e-300)) - mu) / max(sd, 1e-12)


def cluster_table(
    clusters: np.ndarray, best: np.ndarray, flags: np.ndarray, nov: np.ndarray, threshold: float
) -> pd.DataFrame:
    """One row per query cluster: size, main label, Unknown share, median novelty, explained or not."""
    rows = []
    for c in np.unique(clusters):
        sel = clusters == c
        labels = pd.Series(best[sel]).value_counts()
        unknown_share = float(flags[sel].mean())
        med = float(np.median(nov[sel])) if np.isfinite(nov[sel]).any() else float("inf")
        rows.append(
            {
                keys.QUERY_CLUSTER: int(c),
                keys.N_CELLS: int(sel.sum()),
                keys.TOP_LABEL: str(labels.index[0]),
                keys.TOP_LABEL_SHARE: float(labels.iloc[0] / sel.sum()),
                keys.UNKNOWN_SHARE: unknown_share,
                keys.MEDIAN_NOVELTY: med,
                keys.EXPLAINED: bool(med <= threshold and unknown_share < 0.5),
            }
        )
    return pd.DataFrame(rows)
