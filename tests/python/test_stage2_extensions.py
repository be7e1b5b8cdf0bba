"""Stage-2 extension options: input normalization, self-training, ensembling, kNN mixing."""

from __future__ import annotations

import numpy as np
import pytest
from test_stage2 import make_cells

from seqalignatac.errors import InputError
from seqalignatac.stage2.api import annotate_full, config_with
from seqalignatac.stage2.train import normalize_inputs, pseudo_labels

TINY = {"hidden": 32, "epochs": 40, "source_depth": 1, "target_depth": 2, "ensemble": 1, "knn_mix": 0.0,
        "linear_mix": 0.0}


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_ref=300, n_query=300)


def test_normalize_inputs_uses_reference_statistics():
    rng = np.random.default_rng(0)
    xr, xq = rng.normal(3, 2, (200, 4)), rng.normal(5, 2, (100, 4))
    zr, zq = normalize_inputs(xr, xq, "zscore")
    assert np.allclose(zr.mean(0), 0, atol=1e-5) and np.allclose(zr.std(0), 1, atol=1e-4)
    assert np.allclose(zq, (xq - xr.mean(0)) / xr.std(0), atol=1e-4)  # the query keeps its shift
    _, lq = normalize_inputs(xr, xq, "l2")
    assert np.allclose(np.linalg.norm(lq, axis=1), 1, atol=1e-5)
    same_r, _ = normalize_inputs(xr, xq, "none")
    assert np.allclose(same_r, xr)
    with pytest.raises(ValueError, match="input_norm"):
        normalize_inputs(xr, xq, "pca")


def test_pseudo_labels_are_class_balanced_and_confident():
    proba = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8], [0.45, 0.55]])
    out = pseudo_labels(proba, 0.5)
    # Class 0 has 3 cells: the 2 most confident kept; class 1 has 2 cells: the more confident kept.
    assert out.tolist() == [0, -1, 0, 1, -1]
    assert (pseudo_labels(proba, 1.0) == proba.argmax(1)).all()


@pytest.mark.parametrize(
    "extra",
    [{"input_norm": "l2+zscore"}, {"self_train_epochs": 10}, {"ensemble": 2}, {"knn_mix": 0.5},
     {"knn_mix": 0.5, "knn_space": "hidden"},
     # options for rare classes and the unlabeled query (test_stage2_losses.py tests their parts)
     {"label_smoothing": 0.1}, {"logit_adjust": 1.0, "class_weight": "none"}, {"class_weight": "sqrt"},
     {"im_weight": 0.3}, {"knn_mix": 0.6, "knn_vote_power": 0.5, "knn_mix_k": 30},
     {"self_train_epochs": 10, "pseudo_agree": True, "knn_mix": 0.3}],
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
    if extra.get("self_train_epochs"):
        assert len(a.train.curve) == TINY["epochs"] + 10 and a.train.curve[-1]["pseudo_loss"] > 0
    if extra.get("im_weight"):
        assert a.train.curve[-1]["im_loss"] < 0


def test_ensemble_averages_models(cells):
    # No held-out cells, so the seed changes only the network's initialization and dropout.
    kw = {"calibration_fraction": 0.0, "progress": False}
    one = annotate_full(cells, config=config_with(**TINY), seed=0, **kw).query.obsm["seqalignatac_proba"]
    two = annotate_full(cells, config=config_with(**{**TINY, "ensemble": 2}), seed=0, **kw)
    other = annotate_full(cells, config=config_with(**TINY), seed=1, **kw).query.obsm["seqalignatac_proba"]
    assert np.allclose(two.query.obsm["seqalignatac_proba"], (one + other) / 2, atol=1e-5)


@pytest.mark.parametrize(
    "bad, match",
    [({"input_norm": "pca"}, "--input-norm"), ({"knn_mix": 1.5}, "--knn-mix"), ({"ensemble": 0}, "--ensemble"),
     ({"knn_space": "pca"}, "--knn-space"),
     ({"self_train_epochs": -1}, "--self-train-epochs"), ({"pseudo_fraction": 0.0}, "--pseudo-fraction")],
)
def test_bad_extension_values_are_clear_errors(cells, bad, match):
    with pytest.raises(InputError, match=match):
        annotate_full(cells, config=config_with(**{**TINY, **bad}), progress=False)
