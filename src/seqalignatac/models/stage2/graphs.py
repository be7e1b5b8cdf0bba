"""Cosine kNN graphs over cell embeddings, normalized as A_hat = D^-1/2 (A + I) D^-1/2.

The normalisation is PyTorch Geometric's (``to_undirected`` + ``gcn_norm``); the result is
handed on as scipy CSR.

Exact neighbours (scikit-learn) for small data; an inverted-file index from faiss (cosine =
inner product of L2-normalized rows) for large data, so a million cells take minutes.
Everything stays sparse: the graph has at most n * (2k + 1) non-zeros.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.sparse as sp
import torch

log = logging.getLogger(__name__)

EXACT_MAX_CELLS = 50_000  # above this, "auto" switches to the approximate faiss index
KNN_METHODS = ("auto", "exact", "faiss")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def clip_k(k: int, n_cells: int, what: str) -> int:
    """k may not exceed n-1 neighbours (self excluded); clip with a warning."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if k > n_cells - 1:
        new_k = max(n_cells - 1, 0)
        warnings.warn(f"k={k} is larger than the {n_cells} {what} cells allow; using k={new_k}", stacklevel=2)
        log.warning("k=%d clipped to %d for the %s graph (%d cells)", k, new_k, what, n_cells)
        return new_k
    return k


def knn_indices(
    x: np.ndarray,
    k: int,
    *,
    method: str = "auto",
    threads: int | None = None,
    seed: int = 0,
    nprobe: int = 16,
) -> np.ndarray:
    """Indices (n x k) of each row's k nearest other rows by cosine similarity."""
    n = x.shape[0]
    if k == 0:
        return np.empty((n, 0), dtype=np.int64)
    xn = l2_normalize(x)
    if method == "auto":
        method = "exact" if n <= EXACT_MAX_CELLS else "faiss"
    if method == "exact":
        from sklearn.neighbors import NearestNeighbors

        # Euclidean on unit vectors orders neighbours exactly as cosine does.
        nn = NearestNeighbors(n_neighbors=k + 1, n_jobs=threads).fit(xn)
        idx = nn.kneighbors(xn, return_distance=False)
    elif method == "faiss":
        idx = _faiss_knn(xn, k + 1, threads=threads, seed=seed, nprobe=nprobe)
    else:
        raise ValueError(f"unknown kNN method {method!r} (use auto, exact or faiss)")
    return _drop_self(idx, k)


