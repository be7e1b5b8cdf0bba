"""Class 9 of issue 14: logs fit machines.

Progress bars only on a terminal; Ctrl-C exits 130 and says what was kept; a pickle in a model
folder is refused with our own message; spreadsheet formulas in labels are neutralised in every
CSV we write; every published file and folder follows the umask.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest
from cli_helpers import assert_one_line_error
from click.testing import CliRunner
from fault_helpers import FAST_RUN, leftovers, run_cli, sample_sheet

from seqalignatac.cli.main import cli
from seqalignatac.io.atomic import staging_path
from seqalignatac.io.tables import neutralise_formulas, restore_formulas, runs_as_formula
from seqalignatac.progress import progress_enabled

# ------------------------------------------------------------------------------ progress bars


def test_progress_rule_flag_wins_else_terminal():
    master, slave = os.openpty()
    try:
        with os.fdopen(os.dup(slave), "w") as tty, open(os.devnull, "w") as redirected:
            assert progress_enabled(None, tty) is True
            assert progress_enabled(None, redirected) is False
            assert progress_enabled(True, redirected) is True and progress_enabled(False, tty) is False
    finally:
        os.close(master)
        os.close(slave)


def test_redirected_run_log_has_no_bars(sim, tmp_path):
    """The issue's case: `run ... 2> log` was 53 KB of carriage returns for a 600-cell pair."""
    args = ["run", "--samplesheet", str(sample_sheet(tmp_path, sim)), "--outdir", str(tmp_path / "out"), *FAST_RUN]
    res = run_cli(args, raw=True)
    assert res.returncode == 0, res.stderr
    assert b"\r" not in res.stderr and b"\x1b[" not in res.stderr
    assert len(res.stderr) < 8000, len(res.stderr)
    forced = run_cli([*args, "--progress", "--force"], raw=True)  # asked for explicitly: drawn even into a file
    assert forced.returncode == 0 and b"\r" in forced.stderr


# ------------------------------------------------------------------------------ Ctrl-C


@pytest.mark.slow
def test_ctrl_c_exits_130_says_what_was_kept_and_resumes(sim, tmp_path):
    sheet = sample_sheet(tmp_path, sim)
    out = tmp_path / "out"
    args = [
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
        "--threads",
        "1",
        "--max-umap-cells",
        "400",
    ]
    checkpoint = staging_path(out / "p" / "train") / "checkpoint" / "state.pt"
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqalignatac", *args],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        # A job started in the background by a non-interactive shell (a CI runner) inherits an
        # ignored SIGINT, and Python keeps it ignored: give the run the default, as a terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        deadline = time.time() + 300
        while not checkpoint.exists() and proc.poll() is None and time.time() < deadline:
            time.sleep(0.02)
        assert checkpoint.exists(), "stage 1 never reached its first epoch end"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("Interrupted (Ctrl-C); kept: ")
    assert f"p: finished steps prepare, extract, embed in {out / 'p'}" in line
    assert f"unfinished outputs in {staging_path(out / 'p' / 'train')}" in line
    assert not (out / "p" / "train").exists() and [x for x in leftovers(out) if ".tmp-" in x] == []
    again = run_cli([*args, "--no-progress"])
    assert again.returncode == 0, again.stderr
    assert "train resumes an interrupted run" in again.stderr and leftovers(out) == []


def test_ctrl_c_in_a_step_is_one_line_130(tmp_path, monkeypatch):
    import seqalignatac.cli.simulate as simulate_command  # the command's own binding of simulate()

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate_command, "simulate", interrupted)
    res = CliRunner().invoke(cli, ["simulate", "--outdir", str(tmp_path / "s")])
    assert res.exit_code == 130
    assert res.output.strip().splitlines() == [
        "Interrupted (Ctrl-C); kept: the outputs of finished steps only, no partial file"
    ]


# ------------------------------------------------------------------------------ pickles


def test_pickled_code_in_a_model_folder_is_refused_with_our_message(tmp_path):
    import torch

    model = tmp_path / "nt"
    assert CliRunner().invoke(cli, ["nt-tiny", "--outdir", str(model)]).exit_code == 0
    (model / "model.safetensors").unlink()
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    torch.save({"embeddings.word_embeddings.weight": torch.zeros(2), "x": Payload()}, model / "pytorch_model.bin")
    fa = tmp_path / "p.fa"
    fa.write_text(">p1\n" + "ACGT" * 30 + "\n")
    res = CliRunner().invoke(
        cli,
        [
            "embed",
            "--fasta",
            str(fa),
            "--model",
            str(model),
            "--out",
            str(tmp_path / "e.h5"),
            "--cache-dir",
            str(tmp_path / "cache"),
        ],
    )
    line = assert_one_line_error(
        res,
        str(model / "pytorch_model.bin"),
        "refused:",
        "posix.system",
        "a pickle can run code",
        "convert it to safetensors",
    )
    assert "weights_only" not in line and "PyTorch 2.6" not in line  # not torch's hint
    assert not marker.exists() and not (tmp_path / "e.h5").exists()


