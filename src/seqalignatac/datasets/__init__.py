"""Datasets: :func:`simulate` writes a synthetic genome, a labeled reference and a query with a
batch effect (and optionally query-only cell types) for tests, demos and benchmarks."""

from __future__ import annotations

from seqalignatac.datasets.synthetic import simulate

__all__ = ["simulate"]
