"""Resolve ``--model``: ``kmer[:K]``, a local hub-layout directory, or a Hugging Face hub name."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ..errors import InputError

# Only weights, config and tokenizer files: never the repository's .py (remote code).
ALLOW_PATTERNS = ["config.json", "*.safetensors", "pytorch_model.bin", "vocab.txt",
                  "tokenizer_config.json", "special_tokens_map.json"]  # fmt: skip
HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")


@dataclass(frozen=True)
class ModelSpec:
    kind: str  # "kmer" or "nt"
    name: str  # as the user gave it (kept in the store's attrs)
    path: str | None = None  # hub-layout directory for "nt"
    k: int = 6  # for "kmer"


def resolve_model(spec: str) -> ModelSpec:
    s = spec.strip()
    m = re.fullmatch(r"kmer(?::(\d+))?", s)
    if m:
        k = int(m.group(1) or 6)
        if not 1 <= k <= 10:
            raise InputError(f"--model {spec}: k must be between 1 and 10")
        return ModelSpec("kmer", s, k=k)
    if os.path.isdir(s):
        return ModelSpec("nt", s, path=os.path.abspath(s))
    if os.path.exists(s):
        raise InputError("--model must be a directory in the Hugging Face hub layout, a hub name or 'kmer'", s)
    if HUB_NAME.match(s):
        return ModelSpec("nt", s, path=download(s))
    raise InputError(
        "--model is neither an existing directory, a hub name like "
        "InstaDeepAI/nucleotide-transformer-v2-500m-multi-species, nor 'kmer'", s
    )


def download(name: str) -> str:
    """snapshot_download (weights, config, tokenizer only); clear error when offline."""
    repo, _, revision = name.partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("huggingface_hub is not installed; pip install huggingface-hub, or pass a local directory", name) from None
    try:
        # A previous download is used without touching the network.
        return snapshot_download(repo, revision=revision or None, allow_patterns=ALLOW_PATTERNS, local_files_only=True)
    except Exception:
        pass
    try:
        return snapshot_download(repo, revision=revision or None, allow_patterns=ALLOW_PATTERNS)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise InputError(
            f"cannot download model {repo!r} from the Hugging Face hub ({type(e).__name__}: {first}). "
            "On a machine without internet, download it elsewhere (huggingface-cli download "
            f"{repo} config.json pytorch_model.bin vocab.txt tokenizer_config.json special_tokens_map.json "
            "--local-dir DIR) and pass --model DIR",
            name,
        ) from None
