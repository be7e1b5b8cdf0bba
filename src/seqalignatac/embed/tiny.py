"""Tiny randomly initialized NT v1/v2 with the real vocabulary, written in the hub layout.

Used by tests and the demo: same architecture code paths as the real checkpoints (v1 learned
positions + token dropout; v2 rotary + SwiGLU), a few hundred kB, milliseconds per batch on CPU.
"""

from __future__ import annotations

import json
import os
from typing import Any

import torch

from seqalignatac.embed.nt_model import build_nt
from seqalignatac.embed.tokenizer import nt_vocab
from seqalignatac.io.atomic import atomic_path

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)


def nt_config(arch: str, **sizes: Any) -> dict[str, Any]:
    """A hub-like config.json dict for NT ``arch`` (v1 or v2) with the given sizes."""
    if arch not in ("v1", "v2"):
        raise ValueError(f"arch must be v1 or v2, got {arch!r}")
    cfg: dict[str, Any] = {
        "architectures": ["EsmForMaskedLM"],
        "model_type": "esm",
        "vocab_size": 4105 if arch == "v1" else 4107,
        **TINY,
        **sizes,
        "max_position_embeddings": 1002 if arch == "v1" else 2050,
        "position_embedding_type": "absolute" if arch == "v1" else "rotary",
        "pad_token_id": 1,
        "mask_token_id": 2,
        "emb_layer_norm_before": False,
        "token_dropout": arch == "v1",
        "layer_norm_eps": 1e-12,
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "hidden_act": "gelu",
        "tie_word_embeddings": False,
    }
    if arch == "v2":
        cfg["add_bias_fnn"] = False
        # As on the hub; we never import it (no trust_remote_code), it only marks the layout.
        cfg["auto_map"] = {"AutoConfig": "esm_config.EsmConfig", "AutoModelForMaskedLM": "modeling_esm.EsmForMaskedLM"}
    return cfg


def write_tokenizer(outdir: str | os.PathLike, arch: str) -> None:
    from transformers import EsmTokenizer

    vocab = os.path.join(outdir, "vocab.txt")
    with open(vocab, "w", encoding="utf-8") as f:
        f.write("\n".join(nt_vocab(arch)) + "\n")
    tok = EsmTokenizer(vocab, eos_token=None, model_max_length=1000 if arch == "v1" else 2048)
    tok.save_pretrained(outdir)


def write_tiny(outdir: str | os.PathLike, arch: str = "v2", seed: int = 0, **sizes: Any) -> str:
    """Write config.json, model.safetensors (``esm.`` + ``lm_head.`` keys) and tokenizer files."""
    from safetensors.torch import save

    cfg = nt_config(arch, **sizes)
    torch.manual_seed(seed)
    model = build_nt(cfg)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                # random LayerNorm affine so tests notice a LayerNorm applied twice or skipped
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
    sd = {f"esm.{k}": v.contiguous() for k, v in model.state_dict().items() if k != "rotary_embeddings.inv_freq"}
    H, V = cfg["hidden_size"], cfg["vocab_size"]
    sd.update({
        "lm_head.dense.weight": torch.randn(H, H, generator=g) * 0.02,
        "lm_head.dense.bias": torch.zeros(H),
        "lm_head.layer_norm.weight": torch.ones(H),
        "lm_head.layer_norm.bias": torch.zeros(H),
        "lm_head.decoder.weight": torch.randn(V, H, generator=g) * 0.02,
        "lm_head.bias": torch.zeros(V),
    })  # fmt: skip
    with atomic_path(outdir, is_dir=True) as tmp:
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2)
        with open(os.path.join(tmp, "model.safetensors"), "wb") as fh:  # bytes first: a full disk is an OSError
            fh.write(save(sd, metadata={"format": "pt"}))
        write_tokenizer(tmp, arch)
    return os.fspath(outdir)
