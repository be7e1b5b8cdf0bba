"""Stage 2 on the real Granja 2019 BMMC pair (reference BMMC_D6T1 -> query BMMC_D5T1).

The package's steps end to end (convert, prepare with all peaks, LSI, annotate); the full
numbers are in benchmarks/results/stage2_granja.md (benchmarks/stage2_granja.py).
"""

from __future__ import annotations

import warnings

import pytest

pytestmark = pytest.mark.realdata

LABEL = "BioClassification"


@pytest.fixture(scope="module")
def granja_lsi(shared_data, tmp_path_factory):
    from seqalignatac.io.convert import convert
    from seqalignatac.models.stage1.lsi import lsi
    from seqalignatac.pp.mapping import prepare

    data = shared_data / "granja2019_bmmc_hemato"
    donors = tmp_path_factory.mktemp("granja")
    convert(
        data / "counts_peaks_x_cells.mtx.gz",
        donors,
        peaks=data / "peaks.bed",
        cells=data / "cells.tsv",
        split_by="Group",
    )
    acc, _ = prepare(
        donors / "BMMC_D6T1.h5ad", donors / "BMMC_D5T1.h5ad", LABEL, query_labels_key=LABEL, min_peak_frac=0.0
    )
    cells, _ = lsi(acc)
    return cells


def test_granja_gda_and_knn(granja_lsi):
    from seqalignatac.metrics import evaluate
    from seqalignatac.models.stage2 import annotate

    warnings.simplefilter("ignore", UserWarning)
    scores = {}
    for method in ("gda", "knn"):
        # One thread: on a shared 2-core machine two torch threads are several times slower.
        q, s = annotate(granja_lsi, method=method, threads=1, progress=False)
        r = evaluate(q.obs[LABEL].astype(str), q.obs["seqalignatac_best_label"].astype(str))
        scores[method] = (r["accuracy"], r["macro_f1"])
        assert q.n_obs == 3790 and len(s["classes"]) == 16
        assert s["unknown_rate"] < 0.3
    # Far above chance (16 classes) for both; the exact numbers are the benchmark's business.
    assert scores["gda"][0] > 0.6 and scores["gda"][1] > 0.45, scores
    assert scores["gda"][0] > scores["knn"][0], scores
    assert scores["knn"][0] > 0.55 and scores["knn"][1] > 0.35, scores