# ------------------------------------------------------------------------------ formulas in CSV

FORMULAS = ['=HYPERLINK("http://x","click")', "+1+cmd|' /C calc'!A0", "@SUM(1+1)", "-0.5"]


def test_neutralise_round_trip():
    df = pd.DataFrame(
        {
            "label": ["=1+1", "'=x", "-0.5", "+3", "-2+3", "\tTAB", "plain", None],
            "p": [-0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0],
        },
        index=pd.Index(["@a", "b", "c", "d", "e", "f", "g", "h"]),
    )
    df["cat"] = pd.Categorical(["=c"] * 4 + ["ok"] * 4)
    safe = neutralise_formulas(df)
    assert safe["label"].tolist()[:6] == ["'=1+1", "''=x", "-0.5", "+3", "'-2+3", "'\tTAB"]
    assert safe["p"].tolist() == df["p"].tolist() and safe.index[0] == "'@a" and safe["cat"].iloc[0] == "'=c"
    assert not any(runs_as_formula(v) for v in safe["label"].dropna())
    pd.testing.assert_frame_equal(restore_formulas(safe), df)


@pytest.fixture(scope="module")
def formula_pair(sim, tmp_path_factory) -> dict:
    """The simulated pair with its cell types renamed to spreadsheet formulas."""
    base = tmp_path_factory.mktemp("formula")
    paths = {}
    for which in ("reference", "query"):
        a = ad.read_h5ad(sim[which])
        types = sorted(a.obs[sim["labels_key"]].astype(str).unique())
        rename = dict(zip(types, FORMULAS))
        a.obs[sim["labels_key"]] = a.obs[sim["labels_key"]].astype(str).map(rename)
        paths[which] = str(base / f"{which}.h5ad")
        a.write_h5ad(paths[which])
    return {**sim, **paths}


def _cells(path: Path) -> list[str]:
    with open(path, newline="") as fh:
        return [c for row in csv.reader(fh) for c in row]


def test_formula_labels_are_neutralised_in_every_csv(formula_pair, tmp_path):
    sheet = sample_sheet(tmp_path, formula_pair)
    res = CliRunner().invoke(
        cli, ["run", "--samplesheet", str(sheet), "--outdir", str(tmp_path / "out"), *FAST_RUN, "--no-progress"]
    )
    assert res.exit_code == 0, res.output
    ann = tmp_path / "out" / "p" / "annotate"
    for name in ("predictions.csv", "per_class.csv", "confusion_matrix.csv"):
        cells = _cells(ann / name)
        assert not any(runs_as_formula(c) for c in cells), name
        assert '\'=HYPERLINK("http://x","click")' in cells and "'@SUM(1+1)" in cells, name
        assert "-0.5" in cells, name  # a number-like label stays as it was
    # Readers get the labels back: evaluate scores them like annotate did, the report shows them.
    ev = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "--predictions",
            str(ann / "predictions.csv"),
            "--truth",
            str(ann / "query_annotated.h5ad"),
            "--outdir",
            str(tmp_path / "ev"),
        ],
    )
    assert ev.exit_code == 0, ev.output
    ours = json.loads((ann / "metrics.json").read_text())
    theirs = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert theirs["accuracy"] == pytest.approx(ours["accuracy"]) and theirs["accuracy"] > 0.5
    html = (tmp_path / "out" / "p" / "report" / "p_report.html").read_text()
    assert "@SUM(1+1)" in html and "'@SUM(1+1)" not in html


# ------------------------------------------------------------------------------ umask


def test_every_published_file_follows_the_umask(sim, tmp_path):
    """Files (h5, h5ad, csv, html, png, json) 0640 and folders 0750 under umask 027, for every step."""
    from seqalignatac.io.samplesheet import read_samplesheet
    from seqalignatac.workflow.pipeline import RunOptions, run_pipeline

    pairs = read_samplesheet(sample_sheet(tmp_path, sim))
    opts = RunOptions(
        fasta=Path(sim["fasta"]),
        model="kmer:4",
        width=120,
        cache_dir=tmp_path / "out" / "cache",
        annotate_method="knn",
        max_umap_cells=200,
        progress=False,
        threads=1,
        train_overrides={"epochs": 1, "hidden": (16,)},
    )
    old = os.umask(0o027)
    try:
        (r,) = run_pipeline(pairs, tmp_path / "out", opts)
    finally:
        os.umask(old)
    assert r.ok, r.error
    seen = {".h5", ".h5ad", ".csv", ".tsv", ".html", ".png", ".json", ".fa", ".safetensors", ".bed"}
    found = set()
    for p in (tmp_path / "out").rglob("*"):
        mode = stat.S_IMODE(p.lstat().st_mode)
        assert mode == (0o750 if p.is_dir() else 0o640), (p, oct(mode))
        found.add(p.suffix)
    assert seen <= found, seen - found
