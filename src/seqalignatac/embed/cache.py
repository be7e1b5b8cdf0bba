"""Content-addressed embedding cache: (model fingerprint, sequence hash) -> pooled vector.

Layout under the cache root (default ``$SEQALIGNATAC_CACHE`` or ``~/.cache/seqalignatac/embeddings``)::

    <fingerprint[:32]>/model.json             fingerprint, model name, dimension
    <fingerprint[:32]>/run-<uuid>.json        the same, per run (so stray files are caught)
    <fingerprint[:32]>/run-<uuid>.f32         float32 rows, appended one batch at a time
    <fingerprint[:32]>/run-<uuid>.keys        16-byte BLAKE2b sequence hashes, one per row

Each run appends to its own files (parallel shards never share a file).  A batch writes its
rows first, then its keys, so after a kill every key on disk has a complete row: rerunning the
same command finds all finished batches in the cache (this is the resume mechanism) and a torn
tail is ignored.  Other FASTA files, pairs and runs with the same model reuse the entries.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from ..atomic import write_json
from ..errors import InputError

KEY_BYTES = 16


def default_cache_root() -> Path:
    env = os.environ.get("SEQALIGNATAC_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "seqalignatac" / "embeddings"


def sequence_keys(seqs: Iterable[str]) -> list[bytes]:
    """BLAKE2b-128 of each (upper-case) sequence: the content address."""
    return [hashlib.blake2b(s.encode("ascii", "replace"), digest_size=KEY_BYTES).digest() for s in seqs]


class EmbeddingCache:
    def __init__(self, root: str | os.PathLike, fingerprint: str, dim: int, model: str):
        self.fingerprint, self.dim, self.model = fingerprint, int(dim), model
        self.dir = Path(root) / fingerprint[:32]
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise InputError(f"cannot create the embedding cache ({e.strerror}); pass a writable --cache-dir", self.dir) from None
        head = {"fingerprint": fingerprint, "dim": self.dim, "model": model}
        meta = self.dir / "model.json"
        if meta.is_file():
            self._check(meta)
        else:
            write_json(meta, head)
        self._files: list[np.memmap] = []
        self._index: dict[bytes, tuple[int, int]] = {}
        for keys_path in sorted(self.dir.glob("run-*.keys")):
            self._load_run(keys_path)
        self._writer: _RunWriter | None = None

    def _check(self, meta: Path) -> None:
        try:
            got = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError):
            raise InputError("unreadable cache header; delete this cache folder", meta) from None
        if got.get("fingerprint") != self.fingerprint or int(got.get("dim", -1)) != self.dim:
            raise InputError(
                f"cache was written by another model ({got.get('model')!r}, fingerprint "
                f"{str(got.get('fingerprint'))[:12]}…, dim {got.get('dim')}), not {self.model!r} "
                f"({self.fingerprint[:12]}…, dim {self.dim}); delete it or use another --cache-dir",
                meta,
            )

    def _load_run(self, keys_path: Path) -> None:
        self._check(keys_path.with_suffix(".json"))
        rows_path = keys_path.with_suffix(".f32")
        n_keys = keys_path.stat().st_size // KEY_BYTES
        n_rows = rows_path.stat().st_size // (4 * self.dim) if rows_path.exists() else 0
        n = min(n_keys, n_rows)  # a torn tail (killed mid-write) is ignored
        if n == 0:
            return
        keys = np.fromfile(keys_path, dtype=np.uint8, count=n * KEY_BYTES).reshape(n, KEY_BYTES)
        f = len(self._files)
        self._files.append(np.memmap(rows_path, dtype=np.float32, mode="r", shape=(n, self.dim)))
        for row, k in enumerate(keys):
            self._index[k.tobytes()] = (f, row)

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key: bytes) -> bool:
        return key in self._index

    def get(self, keys: Sequence[bytes]) -> np.ndarray:
        """Rows for ``keys`` (all must be present), float32 (n, dim)."""
        out = np.empty((len(keys), self.dim), dtype=np.float32)
        loc = np.array([self._index[k] for k in keys], dtype=np.int64).reshape(-1, 2)
        for f in np.unique(loc[:, 0]):
            sel = np.flatnonzero(loc[:, 0] == f)
            rows = loc[sel, 1]
            order = np.argsort(rows)
            out[sel[order]] = self._files[f][rows[order]]
        return out

    def put(self, keys: Sequence[bytes], rows: np.ndarray) -> None:
        """Append one batch durably enough to survive a kill of this process.

        The caller keeps the rows it computed; ``get`` serves entries found when the cache opened.
        """
        if self._writer is None:
            self._writer = _RunWriter(self.dir, {"fingerprint": self.fingerprint, "dim": self.dim, "model": self.model})
        self._writer.append(keys, np.ascontiguousarray(rows, dtype=np.float32))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RunWriter:
    def __init__(self, folder: Path, head: dict):
        name = f"run-{uuid.uuid4().hex}"
        write_json(folder / f"{name}.json", head)
        self._rows = open(folder / f"{name}.f32", "ab")
        self._keys = open(folder / f"{name}.keys", "ab")

    def append(self, keys: Sequence[bytes], rows: np.ndarray) -> None:
        self._rows.write(rows.tobytes())
        self._rows.flush()  # rows reach the OS before their keys
        self._keys.write(b"".join(keys))
        self._keys.flush()

    def close(self) -> None:
        self._rows.close()
        self._keys.close()
