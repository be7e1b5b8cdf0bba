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

from .. import keys
from ..errors import InputError

__all__ = ["embed_peaks", "cell_embedding", "annotate"]

CELL_EMBEDDING_METHODS = ("lsi", "nt")


def embed_peaks(adata, model: str = "kmer", *, sequence_key: str = keys.SEQUENCE,
                key_added: str = keys.PEAK_EMBEDDING, device: str = "auto", batch_size: int | None = None,
                cache_dir: str | os.PathLike | None = None, threads: int | None = None,
                progress: bool | None = None) -> None:
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
    from ..embed.runner import embed_fasta
    from ..embedding_store import EmbeddingStore

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
        res = embed_fasta(str(fasta), model, str(store), device=device, batch_size=batch_size,
                          cache_dir=None if cache_dir is None else str(cache_dir), threads=threads,
                          progress=progress)
        with EmbeddingStore(store) as st:
            emb = st.take(ids[has_seq])
            pooling = st.attrs.get("pooling")
    out = np.full((adata.n_vars, emb.shape[1]), np.nan, dtype=np.float32)
    out[has_seq] = emb
    adata.varm[key_added] = out
    adata.uns.setdefault(keys.UNS, {})["embed"] = {"model": res.model, "model_fingerprint": res.fingerprint,
                                                   "pooling": str(pooling)}


def cell_embedding(adata, method: str = "lsi", *, peak_embedding_key: str = keys.PEAK_EMBEDDING,
                   device: str = "auto", threads: int | None = None, progress: bool | None = None,
                   **settings: Any) -> None:
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
    from .. import stage1

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
        cells, _ = stage1.train(adata, (peak_ids[present], emb[present]), device=device, threads=threads,
                                progress=progress, missing_embeddings="drop" if not present.all() else "error",
                                **settings)
    if not cells.obs_names.equals(adata.obs_names):
        raise AssertionError("stage 1 returned cells in another order")  # a bug, not a user error
    adata.obsm[keys.EMBEDDING] = cells.obsm[keys.EMBEDDING]
    adata.obs[keys.HAS_SIGNAL] = cells.obs[keys.HAS_SIGNAL].to_numpy()
    adata.uns.setdefault(keys.UNS, {})["stage1"] = cells.uns[keys.UNS]["stage1"]


def annotate(adata, *args: Any, **kwargs: Any):
    raise NotImplementedError  # replaced when the stage-2 model object lands
