"""Stage 1: the network separates simulated cell types, generalizes to held-out peaks, resumes
exactly, runs in cell blocks; the LSI ablation; the CLI output layout."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from click.testing import CliRunner
from sklearn.model_selection import train_test_split
from sklearn.neighbors import KNeighborsClassifier

from seqalignatac import keys
from seqalignatac.cli.main import cli
from seqalignatac.io.atomic import staging_path
from seqalignatac.models.stage1 import lsi, train
from seqalignatac.models.stage1.batches import PeakCellBatches, gather_rows
from seqalignatac.models.stage1.model import CellHead, output_step

torch.set_num_threads(1)

FAST = dict(hidden=(64,), bottleneck=16, batch_size=128, progress=False, threads=1)
LAYOUT = ("cell_embeddings.h5ad", "model.safetensors", "training_curve.tsv", "training_curve.png", "train_summary.json")


@pytest.fixture(scope="module")
def kmer_store(sim, prepared, tmp_path_factory) -> str:
    """6-mer embeddings of the prepared peaks, made by the real extract step."""
    import pyfaidx

    from seqalignatac.embed.kmer import kmer_embed
    from seqalignatac.io.embedding_store import write_embeddings
    from seqalignatac.pp.sequences import extract_sequences

    d = tmp_path_factory.mktemp("s1emb")
    extract_sequences(prepared / "peaks.bed", sim["fasta"], d / "peaks.fa")
    fa = pyfaidx.Fasta(str(d / "peaks.fa"))
    ids = list(fa.keys())
    write_embeddings(d / "embeddings.h5", ids, kmer_embed([str(fa[i]) for i in ids], k=6))
    return str(d / "embeddings.h5")


@pytest.fixture(scope="module")
def acc(prepared) -> ad.AnnData:
    return ad.read_h5ad(prepared / "accessibility.h5ad")


@pytest.fixture(scope="module")
def trained(acc, kmer_store):
    return train(acc, kmer_store, epochs=8, patience=8, **FAST)


def _heldout_reference_accuracy(cells: ad.AnnData) -> float:
    ref = cells[cells.obs["domain"] == "reference"]
    X, y = ref.obsm[keys.EMBEDDING], ref.obs[keys.labels_key_of(cells)].astype(str).to_numpy()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
    return float((KNeighborsClassifier(15).fit(Xtr, ytr).predict(Xte) == yte).mean())


def test_network_embeddings_separate_cell_types(trained, acc):
    cells, summary = trained
    assert cells.n_obs == acc.n_obs and list(cells.obs_names) == list(acc.obs_names)
    pd.testing.assert_frame_equal(cells.obs.drop(columns="has_signal"), acc.obs)  # plus stage 1's flag
    assert cells.obsm[keys.EMBEDDING].shape == (acc.n_obs, 16)
    assert cells.obsm[keys.EMBEDDING].dtype == np.float32
    assert _heldout_reference_accuracy(cells) >= 0.9
    assert summary["method"] == "nt" and summary["dims"] == 16


def test_network_predicts_heldout_peaks(trained):
    _, s = trained
    # Sequence must predict accessibility of peaks the model never trained on.
    assert s["heldout_auroc"] > 0.62
    assert s["train_auroc"] > 0.62
    assert 0 < s["heldout_auprc"] < 1
    assert s["metric_entries"]["exact"] is True
    assert s["n_heldout_peaks"] == round(0.1 * s["n_peaks"])


def test_same_seed_same_result_and_resume_equals_uninterrupted(acc, kmer_store, tmp_path):
    full_dir, cut_dir = tmp_path / "full", tmp_path / "cut"
    cells_full, s_full = train(acc, kmer_store, epochs=3, patience=3, outdir=full_dir, **FAST)

    class Killed(Exception):
        pass

    def kill_at(step):
        if step == 15:  # mid-epoch 2 (10 steps per epoch); last checkpoint at step 14
            raise Killed

    with pytest.raises(Killed):
        train(acc, kmer_store, epochs=3, patience=3, outdir=cut_dir, checkpoint_steps=7, callback=kill_at, **FAST)
    # The killed run kept its checkpoint in the staging folder; nothing was published.
    assert (staging_path(cut_dir) / "checkpoint" / "state.pt").exists() and not cut_dir.exists()
    cells_res, s_res = train(acc, kmer_store, epochs=3, patience=3, outdir=cut_dir, resume=True, **FAST)
    np.testing.assert_array_equal(cells_res.obsm[keys.EMBEDDING], cells_full.obsm[keys.EMBEDDING])
    a = pd.read_csv(full_dir / "training_curve.tsv", sep="\t").drop(columns="seconds")
    b = pd.read_csv(cut_dir / "training_curve.tsv", sep="\t").drop(columns="seconds")
    pd.testing.assert_frame_equal(a, b)
    # A third run with the same seed, no output folder, is identical too.
    cells_again, _ = train(acc, kmer_store, epochs=3, patience=3, **FAST)
    np.testing.assert_array_equal(cells_again.obsm[keys.EMBEDDING], cells_full.obsm[keys.EMBEDDING])
    # Resuming a finished run rewrites the same result.
    cells_done, _ = train(acc, kmer_store, epochs=3, patience=3, outdir=cut_dir, resume=True, **FAST)
    np.testing.assert_array_equal(cells_done.obsm[keys.EMBEDDING], cells_full.obsm[keys.EMBEDDING])


def test_cell_blocks_train_and_separate(acc, kmer_store):
    cells, s = train(acc, kmer_store, epochs=8, patience=8, cell_block_size=250, **FAST)
    assert s["n_cell_blocks"] == 3 and s["steps_per_epoch"] == 3 * 10
    assert s["heldout_auroc"] > 0.6
    assert _heldout_reference_accuracy(cells) >= 0.9


def test_epoch_visits_every_training_entry_once():
    rng = np.random.default_rng(0)
    import scipy.sparse as sp

    M = sp.random(50, 37, density=0.2, random_state=1, format="csr")  # peaks x cells
    train_peaks = np.sort(rng.choice(50, 43, replace=False))  # 43 = 6 x 7 + 1: no batch of one peak
    b = PeakCellBatches(M.indptr, M.indices, 37, train_peaks, batch_size=7, block_size=10, device=torch.device("cpu"))
    plan = b.plan(seed=3, epoch=1)
    seen = []
    for k in range(len(plan)):
        peaks, cells, rows, cols = b.step(plan, k)
        assert 6 <= len(peaks) <= 7 and len(cells) <= 10
        seen += list(zip(peaks[rows].tolist(), cells[cols].tolist()))
    expected = {(p, c) for p in train_peaks for c in M.indices[M.indptr[p] : M.indptr[p + 1]]}
    assert len(seen) == len(set(seen)) == len(expected) and set(seen) == expected
    r, c = gather_rows(torch.as_tensor(M.indptr), torch.as_tensor(M.indices), torch.tensor([4, 2]))
    assert sorted(zip(r.tolist(), c.tolist())) == sorted(
        [(0, j) for j in M.indices[M.indptr[4] : M.indptr[5]]] + [(1, j) for j in M.indices[M.indptr[2] : M.indptr[3]]]
    )


def test_output_step_matches_autograd_bce():
    g = torch.Generator().manual_seed(0)
    H, Z, b = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g), torch.randn(9, generator=g)
    Y = (torch.rand(6, 9, generator=g) < 0.3).float()
    rows, cols = Y.nonzero(as_tuple=True)
    loss, gH, gZ, gb = output_step(H, Z, b, rows, cols)
    Hr, Zr, br = (t.clone().requires_grad_() for t in (H, Z, b))
    ref = torch.nn.functional.binary_cross_entropy_with_logits(Hr @ Zr.T + br, Y)
    ref.backward()
    torch.testing.assert_close(loss, ref.detach())
    for mine, theirs in ((gH, Hr.grad), (gZ, Zr.grad), (gb, br.grad)):
        torch.testing.assert_close(mine, theirs)


def test_lazy_cell_adam_equals_torch_adam_and_skips_other_cells():
    g = torch.Generator().manual_seed(0)
    head = CellHead(5, 3, torch.device("cpu"), lr=0.01, generator=g)
    Z = torch.nn.Parameter(head.Z.clone())
    opt = torch.optim.Adam([Z], lr=0.01, betas=head.betas, eps=head.eps)
    for _ in range(4):
        gZ = torch.randn(5, 3, generator=g)
        Z.grad = gZ.clone()
        opt.step()
        head.step(None, gZ, torch.zeros(5))
    torch.testing.assert_close(head.Z, Z.detach())
    before = head.Z.clone()
    head.step(torch.tensor([1, 3]), torch.ones(2, 3), torch.ones(2))
    assert torch.equal(head.Z[[0, 2, 4]], before[[0, 2, 4]]) and not torch.equal(head.Z[[1, 3]], before[[1, 3]])
    assert head.t.tolist() == [4, 5, 4, 5, 4]


def test_lsi_reference_fit_query_projection(acc):
    cells, s = lsi(acc, lsi_components=20, lsi_fit_on="reference")
    assert cells.n_obs == acc.n_obs and s["method"] == "lsi"
    assert s["n_components_computed"] == 20 and s["dims"] == 20 - len(s["dropped_components"])
    assert cells.obsm[keys.EMBEDDING].shape == (acc.n_obs, s["dims"])
    assert len(s["depth_correlation"]) == 20
    assert all(abs(s["depth_correlation"][c - 1]) > 0.75 for c in s["dropped_components"])
    assert s["n_reference_cells"] == int((acc.obs["domain"] == "reference").sum())
    assert _heldout_reference_accuracy(cells) >= 0.9
    np.testing.assert_allclose(np.linalg.norm(cells.obsm[keys.EMBEDDING], axis=1), 1, rtol=1e-5)
    # Fitted on the reference only: query cells do not change the reference embedding.
    ref_only = acc[acc.obs["domain"] == "reference"].copy()
    cells_ref, _ = lsi(ref_only, lsi_components=20, lsi_fit_on="reference")
    np.testing.assert_allclose(
        cells_ref.obsm[keys.EMBEDDING],
        cells[acc.obs["domain"] == "reference"].obsm[keys.EMBEDDING],
        rtol=1e-4,
        atol=1e-5,
    )


def test_lsi_drops_a_depth_component():
    # Two cell types plus a strong depth gradient: the first component is depth.
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    n, p = 300, 400
    depth = rng.uniform(0.02, 0.4, n)
    typ = rng.integers(0, 2, n)
    prob = depth[:, None] * np.where((np.arange(p)[None, :] < p // 2) == (typ[:, None] == 0), 1.3, 0.7)
    X = sp.csr_matrix((rng.random((n, p)) < prob).astype(np.float32))
    a = ad.AnnData(
        X, obs=pd.DataFrame({"domain": ["reference"] * 200 + ["query"] * 100}, index=[f"c{i}" for i in range(n)])
    )
    _, s = lsi(a, lsi_components=10)
    assert 1 in s["dropped_components"] and abs(s["depth_correlation"][0]) > 0.75


def _cli(*args):
    return CliRunner().invoke(cli, ["train", *map(str, args)])


def test_cli_nt_and_lsi_write_the_same_layout(prepared, kmer_store, tmp_path):
    accp = prepared / "accessibility.h5ad"
    settings = tmp_path / "settings.toml"
    settings.write_text("[train]\nhidden = [32]\nbottleneck = 8\nlsi_components = 12\n")
    r = _cli(
        "--accessibility",
        accp,
        "--embeddings",
        kmer_store,
        "--outdir",
        tmp_path / "nt",
        "--epochs",
        2,
        "--config",
        settings,
        "--threads",
        1,
        "--no-progress",
        "--device",
        "cpu",
    )
    assert r.exit_code == 0, r.output
    r2 = _cli("--accessibility", accp, "--outdir", tmp_path / "lsi", "--method", "lsi", "--config", settings)
    assert r2.exit_code == 0, r2.output
    assert json.loads((tmp_path / "lsi" / "train_summary.json").read_text())["lsi_components"] == 12
    for name, dims in (("nt", 8), ("lsi", None)):
        out = tmp_path / name
        for f in LAYOUT:
            assert (out / f).stat().st_size > 0, f
        cells = ad.read_h5ad(out / "cell_embeddings.h5ad")
        summary = json.loads((out / "train_summary.json").read_text())
        assert cells.n_vars == 0 and cells.obsm[keys.EMBEDDING].shape[1] == (dims or summary["dims"])
        assert cells.uns["seqalignatac"]["stage1"]["method"] == name
        assert "prepare" in cells.uns["seqalignatac"]
        assert not list(out.glob(".*tmp*"))
    curve = pd.read_csv(tmp_path / "nt" / "training_curve.tsv", sep="\t")
    assert list(curve["epoch"]) == [1, 2] and {"train_auroc", "heldout_auroc", "heldout_auprc"} <= set(curve)
    from safetensors.numpy import load_file

    w = load_file(str(tmp_path / "nt" / "model.safetensors"))
    np.testing.assert_array_equal(
        w["cell_weights"], ad.read_h5ad(tmp_path / "nt" / "cell_embeddings.h5ad").obsm[keys.EMBEDDING]
    )


@pytest.mark.realdata
def test_lsi_on_granja_reference_separates_types(shared_data):
    """Real data: LSI of the Granja reference donor separates the 16 BMMC types well above chance."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location(
        "stage1_lsi_defaults", Path(__file__).resolve().parents[2] / "benchmarks" / "stage1_lsi_defaults.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    a = mod.load_granja(shared_data / "granja2019_bmmc_hemato")
    cells, s = lsi(a)
    assert s["dropped_components"] == [1] and s["depth_correlation"][0] > 0.75  # depth, as in every scATAC LSI
    acc, f1 = mod.reference_cv(cells)
    assert acc > 0.6 and f1 > 0.4  # 16 types; measured 0.66 / 0.47 (benchmarks/results/stage1_lsi_defaults.md)
