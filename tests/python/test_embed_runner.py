"""embed end to end on tiny models: equality with independent implementations, cache, shards,
resume, merge/export, and every bad input with its message."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import assert_one_line_error
from click.testing import CliRunner
from safetensors.torch import load_file
from transformers import EsmModel, EsmTokenizer

from seqalignatac.cli.main import cli
from seqalignatac.embed import runner
from seqalignatac.embed.runner import embed_fasta
from seqalignatac.embed.tiny import write_tiny
from seqalignatac.errors import InputError
from seqalignatac.io.embedding_store import EmbeddingStore, merge_embeddings, read_embeddings

RNG = np.random.default_rng(7)


def random_seqs(n, width=60, alphabet="ACGT"):
    return ["".join(RNG.choice(list(alphabet), width)) for _ in range(n)]


def write_fa(path, ids, seqs):
    path.write_text("".join(f">{i}\n{s}\n" for i, s in zip(ids, seqs)))
    return str(path)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tinyrun")
    return {a: write_tiny(root / a, arch=a, seed=11) for a in ("v1", "v2")}


@pytest.fixture
def fa(tmp_path):
    seqs = random_seqs(37, 66) + random_seqs(5, 61) + ["ACGTNNACGTACGTAGGATTACAGATTACAGATTACA"]
    ids = [f"peak{i}" for i in range(len(seqs))]
    return write_fa(tmp_path / "peaks.fa", ids, seqs), ids, seqs


# ----------------------------------------------------------------- independent references
def reference_v1(model_dir, seqs):
    """transformers' own loading (EsmModel.from_pretrained + EsmTokenizer), padded batch, mean pool."""
    tok = EsmTokenizer.from_pretrained(model_dir)
    m = EsmModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    enc = tok(seqs, padding=True, return_tensors="pt")
    mask = enc["attention_mask"]
    with torch.no_grad():
        h = m(input_ids=enc["input_ids"], attention_mask=mask).last_hidden_state
    m3 = mask[..., None].float()
    return ((h * m3).sum(1) / m3.sum(1)).numpy()


def _ln(x, sd, p):
    return F.layer_norm(x, x.shape[-1:], sd[p + ".weight"], sd[p + ".bias"], eps=1e-12)


