"""The stage-1 output folder (same layout for every ``--method``; see docs/design.md).

``cell_embeddings.h5ad``  every input cell, ``obs`` carried over plus ``has_signal``, ``X`` empty,
                          ``obsm['X_seqalignatac']`` (NaN rows for cells without signal),
                          ``uns['seqalignatac']['stage1']``
``model.safetensors``     weights (network) or loadings/IDF (LSI), config in the metadata
``training_curve.tsv/.png``  per-epoch metrics (network) or per-component table (LSI)
``train_summary.json``    the summary dict
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.errors import InputError
from seqalignatac.io.atomic import (
    atomic_path,
    publish_dir,
    staging_path,
    write_bytes,
    write_h5ad,
    write_json,
    write_text,
)

log = logging.getLogger(__name__)

RESULT_FILES = (
    keys.CELL_EMBEDDINGS,
    keys.STAGE1_MODEL,
    keys.TRAINING_CURVE,
    keys.TRAINING_CURVE.removesuffix(".tsv") + ".png",
    keys.TRAIN_SUMMARY,
)
CHECKPOINT_DIR = "checkpoint"
RUN_FILE = "run.json"  # fingerprint of the run that owns the folder
OWNED = (*RESULT_FILES, CHECKPOINT_DIR, RUN_FILE)  # everything stage 1 writes into its folder


@contextlib.contextmanager
def stage1_folder(
    outdir: str | os.PathLike | None, fingerprint: Mapping[str, Any], resume: bool, overwrite: bool = False
) -> Iterator[Path | None]:
    """The folder stage 1 writes into while it runs (None without ``outdir``).

    It is a staging folder beside ``outdir``, swapped in when training ends, so ``outdir`` never
    holds new weights next to old embeddings.  Checkpoints live in it: a killed or failed run
    keeps it, and ``resume`` (``[train] resume = true``) continues from there.
    """
    if outdir is None:
        yield None
        return
    leftover = staging_path(outdir) / CHECKPOINT_DIR
    if not resume and not overwrite and leftover.is_dir():
        raise InputError(
            f"an interrupted run left its checkpoint in {leftover.parent}; "
            "set resume = true in the [train] table of --config to continue it, or delete that folder "
            "to start over",
            outdir,
        )
    with publish_dir(outdir, owned=OWNED, resume=resume, keep_if=CHECKPOINT_DIR) as work:
        prepare_outdir(work, fingerprint, resume, published=None if overwrite else outdir)
        yield work


def prepare_outdir(
    outdir: str | os.PathLike, fingerprint: Mapping[str, Any], resume: bool, published: str | os.PathLike | None = None
) -> Path:
    """Create ``outdir`` (the working folder) or check that it belongs to this run.

    Without ``resume`` the folder, and ``published`` (the results folder it will replace), must
    hold no stage-1 files.  With ``resume`` the folder must hold nothing or files of a run with
    the same fingerprint (inputs and settings).
    """
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError("output path exists and is not a folder; choose another --outdir", out)
    out.mkdir(parents=True, exist_ok=True)
    shown = Path(published) if published is not None else out
    folders = [out] if resume or published is None else [out, Path(published)]
    existing = sorted({f for d in folders for f in OWNED if (d / f).exists()})
    run_file = out / RUN_FILE
    if existing and not resume:
        raise InputError(
            f"output folder already holds files of another run ({', '.join(existing)}); choose a new --outdir, "
            "delete them, or set resume = true in the [train] table of --config to continue the same run",
            shown,
        )
    if existing and resume:
        if not run_file.exists():
            raise InputError(
                f"output folder holds stage-1 files ({', '.join(existing)}) but no {RUN_FILE}; "
                "it was not written by a resumable run: choose a new --outdir",
                shown,
            )
        old = json.loads(run_file.read_text())
        fp = _jsonable(fingerprint)
        diff = sorted(k for k in set(old) | set(fp) if old.get(k) != fp.get(k))
        if diff:
            raise InputError(
                f"resume: the folder holds another run's files (settings differ: {', '.join(diff[:6])}); "
                "use the same inputs and options, or a new --outdir",
                shown,
            )
    write_json(run_file, _jsonable(fingerprint))
    return out


def _jsonable(obj: Any) -> Any:
    return json.loads(json.dumps(obj, default=str))


def h5ad_safe(obj: Any) -> Any:
    """Summary values that AnnData can store in ``uns`` (no None, lists of one type)."""
    if isinstance(obj, Mapping):
        return {str(k): h5ad_safe(v) for k, v in obj.items() if v is not None}
    if isinstance(obj, (list, tuple)):
        items = [h5ad_safe(v) for v in obj if v is not None]
        if all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in items):
            return np.asarray(items, dtype=float if any(isinstance(v, float) for v in items) else int)
        return np.asarray([str(v) for v in items], dtype=object)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def cell_embeddings_adata(adata, keep_cells: np.ndarray, embedding: np.ndarray, summary: Mapping[str, Any]):
    """AnnData of every input cell: ``obs`` unchanged plus ``obs[keys.HAS_SIGNAL]``, empty ``X``, embedding in obsm.

    ``embedding`` holds the rows of the kept cells; the others get a NaN row (no accessible peak,
    so nothing to embed) and ``keys.HAS_SIGNAL`` False, so no cell the user gave disappears.
    """
    import anndata as ad

    obs = adata.obs.copy()
    obs[keys.HAS_SIGNAL] = np.asarray(keep_cells, dtype=bool)
    cells = ad.AnnData(obs=obs)
    full = np.full((adata.n_obs, embedding.shape[1]), np.nan, dtype=np.float32)
    full[keep_cells] = embedding
    cells.obsm[keys.EMBEDDING] = full
    uns = {}
    prev = adata.uns.get(keys.UNS) if hasattr(adata, "uns") else None
    if isinstance(prev, Mapping):
        uns.update({k: v for k, v in prev.items() if k != "stage1"})
    uns["stage1"] = h5ad_safe(summary)
    cells.uns[keys.UNS] = uns
    return cells


def write_results(
    outdir: str | os.PathLike,
    cells,
    summary: Mapping[str, Any],
    tensors: Mapping[str, np.ndarray],
    curve: pd.DataFrame,
    plot,
) -> None:
    """Write every result file atomically; the summary last (its presence marks completion)."""
    out = Path(outdir)
    write_h5ad(cells, out / keys.CELL_EMBEDDINGS)
    save_safetensors(out / keys.STAGE1_MODEL, tensors, {"seqalignatac_stage1": json.dumps(_jsonable(summary))})
    write_text(out / keys.TRAINING_CURVE, curve.to_csv(sep="\t", index=False))
    with atomic_path(out / "training_curve.png") as tmp:
        plot(curve, tmp)
    write_json(out / keys.TRAIN_SUMMARY, summary)


def save_safetensors(path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> None:
    from safetensors.numpy import save

    write_bytes(path, save({k: np.ascontiguousarray(v) for k, v in tensors.items()}, metadata=dict(metadata)))


def new_figure(ncols: int, width: float = 4.2, height: float = 3.2):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, axes[0]


def save_figure(fig, path) -> None:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110, format="png")
    plt.close(fig)
