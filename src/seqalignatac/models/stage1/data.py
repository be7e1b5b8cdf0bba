"""Stage-1 inputs: the binarized accessibility matrix and the peak embeddings, checked.

Everything here stays sparse: the matrix is read as CSR (cells x peaks) and only its index
arrays are kept.  Bad input raises :class:`~seqalignatac.errors.InputError` with a count and
examples, never a traceback.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac import keys
from seqalignatac.errors import InputError
from seqalignatac.io.h5ad import check_counts

log = logging.getLogger(__name__)


@dataclass
class Accessibility:
    """Binary peaks x cells pattern in CSR form (rows = peaks), without a data array.

    ``indptr``/``indices`` are exactly a peaks x cells CSR; every stored entry is a 1.
    ``keep_cells`` marks the cells of the input AnnData that are used (cells with no
    accessible peak are dropped).
    """

    indptr: np.ndarray  # int64, n_peaks + 1
    indices: np.ndarray  # int32, nnz (cell index, within the kept cells)
    n_peaks: int
    n_cells: int
    keep_cells: np.ndarray  # bool over the input cells
    n_dropped_cells: int

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    @property
    def density(self) -> float:
        return self.nnz / max(1, self.n_peaks * self.n_cells)


def check_prepared(adata, path: str | os.PathLike | None = None) -> None:
    """`train` reads prepare's accessibility.h5ad: refuse anything else before any work starts."""
    uns = adata.uns.get(keys.UNS)
    missing = [
        what
        for what, ok in (
            ("obs['domain']", keys.DOMAIN in adata.obs.columns),
            ("uns['seqalignatac']['prepare']", isinstance(uns, Mapping) and "prepare" in uns),
        )
        if not ok
    ]
    if missing:
        raise InputError(
            f"not an accessibility.h5ad written by `seqalignatac prepare` (no {' or '.join(missing)}); "
            "run prepare first: seqalignatac prepare --reference REF --query QUERY --label-key KEY "
            "--outdir DIR",
            path,
        )


def binarized_csr(adata, path: str | os.PathLike | None = None) -> sp.csr_matrix:
    """cells x peaks CSR with every non-zero set to 1 (uint8); explicit zeros removed."""
    X = adata.X
    if X is None or adata.n_vars == 0:
        raise InputError("the accessibility matrix has no peaks (X is empty)", path)
    if adata.n_obs == 0:
        raise InputError("the accessibility matrix has no cells", path)
    if not sp.issparse(X):
        # A dense input is accepted (small data) but made sparse right away.
        X = sp.csr_matrix(np.asarray(X))
    X = sp.csr_matrix(X)
    if X.dtype in (np.uint8, np.bool_) and X.has_canonical_format and (X.nnz == 0 or X.data.min() == 1):
        return X  # prepare's output is already binary and canonical: no copy (atlas-scale memory)
    check_counts(X, path)
    X.eliminate_zeros()
    out = sp.csr_matrix((np.ones(X.nnz, dtype=np.uint8), X.indices, X.indptr), shape=X.shape)
    out.sum_duplicates()
    out.data[:] = 1
    return out


def nonempty_cells(X: sp.csr_matrix, path: str | os.PathLike | None = None) -> np.ndarray:
    """Boolean mask of cells with at least one accessible peak; error if there are none."""
    counts = np.diff(X.indptr)
    keep = counts > 0
    n_drop = int((~keep).sum())
    if n_drop == X.shape[0]:
        raise InputError(
            f"none of the {X.shape[0]} cells has an accessible peak; check that the matrix is cells x peaks "
            "and holds counts",
            path,
        )
    if n_drop:
        log.warning(
            "%d of %d cells have no accessible peak: not embedded (NaN rows, obs['has_signal'] False); "
            "annotate calls their query cells Unknown (no_signal)",
            n_drop,
            X.shape[0],
        )
    return keep


def peaks_by_cells(X: sp.csr_matrix, keep_cells: np.ndarray) -> Accessibility:
    """Transpose the (kept) cells x peaks pattern into a peaks x cells index structure."""
    Xk = X[keep_cells] if not keep_cells.all() else X
    T = Xk.T.tocsr()  # peaks x cells; CSC of Xk re-read as CSR
    T.sort_indices()
    indptr = T.indptr.astype(np.int64, copy=False)
    indices = T.indices.astype(np.int32, copy=False)
    return Accessibility(
        indptr=indptr,
        indices=indices,
        n_peaks=T.shape[0],
        n_cells=T.shape[1],
        keep_cells=keep_cells,
        n_dropped_cells=int((~keep_cells).sum()),
    )


