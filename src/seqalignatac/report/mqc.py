"""MultiQC custom-content table (``<pair_id>_mqc.tsv``): one row of headline numbers per pair.

MultiQC picks up any ``*_mqc.tsv`` and reads the ``#`` comment block as YAML configuration
(https://docs.seqera.io/multiqc/custom_content).  The same file feeds the runner's index page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from seqalignatac.io.atomic import write_text
from seqalignatac.io.tables import quote, unquote

# column -> (title, description, number format)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "reference_cells": ("Ref cells", "Reference cells after prepare", "{:,.0f}"),
    "query_cells": ("Query cells", "Query cells after prepare", "{:,.0f}"),
    "shared_peaks": ("Peaks", "Peaks shared by reference and query (reference coordinates)", "{:,.0f}"),
    "query_signal_kept": (
        "Query signal kept",
        "Fraction of query accessibility that maps onto reference peaks",
        "{:,.3f}",
    ),
    "stage1_auroc": ("Stage-1 AUROC", "Held-out AUROC of the stage-1 accessibility model", "{:,.3f}"),
    "mean_confidence": ("Mean conf.", "Mean confidence of the query predictions", "{:,.3f}"),
    "unknown_rate": ("Unknown", "Fraction of query cells flagged Unknown", "{:,.3f}"),
    "unexplained_clusters": (
        "Novel clusters",
        "Query clusters the reference does not explain (likely cell types it lacks)",
        "{:,.0f}",
    ),
    "unexplained_cells": (
        "Novel-cluster cells",
        "Query cells in the clusters the reference does not explain",
        "{:,.0f}",
    ),
    "accuracy": ("Accuracy", "Accuracy against known query labels (evaluation only)", "{:,.3f}"),
    "macro_f1": ("Macro-F1", "Macro-F1 over the classes in the known query labels", "{:,.3f}"),
}
PERCENT_LIKE = {"query_signal_kept", "stage1_auroc", "mean_confidence", "unknown_rate", "accuracy", "macro_f1"}


def mqc_text(pair_id: str, row: Mapping[str, Any]) -> str:
    lines = [
        "# id: 'seqalignatac_summary'",
        "# section_name: 'seqAlignATAC'",
        "# description: 'Cell-type annotation of scATAC-seq query cells from a labeled reference: "
        "one row per reference/query pair.'",
        "# plot_type: 'table'",
        "# pconfig:",
        "#     id: 'seqalignatac_summary_table'",
        "#     title: 'seqAlignATAC summary'",
        "#     namespace: 'seqAlignATAC'",
        "# headers:",
    ]
    cols = [c for c in COLUMNS if c in row]
    for c in cols:
        title, desc, fmt = COLUMNS[c]
        lines += [
            f"#     {c}:",
            f"#         title: '{title}'",
            f"#         description: '{desc}'",
            f"#         format: '{fmt}'",
        ]
        if c in PERCENT_LIKE:
            lines += [
                "#         min: 0",
                "#         max: 1",
                "#         scale: 'RdYlGn'" if c != "unknown_rate" else "#         scale: 'Greys'",
            ]
    lines.append("\t".join(["Sample", *cols]))
    lines.append("\t".join([quote(pair_id), *(_fmt(row[c]) for c in cols)]))  # a TSV opened in a spreadsheet
    return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def write_mqc(path: str | os.PathLike, pair_id: str, row: Mapping[str, Any]) -> None:
    write_text(path, mqc_text(pair_id, row))


def read_mqc(path: str | os.PathLike) -> dict[str, Any]:
    """The data row of a ``*_mqc.tsv`` written by :func:`write_mqc` (Sample -> pair_id)."""
    df = pd.read_csv(Path(path), sep="\t", comment="#", dtype={"Sample": str})
    if df.empty:
        return {}
    row = df.iloc[0].to_dict()
    row["pair_id"] = unquote(row.pop("Sample"))
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in row.items()}
