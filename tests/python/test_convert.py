"""convert: MatrixMarket / 10x folder / 10x .h5 -> .h5ad, axis detection, --split-by, bad input, real data."""

from __future__ import annotations

import gzip
import json

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli

PEAKS = ["chr1:100-600", "chr1:1000-1500", "chr2:50-450"]
CELLS = ["AAAC-1", "AAAG-1", "AAAT-1", "AACA-1"]
# cells x peaks truth
X = np.array([[1, 0, 2], [0, 3, 0], [1, 1, 0], [0, 0, 4]], dtype=np.float32)


def _mtx(path, m, gz=False):
    if gz:
        with gzip.open(path, "wb") as fh:
            scipy.io.mmwrite(fh, sp.coo_matrix(m))
    else:
        scipy.io.mmwrite(str(path), sp.coo_matrix(m))
    return path


def _bed(path, ids=PEAKS, gz=False):
    text = "".join(i.replace(":", "\t").replace("-", "\t") + "\n" for i in ids)
    if gz:
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def _run(*args):
    return CliRunner().invoke(cli, ["convert", *map(str, args)])


def _ok(res):
    assert res.exit_code == 0, res.output
    return json.loads(res.output.strip().splitlines()[-1])["written"]


def test_mtx_peaks_by_cells_with_metadata(tmp_path):
    _mtx(tmp_path / "m.mtx", X.T)
    _bed(tmp_path / "p.bed")
    (tmp_path / "cells.tsv").write_text(
        "cell_id\tdonor\tdepth\n" + "".join(f"{c}\t{'d1' if i < 2 else 'd 2'}\t{i * 10}\n" for i, c in enumerate(CELLS))
    )
    [out] = _ok(
        _run(
            "--matrix",
            tmp_path / "m.mtx",
            "--peaks",
            tmp_path / "p.bed",
            "--cells",
            tmp_path / "cells.tsv",
            "--out",
            tmp_path / "o.h5ad",
        )
    )
    a = ad.read_h5ad(out)
    assert list(a.obs_names) == CELLS and list(a.var_names) == PEAKS
    np.testing.assert_array_equal(a.X.toarray(), X)
    assert a.var["start"].tolist() == [100, 1000, 50] and a.obs["depth"].tolist() == [0, 10, 20, 30]


def test_mtx_cells_by_peaks_detected(tmp_path):
    _mtx(tmp_path / "m.mtx.gz", X, gz=True)
    _bed(tmp_path / "p.bed")
    (tmp_path / "barcodes.tsv").write_text("\n".join(CELLS) + "\n")
    [out] = _ok(
        _run(
            "--matrix",
            tmp_path / "m.mtx.gz",
            "--peaks",
            tmp_path / "p.bed",
            "--cells",
            tmp_path / "barcodes.tsv",
            "--out",
            tmp_path / "o.h5ad",
        )
    )
    np.testing.assert_array_equal(ad.read_h5ad(out).X.toarray(), X)


def test_split_by(tmp_path):
    _mtx(tmp_path / "m.mtx", X.T)
    _bed(tmp_path / "p.bed")
    (tmp_path / "cells.tsv").write_text(
        "cell\tdonor\n" + "".join(f"{c}\t{'d1' if i < 2 else 'd/2'}\n" for i, c in enumerate(CELLS))
    )
    written = _ok(
        _run(
            "--matrix",
            tmp_path / "m.mtx",
            "--peaks",
            tmp_path / "p.bed",
            "--cells",
            tmp_path / "cells.tsv",
            "--out",
            tmp_path / "split",
            "--split-by",
            "donor",
        )
    )
    assert sorted(p.split("/")[-1] for p in written) == ["d1.h5ad", "d_2.h5ad"]
    d2 = ad.read_h5ad(tmp_path / "split" / "d_2.h5ad")
    assert list(d2.obs_names) == CELLS[2:]
    np.testing.assert_array_equal(d2.X.toarray(), X[2:])


def test_10x_folder(tmp_path):
    f = tmp_path / "filtered_peak_bc_matrix"
    f.mkdir()
    _mtx(f / "matrix.mtx.gz", X.T, gz=True)
    _bed(f / "peaks.bed.gz", gz=True)
    with gzip.open(f / "barcodes.tsv.gz", "wt") as fh:
        fh.write("\n".join(CELLS) + "\n")
    [out] = _ok(_run("--matrix", f, "--out", tmp_path / "o.h5ad"))
    a = ad.read_h5ad(out)
    assert list(a.var_names) == PEAKS and list(a.obs_names) == CELLS
    np.testing.assert_array_equal(a.X.toarray(), X)


