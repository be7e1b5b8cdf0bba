"""NT loader: tiny models in hub layout, strict loading, hub-like checkpoints, errors."""

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file, save_file

from seqalignatac.embed.hub import resolve_model
from seqalignatac.embed.nt_model import GLUIntermediate, build_nt, load_nt, n_params
from seqalignatac.embed.tiny import nt_config, write_tiny
from seqalignatac.errors import InputError


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return {a: write_tiny(root / a, arch=a, seed=3) for a in ("v1", "v2")}


def _sd(model_dir):
    return load_file(f"{model_dir}/model.safetensors")


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


@pytest.mark.parametrize("arch", ["v1", "v2"])
def test_tiny_layout_and_architecture(tiny, arch):
    d = tiny[arch]
    cfg = json.load(open(f"{d}/config.json"))
    assert cfg["vocab_size"] == (4105 if arch == "v1" else 4107)
    assert cfg["token_dropout"] is (arch == "v1")
    assert (cfg.get("add_bias_fnn") is False) is (arch == "v2")
    vocab = open(f"{d}/vocab.txt").read().split()
    assert len(vocab) == cfg["vocab_size"]
    tc = json.load(open(f"{d}/tokenizer_config.json"))
    assert tc["tokenizer_class"] == "EsmTokenizer" and tc.get("eos_token") is None
    keys = set(_sd(d))
    assert "esm.embeddings.word_embeddings.weight" in keys and any(k.startswith("lm_head.") for k in keys)
    m = load_nt(d)
    ff = m.encoder.layer[0]
    if arch == "v2":
        assert isinstance(ff.intermediate, GLUIntermediate) and ff.intermediate.dense.bias is None
        assert m.rotary_embeddings is not None
    else:
        assert ff.intermediate.dense.bias is not None and m.config.position_embedding_type == "absolute"
    assert n_params(m) < 300_000


def test_same_seed_same_model(tmp_path):
    a, b = write_tiny(tmp_path / "a", "v2", seed=5), write_tiny(tmp_path / "b", "v2", seed=5)
    sa, sb = _sd(a), _sd(b)
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    c = _sd(write_tiny(tmp_path / "c", "v2", seed=6))
    assert not torch.equal(sa["esm.embeddings.word_embeddings.weight"], c["esm.embeddings.word_embeddings.weight"])


