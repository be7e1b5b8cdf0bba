"""The public Python API (scanpy style) runs the same code as the commands and gives the same results."""

from __future__ import annotations

import io

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import seqalignatac as sa
from seqalignatac import keys
from seqalignatac.cli.main import cli

READ = {"keep_default_na": False, "na_values": [""], "float_precision": "round_trip"}  # exact round trip


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    return sa.datasets.simulate(tmp_path_factory.mktemp("api_sim"), n_cells=500, n_peaks=500, n_cell_types=3, seed=3)


@pytest.fixture(scope="module")
def annotated(sim):
    """The issue's example, step by step (stage 1 with LSI to stay fast; the network is tested below)."""
    reference = ad.read_h5ad(sim["reference"])  # an AnnData object or a path: both are accepted
    acc = sa.pp.harmonize(reference, sim["query"], labels_key="cell_type", query_labels_key="cell_type")
    sa.pp.peak_sequences(acc, fasta=sim["fasta"], width=1002)
    sa.tl.embed_peaks(acc, model="kmer")
    sa.tl.cell_embedding(acc, method="lsi")
    model = sa.tl.annotate(acc, threads=1)
    return acc, model


def test_each_step_writes_the_documented_fields(annotated):
    acc, model = annotated
    assert {keys.DOMAIN, keys.ORIGINAL_ID, "cell_type", keys.HAS_SIGNAL, keys.PREDICTION}.issubset(acc.obs.columns)
    assert acc.uns[keys.UNS][keys.LABELS_KEY] == "cell_type"  # the user's column name, kept
    assert acc.var[keys.SEQUENCE].str.len().eq(1002).all()
    assert acc.varm[keys.PEAK_EMBEDDING].shape == (acc.n_vars, 2080)  # canonical 6-mers
    assert np.isfinite(acc.obsm[keys.EMBEDDING][acc.obs[keys.HAS_SIGNAL].to_numpy()]).all()
    is_query = (acc.obs[keys.DOMAIN] == keys.QUERY).to_numpy()
    assert acc.obs.loc[is_query, keys.PREDICTION].notna().all()
    assert acc.obs.loc[~is_query, keys.PREDICTION].isna().all()  # reference cells are not predicted
    assert acc.obsm[keys.PROBA].shape == (acc.n_obs, len(acc.uns[keys.UNS][keys.CLASSES]))
    assert model.method == "gda" and len(model.networks) == 3  # the default ensemble
    truth = acc.obs.loc[is_query, "cell_type"].astype(str)
    assert (acc.obs.loc[is_query, keys.BEST_LABEL_OBS].astype(str) == truth).mean() > 0.85


def test_a_saved_model_loads_and_predicts_the_same_labels(annotated, tmp_path):
    acc, model = annotated
    model.save(tmp_path / "model")
    res = sa.models.Annotator.load(tmp_path / "model").predict(acc)
    is_query = (acc.obs[keys.DOMAIN] == keys.QUERY).to_numpy()
    pred = res.predictions.set_index(keys.CELL_ID)
    assert list(pred.index) == list(acc.obs.loc[is_query, keys.ORIGINAL_ID])  # the user's barcodes
    np.testing.assert_array_equal(
        pred[keys.PREDICTED_LABEL].to_numpy(), acc.obs.loc[is_query, keys.PREDICTION].astype(str).to_numpy()
    )
    np.testing.assert_array_equal(
        pred[keys.CONFIDENCE].to_numpy(dtype=np.float32),
        acc.obs.loc[is_query, keys.CONFIDENCE_OBS].to_numpy(dtype=np.float32),
    )


def test_the_commands_give_what_the_api_gives(annotated, sim, tmp_path):
    """prepare -> train --method lsi -> annotate on the same files: predictions.csv equals the API's model."""
    acc, model = annotated
    run = CliRunner()
    for args in (
        [
            "prepare",
            "--reference",
            sim["reference"],
            "--query",
            sim["query"],
            "--labels-key",
            "cell_type",
            "--query-labels-key",
            "cell_type",
            "--outdir",
            str(tmp_path / "prepare"),
        ],
        [
            "train",
            "--accessibility",
            str(tmp_path / "prepare" / keys.ACCESSIBILITY),
            "--method",
            "lsi",
            "--outdir",
            str(tmp_path / "train"),
        ],
        [
            "annotate",
            "--cells",
            str(tmp_path / "train" / keys.CELL_EMBEDDINGS),
            "--outdir",
            str(tmp_path / "annotate"),
            "--threads",
            "1",
            "--no-progress",
        ],
    ):
        r = run.invoke(cli, args)
        assert r.exit_code == 0, r.output
    expected = pd.read_csv(tmp_path / "annotate" / keys.PREDICTIONS, **READ)
    got = pd.read_csv(io.StringIO(model.predict(acc).predictions.to_csv(index=False)), **READ)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_cell_embedding_with_the_network_on_peak_embeddings(annotated):
    acc, _ = annotated
    acc = acc.copy()
    sa.tl.cell_embedding(acc, method="nt", epochs=2, device="cpu", threads=1)
    assert acc.uns[keys.UNS]["stage1"]["method"] == "nt"
    assert np.isfinite(acc.obsm[keys.EMBEDDING][acc.obs[keys.HAS_SIGNAL].to_numpy()]).all()


def test_api_errors_name_what_to_do(sim):
    acc = sa.pp.harmonize(sim["reference"], sim["query"])
    with pytest.raises(sa.errors.InputError, match="run sa.pp.peak_sequences"):
        sa.tl.embed_peaks(acc)
    with pytest.raises(sa.errors.InputError, match="method must be one of lsi, nt"):
        sa.tl.cell_embedding(acc, method="pca")
    with pytest.raises(sa.errors.InputError, match="run sa.tl.embed_peaks"):
        sa.tl.cell_embedding(acc, method="nt")
