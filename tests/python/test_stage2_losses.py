"""Stage-2 options for rare classes: class weights, class-size-scaled kNN votes, the logistic-regression mix."""

from __future__ import annotations

import numpy as np
import pytest
from test_stage2 import make_cells
from test_stage2_extensions import TINY

from seqalignatac.errors import InputError
from seqalignatac.models.stage2.api import annotate_full
from seqalignatac.models.stage2.options import config_with
from seqalignatac.models.stage2.train import class_weights
from seqalignatac.models.stage2.transfer import knn_transfer


@pytest.fixture(scope="module")
def cells():
    return make_cells(n_ref=300, n_query=300)


def test_class_weights_modes():
    counts = np.array([100.0, 25.0, 0.0, 4.0])
    bal = class_weights(counts, "balanced")
    assert bal[2] == 0 and np.allclose(bal[[0, 1, 3]] * counts[[0, 1, 3]], bal[0] * 100)  # inverse frequency
    assert np.allclose(class_weights(counts, "sqrt"), np.sqrt(bal))
    assert class_weights(counts, "none") is None
    with pytest.raises(ValueError, match="class_weight"):
        class_weights(counts, "focal")


def test_knn_votes_rescaled_by_class_size():
    rng = np.random.default_rng(0)
    xr = np.vstack([rng.normal(0, 1, (90, 2)), rng.normal(0.5, 1, (10, 2))]).astype(np.float32)
    yr = np.array([0] * 90 + [1] * 10)
    xq = rng.normal(0.25, 1, (50, 2)).astype(np.float32)
    mask, held = np.ones(100, dtype=bool), np.zeros(100, dtype=bool)
    plain, _, _ = knn_transfer(xr, yr, mask, held, xq, 2, 15, 1)
    bal, _, _ = knn_transfer(xr, yr, mask, held, xq, 2, 15, 1, vote_power=1.0)
    sq, _, _ = knn_transfer(xr, yr, mask, held, xq, 2, 15, 1, vote_power=0.5)
    assert np.allclose(bal.sum(1), 1, atol=1e-5) and np.allclose(sq.sum(1), 1, atol=1e-5)
    expect = plain * np.array([1 / 90, 1 / 10])
    assert np.allclose(bal, expect / expect.sum(1, keepdims=True), atol=1e-5)
    assert (bal[:, 1] >= sq[:, 1] - 1e-6).all() and (sq[:, 1] >= plain[:, 1] - 1e-6).all()


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"class_weight": "focal"}, "class_weight must be one of"),
        ({"knn_vote_power": 1.5}, "for knn_vote_power"),
        ({"knn_mix_k": -1}, "for knn_mix_k"),
        ({"knn_mix": 0.5, "linear_mix": 0.6}, "linear_mix must be in"),
        ({"linear_c": 0.0}, "for linear_c"),
        ({"alpha": float("nan")}, "for alpha"),
    ],
)
def test_bad_loss_option_values_are_clear_errors(cells, bad, match):
    with pytest.raises(InputError, match=match):
        annotate_full(cells, config=config_with(**{**TINY, **bad}), progress=False)


def test_knn_mix_k_sets_the_mixed_knn(cells):
    # With the whole weight on kNN, the mixed probabilities are --method knn's with knn_k = knn_mix_k.
    kw = {"seed": 0, "progress": False, "unknown": "none"}
    mixed = annotate_full(
        cells, config=config_with(**{**TINY, "epochs": 5, "knn_mix": 1.0, "knn_mix_k": 7, "knn_vote_power": 0.0}), **kw
    )
    knn = annotate_full(cells, method="knn", knn_k=7, **kw)
    assert np.allclose(mixed.query.obsm["seqalignatac_proba"], knn.query.obsm["seqalignatac_proba"], atol=1e-6)


def test_linear_mix_is_a_balanced_logistic_regression(cells):
    from sklearn.linear_model import LogisticRegression

    kw = {"seed": 0, "progress": False, "unknown": "none", "calibration_fraction": 0.0}
    cfg = {**TINY, "epochs": 5}
    only = annotate_full(cells, config=config_with(**{**cfg, "linear_mix": 1.0, "linear_c": 0.5}), **kw)
    ref = (cells.obs["domain"] == "reference").to_numpy()
    x, y = cells.obsm["X_seqalignatac"], cells.obs["label"].to_numpy()
    lr = LogisticRegression(C=0.5, class_weight="balanced", max_iter=2000).fit(x[ref], y[ref])
    assert list(lr.classes_) == list(only.summary["classes"])
    assert np.allclose(only.query.obsm["seqalignatac_proba"], lr.predict_proba(x[~ref]), atol=1e-5)
    # Three-way mix: (1 - w - v) GDA + w kNN + v logistic regression.
    gda = annotate_full(cells, config=config_with(**cfg), **kw).query.obsm["seqalignatac_proba"]
    knn = annotate_full(cells, config=config_with(**{**cfg, "knn_mix": 1.0}), **kw).query.obsm["seqalignatac_proba"]
    mix = annotate_full(cells, config=config_with(**{**cfg, "knn_mix": 0.3, "linear_mix": 0.2, "linear_c": 0.5}), **kw)
    expect = 0.5 * gda + 0.3 * knn + 0.2 * lr.predict_proba(x[~ref])
    assert np.allclose(mix.query.obsm["seqalignatac_proba"], expect, atol=1e-5)


def test_neighbour_votes_match_exact_knn_and_are_used_for_large_references(monkeypatch):
    from sklearn.neighbors import KNeighborsClassifier

    from seqalignatac.models.stage2 import transfer as api
    from seqalignatac.models.stage2.graphs import l2_normalize, neighbour_votes

    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, 8)) * 3
    y = rng.integers(0, 4, 3000)
    x = centers[y] + rng.normal(size=(3000, 8))
    base, yb, pts = x[:2000], y[:2000], x[2000:]
    exact = KNeighborsClassifier(15).fit(l2_normalize(base), yb).predict_proba(l2_normalize(pts))
    # nprobe >= the number of lists makes the IVF search exhaustive: the same votes as sklearn.
    assert np.allclose(neighbour_votes(base, yb, pts, 15, 4, nprobe=10_000), exact, atol=1e-6)
    # Above EXACT_MAX_CELLS training cells, knn_transfer switches to the faiss votes.
    train = np.ones(2000, dtype=bool)
    held = np.zeros(2000, dtype=bool)
    small, _, _ = api.knn_transfer(base, yb, train, held, pts, 4, 15, 1)
    monkeypatch.setattr(api, "EXACT_MAX_CELLS", 100)
    large, held_p, _ = api.knn_transfer(base, yb, train, held, pts, 4, 15, 1)
    assert held_p.shape == (0, 4) and np.allclose(large.sum(1), 1)
    assert (large.argmax(1) == small.argmax(1)).mean() > 0.97