def _drop_self(idx: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own index (usually column 0; duplicates can reorder it)."""
    n = idx.shape[0]
    is_self = idx == np.arange(n)[:, None]
    # Rows where self was not returned (exact duplicates): drop the last column instead.
    missing = ~is_self.any(axis=1)
    is_self[missing, -1] = True
    # Invalid faiss results (-1) are replaced by self loops, which the graph adds anyway.
    out = idx[~is_self].reshape(n, k)
    bad = out < 0
    if bad.any():
        out[bad] = np.broadcast_to(np.arange(n)[:, None], out.shape)[bad]
    return out


def _faiss_knn(
    xn: np.ndarray, k: int, *, threads: int | None, seed: int, nprobe: int, queries: np.ndarray | None = None
) -> np.ndarray:
    """k nearest rows of ``xn`` (inner product on unit rows) for each row of ``queries`` (default ``xn``)."""
    import faiss

    if threads:
        faiss.omp_set_num_threads(int(threads))
    n, d = xn.shape
    nlist = int(min(max(4 * np.sqrt(n), 16), n // 39 if n >= 39 * 16 else 16))
    quantizer = faiss.IndexFlatIP(d)
    index = faiss.IndexIVFFlat(quantizer, d, nlist, faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = int(seed)
    rng = np.random.default_rng(seed)
    train = xn[rng.choice(n, size=min(n, 64 * nlist), replace=False)] if n > 64 * nlist else xn
    index.train(train)
    index.add(xn)
    index.nprobe = int(nprobe)
    log.info("faiss IVF index: %d cells, %d lists, nprobe %d", n, nlist, nprobe)
    _, idx = index.search(xn if queries is None else np.ascontiguousarray(queries, dtype=np.float32), k)
    return idx.astype(np.int64)


def neighbour_votes(
    base: np.ndarray,
    labels: np.ndarray,
    points: np.ndarray,
    k: int,
    n_classes: int,
    *,
    threads: int | None = None,
    seed: int = 0,
    nprobe: int = 16,
) -> np.ndarray:
    """kNN vote fractions (points x n_classes) over ``base`` rows labeled ``labels`` (cosine), with the
    faiss IVF index (atlas-sized references: an exact search of 500k x 500k cells takes hours on a CPU)."""
    xb = np.ascontiguousarray(l2_normalize(base), dtype=np.float32)
    xq = np.ascontiguousarray(l2_normalize(points), dtype=np.float32)
    idx = _faiss_knn(xb, k, threads=threads, seed=seed, nprobe=nprobe, queries=xq)
    valid = idx >= 0  # faiss pads with -1 when a probe finds fewer than k rows
    rows = np.repeat(np.arange(idx.shape[0]), idx.shape[1])[valid.ravel()]
    votes = np.zeros((idx.shape[0], n_classes), dtype=np.float64)
    np.add.at(votes, (rows, labels[idx[valid]]), 1.0)
    return (votes / np.maximum(votes.sum(axis=1, keepdims=True), 1.0)).astype(np.float32)


def gcn_edges(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """PyG's GCN normalisation of a kNN index table: (edge_index 2 x E, weights E), sorted by row.

    The kNN edges and one self loop per cell are made symmetric and merged by
    ``torch_geometric.utils.to_undirected`` (an edge if either cell lists the other; one sort),
    then ``gcn_norm`` weights every edge 1 / sqrt(d_i d_j), d the degree including the self loop.
    (``gcn_norm``'s own ``add_self_loops`` appends the loops unsorted, which would cost a second
    sort; the loops are added first instead, same result.)
    """
    from torch_geometric.nn.conv.gcn_conv import gcn_norm
    from torch_geometric.utils import to_undirected

    n, k = idx.shape
    cells = torch.arange(n, dtype=torch.int64)
    src = torch.cat([cells.repeat_interleave(k), cells])
    dst = torch.cat([torch.from_numpy(np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)), cells])
    del cells
    edge_index = to_undirected(torch.stack([src, dst]), num_nodes=n)
    del src, dst
    return gcn_norm(edge_index, None, n, add_self_loops=False, dtype=torch.float32)


def normalized_adjacency(idx: np.ndarray) -> sp.csr_matrix:
    """Symmetric A (an edge if either cell lists the other) + I, then D^-1/2 (A+I) D^-1/2.

    Computed by PyTorch Geometric (:func:`gcn_edges`); returned as scipy CSR (float32, sorted
    indices, int32 indices where they fit).
    """
    n = idx.shape[0]
    edge_index, weight = gcn_edges(idx)
    from torch_geometric.index import index2ptr

    indptr = index2ptr(edge_index[0], n).numpy()
    indices = edge_index[1].numpy()
    del edge_index
    if indptr[-1] < np.iinfo(np.int32).max and n < np.iinfo(np.int32).max:
        indptr, indices = indptr.astype(np.int32), indices.astype(np.int32)
    a = sp.csr_matrix((weight.numpy(), indices, indptr), shape=(n, n))
    a.has_sorted_indices = True
    return a


def build_graph(
    x: np.ndarray,
    k: int,
    *,
    what: str = "",
    method: str = "auto",
    threads: int | None = None,
    seed: int = 0,
) -> sp.csr_matrix:
    """The normalized cosine kNN graph of the rows of ``x`` (k clipped to n-1 with a warning)."""
    k = clip_k(k, x.shape[0], what)
    return normalized_adjacency(knn_indices(x, k, method=method, threads=threads, seed=seed))


def to_torch(a: sp.csr_matrix, device: torch.device | str = "cpu") -> torch.Tensor:
    """scipy CSR -> torch sparse CSR (float32) on ``device``."""
    a = a.tocsr()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "CSR support is in beta" notices
        t = torch.sparse_csr_tensor(
            torch.from_numpy(a.indptr.astype(np.int64)),
            torch.from_numpy(a.indices.astype(np.int64)),
            torch.from_numpy(a.data.astype(np.float32)),
            size=a.shape,
        )
    return t.to(device)
