"""The per-pair report, the MultiQC table and the index, built from real step outputs on `sim`;
and the report in a real browser: headless Chromium loads it offline, logs no console error and
every figure decodes (skips when Chromium is absent, unless CI is set: then it must be there)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner

from seqalignatac import keys
from seqalignatac.cli.main import cli
from seqalignatac.errors import InputError
from seqalignatac.io.samplesheet import read_samplesheet
from seqalignatac.report.html import build_index, build_report
from seqalignatac.report.mqc import read_mqc
from seqalignatac.workflow.pipeline import RunOptions, run_pipeline

PAIR = "simpair"


@pytest.fixture(scope="session")
def pipeline_run(sim, tmp_path_factory) -> dict:
    """One pair run through every real step (small settings), shared by the report tests."""
    d = tmp_path_factory.mktemp("report_run")
    sheet = d / "pairs.csv"
    sheet.write_text(
        "pair_id,reference,labels_key,query,query_labels_key,fasta\n"
        f"{PAIR},{sim['reference']},{sim['labels_key']},{sim['query']},{sim['labels_key']},{sim['fasta']}\n"
    )
    opts = RunOptions(
        model="kmer",
        seed=0,
        threads=2,
        progress=False,
        max_umap_cells=400,
        train_overrides={"epochs": 4, "hidden": (64,), "bottleneck": 16},
        annotate_overrides={"epochs": 30},
    )
    (res,) = run_pipeline(read_samplesheet(sheet), d / "out", opts)
    assert res.ok, res.error
    pair_dir = d / "out" / PAIR
    return {
        "pair_id": PAIR,
        "pair_dir": pair_dir,
        "out": d / "out",
        "report": res.report,
        "mqc": pair_dir / "report" / f"{PAIR}_mqc.tsv",
        "index": d / "out" / "index.html",
    }


def _mqc_header(path: Path) -> dict:
    lines = [ln[2:] for ln in path.read_text().splitlines() if ln.startswith("# ")]
    return yaml.safe_load("\n".join(lines))


def test_report_content_matches_the_step_outputs(pipeline_run):
    pair_dir = pipeline_run["pair_dir"]
    text = pipeline_run["report"].read_text()
    prep = json.loads((pair_dir / "prepare" / "prepare_summary.json").read_text())
    metrics = json.loads((pair_dir / "annotate" / "metrics.json").read_text())
    train = json.loads((pair_dir / "train" / "train_summary.json").read_text())
    for section in (
        "What went in",
        "Peak harmonization",
        "Stage 1",
        "Reference and query cells in the shared embedding",
        "Predictions for the query",
        "Accuracy against the query",
        "Software and parameters",
    ):
        assert section in text, section
    assert f"{prep['cells']['reference']:,}" in text and f"{prep['peaks_kept']:,}" in text
    assert f"{100 * prep['query_accessibility_retained']:.1f} %" in text
    assert f"{metrics['accuracy']:.3f}" in text and f"{metrics['macro_f1']:.3f}" in text
    assert f"{train['heldout_auroc']:.3f}" in text
    # Every figure is an inline PNG; nothing refers to another file or the network.
    imgs = re.findall(r'<img id="([\w-]+)"[^>]* src="([^"]{0,40})', text)
    has_clusters = (pair_dir / "annotate" / keys.QUERY_CLUSTERS).is_file()  # annotate writes it since issue 16
    assert {i for i, _ in imgs} == {
        "fig-composition",
        "fig-training",
        "fig-umap",
        "fig-counts",
        "fig-confidence",
        "fig-confusion",
        "fig-stage2",
    } | ({"fig-novelty"} if has_clusters else set())
    assert all(src.startswith("data:image/png;base64,") for _, src in imgs)
    assert "http://" not in text and "https://" not in text
    # Per-class table rows: one per true class.
    per_class = pd.read_csv(pair_dir / "annotate" / "per_class.csv", index_col=0)
    for cls in per_class.index:
        assert f"<td>{cls}</td>" in text
    assert "anndata" in text and "seqalignatac" in text  # versions table


def test_mqc_table_is_multiqc_custom_content(pipeline_run):
    head = _mqc_header(pipeline_run["mqc"])
    assert head["id"] == "seqalignatac_summary" and head["plot_type"] == "table"
    row = read_mqc(pipeline_run["mqc"])
    assert row["pair_id"] == PAIR
    assert set(head["headers"]) == set(row) - {"pair_id"}
    metrics = json.loads((pipeline_run["pair_dir"] / "annotate" / "metrics.json").read_text())
    assert row["accuracy"] == pytest.approx(metrics["accuracy"], abs=1e-6)
    assert row["macro_f1"] == pytest.approx(metrics["macro_f1"], abs=1e-6)
    pred = pd.read_csv(pipeline_run["pair_dir"] / "annotate" / "predictions.csv")
    assert row["unknown_rate"] == pytest.approx(pred["is_unknown"].mean(), abs=1e-6)
    assert int(row["query_cells"]) == len(pred)


def test_report_cli_explicit_dirs_pair_dir_and_index(pipeline_run, tmp_path):
    pd_ = pipeline_run["pair_dir"]
    r = CliRunner().invoke(
        cli,
        [
            "report",
            "--pair-id",
            "x1",
            "--prepare-dir",
            str(pd_ / "prepare"),
            "--train-dir",
            str(pd_ / "train"),
            "--annotate-dir",
            str(pd_ / "annotate"),
            "--outdir",
            str(tmp_path / "x1" / "report"),
            "--max-umap-cells",
            "300",
        ],
    )
    assert r.exit_code == 0, r.output
    assert (tmp_path / "x1" / "report" / "x1_report.html").is_file()
    assert (tmp_path / "x1" / "report" / "x1_mqc.tsv").is_file()
    # --pair-dir on a copy: default outdir is <pair-dir>/report
    copy = tmp_path / "x2"
    shutil.copytree(pd_, copy, ignore=shutil.ignore_patterns("report"))
    r = CliRunner().invoke(cli, ["report", "--pair-dir", str(copy), "--max-umap-cells", "300"])
    assert r.exit_code == 0, r.output
    assert (copy / "report" / "x2_report.html").is_file()
    r = CliRunner().invoke(cli, ["report", "--index", str(tmp_path)])
    assert r.exit_code == 0, r.output
    index = (tmp_path / "index.html").read_text()
    assert 'href="x1/report/x1_report.html"' in index and 'href="x2/report/x2_report.html"' in index


def test_report_without_query_labels_has_no_accuracy_section(pipeline_run, tmp_path):
    pd_ = pipeline_run["pair_dir"]
    prep = tmp_path / "prepare"
    prep.mkdir()
    acc = ad.read_h5ad(pd_ / "prepare" / "accessibility.h5ad")
    key = acc.uns["seqalignatac"]["labels_key"]
    acc.obs[key] = acc.obs[key].astype(object).where(acc.obs["domain"] == "reference", None)
    acc.write_h5ad(prep / "accessibility.h5ad")
    shutil.copy(pd_ / "prepare" / "prepare_summary.json", prep)
    ann = tmp_path / "annotate"
    ann.mkdir()
    for f in ("predictions.csv", "annotate_summary.json"):
        shutil.copy(pd_ / "annotate" / f, ann)
    paths = build_report("nolabels", prep, pd_ / "train", ann, tmp_path / "report", max_umap_cells=300)
    text = paths["html"].read_text()
    assert "Accuracy against" not in text and 'id="fig-confusion"' not in text
    assert "The query has no known labels" in text
    assert 'id="fig-umap"' in text and 'id="fig-confidence"' in text
    row = read_mqc(paths["mqc"])
    assert "accuracy" not in row and "unknown_rate" in row


def _with_query_clusters(pair_dir: Path, ann: Path) -> pd.DataFrame:
    """A copy of annotate's outputs with query clusters: one per best label, clusters 1 and 3 novel
    (median novelty about 3 and 4), 0 and 2 typical; returns the query_clusters.csv written."""
    shutil.copytree(pair_dir / "annotate", ann)
    pred = pd.read_csv(ann / keys.PREDICTIONS, dtype={keys.CELL_ID: str})
    has = pred[keys.BEST_LABEL].notna()  # cells without signal are in no cluster
    codes, _ = pd.factorize(pred.loc[has, keys.BEST_LABEL], sort=True)
    assert codes.max() >= 3, "the simulated query needs four predicted classes"
    cluster = pd.Series(np.nan, index=pred.index)
    cluster[has] = np.minimum(codes, 3)
    offset = cluster.map({0: 0.2, 1: 3.0, 2: 0.8, 3: 4.0})
    pred[keys.QUERY_CLUSTER] = cluster.astype("Int64")
    pred[keys.NOVELTY] = offset + np.random.default_rng(0).normal(0, 0.3, len(pred))
    pred.to_csv(ann / keys.PREDICTIONS, index=False)
    unknown = pred[keys.IS_UNKNOWN].astype(str).str.lower() == "true"
    rows = []
    for c, cells in pred[has].groupby(keys.QUERY_CLUSTER):
        top = cells[keys.BEST_LABEL].value_counts()
        rows.append(
            {
                keys.QUERY_CLUSTER: int(c),
                keys.N_CELLS: len(cells),
                keys.TOP_LABEL: top.index[0],
                keys.TOP_LABEL_SHARE: top.iloc[0] / len(cells),
                keys.UNKNOWN_SHARE: unknown[cells.index].mean(),
                keys.MEDIAN_NOVELTY: cells[keys.NOVELTY].median(),
                keys.EXPLAINED: c in (0, 2),
            }
        )
    table = pd.DataFrame(rows)
    table.to_csv(ann / keys.QUERY_CLUSTERS, index=False)
    summary = json.loads((ann / keys.ANNOTATE_SUMMARY).read_text())
    summary.setdefault("unknown", {})["novelty_threshold"] = 2.576
    (ann / keys.ANNOTATE_SUMMARY).write_text(json.dumps(summary))
    return table.set_index(keys.QUERY_CLUSTER)


def _cluster_table(text: str) -> list[list[str]]:
    """The cells of the report's query-cluster table, one list per row (header left out)."""
    m = re.search(r'<table id="query-cluster-table">(.*?)</table>', text, re.S)
    assert m, "no query-cluster table"
    return [
        [html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)]
        for row in re.findall(r"<tr>(.*?)</tr>", m.group(1), re.S)[1:]
    ]