def reference_v2(model_dir, seqs):
    """A from-scratch NT-v2 forward (rotary, SwiGLU) on the raw checkpoint tensors, one sequence at a time."""
    sd = {k[4:]: v.double() for k, v in load_file(f"{model_dir}/model.safetensors").items() if k.startswith("esm.")}
    cfg = json.load(open(f"{model_dir}/config.json"))
    H, nh, L = cfg["hidden_size"], cfg["num_attention_heads"], cfg["num_hidden_layers"]
    hd = H // nh
    tok = EsmTokenizer.from_pretrained(model_dir)
    out = []
    for s in seqs:
        ids = torch.tensor(tok(s)["input_ids"])
        T = len(ids)
        x = sd["embeddings.word_embeddings.weight"][ids]
        inv = 1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.outer(torch.arange(T, dtype=torch.float64), inv)
        cos, sin = torch.cat([ang, ang], -1).cos(), torch.cat([ang, ang], -1).sin()

        def rope(t, cos=cos, sin=sin):
            t1, t2 = t[..., : hd // 2], t[..., hd // 2 :]
            return t * cos[:, None] + torch.cat([-t2, t1], -1) * sin[:, None]

        for i in range(L):
            p = f"encoder.layer.{i}."
            h = _ln(x, sd, p + "attention.LayerNorm")
            q, k, v = (
                h @ sd[p + f"attention.self.{n}.weight"].T + sd[p + f"attention.self.{n}.bias"]
                for n in ("query", "key", "value")
            )
            q, k, v = (t.view(T, nh, hd) for t in (q, k, v))
            q = rope(q * hd**-0.5)
            k = rope(k)
            att = torch.softmax(torch.einsum("thd,shd->hts", q, k), -1)
            a = torch.einsum("hts,shd->thd", att, v).reshape(T, H)
            x = x + a @ sd[p + "attention.output.dense.weight"].T + sd[p + "attention.output.dense.bias"]
            h = _ln(x, sd, p + "LayerNorm")
            g1, g2 = (h @ sd[p + "intermediate.dense.weight"].T).chunk(2, -1)
            x = x + (F.silu(g1) * g2) @ sd[p + "output.dense.weight"].T
        x = _ln(x, sd, "encoder.emb_layer_norm_after")
        out.append(x.mean(0).numpy())  # mean over all tokens, <cls> included
    return np.array(out)


@pytest.mark.parametrize("arch", ["v1", "v2"])
def test_embeddings_equal_independent_implementation(tiny, fa, tmp_path, arch):
    path, ids, seqs = fa
    out = tmp_path / "e.h5"
    r = embed_fasta(
        path, tiny[arch], str(out), device="cpu", batch_size=8, cache_dir=str(tmp_path / "c"), progress=False
    )
    got_ids, got = read_embeddings(out)
    assert list(got_ids) == ids and got.dtype == np.float32 and got.shape == (len(ids), 32)
    ref = reference_v1(tiny[arch], seqs) if arch == "v1" else reference_v2(tiny[arch], seqs)
    np.testing.assert_allclose(got, ref, atol=2e-5, rtol=1e-4)
    st = EmbeddingStore(out)
    assert "cls" in st.attrs["pooling"] and st.attrs["model_fingerprint"] == r.fingerprint
    st.close()


def test_cache_hits_duplicates_and_reuse_across_fastas(tiny, fa, tmp_path, monkeypatch):
    path, ids, seqs = fa
    calls = []
    real = runner.NTEmbedder.pool
    monkeypatch.setattr(runner.NTEmbedder, "pool", lambda self, t, c: (calls.append(len(t)), real(self, t, c))[1])
    cache = str(tmp_path / "cache")
    r1 = embed_fasta(
        path, tiny["v2"], str(tmp_path / "a.h5"), device="cpu", batch_size=16, cache_dir=cache, progress=False
    )
    assert r1.n_cached == 0 and sum(calls) == r1.n_unique == len(set(seqs))
    calls.clear()
    r2 = embed_fasta(
        path, tiny["v2"], str(tmp_path / "b.h5"), device="cpu", batch_size=16, cache_dir=cache, progress=False
    )
    assert calls == [] and r2.n_cached == r2.n_unique
    np.testing.assert_array_equal(read_embeddings(tmp_path / "a.h5")[1], read_embeddings(tmp_path / "b.h5")[1])
    # another "pair": half old sequences, a duplicate, and new ones -> only the new ones are computed
    new = random_seqs(4, 66)
    other = write_fa(tmp_path / "q.fa", [f"q{i}" for i in range(9)], seqs[:4] + new + [new[0]])
    r3 = embed_fasta(
        other, tiny["v2"], str(tmp_path / "q.h5"), device="cpu", batch_size=16, cache_dir=cache, progress=False
    )
    assert sum(calls) == 4 and r3.n_cached == 4 and r3.n_unique == 8
    q = read_embeddings(tmp_path / "q.h5")[1]
    np.testing.assert_array_equal(q[4], q[8])
    np.testing.assert_array_equal(q[:4], read_embeddings(tmp_path / "a.h5")[1][:4])
    # another model does not see these entries
    calls.clear()
    embed_fasta(other, tiny["v1"], str(tmp_path / "q1.h5"), device="cpu", cache_dir=cache, progress=False)
    assert sum(calls) == 8


def test_padded_batches_equal_one_at_a_time(tiny, tmp_path):
    seqs = random_seqs(4, 66) + random_seqs(3, 61) + ["ACGTNNACGTACGTAGGATTACAGATTACA", "ACGTAC" * 3 + "acgt"]
    path = write_fa(tmp_path / "mixed.fa", [f"m{i}" for i in range(len(seqs))], seqs)  # padded batches
    a = embed_fasta(
        path,
        tiny["v1"],
        str(tmp_path / "a.h5"),
        device="cpu",
        batch_size=64,
        cache_dir=str(tmp_path / "c1"),
        progress=False,
    )
    b = embed_fasta(
        path,
        tiny["v1"],
        str(tmp_path / "b.h5"),
        device="cpu",
        batch_size=1,
        cache_dir=str(tmp_path / "c2"),
        progress=False,
    )
    assert a.batch_size == 64 and b.batch_size == 1
    np.testing.assert_allclose(read_embeddings(tmp_path / "a.h5")[1], read_embeddings(tmp_path / "b.h5")[1], atol=1e-5)


def test_shards_and_merge_equal_one_pass(tiny, fa, tmp_path):
    path, ids, _ = fa
    one = tmp_path / "one.h5"
    embed_fasta(path, tiny["v2"], str(one), device="cpu", cache_dir=str(tmp_path / "c0"), progress=False)
    parts = []
    for i in (3, 1, 2):  # any order in, FASTA order out
        p = tmp_path / f"s{i}.h5"
        embed_fasta(
            path, tiny["v2"], str(p), device="cpu", shard=f"{i}/3", cache_dir=str(tmp_path / f"c{i}"), progress=False
        )
        parts.append(str(p))
    res = CliRunner().invoke(cli, ["embed-merge", *parts, "--out", str(tmp_path / "m.h5")])
    assert res.exit_code == 0, res.output
    mi, me = read_embeddings(tmp_path / "m.h5")
    oi, oe = read_embeddings(one)
    assert list(mi) == list(oi) == ids
    np.testing.assert_allclose(me, oe, atol=1e-6)
    with pytest.raises(InputError, match=r"shards 2/3 are missing"):
        merge_embeddings([parts[0], parts[1]], tmp_path / "bad.h5")
    with pytest.raises(InputError, match="given twice"):
        merge_embeddings([parts[0], parts[0], parts[1]], tmp_path / "bad.h5")
    assert not (tmp_path / "bad.h5").exists()


def test_merge_refuses_parts_of_another_model(tiny, fa, tmp_path):
    path, _, _ = fa
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    embed_fasta(path, tiny["v1"], str(a), device="cpu", shard="1/2", cache_dir=str(tmp_path / "c"), progress=False)
    embed_fasta(path, tiny["v2"], str(b), device="cpu", shard="2/2", cache_dir=str(tmp_path / "c"), progress=False)
    with pytest.raises(InputError, match="written by another model"):
        merge_embeddings([a, b], tmp_path / "m.h5")


class Killed(Exception):
    pass


def test_resume_after_interruption(tiny, tmp_path, monkeypatch):
    seqs = random_seqs(40, 60)
    path = write_fa(tmp_path / "p.fa", [f"p{i}" for i in range(40)], seqs)
    cache, out = str(tmp_path / "cache"), tmp_path / "e.h5"

    def kill_after(n):
        def hook(done):
            if done == n:
                raise Killed

        return hook

    with pytest.raises(Killed):  # interrupted after batch 3 was computed: batches 1-3 are kept
        embed_fasta(
            path,
            tiny["v2"],
            str(out),
            device="cpu",
            batch_size=8,
            cache_dir=cache,
            progress=False,
            _on_batch=kill_after(3),
        )
    assert not out.exists()  # nothing that looks finished
    # a torn write (killed mid-append) must be ignored, not misread
    run = next(p for p in (tmp_path / "cache").rglob("run-*.f32"))
    with open(run, "ab") as f:
        f.write(b"\0" * 40)
    calls = []
    real = runner.NTEmbedder.pool
    monkeypatch.setattr(runner.NTEmbedder, "pool", lambda self, t, c: (calls.append(len(t)), real(self, t, c))[1])
    r = embed_fasta(path, tiny["v2"], str(out), device="cpu", batch_size=8, cache_dir=cache, progress=False)
    assert r.n_cached == 24 and sum(calls) == 16  # the three finished batches are not redone
    ref = tmp_path / "ref.h5"
    embed_fasta(
        path, tiny["v2"], str(ref), device="cpu", batch_size=8, cache_dir=str(tmp_path / "fresh"), progress=False
    )
    np.testing.assert_allclose(read_embeddings(out)[1], read_embeddings(ref)[1], atol=1e-6)


def test_cuda_oom_halves_batch_size(tiny, fa, tmp_path, monkeypatch):
    path, _, _ = fa
    real = runner.NTEmbedder.pool
    sizes = []

    def pool(self, t, c):
        sizes.append(len(t))
        if len(t) > 8:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(self, t, c)

    monkeypatch.setattr(runner.NTEmbedder, "pool", pool)
    r = embed_fasta(
        path,
        tiny["v2"],
        str(tmp_path / "e.h5"),
        device="cpu",
        batch_size=32,
        cache_dir=str(tmp_path / "c"),
        progress=False,
    )
    assert r.batch_size == 8 and sizes[:3] == [32, 16, 8]
    ref = embed_fasta(
        path,
        tiny["v2"],
        str(tmp_path / "r.h5"),
        device="cpu",
        batch_size=8,
        cache_dir=str(tmp_path / "c2"),
        progress=False,
    )
    np.testing.assert_allclose(read_embeddings(tmp_path / "e.h5")[1], read_embeddings(tmp_path / "r.h5")[1], atol=1e-6)
    assert ref.n_computed == r.n_computed


def test_kmer_model_and_export(fa, tmp_path):
    path, ids, seqs = fa
    run = CliRunner()
    res = run.invoke(cli, ["embed", "--fasta", path, "--model", "kmer:4", "--out", str(tmp_path / "k.h5")])
    assert res.exit_code == 0, res.output
    res = run.invoke(cli, ["embed-export", str(tmp_path / "k.h5"), "--out", str(tmp_path / "k.npz")])
    assert res.exit_code == 0, res.output
    z = np.load(tmp_path / "k.npz")
    assert z["ids"].dtype.kind == "U" and list(z["ids"]) == ids
    assert z["embeddings"].dtype == np.float32 and z["embeddings"].shape == (len(ids), 136)
    np.testing.assert_allclose(np.linalg.norm(z["embeddings"], axis=1), 1, atol=1e-5)


def test_nt_tiny_cli_and_embed_cli(tmp_path, fa):
    path, ids, _ = fa
    run = CliRunner()
    res = run.invoke(cli, ["nt-tiny", "--outdir", str(tmp_path / "m"), "--arch", "v1", "--seed", "2"])
    assert res.exit_code == 0, res.output
    res = run.invoke(cli, ["embed", "--fasta", path, "--model", str(tmp_path / "m"), "--out", str(tmp_path / "e.h5"),
                           "--device", "cpu", "--batch-size", "16", "--cache-dir", str(tmp_path / "c"), "--threads", "1", "--no-progress"])  # fmt: skip
    assert res.exit_code == 0, res.output
    with EmbeddingStore(tmp_path / "e.h5") as st:
        assert st.dim == 32 and list(st.ids) == ids
        assert st.take([ids[3], ids[0]]).shape == (2, 32)


# ----------------------------------------------------------------- bad input, via the CLI
def _fail(args, *expect):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 2, res.output
    line = res.output.strip()
    assert line.startswith("Error:") and "\n" not in line and "Traceback" not in res.output, res.output
    for e in expect:
        assert e in line, line
    return line


def _embed_args(fasta, model, tmp_path, *extra):
    return ["embed", "--fasta", str(fasta), "--model", str(model), "--out", str(tmp_path / "o.h5"),
            "--device", "cpu", "--cache-dir", str(tmp_path / "c"), "--no-progress", *extra]  # fmt: skip


def test_bad_fasta_inputs(tiny, tmp_path):
    m = tiny["v2"]
    (tmp_path / "empty.fa").write_text("")
    _fail(_embed_args(tmp_path / "empty.fa", m, tmp_path), "empty.fa", "no records")
    (tmp_path / "dup.fa").write_text(">a\nACGT\n>b\nACGT\n>a\nAAAA\n")
    _fail(_embed_args(tmp_path / "dup.fa", m, tmp_path), "dup.fa", "duplicate peak id 'a'", "line 5")
    (tmp_path / "noh.fa").write_text("ACGT\n")
    _fail(_embed_args(tmp_path / "noh.fa", m, tmp_path), "before the first '>'")
    (tmp_path / "sym.fa").write_text(">a\nAC-GT\n")
    _fail(_embed_args(tmp_path / "sym.fa", m, tmp_path), "peak a", "'-'")
    (tmp_path / "es.fa").write_text(">a\n>b\nACGT\n")
    _fail(_embed_args(tmp_path / "es.fa", m, tmp_path), "'a' has an empty sequence")
    _fail(_embed_args(tmp_path / "nope.fa", m, tmp_path), "nope.fa", "does not exist")
    assert not (tmp_path / "o.h5").exists()


def test_too_long_for_the_model(tiny, tmp_path):
    seqs = ["ACGT" * 10, "A" * 6000]  # v1 takes 1000 tokens = 5994 bp; 6000 bp = 1001 tokens
    fa = write_fa(tmp_path / "long.fa", ["ok", "big"], seqs)
    _fail(_embed_args(fa, tiny["v1"], tmp_path), "big (6000 bp = 1001 tokens)", "at most 1000 tokens", "5994 bp")


def test_bad_model_and_options(tiny, fa, tmp_path):
    path, _, _ = fa
    (tmp_path / "emptydir").mkdir()
    _fail(_embed_args(path, tmp_path / "emptydir", tmp_path), "lacks config.json")
    _fail(_embed_args(path, tiny["v2"], tmp_path, "--shard", "0/3"), "numbered from 1")
    _fail(_embed_args(path, tiny["v2"], tmp_path, "--shard", "two"), "expected I/N")
    # a range error is a click usage error: the last line names the option
    assert_one_line_error(
        CliRunner().invoke(cli, _embed_args(path, tiny["v2"], tmp_path, "--batch-size", "0")), "'--batch-size'", "x>=1"
    )
    _fail(["embed-export", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "x.npz")], "does not exist")
    _fail(["embed-export", path, "--out", str(tmp_path / "x.txt")], ".npz")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_cuda_without_gpu(tiny, fa, tmp_path):
    path, _, _ = fa
    args = _embed_args(path, tiny["v2"], tmp_path)
    args[args.index("--device") + 1] = "cuda"
    _fail(args, "--device cuda but no CUDA GPU")


