"""What stage 2 works on: the cells split by domain (cells without signal set aside), the reference
labels, and the reference cells held out of training to calibrate the Unknown test."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd

from seqalignatac import keys
from seqalignatac.errors import InputError


@dataclass
class SplitCells:
    """The cells of one run: those with signal split into reference and query, plus where they sit."""

    all_cells: ad.AnnData  # every cell given
    no_signal: np.ndarray  # over all_cells: no accessible shared peak (kept out, called Unknown)
    cells: ad.AnnData  # the cells with signal
    is_ref: np.ndarray  # over cells
    x_ref: np.ndarray
    x_query: np.ndarray

    @property
    def reference_ids(self) -> list[str]:
        return [str(c) for c in self.cells.obs_names[self.is_ref]]


def split_domains(cells: ad.AnnData, embedding_key: str, source: str | None = None) -> SplitCells:
    """Check ``obs['domain']`` and ``obsm[embedding_key]`` and split the cells with signal."""
    no_signal = _no_signal_cells(cells, source)
    all_cells = cells
    if no_signal.any():
        cells = cells[~no_signal]
    if keys.DOMAIN not in cells.obs.columns:
        raise InputError(
            f"obs has no {keys.DOMAIN!r} column; stage 2 needs obs[{keys.DOMAIN!r}] = {keys.REFERENCE!r} or "
            f"{keys.QUERY!r} for every cell (run `seqalignatac prepare` then `train`, which set it)",
            source,
        )
    domain = cells.obs[keys.DOMAIN].astype(str).to_numpy()
    bad = sorted(set(domain) - set(keys.DOMAINS))
    if bad:
        raise InputError(
            f"obs[{keys.DOMAIN!r}] has values {bad[:5]}; only {keys.REFERENCE!r} and {keys.QUERY!r} are allowed",
            source,
        )
    if embedding_key not in cells.obsm:
        from_train = "stage1" in (cells.uns.get(keys.UNS) or {})
        hint = (
            "pass the right --embedding-key"
            if from_train
            else "it is not the cell_embeddings.h5ad written by `seqalignatac train`: run train first"
        )
        raise InputError(
            f"obsm has no {embedding_key!r} (found: {', '.join(cells.obsm.keys()) or 'none'}); {hint}", source
        )
    x = np.asarray(cells.obsm[embedding_key])
    if x.ndim != 2 or x.shape[1] == 0:
        raise InputError(f"obsm[{embedding_key!r}] must be a cells x dims matrix, got shape {x.shape}", source)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        first = cells.obs_names[np.flatnonzero(~finite)[0]]
        raise InputError(
            f"obsm[{embedding_key!r}] has NaN or infinite values in {int((~finite).sum())} cells "
            f"(first: {first!r}); re-run stage 1 or drop those cells",
            source,
        )
    is_ref = domain == keys.REFERENCE
    if not (~is_ref).any():
        raise InputError(
            f"the query has no cells (no obs[{keys.DOMAIN!r}] == {keys.QUERY!r}); nothing to annotate", source
        )
    if not is_ref.any():
        raise InputError(f"the reference has no cells (no obs[{keys.DOMAIN!r}] == {keys.REFERENCE!r})", source)
    x = x.astype(np.float32)
    return SplitCells(all_cells, no_signal, cells, is_ref, x[is_ref], x[~is_ref])


def reference_labels(split: SplitCells, labels_key: str, source: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The reference cells' labels as strings and which of them have one (warnings for odd classes)."""
    cells, is_ref = split.cells, split.is_ref
    if labels_key not in cells.obs.columns:
        raise InputError(f"obs has no {labels_key!r} column, so the reference has no labels; pass --labels-key", source)
    ref_labels = cells.obs[labels_key][is_ref]
    has_label = ref_labels.notna().to_numpy() & (ref_labels.astype(str).str.strip() != "").to_numpy()
    if not has_label.any():
        raise InputError(
            f"the reference has no labels: obs[{labels_key!r}] is empty for all {int(is_ref.sum())} reference cells",
            source,
        )
    if not has_label.all():
        warnings.warn(
            f"{int((~has_label).sum())} reference cells have no label; they stay in the graph but are not trained on",
            stacklevel=3,
        )
    ref_str = ref_labels.astype(str).to_numpy()
    if (ref_str[has_label] == keys.UNKNOWN).any():
        raise InputError(
            f"the reference label {keys.UNKNOWN!r} is reserved for unknown cells; rename that class", source
        )
    counts = pd.Series(ref_str[has_label]).value_counts()
    singles = sorted(counts.index[counts < 2])
    if singles:
        warnings.warn(
            f"reference classes with a single cell: {', '.join(map(str, singles))}; "
            "they are trained on but cannot be held out for calibration",
            stacklevel=3,
        )
    return ref_str, has_label


def calibration_split(
    ref_str: np.ndarray, has_label: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(class order, class index per reference cell (-1: no label), held-out mask, training mask)."""
    classes = np.array(sorted(set(ref_str[has_label])), dtype=object)
    class_index = {c: i for i, c in enumerate(classes)}
    y_ref = np.array([class_index.get(c, -1) for c in np.where(has_label, ref_str, "")], dtype=np.int64)
    labeled = np.flatnonzero(has_label)
    held = np.zeros(y_ref.size, dtype=bool)
    held[labeled[held_out_mask(y_ref[labeled], fraction, seed)]] = True
    return classes, y_ref, held, has_label & ~held


@dataclass
class ReferenceSet:
    """The labeled reference cells the transfers and the distance test use: training and held-out."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_held: np.ndarray
    y_held: np.ndarray

    def stacked(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(embeddings, labels, training mask, held-out mask), as :func:`knn_transfer` takes them."""
        n_train, n_held = self.y_train.size, self.y_held.size
        train = np.r_[np.ones(n_train, dtype=bool), np.zeros(n_held, dtype=bool)]
        return np.vstack([self.x_train, self.x_held]), np.r_[self.y_train, self.y_held], train, ~train


def _no_signal_cells(cells: ad.AnnData, source: str | None) -> np.ndarray:
    """Cells that stage 1 flagged as having no accessible peak (``obs[HAS_SIGNAL]`` False)."""
    if keys.HAS_SIGNAL not in cells.obs.columns:
        return np.zeros(cells.n_obs, dtype=bool)
    no_signal = ~cells.obs[keys.HAS_SIGNAL].astype(bool).to_numpy()
    if no_signal.any() and keys.DOMAIN in cells.obs.columns:
        is_query = cells.obs[keys.DOMAIN].astype(str).to_numpy() == keys.QUERY
        if is_query.any() and no_signal[is_query].all():
            raise InputError(
                f"none of the {int(is_query.sum())} query cells has an accessible shared peak, so "
                "nothing can be compared with the reference; check that the query's peaks overlap "
                "the reference's (same genome build? see prepare_summary.json)",
                source,
            )
    return no_signal


def held_out_mask(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Stratified held-out reference cells; classes with fewer than 5 cells keep all for training."""
    rng = np.random.default_rng(seed)
    held = np.zeros(y.size, dtype=bool)
    if fraction <= 0:
        return held
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        if idx.size < 5:
            continue
        n = max(1, int(round(fraction * idx.size)))
        held[rng.choice(idx, size=n, replace=False)] = True
    return held