def test_query_clusters_section_puts_unexplained_clusters_first(pipeline_run, tmp_path):
    ann = tmp_path / "annotate"
    table = _with_query_clusters(pipeline_run["pair_dir"], ann)
    pd_ = pipeline_run["pair_dir"]
    paths = build_report("clusters", pd_ / "prepare", pd_ / "train", ann, tmp_path / "report", max_umap_cells=300)
    text = paths["html"].read_text()
    assert "Query clusters: does the reference explain them?" in text and 'href="#query-clusters"' in text
    assert "above <b>2.576</b> the cell is called Unknown" in text
    rows = _cluster_table(text)
    # Unexplained clusters first, each group by median novelty, highest first.
    assert [r[0] for r in rows] == ["3", "1", "2", "0"]
    verdicts = [r[-1] for r in rows]
    assert verdicts == ["not explained: likely a type the reference lacks"] * 2 + ["explained"] * 2
    for r in rows:
        t = table.loc[int(r[0])]
        assert r[1] == f"{t[keys.N_CELLS]:,}"
        assert r[2] == f"{t[keys.TOP_LABEL]} ({100 * t[keys.TOP_LABEL_SHARE]:.0f} %)"
        assert r[3] == f"{100 * t[keys.UNKNOWN_SHARE]:.0f} %"
        assert r[4] == f"{t[keys.MEDIAN_NOVELTY]:.2f}"
    assert float(rows[0][4]) > 3.5 and float(rows[2][4]) < 1.5
    novel_cells = int(table.loc[[1, 3], keys.N_CELLS].sum())
    assert re.search(r'id="n-unexplained">2 of 4<', text)
    assert re.search(r'id="fig-novelty"[^>]* src="data:image/png;base64,', text)
    row = read_mqc(paths["mqc"])
    assert row["unexplained_clusters"] == 2 and row["unexplained_cells"] == novel_cells
    assert "unexplained_clusters" in _mqc_header(paths["mqc"])["headers"]

    # Results written before annotate made query clusters: no section, no figure, no MultiQC column.
    (ann / keys.QUERY_CLUSTERS).unlink()
    pred = pd.read_csv(ann / keys.PREDICTIONS, dtype={keys.CELL_ID: str})
    pred.drop(columns=[keys.QUERY_CLUSTER, keys.NOVELTY]).to_csv(ann / keys.PREDICTIONS, index=False)
    paths = build_report("old", pd_ / "prepare", pd_ / "train", ann, tmp_path / "old", max_umap_cells=300)
    text = paths["html"].read_text()
    assert "Query clusters" not in text and 'id="fig-novelty"' not in text
    assert 'id="fig-umap"' in text and "Predictions for the query" in text
    assert "unexplained_clusters" not in read_mqc(paths["mqc"])


