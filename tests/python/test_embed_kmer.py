import numpy as np
import pytest

from seqalignatac.embed.kmer import kmer_dim, kmer_embed

COMP = str.maketrans("ACGTacgt", "TGCAtgca")


def naive(seq: str, k: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    s = seq.upper()
    for i in range(len(s) - k + 1):
        w = s[i : i + k]
        if set(w) - set("ACGT"):
            continue
        c = min(w, w.translate(COMP)[::-1])
        counts[c] = counts.get(c, 0) + 1
    return counts


def test_dimensions():
    assert kmer_dim(1) == 2 and kmer_dim(2) == 10 and kmer_dim(6) == 2080


def test_matches_naive_counts_and_is_normalized():
    rng = np.random.default_rng(0)
    seqs = ["".join(rng.choice(list("ACGTNacgt"), rng.integers(0, 40))) for _ in range(60)]
    k = 3
    e = kmer_embed(seqs, k=k, chunk_bases=100)  # small chunks exercise the chunk loop
    assert e.dtype == np.float32 and e.shape == (60, kmer_dim(k))
    for s, row in zip(seqs, e):
        c = naive(s, k)
        v = np.array(sorted(c.values()), dtype=float)
        if not c:
            assert not row.any()
            continue
        v /= np.linalg.norm(v)
        np.testing.assert_allclose(np.sort(row[row > 0]), v, rtol=1e-6)


def test_reverse_complement_invariant_and_case_insensitive():
    rng = np.random.default_rng(1)
    s = "".join(rng.choice(list("ACGT"), 500))
    rc = s.translate(COMP)[::-1]
    e = kmer_embed([s, rc, s.lower()])
    np.testing.assert_allclose(e[0], e[1], atol=1e-7)
    np.testing.assert_allclose(e[0], e[2], atol=1e-7)


def test_kmers_do_not_cross_sequences_and_skip_n():
    e = kmer_embed(["AAA", "CCC", "AANAA"], k=3)
    both = kmer_embed(["AAACCC"], k=3)
    assert (e[0] > 0).sum() == 1 and (e[1] > 0).sum() == 1
    assert (both[0] > 0).sum() > 1  # joined, the boundary k-mers would appear
    assert not e[2].any()


def test_bad_k():
    with pytest.raises(ValueError):
        kmer_embed(["ACGT"], k=0)
