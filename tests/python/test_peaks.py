"""Peak coordinates: id formats, var columns, BED round trip, chromosome-name reconciliation."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from seqalignatac.errors import InputError
from seqalignatac.io.peaks import (
    coords_from_var,
    looks_like_peak_ids,
    parse_peak_ids,
    peak_ids,
    read_bed,
    read_peak_table,
    reconcile_chroms,
    trimmed,
    write_bed,
)


@pytest.mark.parametrize(
    "pid, expected",
    [
        ("chr1:100-600", ("chr1", 100, 600)),
        ("chr1-100-600", ("chr1", 100, 600)),
        ("chr1_100_600", ("chr1", 100, 600)),
        ("chrUn_gl000220_100_600", ("chrUn_gl000220", 100, 600)),
        ("chr1_KI270706v1_random-5-90", ("chr1_KI270706v1_random", 5, 90)),
        ("X:0-30", ("X", 0, 30)),
    ],
)
def test_parse_formats(pid, expected):
    df = parse_peak_ids([pid])
    assert tuple(df.iloc[0]) == expected


def test_round_trip_ids():
    df = parse_peak_ids(["chr2:5-10", "chr10_1_2"])
    assert list(peak_ids(df["chrom"], df["start"], df["end"])) == ["chr2:5-10", "chr10:1-2"]


@pytest.mark.parametrize(
    "ids, needle",
    [
        (["chr1:100-600", "GAPDH"], "peak 2 ('GAPDH')"),
        (["chr1:600-100"], "start >= end"),
        (["chr1:100-100"], "start >= end"),
    ],
)
def test_bad_ids(ids, needle):
    with pytest.raises(InputError, match="x.h5ad") as e:
        parse_peak_ids(ids, "x.h5ad")
    assert needle in str(e.value)


def test_var_columns_win_and_aliases():
    var = pd.DataFrame({"chr": ["1", "2"], "chromStart": [0, 10], "chromEnd": [5, 20]}, index=["a", "b"])
    df = coords_from_var(var)
    assert df.to_dict("list") == {"chrom": ["1", "2"], "start": [0, 10], "end": [5, 20]}
    var = pd.DataFrame({"seqnames": ["chr1"], "start": ["x"], "end": [3]}, index=["chr1:0-3"])
    with pytest.raises(InputError, match="integer"):
        coords_from_var(var, "f.h5ad")


def test_looks_like_peak_ids():
    assert looks_like_peak_ids(["chr1:1-5", "chr2-3-9"])
    assert not looks_like_peak_ids(["AAACGA-1", "chr1:1-5"])


def test_bed_round_trip_and_header_tsv(tmp_path):
    df = pd.DataFrame({"chrom": ["chr1", "chr2"], "start": [0, 100], "end": [50, 200], "name": ["a", "b"]})
    write_bed(df, tmp_path / "p.bed")
    back = read_bed(tmp_path / "p.bed")
    assert back[["chrom", "start", "end", "name"]].to_dict("list") == df.to_dict("list")
    # a header TSV (Granja peaks.tsv style) and a gzipped 3-column BED without names
    (tmp_path / "p.tsv").write_text("chrom\tchromStart\tchromEnd\tpeak_id\tGC\nchr1\t5\t10\tp1\t0.5\n")
    t = read_peak_table(tmp_path / "p.tsv")
    assert t.loc[0, "name"] == "p1" and t.loc[0, "start"] == 5 and t.loc[0, "GC"] == "0.5"
    with gzip.open(tmp_path / "p.bed.gz", "wt") as fh:
        fh.write("track name=x\nchr3\t1\t9\n")
    assert read_bed(tmp_path / "p.bed.gz").loc[0, "name"] == "chr3:1-9"
    # narrowPeak: name '.', extra numeric columns
    (tmp_path / "x.narrowPeak").write_text(
        "chr1\t10\t90\t.\t0\t.\t5.1\t3.2\t2.0\t40\nchr1\t100\t190\t.\t0\t.\t5\t3\t2\t40\n"
    )
    assert list(read_bed(tmp_path / "x.narrowPeak")["name"]) == ["chr1:10-90", "chr1:100-190"]


def test_reconcile_chroms():
    m = reconcile_chroms(["chr1", "chrM", "2", "MT", "chrZ"], ["1", "MT", "chr2", "chrM"])
    assert m == {"chr1": "1", "chrM": "chrM", "2": "chr2", "MT": "MT"}


def test_trimmed_windows():
    s, e = trimmed([100, 0], [601, 10], 500)
    assert list(s) == [100, 0] and list(e) == [600, 255]
