"""The Unknown call: robust batch shift, reference units, query inlier fit, end-to-end rates."""

from __future__ import annotations

import numpy as np
import pytest
from test_stage2 import TINY, make_cells

from seqalignatac.models.stage2.api import annotate_full
from seqalignatac.models.stage2.unknown import (
    call_unknown,
    class_density,
    class_mahalanobis,
    distance_scores,
    inlier_fit,
    robust_shift,
    smooth_scores,
)


def test_robust_shift_removes_batch_not_composition():
    rng = np.random.default_rng(0)
    centers = np.array([[10.0, 0.0], [0.0, 10.0]])
    ry = np.repeat([0, 1], 200)
    rx = centers[ry] + rng.normal(0, 0.1, (400, 2))
    qy = np.repeat([0, 1], [360, 40])  # a very different class mix than the reference
    shift = np.array([3.0, -2.0])
    qx = centers[qy] + shift + rng.normal(0, 0.1, (400, 2))
    moved = robust_shift(qx, qy, rx, ry)
    assert np.abs(moved.mean(0) - (centers[qy]).mean(0)).max() < 0.05
    # Mean-centering (the previous rule) would have moved the query by the composition difference too.
    naive = qx - qx.mean(0) + rx.mean(0)
    assert np.abs(naive[qy == 0].mean(0) - centers[0]).max() > 3


def test_mahalanobis_weighs_the_directions_a_class_keeps_fixed():
    rng = np.random.default_rng(0)
    # Two classes on the unit circle's neighbourhood in 3-D, each spread along z and tight along y.
    y = np.repeat([0, 1], 500)
    centre = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    x = centre[y] + rng.normal(0, 1, (1000, 3)) * np.array([0.01, 0.01, 0.2])
    for prior in (np.inf, 1000.0, 0.0):  # pooled covariance only, the default mix, the class's own only
        means, factors, ids = class_density(x, y, prior)
        assert list(ids) == [0, 1] and means.shape == (2, 3)
        tight = np.array([[1.0, 0.2, 0.0]])  # off class 0 along y, which class 0 keeps fixed
        loose = np.array([[1.0, 0.0, 0.2]])  # the same step along z, where class 0 varies
        d_tight, d_loose = (
            class_mahalanobis(tight, means, factors)[0, 0],
            class_mahalanobis(loose, means, factors)[0, 0],
        )
        assert d_tight > 20 * d_loose, prior
    # Equal to (x - m)' S^-1 (x - m) on the unit-length rows, S = class 0's own covariance (prior 0).
    u = (tight / np.linalg.norm(tight))[0]
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    r = xn[y == 0] - xn[y == 0].mean(0)
    diff = u - means[0]
    assert d_tight == pytest.approx(float(diff @ np.linalg.inv(r.T @ r / r.shape[0]) @ diff), rel=1e-6)


def test_inlier_fit_ignores_a_far_tail():
    rng = np.random.default_rng(1)
    clean = rng.normal(0.0, 1.0, 10000)
    mu, sd = inlier_fit(clean)
    assert abs(mu) < 0.05 and abs(sd - 1.0) < 0.05
    v = np.concatenate([rng.normal(0.0, 1.0, 8000), rng.normal(8.0, 0.5, 2000)])  # 20% far outliers
    mu, sd = inlier_fit(v)
    assert abs(mu) < 0.3 and abs(sd - 1.0) < 0.15  # a bounded bias...
    assert v.mean() > 1.5 and v.std() > 3  # ...where mean and sd are ruined
    # so the 2.33-sd point still separates the two groups.
    assert (v[8000:] > mu + 2.33 * sd).mean() > 0.99 and (v[:8000] > mu + 2.33 * sd).mean() < 0.03


def test_distance_threshold_follows_query_spread_and_respects_reference_floor():
    rng = np.random.default_rng(2)
    ref = np.exp(rng.normal(0, 0.1, 2000))
    wide = np.exp(rng.normal(0.3, 0.3, 5000))  # a noisier, farther query with no novel type
    conf = np.ones(wide.size)
    flags, info = call_unknown("distance", 0.01, conf, np.ones(10), wide, ref)
    assert flags.mean() < 0.02  # the previous rule (reference quantile x median ratio) flagged ~13% here
    assert info["distance_threshold"] >= info["distance_reference_floor"]
    tight = np.exp(rng.normal(-1.0, 0.05, 5000))  # closer than any reference cell: the floor wins
    flags, info = call_unknown("distance", 0.01, conf, np.ones(10), tight, ref)
    assert not flags.any() and info["distance_threshold"] == pytest.approx(info["distance_reference_floor"])
    flags, _ = call_unknown("distance", 0.0, conf, np.ones(10), wide, ref)
    assert not flags.any()


