"""Tools, scanpy style: peak sequence embeddings, stage-1 cell embeddings, stage-2 annotation.

Each function works on the AnnData from :func:`seqalignatac.pp.harmonize` in place and runs the
same code as the matching command (``embed``, ``train``, ``annotate``).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from seqalignatac import keys
from seqalignatac.errors import InputError

__all__ = ["embed_peaks", "cell_embedding", "annotate"]

CELL_EMBEDDING_METHODS = ("lsi", "nt")


def embed_peaks(
    adata,
    model: str = "kmer",
    *,
    sequence_key: str = keys.SEQUENCE,
    key_added: str = keys.PEAK_EMBEDDING,
    device: str = "auto",
    batch_size: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    threads: int | None = None,
    progress: bool | None = None,
) -> None:
    """Embed every peak's DNA sequence with a frozen Nucleotide Transformer (or k-mer counts).

    Parameters
    ----------
    adata
        AnnData with ``var[sequence_key]`` (from :func:`seqalignatac.pp.peak_sequences`).
    model
        A Hugging Face name or local folder of a Nucleotide Transformer, or ``kmer`` / ``kmer:K``
        (``seqalignatac embed --help``).
    device, batch_size, cache_dir, threads, progress
        As for ``seqalignatac embed``.

    Writes ``adata.varm[key_added]`` (peaks x dims, float32; NaN rows for peaks without sequence)
    and ``adata.uns['seqalignatac']['embed']`` (model, fingerprint, pooling).
    """
    from seqalignatac.embed.runner import embed_fasta
    from seqalignatac.io.embedding_store import EmbeddingStore

    if sequence_key not in adata.var:
        raise InputError(f"var has no {sequence_key!r} column; run sa.pp.peak_sequences(adata, fasta) first")
    ids = adata.var_names.astype(str).to_numpy()
    seqs = adata.var[sequence_key].astype(str).to_numpy()
    has_seq = seqs != ""
    if not has_seq.any():
        raise InputError(f"var[{sequence_key!r}] is empty for every peak; check the FASTA matches the peaks")
    with tempfile.TemporaryDirectory(prefix="seqalignatac-") as tmp:
        fasta, store = Path(tmp) / keys.PEAKS_FASTA, Path(tmp) / keys.EMBEDDINGS
        with open(fasta, "w") as fh:
            fh.writelines(f">{i}\n{s}\n" for i, s in zip(ids[has_seq], seqs[has_seq]))
        res = embed_fasta(
            str(fasta),
            model,
            str(store),
            device=device,
            batch_size=batch_size,
            cache_dir=None if cache_dir is None else str(cache_dir),
            threads=threads,
            progress=progress,
        )
        with EmbeddingStore(store) as st:
            emb = st.take(ids[has_seq])
            pooling = st.attrs.get("pooling")
    out = np.full((adata.n_vars, emb.shape[1]), np.nan, dtype=np.float32)
    out[has_seq] = emb
    adata.varm[key_added] = out
    adata.uns.setdefault(keys.UNS, {})["embed"] = {
        "model": res.model,
        "model_fingerprint": res.fingerprint,
        "pooling": str(pooling),
    }


def cell_embedding(
    adata,
    method: str = "lsi",
    *,
    peak_embedding_key: str = keys.PEAK_EMBEDDING,
    device: str = "auto",
    threads: int | None = None,
    progress: bool | None = None,
    **settings: Any,
) -> None:
    """Stage 1: one embedding per cell, from its accessible peaks.

    Parameters
    ----------
    adata
        AnnData from :func:`seqalignatac.pp.harmonize`.
    method
        ``lsi``: TF-IDF + truncated SVD (no sequences needed); ``nt``: the sequence-to-accessibility
        network on ``adata.varm[peak_embedding_key]`` (from :func:`embed_peaks`).
    device, threads, progress
        As for ``seqalignatac train``.
    **settings
        Settings of the method (the keys of the ``[train]`` table, docs/settings.md).

    Writes ``adata.obsm['X_seqalignatac']`` (cells x dims; NaN rows for cells without an accessible
    peak), ``adata.obs['has_signal']`` and ``adata.uns['seqalignatac']['stage1']`` (the summary).
    """
    from seqalignatac.models import stage1

    if method not in CELL_EMBEDDING_METHODS:
        raise InputError(f"method must be one of {', '.join(CELL_EMBEDDING_METHODS)}, not {method!r}")
    if method == "lsi":
        cells, _ = stage1.lsi(adata, **settings)
    else:
        if peak_embedding_key not in adata.varm:
            raise InputError(f"varm has no {peak_embedding_key!r}; run sa.tl.embed_peaks(adata) first")
        emb = np.asarray(adata.varm[peak_embedding_key])
        present = np.isfinite(emb).all(axis=1)
        peak_ids = adata.var_names.astype(str).to_numpy()
        cells, _ = stage1.train(
            adata,
            (peak_ids[present], emb[present]),
            device=device,
            threads=threads,
            progress=progress,
            missing_embeddings="drop" if not present.all() else "error",
            **settings,
        )
    if not cells.obs_names.equals(adata.obs_names):
        raise AssertionError("stage 1 returned cells in another order")  # a bug, not a user error
    adata.obsm[keys.EMBEDDING] = cells.obsm[keys.EMBEDDING]
    adata.obs[keys.HAS_SIGNAL] = cells.obs[keys.HAS_SIGNAL].to_numpy()
    adata.uns.setdefault(keys.UNS, {})["stage1"] = cells.uns[keys.UNS]["stage1"]


def annotate(
    adata,
    method: str = "gda",
    *,
    labels_key: str | None = None,
    config: Any = None,
    embedding_key: str = keys.EMBEDDING,
    device: str = "auto",
    seed: int = 0,
    threads: int | None = None,
    progress: bool | None = None,
    **settings: Any,
):
    """Stage 2: label the query cells from the reference cells, across the batch effect.

    Parameters
    ----------
    adata
        AnnData with ``obs['domain']``, the reference labels in ``obs[labels_key]`` and
        ``obsm[embedding_key]`` (from :func:`cell_embedding`).
    method
        ``gda``: graph domain adaptation (A2GNN ensemble mixed with kNN and logistic-regression
        transfer); ``knn``: kNN label transfer alone.
    labels_key
        obs column with the reference labels; None: the one :func:`seqalignatac.pp.harmonize` recorded.
    config
        A :class:`seqalignatac.models.GDAConfig` or a dict of its fields (the ``[annotate]`` keys of
        docs/settings.md that configure the network and the mix).
    device, seed, threads, progress
        As for ``seqalignatac annotate``.
    **settings
        The other ``[annotate]`` keys (``unknown``, ``unknown_quantile``, ``knn_k``, ...).

    Returns
    -------
    :class:`seqalignatac.models.Annotator`, the fitted model (``save``, ``load``, ``predict``).

    Writes, for the query cells (missing for reference cells): ``obs['seqalignatac_prediction']``
    (a class or ``Unknown``), ``obs['seqalignatac_unknown_reason' | '_confidence' | '_entropy' |
    '_unknown' | '_best_label']``, ``obsm['seqalignatac_proba']`` (cells x classes, NaN rows for
    reference cells) with the class order in ``uns['seqalignatac']['classes']``, and the run's summary
    in ``uns['seqalignatac']['stage2']``.
    """
    import pandas as pd

    from seqalignatac.models.stage2 import annotate_full

    res = annotate_full(
        adata,
        embedding_key,
        method,
        labels_key=labels_key,
        config=config,
        device=device,
        seed=seed,
        threads=threads,
        progress=progress,
        **settings,
    )
    is_query = (adata.obs[keys.DOMAIN].astype(str) == keys.QUERY).to_numpy()
    q = res.query.obs  # the query cells, in adata's order, named by the user's barcodes
    for col in (
        keys.PREDICTION,
        keys.UNKNOWN_REASON_OBS,
        keys.CONFIDENCE_OBS,
        keys.ENTROPY_OBS,
        keys.IS_UNKNOWN_OBS,
        keys.BEST_LABEL_OBS,
    ):
        values = pd.Series(pd.NA, index=adata.obs_names, dtype=object)
        values[is_query] = q[col].astype(object).to_numpy()
        adata.obs[col] = pd.Categorical(values) if isinstance(q[col].dtype, pd.CategoricalDtype) else values
    proba = np.full((adata.n_obs, res.query.obsm[keys.PROBA].shape[1]), np.nan, dtype=np.float32)
    proba[is_query] = res.query.obsm[keys.PROBA]
    adata.obsm[keys.PROBA] = proba
    uns = adata.uns.setdefault(keys.UNS, {})
    uns[keys.CLASSES] = list(res.summary["classes"])
    uns["stage2"] = res.query.uns[keys.UNS]["stage2"]
    return res.annotator
