"""LSI cell embeddings: the paper's sequence-free ablation ("seqAlignATAC-NT").

binarize -> TF-IDF (IDF from the reference) -> truncated SVD fitted on the reference cells ->
query cells projected onto the reference loadings.  Components whose scores correlate with
sequencing depth (log10 accessible peaks per cell, on the reference) beyond a threshold are
dropped (ArchR's ``corCutOff``; in practice the first component).  The kept scores are then
L2-normalized per cell by default (``normalize='l2'``: Euclidean kNN in stage 2 becomes cosine kNN),
or z-scored per component with the reference mean/sd (``'zscore'``, ArchR's ``scaleDims``), or
left as ``X V`` (``'none'``).  Defaults (30 components, ``l2``) were chosen by 5-fold kNN accuracy
inside the Granja reference donor (no query labels); see docs/stage1.md.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import InputError
from .data import binarized_csr, domains, nonempty_cells
from .outputs import cell_embeddings_adata, new_figure, prepare_outdir, save_figure, write_results

log = logging.getLogger(__name__)

SCALE_FACTOR = 1e4  # Signac/ArchR log-TF-IDF scale
NORMALIZE = ("l2", "zscore", "none")


def tfidf(X: sp.csr_matrix, idf: np.ndarray, chunk_cells: int = 50_000) -> sp.csr_matrix:
    """log1p(TF * IDF * 1e4) with TF = x / (accessible peaks of the cell); float32, sparse.

    Shares ``X``'s index arrays; values are computed in chunks of cells so the only new
    allocation of size nnz is the float32 result (atlas-scale memory).
    """
    depth = np.diff(X.indptr)
    vals = np.empty(X.nnz, dtype=np.float32)
    for s in range(0, X.shape[0], chunk_cells):
        e = min(X.shape[0], s + chunk_cells)
        lo, hi = X.indptr[s], X.indptr[e]
        inv_depth = np.repeat(SCALE_FACTOR / np.maximum(depth[s:e], 1), depth[s:e])
        vals[lo:hi] = np.log1p(idf[X.indices[lo:hi]] * inv_depth)
    return sp.csr_matrix((vals, X.indices, X.indptr), shape=X.shape)


def _sum_squares(a: np.ndarray, chunk: int = 1 << 24) -> float:
    return float(sum(np.square(a[s:s + chunk], dtype=np.float64).sum() for s in range(0, len(a), chunk)))


def lsi(
    adata,
    n_components: int = 30,
    depth_corr_cutoff: float = 0.75,
    normalize: str = "l2",
    seed: int = 0,
    n_iter: int = 7,
    outdir: str | os.PathLike | None = None,
    resume: bool = False,
    path: str | os.PathLike | None = None,
) -> tuple[Any, dict]:
    """LSI embedding of every cell with at least one accessible peak.

    Fitted on ``obs['domain'] == 'reference'`` cells (all cells when the column is absent),
    applied to all.  ``n_components`` is the number of SVD components computed; components
    with ``|corr(score, log10 depth)| > depth_corr_cutoff`` are removed afterwards, so the
    embedding may have fewer columns (recorded in the summary).  With ``outdir`` the standard
    stage-1 layout is written there.
    """
    from sklearn.utils.extmath import randomized_svd

    t0 = time.time()
    if n_components < 1:
        raise InputError(f"n_components must be >= 1, got {n_components}", path)
    if not 0 < depth_corr_cutoff <= 1:
        raise InputError(f"depth_corr_cutoff must be in (0, 1], got {depth_corr_cutoff}", path)
    if normalize not in NORMALIZE:
        raise InputError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}", path)
    settings = dict(method="lsi", n_components=n_components, depth_corr_cutoff=depth_corr_cutoff,
                    normalize=normalize, seed=seed, n_iter=n_iter)
    if outdir is not None:
        prepare_outdir(outdir, dict(settings, input=os.path.abspath(path) if path else "", n_cells=adata.n_obs, n_peaks=adata.n_vars),
                       resume)

    X = binarized_csr(adata, path)
    keep = nonempty_cells(X, path)
    Xk = X[keep]
    dom = domains(adata, path)
    if dom is None:
        log.info("no obs['domain']: fitting LSI on all cells")
        is_ref = np.ones(Xk.shape[0], dtype=bool)
    else:
        is_ref = dom[keep] == "reference"
        if not is_ref.any():
            raise InputError("no reference cell with an accessible peak (obs['domain'] == 'reference')", path)
    Xr = Xk[is_ref]
    n_ref = Xr.shape[0]

    # IDF from the reference; a peak never open in the reference gets the largest weight but
    # a zero loading, so it cannot move a query cell.
    n_open = np.asarray(Xr.sum(axis=0)).ravel()
    idf = (n_ref / np.maximum(n_open, 1)).astype(np.float64)
    k = min(n_components, min(Xr.shape) - 1)
    if k < 1:
        raise InputError(f"too few reference cells/peaks ({Xr.shape}) for an SVD", path)
    if k < n_components:
        log.warning("n_components %d reduced to %d (reference is %d cells x %d peaks)",
                    n_components, k, *Xr.shape)

    Tr = tfidf(Xr, idf)
    U, S, Vt = randomized_svd(Tr, n_components=k, n_iter=n_iter, random_state=seed)
    Vt = Vt.astype(np.float32)
    # Deterministic sign: the largest-|loading| peak of each component is positive.
    signs = np.sign(Vt[np.arange(k), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1
    Vt *= signs[:, None].astype(np.float32)

    # Reference and query use the same projection X V (= U S on the reference), by chunks of cells.
    scores = np.empty((Xk.shape[0], k), dtype=np.float32)
    for s in range(0, Xk.shape[0], 100_000):
        scores[s:s + 100_000] = tfidf(Xk[s:s + 100_000], idf) @ Vt.T
    log_depth = np.log10(np.diff(Xk.indptr).astype(np.float64))
    ref_scores = scores[is_ref]
    corr = np.array([_corr(ref_scores[:, j], log_depth[is_ref]) for j in range(k)])
    kept = np.abs(corr) <= depth_corr_cutoff
    if not kept.any():
        raise InputError(
            f"every LSI component correlates with depth beyond {depth_corr_cutoff}; raise --depth-corr-cutoff",
            path)
    mean = ref_scores.mean(axis=0)
    sd = ref_scores.std(axis=0)
    sd[sd == 0] = 1
    emb = scores[:, kept]
    if normalize == "zscore":
        emb = (emb - mean[kept]) / sd[kept]
    elif normalize == "l2":
        norms = np.linalg.norm(emb, axis=1, keepdims=True)
        emb = emb / np.where(norms > 0, norms, 1)
    total_var = _sum_squares(Tr.data) - n_ref * float(np.square(np.asarray(Tr.mean(axis=0), dtype=np.float64)).sum())
    explained = (np.var(ref_scores, axis=0) * n_ref / total_var) if total_var > 0 else np.zeros(k)

    dropped = [int(j + 1) for j in np.flatnonzero(~kept)]
    if dropped:
        log.info("LSI: dropped depth-correlated component(s) %s (|r| > %.2f)", dropped, depth_corr_cutoff)
    summary = dict(
        settings,
        n_components_computed=int(k),
        dims=int(emb.shape[1]),
        dropped_components=dropped,
        depth_correlation=[round(float(c), 4) for c in corr],
        explained_variance_ratio=[round(float(e), 6) for e in explained],
        n_cells=int(Xk.shape[0]),
        n_reference_cells=int(n_ref),
        n_query_cells=int((~is_ref).sum()),
        n_peaks=int(Xk.shape[1]),
        n_dropped_cells=int((~keep).sum()),
        dropped_cell_examples=[str(c) for c in adata.obs_names[~keep][:5]],
        fitted_on="reference" if dom is not None else "all cells",
        seconds=round(time.time() - t0, 2),
    )
    cells = cell_embeddings_adata(adata, keep, emb, summary)
    if outdir is not None:
        curve = pd.DataFrame({
            "component": np.arange(1, k + 1),
            "singular_value": S.astype(float),
            "explained_variance_ratio": explained,
            "depth_correlation": corr,
            "kept": kept,
        })
        tensors = {"loadings": Vt, "idf": idf.astype(np.float32), "kept": kept.astype(np.uint8),
                   "mean": mean.astype(np.float32), "sd": sd.astype(np.float32)}
        write_results(outdir, cells, summary, tensors, curve, _plot_components)
    return cells, summary


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _plot_components(curve: pd.DataFrame, path) -> None:
    fig, (ax1, ax2) = new_figure(2)
    ax1.bar(curve["component"], curve["explained_variance_ratio"], color="#4477aa")
    ax1.set_xlabel("LSI component")
    ax1.set_ylabel("explained variance ratio (reference)")
    colors = np.where(curve["kept"], "#4477aa", "#cc3311")
    ax2.bar(curve["component"], curve["depth_correlation"], color=colors)
    ax2.set_xlabel("LSI component (red: dropped)")
    ax2.set_ylabel("corr. with log10 depth")
    ax2.set_ylim(-1, 1)
    save_figure(fig, path)
