"""`seqalignatac run` end to end on simulated data: a broken pair does not stop a good one,
re-runs skip unchanged steps, a changed parameter or output re-runs only what depends on it,
the LSI/kNN ablation runs without genome or model.  (Kill/resume and the demo: test_runner_resume.py.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from seqalignatac.cli.main import cli
from seqalignatac.io.samplesheet import read_samplesheet
from seqalignatac.workflow.pipeline import STEPS, RunOptions, run_pipeline

# Small, fast settings (CPU, seconds); the step code paths are the real ones.
FAST_ARGS = [
    "--model",
    "kmer",
    "--epochs",
    "4",
    "--train-opt",
    "hidden=64",
    "--train-opt",
    "bottleneck=16",
    "--annotate-opt",
    "epochs=30",
    "--max-umap-cells",
    "400",
    "--seed",
    "0",
    "--threads",
    "2",
    "--no-progress",
]
LAYOUT = {
    "prepare": ["accessibility.h5ad", "peaks.bed", "prepare_summary.json"],
    "extract": ["peaks.fa", "peaks.fa.summary.json"],
    "embed": ["embeddings.h5"],
    "train": [
        "cell_embeddings.h5ad",
        "model.safetensors",
        "training_curve.tsv",
        "training_curve.png",
        "train_summary.json",
    ],
    "annotate": [
        "predictions.csv",
        "query_annotated.h5ad",
        "metrics.json",
        "per_class.csv",
        "confusion_matrix.csv",
        "model/annotator.json",
        "model/networks.safetensors",
        "annotate_summary.json",
    ],
}


def _fast_opts(**kw) -> RunOptions:
    base = dict(
        model="kmer",
        seed=0,
        threads=2,
        progress=False,
        max_umap_cells=400,
        train_overrides={"epochs": 4, "hidden": (64,), "bottleneck": 16},
        annotate_overrides={"epochs": 30},
    )
    base.update(kw)
    return RunOptions(**base)


@pytest.fixture(scope="module")
def two_pairs(sim, tmp_path_factory) -> dict:
    """A samplesheet with a good pair and a pair whose reference file is corrupt."""
    d = tmp_path_factory.mktemp("runner")
    broken = d / "broken_reference.h5ad"
    broken.write_bytes(b"this is not an HDF5 file\n" * 10)
    sheet = d / "pairs.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query,query_labels_key,fasta\n"
        f"good,{sim['reference']},{sim['labels_key']},{sim['query']},{sim['labels_key']},\n"
        f"bad,{broken},{sim['labels_key']},{sim['query']},,\n"
    )
    out = d / "out"
    res = CliRunner().invoke(
        cli, ["run", "--samplesheet", str(sheet), "--fasta", sim["fasta"], "--outdir", str(out), *FAST_ARGS]
    )
    return {"sheet": sheet, "out": out, "broken": broken, "result": res, "fasta": sim["fasta"]}


def test_broken_pair_is_reported_and_the_other_completes(two_pairs):
    res, out = two_pairs["result"], two_pairs["out"]
    assert res.exit_code == 1, res.output
    assert "Traceback" not in res.output
    # The error names the broken file; the summary line names the failed pair.
    assert f"bad: FAILED: {two_pairs['broken']}" in res.output
    assert "1 of 2 pairs failed: bad" in res.output
    for step, files in LAYOUT.items():
        for f in files:
            assert (out / "good" / step / f).is_file(), f"missing good/{step}/{f}"
    assert (out / "good" / "report" / "good_report.html").is_file()
    assert (out / "good" / "report" / "good_mqc.tsv").is_file()
    assert not (out / "bad" / "report").exists()
    index = (out / "index.html").read_text()
    assert 'href="good/report/good_report.html"' in index
    assert "failed" in index and str(two_pairs["broken"]) in index


def test_rerun_skips_everything_and_param_change_reruns_only_downstream(two_pairs):
    out, sheet = two_pairs["out"], two_pairs["sheet"]
    pairs = [p for p in read_samplesheet(sheet) if p.pair_id == "good"]
    outputs = {
        p: p.stat().st_mtime_ns for p in (out / "good").rglob("*") if p.is_file() and ".seqalignatac" not in p.parts
    }
    opts = _fast_opts(fasta=Path(two_pairs["fasta"]))
    (r,) = run_pipeline(pairs, out, opts)
    assert r.ok and r.ran == [] and r.skipped == list(STEPS)
    assert {p: p.stat().st_mtime_ns for p in outputs} == outputs  # nothing rewritten

    # Another stage-2 method: prepare .. train stay, annotate and report run again.
    (r2,) = run_pipeline(pairs, out, _fast_opts(fasta=Path(two_pairs["fasta"]), annotate_method="knn"))
    assert r2.ok, r2.error
    assert r2.skipped == ["prepare", "extract", "embed", "train"]
    assert r2.ran == ["annotate", "report"]
    summary = json.loads((out / "good" / "annotate" / "annotate_summary.json").read_text())
    assert summary["method"] == "knn"

    # A changed output (new mtime) is stale: its step and everything downstream run again.
    pred = out / "good" / "annotate" / "predictions.csv"
    os.utime(pred, ns=(time.time_ns(), time.time_ns()))
    (r3,) = run_pipeline(pairs, out, _fast_opts(fasta=Path(two_pairs["fasta"]), annotate_method="knn"))
    assert r3.ok, r3.error
    assert r3.skipped == ["prepare", "extract", "embed", "train"]
    assert r3.ran == ["annotate", "report"]


def test_unknown_step_option_fails_before_any_work(two_pairs, tmp_path):
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--samplesheet",
            str(two_pairs["sheet"]),
            "--fasta",
            two_pairs["fasta"],
            "--outdir",
            str(tmp_path / "o"),
            "--model",
            "kmer",
            "--train-opt",
            "hiden=64",
        ],
    )
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--train-opt: unknown option(s) hiden; allowed:" in res.output and "hidden" in res.output
    assert not (tmp_path / "o" / "good").exists()
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--samplesheet",
            str(two_pairs["sheet"]),
            "--outdir",
            str(tmp_path / "o"),
            "--model",
            "kmer",
            "--train-opt",
            "nonsense",
        ],
    )
    assert res.exit_code == 2 and "expected KEY=VALUE" in res.output


def test_lsi_knn_run_needs_no_genome_or_model(sim, tmp_path):
    """The sequence-free ablation: prepare, train (LSI), annotate (kNN), report; no extract/embed."""
    sheet = tmp_path / "pairs.csv"
    sheet.write_text(f"pair_id,reference,labels_key,query\nlsi,{sim['reference']},{sim['labels_key']},{sim['query']}\n")
    res = CliRunner().invoke(
        cli,
        [
            "run",
            "--samplesheet",
            str(sheet),
            "--outdir",
            str(tmp_path / "o"),
            "--train-method",
            "lsi",
            "--annotate-method",
            "knn",
            "--max-umap-cells",
            "300",
            "--no-progress",
        ],
    )
    assert res.exit_code == 0, res.output
    pair = tmp_path / "o" / "lsi"
    assert sorted(p.name for p in pair.iterdir() if not p.name.startswith(".")) == [
        "annotate",
        "prepare",
        "report",
        "train",
    ]
    assert json.loads((pair / "train" / "train_summary.json").read_text())["method"] == "lsi"
    assert not (pair / "annotate" / "metrics.json").exists()  # no query_labels_key: nothing to score
    text = (pair / "report" / "lsi_report.html").read_text()
    assert "Accuracy against" not in text and 'id="fig-umap"' in text