def test_distance_scores_in_class_units():
    c = make_cells(n_ref=400, n_query=300, seed=5)
    x = c.obsm["X_seqalignatac"]
    ref = (c.obs["domain"] == "reference").to_numpy()
    y = np.array([int(v[4:]) for v in c.obs["label"]])
    xr, yr, xq, yq = x[ref], y[ref], x[~ref], y[~ref]
    held = np.arange(yr.size) % 10 == 0
    qd, rd = distance_scores(xq, yq, xr[held], yr[held], xr[~held], yr[~held])
    assert qd.shape == (300,) and rd.shape == (int(held.sum()),)
    # Reference units: a held-out reference cell scores about 1 (best class, so a little under).
    assert 0.7 < np.median(rd) < 1.05
    # After the robust shift the (same-type) query sits about as close as the reference does.
    assert 0.7 < np.median(qd) < 1.6


@pytest.mark.parametrize("method", ["gda", "knn"])
def test_left_out_type_unknown_and_few_false_unknowns(method):
    c = make_cells(drop=0, seed=1)
    res = annotate_full(c, method=method, config=TINY, progress=False)
    q = res.query
    novel = (q.obs["label"] == "type0").to_numpy()
    right = (q.obs["label"] == q.obs["seqalignatac_best_label"]).to_numpy()
    unk = q.obs["seqalignatac_unknown"].to_numpy()
    assert unk[novel].mean() > 0.85, unk[novel].mean()
    assert unk[~novel & right].mean() < 0.03, unk[~novel & right].mean()
    info = res.summary["unknown"]
    assert info["quantile"] == 0.02
    # Default: the neighbourhood test alone (K 15, 0.005, floor 1 per-cell sd).
    assert info["smooth_k"] == 15 and info["smooth_quantile"] == 0.005 and info["distance_quantile"] == 0.0
    assert info["smooth_floor_sd"] == 1.0


def test_no_novel_type_few_unknowns():
    # No type is left out: an Unknown is false unless the arg-max label is wrong too (kNN gets 4% of
    # seed 1 wrong).  The previous rule flagged 6-12% on these.
    for seed in (1, 4):
        q = annotate_full(make_cells(seed=seed), method="knn", progress=False).query
        unk = q.obs["seqalignatac_unknown"].to_numpy()
        right = (q.obs["label"] == q.obs["seqalignatac_best_label"]).to_numpy()
        assert unk.mean() < 0.06, (seed, unk.mean())
        assert unk[right].mean() < 0.03, (seed, unk[right].mean())


def _noisy_novel(seed=0, n_in=1800, n_novel=200, dim=8):
    """Query embedding with a separate novel group whose per-cell scores overlap the inliers' a lot."""
    rng = np.random.default_rng(seed)
    x = np.vstack(
        [rng.normal(0, 1, (n_in, dim)) + 6 * np.eye(dim)[0], rng.normal(0, 1, (n_novel, dim)) + 6 * np.eye(dim)[1]]
    )
    logs = np.concatenate([rng.normal(0.0, 0.5, n_in), rng.normal(0.9, 0.5, n_novel)])
    novel = np.arange(n_in + n_novel) >= n_in
    return x, np.exp(logs), novel


def test_smooth_scores_average_noise_within_neighbourhoods():
    x, scores, novel = _noisy_novel()
    sm = smooth_scores(x, scores, k=30)
    assert sm.shape == scores.shape
    # Per-cell log scores have sd 0.5 within each group; smoothing shrinks it and keeps the group gap.
    assert np.log(sm[~novel]).std() < 0.2 and np.log(sm[novel]).std() < 0.2
    assert np.median(np.log(sm[novel])) - np.median(np.log(sm[~novel])) > 0.7
    assert np.allclose(smooth_scores(x, scores, k=1), scores)  # k 1: the cell itself
    inf = scores.copy()
    inf[novel] = np.inf  # a predicted class with no training cell: stays inf after smoothing
    assert np.isinf(smooth_scores(x, inf, k=30)[novel]).mean() > 0.95


