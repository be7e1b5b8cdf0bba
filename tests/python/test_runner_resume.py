"""A killed `seqalignatac run` resumes without redoing finished steps; `seqalignatac demo` works
as the README's first command (and a second run finds everything up to date)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.io.atomic import staging_path
from seqalignatac.io.samplesheet import read_samplesheet
from seqalignatac.workflow.pipeline import RunOptions, run_pipeline


@pytest.mark.slow
def test_killed_run_resumes(sim, tmp_path):
    """SIGKILL the runner while stage 1 trains; the next run skips finished steps and resumes train."""
    sheet = tmp_path / "pairs.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query,query_labels_key\n"
        f"p,{sim['reference']},{sim['labels_key']},{sim['query']},{sim['labels_key']}\n"
    )
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "seqalignatac",
        "run",
        "--samplesheet",
        str(sheet),
        "--fasta",
        sim["fasta"],
        "--outdir",
        str(out),
        "--model",
        "kmer",
        "--epochs",
        "40",
        "--train-opt",
        "hidden=64",
        "--train-opt",
        "patience=5",
        "--annotate-opt",
        "epochs=30",
        "--seed",
        "0",
        "--threads",
        "2",
        "--max-umap-cells",
        "400",
        "--no-progress",
    ]
    # written at every epoch end, in the staging folder that is published when train finishes
    checkpoint = staging_path(out / "p" / "train") / "checkpoint" / "state.pt"
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 300
        while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert checkpoint.exists(), "stage 1 never reached its first epoch end"
        os.killpg(proc.pid, signal.SIGKILL)  # mid-training: at least `patience` more epochs were due
    finally:
        proc.wait(timeout=30)
    assert (out / "p" / ".seqalignatac" / "train.started.json").exists()
    assert not (out / "p" / "train" / "train_summary.json").exists()
    assert not (out / "p" / ".seqalignatac" / "train.done.json").exists()

    pairs = read_samplesheet(sheet)
    opts = RunOptions(
        fasta=Path(sim["fasta"]),
        model="kmer",
        seed=0,
        threads=2,
        progress=False,
        max_umap_cells=400,
        train_overrides={"hidden": [64], "patience": 5, "epochs": 40},
        annotate_overrides={"epochs": 30},
    )
    (r,) = run_pipeline(pairs, out, opts)
    assert r.ok, r.error
    assert r.skipped == ["prepare", "extract", "embed"]
    assert r.resumed == ["train"]
    assert r.ran == ["train", "annotate", "report"]
    assert (out / "p" / "report" / "p_report.html").is_file()


@pytest.mark.slow
def test_demo_prints_the_report_path(tmp_path):
    args = [
        "demo",
        "--outdir",
        str(tmp_path / "demo"),
        "--cells",
        "300",
        "--peaks",
        "600",
        "--cell-types",
        "3",
        "--epochs",
        "2",
        "--annotate-opt",
        "epochs=10",
        "--max-umap-cells",
        "300",
        "--no-progress",
    ]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    report = tmp_path / "demo" / "results" / "demo" / "report" / "demo_report.html"
    assert f"Report: {report}" in res.output and report.is_file()
    assert (tmp_path / "demo" / "results" / "index.html").is_file()
    # Predictions carry the user's own barcodes: `evaluate` scores them against the demo's query.h5ad.
    import anndata as ad

    annotate_dir = tmp_path / "demo" / "results" / "demo" / "annotate"
    query = ad.read_h5ad(tmp_path / "demo" / "data" / "query.h5ad")
    pred = pd.read_csv(annotate_dir / "predictions.csv", dtype={"cell_id": str})
    assert list(pred["cell_id"]) == list(query.obs_names)
    assert list(ad.read_h5ad(annotate_dir / "query_annotated.h5ad").obs_names) == list(query.obs_names)
    ev = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--predictions",
            str(annotate_dir / "predictions.csv"),
            "--truth",
            str(tmp_path / "demo" / "data" / "query.h5ad"),
            "--labels-key",
            "cell_type",
            "--outdir",
            str(tmp_path / "eval"),
        ],
    )
    assert ev.exit_code == 0, ev.output
    scored = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    expected = json.loads((annotate_dir / "metrics.json").read_text())
    assert scored["n_predictions_without_truth"] == 0 and scored["n_cells"] == query.n_obs
    for key in ("accuracy", "macro_f1", "accuracy_known"):
        assert scored[key] == pytest.approx(expected[key]), key
    # Again in the same folder: the simulation is reused and every step is up to date.
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0, again.output
    assert "all steps up to date" in again.output
