"""LSI cell embeddings: the paper's sequence-free ablation ("seqAlignATAC-NT").

binarize -> TF-IDF -> truncated SVD -> every cell projected onto the loadings.  ``fit_on``
chooses the cells the IDF and the SVD (and the depth test and z-score statistics) come from:
the reference cells (``'reference'``, default: the query never changes the reference's space) or
all cells, reference and query together, without labels (``'all'``).  Components whose scores
correlate with sequencing depth (log10 accessible peaks per cell, on the fit cells) beyond a
threshold are dropped (ArchR's ``corCutOff``; in practice the first component of log-TF-IDF).
The kept scores are then L2-normalized per cell by default (``normalize='l2'``: Euclidean kNN in
stage 2 becomes cosine kNN), or z-scored per component with the fit cells' mean/sd (``'zscore'``,
ArchR's ``scaleDims``), or left as ``X V`` (``'none'``).  Options that were measured for
cross-donor transfer (TF-IDF variant, peak selection before the SVD, ArchR-style iterative LSI)
are documented in docs/stage1.md with benchmarks/stage1_lsi_variants.py's numbers.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..cli_types import check_all
from ..errors import InputError
from .data import binarized_csr, domains, nonempty_cells
from .options import LSI_RANGES, lsi_option
from .outputs import cell_embeddings_adata, new_figure, save_figure, stage1_folder, write_results

log = logging.getLogger(__name__)

SCALE_FACTOR = 1e4  # Signac/ArchR log-TF-IDF scale
NORMALIZE = ("l2", "zscore", "none")
FIT_ON = ("reference", "all")
TFIDF = ("log_tfidf", "tf_logidf", "logtf_logidf")


def tfidf(X: sp.csr_matrix, idf: np.ndarray, chunk_cells: int = 50_000, variant: str = "log_tfidf") -> sp.csr_matrix:
    """TF-IDF of a binary cells x peaks CSR; float32, sparse.  TF = x / (accessible peaks of the cell).

    ``variant`` (ArchR's LSI methods 2, 1, 3; ``idf`` from :func:`idf_weights` with the same variant):
    ``'log_tfidf'`` (default, Signac/ArchR 2): ``log1p(1e4 * TF * n/df)``;
    ``'tf_logidf'`` (ArchR 1): ``1e4 * TF * log1p(n/df)``;
    ``'logtf_logidf'`` (ArchR 3): ``log1p(1e4 * TF) * log1p(n/df)``.
    Shares ``X``'s index arrays; values are computed in chunks of cells so the only new
    allocation of size nnz is the float32 result (atlas-scale memory).
    """
    depth = np.diff(X.indptr)
    vals = np.empty(X.nnz, dtype=np.float32)
    for s in range(0, X.shape[0], chunk_cells):
        e = min(X.shape[0], s + chunk_cells)
        lo, hi = X.indptr[s], X.indptr[e]
        tf = np.repeat(SCALE_FACTOR / np.maximum(depth[s:e], 1), depth[s:e])
        w = idf[X.indices[lo:hi]]
        if variant == "log_tfidf":
            vals[lo:hi] = np.log1p(tf * w)
        elif variant == "tf_logidf":
            vals[lo:hi] = tf * w
        else:
            vals[lo:hi] = np.log1p(tf) * w
    return sp.csr_matrix((vals, X.indices, X.indptr), shape=X.shape)


def idf_weights(n_open: np.ndarray, n_cells: int, variant: str = "log_tfidf") -> np.ndarray:
    """Per-peak IDF for :func:`tfidf`: ``n / df`` ('log_tfidf') or ``log1p(n / df)`` (the others); df >= 1."""
    idf = (n_cells / np.maximum(n_open, 1)).astype(np.float64)
    return idf if variant == "log_tfidf" else np.log1p(idf)


def _sum_squares(a: np.ndarray, chunk: int = 1 << 24) -> float:
    return float(sum(np.square(a[s:s + chunk], dtype=np.float64).sum() for s in range(0, len(a), chunk)))


def _fit(Xk, is_fit, peaks, k, tfidf_variant, seed, n_iter):
    """TF-IDF + SVD on the fit cells restricted to ``peaks``; scores of every cell.

    Returns (Vt over the selected peaks, idf over the selected peaks, S, scores, Tr of the fit cells).
    """
    from sklearn.utils.extmath import randomized_svd

    Xs = Xk[:, peaks] if peaks is not None else Xk
    Xr = Xs[is_fit]
    n_open = np.asarray(Xr.sum(axis=0)).ravel()
    # A peak never open in the fit cells gets the largest weight but a zero loading, so it
    # cannot move a (query) cell.
    idf = idf_weights(n_open, Xr.shape[0], tfidf_variant)
    Tr = tfidf(Xr, idf, variant=tfidf_variant)
    _, S, Vt = randomized_svd(Tr, n_components=k, n_iter=n_iter, random_state=seed)
    Vt = Vt.astype(np.float32)
    # Deterministic sign: the largest-|loading| peak of each component is positive.
    signs = np.sign(Vt[np.arange(k), np.abs(Vt).argmax(axis=1)])
    signs[signs == 0] = 1
    Vt *= signs[:, None].astype(np.float32)
    # Every cell uses the same projection X V (= U S on the fit cells), by chunks of cells.
    scores = np.empty((Xs.shape[0], k), dtype=np.float32)
    for s in range(0, Xs.shape[0], 100_000):
        scores[s:s + 100_000] = tfidf(Xs[s:s + 100_000], idf, variant=tfidf_variant) @ Vt.T
    return Vt, idf, S, scores, Tr


def _variable_peaks(Xk, is_fit, emb, n_clusters, n_top, seed):
    """ArchR-style feature selection: k-means clusters of the fit cells on ``emb`` -> per-cluster
    pseudo-bulk (fraction of cells open, log-normalized) -> the ``n_top`` peaks of largest
    variance across clusters (sorted indices)."""
    from sklearn.cluster import KMeans

    Xr = Xk[is_fit]
    lab = KMeans(n_clusters=min(n_clusters, Xr.shape[0]), n_init=3, random_state=seed).fit_predict(emb[is_fit])
    onehot = sp.csr_matrix((np.ones(len(lab)), (lab, np.arange(len(lab)))), shape=(lab.max() + 1, len(lab)))
    bulk = np.asarray((onehot @ Xr).todense(), dtype=np.float64)
    bulk = np.log1p(bulk / np.maximum(bulk.sum(axis=1, keepdims=True), 1) * SCALE_FACTOR)
    var = bulk.var(axis=0)
    n_top = min(n_top, Xk.shape[1])
    return np.sort(np.argsort(-var, kind="stable")[:n_top])


def lsi(
    adata,
    n_components: int = 30,
    depth_corr_cutoff: float = 0.75,
    normalize: str = "l2",
    fit_on: str = "all",
    tfidf_variant: str = "logtf_logidf",
    min_peak_frac: float = 0.0,
    var_peaks: int = 0,
    var_clusters: int = 20,
    seed: int = 0,
    n_iter: int = 7,
    outdir: str | os.PathLike | None = None,
    resume: bool = False,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> tuple[Any, dict]:
    """LSI embedding of every cell with at least one accessible peak.

    ``fit_on='reference'`` (default): IDF, SVD, the depth test and the z-score statistics come from
    the ``obs['domain'] == 'reference'`` cells (all cells when the column is absent) and every cell
    is projected onto them; ``'all'``: from every cell, reference and query together (no labels are
    used).  ``n_components`` is the number of SVD components computed; components
    with ``|corr(score, log10 depth)| > depth_corr_cutoff`` are removed afterwards, so the
    embedding may have fewer columns (recorded in the summary).  ``tfidf_variant``: ``log_tfidf``,
    ``tf_logidf`` or ``logtf_logidf`` (see :func:`tfidf`).  Peak selection before the SVD (both off by
    default): ``min_peak_frac`` keeps peaks open in at least that fraction of the fit cells;
    ``var_peaks > 0`` runs ArchR-style iterative LSI: a first LSI, ``var_clusters`` k-means
    clusters of the fit cells, then LSI again on the ``var_peaks`` peaks most variable across
    the clusters' pseudo-bulks.  With ``outdir`` the standard stage-1 layout is written there
    (``overwrite=True``: replacing another run's results instead of refusing).
    """
    t0 = time.time()
    check_all(dict(n_components=n_components, depth_corr_cutoff=depth_corr_cutoff, min_peak_frac=min_peak_frac,
                   var_peaks=var_peaks, var_clusters=var_clusters, n_iter=n_iter, seed=seed),
              LSI_RANGES, path, option_name=lsi_option)
    if normalize not in NORMALIZE:
        raise InputError(f"normalize must be one of {', '.join(NORMALIZE)}, got {normalize!r}", path)
    if fit_on not in FIT_ON:
        raise InputError(f"fit_on must be one of {', '.join(FIT_ON)}, got {fit_on!r}", path)
    if tfidf_variant not in TFIDF:
        raise InputError(f"tfidf_variant must be one of {', '.join(TFIDF)}, got {tfidf_variant!r}", path)
    settings = dict(method="lsi", n_components=n_components, depth_corr_cutoff=depth_corr_cutoff,
                    normalize=normalize, fit_on=fit_on, tfidf_variant=tfidf_variant, min_peak_frac=min_peak_frac,
                    var_peaks=var_peaks, var_clusters=var_clusters, seed=seed, n_iter=n_iter)
    fingerprint = dict(settings, input=os.path.abspath(path) if path else "", n_cells=adata.n_obs, n_peaks=adata.n_vars)
    with stage1_folder(outdir, fingerprint, resume, overwrite) as work:  # published as a unit at the end
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
        # The cells the IDF, the SVD, the depth test and the z-score statistics are taken from:
        # the reference cells, or (fit_on='all') every cell, reference and query, without labels.
        is_fit = is_ref if fit_on == "reference" else np.ones(Xk.shape[0], dtype=bool)
        n_fit = int(is_fit.sum())

        peaks = None
        if min_peak_frac > 0:
            frac = np.asarray(Xk[is_fit].sum(axis=0)).ravel() / n_fit
            peaks = np.flatnonzero(frac >= min_peak_frac)
        n_sel = Xk.shape[1] if peaks is None else len(peaks)
        k = min(n_components, min(n_fit, n_sel) - 1)
        if k < 1:
            raise InputError(f"too few fit cells/peaks ({n_fit} x {n_sel}) for an SVD", path)
        if k < n_components:
            log.warning("n_components %d reduced to %d (fit on %d cells x %d peaks)", n_components, k, n_fit, n_sel)

        log_depth = np.log10(np.diff(Xk.indptr).astype(np.float64))

        def depth_kept(scores):
            c = np.array([_corr(scores[is_fit, j], log_depth[is_fit]) for j in range(scores.shape[1])])
            return c, np.abs(c) <= depth_corr_cutoff

        Vt, idf, S, scores, Tr = _fit(Xk, is_fit, peaks, k, tfidf_variant, seed, n_iter)
        if var_peaks > 0:
            _, kept0 = depth_kept(scores)
            first = scores[:, kept0] if kept0.any() else scores
            first = first / np.maximum(np.linalg.norm(first, axis=1, keepdims=True), 1e-12)
            sub = Xk if peaks is None else Xk[:, peaks]
            sel = _variable_peaks(sub, is_fit, first, var_clusters, var_peaks, seed)
            peaks = sel if peaks is None else peaks[sel]
            k = min(k, len(peaks) - 1)
            Vt, idf, S, scores, Tr = _fit(Xk, is_fit, peaks, k, tfidf_variant, seed, n_iter)

        corr, kept = depth_kept(scores)
        if not kept.any():
            raise InputError(
                f"every LSI component correlates with depth beyond {depth_corr_cutoff}; raise --depth-corr-cutoff",
                path)
        fit_scores = scores[is_fit]
        mean = fit_scores.mean(axis=0)
        sd = fit_scores.std(axis=0)
        sd[sd == 0] = 1
        emb = scores[:, kept]
        if normalize == "zscore":
            emb = (emb - mean[kept]) / sd[kept]
        elif normalize == "l2":
            norms = np.linalg.norm(emb, axis=1, keepdims=True)
            emb = emb / np.where(norms > 0, norms, 1)
        total_var = _sum_squares(Tr.data) - n_fit * float(np.square(np.asarray(Tr.mean(axis=0), dtype=np.float64)).sum())
        explained = (np.var(fit_scores, axis=0) * n_fit / total_var) if total_var > 0 else np.zeros(k)

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
            n_reference_cells=int(is_ref.sum()),
            n_query_cells=int((~is_ref).sum()),
            n_fit_cells=n_fit,
            n_peaks=int(Xk.shape[1]),
            n_peaks_used=int(n_sel if var_peaks == 0 else len(peaks)),
            n_dropped_cells=int((~keep).sum()),
            dropped_cell_examples=[str(c) for c in adata.obs_names[~keep][:5]],
            fitted_on=("reference" if fit_on == "reference" else "reference + query") if dom is not None else "all cells",
            seconds=round(time.time() - t0, 2),
        )
        cells = cell_embeddings_adata(adata, keep, emb, summary)
        if work is not None:
            curve = pd.DataFrame({
                "component": np.arange(1, k + 1),
                "singular_value": S.astype(float),
                "explained_variance_ratio": explained,
                "depth_correlation": corr,
                "kept": kept,
            })
            # Loadings and IDF over all peaks (zero for peaks not selected), so the shapes do not
            # depend on the peak selection.
            full_Vt = np.zeros((k, Xk.shape[1]), dtype=np.float32)
            full_idf = np.zeros(Xk.shape[1], dtype=np.float32)
            cols = slice(None) if peaks is None else peaks
            full_Vt[:, cols] = Vt
            full_idf[cols] = idf
            tensors = {"loadings": full_Vt, "idf": full_idf, "kept": kept.astype(np.uint8),
                       "mean": mean.astype(np.float32), "sd": sd.astype(np.float32)}
            write_results(work, cells, summary, tensors, curve, _plot_components)
        return cells, summary


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _plot_components(curve: pd.DataFrame, path) -> None:
    fig, (ax1, ax2) = new_figure(2)
    ax1.bar(curve["component"], curve["explained_variance_ratio"], color="#4477aa")
    ax1.set_xlabel("LSI component")
    ax1.set_ylabel("explained variance ratio (fit cells)")
    colors = np.where(curve["kept"], "#4477aa", "#cc3311")
    ax2.bar(curve["component"], curve["depth_correlation"], color=colors)
    ax2.set_xlabel("LSI component (red: dropped)")
    ax2.set_ylabel("corr. with log10 depth")
    ax2.set_ylim(-1, 1)
    save_figure(fig, path)
