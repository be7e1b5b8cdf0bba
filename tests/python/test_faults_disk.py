"""Class 1 of issue 14: a full disk or a read-only output folder.

Every command must end with one line naming the path and the cause, a non-zero exit (never a
traceback or a segfault), no temporary file, no half-written output, the previous outputs intact
and the embedding cache valid so that a rerun succeeds.  Real faults come from small tmpfs mounts
(skipped where mounting is not allowed); the write layer is also tested by simulation.
"""

from __future__ import annotations

import errno
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import scipy.sparse as sp
from click.testing import CliRunner
from fault_helpers import (
    FAST_RUN,
    assert_one_line_fault,
    fill_up,
    leftovers,
    mount_tmpfs,
    remount,
    run_cli,
    sample_sheet,
    tree,
    unmount,
)

from seqalignatac.cli.main import cli
from seqalignatac.io.embedding_store import read_embeddings


@pytest.fixture(scope="module")
def finished(sim, tmp_path_factory) -> dict:
    """A finished LSI/kNN run plus the extract/embed files, as inputs for every command."""
    from seqalignatac.embed.runner import embed_fasta
    from seqalignatac.embed.tiny import write_tiny
    from seqalignatac.io.samplesheet import read_samplesheet
    from seqalignatac.pp.sequences import extract_sequences
    from seqalignatac.workflow.pipeline import RunOptions, run_pipeline

    base = tmp_path_factory.mktemp("finished")
    sheet = sample_sheet(base, sim)
    opts = RunOptions(train_method="lsi", annotate_method="knn", max_umap_cells=200, progress=False, threads=1)
    (r,) = run_pipeline(read_samplesheet(sheet), base / "out", opts)
    assert r.ok, r.error
    pair = base / "out" / "p"
    fa = base / "peaks.fa"
    extract_sequences(pair / "prepare" / "peaks.bed", sim["fasta"], fa, width=120)
    emb = base / "kmer.h5"
    embed_fasta(str(fa), "kmer:4", str(emb), progress=False)
    nt = base / "nt"
    write_tiny(nt, arch="v2", seed=0)
    mtx = base / "m.mtx"
    sio.mmwrite(mtx, sp.random(5, 4, density=0.5, format="coo", random_state=0))  # peaks x cells
    (base / "peaks.bed").write_text("".join(f"chr1\t{i * 1000}\t{i * 1000 + 500}\n" for i in range(5)))
    (base / "cells.tsv").write_text("".join(f"c{i}\n" for i in range(4)))
    return {"sim": sim, "sheet": sheet, "pair": pair, "fasta": fa, "emb": emb, "nt": nt, "mtx": mtx}


@pytest.fixture
def readonly(tmp_path):
    """A read-only file system (root ignores chmod 0555, so a read-only mount it is)."""
    ro = mount_tmpfs(tmp_path / "ro", "1m")
    (ro / "old").mkdir()
    remount(ro, "ro")
    yield ro
    unmount(ro)


@pytest.fixture
def tiny_disk(tmp_path):
    disk = mount_tmpfs(tmp_path / "disk", "8m")
    yield disk
    unmount(disk)