def test_neighbourhood_test_catches_a_noisy_novel_group():
    x, scores, novel = _noisy_novel()
    conf, ref = np.ones(scores.size), np.exp(np.random.default_rng(1).normal(0, 0.4, 1000))
    per_cell, _ = call_unknown("distance", 0.01, conf, np.ones(10), scores, ref)
    assert per_cell[novel].mean() < 0.4  # the per-cell test alone misses most of the novel group
    sm = smooth_scores(x, scores, k=30)
    flags, info = call_unknown("distance", 0.02, conf, np.ones(10), scores, ref, sm, 0.005, 0.01)
    assert flags[novel].mean() > 0.9, flags[novel].mean()
    assert flags[~novel].mean() < 0.03, flags[~novel].mean()
    assert info["distance_quantile"] == 0.01 and info["smooth_threshold"] > 0
    assert (flags | per_cell).sum() == flags.sum()  # OR-ed: every per-cell call is kept
    # No novel group: the neighbourhood test adds almost nothing.
    keep = ~novel
    f0, _ = call_unknown(
        "distance",
        0.02,
        conf[keep],
        np.ones(10),
        scores[keep],
        ref,
        smooth_scores(x[keep], scores[keep], 30),
        0.005,
        0.01,
    )
    assert f0.mean() < 0.03, f0.mean()


def test_smooth_option_end_to_end_reproducible_and_off_switch():
    c = make_cells(drop=3, seed=2)
    runs = [annotate_full(c, method="knn", progress=False, seed=7) for _ in range(2)]
    a, b = (r.query.obs["seqalignatac_unknown"].to_numpy() for r in runs)
    assert np.array_equal(a, b)  # same seed, same calls
    novel = (runs[0].query.obs["label"] == "type3").to_numpy()
    assert a[novel].mean() > 0.9 and a[~novel].mean() < 0.1
    off = annotate_full(c, method="knn", progress=False, seed=7, unknown_smooth=0)
    info = off.summary["unknown"]
    assert "smooth_threshold" not in info and info["distance_quantile"] == 0.02  # the per-cell rule alone
    explicit = annotate_full(c, method="knn", progress=False, seed=7, unknown_quantile=0.02)
    assert explicit.summary["unknown"]["distance_quantile"] == 0.02  # an explicit quantile wins
    with pytest.raises(Exception, match="invalid value for unknown_smooth"):
        annotate_full(c, method="knn", progress=False, unknown_smooth=-1)


@pytest.mark.parametrize(
    "setting",
    [
        ("unknown_smooth = -1"),
        ("unknown_smooth_quantile = 1.5"),
        ("unknown_cluster_z = -1"),
        ("--unknown-quantile 1"),  # the one Unknown setting that is a command-line option
    ],
)
def test_cli_bad_unknown_settings_are_one_line_errors(tmp_path, setting):
    from cli_helpers import assert_one_line_error
    from click.testing import CliRunner

    from seqalignatac.cli.main import cli

    path = tmp_path / "c.h5ad"
    make_cells(n_ref=60, n_query=60).write_h5ad(path)
    args = ["annotate", "--cells", str(path), "--outdir", str(tmp_path / "o"), "--method", "knn"]
    if setting.startswith("--"):
        args += setting.split()
        needles = [setting.split()[0]]
    else:
        toml = tmp_path / "settings.toml"
        toml.write_text(f"[annotate]\n{setting}\n")
        args += ["--config", str(toml)]
        needles = [str(toml), "[annotate]", setting.split()[0]]
    r = CliRunner().invoke(cli, args)
    assert_one_line_error(r, *needles)
    assert not (tmp_path / "o" / "predictions.csv").exists()


def test_leiden_clusters_and_the_cluster_table_name_the_unexplained_population():
    from seqalignatac.models.stage2.clusters import cluster_table, leiden_clusters, query_graph

    rng = np.random.default_rng(3)
    centres = 8 * np.eye(6)[:3]  # three separate groups of 150, 100 and 60 cells
    sizes = [150, 100, 60]
    x = np.vstack([c + rng.normal(0, 1, (n, 6)) for c, n in zip(centres, sizes)])
    group = np.repeat([0, 1, 2], sizes)
    graph = query_graph(x, 15)
    clusters = leiden_clusters(x, seed=0, neighbours=graph)
    assert np.array_equal(clusters, leiden_clusters(x, seed=0))  # the shared table changes nothing
    # Each group is its own cluster (up to splits inside a group), numbered by size.
    for g in range(3):
        assert len(set(clusters[group == g]) & set(clusters[group != g])) == 0
    assert np.bincount(clusters)[0] == np.bincount(clusters).max()
    best = np.array(["a", "b", "b"])[group]
    novelty = np.where(group == 2, 5.0, 0.0) + rng.normal(0, 0.3, group.size)
    flags = novelty > 2.576
    table = cluster_table(clusters, best, flags, novelty, 2.576)
    assert table["n_cells"].sum() == group.size
    novel = table[~table["explained"]]
    assert set(novel["query_cluster"]) == set(clusters[group == 2])
    assert (novel["unknown_share"] == 1.0).all() and (novel["median_novelty"] > 4).all()
    assert (table.loc[table["explained"], "unknown_share"] == 0).all()


