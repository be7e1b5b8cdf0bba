"""Stage-2 extension options: ensembling, kNN mixing, class weights."""

from __future__ import annotations

import numpy as np
import pytest
from test_stage2 import make_cells

from seqalignatac.errors import InputError
from seqalignatac.models.stage2.api import annotate_full
from seqalignatac.models.stage2.options import config_with

TINY = {
    "hidden": 32,
    "epochs": 40,
    "source_depth": 1,
    "target_depth": 2,
    "ensemble": 1,
    "knn_mix": 0.0,
    "linear_mix": 0.0,
}


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_ref=300, n_query=300)


@pytest.mark.parametrize(
    "extra",
    [
        {"ensemble": 2},
        {"knn_mix": 0.5},
        {"class_weight": "sqrt"},
        {"class_weight": "none"},
        {"knn_mix": 0.6, "knn_vote_power": 0.5, "knn_mix_k": 30},
    ],
)
def test_extensions_run_learn_and_are_reproducible(cells, extra):
    cfg = config_with(**{**TINY, **extra})
    a = annotate_full(cells, config=cfg, seed=3, progress=False)
    b = annotate_full(cells, config=cfg, seed=3, progress=False)
    pa = a.query.obsm["seqalignatac_proba"]
    assert np.array_equal(pa, b.query.obsm["seqalignatac_proba"])
    assert np.allclose(pa.sum(1), 1, atol=1e-4)
    acc = float((a.query.obs["label"] == a.query.obs["seqalignatac_best_label"]).mean())
    assert acc > 0.8, (extra, acc)
    assert len(a.train.curve) == TINY["epochs"] and len(a.train.models) == cfg.ensemble


def test_ensemble_averages_models(cells):
    # No held-out cells, so the seed changes only the network's initialization and dropout.
    kw = {"calibration_fraction": 0.0, "progress": False}
    one = annotate_full(cells, config=config_with(**TINY), seed=0, **kw).query.obsm["seqalignatac_proba"]
    two = annotate_full(cells, config=config_with(**{**TINY, "ensemble": 2}), seed=0, **kw)
    other = annotate_full(cells, config=config_with(**TINY), seed=1, **kw).query.obsm["seqalignatac_proba"]
    assert np.allclose(two.query.obsm["seqalignatac_proba"], (one + other) / 2, atol=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"knn_mix": 1.5}, "for knn_mix"),
        ({"ensemble": 0}, "--ensemble"),
        ({"knn_method": "annoy"}, "knn_method must be one of"),
    ],
)
def test_bad_extension_values_are_clear_errors(cells, bad, match):
    with pytest.raises(InputError, match=match):
        annotate_full(cells, config=config_with(**{**TINY, **bad}), progress=False)


def test_removed_settings_are_named_in_the_error(cells):
    with pytest.raises(InputError, match="config has no setting 'label_smoothing'"):
        annotate_full(cells, config={**TINY, "label_smoothing": 0.1}, progress=False)
