"""Helpers behind the benchmark tables (benchmarks/): labels, exchange files, scoring, collection."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCH / "peers"))
sys.path.insert(0, str(BENCH))

import exchange  # noqa: E402
import granja  # noqa: E402
import lsi_logreg  # noqa: E402
import readme_tables  # noqa: E402
import runner  # noqa: E402
import throughput_table  # noqa: E402
import unknown_table  # noqa: E402
from unknown_table import unknown_metrics  # noqa: E402

FINE = [
    "01_HSC",
    "05_CMP.LMPP",
    "06_CLP.1",
    "07_GMP",
    "11_CD14.Mono.1",
    "12_CD14.Mono.2",
    "15_CLP.2",
    "16_Pre.B",
    "17_B",
    "19_CD8.N",
    "20_CD4.N1",
    "21_CD4.N2",
    "22_CD4.M",
    "23_CD8.EM",
    "24_CD8.CM",
    "25_NK",
]


def test_coarse_groups_follow_issue_definition():
    got = {f: granja.coarse_label(f) for f in FINE}
    assert {f for f, g in got.items() if g == "Progenitor"} == {"01_HSC", "05_CMP.LMPP", "06_CLP.1", "15_CLP.2"}
    assert {f for f, g in got.items() if g == "GMP"} == {"07_GMP"}
    assert {f for f, g in got.items() if g == "Mono"} == {"11_CD14.Mono.1", "12_CD14.Mono.2"}
    assert {f for f, g in got.items() if g == "B"} == {"16_Pre.B", "17_B"}
    assert {f for f, g in got.items() if g == "T"} == {
        "19_CD8.N",
        "20_CD4.N1",
        "21_CD4.N2",
        "22_CD4.M",
        "23_CD8.EM",
        "24_CD8.CM",
    }
    assert {f for f, g in got.items() if g == "NK"} == {"25_NK"}


@pytest.mark.parametrize("bad", ["Unk", "02_Early.Eryth", "", "NK"])
def test_coarse_label_rejects_unknown_types(bad):
    with pytest.raises(ValueError, match="no coarse group"):
        granja.coarse_label(bad)


def test_direction_names():
    assert granja.donors("D6toD5") == ("BMMC_D6T1", "BMMC_D5T1")
    assert granja.donors("D5toD6") == ("BMMC_D5T1", "BMMC_D6T1")
    with pytest.raises(ValueError, match="unknown direction"):
        granja.donors("D1toD2")


def _toy(n_ref=300, n_query=120, n_peaks=200, seed=0):
    """Three cell types, each opening its own block of peaks; query with fewer reads (a batch effect)."""
    rng = np.random.default_rng(seed)
    types = np.array(["A", "B", "C"])

    def cells(n, p_open):
        y = types[rng.integers(0, 3, n)]
        prob = np.full((n, n_peaks), 0.02)
        for i, t in enumerate(types):
            prob[y == t, i * 60 : (i + 1) * 60] = p_open
        return sp.csr_matrix((rng.random((n, n_peaks)) < prob).astype(np.float32)), y

    rx, ry = cells(n_ref, 0.5)
    qx, qy = cells(n_query, 0.3)
    peaks = pd.DataFrame(
        {"chrom": "chr1", "start": np.arange(n_peaks) * 1000, "end": np.arange(n_peaks) * 1000 + 500},
        index=[f"chr1:{i * 1000}-{i * 1000 + 500}" for i in range(n_peaks)],
    )
    return rx, ry, qx, qy, peaks


def test_exchange_round_trip_keeps_query_labels_out(tmp_path):
    rx, ry, qx, qy, peaks = _toy()
    folder = exchange.write(
        tmp_path / "ex", rx, [f"r{i}" for i in range(rx.shape[0])], ry, qx, [f"q{i}" for i in range(qx.shape[0])], peaks
    )
    data = exchange.read(folder)
    assert (data["ref_x"] != rx).nnz == 0 and (data["query_x"] != qx).nnz == 0
    assert list(data["ref_labels"]) == list(ry)
    assert list(data["peaks"]["peak_id"]) == list(peaks.index)
    # nothing a tool can read holds the query's truth
    assert list(pd.read_csv(folder / "query_cells.tsv", sep="\t").columns) == ["cell_id"]


def test_predictions_round_trip_and_missing_column(tmp_path):
    path = tmp_path / "p.csv"
    exchange.write_predictions(path, ["a", "b"], ["T", exchange.UNKNOWN], [0.9, 0.2])
    df = exchange.read_predictions(path)
    assert df.loc["b", "predicted_label"] == "Unknown" and df.loc["a", "confidence"] == pytest.approx(0.9)
    (tmp_path / "bad.csv").write_text("cell,label\na,T\n")
    with pytest.raises(ValueError, match="missing column"):
        exchange.read_predictions(tmp_path / "bad.csv")


def test_lsi_logreg_baseline_learns_toy_types(tmp_path):
    rx, ry, qx, qy, peaks = _toy()
    qids = [f"q{i}" for i in range(qx.shape[0])]
    folder = exchange.write(tmp_path / "ex", rx, [f"r{i}" for i in range(rx.shape[0])], ry, qx, qids, peaks)
    for clf in ("logreg", "knn15"):
        out = tmp_path / f"{clf}.csv"
        assert lsi_logreg.main(["--exchange", str(folder), "--out", str(out), "--classifier", clf]) == 0
        pred = exchange.read_predictions(out).loc[qids, "predicted_label"].to_numpy()
        assert (pred == qy).mean() > 0.9


def test_lsi_features_are_fitted_on_reference_only():
    rx, _, qx, _, _ = _toy()
    r1, q1 = lsi_logreg.lsi_features(rx, qx)
    r2, q2 = lsi_logreg.lsi_features(rx, qx[:10])
    assert r1.shape[1] == lsi_logreg.N_COMPONENTS - 1
    np.testing.assert_allclose(r1, r2)  # the query cannot move the reference features
    np.testing.assert_allclose(q1[:10], q2, atol=1e-10)  # nor other query cells a query cell's


def test_unknown_metrics():
    truth = pd.Series(["25_NK", "25_NK", "17_B", "17_B", "22_CD4.M"], index=list("abcde"))
    pred = pd.Series(["Unknown", "22_CD4.M", "17_B", "Unknown", "22_CD4.M"], index=list("abcde"))
    m = unknown_metrics(truth, pred, {"25_NK"})
    assert m["removed_type_unknown_share"] == 0.5
    assert m["others_unknown_share"] == pytest.approx(1 / 3)
    assert m["others_accuracy"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="no cell of the removed"):
        unknown_metrics(truth, pred, {"16_Pre.B"})


def test_run_measured_reports_time_memory_and_failure(tmp_path):
    runner.LOCK_ENABLED = False
    try:
        ok = runner.run_measured(
            [sys.executable, "-c", "import time; b = bytearray(200 * 2**20); time.sleep(1.0)"], tmp_path / "ok.log"
        )
        assert ok["rc"] == 0 and ok["wall_s"] >= 1.0 and ok["peak_rss_mb"] > 150
        bad = runner.run_measured([sys.executable, "-c", "raise SystemExit('boom')"], tmp_path / "bad.log")
        assert bad["rc"] != 0 and "boom" in runner.tail(tmp_path / "bad.log")
        slow = runner.run_measured(
            [sys.executable, "-c", "import time; time.sleep(30)"], tmp_path / "slow.log", timeout_s=1
        )
        assert slow["timed_out"] and slow["wall_s"] < 20
    finally:
        runner.LOCK_ENABLED = True


def test_md_table_formats_numbers_and_missing():
    md = runner.md_table(
        [{"a": 0.12345, "b": None, "c": 1234.5, "d": "x|y"}], [("a", "A"), ("b", "B"), ("c", "C"), ("d", "D")]
    )
    assert "| 0.123 | – | 1,234 | x\\|y |" in md


def test_throughput_collector_reads_sources_and_lists_missing(tmp_path):
    (tmp_path / "stage1_scale_cpu.json").write_text(
        json.dumps(
            {
                "command": "python benchmarks/stage1_scale.py",
                "machine": {"date": "2026-01-01", "load_average": [3.0, 2, 1]},
                "results": [
                    {"cells": 100000, "peaks": 100000, "device": "cpu", "epoch_seconds": 12.5, "peak_rss_gb": 1.5}
                ],
            }
        )
    )
    (tmp_path / "demo_walltime.json").write_text(
        json.dumps({"date": "2026-01-01", "first_run": {"wall_seconds": 99.0, "peak_rss_mib": 500}, "model": "kmer"})
    )
    (tmp_path / "something_else.json").write_text("{}")
    (tmp_path / "stage2_scale_broken.json").write_text("{not json")
    rows, missing, unread = throughput_table.collect(tmp_path)
    measures = {(r["area"], r["measure"], r["value"]) for r in rows}
    assert ("stage 1", "stage 1 epoch time", 12.5) in measures
    assert ("stage 1", "stage 1 peak memory", 1.5) in measures
    assert any(r["area"] == "demo" and r["value"] == 99.0 for r in rows)
    assert rows[0]["load_1min"] == 3.0 or rows[1]["load_1min"] == 3.0
    assert "stage-1 time & memory at 300k cells" in missing and "embedding peaks/s on GPU" in missing
    assert "demo wall time" not in missing
    assert "something_else.json" in unread and any(u.startswith("stage2_scale_broken.json") for u in unread)
    assert throughput_table.main(["--results", str(tmp_path)]) == 0
    assert "Not measured yet" in (tmp_path / "throughput_table.md").read_text()


@pytest.mark.realdata
def test_granja_cells_with_coarse_matches_readme_counts(shared_data, tmp_path):
    out = granja.cells_with_coarse(shared_data, tmp_path / "cells.tsv")
    cells = pd.read_csv(out, sep="\t")
    counts = cells.groupby(["Group", "coarse_label"]).size()
    assert counts[("BMMC_D5T1", "NK")] == 217 and counts[("BMMC_D6T1", "NK")] == 313
    assert counts[("BMMC_D5T1", "B")] == 91 + 660 and counts[("BMMC_D6T1", "T")] == 570 + 1573 + 30 + 1243 + 42 + 440
    assert len(cells) == 14125


def test_missing_data_folder_is_reported(tmp_path):
    with pytest.raises(FileNotFoundError, match="SEQALIGNATAC_DATA"):
        granja.cells_with_coarse(tmp_path, tmp_path / "cells.tsv")


def test_tables_list_every_row_not_run_yet():
    import accuracy_table
    import unknown_table

    machine = runner.machine_info()
    row = {
        "direction": "D6toD5",
        "level": "fine",
        "tool": "lsi_logreg",
        "accuracy": 0.5,
        "macro_f1": 0.4,
        "unknown_rate": 0.0,
        "wall_s": 3.0,
        "peak_rss_mb": 100.0,
        "status": "ok",
    }
    md = accuracy_table.render({"machine": machine, "versions": {}, "rows": [row], "invocations": []})
    lines = [line for line in md.splitlines() if line.startswith("| D")]
    assert len(lines) == 2 * 2 * len(accuracy_table.TOOLS)  # directions x levels x tools, nothing dropped
    assert sum(("not run yet" in line) or ("not run in this session" in line) for line in lines) == len(lines) - 1
    assert "| 0.500 | 0.400 | 0.000 | 0.500 |" in md  # a tool without Unknown: arg-max accuracy = accuracy
    md2 = unknown_table.render({"command": "x", "machine": machine, "rows": []})
    rows2 = [line for line in md2.splitlines() if line.startswith("| D")]
    # both directions x (nothing removed + 5 groups) x the default tool, nothing dropped
    assert len(rows2) == 2 * 6 * len(unknown_table.DEFAULT_TOOLS) and all("not run yet" in line for line in rows2)
    assert unknown_table.DEFAULT_REMOVE == ["none", "NK", "B", "Mono", "GMP", "Progenitor"]
    assert "T" in unknown_table.GROUP_ORDER and "T" not in unknown_table.DEFAULT_REMOVE
    assert "Cellcano" in md2  # tools with no Unknown output are named, not dropped


def test_full_metrics_counts_unknown_wrong_and_scores_argmax():
    truth = pd.Series(["A", "A", "B", "B"], index=list("wxyz"))
    pred = pd.Series(["A", "Unknown", "B", "A"], index=list("wxyz"))
    argmax = pd.Series(["A", "A", "B", "A"], index=list("wxyz"))
    m = unknown_table.full_metrics(truth, pred, argmax)
    assert m["accuracy"] == pytest.approx(0.5) and m["others_accuracy"] == pytest.approx(0.5)
    assert m["macro_f1"] == pytest.approx((0.5 + 2 / 3) / 2)  # A: P 1/2 R 1/2; B: P 1 R 1/2
    assert m["others_unknown_share"] == pytest.approx(0.25)
    assert m["accuracy_argmax"] == pytest.approx(0.75) and m["macro_f1_argmax"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert m["per_class_f1"] == pytest.approx({"A": 0.5, "B": 2 / 3})
    no_argmax = unknown_table.full_metrics(truth, pred.drop("z"))  # a dropped cell counts wrong, not Unknown
    assert no_argmax["accuracy"] == pytest.approx(0.5) and no_argmax["accuracy_argmax"] is None


def _case(direction, removed, tool="sa_lsi_gda", **kw):
    row = {"direction": direction, "removed": removed, "tool": tool, "status": "ok", "removed_labels": []}
    return {**row, **kw}


SYNTHETIC_ROWS = [
    _case("D5toD6", "NK", removed_type_unknown_share=0.2, others_unknown_share=0.01, removed_labels=["25_NK"]),
    _case("D5toD6", "B", removed_type_unknown_share=0.9, others_unknown_share=0.04),
    _case("D5toD6", "Mono", removed_type_unknown_share=0.4, others_unknown_share=0.02),
    _case("D5toD6", "GMP", status="failed at prepare"),
    _case(
        "D5toD6",
        "none",
        accuracy=0.7,
        macro_f1=0.6,
        accuracy_argmax=0.72,
        macro_f1_argmax=0.61,
        others_unknown_share=0.03,
    ),
    _case(
        "D6toD5",
        "NK",
        "scmingle",
        removed_type_unknown_share=0.0,
        others_unknown_share=0.001,
        removed_type_top_predictions={"24_CD8.CM": 191, "06_CLP.1": 9, "19_CD8.N": 5, "20_CD4.N1": 4},
    ),
]


def test_summarize_per_direction_and_tool():
    s = unknown_table.summarize(SYNTHETIC_ROWS)
    assert [(x["direction"], x["tool"]) for x in s] == [("D6toD5", "scmingle"), ("D5toD6", "sa_lsi_gda")]
    ours = s[1]
    assert ours["left_out_groups"] == ["NK", "B", "Mono"]  # the failed GMP case is left out
    assert ours["left_out_recall_mean"] == pytest.approx(0.5)
    assert ours["false_unknown_mean"] == pytest.approx((0.03 + 0.01 + 0.04 + 0.02) / 4)
    assert (ours["false_unknown_max"], ours["false_unknown_max_case"]) == (0.04, "B")
    assert (ours["accuracy"], ours["macro_f1"], ours["accuracy_argmax"], ours["macro_f1_argmax"]) == (
        0.7,
        0.6,
        0.72,
        0.61,
    )
    peer = s[0]
    assert peer["left_out_recall_mean"] == 0.0 and peer["accuracy"] is None  # no nothing-removed case run


def test_unknown_render_summary_cases_and_tuning_mark():
    md = unknown_table.render({"command": "x", "machine": runner.machine_info(), "rows": SYNTHETIC_ROWS})
    summary = md.split("## Summary")[1].split("## Cases")[0]
    assert (
        "| D5toD6 † | seqAlignATAC GDA on LSI (--unknown distance) | 0.500 (3: NK, B, Mono) | 0.025 | 0.040 (B) |"
        in summary
    )
    assert "| 0.700 / 0.600 | 0.720 / 0.610 |" in summary
    assert "0.030 (nothing removed)" in unknown_table.render(
        {"command": "x", "machine": runner.machine_info(), "rows": SYNTHETIC_ROWS[-2:-1]}
    )
    assert "| D6toD5 | scMINGLE 1.1.0 (uncover_novel=True) | 0.000 (1: NK) |" in summary  # peers are never marked
    cases = md.split("## Cases")[1]
    assert "| D5toD6 † | NK (25_NK) | seqAlignATAC GDA on LSI (--unknown distance) | 0.200 | 0.010 |" in cases
    assert (
        "| D5toD6 † | nothing | seqAlignATAC GDA on LSI (--unknown distance) | – | 0.030 | – | 0.700 / 0.600 (0.720 / 0.610) |"
        in cases
    )
    assert "24_CD8.CM 191, 06_CLP.1 9, 19_CD8.N 5 |" in cases  # top three predictions of the removed cells
    assert "ok, not held out †" in cases and "failed at prepare" in cases
    # the default cases (2 directions x 6) not run, for the default tool and for every tool that has a row
    assert cases.count("not run yet") == (12 - 5) + (12 - 1)


def test_readme_replace_block_keeps_text_outside_markers():
    text = f"intro\n{readme_tables.START}\nold table\n{readme_tables.END}\nafter\n"
    new = readme_tables.replace_block(text, "| new |\n")
    assert new == f"intro\n{readme_tables.START}\n| new |\n{readme_tables.END}\nafter\n"
    assert readme_tables.replace_block(new, "| new |") == new  # idempotent
    for bad in ("no markers", f"{readme_tables.END} {readme_tables.START}", text + readme_tables.START):
        with pytest.raises(ValueError, match="benchmark-tables"):
            readme_tables.replace_block(bad, "x")


def _acc(direction, level, tool, a, f, **kw):
    return {"direction": direction, "level": level, "tool": tool, "accuracy": a, "macro_f1": f, "status": "ok", **kw}


ACC = {
    "rows": [
        _acc("D6toD5", "fine", "sa_lsi_gda", 0.74, 0.60, accuracy_best_label=0.75),
        _acc("D6toD5", "coarse", "sa_lsi_gda", 0.90, 0.83),
        _acc("D6toD5", "fine", "sa_lsi_knn", 0.70, 0.55),
        _acc("D6toD5", "coarse", "sa_lsi_knn", 0.93, 0.86),
        _acc("D6toD5", "fine", "lsi_logreg", 0.65, 0.49),
        _acc("D6toD5", "fine", "lsi_logreg_allpeaks", 0.68, 0.51),
        _acc("D6toD5", "coarse", "lsi_logreg", 0.92, 0.82),
        _acc("D6toD5", "fine", "scmingle", 0.44, 0.31),
        _acc("D5toD6", "fine", "cellcano", 0.1, 0.9),  # other direction: never shown
    ]
}


def test_readme_block_prefers_unknown_table_and_falls_back_with_a_note():
    unknown = {
        "rows": [
            _case(
                "D6toD5", "NK", removed_type_unknown_share=0.04, others_unknown_share=0.008, removed_labels=["25_NK"]
            ),
            _case("D6toD5", "B", removed_type_unknown_share=0.9, others_unknown_share=0.012),
            _case("D5toD6", "Mono", removed_type_unknown_share=0.5, others_unknown_share=0.3),  # tuning pair
        ]
    }
    block = readme_tables.build_block(unknown, ACC, None)
    assert (
        "| seqAlignATAC, GDA on LSI (2,723 peaks kept by `prepare`) | **0.740 / 0.600** (arg-max accuracy 0.750) ‡ | 0.900 / 0.830 |"
        in block
    )
    assert "‡ From accuracy_table.json" in block
    assert "| seqAlignATAC, kNN ablation on LSI (2,723 kept peaks) | 0.700 / 0.550 | **0.930 / 0.860** |" in block
    assert "(all 10,000 peaks; [stage2_granja]" not in block  # no stage2_granja result given
    assert "| 0.650 / 0.490, 0.680 / 0.510 | 0.920 / 0.820 |" in block
    assert "| Cellcano 1.0.4 | not run | not run |" in block
    assert "| NK (25_NK) | 4.0 % / 0.8 % |" in block and "| B () | 90.0 % / 1.2 % |" in block
    assert "| mean left-out share / largest false share | 47.0 % / 1.2 % |" in block
    assert "Mono" not in block  # only the held-out pair's cases
    full = _case("D6toD5", "none", accuracy=0.76, macro_f1=0.65, accuracy_argmax=0.77, macro_f1_argmax=0.66)
    full["others_unknown_share"] = 0.02
    stage2 = {
        "results": [
            {
                "method": "gda",
                "accuracy": 0.774,
                "macro_f1": 0.67,
                "accuracy_with_unknown": 0.761,
                "macro_f1_with_unknown": 0.656,
            }
        ]
    }
    block2 = readme_tables.build_block({"rows": [*unknown["rows"], full]}, ACC, stage2)
    # The nothing-removed case is the default pipeline (all peaks since issue 16): one row, and the
    # stage2_granja row that measured the same path is not repeated.
    assert (
        "| seqAlignATAC, default pipeline (GDA on LSI, all 10,000 peaks) | **0.760 / 0.650** (arg-max 0.770 / 0.660) "
        "| 0.900 / 0.830 † |" in block2
    )
    assert "‡" not in block2 and "† 6 coarse groups: the earlier run" in block2
    assert "[stage2_granja]" not in block2
    assert "| mean left-out share / largest false share | 47.0 % / 2.0 % |" in block2  # nothing removed: 2 % false
    assert "| nothing (every Unknown is false) | – / 2.0 % |" in block2
    fallback = readme_tables.build_block(unknown, ACC, stage2)  # no nothing-removed case: stage2_granja's row
    assert "| **0.761 / 0.656** (arg-max 0.774 / 0.670) |  |" in fallback
