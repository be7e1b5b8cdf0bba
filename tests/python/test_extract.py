"""extract: centered fixed-width and native sequences, plain and bgzip FASTA, names, clipping, errors."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest
from cli_helpers import assert_one_line_error
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.pp.sequences import extract_sequences

RNG = np.random.default_rng(0)
CHR1 = "".join(RNG.choice(list("ACGTacgtN"), 5000, p=[0.2, 0.2, 0.2, 0.2, 0.04, 0.04, 0.04, 0.04, 0.04]))
CHRM = "".join(RNG.choice(list("ACGT"), 1600))


def _fasta_text(names=("chr1", "chrM"), seqs=(CHR1, CHRM), line=60):
    out = []
    for n, s in zip(names, seqs):
        out.append(f">{n} description\n" + "\n".join(s[i : i + line] for i in range(0, len(s), line)) + "\n")
    return "".join(out)


def _read_fa(path):
    recs, name = {}, None
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith(">"):
            name = line[1:]
            recs[name] = ""
        else:
            recs[name] += line
    return recs


def _bgzip(text: str, path, gzi: bool):
    from Bio import bgzf

    with bgzf.BgzfWriter(str(path), "wb") as w:
        w.write(text.encode())
    if gzi:  # build the .gzi index samtools/bgzip would write: (compressed, uncompressed) per block
        raw = path.read_bytes()
        entries, comp, uncomp = [], 0, 0
        while comp < len(raw):
            bsize = struct.unpack("<H", raw[comp + 16 : comp + 18])[0] + 1
            isize = struct.unpack("<I", raw[comp + bsize - 4 : comp + bsize])[0]
            comp += bsize
            uncomp += isize
            if comp < len(raw) and isize:
                entries.append((comp, uncomp))
        with open(str(path) + ".gzi", "wb") as fh:
            fh.write(struct.pack("<Q", len(entries)))
            for c, u in entries:
                fh.write(struct.pack("<QQ", c, u))


@pytest.fixture
def genome(tmp_path):
    p = tmp_path / "genome.fa"
    p.write_text(_fasta_text())
    return p


@pytest.fixture
def bed(tmp_path):
    p = tmp_path / "peaks.bed"
    p.write_text(
        "chr1\t1000\t1500\tpA\nchr1\t3000\t3200\tpB\nchrM\t100\t400\tpC\n"
        "chr1\t4900\t4990\tpEnd\nchr7\t10\t500\tpAbsent\n"
    )
    return p


def test_fixed_width_centered_upper(genome, bed, tmp_path):
    s = extract_sequences(bed, genome, tmp_path / "o.fa", width=600)
    recs = _read_fa(tmp_path / "o.fa")
    assert list(recs) == ["pA", "pB", "pC", "pEnd"]
    assert recs["pA"] == CHR1[950:1550].upper()  # midpoint 1250, 300 either side
    assert recs["pB"] == CHR1[2800:3400].upper()
    assert recs["pC"] == "N" * 50 + CHRM[0:550]  # midpoint 250: window starts 50 bp before chrM
    # pEnd: midpoint 4945, window 4645-5245 runs 245 bp off the end: padded with N, counted
    assert recs["pEnd"] == CHR1[4645:].upper() + "N" * 245
    assert all(len(v) == 600 and v == v.upper() for v in recs.values())
    assert s["written"] == 4 and s["clipped_at_chromosome_end"] == 2
    assert set(s["clipped_examples"]) == {"pC", "pEnd"}
    assert (
        s["peaks_on_absent_contigs"] == 1 and s["absent_contigs"] == {"chr7": 1} and s["absent_examples"] == ["pAbsent"]
    )
    total = "".join(recs.values())
    assert s["fraction_n"] == pytest.approx(total.count("N") / len(total), abs=1e-6)
    assert json.loads((tmp_path / "o.fa.summary.json").read_text()) == json.loads(json.dumps(s))


def test_native_width(genome, bed, tmp_path):
    extract_sequences(bed, genome, tmp_path / "o.fa", width="native")
    recs = _read_fa(tmp_path / "o.fa")
    assert recs["pA"] == CHR1[1000:1500].upper() and recs["pB"] == CHR1[3000:3200].upper()
    assert recs["pC"] == CHRM[100:400]


def test_default_width_1002_and_input_order(genome, tmp_path):
    bed = tmp_path / "unsorted.bed"
    bed.write_text("chr1\t3000\t3200\nchrM\t600\t900\nchr1\t1000\t1500\n")  # chromosomes interleaved
    s = extract_sequences(bed, genome, tmp_path / "o.fa")
    recs = _read_fa(tmp_path / "o.fa")
    assert list(recs) == ["chr1:3000-3200", "chrM:600-900", "chr1:1000-1500"]
    assert {len(v) for v in recs.values()} == {1002} and s["width"] == 1002


def test_chromosome_names_reconciled(tmp_path, bed):
    fa = tmp_path / "ensembl.fa"
    fa.write_text(_fasta_text(names=("1", "MT")))
    s = extract_sequences(bed, fa, tmp_path / "o.fa", width="native")
    assert s["chromosome_renames"] == {"chr1": "1", "chrM": "MT"}
    assert _read_fa(tmp_path / "o.fa")["pC"] == CHRM[100:400]


@pytest.mark.parametrize("gzi", [False, True])
def test_bgzip_matches_plain(genome, bed, tmp_path, gzi):
    gz = tmp_path / "genome.fa.gz"
    _bgzip(_fasta_text(), gz, gzi)
    extract_sequences(bed, genome, tmp_path / "plain.fa", width=1002)
    s = extract_sequences(bed, gz, tmp_path / "bgz.fa", width=1002)
    assert (tmp_path / "plain.fa").read_text() == (tmp_path / "bgz.fa").read_text()
    assert s["written"] == 4


def test_large_bgzip_contig_with_gzi(tmp_path):
    """A contig spanning many 64 KB bgzip blocks, read from a block found through the .gzi."""
    seqs = ["".join(RNG.choice(list("ACGT"), n)) for n in (150_000, 300_000)]
    gz = tmp_path / "big.fa.gz"
    _bgzip(_fasta_text(names=("chrA", "chrB"), seqs=seqs), gz, gzi=True)
    bed = tmp_path / "p.bed"
    bed.write_text("chrB\t250000\t250600\tx\nchrA\t0\t100\ty\n")
    extract_sequences(bed, gz, tmp_path / "o.fa", width="native")
    recs = _read_fa(tmp_path / "o.fa")
    assert recs["x"] == seqs[1][250000:250600] and recs["y"] == seqs[0][:100]


def test_on_simulation(prepared, sim, tmp_path):
    from pyfaidx import Fasta

    s = extract_sequences(prepared / "peaks.bed", sim["fasta"], tmp_path / "peaks.fa")
    fa = Fasta(sim["fasta"])
    recs = _read_fa(tmp_path / "peaks.fa")
    assert s["written"] == len(recs) and s["clipped_at_chromosome_end"] == 0 and s["fraction_n"] == 0
    name = next(iter(recs))
    chrom, rest = name.split(":")
    a, b = map(int, rest.split("-"))
    mid = (a + b) // 2
    assert recs[name] == str(fa[chrom][mid - 501 : mid + 501]).upper()


# ---------------------------------------------------------------- bad input


def _run(*args):
    return CliRunner().invoke(cli, ["extract", *map(str, args)])


def test_cli_ok(genome, bed, tmp_path):
    res = _run(
        "--peaks",
        bed,
        "--fasta",
        genome,
        "--out",
        tmp_path / "o.fa",
        "--width",
        "native",
        "--summary",
        tmp_path / "s.json",
    )
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "s.json").read_text())["written"] == 4


def test_plain_gzip_fasta(bed, tmp_path):
    gz = tmp_path / "genome.fa.gz"
    with gzip.open(gz, "wt") as fh:
        fh.write(_fasta_text())
    line = assert_one_line_error(
        _run("--peaks", bed, "--fasta", gz, "--out", tmp_path / "o.fa"), "genome.fa.gz", "not with bgzip"
    )
    assert "bgzip" in line and "gunzip" in line
    assert not (tmp_path / "o.fa").exists()


def test_missing_files(genome, bed, tmp_path):
    assert_one_line_error(
        _run("--peaks", bed, "--fasta", tmp_path / "none.fa", "--out", tmp_path / "o.fa"), "none.fa", "does not exist"
    )
    assert_one_line_error(
        _run("--peaks", tmp_path / "none.bed", "--fasta", genome, "--out", tmp_path / "o.fa"),
        "none.bed",
        "does not exist",
    )


def test_fasta_without_peak_chromosomes(bed, tmp_path):
    fa = tmp_path / "other.fa"
    fa.write_text(_fasta_text(names=("scaffold_1", "scaffold_2")))
    assert_one_line_error(
        _run("--peaks", bed, "--fasta", fa, "--out", tmp_path / "o.fa"), "other.fa", "none of the peaks' chromosomes"
    )


def test_not_a_fasta(bed, tmp_path):
    fa = tmp_path / "notfasta.fa"
    fa.write_text("chr1\t1\t2\nhello\n")
    assert_one_line_error(_run("--peaks", bed, "--fasta", fa, "--out", tmp_path / "o.fa"), "notfasta.fa")


@pytest.mark.parametrize(
    "content, needle",
    [
        ("chr1\t500\t100\n", "start >= end"),
        ("chr1\t-5\t100\n", "negative start"),
        ("chr1\tabc\t100\n", "not an integer"),
        ("chr1\t1\t100\tp\nchr1\t200\t300\tp\n", "duplicate peak names"),
        ("# only a comment\n", "empty"),
    ],
)
def test_bad_bed(genome, tmp_path, content, needle):
    bed = tmp_path / "bad.bed"
    bed.write_text(content)
    assert_one_line_error(_run("--peaks", bed, "--fasta", genome, "--out", tmp_path / "o.fa"), "bad.bed", needle)


@pytest.mark.parametrize("width", ["abc", "0"])
def test_bad_width(genome, bed, tmp_path, width):
    assert_one_line_error(
        _run("--peaks", bed, "--fasta", genome, "--out", tmp_path / "o.fa", "--width", width), "--width"
    )
