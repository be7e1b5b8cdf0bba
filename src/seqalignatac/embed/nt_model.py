"""Nucleotide Transformer v1/v2 on transformers' native Esm classes (never remote code).

- v1 (ESM-1b style, learned positions, token dropout) is the native ``EsmModel``.
- v2 (rotary, bias-free SwiGLU feed-forward) is ``EsmModel`` with our own :class:`GLUIntermediate`
  and :class:`GLUOutput` in each layer; its config carries ``add_bias_fnn: false``.

Checkpoints load from safetensors or with ``torch.load(weights_only=True)``, and the load is
strict: every model tensor must come from the checkpoint with the right shape, and every
checkpoint tensor must be used (only the MLM head, contact head and old position/rotary buffers
may be left over).  Each failure names the tensors.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformers import EsmConfig, EsmModel

from seqalignatac.errors import InputError
from seqalignatac.io.torch_files import load_tensors

log = logging.getLogger(__name__)

CFG_KEYS = {
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
    "max_position_embeddings", "position_embedding_type", "pad_token_id", "mask_token_id",
    "emb_layer_norm_before", "token_dropout", "layer_norm_eps", "hidden_dropout_prob",
    "attention_probs_dropout_prob",
}  # fmt: skip
REQUIRED_CFG = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
# Checkpoint keys we may leave unused: MLM head, contact head, buffers older code saved.
UNUSED_OK = re.compile(
    r"^(lm_head\..*|contact_head\..*|embeddings\.position_ids"
    r"|encoder\.layer\.\d+\.attention\.self\.rotary_embeddings\.inv_freq)$"
)
# Model tensors a checkpoint need not have: unused contact head, recomputable rotary buffer.
MISSING_OK = re.compile(r"^(contact_head\..*|rotary_embeddings\.inv_freq)$")


class GLUIntermediate(nn.Module):
    """NT-v2 feed-forward input: one bias-free Linear to 2*I, then silu(first half) * second half."""

    def __init__(self, c: EsmConfig):
        super().__init__()
        self.dense = nn.Linear(c.hidden_size, 2 * c.intermediate_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = self.dense(x).chunk(2, dim=-1)
        return F.silu(a) * b


class GLUOutput(nn.Module):
    """NT-v2 feed-forward output: bias-free Linear back to H plus the residual."""

    def __init__(self, c: EsmConfig):
        super().__init__()
        self.dense = nn.Linear(c.intermediate_size, c.hidden_size, bias=False)
        if c.hidden_dropout_prob is None:  # EsmConfig allows null; nn.Dropout needs a rate
            raise InputError("model config: hidden_dropout_prob is null; a dropout rate is needed")
        self.dropout = nn.Dropout(c.hidden_dropout_prob)

    def forward(self, h: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(h)) + inp


def is_v2(cfg: dict[str, Any]) -> bool:
    return cfg.get("add_bias_fnn") is False


def esm_config(cfg: dict[str, Any]) -> EsmConfig:
    kw = {k: v for k, v in cfg.items() if k in CFG_KEYS}
    kw.setdefault("pad_token_id", 1)
    kw.setdefault("mask_token_id", 2)
    # EsmConfig defaults tie_word_embeddings=True; NT never ties (and EsmModel has no LM head).
    return EsmConfig(**kw, tie_word_embeddings=False)


def build_nt(cfg: dict[str, Any]) -> EsmModel:
    """Randomly initialized NT of the given hub config (v2 when ``add_bias_fnn`` is false)."""
    c = esm_config(cfg)
    m = EsmModel(c, add_pooling_layer=False)
    if is_v2(cfg):
        for layer in m.encoder.layer:
            layer.intermediate, layer.output = GLUIntermediate(c), GLUOutput(c)
    return m.eval()


def n_params(m: nn.Module) -> int:
    """Parameters that take part in the forward pass (not the unused contact head)."""
    return sum(p.numel() for n, p in m.named_parameters() if not n.startswith("contact_head."))


# ---------------------------------------------------------------------------- files
def read_config(model_dir: str | os.PathLike) -> dict[str, Any]:
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise InputError(
            "model directory lacks config.json; expected a Hugging Face hub layout "
            "(config.json, model.safetensors or pytorch_model.bin, vocab.txt)",
            model_dir,
        )
    try:
        with open(path, encoding="utf-8") as f:
            cfg = json.load(f)
    except json.JSONDecodeError as e:
        raise InputError(f"config.json is not valid JSON ({e})", path) from None
    mt = cfg.get("model_type")
    lacking = [k for k in REQUIRED_CFG if k not in cfg]
    if mt not in (None, "esm") or lacking:
        raise InputError(
            f"not a Nucleotide Transformer config (model_type={mt!r}"
            + (f", lacks {', '.join(lacking)}" if lacking else "")
            + "); use an InstaDeepAI/nucleotide-transformer-* checkpoint",
            path,
        )
    pet = cfg.get("position_embedding_type", "absolute")
    if pet not in ("absolute", "rotary"):
        raise InputError(f"unsupported position_embedding_type {pet!r} (NT uses absolute or rotary)", path)
    return cfg


def weight_file(model_dir: str | os.PathLike) -> str:
    for name in WEIGHT_FILES:
        p = os.path.join(model_dir, name)
        if os.path.isfile(p):
            return p
    raise InputError(f"model directory has no weights ({' or '.join(WEIGHT_FILES)})", model_dir)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    if path.endswith(".safetensors"):
        from safetensors.torch import load_file

        try:
            sd = load_file(path)
        except Exception as e:  # truncated or not safetensors
            raise InputError(
                f"cannot read checkpoint ({type(e).__name__}: {str(e).splitlines()[0][:200]})", path
            ) from None
    else:
        sd = load_tensors(path)  # pickled code is refused with our own message
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise InputError("checkpoint is not a flat state dict of tensors", path)
    return sd


def strip_prefix(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub checkpoints are EsmForMaskedLM: body under ``esm.``, head under ``lm_head.``."""
    if any(k.startswith("esm.") for k in sd):
        return {(k[4:] if k.startswith("esm.") else k): v for k, v in sd.items()}
    return dict(sd)


