"""LSI cell embeddings: the paper's sequence-free ablation ("seqAlignATAC-NT").

binarize -> TF-IDF -> truncated SVD -> every cell projected onto the loadings.  ``lsi_fit_on``
chooses the cells the IDF and the SVD (and the depth test and z-score statistics) come from:
all cells, reference and query together, without labels (``'all'``, default), or the reference
cells (``'reference'``: the query never changes the reference's space).  Components whose scores
correlate with sequencing depth (log10 accessible peaks per cell, on the fit cells) beyond a
threshold are dropped (ArchR's ``corCutOff``; in practice the first component of log-TF-IDF).
The kept scores are then L2-normalized per cell by default (``lsi_normalize='l2'``: Euclidean kNN
in stage 2 becomes cosine kNN), or z-scored per component with the fit cells' mean/sd
(``'zscore'``, ArchR's ``scaleDims``), or left as ``X V`` (``'none'``).  The options measured for
cross-donor transfer are documented in docs/stage1.md with benchmarks/stage1_lsi_variants.py's
numbers.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac import keys
from seqalignatac.errors import InputError
from seqalignatac.models.stage1.data import binarized_csr, domains, nonempty_cells
from seqalignatac.models.stage1.options import LSI_CHOICES, LSI_RANGES, setting_name
from seqalignatac.models.stage1.outputs import (
    cell_embeddings_adata,
    new_figure,
    save_figure,
    stage1_folder,
    write_results,
)
from seqalignatac.params import check_all

log = logging.getLogger(__name__)

SCALE_FACTOR = 1e4  # Signac/ArchR log-TF-IDF scale


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
    return float(sum(np.square(a[s : s + chunk], dtype=np.float64).sum() for s in range(0, len(a), chunk)))


def _fit(Xk: sp.csr_matrix, is_fit: np.ndarray, k: int, tfidf_variant: str, seed: int, n_iter: int):
    """TF-IDF + SVD on the fit cells; scores of every cell.

    Returns (Vt, idf, S, scores, Tr of the fit cells).
    """
    from sklearn.utils.extmath import randomized_svd

    Xr = Xk[is_fit]
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
    scores = np.empty((Xk.shape[0], k), dtype=np.float32)
    for s in range(0, Xk.shape[0], 100_000):
        scores[s : s + 100_000] = tfidf(Xk[s : s + 100_000], idf, variant=tfidf_variant) @ Vt.T
    return Vt, idf, S, scores, Tr


def lsi(
    adata,
    lsi_components: int = 30,
    lsi_depth_corr_cutoff: float = 0.75,
    lsi_normalize: str = "l2",
    lsi_fit_on: str = "all",
    lsi_tfidf: str = "logtf_logidf",
    seed: int = 0,
    lsi_n_iter: int = 7,
    outdir: str | os.PathLike | None = None,
    resume: bool = False,
    path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> tuple[Any, dict]:
    """LSI embedding of every cell with at least one accessible peak.

    The keywords are the ``[train]`` keys of the same name (docs/settings.md).
    ``lsi_fit_on='all'`` (default): IDF, SVD, the depth test and the z-score statistics come from
    every cell, reference and query together (no labels are used); ``'reference'``: from the
    ``obs['domain'] == 'reference'`` cells (all cells when the column is absent), and every cell
    is projected onto them.  ``lsi_components`` is the number of SVD components computed;
    components with ``|corr(score, log10 depth)| > lsi_depth_corr_cutoff`` are removed afterwards,
    so the embedding may have fewer columns (recorded in the summary).  ``lsi_tfidf``:
    ``log_tfidf``, ``tf_logidf`` or ``logtf_logidf`` (see :func:`tfidf`).  With ``outdir`` the
    standard stage-1 layout is written there (``overwrite=True``: replacing another run's results
    instead of refusing).
    """
    t0 = time.time()
    settings = dict(
        method="lsi",
        lsi_components=lsi_components,
        lsi_depth_corr_cutoff=lsi_depth_corr_cutoff,
        lsi_normalize=lsi_normalize,
        lsi_fit_on=lsi_fit_on,
        lsi_tfidf=lsi_tfidf,
        seed=seed,
        lsi_n_iter=lsi_n_iter,
    )
    _check_settings(settings, path)
    fingerprint = dict(settings, input=os.path.abspath(path) if path else "", n_cells=adata.n_obs, n_peaks=adata.n_vars)
    with stage1_folder(outdir, fingerprint, resume, overwrite) as work:  # published as a unit at the end
        X = binarized_csr(adata, path)
        keep = nonempty_cells(X, path)
        Xk = X[keep]
        dom = domains(adata, path)
        is_ref, is_fit = _fit_cells(dom, keep, lsi_fit_on, path)
        n_fit = int(is_fit.sum())
        k = min(lsi_components, min(n_fit, Xk.shape[1]) - 1)
        if k < 1:
            raise InputError(f"too few fit cells/peaks ({n_fit} x {Xk.shape[1]}) for an SVD", path)
        if k < lsi_components:
            log.warning(
                "lsi_components %d reduced to %d (fit on %d cells x %d peaks)", lsi_components, k, n_fit, Xk.shape[1]
            )

        Vt, idf, S, scores, Tr = _fit(Xk, is_fit, k, lsi_tfidf, seed, lsi_n_iter)
        log_depth = np.log10(np.diff(Xk.indptr).astype(np.float64))
        corr = np.array([_corr(scores[is_fit, j], log_depth[is_fit]) for j in range(k)])
        kept = np.abs(corr) <= lsi_depth_corr_cutoff
        if not kept.any():
            raise InputError(
                f"every LSI component correlates with depth beyond {lsi_depth_corr_cutoff}; "
                "raise lsi_depth_corr_cutoff in the [train] table of --config",
                path,
            )
        emb, mean, sd = _normalized(scores, kept, is_fit, lsi_normalize)
        explained = _explained_variance(Tr, scores[is_fit], k)

        dropped = [int(j + 1) for j in np.flatnonzero(~kept)]
        if dropped:
            log.info("LSI: dropped depth-correlated component(s) %s (|r| > %.2f)", dropped, lsi_depth_corr_cutoff)
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
            n_dropped_cells=int((~keep).sum()),
            dropped_cell_examples=[str(c) for c in adata.obs_names[~keep][:5]],
            fitted_on=("reference" if lsi_fit_on == keys.REFERENCE else "reference + query")
            if dom is not None
            else "all cells",
            seconds=round(time.time() - t0, 2),
        )
        cells = cell_embeddings_adata(adata, keep, emb, summary)
        if work is not None:
            curve = pd.DataFrame(
                {
                    "component": np.arange(1, k + 1),
                    "singular_value": S.astype(float),
                    "explained_variance_ratio": explained,
                    "depth_correlation": corr,
                    "kept": kept,
                }
            )
            tensors = {
                "loadings": Vt,
                "idf": idf.astype(np.float32),
                "kept": kept.astype(np.uint8),
                "mean": mean.astype(np.float32),
                "sd": sd.astype(np.float32),
            }
            write_results(work, cells, summary, tensors, curve, _plot_components)
        return cells, summary


def _check_settings(settings: dict[str, Any], path) -> None:
    """The [train] table's ranges and choices, with the same messages, for API callers."""
    check_all(settings, LSI_RANGES, path, option_name=setting_name)
    for key, choices in LSI_CHOICES.items():
        if settings[key] not in choices:
            raise InputError(f"{key} must be one of {', '.join(choices)}, got {settings[key]!r}", path)