def test_10x_arc_folder_features_tsv(tmp_path):
    """Multiome (ARC) folders list genes and peaks in features.tsv; only peaks are kept."""
    f = tmp_path / "arc"
    f.mkdir()
    genes = np.array([[5, 1, 0, 2]], dtype=np.float32)  # one gene row
    _mtx(f / "matrix.mtx", np.vstack([genes, X.T]))
    (f / "features.tsv").write_text(
        "ENSG1\tGAPDH\tGene Expression\tchr1\t1\t9\n" + "".join(f"{p}\t{p}\tPeaks\n" for p in PEAKS)
    )
    (f / "barcodes.tsv").write_text("\n".join(CELLS) + "\n")
    a = ad.read_h5ad(_ok(_run("--matrix", f, "--out", tmp_path / "o.h5ad"))[0])
    assert list(a.var_names) == PEAKS
    np.testing.assert_array_equal(a.X.toarray(), X)


def _write_10x_h5(path, with_genes=False):
    feats, m = list(PEAKS), X.T
    types = ["Peaks"] * len(PEAKS)
    if with_genes:
        feats, types = ["ENSG1"] + feats, ["Gene Expression"] + types
        m = np.vstack([np.ones((1, len(CELLS))), m])
    csc = sp.csc_matrix(m)  # features x barcodes, column-compressed like Cell Ranger
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["barcodes"] = np.array(CELLS, dtype="S")
        g["data"], g["indices"], g["indptr"] = csc.data.astype(np.int32), csc.indices, csc.indptr
        g["shape"] = np.array(csc.shape, dtype=np.int32)
        fg = g.create_group("features")
        fg["id"] = np.array(feats, dtype="S")
        fg["name"] = np.array(feats, dtype="S")
        fg["feature_type"] = np.array(types, dtype="S")
        fg["genome"] = np.array(["hg38"] * len(feats), dtype="S")


@pytest.mark.parametrize("with_genes", [False, True])
def test_10x_h5(tmp_path, with_genes):
    _write_10x_h5(tmp_path / "filtered_peak_bc_matrix.h5", with_genes)
    a = ad.read_h5ad(_ok(_run("--matrix", tmp_path / "filtered_peak_bc_matrix.h5", "--out", tmp_path / "o.h5ad"))[0])
    assert list(a.var_names) == PEAKS and list(a.obs_names) == CELLS
    np.testing.assert_array_equal(a.X.toarray(), X)


# ---------------------------------------------------------------- bad input


@pytest.fixture
def files(tmp_path):
    _mtx(tmp_path / "m.mtx", X.T)
    _bed(tmp_path / "p.bed")
    (tmp_path / "b.tsv").write_text("\n".join(CELLS) + "\n")
    return tmp_path


def test_missing_and_incomplete(files):
    t = files
    assert_one_line_error(
        _run("--matrix", t / "nope.mtx", "--peaks", t / "p.bed", "--cells", t / "b.tsv", "--out", t / "o.h5ad"),
        "nope.mtx",
        "does not exist",
    )
    assert_one_line_error(_run("--matrix", t / "m.mtx", "--out", t / "o.h5ad"), "m.mtx", "needs --peaks")
    assert_one_line_error(
        _run("--matrix", t / "m.mtx", "--peaks", t / "p.bed", "--cells", t / "none.tsv", "--out", t / "o.h5ad"),
        "none.tsv",
        "does not exist",
    )


def test_shape_mismatch(files):
    t = files
    (t / "b3.tsv").write_text("\n".join(CELLS[:3]) + "\n")
    assert_one_line_error(
        _run("--matrix", t / "m.mtx", "--peaks", t / "p.bed", "--cells", t / "b3.tsv", "--out", t / "o.h5ad"),
        "m.mtx",
        "3 x 4",
        "3 cells",
    )


def test_duplicate_names(files):
    t = files
    (t / "dup.tsv").write_text("\n".join(["A", "A", "B", "C"]) + "\n")
    assert_one_line_error(
        _run("--matrix", t / "m.mtx", "--peaks", t / "p.bed", "--cells", t / "dup.tsv", "--out", t / "o.h5ad"),
        "duplicate cell names",
        "'A'",
    )
    _bed(t / "dupp.bed", ids=[PEAKS[0], PEAKS[0], PEAKS[2]])
    assert_one_line_error(
        _run("--matrix", t / "m.mtx", "--peaks", t / "dupp.bed", "--cells", t / "b.tsv", "--out", t / "o.h5ad"),
        "duplicate peak names",
    )


def test_empty_matrix(files):
    t = files
    _mtx(t / "z.mtx", sp.coo_matrix((3, 4)))
    assert_one_line_error(
        _run("--matrix", t / "z.mtx", "--peaks", t / "p.bed", "--cells", t / "b.tsv", "--out", t / "o.h5ad"),
        "z.mtx",
        "empty",
    )
    assert not (t / "o.h5ad").exists()


