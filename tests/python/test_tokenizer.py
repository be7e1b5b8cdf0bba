"""The vectorized NT tokenizer gives exactly EsmTokenizer's ids (hub tokenizer of NT v1/v2)."""

import numpy as np
import pytest
from transformers import EsmTokenizer

from seqalignatac.embed.tokenizer import NTTokenizer, nt_vocab, token_count
from seqalignatac.errors import InputError

# InstaDeep's documented examples (docs/nucleotide-transformer-and-peers.md A2)
GOLDEN = {
    "ACGTGTACGTGCACGGACGACTAGTCAGCA": ["<cls>", "ACGTGT", "ACGTGC", "ACGGAC", "GACTAG", "TCAGCA"],
    "ACGTGTACNTGCACGGANCGACTAGTCTGA": ["<cls>", "ACGTGT", "A", "C", "N", "TGCACG", "G", "A", "N", "CGACTA", "GTCTGA"],
    "ACGTGTACGTG": ["<cls>", "ACGTGT", "A", "C", "G", "T", "G"],
    "acgtgtACGTGC": ["<cls>", "<unk>", "ACGTGC"],
}


@pytest.fixture(scope="module", params=["v1", "v2"])
def pair(request, tmp_path_factory):
    arch = request.param
    d = tmp_path_factory.mktemp(f"tok{arch}")
    (d / "vocab.txt").write_text("\n".join(nt_vocab(arch)) + "\n")
    ref = EsmTokenizer(str(d / "vocab.txt"), eos_token=None, model_max_length=1000 if arch == "v1" else 2048)
    return arch, ref, NTTokenizer.from_vocab(nt_vocab(arch), 2048)


def test_vocab_sizes():
    assert len(nt_vocab("v1")) == 4105 and len(nt_vocab("v2")) == 4107
    assert nt_vocab("v2")[:6] == ["<unk>", "<pad>", "<mask>", "<cls>", "<eos>", "<bos>"]
    assert nt_vocab("v2")[6] == "AAAAAA" and nt_vocab("v2")[-5:] == list("ATCGN")


def test_golden_examples(pair):
    arch, ref, tok = pair
    vocab = nt_vocab(arch)
    ids, counts = tok.encode(list(GOLDEN))
    for i, (seq, want) in enumerate(GOLDEN.items()):
        got = [vocab[t] for t in ids[i, : counts[i]]]
        assert got == want, seq
        assert ref.convert_ids_to_tokens(ref(seq)["input_ids"]) == want  # the doc's claim holds for the reference too


def _compare(ref, tok, seqs):
    ids, counts = tok.encode(seqs)
    assert ids.dtype == np.int32 and ids.shape == (len(seqs), counts.max())
    for i, s in enumerate(seqs):
        assert ids[i, : counts[i]].tolist() == ref(s)["input_ids"], s
        assert (ids[i, counts[i] :] == tok.pad_id).all()


def test_random_and_edge_cases_match_esm_tokenizer(pair):
    _, ref, tok = pair
    rng = np.random.default_rng(42)
    alphabet = list("ACGTNacgtnRYKMSW")
    p = np.array([0.2, 0.2, 0.2, 0.2, 0.06, 0.02, 0.02, 0.02, 0.02, 0.02] + [0.04 / 6] * 6)
    seqs = ["".join(rng.choice(alphabet, rng.integers(1, 60), p=p / p.sum())) for _ in range(1500)]
    seqs += [
        "N" * 13, "A", "ACGTA", "ACGTAC", "ACGTACG", "ACGTAC" * 7 + "NN", "NNACGTACGTAC",  # N runs, L % 6 != 0
        "acgtac", "ACGTACacgtacACGTAC", "RYRYRY", "ACGTRACGTACGTN", "GATTACA" * 5, "T" * 1001,
    ]  # fmt: skip
    _compare(ref, tok, seqs)


def test_fixed_width_fast_path_matches(pair):
    _, ref, tok = pair
    rng = np.random.default_rng(1)
    for width in (1002, 1000, 6, 7):
        seqs = ["".join(rng.choice(list("ACGT"), width)) for _ in range(12)]
        ids, counts = tok.encode(seqs)
        assert (counts == token_count(width)).all()
        _compare(ref, tok, seqs[:4])
        # the general path gives the same matrix
        with_n = tok.encode(seqs + ["N" * width])[0][:-1]
        np.testing.assert_array_equal(with_n[:, : ids.shape[1]], ids)
        assert (with_n[:, ids.shape[1] :] == tok.pad_id).all()


def test_equal_width_batches_with_non_acgt_fall_back_correctly(pair):
    _, ref, tok = pair
    for batch in (
        ["ACGTACGT", "acgtacgt"],
        ["ACGTACGT", "ACGTNCGT"],
        ["ACGTACGTR", "ACGTACGTA"],
        ["ACGTACGTAA", "ACGTACGTAN"],
    ):
        _compare(ref, tok, batch)


def test_mixed_clean_and_n_rows_and_chunking(pair):
    _, ref, tok = pair
    rng = np.random.default_rng(3)
    seqs = ["".join(rng.choice(list("ACGT"), 120)) for _ in range(30)]
    seqs[4] = seqs[4][:50] + "NNN" + seqs[4][53:]
    seqs[17] = seqs[17][:119] + "r"
    _compare(ref, tok, seqs)
    whole = tok.encode(seqs)
    for chunk in (1, 7, 100):
        many = tok.encode_many(seqs, chunk=chunk)
        np.testing.assert_array_equal(many[0], whole[0])
        np.testing.assert_array_equal(many[1], whole[1])


def test_token_count():
    assert token_count(251) == 47 and token_count(500) == 86 and token_count(1344) == 225
    assert token_count(1002) == 168


def test_empty_batch():
    tok = NTTokenizer.from_vocab(nt_vocab("v2"), 2048)
    ids, counts = tok.encode([])
    assert ids.shape[0] == 0 and counts.size == 0


def test_not_an_nt_vocabulary(tmp_path):
    with pytest.raises(InputError, match="not a Nucleotide Transformer vocabulary"):
        NTTokenizer.from_vocab(["<cls>", "<pad>", "<unk>", "A", "C", "G", "T"], 100, source="x/vocab.txt")
    with pytest.raises(InputError, match="lacks vocab.txt"):
        NTTokenizer.from_dir(tmp_path, 100)
