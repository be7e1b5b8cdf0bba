"""Writing HDF5 files (embedding stores, .h5ad) so that a full disk is an error, not a crash.

HDF5 does not survive a write that fails: the half-closed file is flushed again when Python
exits, and the process dies with a segmentation fault (``embed`` and ``prepare`` did, exit 139).
So HDF5 never meets a full disk here:

- an embedding store (uncompressed rows: its size is known) reserves its space before HDF5
  writes (:func:`write_hdf5`), which fails cleanly in Python when the space is not free;
- an .h5ad (compressed: its size is not known) is built in memory, then written out with plain
  file writes (:func:`write_h5ad`); the file is smaller than the AnnData already in memory.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import h5py

from seqalignatac.errors import WRITE_FAULTS

H5AD_ENCODING = {"encoding-type": "anndata", "encoding-version": "0.1.0"}
HEADROOM = 1 << 18  # HDF5 headers, chunk B-trees and the ids heap on top of the rows themselves


def write_hdf5(path: str | os.PathLike, fill: Callable[[h5py.File], None], reserve: int = 0) -> None:
    """Create the HDF5 file ``path`` and ``fill`` it; a full disk raises a plain OSError naming ``path``.

    ``reserve``: an upper bound of the file size, allocated before HDF5 writes (too little room is
    ENOSPC raised here); the file is trimmed to its real size on close.
    """
    sink = _GuardedFile(path, reserve)
    try:
        with h5py.File(sink, "w") as f:
            fill(f)
    finally:
        sink.close()
    if sink.error is not None:
        raise OSError(sink.error.errno, sink.error.strerror, os.fspath(path)) from sink.error


class _GuardedFile:
    """A binary file for h5py's file-object driver: space reserved up front, write errors kept
    (a safety net should the reserved bound ever be exceeded).

    The reserved bytes are not part of the file HDF5 sees: its end is the end of what was
    written (HDF5 checks a non-empty new file for a signature), and the file is cut there on close.
    """

    def __init__(self, path: str | os.PathLike, reserve: int = 0):
        self._f = open(path, "w+b")
        self._end = 0  # the logical end of file: what HDF5 wrote, not the reserved space
        self.error: OSError | None = None
        if reserve > 0:
            try:
                os.posix_fallocate(self._f.fileno(), 0, reserve)
            except OSError as e:
                if e.errno not in WRITE_FAULTS:  # the file system cannot preallocate: write as usual
                    return
                self._f.close()
                raise OSError(e.errno, e.strerror, os.fspath(path)) from None

    def write(self, data) -> int:
        n = memoryview(data).nbytes
        end = self._f.tell() + n
        if self.error is None:
            try:
                self._f.write(data)
            except OSError as e:
                self.error = e
        self._end = max(self._end, end)
        return n  # HDF5 must believe the write went through; the caller raises ``error``

    def readinto(self, buf) -> int:
        view = memoryview(buf).cast("B")
        want = max(0, min(len(view), self._end - self._f.tell()))
        n = self._f.readinto(view[:want]) or 0
        view[n:] = bytes(len(view) - n)  # past the end reads as zeros, as HDF5's own driver does
        return len(view)

    def read(self, n: int = -1) -> bytes:
        buf = bytearray(max(0, self._end - self._f.tell()) if n < 0 else n)
        self.readinto(buf)
        return bytes(buf)

    def seek(self, pos: int, whence: int = 0) -> int:
        if whence == os.SEEK_END:
            return self._f.seek(self._end + pos)
        return self._f.seek(pos, whence)

    def tell(self) -> int:
        return self._f.tell()

    def truncate(self, size: int | None = None) -> int:
        size = self._f.tell() if size is None else size
        self._end = size
        self._guard(lambda: self._f.truncate(size))
        return size

    def flush(self) -> None:
        self._guard(self._f.flush)

    def close(self) -> None:
        if not self._f.closed:
            self._guard(lambda: self._f.truncate(self._end))  # give back what was reserved and not used
        self._guard(self._f.close)
        if not self._f.closed:  # close failed while flushing: drop the buffer, free the descriptor
            try:
                os.close(self._f.fileno())
            except OSError:
                pass

    def _guard(self, fn) -> None:
        try:
            fn()
        except OSError as e:
            self.error = self.error or e


def write_h5ad(adata, path: str | os.PathLike, compression: str | None = "gzip") -> None:
    """``adata.write_h5ad(path)``: the same layout, written by anndata's own element writers, but
    HDF5 writes to memory and a full disk is a plain OSError from Python's file write."""
    from anndata.io import write_elem

    adata.strings_to_categoricals()  # what AnnData.write_h5ad does first
    if adata.raw is not None:
        adata.strings_to_categoricals(adata.raw.var)
    kw = {"compression": compression} if compression else {}

    def fill(f: h5py.File) -> None:
        f.attrs.update(H5AD_ENCODING)
        if adata.X is not None:
            write_elem(f, "X", adata.X, dataset_kwargs=kw)
        if adata.raw is not None:
            write_elem(f, "raw", adata.raw, dataset_kwargs=kw)
        write_elem(f, "obs", adata.obs, dataset_kwargs=kw)
        write_elem(f, "var", adata.var, dataset_kwargs=kw)
        for key in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            write_elem(f, key, dict(getattr(adata, key)), dataset_kwargs=kw)

    image = io.BytesIO()
    with h5py.File(image, "w") as f:
        fill(f)
    with open(path, "wb") as fh:
        fh.write(image.getbuffer())
