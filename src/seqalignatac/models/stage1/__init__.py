"""Stage 1: cell embeddings from peak accessibility.

- :func:`train`: the sequence-to-accessibility network (peak embedding -> MLP -> bottleneck ->
  one output weight column per cell; the column is the cell's embedding).
- :func:`lsi`: the sequence-free ablation (binarize, TF-IDF, truncated SVD fitted on the
  reference and query cells, or on the reference alone).

Both return ``(cell_embeddings AnnData, summary dict)`` with the embedding in
``obsm['X_seqalignatac']`` and write the same output layout when given ``outdir``.
Imports are lazy so ``lsi`` never loads torch.
"""

from __future__ import annotations

from typing import Any

__all__ = ["train", "lsi"]

from seqalignatac.models.stage1.lsi import lsi  # noqa: E402  (light: numpy/scipy; sklearn is imported when called)


def __getattr__(name: str) -> Any:
    if name == "train":  # torch is imported only when the network is wanted
        from seqalignatac.models.stage1.trainer import train

        return train
    raise AttributeError(name)
