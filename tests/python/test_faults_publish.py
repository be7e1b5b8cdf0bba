"""Class 7 of issue 14: a step's output folder is all-new or all-old.

Each step writes into a staging folder beside its output folder and swaps it in at the end
(:func:`seqalignatac.io.atomic.publish_dir`); a killed publish is undone by the next writer; the
runner marks a step done only once its folder is published.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fault_helpers import leftovers, mount_tmpfs, sample_sheet, tree, unmount

from seqalignatac.cli.main import cli
from seqalignatac.io.atomic import publish_dir, staging_path


def _write(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (folder / name).write_text(text)


def test_failed_step_leaves_the_old_folder_and_no_staging(tmp_path):
    out = tmp_path / "annotate"
    with publish_dir(out, owned=["a", "b"]) as stage:
        _write(stage, {"a": "old a", "b": "old b"})
    with pytest.raises(RuntimeError):
        with publish_dir(out, owned=["a", "b"]) as stage:
            _write(stage, {"a": "new a"})  # killed before b
            raise RuntimeError("killed")
    assert (out / "a").read_text() == "old a" and (out / "b").read_text() == "old b"
    assert leftovers(tmp_path) == []


def test_publish_replaces_owned_names_and_keeps_foreign_ones(tmp_path):
    out = tmp_path / "report"
    out.mkdir(mode=0o750)
    os.chmod(out, 0o750)  # a folder shared with a group keeps its mode
    _write(out, {"notes.txt": "mine", "metrics.json": "stale", "B_report.html": "other pair"})
    with publish_dir(out, owned=["A_report.html", "metrics.json"]) as stage:
        _write(stage, {"A_report.html": "new"})
    assert sorted(p.name for p in out.iterdir()) == ["A_report.html", "B_report.html", "notes.txt"]
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert leftovers(tmp_path) == []


def test_kill_between_the_two_renames_is_undone(tmp_path, caplog):
    """SIGKILL after the old folder was moved away, before the new one came in: the old one comes back."""
    out = tmp_path / "prepare"
    with publish_dir(out, owned=["x"]) as stage:
        _write(stage, {"x": "old"})
    script = f"""
import os, signal
import seqalignatac.io.atomic as atomic
real = os.replace
def replace(src, dst):
    real(src, dst)
    if str(dst).endswith(".old"):
        os.kill(os.getpid(), signal.SIGKILL)
atomic.os.replace = replace
with atomic.publish_dir({str(out)!r}, owned=["x"]) as stage:
    (stage / "x").write_text("new")
"""
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9
    assert not out.exists() and (tmp_path / ".prepare.old" / "x").read_text() == "old"
    with caplog.at_level(logging.WARNING, logger="seqalignatac.io.atomic"):
        with publish_dir(out, owned=["x"]) as stage:
            assert (out / "x").read_text() == "old"  # restored before the step even starts
            _write(stage, {"x": "newer"})
    assert any("restoring the previous outputs" in r.getMessage() for r in caplog.records)
    assert (out / "x").read_text() == "newer" and leftovers(tmp_path) == []


def test_leftover_staging_of_a_killed_run_is_removed_with_a_log_line(tmp_path, caplog):
    out = tmp_path / "annotate"
    staging_path(out).mkdir()
    (staging_path(out) / "predictions.csv").write_text("torn")
    with caplog.at_level(logging.WARNING, logger="seqalignatac.io.atomic"):
        with publish_dir(out, owned=["predictions.csv"]) as stage:
            assert list(stage.iterdir()) == []
            _write(stage, {"predictions.csv": "whole"})
    assert any("removing the unfinished outputs of an interrupted run" in r.getMessage() for r in caplog.records)
    assert (out / "predictions.csv").read_text() == "whole" and leftovers(tmp_path) == []


def test_mount_point_and_symlink_targets(tmp_path):
    """A folder that cannot be renamed (a mount point) has its entries replaced; a link stays a link."""
    mnt = mount_tmpfs(tmp_path / "mnt", "1m")
    try:
        _write(mnt, {"old.csv": "x", "keep.txt": "user"})
        with publish_dir(mnt, owned=["old.csv", "new.csv"]) as stage:
            _write(stage, {"new.csv": "y"})
        assert sorted(p.name for p in mnt.iterdir()) == ["keep.txt", "new.csv"]
    finally:
        unmount(mnt)
    real = tmp_path / "elsewhere"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    with publish_dir(link, owned=["a"]) as stage:
        _write(stage, {"a": "1"})
    assert link.is_symlink() and (real / "a").read_text() == "1"


@pytest.fixture(scope="module")
def cells(prepared, tmp_path_factory) -> Path:
    from seqalignatac.models.stage1 import lsi
    from seqalignatac.models.stage1.data import read_accessibility

    out = tmp_path_factory.mktemp("cells")
    lsi(read_accessibility(str(prepared / "accessibility.h5ad")), outdir=out)
    return out / "cell_embeddings.h5ad"


def test_annotate_rerun_killed_mid_write_keeps_the_old_folder(cells, tmp_path, monkeypatch):
    """The issue's case: new predictions.csv written, killed before query_annotated.h5ad."""
    out = tmp_path / "annotate"
    args = ["annotate", "--cells", str(cells), "--method", "knn", "--outdir", str(out)]
    assert CliRunner().invoke(cli, args).exit_code == 0
    before = tree(out)
    import seqalignatac.models.stage2.outputs as outputs

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(outputs, "write_h5ad", killed)
    res = CliRunner().invoke(cli, [*args[:-4], "--method", "gda", "--ensemble", "1", "--outdir", str(out)])
    assert res.exit_code == 130, res.output
    assert res.output.strip().splitlines()[-1].startswith("Interrupted (Ctrl-C); kept: ")
    assert tree(out) == before and leftovers(tmp_path) == []


