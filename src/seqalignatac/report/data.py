"""Read one pair's published step folders (docs/design.md layout) into plain Python objects.

Only what the report shows is read: ``obs``/``var`` of the accessibility matrix (``X`` stays on
disk), the cell embeddings, predictions and the JSON/CSV/TSV summaries.  Missing optional files
(metrics when the query has no labels, extraction summary when stage 1 ran LSI, the query-cluster
table of results written before it existed) give ``None``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.errors import InputError, require_file
from seqalignatac.io.h5ad import read_h5ad
from seqalignatac.io.tables import restore_formulas

log = logging.getLogger(__name__)


@dataclass
class PairData:
    pair_id: str
    prepare_summary: dict[str, Any]
    obs: pd.DataFrame  # all prepared cells: domain, the labels column, original_id, ...
    labels_key: str  # obs column with the cell types (the user's name for it)
    n_peaks: int
    peaks_reference_only: int | None  # shared peaks open in no query cell
    train_summary: dict[str, Any]
    curve: pd.DataFrame | None
    cells_obs: pd.DataFrame  # cells stage 1 could embed (rows of the embedding)
    embedding: np.ndarray  # cells x dims, float32
    annotate_summary: dict[str, Any]
    predictions: pd.DataFrame  # indexed by cell_id
    annotate_curve: pd.DataFrame | None = None  # stage-2 per-epoch losses (gda only)
    query_clusters: pd.DataFrame | None = None  # one row per query cluster (query_clusters.csv)
    metrics: dict[str, Any] | None = None
    per_class: pd.DataFrame | None = None
    confusion: pd.DataFrame | None = None
    extract_summary: dict[str, Any] | None = None
    embed_attrs: dict[str, Any] | None = None
    run_params: dict[str, Any] = field(default_factory=dict)

    @property
    def has_query_labels(self) -> bool:
        if self.labels_key not in self.obs:
            return False
        q = self.obs.loc[self.obs[keys.DOMAIN].astype(str) == keys.QUERY, self.labels_key]
        return len(q) > 0 and pd.Series(q).notna().any()


def _json(path: Path) -> dict[str, Any]:
    require_file(path, "step summary")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"not valid JSON ({e.msg} at line {e.lineno}); re-run the step that wrote it", path) from None


def _optional_json(path: Path) -> dict[str, Any] | None:
    return _json(path) if path.is_file() else None


def _read_h5ad(path: Path, backed: bool = False):
    return read_h5ad(path, "AnnData file", hint="re-run the step that wrote it", backed=backed)


def load_pair(
    pair_id: str,
    prepare_dir: str | os.PathLike,
    train_dir: str | os.PathLike,
    annotate_dir: str | os.PathLike,
    extract_dir: str | os.PathLike | None = None,
    embed_dir: str | os.PathLike | None = None,
    run_params: dict[str, Any] | None = None,
) -> PairData:
    prep, train, ann = Path(prepare_dir), Path(train_dir), Path(annotate_dir)
    for d, what in ((prep, "--prepare-dir"), (train, "--train-dir"), (ann, "--annotate-dir")):
        if not d.is_dir():
            raise InputError(f"{what} is not a folder; give the step's output folder", d)

    prepared = _read_prepared(prep)
    cells_obs, embedding = _read_cell_embeddings(train)
    curve = _optional_tsv(train / keys.TRAINING_CURVE)
    predictions = _read_predictions(ann, prepared.obs)
    annotate_curve = _optional_tsv(ann / keys.TRAINING_CURVE)
    query_clusters = _read_query_clusters(ann / keys.QUERY_CLUSTERS)
    per_class = _optional_csv(ann / keys.PER_CLASS)
    confusion = _optional_csv(ann / keys.CONFUSION)
    embed_attrs = None if embed_dir is None else _read_embed_attrs(Path(embed_dir) / keys.EMBEDDINGS)
    extract_summary = None
    if extract_dir is not None:
        extract_summary = _optional_json(Path(extract_dir) / f"{keys.PEAKS_FASTA}.summary.json")

    return PairData(
        pair_id=pair_id,
        prepare_summary=_json(prep / keys.PREPARE_SUMMARY),
        obs=prepared.obs,
        labels_key=prepared.labels_key,
        n_peaks=prepared.n_peaks,
        peaks_reference_only=prepared.peaks_reference_only,
        train_summary=_json(train / keys.TRAIN_SUMMARY),
        curve=curve,
        cells_obs=cells_obs,
        embedding=embedding,
        annotate_summary=_optional_json(ann / keys.ANNOTATE_SUMMARY) or {},
        predictions=predictions,
        annotate_curve=annotate_curve,
        query_clusters=query_clusters,
        metrics=_optional_json(ann / keys.METRICS),
        per_class=per_class,
        confusion=confusion,
        extract_summary=extract_summary,
        embed_attrs=embed_attrs,
        run_params=dict(run_params or {}),
    )


class _Prepared(NamedTuple):
    """What the report takes from prepare's accessibility matrix (its ``X`` is never read)."""

    obs: pd.DataFrame
    labels_key: str
    n_peaks: int
    peaks_reference_only: int | None


