"""Build the per-pair HTML report and the index over pairs (jinja2 templates, figures inlined)."""

from __future__ import annotations

import datetime as _dt
import logging
import os
import platform
import time
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from seqalignatac import __version__, keys
from seqalignatac.io.atomic import publish_dir, write_text
from seqalignatac.metrics import evaluate
from seqalignatac.models.stage2.unknown_reasons import NO_SIGNAL, REASON_COLUMN
from seqalignatac.params import SAFE_NAME, check
from seqalignatac.report import figures
from seqalignatac.report.data import PairData, load_pair
from seqalignatac.report.mqc import read_mqc, write_mqc

log = logging.getLogger(__name__)

VERSION_PACKAGES = (
    "seqalignatac",
    "numpy",
    "scipy",
    "pandas",
    "anndata",
    "h5py",
    "torch",
    "transformers",
    "torch-geometric",
    "scikit-learn",
    "faiss-cpu",
    "pyfaidx",
    "pyranges",
    "umap-learn",
    "matplotlib",
)

# prepare_summary.json keys shown in the harmonization table, with what they mean.
HARMONIZATION_ROWS = (
    ("reference.peaks", "Reference peaks (input)"),
    ("query.peaks", "Query peaks (input)"),
    ("query_peaks_mapped", "Query peaks overlapping a reference peak"),
    ("query_peaks_unmapped", "Query peaks with no reference counterpart (dropped)"),
    ("reference_peaks_with_query_peak", "Reference peaks with at least one query peak"),
    ("reference_peaks_with_several_query_peaks", "Reference peaks with several query peaks (OR-ed)"),
    ("min_cells_per_peak", "Minimum cells per kept peak"),
    ("peaks_dropped_rare", "Reference peaks dropped as rare"),
    ("peaks_kept", "Shared peaks kept (accessibility matrix)"),
    ("peaks_selected_for_sequence", "Peaks selected for sequences (extract, embed, nt)"),
    ("query_accessibility_retained_mapped", "Query accessibility on mapped peaks"),
    ("query_accessibility_retained", "Query accessibility on kept peaks"),
    ("query_accessibility_retained_sequence", "Query accessibility on sequence peaks"),
    ("reference.cells_without_shared_peaks", "Reference cells with no open shared peak"),
    ("query.cells_without_shared_peaks", "Query cells with no open shared peak"),
    ("overlap_width", "Overlap width W (bp)"),
)
FRACTION_KEYS = {
    "query_accessibility_retained_mapped",
    "query_accessibility_retained",
    "query_accessibility_retained_sequence",
}
# extract's peaks.fa.summary.json keys shown in the harmonization table, with what they mean.
EXTRACTION_ROWS = (
    ("written", "Peak sequences extracted"),
    ("peaks_on_absent_contigs", "Peaks on contigs absent from the FASTA (no sequence)"),
    ("clipped_at_chromosome_end", "Peaks clipped at a chromosome end"),
    ("all_n_sequences", "Peak sequences that are all N"),
)
# The verdict on a query cluster (query_clusters.csv's `explained` column).
EXPLAINED_WORD = "explained"
NOT_EXPLAINED_WORD = "not explained: likely a type the reference lacks"

# prepare_summary.json keys that are settings (shown under the run parameters).
PREPARE_SETTINGS = (
    "overlap_width",
    "min_peak_frac",
    "min_cells_per_peak",
    "max_sequence_peaks",
    "min_cells_per_sequence_peak",
    "reference",
    "query",
)