def commands(f: dict, out: Path) -> dict[str, list[str]]:
    sim, pair = f["sim"], f["pair"]
    return {
        "convert": [
            "convert",
            "--matrix",
            str(f["mtx"]),
            "--peaks",
            str(f["mtx"].parent / "peaks.bed"),
            "--cells",
            str(f["mtx"].parent / "cells.tsv"),
            "--out",
            str(out / "x.h5ad"),
        ],
        "prepare": [
            "prepare",
            "--reference",
            sim["reference"],
            "--query",
            sim["query"],
            "--labels-key",
            sim["labels_key"],
            "--outdir",
            str(out / "prepare"),
        ],
        "extract": [
            "extract",
            "--peaks",
            str(pair / "prepare" / "peaks.bed"),
            "--fasta",
            sim["fasta"],
            "--out",
            str(out / "extract" / "peaks.fa"),
            "--width",
            "120",
        ],
        "embed": ["embed", "--fasta", str(f["fasta"]), "--model", "kmer:4", "--out", str(out / "e.h5")],
        "embed-merge": ["embed-merge", str(f["emb"]), "--out", str(out / "m.h5")],
        "embed-export": ["embed-export", str(f["emb"]), "--out", str(out / "e.npz")],
        "nt-tiny": ["nt-tiny", "--outdir", str(out / "nt")],
        "train": [
            "train",
            "--accessibility",
            str(pair / "prepare" / "accessibility.h5ad"),
            "--method",
            "lsi",
            "--outdir",
            str(out / "train"),
        ],
        "annotate": [
            "annotate",
            "--cells",
            str(pair / "train" / "cell_embeddings.h5ad"),
            "--method",
            "knn",
            "--outdir",
            str(out / "annotate"),
        ],
        "evaluate": [
            "evaluate",
            "--predictions",
            str(pair / "annotate" / "predictions.csv"),
            "--truth",
            str(pair / "annotate" / "query_annotated.h5ad"),
            "--outdir",
            str(out / "evaluate"),
        ],
        "report": ["report", "--pair-dir", str(pair), "--outdir", str(out / "report"), "--max-umap-cells", "200"],
        "simulate": ["simulate", "--outdir", str(out / "sim"), "--cells", "100", "--peaks", "200"],
        "run": ["run", "--samplesheet", str(f["sheet"]), "--outdir", str(out / "run"), *FAST_RUN, "--no-progress"],
        "demo": ["demo", "--outdir", str(out / "demo"), "--cells", "100", "--peaks", "200", "--no-progress"],
    }


COMMANDS = [
    "convert",
    "prepare",
    "extract",
    "embed",
    "embed-merge",
    "embed-export",
    "nt-tiny",
    "train",
    "annotate",
    "evaluate",
    "report",
    "simulate",
    "run",
    "demo",
]


@pytest.mark.parametrize("name", COMMANDS)
def test_read_only_output_folder_is_one_line(finished, readonly, name):
    args = commands(finished, readonly / "old")[name]
    res = CliRunner().invoke(cli, args)
    line = assert_one_line_fault(res.exit_code, res.output, "not writable")
    assert str(readonly / "old") in line
    assert sorted(p.name for p in (readonly / "old").iterdir()) == []


@pytest.mark.parametrize("name", ["prepare", "train", "annotate", "evaluate", "report", "embed", "embed-merge", "run"])
def test_full_disk_keeps_the_old_outputs(finished, tiny_disk, name):
    """A rerun into a finished folder on a disk that has filled up since: old outputs intact."""
    args = commands(finished, tiny_disk)[name]
    first = CliRunner().invoke(cli, args)
    assert first.exit_code == 0, first.output
    before = tree(tiny_disk)
    fill_up(tiny_disk)
    if name == "train":  # train refuses a finished folder otherwise
        (tiny_disk.parent / "resume.toml").write_text("[train]\nresume = true\n")
    again = args + (["--config", str(tiny_disk.parent / "resume.toml")] if name == "train" else [])
    res = CliRunner().invoke(cli, again)
    assert_one_line_fault(res.exit_code, res.output, "no space left on device", str(tiny_disk))
    (tiny_disk / ".filler").unlink()
    assert leftovers(tiny_disk) == []
    unlocked = {k: v for k, v in tree(tiny_disk).items() if not k.endswith(".lock")}
    assert unlocked == {k: v for k, v in before.items() if not k.endswith(".lock")}


