"""Samplesheet reading: valid sheets, and one clear error (row/column named) per kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.io.samplesheet import read_samplesheet

HEADER = "pair_id,reference,labels_key,query,query_labels_key,fasta\n"


def _sheet(tmp_path: Path, text: str, name: str = "pairs.csv") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_valid_sheet_resolves_paths_beside_the_sheet(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    for f in ("ref.h5ad", "q.h5ad", "g.fa"):
        (data / f).write_text("x")
    sheet = _sheet(data, HEADER + "p1,ref.h5ad,cell_type,q.h5ad,,g.fa\n\np2,ref.h5ad, cell_type ,q.h5ad,cell_type,\n")
    monkeypatch.chdir(tmp_path)  # the files are not relative to the current folder: found beside the sheet
    pairs = read_samplesheet(sheet)
    assert [p.pair_id for p in pairs] == ["p1", "p2"]
    assert pairs[0].reference == data / "ref.h5ad" and pairs[0].fasta == data / "g.fa"
    assert pairs[0].query_labels_key is None and pairs[1].query_labels_key == "cell_type"
    assert pairs[1].labels_key == "cell_type"  # whitespace trimmed
    assert pairs[1].fasta is None
    assert pairs[1].check_files(fasta=data / "g.fa") == data / "g.fa"


def test_relative_to_launch_folder_first(tmp_path, monkeypatch):
    (tmp_path / "ref.h5ad").write_text("x")
    sub = tmp_path / "sheets"
    sub.mkdir()
    sheet = _sheet(sub, "pair_id,reference,labels_key,query\np,ref.h5ad,l,q.h5ad\n")
    monkeypatch.chdir(tmp_path)
    (pair,) = read_samplesheet(sheet)
    assert pair.reference == tmp_path / "ref.h5ad"
    assert pair.query == tmp_path / "q.h5ad"  # missing everywhere: reported where Nextflow would look


def test_bom_and_only_required_columns(tmp_path):
    sheet = tmp_path / "s.csv"
    sheet.write_bytes("\ufeffpair_id,reference,labels_key,query\r\na,/x/r.h5ad,l,/x/q.h5ad\r\n".encode())
    (pair,) = read_samplesheet(sheet)
    assert pair.pair_id == "a" and pair.fasta is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", "samplesheet is empty"),
        ("pair_id,reference,labels_key\n", "missing required column(s) 'query'"),
        ("pair_id\treference\tlabels_key\tquery\n", "comma-separated"),
        (HEADER, "no pairs"),
        (HEADER + "p1,r.h5ad,,q.h5ad,,\n", "row 2, column 'labels_key': empty"),
        (HEADER + "my pair,r.h5ad,l,q.h5ad,,\n", "row 2, column 'pair_id': 'my pair' is not a valid id"),
        (HEADER + "a/b,r.h5ad,l,q.h5ad,,\n", "row 2, column 'pair_id'"),
        (
            HEADER + "p1,r.h5ad,l,q.h5ad,,\np1,r.h5ad,l,q.h5ad,,\n",
            "row 3, column 'pair_id': 'p1' is already used on row 2",
        ),
        (HEADER + "p1,r.h5ad,l,q.h5ad\n", "row 2 has 4 fields but the header has 6"),
        (HEADER + "p1,r.mtx,l,q.h5ad,,\n", "row 2, column 'reference': 'r.mtx' is not an .h5ad file"),
        ("pair_id,reference,labels_key,querry\n", "unknown column 'querry'; did you mean 'query'?"),
        ("pair_id,reference,reference_label_key,query\n", "column 'reference_label_key' is now called 'labels_key'"),
        ("pair_id,reference,reference,labels_key,query\n", "'reference' appear more than once"),
    ],
)
def test_bad_sheets_name_row_and_column(tmp_path, text, expected):
    sheet = _sheet(tmp_path, text)
    with pytest.raises(InputError) as e:
        read_samplesheet(sheet)
    assert expected in str(e.value)
    assert e.value.path == str(sheet)


def test_unknown_extra_column_is_ignored(tmp_path, caplog):
    sheet = _sheet(tmp_path, "pair_id,reference,labels_key,query,notes\np,r.h5ad,l,q.h5ad,hello\n")
    (pair,) = read_samplesheet(sheet)
    assert pair.pair_id == "p"
    assert "ignoring unknown column 'notes'" in caplog.text


def test_missing_sheet_and_not_utf8(tmp_path):
    with pytest.raises(InputError, match="samplesheet does not exist"):
        read_samplesheet(tmp_path / "nope.csv")
    bad = tmp_path / "latin.csv"
    bad.write_bytes(HEADER.encode() + "p,r\xe9.h5ad,l,q.h5ad,,\n".encode("latin-1"))
    with pytest.raises(InputError, match="not UTF-8"):
        read_samplesheet(bad)


def test_check_files_names_the_missing_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r.h5ad").write_text("x")
    sheet = _sheet(tmp_path, HEADER + "p,r.h5ad,l,q.h5ad,,\n")
    (pair,) = read_samplesheet(sheet)
    with pytest.raises(InputError) as e:
        pair.check_files(fasta=None)
    assert e.value.path == str(tmp_path / "q.h5ad")
    assert "query of pair 'p' does not exist; check row 2 of the samplesheet" in str(e.value)
    (tmp_path / "q.h5ad").write_text("x")
    with pytest.raises(InputError, match="pair 'p' has no genome FASTA"):
        pair.check_files(fasta=None)
    assert pair.check_files(fasta=None, need_fasta=False) is None
    with pytest.raises(InputError, match="genome FASTA of pair 'p' does not exist"):
        pair.check_files(fasta=tmp_path / "missing.fa")


def test_cli_bad_samplesheet_is_one_line_exit_2(tmp_path):
    sheet = _sheet(tmp_path, HEADER + "p 1,r.h5ad,l,q.h5ad,,\n")
    res = CliRunner().invoke(
        cli, ["run", "--samplesheet", str(sheet), "--model", "kmer", "--outdir", str(tmp_path / "o")]
    )
    assert res.exit_code == 2
    assert "Traceback" not in res.output
    assert f"Error: {sheet}: row 2, column 'pair_id'" in res.output