def _env():
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader("seqalignatac.report", "templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        undefined=jinja2.StrictUndefined,  # a missing template value is a bug, not a blank
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["num"] = fmt_num
    return env


def fmt_num(v: Any, digits: int = 3) -> str:
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if x != x:
            return "–"
        if x.is_integer() and abs(x) >= 1000:
            return f"{int(x):,}"
        return f"{x:.{digits}f}" if abs(x) < 1000 else f"{x:,.1f}"
    return str(v)


def _get(d: Mapping[str, Any] | None, dotted: str) -> Any:
    cur: Any = d
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def flatten(d: Mapping[str, Any], prefix: str = "", max_list: int = 8) -> list[tuple[str, str]]:
    """Scalar leaves of a nested dict as (dotted key, text); long lists are shortened."""
    out: list[tuple[str, str]] = []
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.extend(flatten(v, key + ".", max_list))
        elif isinstance(v, (list, tuple)) and not v:
            out.append((key, "none"))
        elif isinstance(v, (list, tuple)):
            items = ", ".join(fmt_num(x) for x in list(v)[:max_list])
            out.append((key, items + (f", … ({len(v)} items)" if len(v) > max_list else "")))
        else:
            out.append((key, fmt_num(v)))
    return out


def software_versions() -> list[tuple[str, str]]:
    rows = [("python", platform.python_version())]
    for name in VERSION_PACKAGES:
        try:
            rows.append((name, metadata.version(name)))
        except metadata.PackageNotFoundError:
            continue
    return rows


def _query_truth(data: PairData) -> pd.Series | None:
    if not data.has_query_labels:
        return None
    q = data.obs[data.obs[keys.DOMAIN].astype(str) == keys.QUERY][data.labels_key]
    return q.astype(object).where(q.notna(), None)


def summary_row(data: PairData) -> dict[str, Any]:
    """Headline numbers (the MultiQC row and the index row)."""
    ps, ts = data.prepare_summary, data.train_summary
    pred = data.predictions
    row: dict[str, Any] = {
        "reference_cells": _get(ps, "cells.reference")
        or int((data.obs[keys.DOMAIN].astype(str) == keys.REFERENCE).sum()),
        "query_cells": _get(ps, "cells.query") or int((data.obs[keys.DOMAIN].astype(str) == keys.QUERY).sum()),
        "shared_peaks": data.n_peaks,
        "query_signal_kept": _get(ps, "query_accessibility_retained"),
        "stage1_auroc": _first_number(ts, ("auroc", "val_auroc", "heldout_auroc", "held_out_auroc", "metrics.auroc")),
        "mean_confidence": float(pred[keys.CONFIDENCE].mean()) if len(pred) else None,
        "unknown_rate": float(pred[keys.IS_UNKNOWN].mean()) if len(pred) else None,
    }
    m = data.metrics
    if m is not None:
        row["accuracy"] = m.get("accuracy")
        row["macro_f1"] = m.get("macro_f1")
    qc = data.query_clusters
    if qc is not None:
        novel = ~qc[keys.EXPLAINED].to_numpy(dtype=bool)
        row["unexplained_clusters"] = int(novel.sum())
        row["unexplained_cells"] = int(qc[keys.N_CELLS].to_numpy()[novel].sum())
    return {k: v for k, v in row.items() if v is not None}


def _first_number(d: Mapping[str, Any], keys: Sequence[str]) -> float | None:
    for k in keys:
        v = _get(d, k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return float(v)
    return None


def _fill_metrics(data: PairData) -> None:
    """Score predictions against known query labels when annotate did not write the metric files."""
    truth = _query_truth(data)
    if truth is None or (data.metrics is not None and data.per_class is not None and data.confusion is not None):
        return
    common = data.predictions.index.intersection(truth.index[truth.notna()])
    if len(common) == 0:
        return
    res = evaluate(
        truth.loc[common].astype(str).to_numpy(),
        data.predictions.loc[common, keys.PREDICTED_LABEL].astype(str).to_numpy(),
    )
    if data.metrics is None:
        data.metrics = {k: v for k, v in res.items() if k not in ("per_class", "confusion")}
    if data.per_class is None:
        data.per_class = res["per_class"]
    if data.confusion is None:
        data.confusion = res["confusion"]


def build_context(data: PairData, umap_seed: int = 0, max_umap_cells: int = 20_000) -> dict[str, Any]:
    """Everything the report template shows, one entry per section (figures rendered inline)."""
    t0 = time.perf_counter()
    _fill_metrics(data)
    truth = _query_truth(data)
    colors = figures.label_colors(_all_labels(data))
    extract = data.extract_summary
    # The sections are built in page order (figures included), then put together.
    inputs = _inputs_section(data, truth, colors)
    harmon = _harmonization_rows(data)
    stage1 = _stage1_section(data)
    umap = _umap(data, umap_seed, max_umap_cells)
    umap_info = _umap_section(data, truth, colors, umap)
    predictions = _predictions_section(data, colors)
    clusters = _clusters_section(data, umap)
    evaluation = _evaluation_section(data)
    ctx = {
        "pair_id": data.pair_id,
        "generated": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "version": __version__,
        "headline": summary_row(data),
        "inputs": inputs,
        "harmonization": harmon,
        "renames": data.prepare_summary.get("chromosome_renames") or {},
        "extract": [(k, v) for k, v in flatten(extract)] if extract else [],
        "embed": [(k, v) for k, v in flatten(data.embed_attrs)] if data.embed_attrs else [],
        "stage1": stage1,
        "umap": umap_info,
        "predictions": predictions,
        "clusters": clusters,
        "evaluation": evaluation,
        "versions": software_versions(),
        "params": _run_parameters(data),
    }
    log.info("report context for %s built in %.1f s", data.pair_id, time.perf_counter() - t0)
    return ctx


def _all_labels(data: PairData) -> list[str]:
    """Every label a figure colours: the annotated cells' labels, then the predicted ones."""
    return list(data.obs[data.labels_key].dropna().astype(str).unique()) + list(
        data.predictions[keys.PREDICTED_LABEL].astype(str).unique()
    )


def _inputs_section(data: PairData, truth: pd.Series | None, colors: dict[str, str]) -> dict[str, Any]:
    """What went in: cells and peaks per domain, and the label composition of each."""
    obs = data.obs
    domain = obs[keys.DOMAIN].astype(str)
    ref_lab = obs.loc[domain == keys.REFERENCE, data.labels_key].astype(str)
    comp = pd.DataFrame({"reference": ref_lab.value_counts()})
    if truth is not None:
        comp["query"] = truth.dropna().astype(str).value_counts()
    comp = comp.fillna(0).astype(int).sort_index()
    return {
        "domains": [
            {
                "name": d,
                "cells": int((domain == d).sum()),
                "peaks_in_file": _get(data.prepare_summary, f"{d}.peaks"),
                "path": _get(data.prepare_summary, f"{d}.path") or "",
                "labels_key": _get(data.prepare_summary, f"{d}.labels_key") or "",
                "n_labels": int(obs.loc[domain == d, data.labels_key].dropna().nunique()),
            }
            for d in keys.DOMAINS
        ],
        "composition": [{"label": k, **{c: int(v) for c, v in r.items()}} for k, r in comp.iterrows()],
        "composition_columns": list(comp.columns),
        "composition_figure": figures.label_composition_figure(comp, colors) if len(comp) else None,
        "n_peaks": data.n_peaks,
    }


def _harmonization_rows(data: PairData) -> list[dict[str, str]]:
    """Peak harmonization: prepare's mapping and filter counts, then extract's sequence counts."""
    harmon = []
    for key, what in HARMONIZATION_ROWS:
        v = _get(data.prepare_summary, key)
        if v is None:
            continue
        harmon.append({"what": what, "value": f"{100 * v:.1f} %" if key in FRACTION_KEYS else fmt_num(v)})
    extract = data.extract_summary
    for key, what in EXTRACTION_ROWS:
        if extract and extract.get(key) is not None:
            harmon.append({"what": what, "value": fmt_num(extract[key])})
    return harmon


def _stage1_section(data: PairData) -> dict[str, Any]:
    """Stage 1: the training curve and the train summary's scores."""
    ts = data.train_summary
    return {
        "figure": figures.training_curve_figure(data.curve) if data.curve is not None else None,
        "rows": [(k, v) for k, v in flatten(ts) if not k.startswith(("params.", "config.", "history"))][:40],
        "auroc": summary_row(data).get("stage1_auroc"),
        "method": ts.get("method", ""),
    }


class _Umap(NamedTuple):
    """The UMAP of a subsample of the embedded cells: their rows, 2-D coordinates, domains and ids."""

    idx: np.ndarray
    coords: np.ndarray
    domain: np.ndarray
    names: np.ndarray


def _umap(data: PairData, seed: int, max_cells: int) -> _Umap:
    idx, coords = figures.compute_umap(data.embedding, seed=seed, max_cells=max_cells)
    domain = data.cells_obs[keys.DOMAIN].astype(str).to_numpy()[idx]
    return _Umap(idx, coords, domain, data.cells_obs.index.to_numpy()[idx])


def _umap_section(data: PairData, truth: pd.Series | None, colors: dict[str, str], umap: _Umap) -> dict[str, Any]:
    """UMAP of the stage-1 embedding (a subsample of its rows): reference labels, query predictions and truth."""
    idx, coords, cd, names = umap
    labels = data.cells_obs[data.labels_key].astype(object).to_numpy()[idx]
    q_names = names[cd == keys.QUERY]
    pred = data.predictions[keys.PREDICTED_LABEL]
    q_pred = pred.reindex(q_names).astype(object).fillna("(not annotated)").astype(str).to_numpy()
    q_truth = None
    if truth is not None:
        q_truth = pd.Series(labels[cd == keys.QUERY]).astype(object).fillna("(no label)").astype(str).to_numpy()
    umap_fig = figures.umap_figure(
        coords, cd, np.asarray(labels[cd == keys.REFERENCE]).astype(str), q_pred, q_truth, colors
    )
    return {
        "figure": umap_fig,
        "n_shown": len(idx),
        "n_total": data.embedding.shape[0],
        "dims": int(data.embedding.shape[1]),
    }


def _unknown_reasons(pred: pd.DataFrame) -> pd.Series:
    """Why each cell is Unknown ('' when it is not); all '' for predictions written before the column existed."""
    if REASON_COLUMN in pred.columns:
        return pred[REASON_COLUMN].fillna("").astype(str)
    return pd.Series("", index=pred.index)


def _predictions_section(data: PairData, colors: dict[str, str]) -> dict[str, Any]:
    """Predictions: counts per label, Unknown cells and why, confidence, the stage-2 summary and curve."""
    pred = data.predictions
    unknown = pred[keys.IS_UNKNOWN].to_numpy(dtype=bool)
    counts = pred[keys.PREDICTED_LABEL].astype(str).value_counts()
    threshold = _first_number(
        data.annotate_summary, ("unknown.confidence_threshold", "unknown.threshold", "unknown_threshold")
    )
    reasons = _unknown_reasons(pred)
    return {
        "n": int(len(pred)),
        "unknown_rate": float(unknown.mean()) if len(pred) else 0.0,
        "n_unknown": int(unknown.sum()),
        "n_no_signal": int((reasons == NO_SIGNAL).sum()),
        "unknown_reasons": [(r, int(n)) for r, n in reasons[unknown].value_counts().items() if r],
        "mean_confidence": float(pred[keys.CONFIDENCE].mean()) if len(pred) else 0.0,
        "median_confidence": float(pred[keys.CONFIDENCE].median()) if len(pred) else 0.0,
        "counts": [
            {"label": k, "n": int(v), "frac": v / max(len(pred), 1), "color": colors.get(k, "#999")}
            for k, v in counts.items()
        ],
        "counts_figure": figures.prediction_counts_figure(pred[keys.PREDICTED_LABEL], colors) if len(pred) else None,
        "confidence_figure": _confidence_figure(pred, unknown, threshold),
        "summary_rows": [(k, v) for k, v in flatten(data.annotate_summary) if not k.startswith("classes")][:60],
        "method": data.annotate_summary.get("method", ""),
        "curve_figure": (
            figures.training_curve_figure(data.annotate_curve, "stage-2 training loss", "gradient-reversal weight")
            if data.annotate_curve is not None and len(data.annotate_curve)
            else None
        ),
    }


def _clusters_section(data: PairData, umap: _Umap) -> dict[str, Any] | None:
    """Query clusters, the ones the reference does not explain first; None for results without the table."""
    qc = data.query_clusters
    if qc is None:
        return None
    threshold = _first_number(data.annotate_summary, ("unknown.novelty_threshold",))
    table = qc.assign(_novel=~qc[keys.EXPLAINED]).sort_values(
        ["_novel", keys.MEDIAN_NOVELTY, keys.N_CELLS], ascending=False, na_position="last"
    )
    verdicts = np.where(table[keys.EXPLAINED], EXPLAINED_WORD, NOT_EXPLAINED_WORD)
    rows = [{**r, "verdict": v} for r, v in zip(table.drop(columns="_novel").to_dict("records"), verdicts)]
    novel = table[table["_novel"]]
    return {
        "rows": rows,
        "threshold": threshold,
        "n_unexplained": len(novel),
        "n_unexplained_cells": int(novel[keys.N_CELLS].sum()),
        "figure": _novelty_figure(data, umap, threshold, [int(c) for c in novel[keys.QUERY_CLUSTER]]),
    }


def _novelty_figure(data: PairData, umap: _Umap, threshold: float | None, unexplained: list[int]) -> str | None:
    """The query cells of the UMAP coloured by novelty; None when predictions have no novelty column."""
    pred = data.predictions
    is_q = umap.domain == keys.QUERY
    if keys.NOVELTY not in pred.columns or not is_q.any():
        return None
    q = pred.reindex(umap.names[is_q])
    clusters = q[keys.QUERY_CLUSTER].to_numpy(dtype=float) if keys.QUERY_CLUSTER in q.columns else None
    return figures.novelty_figure(
        umap.coords[is_q],
        q[keys.NOVELTY].to_numpy(dtype=float),
        threshold,
        clusters,
        unexplained,
        background=umap.coords[umap.domain == keys.REFERENCE],
    )


def _evaluation_section(data: PairData) -> dict[str, Any] | None:
    """Accuracy against the query's own labels; None when the query has none."""
    if data.metrics is None:
        return None
    pc = data.per_class
    return {
        "accuracy": data.metrics.get("accuracy"),
        "macro_f1": data.metrics.get("macro_f1"),
        "n_cells": data.metrics.get("n_cells"),
        "per_class": [] if pc is None else [{"label": str(k), **r} for k, r in zip(pc.index, pc.to_dict("records"))],
        "per_class_columns": [] if pc is None else list(pc.columns),
        "confusion_figure": figures.confusion_figure(data.confusion)
        if data.confusion is not None and data.confusion.size
        else None,
    }


def _run_parameters(data: PairData) -> list[tuple[str, list[tuple[str, str]]]]:
    """Run parameters: the run's options and each step's settings, flattened, per step."""
    params = {
        "run": data.run_params,
        "prepare": {k: v for k, v in data.prepare_summary.items() if k in PREPARE_SETTINGS},
        "extract": data.extract_summary or {},
        "embed": data.embed_attrs or {},
        "train": data.train_summary,
        "annotate": data.annotate_summary,
    }
    return [(section, flatten(p)) for section, p in params.items() if p]


def render_report(ctx: Mapping[str, Any]) -> str:
    return _env().get_template("report.html.j2").render(**ctx)


def _confidence_figure(pred: pd.DataFrame, unknown: np.ndarray, threshold: float | None):
    """Histogram of the cells that have a confidence (cells without signal have none)."""
    conf = pred[keys.CONFIDENCE].to_numpy(float)
    has = np.isfinite(conf)
    return figures.confidence_figure(conf[has], unknown[has], threshold) if has.any() else None


def build_report(
    pair_id: str,
    prepare_dir: str | os.PathLike,
    train_dir: str | os.PathLike,
    annotate_dir: str | os.PathLike,
    outdir: str | os.PathLike,
    extract_dir: str | os.PathLike | None = None,
    embed_dir: str | os.PathLike | None = None,
    run_params: Mapping[str, Any] | None = None,
    max_umap_cells: int = 20_000,
    seed: int = 0,
) -> dict[str, Path]:
    """Write ``<pair_id>_report.html`` and ``<pair_id>_mqc.tsv`` into ``outdir``; return their paths."""
    check(pair_id, SAFE_NAME, "--pair-id")  # it names the files: no '/', '..' or markup
    data = load_pair(pair_id, prepare_dir, train_dir, annotate_dir, extract_dir, embed_dir, dict(run_params or {}))
    ctx = build_context(data, umap_seed=seed, max_umap_cells=max_umap_cells)
    out = Path(outdir)
    names = {"html": f"{pair_id}_report.html", "mqc": f"{pair_id}_mqc.tsv"}
    # One pair's files are published together; other pairs' reports in the folder are kept.
    with publish_dir(out, owned=names.values()) as stage:
        write_mqc(stage / names["mqc"], pair_id, ctx["headline"])
        write_text(stage / names["html"], render_report(ctx))
    return {k: out / v for k, v in names.items()}


# ----------------------------------------------------------------------------------- index


def build_index(outdir: str | os.PathLike, status: Mapping[str, Mapping[str, Any]] | None = None) -> Path:
    """``OUTDIR/index.html``: one row per pair folder with a report (and per pair in ``status``).

    ``status`` (from the runner) maps pair_id -> {"ok": bool, "error": str, "seconds": float}; pairs
    found on disk but absent from it are listed from their MultiQC table alone.
    """
    out = Path(outdir)
    status = dict(status or {})
    pair_ids = list(status)
    for mqc in sorted(out.glob("*/report/*_mqc.tsv")):
        pid = mqc.parent.parent.name
        if pid not in pair_ids:
            pair_ids.append(pid)
    rows = []
    for pid in pair_ids:
        mqc = out / pid / "report" / f"{pid}_mqc.tsv"
        html_rel = f"{pid}/report/{pid}_report.html"
        st = status.get(pid, {})
        has_report = (out / html_rel).is_file()
        rows.append(
            {
                "pair_id": pid,
                "ok": bool(st.get("ok", has_report)),
                "error": st.get("error", ""),
                "seconds": st.get("seconds"),
                "link": html_rel if has_report else None,
                "numbers": read_mqc(mqc) if mqc.is_file() else {},
            }
        )
    from seqalignatac.report.mqc import COLUMNS

    cols = [c for c in COLUMNS if any(c in r["numbers"] for r in rows)]
    text = (
        _env()
        .get_template("index.html.j2")
        .render(
            rows=rows,
            columns=[(c, COLUMNS[c][0], COLUMNS[c][1]) for c in cols],
            version=__version__,
            generated=_dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            n_failed=sum(not r["ok"] for r in rows),
        )
    )
    path = out / "index.html"
    write_text(path, text)
    return path


__all__ = ["build_report", "build_index", "build_context", "render_report", "summary_row"]
