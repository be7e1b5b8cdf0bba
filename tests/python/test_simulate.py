"""The simulator: deterministic, sparse, learnable signal, and a real batch effect."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
from click.testing import CliRunner
from pyfaidx import Fasta

from seqalignatac.cli.main import cli
from seqalignatac.datasets.synthetic import simulate
from seqalignatac.io.peaks import coords_from_var


def test_outputs_and_layout(sim):
    ref, qry = ad.read_h5ad(sim["reference"]), ad.read_h5ad(sim["query"])
    assert sim["labels_key"] == "cell_type"
    assert ref.n_obs + qry.n_obs == 600
    for a, batch in ((ref, "reference"), (qry, "query")):
        assert set(a.obs["batch"]) == {batch}
        assert a.obs["cell_type"].notna().all()
        c = coords_from_var(a.var)  # var columns and var_names agree, 0-based half-open
        assert (a.var_names == c["chrom"] + ":" + c["start"].astype(str) + "-" + c["end"].astype(str)).all()
        assert a.X.format == "csr" and a.X.max() > 1  # counts, not only 0/1
    # barcodes collide between the two files, as between two 10x runs
    assert len(set(ref.obs_names) & set(qry.obs_names)) > 0
    assert set(ref.obs["cell_type"]) == {f"type_{t}" for t in range(4)}


def test_peak_sets_differ_but_overlap(sim):
    truth = pd.read_csv(sim["truth"], sep="\t")
    ref, qry = ad.read_h5ad(sim["reference"]), ad.read_h5ad(sim["query"])
    assert ref.n_vars == truth["in_reference"].sum()
    assert (~truth["in_reference"]).sum() > 0 and (~truth["in_query"]).sum() > 0
    assert truth["split_in_query"].sum() > 0
    # query peaks are jittered copies: few share exact coordinates with the reference
    assert len(set(ref.var_names) & set(qry.var_names)) < 0.2 * qry.n_vars
    lengths = truth["end"] - truth["start"]
    assert lengths.between(200, 800).all()


def test_genome_and_motifs(sim):
    fa = Fasta(sim["fasta"], sequence_always_upper=True)
    params = json.loads(open(sim["params"]).read())
    truth = pd.read_csv(sim["truth"], sep="\t")
    seq = "".join(str(fa[c][:]) for c in fa.keys())
    gc = (seq.count("G") + seq.count("C")) / len(seq)
    assert 0.39 < gc < 0.43
    # every 1,002-bp window around a peak midpoint fits inside its chromosome by default
    mid = (truth["start"] + truth["end"]) // 2
    lens = truth["chrom"].map({c: len(fa[c]) for c in fa.keys()})
    assert ((mid - 501 >= 0) & (mid + 501 <= lens)).all()
    # specific peaks carry their type's motif (either strand), constitutive ones the shared motif
    comp = str.maketrans("ACGT", "TGCA")
    hits = 0
    spec = truth[truth["kind"] == "specific"].head(50)
    for _, row in spec.iterrows():
        t = int(str(row["types"]).split(",")[0])
        motif = params["motifs"][f"type_{t}"]
        s = str(fa[row["chrom"]][row["start"] : row["end"]])
        hits += motif in s or motif.translate(comp)[::-1] in s
    assert hits == len(spec)


def test_signal_is_learnable(sim):
    """Reference cells of one type open that type's specific peaks far more than other cells do."""
    ref = ad.read_h5ad(sim["reference"])
    truth = pd.read_csv(sim["truth"], sep="\t").set_index("peak_id")
    types = truth.loc[ref.var_names, "types"].astype(str)
    x = (ref.X > 0).astype(np.float32)
    for t in range(4):
        own = types.str.split(",").map(lambda ts, t=t: str(t) in ts).to_numpy()
        in_type = (ref.obs["cell_type"] == f"type_{t}").to_numpy()
        rate_in = x[in_type][:, own].mean()
        rate_out = x[~in_type][:, own].mean()
        assert rate_in > 3 * rate_out


def test_batch_effect_depth_and_noise(sim):
    ref, qry = ad.read_h5ad(sim["reference"]), ad.read_h5ad(sim["query"])
    assert qry.X.sum(axis=1).mean() < 0.8 * ref.X.sum(axis=1).mean()
    # type proportions differ between the two files
    p_ref = ref.obs["cell_type"].value_counts(normalize=True).sort_index()
    p_q = qry.obs["cell_type"].value_counts(normalize=True).sort_index()
    assert np.abs(p_ref - p_q).max() > 0.05


def test_deterministic_and_seed_changes(tmp_path):
    a = simulate(tmp_path / "a", n_cells=80, n_peaks=120, n_cell_types=3, seed=7)
    b = simulate(tmp_path / "b", n_cells=80, n_peaks=120, n_cell_types=3, seed=7)
    c = simulate(tmp_path / "c", n_cells=80, n_peaks=120, n_cell_types=3, seed=8)
    ra, rb, rc = (ad.read_h5ad(d["query"]) for d in (a, b, c))
    assert (ra.X != rb.X).nnz == 0 and (ra.var_names == rb.var_names).all()
    assert open(a["fasta"]).read() == open(b["fasta"]).read()
    assert ra.shape != rc.shape or (ra.X != rc.X).nnz > 0


def test_novel_types_edge_peaks_and_no_genome(tmp_path):
    d = simulate(
        tmp_path, n_cells=200, n_peaks=200, n_cell_types=3, seed=1, novel_query_types=1, edge_peaks=2, genome=False
    )
    assert d["fasta"] is None and not (tmp_path / "genome.fa").exists()
    ref, qry = ad.read_h5ad(d["reference"]), ad.read_h5ad(d["query"])
    assert "novel_0" not in set(ref.obs["cell_type"]) and "novel_0" in set(qry.obs["cell_type"])
    assert list(ref.obs["cell_type"].cat.categories) == ["type_0", "type_1", "type_2"]
    truth = pd.read_csv(d["truth"], sep="\t")
    assert (truth["start"] == 20).sum() >= 1


def test_cli(tmp_path):
    res = CliRunner().invoke(
        cli,
        ["simulate", "--outdir", str(tmp_path), "--cells", "50", "--peaks", "60", "--cell-types", "2", "--seed", "3"],
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert ad.read_h5ad(out["reference"]).n_obs == 30
    assert (tmp_path / "genome.fa").stat().st_size > 60 * 1600
