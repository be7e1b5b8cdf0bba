"""Stage 1: every bad input gets one clear line (InputError / exit 2), never a traceback."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from click.testing import CliRunner

from seqalignatac import keys
from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.io.embedding_store import write_embeddings
from seqalignatac.models.stage1 import lsi, train

FAST = dict(hidden=(16,), bottleneck=4, epochs=1, progress=False, threads=1)


def _toy(n_cells=40, n_peaks=30, seed=0) -> ad.AnnData:
    rng = np.random.default_rng(seed)
    X = sp.csr_matrix((rng.random((n_cells, n_peaks)) < 0.3).astype(np.uint8))
    obs = pd.DataFrame(
        {
            "domain": ["reference"] * (n_cells // 2) + ["query"] * (n_cells - n_cells // 2),
            "label": ["A", "B"] * (n_cells // 2),
        },
        index=[f"cell{i}" for i in range(n_cells)],
    )
    var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(n_peaks)])
    return ad.AnnData(X, obs=obs, var=var, uns={"seqalignatac": {"prepare": {}}})  # what `train` checks


def _emb(a: ad.AnnData, d=8, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(a.n_vars, d)).astype(np.float32)


@pytest.fixture
def files(tmp_path):
    a = _toy()
    a.write_h5ad(tmp_path / "acc.h5ad")
    write_embeddings(tmp_path / "emb.h5", list(a.var_names), _emb(a))
    return a, tmp_path / "acc.h5ad", tmp_path / "emb.h5"


def _settings(tmp_path, text: str, name: str = "settings.toml"):
    """A --config file holding ``text`` in its [train] table."""
    (tmp_path / name).write_text("[train]\n" + text)
    return tmp_path / name


def _cli(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def _one_line_error(r, *needles):
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    line = r.output.strip()
    assert line.startswith("Error:") and "Traceback" not in r.output and "\n" not in line, r.output
    for n in needles:
        assert n in line, line


def test_different_peak_sets_are_counted(files, tmp_path):
    a, accp, _ = files
    other = [f"1:{i * 1000}-{i * 1000 + 500}" for i in range(a.n_vars)]  # 'chr' prefix lost
    write_embeddings(tmp_path / "other.h5", other, _emb(a))
    r = _cli("--accessibility", accp, "--embeddings", tmp_path / "other.h5", "--outdir", tmp_path / "o1", "--epochs", 1)
    _one_line_error(r, "different peak sets", "none of the 30 peaks")


def test_peaks_without_embedding(files, tmp_path):
    a, accp, _ = files
    ids = list(a.var_names)
    write_embeddings(tmp_path / "part.h5", ids[:25] + ["chrX:1-2", "chrX:3-4"], _emb(a)[:27])
    r = _cli("--accessibility", accp, "--embeddings", tmp_path / "part.h5", "--outdir", tmp_path / "o2")
    _one_line_error(
        r, "5 of 30 peaks have no embedding", "2 embedded ids are not peaks", ids[25], 'missing_embeddings = "drop"'
    )


def test_peaks_without_embedding_can_be_dropped(files, tmp_path):
    """Peaks on contigs absent from the FASTA have no sequence: drop them, count them, train on the rest."""
    a, accp, _ = files
    ids = list(a.var_names)
    write_embeddings(tmp_path / "part.h5", ids[:25], _emb(a)[:25])
    r = _cli(
        "--accessibility",
        accp,
        "--embeddings",
        tmp_path / "part.h5",
        "--outdir",
        tmp_path / "o3",
        "--epochs",
        1,
        "--no-progress",
        "--config",
        _settings(tmp_path, 'hidden = [16]\nbottleneck = 4\nmissing_embeddings = "drop"\n'),
    )
    assert r.exit_code == 0, r.output
    summary = json.loads((tmp_path / "o3" / "train_summary.json").read_text())
    assert summary["n_peaks_without_embedding"] == 5
    assert summary["n_peaks"] == 25
    cells = ad.read_h5ad(tmp_path / "o3" / "cell_embeddings.h5ad")
    assert cells.obsm[keys.EMBEDDING].shape == (a.n_obs, 4)
    # none at all is still an error, dropping or not
    write_embeddings(tmp_path / "none.h5", ["chrX:1-2"], _emb(a)[:1])
    r = _cli(
        "--accessibility",
        accp,
        "--embeddings",
        tmp_path / "none.h5",
        "--outdir",
        tmp_path / "o4",
        "--config",
        tmp_path / "settings.toml",
    )
    _one_line_error(r, "none of the 30 peaks", "has an embedding")


def test_extra_embedded_peaks_are_ignored(files):
    a, _, _ = files
    ids = list(a.var_names) + ["chrY:1-500"]
    e = np.vstack([_emb(a), np.full((1, 8), 99, np.float32)])
    cells, s = train(a, (ids[::-1], e[::-1]), **FAST)  # another order, one extra peak
    ref, _ = train(a, _emb(a), **FAST)
    assert s["n_extra_embedded_peaks"] == 1
    np.testing.assert_array_equal(cells.obsm[keys.EMBEDDING], ref.obsm[keys.EMBEDDING])


def test_nan_and_inf_embeddings(files, tmp_path):
    a, accp, _ = files
    e = _emb(a)
    e[3, 1] = np.nan
    e[7, 0] = np.inf
    write_embeddings(tmp_path / "nan.h5", list(a.var_names), e)
    r = _cli("--accessibility", accp, "--embeddings", tmp_path / "nan.h5", "--outdir", tmp_path / "o3")
    _one_line_error(r, "2 peak embeddings contain NaN or infinite values", a.var_names[3])


def test_empty_cells_are_kept_unembedded_with_a_count(files):
    # No cell the user gave disappears: cells without an accessible peak keep their row, with no
    # embedding (NaN) and obs['has_signal'] False, so annotate can report them (issue 14, class 3).
    a, _, _ = files
    a = a.copy()
    X = a.X.tolil()
    X[[2, 5], :] = 0
    a.X = X.tocsr()
    cells, s = train(a, _emb(a), **FAST)
    cells_l, s_l = lsi(a, lsi_components=5)
    assert s["dropped_cell_examples"] == ["cell2", "cell5"]
    for c, summary in ((cells, s), (cells_l, s_l)):
        assert summary["n_dropped_cells"] == 2 and list(c.obs_names) == list(a.obs_names)
        signal = c.obs["has_signal"].to_numpy()
        assert list(c.obs_names[~signal]) == ["cell2", "cell5"]
        emb = c.obsm[keys.EMBEDDING]
        assert np.isnan(emb[~signal]).all() and np.isfinite(emb[signal]).all()


def test_all_cells_empty_is_an_error(files, tmp_path):
    a, _, _ = files
    a = a.copy()
    a.X = sp.csr_matrix(a.shape, dtype=np.uint8)
    with pytest.raises(InputError, match="none of the 40 cells has an accessible peak"):
        train(a, _emb(a), **FAST)
    a.write_h5ad(tmp_path / "empty.h5ad")
    _one_line_error(
        _cli("--accessibility", tmp_path / "empty.h5ad", "--outdir", tmp_path / "o4", "--method", "lsi"),
        "none of the 40 cells",
    )


def test_outdir_with_another_runs_files(files, tmp_path):
    a, accp, embp = files
    out = tmp_path / "out"
    small = _settings(tmp_path, "hidden = [8]\nbottleneck = 4\n")
    assert (
        _cli(
            "--accessibility",
            accp,
            "--embeddings",
            embp,
            "--outdir",
            out,
            "--epochs",
            1,
            "--config",
            small,
            "--no-progress",
        ).exit_code
        == 0
    )
    again = _cli("--accessibility", accp, "--embeddings", embp, "--outdir", out, "--epochs", 1, "--no-progress")
    _one_line_error(again, "already holds files of another run", "resume = true")
    resume = _settings(tmp_path, "hidden = [8]\nbottleneck = 4\nresume = true\n", "resume.toml")
    other = _cli(
        "--accessibility",
        accp,
        "--embeddings",
        embp,
        "--outdir",
        out,
        "--epochs",
        2,
        "--config",
        resume,
        "--no-progress",
    )
    _one_line_error(other, "another run's files", "epochs")
    lsi_run = _cli("--accessibility", accp, "--outdir", out, "--method", "lsi")
    _one_line_error(lsi_run, "already holds files")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "train_summary.json").write_text("{}")
    _one_line_error(
        _cli("--accessibility", accp, "--embeddings", embp, "--outdir", foreign, "--config", resume), "no run.json"
    )


def test_other_bad_options_and_files(files, tmp_path):
    _, accp, embp = files
    _one_line_error(_cli("--accessibility", accp, "--outdir", tmp_path / "o"), "--embeddings is required")
    (tmp_path / "bad.h5ad").write_text("not hdf5")
    _one_line_error(
        _cli("--accessibility", tmp_path / "bad.h5ad", "--outdir", tmp_path / "o", "--method", "lsi"),
        "cannot read as .h5ad",
    )
    _one_line_error(
        _cli("--accessibility", tmp_path / "missing.h5ad", "--outdir", tmp_path / "o", "--method", "lsi"),
        "does not exist",
    )
    _one_line_error(
        _cli("--accessibility", accp, "--embeddings", tmp_path / "nope.h5", "--outdir", tmp_path / "o"),
        "embedding store does not exist",
    )
    import torch

    if not torch.cuda.is_available():
        _one_line_error(
            _cli("--accessibility", accp, "--embeddings", embp, "--outdir", tmp_path / "o5", "--device", "cuda"),
            "no CUDA GPU",
        )


def test_negative_or_nonfinite_counts(tmp_path):
    a = _toy()
    a.X = a.X.astype(np.float32)
    a.X.data[0] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        lsi(a)
    a.X.data[0] = -1
    with pytest.raises(InputError, match="negative"):
        lsi(a)


def test_bad_domain_values(files):
    a, _, _ = files
    a = a.copy()
    a.obs["domain"] = "ref"
    with pytest.raises(InputError, match="'reference' or 'query'"):
        lsi(a)
    a.obs["domain"] = "query"
    with pytest.raises(InputError, match="no reference cell"):
        lsi(a)


def test_free_input_releases_the_matrix_and_changes_nothing(files):
    a, _, _ = files
    ref, _ = train(a, _emb(a), **FAST)
    b = a.copy()
    cells, _ = train(b, _emb(a), free_input=True, **FAST)
    assert b.X is None
    np.testing.assert_array_equal(cells.obsm[keys.EMBEDDING], ref.obsm[keys.EMBEDDING])