def _offset_groups(seed=0, novel_log=1.0):
    """Three known groups whose scores sit at different levels (type-specific batch effects) and one
    small novel group just above the highest: each a separate blob of the query embedding."""
    rng = np.random.default_rng(seed)
    levels, sizes = [-0.6, 0.0, 0.6, novel_log], [400, 400, 400, 80]
    x = np.vstack([8 * np.eye(6)[g] + rng.normal(0, 1, (n, 6)) for g, n in enumerate(sizes)])
    group = np.repeat(np.arange(4), sizes)
    scores = np.exp(np.concatenate([rng.normal(lv, 0.3, n) for lv, n in zip(levels, sizes)]))
    return x, scores, group


def test_cluster_test_catches_a_group_the_neighbourhood_test_misses():
    from seqalignatac.models.stage2.clusters import leiden_clusters, query_graph
    from seqalignatac.models.stage2.unknown import CLUSTER_MIN_CELLS, cluster_flags, unknown_flags, unknown_reasons

    x, scores, group = _offset_groups()
    novel = group == 3
    graph = query_graph(x, 15)
    sm = smooth_scores(x, scores, 15, neighbours=graph)
    clusters = leiden_clusters(x, neighbours=graph)
    conf, ref = np.ones(scores.size), scores[group < 3]
    alone, _ = call_unknown("distance", 0.02, conf, np.ones(10), scores, ref, sm, 0.005, 0.0)
    assert alone[novel].mean() < 0.2  # the known groups' spread lifts the neighbourhood threshold
    flags, info = call_unknown("distance", 0.02, conf, np.ones(10), scores, ref, sm, 0.005, 0.0, None, clusters, 1.5)
    assert flags[novel].mean() > 0.9 and flags[~novel].mean() < 0.02, (flags[novel].mean(), flags[~novel].mean())
    assert info["cluster_z"] == 1.5 and info["cluster_min_cells"] == CLUSTER_MIN_CELLS
    assert np.array_equal(unknown_flags(info, conf, scores, sm, clusters), flags)  # reproducible from info
    reasons = unknown_reasons(flags, info, conf, scores, sm)
    assert set(reasons[flags & ~alone]) == {"far_cluster"} and set(reasons[alone]) <= {"far_neighbourhood"}
    # 0 turns the test off; a cluster smaller than CLUSTER_MIN_CELLS is never called by it.
    off, off_info = call_unknown("distance", 0.02, conf, np.ones(10), scores, ref, sm, 0.005, 0.0, None, clusters, 0)
    assert np.array_equal(off, alone) and "cluster_z" not in off_info
    tiny = np.where(novel, clusters.max() + 1 + np.arange(scores.size) % 8, clusters)  # clusters of 10 cells
    assert not cluster_flags(info, scores, tiny)[novel].any()


def test_cluster_test_end_to_end_setting():
    from seqalignatac import keys

    c = make_cells(drop=1, seed=3)
    on = annotate_full(c, method="knn", progress=False, seed=3)
    off = annotate_full(c, method="knn", progress=False, seed=3, unknown_cluster_z=0)
    assert on.summary["unknown"]["cluster_z"] == 1.5 and "cluster_z" not in off.summary["unknown"]
    p_on, p_off = on.predictions, off.predictions
    flagged_on, flagged_off = p_on[keys.IS_UNKNOWN].to_numpy(), p_off[keys.IS_UNKNOWN].to_numpy()
    assert flagged_off.mean() > 0.1  # the left-out type
    assert (flagged_off <= flagged_on).all()  # OR-ed: the cluster test only adds calls
    by_cluster = p_on[keys.UNKNOWN_REASON].to_numpy() == "far_cluster"
    assert np.array_equal(by_cluster, flagged_on & ~flagged_off)
    with pytest.raises(Exception, match="invalid value for unknown_cluster_z"):
        annotate_full(c, method="knn", progress=False, unknown_cluster_z=-1)
