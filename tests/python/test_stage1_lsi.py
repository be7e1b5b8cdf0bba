"""Stage-1 LSI options: where the IDF/SVD are fitted (``fit_on``), TF-IDF variants and peak
selection before the SVD; reproducibility; bad values; the CLI records the choice."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner
from safetensors.numpy import load_file

from seqalignatac import keys
from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.models.stage1 import lsi


def _two_domains(n_ref=150, n_query=150, n_shared=200, n_query_only=40, seed=0) -> ad.AnnData:
    """Three cell types over shared peaks, plus peaks open only in (type-specific) query cells."""
    rng = np.random.default_rng(seed)
    n = n_ref + n_query
    typ = rng.integers(0, 3, n)
    p = n_shared + n_query_only
    block = np.arange(p) % 3
    prob = np.where(block[None, :] == typ[:, None], 0.35, 0.08) * rng.uniform(0.6, 1.4, n)[:, None]
    prob[:n_ref, n_shared:] = 0.0  # the last peaks are never open in the reference
    X = sp.csr_matrix((rng.random((n, p)) < prob).astype(np.uint8))
    obs = pd.DataFrame(
        {"domain": ["reference"] * n_ref + ["query"] * n_query, "label": pd.Categorical([f"t{t}" for t in typ])},
        index=[f"c{i}" for i in range(n)],
    )
    var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(p)])
    return ad.AnnData(X, obs=obs, var=var, uns={"seqalignatac": {"prepare": {}}})  # what `train` checks


@pytest.fixture(scope="module")
def pair() -> ad.AnnData:
    return _two_domains()


def _loadings(outdir) -> dict:
    return load_file(str(outdir / "model.safetensors"))


def test_joint_fit_uses_the_query_cells(pair, tmp_path):
    n_shared = 200
    _, s_ref = lsi(pair, lsi_components=8, lsi_fit_on="reference", outdir=tmp_path / "ref")
    _, s_all = lsi(pair, lsi_components=8, lsi_fit_on="all", outdir=tmp_path / "all")
    w_ref, w_all = _loadings(tmp_path / "ref"), _loadings(tmp_path / "all")
    # Peaks never open in the reference: zero loadings when fitted on the reference, not when
    # fitted on all cells (the query's own structure enters the space).
    assert np.abs(w_ref["loadings"][:, n_shared:]).max() == 0
    assert np.abs(w_all["loadings"][:, n_shared:]).max() > 1e-3
    assert s_ref["lsi_fit_on"] == "reference" and s_ref["n_fit_cells"] == 150 and s_ref["fitted_on"] == "reference"
    assert s_all["lsi_fit_on"] == "all" and s_all["n_fit_cells"] == 300 and s_all["fitted_on"] == "reference + query"
    assert s_all["n_reference_cells"] == 150 and s_all["n_query_cells"] == 150
    summary = json.loads((tmp_path / "all" / "train_summary.json").read_text())
    assert summary["lsi_fit_on"] == "all"


def test_joint_fit_equals_fitting_with_every_cell_as_reference(pair):
    cells, _ = lsi(pair, lsi_components=8, lsi_fit_on="all")
    as_ref = pair.copy()
    as_ref.obs["domain"] = "reference"
    same, _ = lsi(as_ref, lsi_components=8)
    np.testing.assert_allclose(cells.obsm[keys.EMBEDDING], same.obsm[keys.EMBEDDING], rtol=1e-5, atol=1e-6)
    # ... and the domains (and every obs column) are kept.
    pd.testing.assert_frame_equal(cells.obs.drop(columns="has_signal"), pair.obs)
    assert cells.obs["has_signal"].all()  # plus stage 1's flag: every cell here has an open peak


def test_joint_fit_is_reproducible_and_separates_types(pair):
    a, s1 = lsi(pair, lsi_components=8, lsi_fit_on="all", seed=3)
    b, s2 = lsi(pair, lsi_components=8, lsi_fit_on="all", seed=3)
    np.testing.assert_array_equal(a.obsm[keys.EMBEDDING], b.obsm[keys.EMBEDDING])
    assert s1["depth_correlation"] == s2["depth_correlation"]
    from sklearn.neighbors import KNeighborsClassifier

    ref = (a.obs["domain"] == "reference").to_numpy()
    X, y = a.obsm[keys.EMBEDDING], a.obs["label"].astype(str).to_numpy()
    assert (KNeighborsClassifier(15).fit(X[ref], y[ref]).predict(X[~ref]) == y[~ref]).mean() > 0.9


@pytest.mark.parametrize("variant", ["log_tfidf", "tf_logidf", "logtf_logidf"])
def test_tfidf_variants_separate_types(pair, variant):
    cells, s = lsi(pair, lsi_components=8, lsi_tfidf=variant)
    assert s["lsi_tfidf"] == variant
    ref = (cells.obs["domain"] == "reference").to_numpy()
    X, y = cells.obsm[keys.EMBEDDING], cells.obs["label"].astype(str).to_numpy()
    from sklearn.neighbors import KNeighborsClassifier

    assert (KNeighborsClassifier(15).fit(X[ref], y[ref]).predict(X[~ref]) == y[~ref]).mean() > 0.9


@pytest.mark.parametrize(
    "kw, needle",
    [
        ({"lsi_fit_on": "query"}, "lsi_fit_on must be one of reference, all, got 'query'"),
        ({"lsi_tfidf": "tf"}, "lsi_tfidf must be one of"),
        ({"lsi_normalize": "l1"}, "lsi_normalize must be one of"),
        ({"lsi_components": 0}, "invalid value for lsi_components: 0 is not in the range x>=1"),
        ({"lsi_n_iter": 0}, "invalid value for lsi_n_iter"),
    ],
)
def test_bad_values_are_one_line_input_errors(pair, kw, needle):
    with pytest.raises(InputError) as e:
        lsi(pair, **kw)
    assert needle in str(e.value) and "\n" not in str(e.value)


def _cli(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def test_cli_fit_on_is_recorded_and_checked_on_resume(pair, tmp_path):
    accp = tmp_path / "acc.h5ad"
    pair.write_h5ad(accp)
    out = tmp_path / "lsi"

    def settings(name, text):
        (tmp_path / name).write_text("[train]\nlsi_components = 8\n" + text)
        return tmp_path / name

    joint = settings("joint.toml", 'lsi_fit_on = "all"\nlsi_tfidf = "logtf_logidf"\n')
    r = _cli("--accessibility", accp, "--outdir", out, "--method", "lsi", "--config", joint)
    assert r.exit_code == 0, r.output
    summary = json.loads((out / "train_summary.json").read_text())
    assert summary["lsi_fit_on"] == "all" and summary["lsi_tfidf"] == "logtf_logidf"
    # The CLI gives the same embedding as the Python call.
    direct, _ = lsi(pair, lsi_components=8, lsi_fit_on="all", lsi_tfidf="logtf_logidf")
    np.testing.assert_array_equal(
        ad.read_h5ad(out / "cell_embeddings.h5ad").obsm[keys.EMBEDDING], direct.obsm[keys.EMBEDDING]
    )
    assert ad.read_h5ad(out / "cell_embeddings.h5ad").uns["seqalignatac"]["stage1"]["lsi_fit_on"] == "all"
    assert json.loads((out / "run.json").read_text())["lsi_fit_on"] == "all"
    again = _cli(
        "--accessibility",
        accp,
        "--outdir",
        out,
        "--method",
        "lsi",
        "--config",
        settings("again.toml", 'lsi_fit_on = "all"\nresume = true\n'),
    )
    assert again.exit_code == 0, again.output
    other = _cli(
        "--accessibility",
        accp,
        "--outdir",
        out,
        "--method",
        "lsi",
        "--config",
        settings("other.toml", 'lsi_fit_on = "reference"\nlsi_tfidf = "log_tfidf"\nresume = true\n'),
    )
    assert other.exit_code == 2 and "lsi_fit_on" in other.output and "lsi_tfidf" in other.output, other.output
    bad = _cli(
        "--accessibility",
        accp,
        "--outdir",
        tmp_path / "x",
        "--method",
        "lsi",
        "--config",
        settings("bad.toml", 'lsi_fit_on = "query"\n'),
    )
    assert bad.exit_code == 2 and "[train] lsi_fit_on" in bad.output and "Traceback" not in bad.output
    assert not (tmp_path / "x").exists()


def test_tfidf_formulas():
    from seqalignatac.models.stage1.lsi import idf_weights, tfidf

    X = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 1], [0, 0, 0, 1]], dtype=np.uint8))
    n_open = np.asarray(X.sum(axis=0)).ravel()
    tf = X.toarray() / X.sum(axis=1).A
    ratio = 3 / n_open
    expect = {
        "log_tfidf": np.log1p(1e4 * tf * ratio),
        "tf_logidf": 1e4 * tf * np.log1p(ratio),
        "logtf_logidf": np.log1p(1e4 * tf) * np.log1p(ratio),
    }
    for variant, e in expect.items():
        got = tfidf(X, idf_weights(n_open, 3, variant), variant=variant)
        np.testing.assert_allclose(got.toarray(), np.where(X.toarray() > 0, e, 0), rtol=1e-6)