def test_bad_inputs_name_the_file(pipeline_run, tmp_path):
    pd_ = pipeline_run["pair_dir"]
    ann = tmp_path / "annotate"
    shutil.copytree(pd_ / "annotate", ann)
    (ann / "predictions.csv").unlink()
    with pytest.raises(InputError) as e:
        build_report("p", pd_ / "prepare", pd_ / "train", ann, tmp_path / "r")
    assert e.value.path == str(ann / "predictions.csv")
    pd.DataFrame({"cell_id": ["a"], "label": ["b"]}).to_csv(ann / "predictions.csv", index=False)
    with pytest.raises(InputError, match=r"predictions lack column\(s\)"):
        build_report("p", pd_ / "prepare", pd_ / "train", ann, tmp_path / "r")
    shutil.copy(pd_ / "annotate" / keys.PREDICTIONS, ann)
    pd.DataFrame({keys.QUERY_CLUSTER: [0], keys.N_CELLS: [5]}).to_csv(ann / keys.QUERY_CLUSTERS, index=False)
    with pytest.raises(InputError, match=r"query clusters lack column\(s\)") as e:
        build_report("p", pd_ / "prepare", pd_ / "train", ann, tmp_path / "r")
    assert e.value.path == str(ann / keys.QUERY_CLUSTERS)
    train = tmp_path / "train"
    shutil.copytree(pd_ / "train", train)
    (train / "train_summary.json").write_text("{not json")
    r = CliRunner().invoke(
        cli,
        [
            "report",
            "--pair-id",
            "p",
            "--prepare-dir",
            str(pd_ / "prepare"),
            "--train-dir",
            str(train),
            "--annotate-dir",
            str(pd_ / "annotate"),
            "--outdir",
            str(tmp_path / "r"),
        ],
    )
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert f"Error: {train / 'train_summary.json'}: not valid JSON" in r.output
    r = CliRunner().invoke(cli, ["report", "--pair-id", "p", "--outdir", str(tmp_path / "r")])
    assert r.exit_code == 2 and "missing --prepare-dir, --train-dir, --annotate-dir" in r.output
    r = CliRunner().invoke(
        cli,
        [
            "report",
            "--prepare-dir",
            str(tmp_path / "nope"),
            "--pair-id",
            "p",
            "--train-dir",
            str(train),
            "--annotate-dir",
            str(ann),
            "--outdir",
            str(tmp_path / "r"),
        ],
    )
    assert r.exit_code == 2 and "--prepare-dir is not a folder" in r.output
    assert not (tmp_path / "r" / "p_report.html").exists()  # nothing half-written


