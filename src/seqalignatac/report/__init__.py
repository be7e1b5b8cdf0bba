"""The HTML report: one self-contained file per pair, an index over pairs, a MultiQC table.

``build_report(pair_id, prepare_dir, train_dir, annotate_dir, outdir)`` reads the published step
folders (docs/design.md) and writes ``<pair_id>_report.html`` and ``<pair_id>_mqc.tsv``;
``build_index(outdir)`` writes ``OUTDIR/index.html``.  Heavy imports happen on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["build_report", "build_index"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from seqalignatac.report import html

        return getattr(html, name)
    raise AttributeError(name)
