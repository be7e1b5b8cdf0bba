"""The report's figures, each returned as a ``data:image/png;base64,...`` URI (no external files).

matplotlib with the non-interactive Agg backend; colours of a label are the same in every panel.
"""

from __future__ import annotations

import base64
import io
import logging
import time
from collections.abc import Sequence

import matplotlib

from seqalignatac import keys

matplotlib.use("Agg")  # headless: never open a window, never need a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

log = logging.getLogger(__name__)

UNKNOWN = keys.UNKNOWN
UNKNOWN_COLOR = "#b0b0b0"
DOMAIN_COLORS = {keys.REFERENCE: "#1f77b4", keys.QUERY: "#e6550d"}
DPI = 110

plt.rcParams.update({"font.size": 9, "axes.spines.top": False, "axes.spines.right": False})


def to_data_uri(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def label_colors(labels: Sequence[str]) -> dict[str, str]:
    """One stable colour per label (sorted), grey for Unknown."""
    names = sorted({str(x) for x in labels if str(x) != UNKNOWN and str(x) != "nan"})
    if len(names) <= 10:
        cmap, pos = matplotlib.colormaps["tab10"], range(len(names))
        cols = [cmap(i) for i in pos]
    elif len(names) <= 20:
        cmap = matplotlib.colormaps["tab20"]
        cols = [cmap(i) for i in range(len(names))]
    else:
        cmap = matplotlib.colormaps["turbo"]
        cols = [cmap(x) for x in np.linspace(0.05, 0.95, len(names))]
    out = {n: matplotlib.colors.to_hex(c) for n, c in zip(names, cols)}
    out[UNKNOWN] = UNKNOWN_COLOR
    return out


# ----------------------------------------------------------------------------------- UMAP


def compute_umap(embedding: np.ndarray, seed: int = 0, max_cells: int = 20_000) -> tuple[np.ndarray, np.ndarray]:
    """2-D UMAP of (a random subsample of at most ``max_cells``) cells: returns (row index, coords).

    Rows are L2-normalised first (stage 2 builds its graphs on normalised embeddings), so
    Euclidean UMAP equals cosine UMAP and all-zero rows stay harmless.
    """
    import umap  # imported here: numba compilation only when a report is made

    n = embedding.shape[0]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(n, size=max_cells, replace=False)) if n > max_cells else np.arange(n)
    x = np.asarray(embedding[idx], dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    if len(idx) < 4:
        return idx, np.zeros((len(idx), 2), dtype=np.float32)
    t = time.perf_counter()
    reducer = umap.UMAP(n_neighbors=min(15, len(idx) - 1), min_dist=0.3, random_state=seed, n_jobs=1)
    coords = reducer.fit_transform(x)
    log.info("UMAP of %d cells in %.1f s", len(idx), time.perf_counter() - t)
    return idx, np.asarray(coords, dtype=np.float32)


def _scatter(ax, xy: np.ndarray, labels: np.ndarray, colors: dict[str, str], title: str, background=None) -> None:
    size = max(1.0, min(12.0, 4000.0 / max(len(xy), 1)))
    if background is not None and len(background):
        ax.scatter(background[:, 0], background[:, 1], s=size, c="#eeeeee", linewidths=0, rasterized=True)
    labels = labels.astype(str)
    # Draw big groups first so small ones stay visible on top.
    order = pd.Series(labels).value_counts().index.tolist()
    for lab in order:
        m = labels == lab
        ax.scatter(
            xy[m, 0],
            xy[m, 1],
            s=size,
            c=colors.get(lab, "#000000"),
            linewidths=0,
            label=f"{lab} ({m.sum()})",
            rasterized=True,
        )
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP1")
    ax.set_ylabel("UMAP2")
    handles, names = ax.get_legend_handles_labels()
    keyed = sorted(zip(names, handles), key=lambda t: (t[0].startswith(UNKNOWN + " "), t[0]))
    if keyed:
        leg = ax.legend(
            [h for _, h in keyed],
            [n for n, _ in keyed],
            loc="center left",
            bbox_to_anchor=(1.0, 0.5),
            frameon=False,
            fontsize=7,
            ncol=1 if len(keyed) <= 18 else 2,
        )
        for h in leg.legend_handles:  # legend dots readable whatever the point size
            h.set_sizes([30])


def umap_figure(
    coords: np.ndarray,
    domain: np.ndarray,
    ref_label: np.ndarray,
    query_pred: np.ndarray,
    query_truth: np.ndarray | None,
    colors: dict[str, str],
) -> str:
    """Panels: all cells by domain; reference by label; query by prediction; query by true label."""
    is_ref = domain == keys.REFERENCE
    is_q = domain == keys.QUERY
    panels = 4 if query_truth is not None else 3
    fig, axes = plt.subplots(2, 2, figsize=(12, 9.5)) if panels == 4 else plt.subplots(1, 3, figsize=(17, 4.8))
    axes = np.ravel(axes)
    _scatter(axes[0], coords, domain, DOMAIN_COLORS, "All cells by domain")
    _scatter(axes[1], coords[is_ref], ref_label, colors, "Reference cells: label", background=coords[is_q])
    _scatter(
        axes[2], coords[is_q], query_pred, colors, "Query cells: seqAlignATAC prediction", background=coords[is_ref]
    )
    if query_truth is not None:
        _scatter(
            axes[3],
            coords[is_q],
            query_truth,
            colors,
            "Query cells: known label (not used for training)",
            background=coords[is_ref],
        )
    fig.tight_layout()
    return to_data_uri(fig)


def novelty_figure(
    coords: np.ndarray,
    novelty: np.ndarray,
    threshold: float | None,
    clusters: np.ndarray | None = None,
    unexplained: Sequence[int] = (),
    background: np.ndarray | None = None,
) -> str:
    """Query cells on the UMAP coloured by novelty (clipped at twice the threshold), the cells above the
    threshold ringed in red; cluster ids at their centroids (unexplained clusters in red)."""
    fig, ax = plt.subplots(figsize=(7.5, 5.5))
    size = max(1.0, min(12.0, 4000.0 / max(len(coords), 1)))
    if background is not None and len(background):
        ax.scatter(background[:, 0], background[:, 1], s=size, c="#eeeeee", linewidths=0, rasterized=True)
    has = np.isfinite(novelty)
    finite = novelty[has]
    vmax = 2 * threshold if threshold else max(float(np.percentile(finite, 99)) if len(finite) else 1.0, 1.0)
    ax.scatter(coords[~has, 0], coords[~has, 1], s=size, c=UNKNOWN_COLOR, linewidths=0, rasterized=True)
    order = np.argsort(finite)  # the most novel cells on top
    xy = coords[has][order]
    pts = ax.scatter(
        xy[:, 0], xy[:, 1], s=size, c=finite[order], cmap="viridis", vmin=0, vmax=vmax, linewidths=0, rasterized=True
    )
    bar = fig.colorbar(pts, ax=ax, fraction=0.04, extend="both", label="novelty (z-score)")
    if threshold:
        above = finite[order] > threshold
        ax.scatter(
            xy[above, 0],
            xy[above, 1],
            s=size * 3,
            facecolors="none",
            edgecolors="#d62728",
            linewidths=0.5,
            rasterized=True,
        )
        bar.ax.axhline(threshold, color="#d62728", lw=1.5)
    if clusters is not None:
        for c in pd.unique(clusters[pd.notna(clusters)]):
            cx, cy = np.median(coords[clusters == c], axis=0)
            bad = int(c) in set(unexplained)
            ax.text(
                cx,
                cy,
                str(int(c)),
                ha="center",
                va="center",
                fontsize=9 if bad else 7,
                fontweight="bold" if bad else "normal",
                color="#d62728" if bad else "black",
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.7},
            )
    ax.set_title("Query cells: novelty" + (f" (ringed: above {threshold:g})" if threshold else ""))
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_xlabel("UMAP1")
    ax.set_ylabel("UMAP2")
    fig.tight_layout()
    return to_data_uri(fig)


