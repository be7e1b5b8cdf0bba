"""Scoring predicted cell types against known labels (one code path for annotate, evaluate,
the report and the benchmarks).

Macro-F1 is averaged over the classes present in the *truth* (method.md, "Measuring honestly"):
a reference class the query does not contain cannot lower the score, while a query class the
reference lacks (predicted wrongly or ``Unknown``) does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from seqalignatac import keys

UNKNOWN = keys.UNKNOWN


def evaluate(
    y_true: Sequence[Any],
    y_pred: Sequence[Any],
    *,
    unknown_label: str = UNKNOWN,
    known_classes: Sequence[Any] | None = None,
) -> dict[str, Any]:
    """Accuracy, macro-F1 (classes present in ``y_true``), per-class table, confusion matrix.

    Returns a dict with ``n_cells``, ``accuracy``, ``macro_f1``, ``unknown_rate`` (fraction of
    predictions equal to ``unknown_label``), ``per_class`` (DataFrame indexed by true class:
    precision, recall, f1, support, n_predicted) and ``confusion`` (DataFrame, rows = true
    class, columns = predicted class, ``unknown_label`` last when it occurs).

    With ``known_classes`` (the reference's classes) it adds ``accuracy_known``: accuracy on the
    cells whose true class the reference has, and ``novel_unknown_rate``: the share of cells of
    query-only classes called ``unknown_label`` (``None`` when the query has none).
    """
    t = np.asarray(y_true, dtype=object).astype(str)
    p = np.asarray(y_pred, dtype=object).astype(str)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    if t.size == 0:
        raise ValueError("no cells to evaluate")
    truth_classes = sorted(set(t))
    pred_only = sorted(set(p) - set(truth_classes) - {unknown_label})
    columns = truth_classes + pred_only + ([unknown_label] if unknown_label in set(p) else [])

    prec, rec, f1, support = precision_recall_fscore_support(t, p, labels=truth_classes, zero_division=0)
    n_pred = pd.Series(p).value_counts()
    per_class = pd.DataFrame(
        {
            "precision": prec,
            "recall": rec,
            "f1": f1,
            "support": support.astype(int),
            "n_predicted": [int(n_pred.get(c, 0)) for c in truth_classes],
        },
        index=pd.Index(truth_classes, name="class"),
    )
    cm = confusion_matrix(t, p, labels=columns)[: len(truth_classes)]
    confusion = pd.DataFrame(
        cm, index=pd.Index(truth_classes, name="true"), columns=pd.Index(columns, name="predicted")
    )
    extra: dict[str, Any] = {}
    if known_classes is not None:
        known = np.isin(t, np.asarray(list(known_classes), dtype=object).astype(str))
        extra["accuracy_known"] = float(np.mean(t[known] == p[known])) if known.any() else None
        extra["novel_unknown_rate"] = float(np.mean(p[~known] == unknown_label)) if (~known).any() else None
        extra["n_cells_novel"] = int((~known).sum())
    return {
        "n_cells": int(t.size),
        "n_classes_in_truth": len(truth_classes),
        "accuracy": float(accuracy_score(t, p)),
        "macro_f1": float(f1_score(t, p, labels=truth_classes, average="macro", zero_division=0)),
        "unknown_rate": float(np.mean(p == unknown_label)),
        "per_class": per_class,
        "confusion": confusion,
        **extra,
    }


def summary_dict(result: dict[str, Any]) -> dict[str, Any]:
    """The JSON-serialisable part of :func:`evaluate` (per-class F1 as a plain dict)."""
    out = {k: v for k, v in result.items() if k not in ("per_class", "confusion")}
    out["per_class_f1"] = {str(k): float(v) for k, v in result["per_class"]["f1"].items()}
    return out
