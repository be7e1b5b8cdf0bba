"""Stage 2 on simulated cell embeddings with a batch effect (Gaussian classes, shifted query).

Stage 2's input is a cell-embedding AnnData; a Gaussian class mixture whose query copy is
displaced by a batch shift is a legitimate input and keeps these tests fast.
"""

from __future__ import annotations

import io
import json
from dataclasses import replace

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.models.stage2 import annotate
from seqalignatac.models.stage2.api import annotate_full
from seqalignatac.models.stage2.options import config_with

# One model (no ensembling) keeps the tests fast; the kNN mix stays at its default.
TINY = config_with(hidden=32, epochs=60, source_depth=1, target_depth=2, ensemble=1)


def make_cells(n_types=5, n_ref=500, n_query=500, dim=16, sep=1.6, noise=1.0, shift=5.0, seed=0, drop=None):
    """Reference classes ~ N(center, noise); query = same classes + a constant batch shift."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, sep, (n_types, dim))
    shift_vec = rng.normal(0, 1, dim)
    shift_vec *= shift / np.linalg.norm(shift_vec)

    def draw(n, s):
        y = rng.integers(0, n_types, n)
        return centers[y] + s + rng.normal(0, noise, (n, dim)), y

    xr, yr = draw(n_ref, 0.0)
    xq, yq = draw(n_query, shift_vec)
    if drop is not None:
        xr, yr = xr[yr != drop], yr[yr != drop]
    x = np.vstack([xr, xq]).astype(np.float32)
    obs = pd.DataFrame(
        {
            "domain": pd.Categorical(["reference"] * len(yr) + ["query"] * len(yq)),
            "label": [f"type{v}" for v in np.concatenate([yr, yq])],
        },
        index=[f"cell{i}" for i in range(len(x))],
    )
    a = ad.AnnData(np.zeros((len(x), 0), dtype=np.float32), obs=obs)
    a.obsm["X_seqalignatac"] = x
    a.uns["seqalignatac"] = {"labels_key": "label"}  # as prepare records it
    return a


@pytest.fixture(scope="module")
def cells():
    return make_cells()


def _acc(q):
    return float((q.obs["label"] == q.obs["seqalignatac_best_label"]).mean())


def test_gda_beats_knn_under_batch_shift(cells):
    q_gda, s_gda = annotate(cells, method="gda", config=TINY, progress=False)
    q_knn, _ = annotate(cells, method="knn", progress=False)
    acc_gda, acc_knn = _acc(q_gda), _acc(q_knn)
    assert acc_gda > acc_knn + 0.03, (acc_gda, acc_knn)
    assert acc_gda > 0.95
    # The A2GNN core alone (no kNN / logistic-regression mixing) beats kNN transfer too.
    q_core, _ = annotate(cells, method="gda", config=replace(TINY, knn_mix=0.0, linear_mix=0.0), progress=False)
    assert _acc(q_core) > acc_knn + 0.03, (_acc(q_core), acc_knn)
    # Output layout of docs/design.md.
    for key in (
        "seqalignatac_prediction",
        "seqalignatac_confidence",
        "seqalignatac_entropy",
        "seqalignatac_unknown",
        "seqalignatac_best_label",
    ):
        assert key in q_gda.obs
    assert q_gda.obs["seqalignatac_unknown"].dtype == bool
    proba = q_gda.obsm["seqalignatac_proba"]
    assert proba.shape == (q_gda.n_obs, 5) and np.allclose(proba.sum(1), 1, atol=1e-4)
    assert q_gda.uns["seqalignatac"]["classes"] == [f"type{i}" for i in range(5)]
    assert "X_seqalignatac" in q_gda.obsm and (q_gda.obs["domain"] == "query").all()
    assert s_gda["n_query"] == 500 and s_gda["unknown"]["strategy"] == "distance"


def test_left_out_type_becomes_unknown():
    c = make_cells(drop=0, seed=1)
    for method in ("gda", "knn"):
        q, s = annotate(c, method=method, config=TINY, progress=False)
        novel = (q.obs["label"] == "type0").to_numpy()
        unk = q.obs["seqalignatac_unknown"].to_numpy()
        assert unk[novel].mean() > 0.8, (method, unk[novel].mean())
        assert unk[~novel].mean() < 0.15, (method, unk[~novel].mean())
        assert (q.obs["seqalignatac_prediction"][unk] == "Unknown").all()
        assert s["unknown_rate"] == pytest.approx(unk.mean())


def test_reproducible_under_seed(cells):
    a = annotate_full(cells, method="gda", config=TINY, seed=3, progress=False)
    b = annotate_full(cells, method="gda", config=TINY, seed=3, progress=False)
    np.testing.assert_array_equal(a.query.obsm["seqalignatac_proba"], b.query.obsm["seqalignatac_proba"])
    pd.testing.assert_frame_equal(a.predictions, b.predictions)
    for k, v in a.train.model.state_dict().items():
        assert torch.equal(v, b.train.model.state_dict()[k])


# --- bad input ---------------------------------------------------------------------------


def test_no_domain_column(cells):
    c = cells.copy()
    del c.obs["domain"]
    with pytest.raises(InputError, match="no 'domain' column"):
        annotate(c, config=TINY, progress=False)


def test_bad_domain_values(cells):
    c = cells.copy()
    c.obs["domain"] = ["ref"] * c.n_obs
    with pytest.raises(InputError, match="only 'reference' and 'query'"):
        annotate(c, config=TINY, progress=False)


def test_reference_without_labels(cells):
    c = cells.copy()
    c.obs["label"] = np.where(c.obs["domain"] == "reference", None, c.obs["label"])
    with pytest.raises(InputError, match="reference has no labels"):
        annotate(c, config=TINY, progress=False)
    del c.obs["label"]
    with pytest.raises(InputError, match="no 'label' column"):
        annotate(c, config=TINY, progress=False)


def test_single_cell_class_warns_and_runs(cells):
    c = cells.copy()
    lab = c.obs["label"].astype(str).to_numpy()
    lab[0] = "lonely"  # the first cell is a reference cell
    c.obs["label"] = lab
    with pytest.warns(UserWarning, match="single cell: lonely"):
        q, s = annotate(c, method="gda", config=TINY, progress=False)
    assert "lonely" in s["classes"] and q.n_obs == 500


def test_k_larger_than_domain_is_clipped():
    c = make_cells(n_ref=40, n_query=8, n_types=2, seed=2)
    with pytest.warns(UserWarning, match="k=15 is larger than the 8 query cells allow; using k=7"):
        q, s = annotate(c, method="gda", config=TINY, progress=False)
    assert q.n_obs == 8


def test_nan_embeddings(cells):
    c = cells.copy()
    c.obsm["X_seqalignatac"][3, 2] = np.nan
    with pytest.raises(InputError, match="NaN or infinite values in 1 cells .first: 'cell3'"):
        annotate(c, config=TINY, progress=False)


def test_query_without_cells(cells):
    c = cells[cells.obs["domain"] == "reference"].copy()
    with pytest.raises(InputError, match="query has no cells"):
        annotate(c, config=TINY, progress=False)


def test_missing_embedding_key(cells):
    with pytest.raises(InputError, match="obsm has no 'X_other'"):
        annotate(cells, embedding_key="X_other", config=TINY, progress=False)


def test_cuda_without_gpu_is_a_clear_error(cells):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(InputError, match="no CUDA GPU"):
        annotate(cells, device="cuda", config=TINY, progress=False)


def test_no_calibration_cells_still_writes(cells, tmp_path):
    from seqalignatac.models.stage2.outputs import write_outputs

    res = annotate_full(cells, method="knn", calibration_fraction=0.0, progress=False)
    assert res.summary["unknown_rate"] == 0.0 and res.summary["held_out_reference_accuracy"] is None
    summary = write_outputs(res, tmp_path / "o", "label")
    assert "query_annotated.h5ad" in summary["outputs"]


# --- CLI ---------------------------------------------------------------------------------


def test_cli_annotate_writes_design_layout_and_evaluate_agrees(cells, tmp_path):
    path = tmp_path / "cell_embeddings.h5ad"
    cells.write_h5ad(path)
    out = tmp_path / "annotate"
    settings = tmp_path / "settings.toml"
    settings.write_text("[annotate]\nhidden = 32\nepochs = 40\nsource_depth = 1\ntarget_depth = 2\n")
    r = CliRunner().invoke(
        cli,
        [
            "annotate",
            "--cells",
            str(path),
            "--outdir",
            str(out),
            "--seed",
            "1",
            "--config",
            str(settings),
            "--no-progress",
            "--threads",
            "1",
        ],
    )
    assert r.exit_code == 0, r.output
    for name in (
        "predictions.csv",
        "query_clusters.csv",
        "query_annotated.h5ad",
        "metrics.json",
        "per_class.csv",
        "confusion_matrix.csv",
        "model/networks.safetensors",
        "annotate_summary.json",
    ):
        assert (out / name).is_file(), name
    pred = pd.read_csv(out / "predictions.csv")
    assert list(pred.columns) == [
        "cell_id",
        "predicted_label",
        "confidence",
        "entropy",
        "is_unknown",
        "unknown_reason",
        "best_label",
        "top1_label",
        "top1_prob",
        "top2_label",
        "top2_prob",
        "top3_label",
        "top3_prob",
        "novelty",
        "query_cluster",
    ]
    assert len(pred) == 500 and (pred["top1_label"] == pred["best_label"]).all()
    clusters = pd.read_csv(out / "query_clusters.csv")
    assert clusters["n_cells"].sum() == 500 and set(clusters["query_cluster"]) == set(pred["query_cluster"])
    assert list(clusters["n_cells"]) == sorted(clusters["n_cells"], reverse=True)  # cluster 0 is the largest
    assert (pred["top1_prob"] >= pred["top2_prob"]).all()
    summary = json.loads((out / "annotate_summary.json").read_text())
    assert summary["config"]["hidden"] == 32 and summary["config"]["epochs"] == 40
    from safetensors.torch import load_file

    assert "member2.conv2.lin.weight" in load_file(out / "model" / "networks.safetensors")  # ensemble 3
    m = json.loads((out / "metrics.json").read_text())
    assert m["accuracy"] > 0.8 and set(m["per_class_f1"]) == {f"type{i}" for i in range(5)}

    ev = tmp_path / "eval"
    r = CliRunner().invoke(
        cli, ["evaluate", "--predictions", str(out / "predictions.csv"), "--truth", str(path), "--outdir", str(ev)]
    )  # the recorded labels key
    assert r.exit_code == 0, r.output
    m2 = json.loads((ev / "metrics.json").read_text())
    assert m2["accuracy"] == pytest.approx(m["accuracy"]) and m2["macro_f1"] == pytest.approx(m["macro_f1"])
    assert m2["n_predictions_without_truth"] == 0
    # The same with a CSV truth table.
    truth = tmp_path / "truth.csv"
    cells.obs[["label"]].rename_axis("cell_id").to_csv(truth)
    r = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--predictions",
            str(out / "predictions.csv"),
            "--truth",
            str(truth),
            "--labels-key",
            "label",
            "--outdir",
            str(ev),
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads((ev / "metrics.json").read_text())["accuracy"] == pytest.approx(m["accuracy"])


def test_cli_knn_and_bad_inputs_exit_2_with_one_line(cells, tmp_path):
    path = tmp_path / "c.h5ad"
    cells.write_h5ad(path)
    r = CliRunner().invoke(cli, ["annotate", "--cells", str(path), "--outdir", str(tmp_path / "k"), "--method", "knn"])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "k" / "model" / "annotator.json").read_text())["n_networks"] == 0
    assert json.loads((tmp_path / "k" / "annotate_summary.json").read_text())["method"] == "knn"

    bad = cells.copy()
    del bad.obs["domain"]
    bad_path = tmp_path / "bad.h5ad"
    bad.write_h5ad(bad_path)
    for args in (
        ["annotate", "--cells", str(bad_path), "--outdir", str(tmp_path / "x")],
        ["annotate", "--cells", str(tmp_path / "missing.h5ad"), "--outdir", str(tmp_path / "x")],
        [
            "evaluate",
            "--predictions",
            str(tmp_path / "k" / "predictions.csv"),
            "--truth",
            str(path),
            "--labels-key",
            "nope",
            "--outdir",
            str(tmp_path / "e"),
        ],
    ):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2, r.output
        assert r.output.startswith("Error: ") and len(r.output.strip().splitlines()) == 1, r.output
        assert "Traceback" not in r.output
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@pytest.mark.parametrize("method, settings", [("gda", "[annotate]\nhidden = 32\nepochs = 30\n"), ("knn", "")])
def test_saved_model_reproduces_predictions_csv(cells, tmp_path, method, settings):
    """annotate writes model/; Annotator.load(model).predict(the same cells) gives predictions.csv exactly."""
    from seqalignatac.io.h5ad import read_h5ad
    from seqalignatac.models.stage2.annotator import Annotator

    path = tmp_path / "cells.h5ad"
    cells.write_h5ad(path)
    toml = tmp_path / "settings.toml"
    toml.write_text(settings)
    out = tmp_path / "annotate"
    r = CliRunner().invoke(
        cli,
        [
            "annotate",
            "--cells",
            str(path),
            "--outdir",
            str(out),
            "--method",
            method,
            "--ensemble",
            "2",
            "--seed",
            "4",
            "--config",
            str(toml),
            "--threads",
            "1",
            "--no-progress",
        ],
    )
    assert r.exit_code == 0, r.output
    model = Annotator.load(out / "model")
    assert model.method == method and len(model.networks) == (2 if method == "gda" else 0)
    state = json.loads((out / "model" / "annotator.json").read_text())
    assert state["config"]["ensemble"] == 2 and state["settings"]["seed"] == 4 and state["classes"] == model.classes
    res = model.predict(read_h5ad(path, "cells"))
    # Both through the same exact reader (round-trip floats, '' kept apart from a label): every column equal.
    kw = {"keep_default_na": False, "na_values": [""], "float_precision": "round_trip"}
    expected = pd.read_csv(out / "predictions.csv", **kw)
    got = pd.read_csv(io.StringIO(res.predictions.to_csv(index=False)), **kw)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert res.summary["unknown"] == json.loads((out / "annotate_summary.json").read_text())["unknown"]
    if method == "gda":  # transductive: other reference cells are refused, not silently mispredicted
        fewer = cells[1:].copy()  # the first cell is a reference cell
        with pytest.raises(InputError, match="reference cells differ"):
            model.predict(fewer)
    with pytest.raises(InputError, match="does not exist"):
        Annotator.load(tmp_path / "no_model")