# ----------------------------------------------------------------------------------- stage 1


def training_curve_figure(
    curve: pd.DataFrame, loss_title: str = "loss", metric_title: str = "held-out metrics"
) -> str | None:
    """Losses in one panel, metrics within [0, 1] (AUROC, AUPRC, ...) in another, any other column alone."""
    num = curve.select_dtypes("number")
    if num.empty:
        return None
    xcol = "epoch" if "epoch" in num.columns else num.columns[0]
    x = num[xcol].to_numpy()
    rest = [c for c in num.columns if c != xcol and not c.lower().endswith(("seconds", "time", "lr", "_s"))]
    losses = [c for c in rest if "loss" in c.lower()]
    unit = [c for c in rest if c not in losses and num[c].between(0, 1).all()]
    groups = [(g, t) for g, t in ((losses, loss_title), (unit, metric_title if losses else "")) if g]
    groups += [([c], c) for c in rest if c not in losses and c not in unit]
    if not groups:
        return None
    groups = groups[:4]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.6 * len(groups), 3.3), squeeze=False)
    for ax, (cols, title) in zip(axes[0], groups):
        for c in cols:
            ax.plot(x, num[c].to_numpy(), marker="o" if len(x) <= 30 else None, ms=3, label=c)
        ax.set_xlabel(xcol)
        ax.set_title(title)
        if len(cols) > 1 or title != cols[0]:
            ax.legend(frameon=False, fontsize=8)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_data_uri(fig)