def check_state_dict(model: EsmModel, sd: dict[str, torch.Tensor], source: str) -> None:
    """Strict check: names and shapes; raise InputError naming the offending tensors."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    if "embeddings.word_embeddings.weight" not in sd:
        raise InputError(
            "checkpoint is not NT-like: no (esm.)embeddings.word_embeddings.weight tensor "
            f"(first keys: {', '.join(list(sd)[:3])})",
            source,
        )
    missing = sorted(k for k in expected if k not in sd and not MISSING_OK.match(k))
    unused = sorted(k for k in sd if k not in expected and not UNUSED_OK.match(k))
    wrong = [
        f"{k} {tuple(sd[k].shape)} (config expects {expected[k]})"
        for k in expected
        if k in sd and tuple(sd[k].shape) != expected[k]
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} tensors missing: {_few(missing)}")
    if wrong:
        problems.append(f"{len(wrong)} tensors of unexpected shape: {_few(wrong)}")
    if unused:
        problems.append(f"{len(unused)} checkpoint tensors not used by the model: {_few(unused)}")
    if problems:
        raise InputError(
            "checkpoint does not match config.json: "
            + "; ".join(problems)
            + ' (is config.json from the same model? v2 needs "add_bias_fnn": false)',
            source,
        )


def _few(xs: list[str], n: int = 4) -> str:
    return ", ".join(xs[:n]) + (f" and {len(xs) - n} more" if len(xs) > n else "")


def load_nt(
    model_dir: str | os.PathLike, dtype: torch.dtype = torch.float32, device: str | torch.device = "cpu"
) -> EsmModel:
    """Load an NT checkpoint from a hub-layout directory, strictly; returns an eval() EsmModel."""
    model_dir = os.fspath(model_dir)
    cfg = read_config(model_dir)
    wpath = weight_file(model_dir)
    sd = strip_prefix(read_state_dict(wpath))
    # Build on the meta device: no slow random init, no second copy of a multi-GB model.
    with torch.device("meta"):
        model = build_nt(cfg)
    check_state_dict(model, sd, wpath)
    model_keys = set(model.state_dict())
    for k in [k for k in sd if k not in model_keys and not k.endswith(".rotary_embeddings.inv_freq")]:
        del sd[k]  # lm_head.*, old position_ids: checked as allowed above
    # assign=True adopts the checkpoint tensors instead of copying them: peak memory = one checkpoint.
    # EsmModel.load_hook maps old per-layer rotary inv_freq keys onto the model-level buffer.
    result = model.load_state_dict(sd, strict=False, assign=True)
    leftover = list(result.unexpected_keys)
    absent = [k for k in result.missing_keys if not MISSING_OK.match(k)]
    if leftover or absent:  # check_state_dict should have caught these; never load silently
        raise InputError(f"checkpoint load left {_few(leftover + absent)} unmatched", wpath)
    _materialize_rest(model)
    return to_device_dtype(model, device, dtype)


def to_device_dtype(model: EsmModel, device: str | torch.device, dtype: torch.dtype) -> EsmModel:
    """Cast weights, but keep the rotary frequencies in fp32: in bf16 the angles of late
    positions would be off by a large fraction of a radian."""
    rot = model.rotary_embeddings
    inv = rot.inv_freq.detach().float().clone() if rot is not None else None
    # transformers wraps PreTrainedModel.to in functools.wraps(nn.Module.to), which mypy reads as unbound
    model = model.to(device=device, dtype=dtype)  # type: ignore[call-arg]
    if rot is not None and inv is not None:  # inv is set exactly when rot is
        rot.register_buffer("inv_freq", inv.to(device))
    return model.eval()


def _materialize_rest(model: EsmModel) -> None:
    """Give the tensors no checkpoint holds real values: unused contact head (zeros),
    position ids and, when absent, the rotary frequencies (both computed from the config)."""
    with torch.no_grad():
        for mod in model.modules():
            for name, p in list(mod.named_parameters(recurse=False)):
                if p.is_meta:
                    setattr(mod, name, nn.Parameter(torch.zeros(p.shape, dtype=torch.float32), requires_grad=False))
        emb = model.embeddings
        n = emb.position_ids.shape[-1]
        emb.register_buffer("position_ids", torch.arange(n).expand(1, -1), persistent=False)
        rot = model.rotary_embeddings
        if rot is not None and rot.inv_freq.is_meta:
            inv, _ = rot.compute_default_rope_parameters(model.config)
            rot.register_buffer("inv_freq", inv)
    left = [n for n, t in [*model.named_parameters(), *model.named_buffers()] if t.is_meta]
    if left:  # pragma: no cover - a transformers change we have not seen
        raise RuntimeError(f"tensors left uninitialized after loading: {_few(left)}")


def fingerprint_files(model_dir: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> str:
    """SHA-256 over config.json, vocab.txt and the weights (memoized by path, size, mtime)."""
    model_dir = os.fspath(model_dir)
    files = [os.path.join(model_dir, "config.json"), os.path.join(model_dir, "vocab.txt"), weight_file(model_dir)]
    stamp = json.dumps([[os.path.abspath(p), os.stat(p).st_size, os.stat(p).st_mtime_ns] for p in files])
    memo = Path(cache_dir) / "fingerprints.json" if cache_dir else None
    known: dict[str, str] = {}
    if memo and memo.is_file():
        try:
            known = json.loads(memo.read_text())
        except (OSError, json.JSONDecodeError):
            known = {}
    if stamp in known:
        return known[stamp]
    h = hashlib.sha256()
    for p in files:
        h.update(os.path.basename(p).encode() + b"\0")
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 24), b""):
                h.update(block)
    fp = h.hexdigest()
    if memo:
        from seqalignatac.io.atomic import write_json

        known[stamp] = fp
        try:
            write_json(memo, known)
        except OSError:  # a read-only cache still works, only slower next time
            pass
    return fp