def test_index_lists_failed_pairs(pipeline_run, tmp_path):
    out = tmp_path / "o"
    shutil.copytree(pipeline_run["pair_dir"] / "report", out / PAIR / "report")
    path = build_index(
        out, {PAIR: {"ok": True, "seconds": 1.5}, "broken": {"ok": False, "error": "/x/r.h5ad: bad file"}}
    )
    text = path.read_text()
    assert "1 failed" in text and "/x/r.h5ad: bad file" in text
    assert f'href="{PAIR}/report/{PAIR}_report.html"' in text


# ----------------------------------------------------------------------------------- browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")

# Injected at the top of <head> of a *copy* of the report: records console errors, failed
# loads and every image's decoded size into <body data-check=...> for --dump-dom.
PROBE_HEAD = """<script>
window.__errs = [];
(function () {
  const orig = console.error;
  console.error = function () { window.__errs.push(Array.from(arguments).join(' ')); orig.apply(console, arguments); };
  window.addEventListener('error', function (e) {
    window.__errs.push('error: ' + (e.message || (e.target && (e.target.src || e.target.href)) || 'unknown'));
  }, true);
  window.addEventListener('load', function () {
    const imgs = Array.from(document.images);
    document.body.setAttribute('data-check', JSON.stringify({
      errors: window.__errs,
      images: imgs.map(function (i) { return {id: i.id, ok: i.complete && i.naturalWidth > 0, w: i.naturalWidth, h: i.naturalHeight}; }),
      title: document.title
    }));
  });
})();
</script>"""

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-default-apps",
    "--mute-audio",
]