# ----------------------------------------------------------------------------------- inputs


def label_composition_figure(table: pd.DataFrame, colors: dict[str, str]) -> str:
    """Stacked horizontal bars: fraction of each label in the reference and the query."""
    frac = table.div(table.sum(axis=0).replace(0, np.nan), axis=1).fillna(0.0)
    fig, ax = plt.subplots(figsize=(7.5, 1.3 + 0.45 * frac.shape[1]))
    left = np.zeros(frac.shape[1])
    for lab in frac.index:
        vals = frac.loc[lab].to_numpy()
        ax.barh(
            frac.columns,
            vals,
            left=left,
            color=colors.get(str(lab), "#999999"),
            label=str(lab),
            edgecolor="white",
            linewidth=0.4,
        )
        left += vals
    ax.set_xlim(0, 1)
    ax.set_xlabel("fraction of cells")
    ax.invert_yaxis()
    ax.legend(
        loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False, fontsize=8, ncol=1 if len(frac.index) <= 12 else 2
    )
    fig.tight_layout()
    return to_data_uri(fig)


# ----------------------------------------------------------------------------------- predictions


def prediction_counts_figure(pred: pd.Series, colors: dict[str, str]) -> str:
    counts = pred.astype(str).value_counts()
    counts = counts.sort_values(ascending=True)
    fig, ax = plt.subplots(figsize=(6.5, 0.8 + 0.28 * len(counts)))
    ax.barh(counts.index, counts.to_numpy(), color=[colors.get(k, "#999999") for k in counts.index])
    for y, v in enumerate(counts.to_numpy()):
        ax.text(v, y, f" {v}", va="center", fontsize=7)
    ax.set_xlabel("query cells")
    ax.set_title("Predicted labels")
    fig.tight_layout()
    return to_data_uri(fig)


def confidence_figure(confidence: np.ndarray, unknown: np.ndarray, threshold: float | None = None) -> str:
    fig, ax = plt.subplots(figsize=(6.5, 3.2))
    bins = np.linspace(0, 1, 41).tolist()  # a list: matplotlib's stubs take a Sequence, not an array
    ax.hist(
        [confidence[~unknown], confidence[unknown]],
        bins=bins,
        stacked=True,
        color=["#3182bd", UNKNOWN_COLOR],
        label=[f"labeled ({(~unknown).sum()})", f"Unknown ({unknown.sum()})"],
    )
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1, label=f"threshold {threshold:.2f}")
    ax.set_xlabel("confidence")
    ax.set_ylabel("query cells")
    ax.set_title("Confidence distribution")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return to_data_uri(fig)


def confusion_figure(confusion: pd.DataFrame) -> str:
    """Row-normalised heat map (recall per true class), counts written in the cells."""
    cm = confusion.to_numpy(dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    norm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    nr, nc = cm.shape
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 + 0.42 * nc), max(4.0, 1.2 + 0.38 * nr)))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(nc))
    ax.set_xticklabels([str(c) for c in confusion.columns], rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(nr))
    ax.set_yticklabels([str(r) for r in confusion.index], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if nr * nc <= 900:
        for i in range(nr):
            for j in range(nc):
                if cm[i, j]:
                    ax.text(
                        j,
                        i,
                        f"{int(cm[i, j])}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="white" if norm[i, j] > 0.6 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.04, label="fraction of true class")
    ax.set_title("Confusion matrix (rows sum to 1)")
    fig.tight_layout()
    return to_data_uri(fig)