def embed_args(f: dict, cache: Path, out: Path, *extra: str) -> list[str]:
    return [
        "embed",
        "--fasta",
        str(f["fasta"]),
        "--model",
        str(f["nt"]),
        "--cache-dir",
        str(cache),
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def test_embed_full_disk_no_segfault_and_cache_valid_for_rerun(finished, tmp_path):
    """The store does not fit: exit 1 with one line (was a segfault, exit 139); the cache serves the rerun."""
    small = mount_tmpfs(tmp_path / "small", "64k")  # the store of ~1,500 peaks x 32 floats does not fit
    cache = tmp_path / "cache"
    try:
        res = run_cli(embed_args(finished, cache, small / "e.h5"))
        assert_one_line_fault(res.returncode, res.stderr, f"{small / 'e.h5'}: no space left on device")
        assert list(small.iterdir()) == []  # no temp file, nothing that looks finished
    finally:
        unmount(small)
    again = run_cli(embed_args(finished, cache, tmp_path / "e.h5"))
    assert again.returncode == 0, again.stderr
    assert "0 computed" in again.stderr  # every vector came from the cache
    clean = run_cli(embed_args(finished, tmp_path / "clean", tmp_path / "clean.h5"))
    assert clean.returncode == 0, clean.stderr
    np.testing.assert_array_equal(read_embeddings(tmp_path / "e.h5")[1], read_embeddings(tmp_path / "clean.h5")[1])


def test_embed_cache_on_a_full_disk_keeps_whole_batches(finished, tmp_path):
    """The cache itself fills up mid-run: only whole batches stay, and a rerun gives the exact vectors."""
    disk = mount_tmpfs(tmp_path / "disk", "96k")
    cache = disk / "cache"
    try:
        res = run_cli(embed_args(finished, cache, tmp_path / "e.h5", "--batch-size", "64"))
        line = assert_one_line_fault(res.returncode, res.stderr, "no space left on device", str(cache))
        assert "kept:" in line and "a rerun reuses them" in line
        assert not (tmp_path / "e.h5").exists() and leftovers(disk) == []
        run = next(cache.glob("*/run-*.keys"))
        rows, keys = run.with_suffix(".f32").stat().st_size, run.stat().st_size
        assert keys > 0 and keys % (64 * 16) == 0 and rows == keys // 16 * 32 * 4  # whole batches; tiny NT: 32 dims
        remount(disk, "size=20m")
        again = run_cli(embed_args(finished, cache, tmp_path / "e.h5", "--batch-size", "64"))
        assert again.returncode == 0, again.stderr
        assert f"{keys // 16} unique sequences from cache" in again.stderr
    finally:
        unmount(disk)
    clean = run_cli(embed_args(finished, tmp_path / "clean", tmp_path / "clean.h5"))
    assert clean.returncode == 0, clean.stderr
    np.testing.assert_array_equal(read_embeddings(tmp_path / "e.h5")[1], read_embeddings(tmp_path / "clean.h5")[1])


def test_simulated_enospc_at_the_write_layer(finished, tmp_path, monkeypatch):
    """Without a mount: the atomic writer's temp file cannot be created (ENOSPC)."""
    import seqalignatac.io.atomic as atomic

    args = commands(finished, tmp_path / "out")["annotate"]
    assert CliRunner().invoke(cli, args).exit_code == 0
    before = tree(tmp_path / "out")

    def no_space(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device", k.get("dir"))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", no_space)
    res = CliRunner().invoke(cli, args)
    line = assert_one_line_fault(res.exit_code, res.output, "no space left on device")
    assert str(tmp_path / "out" / "annotate" / "predictions.csv") in line  # the file the user gets, not our temp
    assert tree(tmp_path / "out") == before and leftovers(tmp_path) == []


def test_simulated_read_only_cache(finished, tmp_path, monkeypatch):
    """A cache batch that fails half-way (EROFS) names the cache file and leaves no torn row."""
    import seqalignatac.embed.cache as cache_mod

    real_write_all = cache_mod._write_all
    calls = {"n": 0}

    def failing(fd, data):
        calls["n"] += 1
        if calls["n"] == 3:  # the second batch's rows: half goes through, then the disk fails
            real_write_all(fd, bytes(data)[: len(data) // 2])
            raise OSError(errno.EROFS, "Read-only file system")
        real_write_all(fd, data)

    monkeypatch.setattr(cache_mod, "_write_all", failing)
    cache = tmp_path / "cache"
    res = CliRunner().invoke(cli, embed_args(finished, cache, tmp_path / "e.h5", "--batch-size", "16"))
    assert_one_line_fault(res.exit_code, res.output, "not writable (read-only file system)", str(cache))
    run = next(cache.glob("*/run-*.keys"))
    assert run.stat().st_size == 16 * 16 and run.with_suffix(".f32").stat().st_size == 16 * 32 * 4  # batch 1 only
    assert not (tmp_path / "e.h5").exists()


@pytest.mark.parametrize("size", ["40k", "120k", "200k"])
def test_h5ad_writer_on_a_full_disk_never_crashes(sim, tmp_path, size):
    """`prepare` died with a segfault (139) when the disk filled while HDF5 wrote accessibility.h5ad."""
    disk = mount_tmpfs(tmp_path / "disk", size)
    try:
        res = run_cli(
            [
                "prepare",
                "--reference",
                sim["reference"],
                "--query",
                sim["query"],
                "--labels-key",
                sim["labels_key"],
                "--outdir",
                str(disk / "prepare"),
            ]
        )
        assert_one_line_fault(res.returncode, res.stderr, f"{disk / 'prepare'}/", "no space left on device")
        assert not (disk / "prepare").exists() and leftovers(disk) == []
    finally:
        unmount(disk)


def test_checkpoint_on_a_full_disk_is_one_line(finished, tmp_path):
    """torch.save reports a full disk without an errno; the checkpoint is serialised first instead."""
    disk = mount_tmpfs(tmp_path / "disk", "100k")
    settings = tmp_path / "small.toml"
    settings.write_text("[train]\nhidden = [16]\n")
    try:
        res = run_cli(
            [
                "train",
                "--accessibility",
                str(finished["pair"] / "prepare" / "accessibility.h5ad"),
                "--embeddings",
                str(finished["emb"]),
                "--outdir",
                str(disk / "train"),
                "--epochs",
                "2",
                "--threads",
                "1",
                "--config",
                str(settings),
            ]
        )
        assert_one_line_fault(res.returncode, res.stderr, f"{disk / 'train'}/", "no space left on device")
        assert not (disk / "train").exists() and [x for x in leftovers(disk) if ".tmp-" in x] == []
    finally:
        unmount(disk)


def test_h5ad_writer_matches_anndata(sim, tmp_path):
    import anndata as ad

    from seqalignatac.io.atomic import write_h5ad

    a = ad.read_h5ad(sim["reference"])
    a.obsm["e"] = np.arange(a.n_obs * 3, dtype=np.float32).reshape(-1, 3)
    a.uns["nested"] = {"k": 1, "v": np.arange(3)}
    write_h5ad(a.copy(), tmp_path / "ours.h5ad")
    a.copy().write_h5ad(tmp_path / "theirs.h5ad", compression="gzip")
    ours, theirs = ad.read_h5ad(tmp_path / "ours.h5ad"), ad.read_h5ad(tmp_path / "theirs.h5ad")
    assert (ours.X != theirs.X).nnz == 0 and ours.obs.equals(theirs.obs) and ours.var.equals(theirs.var)
    np.testing.assert_array_equal(ours.obsm["e"], theirs.obsm["e"])
    np.testing.assert_array_equal(ours.uns["nested"]["v"], theirs.uns["nested"]["v"])
    backed = ad.read_h5ad(tmp_path / "ours.h5ad", backed="r")
    assert backed.raw is None and backed.shape == theirs.shape
    backed.file.close()


GUARD_SCRIPT = """
import sys, h5py, numpy as np
from seqalignatac.io.hdf5 import write_hdf5
ids = np.array([f"p{i}" for i in range(3000)], dtype=object)
rows = np.random.default_rng(0).random((3000, 64), dtype=np.float32)
def fill(f):
    f.create_dataset("ids", data=ids, dtype=h5py.string_dtype("utf-8"))
    f.create_dataset("embeddings", data=rows, chunks=(1000, 64))
try:
    write_hdf5(sys.argv[1], fill, reserve=0)  # no reservation: the guard alone
except OSError as e:
    print("OSError", e.errno, e.filename)
"""


@pytest.mark.parametrize("leave", [0, 100_000, 500_000])
def test_hdf5_guard_alone_turns_a_mid_write_fault_into_an_oserror(tmp_path, leave):
    """Should a reservation ever be too small, HDF5 still never sees the failed write (no segfault)."""
    disk = mount_tmpfs(tmp_path / "disk", "1m")
    try:
        fill_up(disk, leave_bytes=leave)
        res = subprocess.run([sys.executable, "-c", GUARD_SCRIPT, str(disk / "x.h5")], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.strip() == f"OSError {errno.ENOSPC} {disk / 'x.h5'}", res
    finally:
        unmount(disk)
