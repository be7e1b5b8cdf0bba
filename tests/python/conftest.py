"""Shared fixtures: simulated data made once per test session (small, CPU, seconds)."""

from __future__ import annotations

from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data folder beside the checkout; tests using it skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sim(tmp_path_factory) -> dict:
    """A small simulated reference/query pair with a batch effect (see seqalignatac.datasets.synthetic)."""
    from seqalignatac.datasets.synthetic import simulate

    return simulate(tmp_path_factory.mktemp("sim"), n_cells=600, n_peaks=1500, n_cell_types=4, seed=0)


@pytest.fixture(scope="session")
def prepared(sim, tmp_path_factory) -> Path:
    """`prepare` run on `sim`; returns the output folder (accessibility.h5ad, peaks.bed, ...)."""
    from seqalignatac.pp.mapping import run_prepare

    outdir = tmp_path_factory.mktemp("prepared")
    run_prepare(
        reference=sim["reference"],
        query=sim["query"],
        labels_key=sim["labels_key"],
        query_labels_key=sim["labels_key"],
        outdir=outdir,
    )
    return outdir
