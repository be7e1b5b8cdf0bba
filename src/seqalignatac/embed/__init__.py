"""Peak embedding: Nucleotide Transformer (no remote code) and a k-mer baseline.

``embed_fasta`` (runner), ``kmer_embed`` (kmer), ``load_nt`` (nt_model), ``write_tiny`` (tiny) and
``NTTokenizer`` (tokenizer) are imported lazily, so ``kmer`` and ``tokenizer`` need only numpy.
"""

from __future__ import annotations

import importlib

_LAZY = {
    "embed_fasta": "runner",
    "kmer_embed": "kmer",
    "load_nt": "nt_model",
    "write_tiny": "tiny",
    "NTTokenizer": "tokenizer",
}

__all__ = list(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(name)
