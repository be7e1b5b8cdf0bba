"""Model objects: stage 1 (:mod:`seqalignatac.models.stage1`: the sequence-to-accessibility
network and LSI) and stage 2 (:mod:`seqalignatac.models.stage2`: graph domain adaptation), with
:class:`Annotator`, the fitted stage-2 model (``save``, ``load``, ``predict``), scvi-tools style.
Loaded on first use (torch)."""

from __future__ import annotations

__all__ = ["Annotator", "GDAConfig", "TrainConfig"]


def __getattr__(name: str):
    if name in ("Annotator", "GDAConfig"):
        from seqalignatac.models import stage2

        return getattr(stage2, name)
    if name == "TrainConfig":
        from seqalignatac.models.stage1.config import TrainConfig

        return TrainConfig
    raise AttributeError(name)