@pytest.mark.parametrize("arch", ["v1", "v2"])
def test_hub_like_checkpoint_round_trip_bit_exact(tiny, arch, tmp_path):
    """pytorch_model.bin with esm. prefix, lm_head.*, old per-layer rotary keys, position_ids."""
    src = load_nt(tiny[arch])
    sd = {f"esm.{k}": v.clone() for k, v in src.state_dict().items() if k != "rotary_embeddings.inv_freq"}
    if arch == "v2":
        inv = src.rotary_embeddings.inv_freq.clone()
        for i in range(src.config.num_hidden_layers):
            sd[f"esm.encoder.layer.{i}.attention.self.rotary_embeddings.inv_freq"] = inv
    sd["esm.embeddings.position_ids"] = torch.arange(src.config.max_position_embeddings)[None]
    sd["lm_head.dense.weight"] = torch.zeros(32, 32)
    sd["lm_head.decoder.weight"] = torch.zeros(10, 32)
    d = tmp_path / "hub"
    d.mkdir()
    for f in ("config.json", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(f"{tiny[arch]}/{f}", d / f)
    torch.save(sd, d / "pytorch_model.bin")
    back = load_nt(d)
    a, b = src.state_dict(), back.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    x = torch.randint(6, 4100, (3, 40))
    x[:, 0] = 3
    with torch.inference_mode():
        assert torch.equal(src(x).last_hidden_state, back(x).last_hidden_state)
        bf = load_nt(d, dtype=torch.bfloat16)(x).last_hidden_state
    assert bf.dtype == torch.bfloat16 and torch.isfinite(bf.float()).all()


def test_refuses_pickled_code(tiny, tmp_path):
    d = _copy(tiny["v1"], tmp_path / "m")
    (d / "model.safetensors").unlink()
    torch.save({"x": object()}, d / "pytorch_model.bin")  # not loadable with weights_only=True
    with pytest.raises(InputError, match="refused: .*a pickle can run code; convert it to safetensors"):
        load_nt(d)


def test_missing_files(tiny, tmp_path):
    d = _copy(tiny["v2"], tmp_path / "m")
    (d / "model.safetensors").unlink()
    with pytest.raises(InputError, match="no weights"):
        load_nt(d)
    (d / "config.json").unlink()
    with pytest.raises(InputError, match="lacks config.json"):
        load_nt(d)


def test_wrong_shape_is_named(tiny, tmp_path):
    d = _copy(tiny["v2"], tmp_path / "m")
    sd = _sd(d)
    sd["esm.encoder.layer.1.output.dense.weight"] = torch.zeros(32, 65)
    save_file(sd, d / "model.safetensors")
    with pytest.raises(
        InputError, match=r"encoder\.layer\.1\.output\.dense\.weight \(32, 65\) \(config expects \(32, 64\)\)"
    ):
        load_nt(d)


def test_missing_and_unused_tensors_are_named(tiny, tmp_path):
    d = _copy(tiny["v1"], tmp_path / "m")
    sd = _sd(d)
    del sd["esm.encoder.layer.0.attention.self.key.bias"]
    sd["esm.encoder.layer.0.extra.weight"] = torch.zeros(2)
    save_file(sd, d / "model.safetensors")
    with pytest.raises(InputError) as e:
        load_nt(d)
    msg = str(e.value)
    assert "1 tensors missing: encoder.layer.0.attention.self.key.bias" in msg
    assert "not used by the model: encoder.layer.0.extra.weight" in msg


def test_v2_weights_with_v1_config_fail_clearly(tiny, tmp_path):
    d = _copy(tiny["v2"], tmp_path / "m")
    cfg = json.load(open(d / "config.json"))
    del cfg["add_bias_fnn"]  # config says GELU FFN with bias; checkpoint has SwiGLU
    (d / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="add_bias_fnn"):
        load_nt(d)


def test_not_nt_like(tiny, tmp_path):
    d = _copy(tiny["v1"], tmp_path / "m")
    cfg = json.load(open(d / "config.json"))
    (d / "config.json").write_text(json.dumps({**cfg, "model_type": "bert"}))
    with pytest.raises(InputError, match="not a Nucleotide Transformer config"):
        load_nt(d)
    (d / "config.json").write_text(json.dumps(cfg))
    save_file({"bert.embeddings.weight": torch.zeros(3, 3)}, d / "model.safetensors")
    with pytest.raises(InputError, match="not NT-like"):
        load_nt(d)
    (d / "config.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        load_nt(d)


def test_build_sizes_match_published_parameter_counts():
    # v2-50m: 55.9M parameters per the model card (A1); built on meta, no memory used
    with torch.device("meta"):
        m = build_nt(
            nt_config("v2", hidden_size=512, num_hidden_layers=12, num_attention_heads=16, intermediate_size=2048)
        )
    assert 50e6 < n_params(m) < 60e6


def test_model_spec_resolution(tiny, tmp_path):
    assert resolve_model("kmer").kind == "kmer" and resolve_model("kmer:5").k == 5
    assert resolve_model(str(tiny["v2"])).path == str(tiny["v2"])
    with pytest.raises(InputError, match="k must be"):
        resolve_model("kmer:99")
    f = tmp_path / "file.bin"
    f.write_bytes(b"x")
    with pytest.raises(InputError, match="must be a directory"):
        resolve_model(str(f))
    with pytest.raises(InputError, match="neither an existing directory"):
        resolve_model("no such model here")


def test_hub_name_offline_gives_clear_message(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(InputError) as e:
        resolve_model("InstaDeepAI/nucleotide-transformer-v2-50m-multi-species")
    msg = str(e.value)
    assert "cannot download model" in msg and "--model DIR" in msg and "\n" not in msg


def test_hub_name_fetches_only_weights_config_tokenizer(tiny, monkeypatch):
    import huggingface_hub

    seen = []

    def fake_snapshot_download(repo, revision=None, allow_patterns=None, local_files_only=False, **kw):
        seen.append((repo, revision, tuple(allow_patterns), local_files_only))
        return str(tiny["v2"])

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot_download)
    spec = resolve_model("InstaDeepAI/nucleotide-transformer-v2-50m-multi-species@abc123")
    assert spec.kind == "nt" and spec.path == str(tiny["v2"])
    repo, rev, patterns, local_only = seen[0]
    assert repo == "InstaDeepAI/nucleotide-transformer-v2-50m-multi-species" and rev == "abc123" and local_only
    assert not any(p.endswith(".py") or p in ("*", "*.*") for p in patterns)
    assert {"config.json", "vocab.txt"} <= set(patterns) and any("safetensors" in p for p in patterns)
    load_nt(spec.path)


def test_bf16_keeps_rotary_frequencies_in_fp32(tiny):
    m = load_nt(tiny["v2"], dtype=torch.bfloat16)
    assert m.rotary_embeddings.inv_freq.dtype == torch.float32
    assert m.embeddings.word_embeddings.weight.dtype == torch.bfloat16
    ref = load_nt(tiny["v2"])
    torch.testing.assert_close(m.rotary_embeddings.inv_freq, ref.rotary_embeddings.inv_freq, rtol=0, atol=0)


def test_contact_head_loaded_when_present_zero_when_absent(tiny, tmp_path):
    d = _copy(tiny["v1"], tmp_path / "m")
    sd = _sd(d)
    sd["esm.contact_head.regression.weight"] = torch.full_like(sd["esm.contact_head.regression.weight"], 0.5)
    save_file(sd, d / "model.safetensors")
    assert torch.all(load_nt(d).contact_head.regression.weight == 0.5)
    del sd["esm.contact_head.regression.weight"], sd["esm.contact_head.regression.bias"]
    save_file(sd, d / "model.safetensors")
    m = load_nt(d)
    assert not any(t.is_meta for t in m.state_dict().values())
    assert torch.all(m.contact_head.regression.weight == 0)