def _read_prepared(prep: Path) -> _Prepared:
    """``obs``, the label column and the peak counts of prepare's accessibility matrix (opened backed)."""
    acc = _read_h5ad(prep / keys.ACCESSIBILITY, backed=True)
    try:
        obs = acc.obs.copy()
        labels_key = keys.labels_key_of(acc)
        n_peaks = int(acc.n_vars)
        ref_only = None
        if "n_cells_query" in acc.var.columns:
            ref_only = int((np.asarray(acc.var["n_cells_query"]) == 0).sum())
    finally:
        acc.file.close()
    if keys.DOMAIN not in obs.columns:
        raise InputError(f"obs has no {keys.DOMAIN!r} column; re-run `seqalignatac prepare`", prep / keys.ACCESSIBILITY)
    return _Prepared(obs, labels_key, n_peaks, ref_only)


def _read_cell_embeddings(train: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """The ``obs`` and stage-1 embedding rows of the cells train embedded (cells without signal have none)."""
    cells = _read_h5ad(train / keys.CELL_EMBEDDINGS)
    if keys.EMBEDDING not in cells.obsm:
        raise InputError(f"obsm has no {keys.EMBEDDING!r}; re-run `seqalignatac train`", train / keys.CELL_EMBEDDINGS)
    embedding = np.asarray(cells.obsm[keys.EMBEDDING], dtype=np.float32)
    embedded = np.isfinite(embedding).all(axis=1)  # cells without signal have a NaN row (no embedding)
    return cells.obs[embedded].copy(), embedding[embedded]


def _read_predictions(ann: Path, obs: pd.DataFrame) -> pd.DataFrame:
    """annotate's predictions.csv, indexed by prepare's cell ids, with a boolean Unknown column."""
    pred_path = Path(require_file(ann / keys.PREDICTIONS, "predictions"))
    predictions = restore_formulas(pd.read_csv(pred_path, dtype={keys.CELL_ID: str}))
    missing = {keys.CELL_ID, keys.PREDICTED_LABEL, keys.CONFIDENCE, keys.IS_UNKNOWN} - set(predictions.columns)
    if missing:
        raise InputError(f"predictions lack column(s) {sorted(missing)}; re-run `seqalignatac annotate`", pred_path)
    predictions[keys.IS_UNKNOWN] = predictions[keys.IS_UNKNOWN].astype(str).str.lower().isin(["true", "1"])
    predictions = predictions.set_index(keys.CELL_ID)
    predictions.index = _prepared_query_ids(obs, predictions.index)
    return predictions


CLUSTER_COLUMNS = (
    keys.QUERY_CLUSTER,
    keys.N_CELLS,
    keys.TOP_LABEL,
    keys.TOP_LABEL_SHARE,
    keys.UNKNOWN_SHARE,
    keys.MEDIAN_NOVELTY,
    keys.EXPLAINED,
)


def _read_query_clusters(path: Path) -> pd.DataFrame | None:
    """annotate's query_clusters.csv with a boolean ``explained`` column; None when absent (older results)."""
    if not path.is_file():
        return None
    table = restore_formulas(pd.read_csv(path, dtype={keys.TOP_LABEL: str}))
    missing = set(CLUSTER_COLUMNS) - set(table.columns)
    if missing:
        raise InputError(f"query clusters lack column(s) {sorted(missing)}; re-run `seqalignatac annotate`", path)
    table[keys.EXPLAINED] = table[keys.EXPLAINED].astype(str).str.lower().isin(["true", "1"])
    return table


def _optional_tsv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path, sep="\t") if path.is_file() else None


def _optional_csv(path: Path) -> pd.DataFrame | None:
    """A table the package wrote with its first column as the index (per-class scores, confusion matrix)."""
    return restore_formulas(pd.read_csv(path, index_col=0)) if path.is_file() else None


def _read_embed_attrs(path: Path) -> dict[str, Any] | None:
    """The embedding store's attributes (model, dtype, ...) and its shape; None when embed wrote none."""
    if not path.is_file():
        return None
    import h5py

    with h5py.File(path, "r") as f:
        embed_attrs = {k: _plain(v) for k, v in f.attrs.items()}
        if "embeddings" in f:
            embed_attrs.setdefault("n_peaks", int(f["embeddings"].shape[0]))
            embed_attrs.setdefault("dim", int(f["embeddings"].shape[1]))
    return embed_attrs


def _plain(v: Any) -> Any:
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, np.ndarray):
        return v.tolist()
    return v


def _prepared_query_ids(obs: pd.DataFrame, cell_ids: pd.Index) -> pd.Index:
    """predictions.csv names query cells by the user's barcodes (``obs['original_id']``); the
    prepared files by prepare's ids. Map to the latter (ids that are already prepared ones stay)."""
    query = obs[obs[keys.DOMAIN].astype(str) == keys.QUERY]
    if keys.ORIGINAL_ID not in query.columns:
        return cell_ids
    prepared = pd.Series(query.index.to_numpy(), index=query[keys.ORIGINAL_ID].astype(str).to_numpy())
    if not cell_ids.isin(prepared.index).all():
        return cell_ids
    return pd.Index(prepared.loc[cell_ids].to_numpy(), name=cell_ids.name)
