"""Issue 14, classes 5 and 6: non-finite or non-integer values in the inputs, and degenerate references,
are refused at once with one line naming the file, the row/peak/column and what to do; nothing is written."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli

N_PEAKS = 20


def _h5ad(path, n_cells=40, labels=("A", "B"), dtype=np.float32, seed=0, var=None):
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix((rng.random((n_cells, N_PEAKS)) < 0.4).astype(dtype))
    obs = pd.DataFrame(
        {"cell_type": [labels[i % len(labels)] for i in range(n_cells)]},
        index=[f"{path.stem}{i}" for i in range(n_cells)],
    )
    if var is None:
        var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(N_PEAKS)])
    a = ad.AnnData(x, obs=obs, var=var)
    a.write_h5ad(path)
    return a


@pytest.fixture
def pair(tmp_path):
    ref, query = tmp_path / "ref.h5ad", tmp_path / "query.h5ad"
    _h5ad(ref)
    _h5ad(query, n_cells=30, seed=1)
    return ref, query


def _prepare(ref, query, out, *extra):
    return CliRunner().invoke(
        cli,
        [
            "prepare",
            "--reference",
            str(ref),
            "--query",
            str(query),
            "--labels-key",
            "cell_type",
            "--outdir",
            str(out),
            *extra,
        ],
    )


def _set_entries(path, values):
    """Overwrite the first stored entries of the matrix in ``path``."""
    a = ad.read_h5ad(path)
    x = a.X.copy()
    x.data[: len(values)] = values
    a.X = x
    a.write_h5ad(path)


# ------------------------------------------------------------------ class 5: non-finite and non-integer values


@pytest.mark.parametrize("which", ["reference", "query"])
@pytest.mark.parametrize(
    "values, needle",
    [
        ([np.nan, np.nan], "2 NaN or infinite entries"),
        ([np.inf], "1 NaN or infinite entries"),
        ([-np.inf, np.nan, 3.0], "2 NaN or infinite entries"),
        ([-1.0, -2.0, -3.0], "3 negative entries"),
    ],
)
def test_bad_counts_are_refused_naming_the_file_and_count(pair, tmp_path, which, values, needle):
    ref, query = pair
    bad = ref if which == "reference" else query
    _set_entries(bad, values)
    out = tmp_path / "out"
    assert_one_line_error(_prepare(ref, query, out), str(bad), needle)
    assert not out.exists()


def _with_var(tmp_path, pair, column, values):
    ref, query = pair
    var = pd.DataFrame(
        {
            "chrom": ["chr1"] * N_PEAKS,
            "start": [i * 1000 for i in range(N_PEAKS)],
            "end": [i * 1000 + 500 for i in range(N_PEAKS)],
        },
        index=[f"p{i}" for i in range(N_PEAKS)],
    )
    var[column] = var[column].astype(object)
    for i, v in values.items():
        var.loc[f"p{i}", column] = v
    if column != "chrom":
        var[column] = var[column].astype(float)
    _h5ad(ref, var=var)
    return ref, query


@pytest.mark.parametrize(
    "column, values, needles",
    [
        ("start", {3: 3000.5}, ["peak 4 ('p3')", "column 'start' holds 3000.5, not a whole number", "(1 such peaks)"]),
        ("end", {0: 499.9, 5: 5500.2}, ["peak 1 ('p0')", "column 'end'", "(2 such peaks)"]),
        ("start", {2: np.nan}, ["peak 3 ('p2')", "column 'start' holds nan"]),
        ("chrom", {7: np.nan}, ["peak 8 ('p7')", "column 'chrom' has no chromosome", "every peak needs one"]),
        ("chrom", {7: "nan", 8: ""}, ["peak 8 ('p7')", "(2 such peaks)"]),
    ],
)
def test_bad_coordinates_in_var_are_refused_naming_the_peak(pair, tmp_path, column, values, needles):
    ref, query = _with_var(tmp_path, pair, column, values)
    out = tmp_path / "out"
    assert_one_line_error(_prepare(ref, query, out), str(ref), *needles)
    assert not out.exists()


def test_nan_chromosome_in_peak_ids_is_refused(pair, tmp_path):
    ref, query = pair
    var = pd.DataFrame(index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(N_PEAKS - 1)] + ["nan:1-500"])
    _h5ad(query, n_cells=30, var=var)
    out = tmp_path / "out"
    assert_one_line_error(_prepare(ref, query, out), str(query), "'nan:1-500'", "has no chromosome")
    assert not out.exists()


def _mtx(tmp_path, value="1", bed_line=None):
    (tmp_path / "m.mtx").write_text(
        f"%%MatrixMarket matrix coordinate real general\n3 2 3\n1 1 1\n2 2 {value}\n3 1 2\n"
    )
    lines = ["chr1\t100\t600", "chr1\t1000\t1500", "chr2\t100\t600"]
    if bed_line is not None:
        lines[1] = bed_line
    (tmp_path / "p.bed").write_text("\n".join(lines) + "\n")
    (tmp_path / "c.tsv").write_text("cell_a\ncell_b\n")
    return [
        "convert",
        "--matrix",
        str(tmp_path / "m.mtx"),
        "--peaks",
        str(tmp_path / "p.bed"),
        "--cells",
        str(tmp_path / "c.tsv"),
        "--out",
        str(tmp_path / "out.h5ad"),
    ]


@pytest.mark.parametrize(
    "value, bed_line, needles",
    [
        ("nan", None, ["m.mtx", "1 NaN or infinite entries"]),
        ("inf", None, ["m.mtx", "1 NaN or infinite entries"]),
        ("-4", None, ["m.mtx", "1 negative entries"]),
        ("1", "chr1\t1000.5\t1500", ["p.bed", "line 2: start '1000.5' is not an integer"]),
        ("1", "chr1\t1000\t1500.0001", ["p.bed", "line 2: end '1500.0001' is not an integer"]),
        ("1", "nan\t1000\t1500", ["p.bed", "line 2: chromosome 'nan' is missing"]),
        ("1", "\t1000\t1500", ["p.bed", "line 2: chromosome '' is missing"]),
    ],
)
def test_convert_refuses_non_finite_counts_and_bad_peaks(tmp_path, value, bed_line, needles):
    res = CliRunner().invoke(cli, _mtx(tmp_path, value, bed_line))
    assert_one_line_error(res, *needles)
    assert not (tmp_path / "out.h5ad").exists()


def test_convert_still_reads_whole_numbers_written_as_floats(tmp_path):
    res = CliRunner().invoke(cli, _mtx(tmp_path, "2", "chr1\t1000.0\t1500"))
    assert res.exit_code == 0, res.output
    assert list(ad.read_h5ad(tmp_path / "out.h5ad").var_names) == ["chr1:100-600", "chr1:1000-1500", "chr2:100-600"]


# ------------------------------------------------------------------ class 6: degenerate references


@pytest.mark.parametrize(
    "labels, needles",
    [
        (("A",), ["obs column 'cell_type'", "single class ('A')", "at least 2"]),
        (("A", "Unknown"), ["obs column 'cell_type'", "'Unknown' is reserved", "rename that class"]),
        (("A", "unknown "), ["'unknown ' is reserved"]),
        (
            ("T cell", "T cell ", "B"),
            ["obs column 'cell_type'", "'T cell', 'T cell '", "differ only by case or spaces"],
        ),
        (("NK", "nk", "B"), ["'NK', 'nk'", "differ only by case or spaces"]),
    ],
)
def test_degenerate_reference_classes_are_refused_at_prepare(pair, tmp_path, labels, needles):
    ref, query = pair
    _h5ad(ref, labels=labels)
    out = tmp_path / "out"
    assert_one_line_error(_prepare(ref, query, out), str(ref), *needles)
    assert not out.exists()


def test_peaks_with_identical_coordinates_are_refused_naming_both(pair, tmp_path):
    ref, query = pair
    var = pd.DataFrame(
        {
            "chrom": ["chr1"] * N_PEAKS,
            "start": [i * 1000 for i in range(N_PEAKS)],
            "end": [i * 1000 + 500 for i in range(N_PEAKS)],
        },
        index=[f"peak{i}" for i in range(N_PEAKS)],
    )
    var.iloc[9, 1:] = var.iloc[4, 1:]  # peak9 on peak4's interval
    _h5ad(ref, var=var)
    out = tmp_path / "out"
    assert_one_line_error(
        _prepare(ref, query, out),
        str(ref),
        "peaks 'peak4' and 'peak9'",
        "same coordinates chr1:4000-4500",
        "keep one of them",
    )
    assert not out.exists()


def test_train_refuses_input_that_prepare_did_not_write(pair, tmp_path):
    ref, _ = pair
    out = tmp_path / "out"
    res = CliRunner().invoke(cli, ["train", "--accessibility", str(ref), "--outdir", str(out), "--method", "lsi"])
    assert_one_line_error(
        res,
        str(ref),
        "not an accessibility.h5ad written by `seqalignatac prepare`",
        "obs['domain']",
        "run prepare first",
    )
    assert not out.exists()


def test_annotate_refuses_input_that_train_did_not_write(pair, tmp_path):
    ref, query = pair
    assert _prepare(ref, query, tmp_path / "prep").exit_code == 0
    out = tmp_path / "out"
    acc = tmp_path / "prep" / "accessibility.h5ad"
    res = CliRunner().invoke(cli, ["annotate", "--cells", str(acc), "--outdir", str(out), "--method", "knn"])
    assert_one_line_error(
        res, str(acc), "not the cell_embeddings.h5ad written by `seqalignatac train`", "run train first"
    )
    assert not out.exists()
