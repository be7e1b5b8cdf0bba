"""Peak-embedding store: one HDF5 file with ``ids`` (peak ids) and ``embeddings`` (rows).

This is the contract between ``embed`` (writer) and stage 1 (lazy reader).  Layout:

- dataset ``ids``: UTF-8 strings, unique, one per row
- dataset ``embeddings``: float32 (or float16), shape (n, d), chunked by rows
- attrs: ``model`` (name), ``model_fingerprint``, ``pooling``, ``format_version``

The embed step may add datasets/attrs (progress, shard info); readers ignore unknown ones.
``embed --shard I/N`` writes attrs ``shard`` ("I/N"), ``n_total`` (records in the FASTA) and
``source_ids_sha256`` (hash of all FASTA ids in order); :func:`merge_embeddings` uses them to
check that the parts are the complete set of shards of one FASTA, embedded by one model.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence

import h5py
import numpy as np

from seqalignatac.errors import InputError, require_file
from seqalignatac.io.atomic import atomic_path
from seqalignatac.io.hdf5 import HEADROOM, write_hdf5

FORMAT_VERSION = 1


def write_embeddings(
    path: str | os.PathLike,
    ids: Sequence[str],
    embeddings: np.ndarray,
    attrs: Mapping[str, object] | None = None,
) -> None:
    """Write a complete store atomically."""
    id_array = np.asarray(ids, dtype=object)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(id_array):
        raise ValueError(f"embeddings shape {embeddings.shape} does not match {len(id_array)} ids")
    if len(set(id_array.tolist())) != len(id_array):
        raise InputError("duplicate peak ids in embeddings", path)

    def fill(f: h5py.File) -> None:
        f.create_dataset("ids", data=id_array.astype(str).astype(object), dtype=h5py.string_dtype("utf-8"))
        f.create_dataset(
            "embeddings",
            data=embeddings,
            chunks=(min(len(id_array), 4096), embeddings.shape[1]) if len(id_array) else None,
        )
        f.attrs["format_version"] = FORMAT_VERSION
        for k, v in (attrs or {}).items():
            f.attrs[k] = v

    with atomic_path(path) as tmp:
        write_hdf5(
            tmp, fill, reserve=store_size_bound(id_array, len(id_array), embeddings.shape[1], embeddings.dtype.itemsize)
        )


def store_size_bound(ids: Iterable[str], n_rows: int, dim: int, itemsize: int) -> int:
    """Upper bound of a store's file size: the rows, each id with HDF5's heap overhead, and headers."""
    return n_rows * dim * itemsize + sum(len(str(i).encode()) + 64 for i in ids) + HEADROOM


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

    def __enter__(self) -> EmbeddingStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_embeddings(path: str | os.PathLike, ids: Sequence[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (ids, float32 embeddings), all rows or the rows for ``ids`` in that order."""
    with EmbeddingStore(path) as store:
        if ids is None:
            return store.ids, store._f["embeddings"][:].astype(np.float32)
        return np.asarray(ids, dtype=object), store.take(ids)


def ids_digest(ids: Sequence[str]) -> str:
    """Order-sensitive SHA-256 of peak ids (identifies the FASTA a shard came from)."""
    h = hashlib.sha256()
    for pid in ids:
        h.update(pid.encode("utf-8") + b"\n")
    return h.hexdigest()


def _parse_shard(value: object, path: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in str(value).split("/"))
    except ValueError:
        raise InputError(f"bad shard attribute {value!r}", path) from None
    return i, n


def merge_embeddings(parts: Sequence[str | os.PathLike], out: str | os.PathLike) -> dict:
    """Concatenate stores into one, streaming; shards are put back in FASTA order.

    All parts must come from the same model (fingerprint) and dimension; shards of one FASTA
    must be complete (1..N, each once).  Returns a small summary.
    """
    if not parts:
        raise InputError("embed-merge needs at least one part")
    stores = [EmbeddingStore(p) for p in parts]
    try:
        first = stores[0]
        fp = first.attrs.get("model_fingerprint")
        for st in stores[1:]:
            if st.attrs.get("model_fingerprint") != fp:
                raise InputError(
                    f"written by another model ({st.attrs.get('model')!r}) than {first.path} "
                    f"({first.attrs.get('model')!r}); embed all parts with the same --model and --dtype",
                    st.path,
                )
            if st.dim != first.dim:
                raise InputError(f"embedding dimension {st.dim} differs from {first.path} ({first.dim})", st.path)
        sharded = [st for st in stores if "shard" in st.attrs]
        attrs = {k: v for k, v in first.attrs.items() if k not in ("shard", "format_version")}
        if sharded:
            if len(sharded) != len(stores):
                raise InputError(
                    "mixes shard outputs with unsharded stores; merge the shards of one run", sharded[0].path
                )
            keyed: dict[int, EmbeddingStore] = {}
            for st in stores:
                i, n = _parse_shard(st.attrs["shard"], st.path)
                src = st.attrs.get("source_ids_sha256")
                if (
                    src != first.attrs.get("source_ids_sha256")
                    or n != _parse_shard(first.attrs["shard"], first.path)[1]
                ):
                    raise InputError(
                        f"shard {i}/{n} comes from another FASTA or shard count than {first.path}", st.path
                    )
                if i in keyed:
                    raise InputError(f"shard {i}/{n} given twice (also {keyed[i].path})", st.path)
                keyed[i] = st
            missing = [i for i in range(1, n + 1) if i not in keyed]
            if missing:
                raise InputError(f"shards {', '.join(f'{i}/{n}' for i in missing)} are missing; "
                                 "pass every shard of the run", first.path)  # fmt: skip
            stores = [keyed[i] for i in range(1, n + 1)]
        ids = np.concatenate([st.ids for st in stores]) if stores else np.array([], dtype=object)
        if len(set(ids.tolist())) != len(ids):
            seen: set[str] = set()
            for dup in ids.tolist():  # the first id seen twice: there is one, as the lengths differ
                if dup in seen:
                    raise InputError(f"peak id {dup!r} appears in more than one part; merge disjoint parts", out)
                seen.add(dup)
        dtype = first._f["embeddings"].dtype

        def fill(f: h5py.File) -> None:
            f.create_dataset("ids", data=ids.astype(str).astype(object), dtype=h5py.string_dtype("utf-8"))
            d = f.create_dataset("embeddings", shape=(len(ids), first.dim), dtype=dtype,
                                 chunks=(min(len(ids), 4096), first.dim) if len(ids) else None)  # fmt: skip
            row = 0
            for st in stores:
                src = st._f["embeddings"]
                for a in range(0, len(st), 65536):
                    block = src[a : a + 65536]
                    d[row : row + len(block)] = block
                    row += len(block)
            f.attrs["format_version"] = FORMAT_VERSION
            for k, v in attrs.items():
                f.attrs[k] = v
            f.attrs["merged_from"] = len(stores)

        with atomic_path(out) as tmp:
            write_hdf5(tmp, fill, reserve=store_size_bound(ids, len(ids), first.dim, dtype.itemsize))
        return {"parts": len(stores), "n": int(len(ids)), "dim": first.dim}
    finally:
        for st in stores:
            st.close()


def export_npz(path: str | os.PathLike, out: str | os.PathLike) -> dict:
    """Write ``ids`` (unicode strings) and ``embeddings`` (float32) to an .npz for other tools."""
    ids, emb = read_embeddings(path)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as fh:  # a file object keeps numpy from appending another .npz
            np.savez(fh, ids=np.asarray(ids, dtype=str), embeddings=emb.astype(np.float32, copy=False))
    return {"n": int(len(ids)), "dim": int(emb.shape[1])}