def test_cache_written_by_another_model(tiny, fa, tmp_path):
    path, _, _ = fa
    cache = tmp_path / "cache"
    embed_fasta(path, tiny["v1"], str(tmp_path / "a.h5"), device="cpu", cache_dir=str(cache), progress=False)
    embed_fasta(path, tiny["v2"], str(tmp_path / "b.h5"), device="cpu", cache_dir=str(cache), progress=False)
    dirs = {json.loads((p / "model.json").read_text())["model"][-2:]: p for p in cache.iterdir() if p.is_dir()}
    # a run file of the v1 model copied into the v2 model's folder is refused, not mixed in
    run = next(dirs["v1"].glob("run-*.keys"))
    for suffix in (".keys", ".f32", ".json"):
        os.link(run.with_suffix(suffix), dirs["v2"] / ("run-stray" + suffix))
    _fail(
        _embed_args(path, tiny["v2"], tmp_path, "--cache-dir", str(cache)),
        "cache was written by another model",
        "run-stray.json",
    )


def test_store_reads_lazily_and_names_missing(tmp_path):
    from seqalignatac.io.embedding_store import write_embeddings

    write_embeddings(tmp_path / "s.h5", ["a", "b", "c"], np.arange(6, dtype=np.float32).reshape(3, 2), {"model": "x"})
    with EmbeddingStore(tmp_path / "s.h5") as st:
        np.testing.assert_array_equal(st.take(["c", "a"]), [[4, 5], [0, 1]])
        with pytest.raises(InputError, match="e.g. zz"):
            st.take(["a", "zz"])
    write_embeddings(tmp_path / "empty.h5", [], np.zeros((0, 4), dtype=np.float32))
    assert EmbeddingStore(tmp_path / "empty.h5").dim == 4
