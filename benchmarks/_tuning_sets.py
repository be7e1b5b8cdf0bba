"""Granja tuning sets that never read the query labels of the reported pair (D6T1 -> D5T1).

``reverse``: reference BMMC_D5T1 -> query BMMC_D6T1 (scored on D6T1 labels).
``depth``: BMMC_D6T1 alone, its cells split at the median number of accessible peaks into a
deeper "reference" and a shallower "query" half.

``accessibility_sets`` gives the prepared (all 10,000 peaks) AnnData of each set and
``lsi_sets`` their stage-1 LSI cell embeddings, cached as .h5ad under ``workdir``.
``drop_reference_label`` removes one class from each set's reference (Unknown experiments).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "granja2019_bmmc_hemato"
LABEL = "BioClassification"
WORKDIR = Path("/tmp/seqalignatac_stage2_granja")
SETS = ("reverse", "depth")


def donors(workdir: Path = WORKDIR) -> Path:
    from seqalignatac.io.convert import convert

    d = Path(workdir) / "donors"
    if not (d / "BMMC_D5T1.h5ad").exists():
        convert(
            DATA / "counts_peaks_x_cells.mtx.gz",
            d,
            peaks=DATA / "peaks.bed",
            cells=DATA / "cells.tsv",
            split_by="Group",
        )
    return d


def accessibility_sets(workdir: Path = WORKDIR, drop_reference_label: str | None = None) -> dict:
    """{set name: prepared AnnData with obs['domain'] and obs['label']} (not cached: ~10 s)."""
    from seqalignatac.pp.mapping import prepare

    d = donors(workdir)
    out = {}
    for name in SETS:
        if name == "reverse":
            acc, _ = prepare(
                d / "BMMC_D5T1.h5ad", d / "BMMC_D6T1.h5ad", LABEL, query_labels_key=LABEL, min_peak_frac=0.0
            )
        else:
            acc, _ = prepare(
                d / "BMMC_D6T1.h5ad", d / "BMMC_D6T1.h5ad", LABEL, query_labels_key=LABEL, min_peak_frac=0.0
            )
            acc = acc[(acc.obs["domain"] == "reference").to_numpy()].copy()
            depth = np.diff(acc.X.tocsr().indptr)
            acc.obs["domain"] = np.where(depth >= np.median(depth), "reference", "query")
        if drop_reference_label is not None:
            keep = ~((acc.obs["domain"] == "reference") & (acc.obs[LABEL].astype(str) == drop_reference_label))
            acc = acc[keep.to_numpy()].copy()
        out[name] = acc
    return out


def lsi_sets(
    workdir: Path = WORKDIR, drop_reference_label: str | None = None, tag: str = "defaults-v2", **lsi_kwargs
) -> dict:
    """{set name: stage-1 LSI cell AnnData}; ``lsi_kwargs`` go to ``seqalignatac.models.stage1.lsi.lsi``.

    Cached under ``workdir`` by ``tag`` (give each distinct lsi_kwargs its own tag; "defaults-v2" = the
    stage-1 defaults since the LSI comparison: fit on all cells, logtf-logidf).
    """
    import anndata as ad

    from seqalignatac.models.stage1.lsi import lsi

    drop = drop_reference_label.replace("/", "_") if drop_reference_label else "none"
    paths = {n: Path(workdir) / f"tuneset_{n}_{tag}_drop-{drop}.h5ad" for n in SETS}
    if all(p.exists() for p in paths.values()):
        return {n: ad.read_h5ad(p) for n, p in paths.items()}
    out = {}
    for name, acc in accessibility_sets(workdir, drop_reference_label).items():
        cells, _ = lsi(acc, **lsi_kwargs)
        cells.write_h5ad(paths[name])
        out[name] = cells
    return out
