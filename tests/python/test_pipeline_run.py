"""The Nextflow pipeline run for real: `-profile test` with the local executor, `-resume`, a broken
pair, and `-profile test,podman` on images from containers/build.sh.

These need Nextflow (and podman for the container test) on PATH. They skip on a developer machine
without them, but fail when ``SEQALIGNATAC_REQUIRE_PIPELINE=1`` (CI sets it, after installing both),
so CI can never pass by skipping them. The tasks find the package's commands on PATH: the Python
running these tests is put first.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = os.environ.get("SEQALIGNATAC_REQUIRE_PIPELINE") == "1"
# Test-profile annotation bars (seeded simulation; measured 0.94-0.98 / 0.91-1.0 over seeds 0-2).
MIN_ACCURACY_KNOWN = 0.9
MIN_NOVEL_UNKNOWN = 0.5
PAIRS = ("sim_labeled", "sim_unlabeled")
# docs/output.md's layout for -profile test
PUBLISHED = [
    "index.html",
    "multiqc/multiqc_report.html",
    "pipeline_info/seqalignatac_software_mqc_versions.yml",
    "simulated/reference.h5ad",
    "simulated/query.h5ad",
    "sim_labeled/embed/embeddings.h5",
    *[
        f"{pair}/{path}"
        for pair in PAIRS
        for path in (
            "prepare/accessibility.h5ad",
            "prepare/peaks.bed",
            "prepare/prepare_summary.json",
            "extract/peaks.fa",
            "extract/peaks.fa.summary.json",
            "train/cell_embeddings.h5ad",
            "train/model.safetensors",
            "train/training_curve.tsv",
            "train/train_summary.json",
            "annotate/predictions.csv",
            "annotate/query_annotated.h5ad",
            "annotate/annotate_summary.json",
            f"report/{pair}_report.html",
            f"report/{pair}_mqc.tsv",
        )
    ],
    *[f"sim_labeled/annotate/{name}" for name in ("metrics.json", "per_class.csv", "confusion_matrix.csv")],
]


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if REQUIRED:
            pytest.fail(f"{name} is not on PATH but SEQALIGNATAC_REQUIRE_PIPELINE=1")
        pytest.skip(f"{name} not on PATH (CI installs it: .ci/run)")
    return path


def nextflow(args: list[str], cwd: Path, timeout: int = 1500) -> subprocess.CompletedProcess:
    """`nextflow <args>` in ``cwd`` with this Python's environment first on PATH; output in ``cwd/nextflow.out``."""
    env = dict(os.environ, NXF_ANSI_LOG="false", PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    r = subprocess.run([_tool("nextflow"), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    (cwd / "nextflow.out").write_text(r.stdout + r.stderr)
    return r


def trace(outdir: Path, suffix: str) -> list[dict[str, str]]:
    with open(outdir / "pipeline_info" / f"execution_trace_{suffix}.txt") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def assert_test_profile_results(r: subprocess.CompletedProcess, outdir: Path, suffix: str) -> list[dict[str, str]]:
    """What every -profile test run must show: success, no ERROR, every task completed, the
    documented layout, and a real annotation of the labelled pair."""
    log = r.stdout + r.stderr
    assert r.returncode == 0, log[-3000:]
    assert "ERROR" not in log, log[-3000:]
    assert "finished: open" in log  # the completion handler ran
    tasks = trace(outdir, suffix)
    assert tasks and all(t["status"] == "COMPLETED" for t in tasks), [(t["name"], t["status"]) for t in tasks]
    missing = [p for p in PUBLISHED if not (outdir / p).is_file()]
    assert not missing, missing
    assert not (outdir / "sim_unlabeled" / "annotate" / "metrics.json").exists()  # only the labelled pair is scored
    metrics = json.loads((outdir / "sim_labeled" / "annotate" / "metrics.json").read_text())
    assert metrics["accuracy_known"] >= MIN_ACCURACY_KNOWN, metrics
    assert metrics["novel_unknown_rate"] >= MIN_NOVEL_UNKNOWN, metrics
    return tasks


@pytest.fixture(scope="module")
def test_profile_run(tmp_path_factory):
    """One `-profile test` run with the local executor (tools from PATH)."""
    launch = tmp_path_factory.mktemp("nf_test_profile")
    r = nextflow(
        ["run", str(ROOT), "-profile", "test", "--outdir", "results", "--trace_report_suffix", "first"], launch
    )
    return launch, r


@pytest.mark.pipeline
def test_nextflow_lint_has_no_errors(tmp_path):
    r = nextflow(["lint", str(ROOT)], tmp_path, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-3000:]
    assert "error" not in out.lower().replace("no errors", ""), out[-3000:]


@pytest.mark.pipeline
def test_test_profile_annotates_for_real(test_profile_run):
    launch, r = test_profile_run
    tasks = assert_test_profile_results(r, launch / "results", "first")
    names = [t["name"] for t in tasks]
    assert sum("SEQALIGNATAC_EMBED (" in n for n in names) == 2  # one peak set (shared by both pairs) x 2 shards
    assert sum("SEQALIGNATAC_EMBEDMERGE" in n for n in names) == 1
    assert any(n.endswith("MULTIQC") for n in names)


@pytest.mark.pipeline
def test_resume_takes_every_task_from_the_cache(test_profile_run):
    launch, first = test_profile_run
    assert first.returncode == 0, "the first run failed; see test_test_profile_annotates_for_real"
    r = nextflow(
        ["run", str(ROOT), "-profile", "test", "--outdir", "results", "--trace_report_suffix", "resumed", "-resume"],
        launch,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    tasks = trace(launch / "results", "resumed")
    not_cached = [(t["name"], t["status"]) for t in tasks if t["status"] != "CACHED"]
    assert tasks and not not_cached, not_cached
    assert len(tasks) == len(trace(launch / "results", "first"))


@pytest.mark.pipeline
def test_test_nt_profile_embeds_with_the_nucleotide_transformer(tmp_path):
    """-profile test_nt: NTTINY builds a tiny random NT that EMBED really runs (random weights, so
    only the route is checked, not the labels)."""
    import h5py

    r = nextflow(
        ["run", str(ROOT), "-profile", "test_nt", "--outdir", "results", "--trace_report_suffix", "nt"], tmp_path
    )
    log = r.stdout + r.stderr
    assert r.returncode == 0 and "ERROR" not in log, log[-3000:]
    tasks = trace(tmp_path / "results", "nt")
    assert all(t["status"] == "COMPLETED" for t in tasks), [(t["name"], t["status"]) for t in tasks]
    assert sum("SEQALIGNATAC_NTTINY" in t["name"] for t in tasks) == 1
    with h5py.File(tmp_path / "results" / "sim_labeled" / "embed" / "embeddings.h5") as store:
        assert store.attrs["model"] == "nt_tiny" and store.attrs["merged_from"] == 2
        assert store["embeddings"].shape[0] > 0


@pytest.mark.pipeline
def test_broken_pair_fails_naming_the_pair_and_the_problem(tmp_path):
    """A pair whose label column does not exist stops the run with its name and the problem."""
    from seqalignatac.datasets.synthetic import simulate

    sim = simulate(tmp_path / "data", n_cells=300, n_peaks=300, n_cell_types=3, seed=0)
    sheet = tmp_path / "samplesheet.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query\n"
        f"good_pair,{sim['reference']},{sim['labels_key']},{sim['query']}\n"
        f"broken_pair,{sim['reference']},no_such_column,{sim['query']}\n"
    )
    small = tmp_path / "small_machine.config"  # the default labels ask for up to 6 CPUs
    small.write_text("process.resourceLimits = [cpus: 2, memory: 6.GB, time: 1.h]\n")
    r = nextflow(
        [
            "run",
            str(ROOT),
            "-c",
            str(small),
            "--input",
            str(sheet),
            "--fasta",
            str(sim["fasta"]),
            "--outdir",
            "results",
            "--train_method",
            "lsi",
            "--skip_multiqc",
            "--trace_report_suffix",
            "broken",
        ],
        tmp_path,
    )
    log = r.stdout + r.stderr
    assert r.returncode != 0, log[-3000:]
    assert "SEQALIGNATAC_PREPARE (broken_pair)" in log, log[-3000:]
    assert "no_such_column" in log, log[-3000:]
    assert "Traceback" not in log  # the step's own one-line error, not a Python stack
    assert "failed:" in log and "-resume" in log  # the completion handler says how to go on
    failed = [t["name"] for t in trace(tmp_path / "results", "broken") if t["status"] == "FAILED"]
    assert failed == ["SEQALIGNATAC:SEQALIGNATAC_PREPARE (broken_pair)"]


@pytest.mark.pipeline
@pytest.mark.containers
def test_test_profile_in_podman_on_locally_built_images(tmp_path):
    """`-profile test,podman` with `podman.registry = 'localhost'` on the images containers/build.sh made."""
    podman = _tool("podman")
    listed = subprocess.run([podman, "images", "--format", "json"], capture_output=True, text=True)
    names = [n for image in json.loads(listed.stdout or "[]") for n in image.get("Names") or []]
    wanted = ["localhost/seqalignatac/seqalignatac:", "localhost/seqalignatac/multiqc:"]
    if not all(any(n.startswith(w) for n in names) for w in wanted):
        if REQUIRED:
            pytest.fail(f"images missing ({', '.join(wanted)}...); run containers/build.sh cpu multiqc first")
        pytest.skip("images not built (containers/build.sh cpu multiqc)")
    config = tmp_path / "local_images.config"
    config.write_text("podman.registry = 'localhost'\n")
    r = nextflow(
        [
            "run",
            str(ROOT),
            "-profile",
            "test,podman",
            "-c",
            str(config),
            "--outdir",
            "results",
            "--trace_report_suffix",
            "podman",
        ],
        tmp_path,
    )
    assert_test_profile_results(r, tmp_path / "results", "podman")
    runs = sorted((tmp_path / "work").glob("*/*/.command.run"))
    assert runs and all("podman run" in p.read_text() for p in runs), [
        str(p) for p in runs if "podman run" not in p.read_text()
    ]
    assert all("localhost/seqalignatac/" in p.read_text() for p in runs)