def _examples(items: Sequence[Any], n: int = 3) -> str:
    return ", ".join(str(x) for x in list(items)[:n])


def aligned_embeddings(
    peak_ids: Sequence[str], embeddings: Any, path: str | os.PathLike | None = None
) -> tuple[np.ndarray, dict]:
    """Rows of ``embeddings`` in the order of ``peak_ids`` (float32), checked.

    ``embeddings`` may be an embedding-store path, an open ``EmbeddingStore``, a DataFrame
    indexed by peak id, a ``(ids, array)`` pair, or an array already aligned to ``peak_ids``.
    Extra embedded peaks (not in the accessibility matrix) are ignored with a log line;
    missing ones are an error.
    """
    from seqalignatac.io.embedding_store import EmbeddingStore

    wanted = np.asarray(peak_ids, dtype=object)
    info: dict[str, Any] = {}
    if isinstance(embeddings, (str, os.PathLike)):
        path = os.fspath(embeddings)
        with EmbeddingStore(path) as store:
            info = {"embedding_model": str(store.attrs.get("model", "")), "embedding_path": path}
            return _from_ids(wanted, store.ids, lambda ids: store.take(ids), store.dim, path, info)
    if isinstance(embeddings, EmbeddingStore):
        path = embeddings.path
        info = {"embedding_model": str(embeddings.attrs.get("model", "")), "embedding_path": path}
        return _from_ids(wanted, embeddings.ids, embeddings.take, embeddings.dim, path, info)
    if isinstance(embeddings, pd.DataFrame):
        ids = np.asarray(embeddings.index.astype(str), dtype=object)
        arr = embeddings.to_numpy(dtype=np.float32)
        pos = pd.Index(ids)
        return _from_ids(wanted, ids, lambda q: arr[pos.get_indexer(q)], arr.shape[1], path, info)
    if isinstance(embeddings, tuple) and len(embeddings) == 2:
        ids = np.asarray(embeddings[0], dtype=object).astype(str).astype(object)
        arr = np.asarray(embeddings[1], dtype=np.float32)
        if arr.ndim != 2 or arr.shape[0] != len(ids):
            raise InputError(f"embeddings shape {arr.shape} does not match {len(ids)} ids", path)
        if len(set(ids.tolist())) != len(ids):
            raise InputError("duplicate peak ids in the embeddings", path)
        pos = pd.Index(ids)
        return _from_ids(wanted, ids, lambda q: arr[pos.get_indexer(q)], arr.shape[1], path, info)
    arr = np.asarray(embeddings, dtype=np.float32)
    if arr.ndim != 2 or arr.shape[0] != len(wanted):
        raise InputError(f"an embedding array must have one row per peak ({len(wanted)}), got shape {arr.shape}", path)
    _check_finite(arr, wanted, path)
    return arr, info


def embedded_ids(embeddings: Any) -> np.ndarray | None:
    """The peak ids an embeddings argument covers (None for an array aligned by position)."""
    from seqalignatac.io.embedding_store import EmbeddingStore

    if isinstance(embeddings, (str, os.PathLike)):
        with EmbeddingStore(embeddings) as store:
            return np.asarray(store.ids, dtype=object)
    if isinstance(embeddings, EmbeddingStore):
        return np.asarray(embeddings.ids, dtype=object)
    if isinstance(embeddings, pd.DataFrame):
        return np.asarray(embeddings.index.astype(str), dtype=object)
    if isinstance(embeddings, tuple) and len(embeddings) == 2:
        return np.asarray(embeddings[0], dtype=object).astype(str).astype(object)
    return None


def sequence_peaks(adata, embeddings: Any) -> tuple[Any, Any]:
    """``adata`` restricted to the peaks prepare selected for the sequence route, and the embeddings.

    prepare keeps every peak with signal in accessibility.h5ad (LSI uses them all) and marks the
    subset that extract and embed see in ``var[keys.SEQUENCE_PEAK]``; the network trains on that
    subset.  An array aligned to all of ``adata``'s peaks is cut to the same rows.  A matrix without
    the column (an older prepare, a hand-made AnnData) is used whole.
    """
    if keys.SEQUENCE_PEAK not in adata.var.columns:
        return adata, embeddings
    mask = adata.var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)
    if mask.all():
        return adata, embeddings
    log.info("stage 1: the %d of %d peaks selected for the sequence route", int(mask.sum()), adata.n_vars)
    if embedded_ids(embeddings) is None and not isinstance(embeddings, (str, os.PathLike)):
        arr = np.asarray(embeddings)
        if arr.ndim == 2 and arr.shape[0] == adata.n_vars:
            embeddings = arr[mask]
    return adata[:, mask], embeddings


