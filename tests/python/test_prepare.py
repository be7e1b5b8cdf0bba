"""prepare: overlap mapping (SANGO), OR-ing, binarization, peak filter and sequence selection, outputs, bad input."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac import keys
from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.pp.mapping import DEFAULT_MAX_SEQUENCE_PEAKS, prepare, sequence_selection


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


PEAKS3 = ["chr1:0-500", "chr1:1000-1500", "chr1:3000-3500"]


@pytest.fixture
def rare(tmp_path):
    """30 cells; peak 0 open in all, peak 1 in one (a reference cell), peak 2 in ten."""
    x = np.zeros((20, 3))
    x[:, 0] = 1
    x[0, 1] = 1
    x[:5, 2] = 1
    return _write(tmp_path / "r.h5ad", x, PEAKS3), _write(tmp_path / "q.h5ad", x[:10] * [1, 0, 1], PEAKS3)


def test_min_peak_frac_floors_the_sequence_selection_only(rare):
    ref, qry = rare
    a, s = prepare(ref, qry, "ct", min_peak_frac=0.1)  # 30 cells -> at least 3 for the sequence route
    assert list(a.var_names) == PEAKS3  # accessibility keeps every peak with signal (LSI uses them all)
    assert a.var[keys.SEQUENCE_PEAK].tolist() == [True, False, True]
    assert s["peaks_kept"] == 3 and s["peaks_dropped_rare"] == 0 and s["min_cells_per_peak"] == 1
    assert s["peaks_selected_for_sequence"] == 2 and s["min_cells_per_sequence_peak"] == 3
    assert s["max_sequence_peaks"] == DEFAULT_MAX_SEQUENCE_PEAKS
    assert s["query_accessibility_retained"] == 1.0
    assert s["query_accessibility_retained_sequence"] == 1.0  # the query never opens peak 1


def test_defaults_keep_every_peak_with_signal(rare, tmp_path):
    ref, _ = rare
    x = np.zeros((4, 4))
    x[:, 0] = 1
    x[1, 2] = 1  # peak 1 is open nowhere, peak 3 only in the query
    qry = _write(tmp_path / "q4.h5ad", np.c_[x[:, :3], [1, 0, 0, 0]], [*PEAKS3, "chr1:9000-9500"])
    ref4 = _write(tmp_path / "r4.h5ad", x, [*PEAKS3, "chr1:9000-9500"])
    a, s = prepare(ref4, qry, "ct")
    assert list(a.var_names) == ["chr1:0-500", "chr1:3000-3500", "chr1:9000-9500"]
    assert a.var[keys.SEQUENCE_PEAK].all() and s["peaks_selected_for_sequence"] == 3
    assert s["peaks_dropped_rare"] == 1 and s["min_peak_frac"] == 0.0


def test_min_cells_drops_from_accessibility(rare):
    ref, qry = rare
    a, s = prepare(ref, qry, "ct", min_cells=2)
    assert list(a.var_names) == ["chr1:0-500", "chr1:3000-3500"]
    assert s["peaks_dropped_rare"] == 1 and s["min_cells_per_peak"] == 2
    assert a.var[keys.SEQUENCE_PEAK].all()


def test_cap_keeps_the_most_frequently_open_peaks(rare, tmp_path):
    ref, qry = rare
    a, s = prepare(ref, qry, "ct", max_sequence_peaks=2)
    assert a.n_vars == 3 and a.var[keys.SEQUENCE_PEAK].tolist() == [True, False, True]
    a, s = prepare(ref, qry, "ct", max_sequence_peaks=1)
    assert a.var[keys.SEQUENCE_PEAK].tolist() == [True, False, False] and s["peaks_selected_for_sequence"] == 1
    a, s = prepare(ref, qry, "ct", max_sequence_peaks=3)  # at most the cap: all kept
    assert a.var[keys.SEQUENCE_PEAK].all()
    # the floor applies first, then the cap; ties go to the earlier peak
    n_open = np.array([5, 1, 9, 5, 5, 0])
    sel, thr = sequence_selection(n_open, 100, 1, 0.02, 2)
    assert thr == 2 and np.flatnonzero(sel).tolist() == [0, 2]
    sel, _ = sequence_selection(n_open, 100, 1, 0.0, 10)
    assert np.flatnonzero(sel).tolist() == [0, 1, 2, 3, 4]


def test_peaks_bed_holds_only_the_sequence_peaks(rare, tmp_path):
    ref, qry = rare
    res = _run(
        "--reference", ref, "--query", qry, "--labels-key", "ct", "--outdir", tmp_path / "o", "--max-sequence-peaks", 2
    )
    assert res.exit_code == 0, res.output
    a = ad.read_h5ad(tmp_path / "o" / "accessibility.h5ad")
    bed = pd.read_csv(tmp_path / "o" / "peaks.bed", sep="\t", header=None)
    assert a.n_vars == 3 and list(bed[3]) == ["chr1:0-500", "chr1:3000-3500"]
    s = json.loads((tmp_path / "o" / "prepare_summary.json").read_text())
    assert s["peaks_kept"] == 3 and s["peaks_selected_for_sequence"] == 2 and s["max_sequence_peaks"] == 2


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "x"])
def test_bad_max_sequence_peaks_is_one_line(rare, tmp_path, value):
    ref, qry = rare
    res = _run("--reference", ref, "--query", qry, "--outdir", tmp_path / "o", "--max-sequence-peaks", value)
    assert_one_line_error(res, "--max-sequence-peaks")
    with pytest.raises(InputError, match="--max-sequence-peaks"):
        prepare(ref, qry, "ct", max_sequence_peaks=0)


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
    assert list(bed[3]) == list(a.var_names[a.var[keys.SEQUENCE_PEAK]])
    assert s["peaks_selected_for_sequence"] == len(bed)
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