def test_malformed_peaks_and_matrix(files):
    t = files
    (t / "bad.bed").write_text("chr1\t600\t100\nchr1\t1\t5\nchr2\t1\t9\n")
    assert_one_line_error(
        _run("--matrix", t / "m.mtx", "--peaks", t / "bad.bed", "--cells", t / "b.tsv", "--out", t / "o.h5ad"),
        "bad.bed",
        "start >= end",
    )
    (t / "notmtx.mtx").write_text("hello\n")
    assert_one_line_error(
        _run("--matrix", t / "notmtx.mtx", "--peaks", t / "p.bed", "--cells", t / "b.tsv", "--out", t / "o.h5ad"),
        "notmtx.mtx",
        "MatrixMarket",
    )
    (t / "bad.h5").write_text("not hdf5")
    assert_one_line_error(_run("--matrix", t / "bad.h5", "--out", t / "o.h5ad"), "bad.h5", "HDF5")
    with h5py.File(t / "other.h5", "w") as f:
        f["x"] = [1, 2]
    assert_one_line_error(_run("--matrix", t / "other.h5", "--out", t / "o.h5ad"), "other.h5", "not a 10x")
    (t / "emptydir").mkdir()
    assert_one_line_error(_run("--matrix", t / "emptydir", "--out", t / "o.h5ad"), "emptydir", "matrix.mtx")


def test_split_column_absent(files):
    t = files
    assert_one_line_error(
        _run(
            "--matrix",
            t / "m.mtx",
            "--peaks",
            t / "p.bed",
            "--cells",
            t / "b.tsv",
            "--out",
            t / "s",
            "--split-by",
            "donor",
        ),
        "b.tsv",
        "'donor'",
    )


# ---------------------------------------------------------------- real data


@pytest.mark.realdata
def test_granja_convert_prepare_extract_gc(shared_data, tmp_path):
    """Granja 2019: convert split by Group; prepare D6T1 -> D5T1; extract native; GC matches upstream."""
    g = shared_data / "granja2019_bmmc_hemato"
    written = _ok(
        _run(
            "--matrix",
            g / "counts_peaks_x_cells.mtx.gz",
            "--peaks",
            g / "peaks.tsv",
            "--cells",
            g / "cells.tsv",
            "--out",
            tmp_path / "split",
            "--split-by",
            "Group",
        )
    )
    assert sorted(p.split("/")[-1] for p in written) == ["BMMC_D5T1.h5ad", "BMMC_D6T1.h5ad"]
    d5 = ad.read_h5ad(tmp_path / "split" / "BMMC_D5T1.h5ad")
    assert d5.shape == (3790, 10000) and d5.obs["BioClassification"].nunique() == 16

    res = CliRunner().invoke(
        cli,
        [
            "prepare",
            "--reference",
            str(tmp_path / "split" / "BMMC_D6T1.h5ad"),
            "--query",
            str(tmp_path / "split" / "BMMC_D5T1.h5ad"),
            "--labels-key",
            "BioClassification",
            "--query-labels-key",
            "BioClassification",
            "--outdir",
            str(tmp_path / "prepare"),
            "--min-peak-frac",
            "0",
        ],
    )
    assert res.exit_code == 0, res.output
    s = json.loads((tmp_path / "prepare" / "prepare_summary.json").read_text())
    assert s["cells"] == {"reference": 10335, "query": 3790}
    assert s["query_peaks_mapped"] == 10000 and s["query_accessibility_retained_mapped"] == 1.0

    res = CliRunner().invoke(
        cli,
        [
            "extract",
            "--peaks",
            str(tmp_path / "prepare" / "peaks.bed"),
            "--fasta",
            str(shared_data / "hg19_partial_genome" / "hg19_subset.fa.gz"),
            "--out",
            str(tmp_path / "peaks.fa"),
            "--width",
            "native",
        ],
    )
    assert res.exit_code == 0, res.output
    summ = json.loads((tmp_path / "peaks.fa.summary.json").read_text())
    assert summ["peaks_on_absent_contigs"] > 0 and summ["written"] + summ["peaks_on_absent_contigs"] == summ["peaks"]
    seqs, name = {}, None
    for line in open(tmp_path / "peaks.fa"):
        if line.startswith(">"):
            name = line[1:].strip()
        else:
            seqs[name] = line.strip()
    # the peaks lying entirely inside one real-sequence interval (pyranges overlap, then containment)
    import pyranges as pr

    peaks = pd.read_csv(g / "peaks.tsv", sep="\t")
    avail = pd.read_csv(shared_data / "hg19_partial_genome" / "hg19_subset.available.bed", sep="\t", header=None)
    joined = (
        pr.PyRanges(
            pd.DataFrame(
                {
                    "Chromosome": peaks["chrom"],
                    "Start": peaks["chromStart"],
                    "End": peaks["chromEnd"],
                    "peak_id": peaks["peak_id"],
                }
            )
        )
        .join(pr.PyRanges(pd.DataFrame({"Chromosome": avail[0], "Start": avail[1], "End": avail[2]})))
        .df
    )
    inside_ids = set(joined.loc[(joined["Start"] >= joined["Start_b"]) & (joined["End"] <= joined["End_b"]), "peak_id"])
    inside = peaks[peaks["peak_id"].isin(inside_ids)]
    assert len(inside) == 575
    for pid, gc in zip(inside["peak_id"], inside["GC"]):
        seq = seqs[pid]
        assert len(seq) == 501
        assert abs((seq.count("G") + seq.count("C")) / len(seq) - gc) < 1e-9, pid