def _fit_cells(dom: np.ndarray | None, keep: np.ndarray, fit_on: str, path) -> tuple[np.ndarray, np.ndarray]:
    """(reference cells, fit cells) among the kept cells.

    The fit cells give the IDF, the SVD, the depth test and the z-score statistics: the reference
    cells, or (``fit_on='all'``) every cell, reference and query, without labels.
    """
    n = int(keep.sum())
    if dom is None:
        log.info("no obs['%s']: fitting LSI on all cells", keys.DOMAIN)
        is_ref = np.ones(n, dtype=bool)
    else:
        is_ref = dom[keep] == keys.REFERENCE
        if not is_ref.any():
            raise InputError(
                f"no reference cell with an accessible peak (obs['{keys.DOMAIN}'] == '{keys.REFERENCE}')", path
            )
    return is_ref, (is_ref if fit_on == keys.REFERENCE else np.ones(n, dtype=bool))


def _normalized(scores: np.ndarray, kept: np.ndarray, is_fit: np.ndarray, normalize: str):
    """The kept components, L2-normalized per cell, z-scored with the fit cells' mean/sd, or raw;
    with the fit cells' per-component mean and sd (sd 0 -> 1) over all components."""
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
    return emb, mean, sd


def _explained_variance(Tr: sp.csr_matrix, fit_scores: np.ndarray, k: int) -> np.ndarray:
    """Each component's share of the fit cells' total TF-IDF variance."""
    n_fit = fit_scores.shape[0]
    total_var = _sum_squares(Tr.data) - n_fit * float(np.square(np.asarray(Tr.mean(axis=0), dtype=np.float64)).sum())
    return (np.var(fit_scores, axis=0) * n_fit / total_var) if total_var > 0 else np.zeros(k)


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
