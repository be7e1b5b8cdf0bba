"""Resolve ``--model``: ``kmer[:K]``, a local hub-layout directory, or a Hugging Face hub name."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from seqalignatac.errors import InputError

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
        "InstaDeepAI/nucleotide-transformer-v2-500m-multi-species, nor 'kmer'",
        s,
    )


def download(name: str) -> str:
    """snapshot_download (weights, config, tokenizer only); clear error when offline."""
    repo, _, revision = name.partition("@")
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError(
            "huggingface_hub is not installed; pip install huggingface-hub, or pass a local directory", name
        ) from None
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


def fetch_model(
    repo: str,
    outdir: str | os.PathLike,
    revision: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    model_option: str = "--model",
    revision_option: str = "--revision",
) -> Path:
    """Download hub repository ``repo`` (weights, config, tokenizer only) into the folder ``outdir``.

    The pipeline's FETCHMODEL step: EMBED tasks then load from that folder, so compute nodes need
    no internet.  Errors name ``repo`` and the option to change (``model_option``,
    ``revision_option``: the pipeline passes its ``--nt_model`` / ``--nt_revision``).
    """
    from huggingface_hub import snapshot_download  # imported here: `--help` works without the client
    from huggingface_hub.errors import (
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    out = Path(outdir)
    try:
        snapshot_download(
            repo_id=repo,
            revision=revision,
            local_dir=out,
            cache_dir=None if cache_dir is None else Path(cache_dir),  # the client takes str or Path
            allow_patterns=ALLOW_PATTERNS,
        )
    except RepositoryNotFoundError:
        raise InputError(
            f"no such model on the Hugging Face Hub (or it is private); check {model_option}, "
            "or give a local model folder",
            repo,
        ) from None
    except RevisionNotFoundError:
        raise InputError(f"revision '{revision}' not found; check {revision_option}", repo) from None
    except LocalEntryNotFoundError:
        raise InputError(
            "cannot reach the Hugging Face Hub from this machine (offline?); download the model "
            f"elsewhere and pass its folder as {model_option}",
            repo,
        ) from None
    except HfHubHTTPError as e:
        raise InputError(f"download failed: {e}".splitlines()[0], repo) from None
    except ValueError as e:  # malformed repository id
        raise InputError(str(e).splitlines()[0], repo) from None
    if not (out / "config.json").is_file():
        raise InputError("downloaded files contain no config.json; is this a transformers model?", repo)
    return out
