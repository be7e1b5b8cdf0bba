"""k-mer spectrum embedder: a fast CPU baseline that needs no model.

Each sequence becomes the normalized count vector of its canonical k-mers (a k-mer and its
reverse complement share one column), so a peak and its reverse complement embed identically.
K-mers containing anything but A/C/G/T (N, IUPAC codes) are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache

import numpy as np

# ASCII -> 2-bit code; 4 marks "not ACGT". Lower case is accepted (soft-masked genomes).
_CODE = np.full(256, 4, dtype=np.uint8)
for _i, _b in enumerate("ACGT"):
    _CODE[ord(_b)] = _i
    _CODE[ord(_b.lower())] = _i


@cache
def canonical_map(k: int) -> tuple[np.ndarray, int]:
    """Map every k-mer code (base-4, first base most significant) to its canonical column."""
    codes = np.arange(4**k, dtype=np.int64)
    rc = np.zeros_like(codes)
    x = codes.copy()
    for _ in range(k):  # reverse complement: complement of base b is 3 - b
        rc = rc * 4 + (3 - (x & 3))
        x >>= 2
    canon = np.minimum(codes, rc)
    uniq, col = np.unique(canon, return_inverse=True)
    return col.astype(np.int64), len(uniq)


def kmer_dim(k: int) -> int:
    return canonical_map(k)[1]


def kmer_embed(sequences: Sequence[str], k: int = 6, chunk_bases: int = 8_000_000) -> np.ndarray:
    """Reverse-complement-collapsed, L2-normalized k-mer spectra: float32 (n, kmer_dim(k)).

    Sequences may differ in length; a sequence with no valid k-mer gets a zero row.
    """
    if not 1 <= k <= 12:
        raise ValueError(f"k must be in 1..12, got {k}")
    col, dim = canonical_map(k)
    n = len(sequences)
    out = np.zeros((n, dim), dtype=np.float32)
    start = 0
    while start < n:
        # Process a chunk of sequences at once: concatenate, then count with one bincount.
        stop, total = start, 0
        while stop < n and (total == 0 or total + len(sequences[stop]) <= chunk_bases):
            total += len(sequences[stop])
            stop += 1
        _count_chunk(sequences[start:stop], k, col, dim, out[start:stop])
        start = stop
    norms = np.linalg.norm(out, axis=1, keepdims=True)
    np.divide(out, norms, out=out, where=norms > 0)
    return out


def _count_chunk(seqs: Sequence[str], k: int, col: np.ndarray, dim: int, out: np.ndarray) -> None:
    lens = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    joined = "".join(seqs).encode("ascii", "replace")
    codes = _CODE[np.frombuffer(joined, dtype=np.uint8)]
    L = codes.size
    if L < k:
        return
    m = L - k + 1
    bad = (codes == 4).astype(np.int32)
    # A window is valid if it has no non-ACGT base and does not cross a sequence boundary.
    cbad = np.concatenate([[0], np.cumsum(bad)])
    valid = (cbad[k:] - cbad[:m]) == 0
    ends = np.cumsum(lens)
    seq_of = np.repeat(np.arange(len(seqs)), lens)[:m]
    valid &= np.arange(m) + k <= ends[seq_of]
    c = np.where(codes == 4, 0, codes).astype(np.int64)
    kcode = np.zeros(m, dtype=np.int64)
    for j in range(k):
        kcode = kcode * 4 + c[j : j + m]
    flat = seq_of[valid] * dim + col[kcode[valid]]
    counts = np.bincount(flat, minlength=len(seqs) * dim)
    out += counts.reshape(len(seqs), dim).astype(np.float32)
