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
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from seqalignatac.errors import InputError
from seqalignatac.io.atomic import write_json

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
            raise InputError(
                f"cannot create the embedding cache ({e.strerror}); pass a writable --cache-dir", self.dir
            ) from None
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
        self.n_put = 0  # rows this process added (what an interrupted run leaves for the next)

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
        self.n_put += len(keys)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class _RunWriter:
    """Appends whole batches: rows, then keys.  A batch that fails half-way (full disk, Ctrl-C) is cut
    off again and the writer refuses further batches, so the files never hold a key whose row is torn
    or a row written twice (which would shift every later row under the wrong key)."""

    def __init__(self, folder: Path, head: dict):
        name = f"run-{uuid.uuid4().hex}"
        write_json(folder / f"{name}.json", head)
        self._paths = (folder / f"{name}.f32", folder / f"{name}.keys")
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND
        self._fds: list[int] = []
        for path in self._paths:
            try:
                self._fds.append(os.open(path, flags, 0o666))
            except OSError as e:
                self.close()
                raise OSError(e.errno, e.strerror, os.fspath(path)) from e
        self._sizes = [0, 0]
        self._failed = False

    def append(self, keys: Sequence[bytes], rows: np.ndarray) -> None:
        if self._failed:
            raise RuntimeError("an earlier batch failed to reach the embedding cache")
        data = (rows.tobytes(), b"".join(keys))  # rows reach the OS before their keys
        for i, chunk in enumerate(data):
            try:
                _write_all(self._fds[i], chunk)
            except BaseException as e:
                self._failed = True
                self._cut_back()
                if isinstance(e, OSError):
                    raise OSError(e.errno, e.strerror, os.fspath(self._paths[i])) from e
                raise
        self._sizes = [self._sizes[0] + len(data[0]), self._sizes[1] + len(data[1])]

    def _cut_back(self) -> None:
        for fd, size in zip(self._fds, self._sizes):
            try:
                os.ftruncate(fd, size)
            except OSError:  # e.g. read-only now; readers still ignore a torn tail
                pass

    def close(self) -> None:
        for fd in self._fds:
            os.close(fd)
        self._fds = []


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
