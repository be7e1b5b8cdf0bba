"""Peak-embedding store: one HDF5 file with ``ids`` (peak ids) and ``embeddings`` (rows).

This is the contract between ``embed`` (writer) and stage 1 (lazy reader).  Layout:

- dataset ``ids``: UTF-8 strings, unique, one per row
- dataset ``embeddings``: float32 (or float16), shape (n, d), chunked by rows
- attrs: ``model`` (name), ``model_fingerprint``, ``pooling``, ``format_version``

The embed step may add datasets/attrs (progress, shard info); readers ignore unknown ones.
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

import h5py
import numpy as np

from .atomic import atomic_path
from .errors import InputError, require_file

FORMAT_VERSION = 1


def write_embeddings(
    path: str | os.PathLike,
    ids: Sequence[str],
    embeddings: np.ndarray,
    attrs: Mapping[str, object] | None = None,
) -> None:
    """Write a complete store atomically."""
    ids = np.asarray(ids, dtype=object)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(ids):
        raise ValueError(f"embeddings shape {embeddings.shape} does not match {len(ids)} ids")
    if len(set(ids.tolist())) != len(ids):
        raise InputError("duplicate peak ids in embeddings", path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.create_dataset("ids", data=ids.astype(str).astype(object), dtype=h5py.string_dtype("utf-8"))
            f.create_dataset(
                "embeddings", data=embeddings, chunks=(min(len(ids), 4096) or 1, embeddings.shape[1])
            )
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in (attrs or {}).items():
                f.attrs[k] = v


class EmbeddingStore:
    """Lazy reader: ids are loaded, rows only when asked for."""

    def __init__(self, path: str | os.PathLike):
        self.path = require_file(path, "embedding store")
        try:
            self._f = h5py.File(self.path, "r")
        except OSError as e:
            raise InputError(f"not an embedding store (HDF5 expected): {e}", self.path) from None
        if "ids" not in self._f or "embeddings" not in self._f:
            raise InputError("embedding store lacks the 'ids' or 'embeddings' dataset", self.path)
        self.ids = self._f["ids"].asstr()[:]
        self._index = {pid: i for i, pid in enumerate(self.ids)}
        self.attrs = dict(self._f.attrs)

    @property
    def dim(self) -> int:
        return int(self._f["embeddings"].shape[1])

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, pid: str) -> bool:
        return pid in self._index

    def missing(self, ids: Sequence[str]) -> list[str]:
        return [p for p in ids if p not in self._index]

    def take(self, ids: Sequence[str]) -> np.ndarray:
        """Rows for ``ids`` in that order, as float32; clear error naming missing ids."""
        missing = self.missing(ids)
        if missing:
            raise InputError(
                f"{len(missing)} of {len(ids)} peaks have no embedding (e.g. {', '.join(missing[:3])}); "
                "embed the peaks.bed/FASTA of this prepare run",
                self.path,
            )
        rows = np.fromiter((self._index[p] for p in ids), dtype=np.int64, count=len(ids))
        order = np.argsort(rows)
        out = np.empty((len(ids), self.dim), dtype=np.float32)
        # h5py fancy indexing needs increasing indices; read sorted then scatter back.
        out[order] = self._f["embeddings"][rows[order]]
        return out

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "EmbeddingStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_embeddings(path: str | os.PathLike, ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, float32 embeddings), all rows or the rows for ``ids`` in that order."""
    with EmbeddingStore(path) as store:
        if ids is None:
            return store.ids, store._f["embeddings"][:].astype(np.float32)
        return np.asarray(ids, dtype=object), store.take(ids)
