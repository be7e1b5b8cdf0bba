"""Real hg19 sequence (shared data): tokenizer identity with EsmTokenizer, and embed end to end."""

import numpy as np
import pytest
from transformers import EsmTokenizer

from seqalignatac.embed.runner import embed_fasta
from seqalignatac.embed.tiny import write_tiny
from seqalignatac.embed.tokenizer import NTTokenizer
from seqalignatac.errors import InputError
from seqalignatac.io.embedding_store import read_embeddings

pytestmark = pytest.mark.realdata


@pytest.fixture(scope="module")
def windows(shared_data):
    from pyfaidx import Fasta

    fa = Fasta(str(shared_data / "hg19_partial_genome" / "hg19_subset.fa.gz"), sequence_always_upper=True)
    rng = np.random.default_rng(0)
    chrom = fa["chr20"]
    # random 1,002 bp windows plus the telomere edge (N run then sequence) and a gap border
    starts = sorted(rng.integers(60_000, len(chrom) - 2_000, 150).tolist()) + [59_500, 59_990, 0]
    return [(f"chr20:{s}-{s + 1002}", str(chrom[s : s + 1002])) for s in starts]


def test_real_sequence_tokens_equal_esm_tokenizer(windows, tmp_path):
    d = write_tiny(tmp_path / "m", "v2")
    ref = EsmTokenizer.from_pretrained(d)
    tok = NTTokenizer.from_dir(d, 2048)
    seqs = [s for _, s in windows]
    assert any("N" in s for s in seqs) and any("N" not in s for s in seqs)
    ids, counts = tok.encode(seqs)
    for i, s in enumerate(seqs):
        assert ids[i, : counts[i]].tolist() == ref(s)["input_ids"]


def test_real_sequence_embed(windows, tmp_path):
    fa = tmp_path / "w.fa"
    fa.write_text("".join(f">{n}\n{s}\n" for n, s in windows))
    # v1 takes 1,000 tokens; windows in the chr20 centromere gap are 1,002 N = 1,003 tokens
    v1 = write_tiny(tmp_path / "m1", "v1")
    with pytest.raises(InputError, match="N and other non-ACGT letters are one token each, this peak has 1002"):
        embed_fasta(str(fa), v1, str(tmp_path / "e1.h5"), device="cpu", cache_dir=str(tmp_path / "c"), progress=False)
    d = write_tiny(tmp_path / "m", "v2")
    r = embed_fasta(
        str(fa), d, str(tmp_path / "e.h5"), device="cpu", batch_size=32, cache_dir=str(tmp_path / "c"), progress=False
    )
    ids, emb = read_embeddings(tmp_path / "e.h5")
    assert list(ids) == [n for n, _ in windows] and emb.shape == (len(windows), 32) and np.isfinite(emb).all()
    assert r.n_computed == r.n_unique
    k = embed_fasta(str(fa), "kmer", str(tmp_path / "k.h5"), progress=False)
    assert k.dim == 2080
