"""Issue 14, class 3: query cells never disappear.  Query cells whose only open peaks are absent from the
reference (no accessible shared peak) go through prepare, train and annotate and come out as
``Unknown`` with ``unknown_reason`` = ``no_signal``; the summaries and the report count them."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.models.stage2.unknown_reasons import NO_SIGNAL, REASONS

N_SILENT = 25  # query cells with signal only on query-only peaks


def _silence(query_path, out_path, n_silent: int):
    """The first ``n_silent`` query cells lose every shared peak and open query-only peaks on chrZ."""
    q = ad.read_h5ad(query_path)
    x = sp.lil_matrix(q.X)
    x[:n_silent, :] = 0
    extra = np.zeros((q.n_obs, 4), dtype=x.dtype)
    extra[:n_silent, :] = 1  # signal, but on peaks the reference does not have
    var = pd.concat(
        [
            q.var,
            pd.DataFrame(
                {
                    "chrom": ["chrZ"] * 4,
                    "start": [1000 * i for i in range(1, 5)],
                    "end": [1000 * i + 500 for i in range(1, 5)],
                },
                index=[f"chrZ:{1000 * i}-{1000 * i + 500}" for i in range(1, 5)],
            ),
        ]
    )
    out = ad.AnnData(sp.hstack([x.tocsr(), sp.csr_matrix(extra)]).tocsr(), obs=q.obs, var=var)
    out.write_h5ad(out_path)
    return list(q.obs_names)


@pytest.fixture(scope="module")
def run(sim, tmp_path_factory):
    """prepare -> train (LSI) -> annotate (knn and gda) on a query with N_SILENT silent cells."""
    d = tmp_path_factory.mktemp("nosignal")
    query_ids = _silence(sim["query"], d / "query.h5ad", N_SILENT)
    invoke = CliRunner().invoke
    (d / "settings.toml").write_text("[annotate]\nepochs = 5\nhidden = 16\n")
    steps = {
        "prepare": [
            "prepare",
            "--reference",
            str(sim["reference"]),
            "--query",
            str(d / "query.h5ad"),
            "--labels-key",
            sim["labels_key"],
            "--query-labels-key",
            sim["labels_key"],
            "--outdir",
            str(d / "prepare"),
        ],
        "train": [
            "train",
            "--accessibility",
            str(d / "prepare" / "accessibility.h5ad"),
            "--method",
            "lsi",
            "--outdir",
            str(d / "train"),
        ],
        "knn": [
            "annotate",
            "--cells",
            str(d / "train" / "cell_embeddings.h5ad"),
            "--method",
            "knn",
            "--outdir",
            str(d / "knn"),
            "--no-progress",
        ],
        "gda": [
            "annotate",
            "--cells",
            str(d / "train" / "cell_embeddings.h5ad"),
            "--outdir",
            str(d / "gda"),
            "--config",
            str(d / "settings.toml"),
            "--ensemble",
            "1",
            "--threads",
            "1",
            "--no-progress",
        ],
    }
    for name, args in steps.items():
        res = invoke(cli, args)
        assert res.exit_code == 0, (name, res.output)
    return d, query_ids


def test_prepare_keeps_and_counts_the_silent_cells(run):
    d, query_ids = run
    s = json.loads((d / "prepare" / "prepare_summary.json").read_text())
    assert s["query"]["cells"] == len(query_ids)
    assert s["query"]["cells_without_shared_peaks"] == N_SILENT
    cells = ad.read_h5ad(d / "train" / "cell_embeddings.h5ad")
    q = cells[cells.obs["domain"] == "query"]
    assert q.n_obs == len(query_ids) and int((~q.obs["has_signal"]).sum()) == N_SILENT


@pytest.mark.parametrize("method", ["knn", "gda"])
def test_every_query_cell_has_a_prediction_row(run, method):
    d, query_ids = run
    pred = pd.read_csv(d / method / "predictions.csv", dtype={"unknown_reason": str}, keep_default_na=False)
    assert list(pred["cell_id"]) == list(query_ids)  # every cell, by the user's barcode, in the user's order
    silent = pred.iloc[:N_SILENT]
    assert (silent["predicted_label"] == "Unknown").all() and (silent["unknown_reason"] == NO_SIGNAL).all()
    assert (silent["is_unknown"]).all() and (silent[["confidence", "best_label", "top1_label"]] == "").all().all()
    rest = pred.iloc[N_SILENT:]
    assert (rest["unknown_reason"] != NO_SIGNAL).all()
    labelled = rest["predicted_label"] != "Unknown"
    assert labelled.mean() > 0.5 and (rest.loc[labelled, "unknown_reason"] == "").all()
    assert set(rest.loc[~labelled, "unknown_reason"]) <= set(REASONS) - {NO_SIGNAL, ""}

    q = ad.read_h5ad(d / method / "query_annotated.h5ad")
    assert list(q.obs_names) == list(pred["cell_id"])
    assert (q.obs["seqalignatac_unknown_reason"].astype(str).to_numpy()[:N_SILENT] == NO_SIGNAL).all()
    assert np.isnan(q.obsm["seqalignatac_proba"][:N_SILENT]).all()
    assert np.isfinite(q.obsm["seqalignatac_proba"][N_SILENT:]).all()

    s = json.loads((d / method / "annotate_summary.json").read_text())
    assert s["n_query"] == len(query_ids) and s["n_query_no_signal"] == N_SILENT
    assert s["unknown_reasons"][NO_SIGNAL] == N_SILENT
    assert sum(s["unknown_reasons"].values()) == int(pred["is_unknown"].sum())
    assert s["unknown_rate"] == pytest.approx(pred["is_unknown"].mean())


def test_the_report_counts_the_silent_cells(run, tmp_path):
    from seqalignatac.report.html import build_report

    d, _ = run
    paths = build_report("nosignal", d / "prepare", d / "train", d / "knn", tmp_path / "report", max_umap_cells=100)
    html = paths["html"].read_text()
    assert f'id="n-no-signal">{N_SILENT}<' in html
    assert f'<td>{NO_SIGNAL}</td><td class="n">{N_SILENT}</td>' in html


def _cells(n_ref=60, n_query=30, silent=(), seed=0):
    rng = np.random.default_rng(seed)
    n = n_ref + n_query
    obs = pd.DataFrame(
        {
            "domain": ["reference"] * n_ref + ["query"] * n_query,
            "label": ["a", "b", "c"] * (n_ref // 3) + [None] * n_query,
        },
        index=[f"c{i}" for i in range(n)],
    )
    obs["has_signal"] = True
    x = rng.normal(size=(n, 8)).astype(np.float32)
    for i in silent:
        obs.iloc[n_ref + i, obs.columns.get_loc("has_signal")] = False
        x[n_ref + i] = np.nan
    a = ad.AnnData(obs=obs)
    a.obsm["X_seqalignatac"] = x
    a.uns["seqalignatac"] = {"labels_key": "label"}  # as prepare records it
    return a


def test_api_writes_silent_query_cells_back_as_unknown():
    from seqalignatac.models.stage2.api import annotate_full

    res = annotate_full(_cells(silent=(0, 7)), method="knn", progress=False)
    pred = res.predictions.set_index("cell_id")
    assert len(pred) == 30 and list(pred.index[:2]) == ["c60", "c61"]
    assert pred.loc[["c60", "c67"], "unknown_reason"].tolist() == [NO_SIGNAL, NO_SIGNAL]
    assert res.summary["n_query_no_signal"] == 2 and res.query.n_obs == 30


def test_api_refuses_a_query_without_any_signal():
    from seqalignatac.models.stage2.api import annotate_full

    with pytest.raises(InputError, match="none of the 30 query cells has an accessible shared peak"):
        annotate_full(_cells(silent=range(30)), method="knn", progress=False)


def test_unflagged_nan_embeddings_are_still_an_error():
    from seqalignatac.models.stage2.api import annotate_full

    cells = _cells()
    cells.obsm["X_seqalignatac"][65] = np.nan  # NaN without the stage-1 flag: a broken file, not a silent cell
    with pytest.raises(InputError, match="NaN or infinite values in 1 cells"):
        annotate_full(cells, method="knn", progress=False)