def chromium_or_skip() -> str:
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium not installed (apt-get install -y chromium)")
    return CHROMIUM


def browser_check(page: Path, tmp: Path) -> tuple[dict, list[str]]:
    """Load ``page`` (a probed copy) headless; return (the probe's record, console lines from the log)."""
    exe = chromium_or_skip()
    profile = tmp / f"profile-{page.stem}"
    cmd = [
        exe,
        *FLAGS,
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        "--enable-logging=stderr",
        "--v=0",
        "--dump-dom",
        page.resolve().as_uri(),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r'data-check="([^"]*)"', proc.stdout)
    assert m, f"page did not finish loading in chromium; stderr tail: {proc.stderr[-2000:]}"
    record = json.loads(html.unescape(m.group(1)))
    console = [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]
    return record, console


def probed_copy(report: Path, dest: Path) -> Path:
    text = report.read_text()
    assert "<head>" in text
    dest.write_text(text.replace("<head>", "<head>\n" + PROBE_HEAD, 1))
    return dest


def test_probe_detects_errors_and_broken_images(tmp_path):
    """The check itself works: a console error and an undecodable image are caught."""
    page = tmp_path / "broken.html"
    page.write_text(
        "<!DOCTYPE html><html><head><title>t</title></head><body>"
        '<img id="bad" src="data:image/png;base64,iVBORw0KGgo=">'
        '<script>console.error("boom")</script></body></html>'
    )
    record, console = browser_check(probed_copy(page, tmp_path / "broken_probed.html"), tmp_path)
    assert any("boom" in e for e in record["errors"])
    assert record["images"] == [{"id": "bad", "ok": False, "w": 0, "h": 0}]
    assert any("boom" in line for line in console)


EXPECTED_FIGURES = {
    "fig-composition",
    "fig-training",
    "fig-umap",
    "fig-counts",
    "fig-confidence",
    "fig-confusion",
    "fig-stage2",
}


def test_report_opens_without_errors_and_every_figure_renders(pipeline_run, tmp_path):
    report = pipeline_run["report"]
    text = report.read_text()
    # Self-contained: nothing loaded from anywhere else.
    assert not re.search(r'(src|href)="(https?:)?//', text)
    assert not re.search(r'<link[^>]+rel="stylesheet"', text)
    record, console = browser_check(probed_copy(report, tmp_path / "report_probed.html"), tmp_path)
    assert record["errors"] == []
    assert console == [], console
    ids = {im["id"] for im in record["images"]}
    assert EXPECTED_FIGURES <= ids, EXPECTED_FIGURES - ids
    broken = [im for im in record["images"] if not im["ok"] or im["w"] < 200 or im["h"] < 100]
    assert broken == []
    assert record["title"] == f"seqAlignATAC report: {pipeline_run['pair_id']}"


def test_index_opens_without_errors(pipeline_run, tmp_path):
    record, console = browser_check(probed_copy(pipeline_run["index"], tmp_path / "index_probed.html"), tmp_path)
    assert record["errors"] == [] and console == []
    assert record["title"].startswith("seqAlignATAC")