def drop_peaks_without_embedding(adata, embeddings: Any, path=None):
    """``adata`` restricted to the peaks that have an embedding, and how many were dropped.

    ``extract`` skips peaks on contigs absent from the FASTA (and counts them in its summary),
    so a pipeline run legitimately has a few peaks with no sequence; stage 1 can only use the
    others.  No overlap at all is still an error: that is the wrong embeddings file.
    """
    ids = embedded_ids(embeddings)
    if ids is None:
        return adata, 0
    keep = np.asarray(adata.var_names.isin(ids))
    n_dropped = int((~keep).sum())
    if n_dropped == 0:
        return adata, 0
    if n_dropped == adata.n_vars:
        raise InputError(
            f"none of the {adata.n_vars} peaks (e.g. {_examples(adata.var_names)}) has an embedding; "
            "embed the peaks.bed/FASTA written by the same prepare run (is the FASTA the right genome?)",
            path,
        )
    log.warning(
        "%d of %d peaks have no embedding (no sequence: see extract's summary); stage 1 uses the other %d",
        n_dropped,
        adata.n_vars,
        int(keep.sum()),
    )
    return adata[:, keep], n_dropped


def _from_ids(peak_ids, emb_ids, take, dim: int, path, info: dict) -> tuple[np.ndarray, dict]:
    emb_index = pd.Index(np.asarray(emb_ids, dtype=object))
    peak_index = pd.Index(peak_ids)
    present = peak_index.isin(emb_index)
    n_missing = int((~present).sum())
    n_extra = int((~emb_index.isin(peak_index)).sum())
    if n_missing == len(peak_ids):
        raise InputError(
            f"the embeddings and the accessibility matrix have different peak sets: none of the "
            f"{len(peak_ids)} peaks (e.g. {_examples(peak_ids)}) is among the {len(emb_index)} embedded ids "
            f"(e.g. {_examples(emb_index)}); embed the peaks.bed/FASTA written by the same prepare run",
            path,
        )
    if n_missing:
        missing = peak_index[~present]
        raise InputError(
            f"the embeddings and the accessibility matrix have different peak sets: {n_missing} of "
            f"{len(peak_ids)} peaks have no embedding (e.g. {_examples(missing)}) and {n_extra} embedded ids "
            "are not peaks of the matrix; embed the peaks.bed/FASTA written by the same prepare run "
            '(or set missing_embeddings = "drop" in the [train] table of --config to train on the peaks '
            "that have one)",
            path,
        )
    if n_extra:
        log.warning("ignoring %d embedded peaks that are not in the accessibility matrix", n_extra)
    arr = np.asarray(take(list(peak_ids)), dtype=np.float32)
    if arr.shape != (len(peak_ids), dim):
        raise InputError(f"embeddings have shape {arr.shape}, expected ({len(peak_ids)}, {dim})", path)
    _check_finite(arr, peak_ids, path)
    info = dict(info, n_extra_embedded_peaks=n_extra, embedding_dim=int(dim))
    return arr, info


def _check_finite(arr: np.ndarray, peak_ids, path) -> None:
    bad = ~np.isfinite(arr).all(axis=1)
    if bad.any():
        raise InputError(
            f"{int(bad.sum())} peak embeddings contain NaN or infinite values (e.g. "
            f"{_examples(np.asarray(peak_ids)[bad])}); re-run embed for those peaks (check the model dtype)",
            path,
        )
    if arr.shape[1] == 0:
        raise InputError("the embeddings have zero columns", path)


def domains(adata, path=None) -> np.ndarray | None:
    """``obs['domain']`` as a string array, or None when the column is absent."""
    if keys.DOMAIN not in adata.obs.columns:
        return None
    d = adata.obs[keys.DOMAIN].astype(str).to_numpy()
    bad = set(np.unique(d)) - set(keys.DOMAINS)
    if bad:
        raise InputError(
            f"obs['{keys.DOMAIN}'] must be 'reference' or 'query', found {_examples(sorted(bad))}; "
            "use the accessibility.h5ad written by prepare",
            path,
        )
    return d


def read_accessibility(path: str):
    """prepare's accessibility.h5ad, read and checked (one-line errors naming the file)."""
    from seqalignatac.io.h5ad import read_h5ad

    adata = read_h5ad(path, "accessibility file", hint=f"pass the {keys.ACCESSIBILITY} written by prepare")
    check_prepared(adata, path)
    return adata