def test_train_killed_keeps_its_checkpoint_for_resume(prepared, sim, tmp_path, monkeypatch):
    import seqalignatac.models.stage1.trainer as trainer
    from seqalignatac.embed.runner import embed_fasta
    from seqalignatac.pp.sequences import extract_sequences

    fa, emb = tmp_path / "peaks.fa", tmp_path / "kmer.h5"
    extract_sequences(prepared / "peaks.bed", sim["fasta"], fa, width=120)
    embed_fasta(str(fa), "kmer:4", str(emb), progress=False)
    out = tmp_path / "train"
    (tmp_path / "small.toml").write_text("[train]\nhidden = [16]\n")
    (tmp_path / "resume.toml").write_text("[train]\nhidden = [16]\nresume = true\n")
    args = [
        "train",
        "--accessibility",
        str(prepared / "accessibility.h5ad"),
        "--embeddings",
        str(emb),
        "--outdir",
        str(out),
        "--epochs",
        "3",
        "--patience",
        "3",
        "--threads",
        "1",
    ]
    real_save = trainer.save_checkpoint

    def save_then_interrupt(folder, state):
        real_save(folder, state)
        raise KeyboardInterrupt  # Ctrl-C right after the first epoch's checkpoint

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_interrupt)
    res = CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "small.toml")])
    assert res.exit_code == 130, res.output
    line = res.output.strip().splitlines()[-1]
    assert (
        f"kept: unfinished outputs in {staging_path(out)} (train's [train] resume = true, or rerunning `run`, continues"
        in line
    )
    assert not out.exists() and (staging_path(out) / "checkpoint" / "state.pt").is_file()
    monkeypatch.setattr(trainer, "save_checkpoint", real_save)
    # without resume the checkpoint is not thrown away
    refused = CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "small.toml")])
    assert refused.exit_code == 2 and "set resume = true in the [train] table of --config" in refused.output
    resumed = CliRunner().invoke(cli, [*args, "--config", str(tmp_path / "resume.toml")])
    assert resumed.exit_code == 0, resumed.output
    assert (out / "train_summary.json").is_file() and (out / "checkpoint" / "state.pt").is_file()
    assert leftovers(tmp_path) == []


def test_runner_marks_a_step_done_only_after_publish(sim, tmp_path, monkeypatch):
    from seqalignatac.io import atomic
    from seqalignatac.io.samplesheet import read_samplesheet
    from seqalignatac.workflow.pipeline import RunOptions, run_pipeline

    pairs = read_samplesheet(sample_sheet(tmp_path, sim))
    out = tmp_path / "out"
    opts = RunOptions(train_method="lsi", annotate_method="knn", max_umap_cells=200, progress=False, threads=1)
    (r,) = run_pipeline(pairs, out, opts)
    assert r.ok, r.error
    stamps, annotate = out / "p" / ".seqalignatac", out / "p" / "annotate"
    before = tree(annotate)
    real_swap = atomic._swap

    def swap_fails_for_annotate(new, target, old):
        if target.name == "annotate":
            raise OSError(errno.ENOSPC, "No space left on device", str(new))
        real_swap(new, target, old)

    monkeypatch.setattr(atomic, "_swap", swap_fails_for_annotate)
    opts.annotate_overrides = {"knn_k": 7}  # a new plan: annotate runs again
    (r,) = run_pipeline(pairs, out, opts)
    assert not r.ok and r.error == f"{annotate}: no space left on device"
    assert (stamps / "annotate.started.json").is_file() and not (stamps / "annotate.done.json").exists()
    assert tree(annotate) == before and leftovers(out) == []
    monkeypatch.setattr(atomic, "_swap", real_swap)
    (r,) = run_pipeline(pairs, out, opts)
    assert r.ok and "annotate" in r.ran and (stamps / "annotate.done.json").is_file()


def test_orphan_temp_files_of_killed_writers_are_removed(tmp_path):
    """`embed --out e.h5` killed with SIGKILL leaves `.e.h5.tmp-…`; the next write of e.h5 removes it."""
    from seqalignatac.io.atomic import atomic_path, write_text

    script = f"""
import os, signal
from seqalignatac.io.atomic import atomic_path
with atomic_path({str(tmp_path / "e.h5")!r}) as tmp:
    tmp.write_bytes(b"half")
    os.kill(os.getpid(), signal.SIGKILL)
"""
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    (orphan,) = tmp_path.glob(".e.h5.tmp-*")
    with atomic_path(tmp_path / "e.h5") as live:  # a writer still at work is left alone
        write_text(tmp_path / "other.txt", "x")
        with atomic_path(tmp_path / "e.h5") as tmp:
            assert live.exists() and not orphan.exists()
            tmp.write_text("whole")
        live.write_text("also whole")
    assert (tmp_path / "e.h5").read_text() == "also whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e.h5", "other.txt"]
