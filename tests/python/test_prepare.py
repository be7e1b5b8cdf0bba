"""prepare: overlap mapping (SANGO), OR-ing, binarization, rare-peak filter, outputs, bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.pp.mapping import prepare


def _write(path, x, var_names, obs_names=None, obs=None, var=None):
    x = sp.csr_matrix(np.asarray(x, dtype=np.float32))
    obs_names = obs_names or [f"c{i}" for i in range(x.shape[0])]
    obs = pd.DataFrame(
        obs if obs is not None else {"ct": ["A", "B"] * (x.shape[0] // 2) + ["A"] * (x.shape[0] % 2)}, index=obs_names
    )
    var = pd.DataFrame(var, index=var_names) if var is not None else pd.DataFrame(index=var_names)
    a = ad.AnnData(X=x, obs=obs, var=var)
    a.write_h5ad(path)
    return str(path)


def _run(*args):
    return CliRunner().invoke(cli, ["prepare", *map(str, args)])


@pytest.fixture
def pair(tmp_path):
    """Reference 4 peaks; query in Signac style, chrom names without 'chr', one peak split in two."""
    ref = _write(
        tmp_path / "ref.h5ad",
        [[3, 0, 1, 0], [0, 2, 0, 1], [1, 1, 0, 0], [0, 0, 5, 1]],
        ["chr1:1000-1500", "chr1:5000-5400", "chr2:100-900", "chrM:10-300"],
    )
    qry = _write(
        tmp_path / "qry.h5ad",
        [[1, 1, 0, 0, 2], [0, 0, 1, 0, 0], [0, 1, 0, 1, 0]],
        ["1-1100-1600", "1-1000-1300", "2_150_850", "MT-20-310", "3-100-200"],
    )
    return ref, qry


def test_mapping_or_and_binarize(pair):
    ref, qry = pair
    a, s = prepare(ref, qry, "ct", "ct", overlap_width=500, min_peak_frac=0.0)
    assert list(a.var_names) == ["chr1:1000-1500", "chr1:5000-5400", "chr2:100-900", "chrM:10-300"]
    assert a.X.dtype == np.uint8 and set(np.unique(a.X.data)) == {1}
    q = a[a.obs["domain"] == "query"]
    # query peaks 0 and 1 both map to chr1:1000-1500 and are OR-ed: cell 0 has both -> one 1
    np.testing.assert_array_equal(q.X.toarray(), [[1, 0, 0, 0], [0, 0, 1, 0], [1, 0, 0, 1]])
    assert s["query_peaks_mapped"] == 4 and s["query_peaks_unmapped"] == 1
    assert s["reference_peaks_with_several_query_peaks"] == 1
    assert s["chromosome_renames"] == {"1": "chr1", "2": "chr2", "MT": "chrM"}
    # query accessibility: 6 binarized entries, 1 on the unmapped chr3 peak
    assert s["query_accessibility_retained"] == pytest.approx(5 / 6, abs=1e-6)
    assert list(a.obs["domain"].cat.categories) == ["reference", "query"]
    assert a.obs_names.is_unique and (a.obs["original_id"][:4] == ["c0", "c1", "c2", "c3"]).all()
    assert a.var["n_cells_query"].tolist() == [2, 0, 1, 1]
    assert a.var["n_cells_reference"].tolist() == [2, 2, 2, 2]


def test_overlap_must_exceed_half_width(tmp_path):
    ref = _write(tmp_path / "r.h5ad", [[1, 1], [1, 1]], ["chr1:1000-1500", "chr1:9000-9500"])
    # midpoints 240 bp and 260 bp away: overlap of 500-bp windows 260 (> 250, maps) and 240 (no)
    qry = _write(tmp_path / "q.h5ad", [[1, 1], [1, 1]], ["chr1:1240-1740", "chr1:9260-9760"])
    a, s = prepare(ref, qry, "ct", overlap_width=500, min_peak_frac=0.0)
    assert s["query_peaks_mapped"] == 1
    assert a.obs["ct"][a.obs["domain"] == "query"].isna().all()  # no query labels key
    assert a.uns["seqalignatac"]["labels_key"] == "ct"  # the user's column name, kept


def test_rare_peaks_dropped(tmp_path):
    x = np.zeros((20, 3))
    x[:, 0] = 1
    x[0, 1] = 1
    x[:5, 2] = 1
    ref = _write(tmp_path / "r.h5ad", x, ["chr1:0-500", "chr1:1000-1500", "chr1:3000-3500"])
    qry = _write(tmp_path / "q.h5ad", x[:10], ["chr1:0-500", "chr1:1000-1500", "chr1:3000-3500"])
    a, s = prepare(ref, qry, "ct", min_peak_frac=0.1)  # 30 cells -> at least 3
    assert list(a.var_names) == ["chr1:0-500", "chr1:3000-3500"]
    assert s["peaks_dropped_rare"] == 1 and s["min_cells_per_peak"] == 3
    assert s["query_accessibility_retained"] == pytest.approx(15 / 16)


def test_var_columns_win_over_names(tmp_path):
    ref = _write(
        tmp_path / "r.h5ad",
        [[1, 0], [0, 1]],
        ["p1", "p2"],
        var={"seqnames": ["chr1", "chr1"], "start": [0, 2000], "end": [500, 2500]},
    )
    qry = _write(tmp_path / "q.h5ad", [[1, 1]], ["chr1:0-500", "chr1:2000-2500"])
    a, _ = prepare(ref, qry, "ct", min_peak_frac=0.0)
    assert list(a.var_names) == ["chr1:0-500", "chr1:2000-2500"]


def test_on_simulation(prepared, sim):
    a = ad.read_h5ad(prepared / "accessibility.h5ad")
    s = json.loads((prepared / "prepare_summary.json").read_text())
    assert a.uns["seqalignatac"]["prepare"]["peaks_kept"] == s["peaks_kept"] == a.n_vars
    assert s["cells"]["reference"] + s["cells"]["query"] == a.n_obs == 600
    assert 0.8 < s["query_accessibility_retained"] <= 1.0
    # the simulator's query-only peaks stay unmapped; its split peaks are OR-ed onto one reference peak
    truth = pd.read_csv(sim["truth"], sep="\t")
    assert s["query_peaks_unmapped"] == (truth["in_query"] & ~truth["in_reference"]).sum()
    assert s["reference_peaks_with_several_query_peaks"] == truth["split_in_query"].sum()
    assert a.obs[sim["labels_key"]].notna().all()
    bed = pd.read_csv(prepared / "peaks.bed", sep="\t", header=None)
    assert list(bed[3]) == list(a.var_names)
    assert not list(prepared.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_cli_writes_outputs(pair, tmp_path):
    ref, qry = pair
    res = _run(
        "--reference", ref, "--query", qry, "--labels-key", "ct", "--outdir", tmp_path / "out", "--min-peak-frac", "0"
    )
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "out").iterdir()} == {"accessibility.h5ad", "peaks.bed", "prepare_summary.json"}


# ---------------------------------------------------------------- bad input


def test_missing_file(pair, tmp_path):
    ref, _ = pair
    assert_one_line_error(
        _run("--reference", ref, "--query", tmp_path / "nope.h5ad", "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "nope.h5ad",
        "does not exist",
    )


def test_unreadable_file(pair, tmp_path):
    ref, _ = pair
    bad = tmp_path / "bad.h5ad"
    bad.write_text("not hdf5")
    assert_one_line_error(
        _run("--reference", ref, "--query", bad, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "bad.h5ad",
        "cannot read as .h5ad",
    )


def test_no_coordinates(pair, tmp_path):
    ref, _ = pair
    q = _write(tmp_path / "genes.h5ad", [[1, 1]], ["GAPDH", "CD3E"])
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "genes.h5ad",
        "'GAPDH'",
        "not a peak coordinate",
    )


@pytest.mark.parametrize("names, problem", [(["chr1:600-100", "chr1:700-900"], "start >= end")])
def test_malformed_coordinates(pair, tmp_path, names, problem):
    ref, _ = pair
    q = _write(tmp_path / "mal.h5ad", [[1, 1]], names)
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "mal.h5ad",
        "chr1:600-100",
        problem,
    )


def test_negative_start(pair, tmp_path):
    ref, _ = pair
    q = _write(
        tmp_path / "neg.h5ad",
        [[1, 1]],
        ["p1", "p2"],
        var={"chrom": ["chr1", "chr1"], "start": [-5, 10], "end": [100, 200]},
    )
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "neg.h5ad",
        "negative start",
    )


def test_label_key_absent(pair, tmp_path):
    ref, qry = pair
    assert_one_line_error(
        _run("--reference", ref, "--query", qry, "--labels-key", "celltype", "--outdir", tmp_path / "o"),
        "ref.h5ad",
        "'celltype'",
        "available: ct",
    )
    assert_one_line_error(
        _run(
            "--reference",
            ref,
            "--query",
            qry,
            "--labels-key",
            "ct",
            "--query-labels-key",
            "truth",
            "--outdir",
            tmp_path / "o",
        ),
        "qry.h5ad",
        "'truth'",
    )


def test_labels_key_cannot_be_a_column_the_package_adds(pair, tmp_path):
    ref, qry = pair
    assert_one_line_error(
        _run("--reference", ref, "--query", qry, "--labels-key", "domain", "--outdir", tmp_path / "o"),
        "ref.h5ad",
        "'domain' is a column seqAlignATAC adds",
    )


def test_all_labels_missing(tmp_path, pair):
    _, qry = pair
    ref = _write(
        tmp_path / "nolab.h5ad", [[1, 0], [0, 1]], ["chr1:1000-1500", "chr2:100-900"], obs={"ct": [np.nan, ""]}
    )
    assert_one_line_error(
        _run("--reference", ref, "--query", qry, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "nolab.h5ad",
        "no labels",
    )


def test_no_overlapping_peaks(pair, tmp_path):
    ref, _ = pair
    q = _write(tmp_path / "far.h5ad", [[1, 1]], ["chr9:100-600", "chr9:5000-5500"])
    line = assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "far.h5ad",
        "no query peak overlaps",
    )
    assert "genome build" in line
    assert not (tmp_path / "o" / "prepare_summary.json").exists()


def test_duplicate_names(pair, tmp_path):
    ref, _ = pair
    q = _write(tmp_path / "dupc.h5ad", [[1, 1], [1, 0]], ["chr1:1000-1500", "chr2:100-900"], obs_names=["x", "x"])
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "dupc.h5ad",
        "duplicate cell names",
        "'x'",
    )
    q = tmp_path / "dupp.h5ad"
    a = ad.AnnData(
        X=sp.csr_matrix(np.ones((2, 2), dtype=np.float32)),
        obs=pd.DataFrame(index=["a", "b"]),
        var=pd.DataFrame(index=["chr1:1000-1500", "chr1:1000-1500"]),
    )
    a.write_h5ad(q)
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "dupp.h5ad",
        "duplicate peak names",
    )


def test_empty_matrices(pair, tmp_path):
    ref, _ = pair
    q = _write(tmp_path / "zeros.h5ad", np.zeros((2, 2)), ["chr1:1000-1500", "chr2:100-900"])
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "zeros.h5ad",
        "no non-zero values",
    )
    q = tmp_path / "nocells.h5ad"
    ad.AnnData(X=sp.csr_matrix((0, 2), dtype=np.float32), var=pd.DataFrame(index=["chr1:1-5", "chr1:9-20"])).write_h5ad(
        q
    )
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"),
        "nocells.h5ad",
        "empty",
    )


def test_transposed_input(pair, tmp_path):
    ref, _ = pair
    q = tmp_path / "t.h5ad"
    ad.AnnData(
        X=sp.csr_matrix(np.ones((2, 2), dtype=np.float32)),
        obs=pd.DataFrame(index=["chr1:1-500", "chr1:900-1200"]),
        var=pd.DataFrame(index=["AAAC-1", "AAAG-1"]),
    ).write_h5ad(q)
    assert_one_line_error(
        _run("--reference", ref, "--query", q, "--labels-key", "ct", "--outdir", tmp_path / "o"), "t.h5ad", "transpose"
    )


def test_all_peaks_rare(pair, tmp_path):
    ref, qry = pair
    assert_one_line_error(
        _run(
            "--reference",
            ref,
            "--query",
            qry,
            "--labels-key",
            "ct",
            "--outdir",
            tmp_path / "o",
            "--min-peak-frac",
            "0.99",
        ),
        "ref.h5ad",
        "lower --min-peak-frac",
    )
