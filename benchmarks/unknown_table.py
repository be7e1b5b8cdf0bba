"""Table 2: unknown-type detection on real data (Granja 2019 bone marrow).

    python benchmarks/unknown_table.py [--data ../shared/data] [--directions D6toD5] [--remove NK B]
                                       [--tools sa_lsi_gda sa_kmer_gda scmingle epipack] [--reuse]

One coarse group (NK, then B = 16_Pre.B + 17_B) is removed from the reference; the query keeps it.
Every tool is trained on the remaining fine labels and run with its own unknown-type option at its
documented default:

- seqAlignATAC: ``annotate`` as shipped (``--unknown distance`` with its default quantile; docs/stage2.md
  step 4); the whole pipeline reruns on the reduced reference.
- scMINGLE: ``predict(..., uncover_novel=True)`` (convex hulls in the contrastive embedding).
- EpiPack: ``Global_oor_detector(...).annotate(confidence_threshold=0.01)`` (its tutorial's value).
- Cellcano and the LSI + logistic-regression baseline have no unknown output; they are listed, not run.

Columns: share of the removed type's query cells labeled Unknown (higher is better); share of the
other query cells labeled Unknown (lower is better); accuracy on those other cells.
Writes ``benchmarks/results/unknown_table.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402
import granja  # noqa: E402
import ours  # noqa: E402
import runner  # noqa: E402
from accuracy_table import FASTA_REL, PEER_PACKAGES, PEERS_DIR, peer_python  # noqa: E402

UNKNOWN = exchange.UNKNOWN
TOOLS: dict[str, str] = {
    "sa_lsi_gda": "seqAlignATAC GDA on LSI (--unknown distance)",
    "sa_kmer_gda": "seqAlignATAC GDA, k-mer stage 1 (--unknown distance)",
    "scmingle": "scMINGLE 1.1.0 (uncover_novel=True)",
    "epipack": "EpiPack 1.0.2 (Global_oor_detector, threshold 0.01)",
}
GROUP_ORDER = ["NK", "B", "Mono", "T", "GMP", "Progenitor"]
NOT_RUN = {
    "epipack": "not run in this session: EpiPack at its tutorial settings took 44 min on a 1,900-cell "
    "subsample here (benchmarks/README.md); the full runs did not fit the time left"
}
NO_UNKNOWN = {
    "cellcano": "Cellcano 1.0.4: no unknown-type output (every cell gets a reference label)",
    "lsi_logreg": "TF-IDF/LSI + logistic regression: no unknown-type output",
}


def unknown_metrics(truth: pd.Series, pred: pd.Series, removed: set[str]) -> dict[str, Any]:
    """Share of removed-type cells called Unknown, share of other cells called Unknown, accuracy on others."""
    t = truth.astype(str)
    p = pred.reindex(t.index).fillna("(no prediction)").astype(str)  # a dropped cell is not an Unknown call
    is_removed = t.isin(removed).to_numpy()
    is_unknown = (p == UNKNOWN).to_numpy()
    if not is_removed.any():
        raise ValueError(f"the query has no cell of the removed type(s) {sorted(removed)}")
    others = ~is_removed
    return {
        "n_removed_type_cells": int(is_removed.sum()),
        "n_other_cells": int(others.sum()),
        "removed_type_unknown_share": float(is_unknown[is_removed].mean()),
        "others_unknown_share": float(is_unknown[others].mean()) if others.any() else None,
        "others_accuracy": float((p.to_numpy()[others] == t.to_numpy()[others]).mean()) if others.any() else None,
        "removed_type_top_predictions": {
            str(k): int(v) for k, v in pd.Series(p.to_numpy()[is_removed]).value_counts().head(4).items()
        },
    }


def run_case(args, direction: str, group: str, tool: str, convert_dir: Path, work: Path, fasta: Path) -> dict[str, Any]:
    ref_donor, query_donor = granja.donors(direction)
    case = work / direction / f"unknown_without_{group}"
    case.mkdir(parents=True, exist_ok=True)
    ref_h5ad = case / "reference.h5ad"
    query_h5ad = convert_dir / f"{query_donor}.h5ad"
    if not ref_h5ad.exists():
        import anndata as ad

        ref = ad.read_h5ad(convert_dir / f"{ref_donor}.h5ad")
        ref = ref[(ref.obs[granja.COARSE_KEY].astype(str) != group).to_numpy()].copy()
        tmp = ref_h5ad.with_name("reference.tmp-write.h5ad")
        ref.write_h5ad(tmp)
        tmp.replace(ref_h5ad)
    query = granja.load_donor(convert_dir, query_donor)
    truth = query.obs[granja.LABEL_KEY]
    removed = {v for v in truth.unique() if granja.coarse_label(v) == group}
    row: dict[str, Any] = {
        "direction": direction,
        "removed": group,
        "removed_labels": sorted(removed),
        "tool": tool,
        "tool_name": TOOLS[tool],
    }
    prep = ours.prepare(case, ref_h5ad, query_h5ad, args.reuse)
    steps = [prep]
    if prep["rc"] != 0:
        return {**row, "status": f"prepare failed: {prep.get('error')}", "steps": steps}
    if tool.startswith("sa_"):
        features = tool.split("_")[1]
        steps += ours.kmer_stage1(case, fasta, args.reuse) if features == "kmer" else ours.lsi_stage1(case, args.reuse)
        if all(s["rc"] == 0 for s in steps):
            steps.append(ours.annotate(case, features, "gda", "fine", args.reuse))
        failed = [s for s in steps if s["rc"] != 0]
        row.update(
            steps=steps,
            commands=[s["command"] for s in steps],
            wall_s=round(sum(s["wall_s"] for s in steps), 1),
            peak_rss_mb=max(s["peak_rss_mb"] for s in steps),
        )
        if failed:
            return {**row, "status": f"failed at {failed[0]['step']}: {failed[0].get('error', '')}"}
        pred = ours.predictions(case, f"annotate_{features}_gda_fine")["predicted_label"]
    else:
        import anndata as ad

        peaks = list(ad.read_h5ad(case / "prepare" / "accessibility.h5ad", backed="r").var_names)
        ex = case / "exchange"
        if not (ex / "peaks.tsv").exists():
            r = ad.read_h5ad(ref_h5ad)[:, peaks]
            q = query[:, peaks]
            exchange.write(ex, r.X, r.obs_names, r.obs[granja.LABEL_KEY].astype(str), q.X, q.obs_names, r.var)
        outdir = case / tool
        record = outdir / "run.json"
        if args.reuse and record.is_file() and (outdir / "predictions.csv").is_file():
            rec = json.loads(record.read_text())
        else:
            py, extra = peer_python(tool, work / "envs")
            if py is None:
                return {**row, "status": "environment could not be made", **extra}
            flag = "--uncover-novel" if tool == "scmingle" else "--oor"
            script = "run_scmingle.py" if tool == "scmingle" else "run_epipack.py"
            rec = runner.run_measured(
                [str(py), str(PEERS_DIR / script), "--exchange", str(ex), "--outdir", str(outdir), flag],
                outdir / "run.log",
                env={"OMP_NUM_THREADS": ours.THREADS},
                timeout_s=args.timeout,
            )
            runner.write_json(record, rec)
        row.update(steps=[rec], commands=[rec["command"]], wall_s=rec["wall_s"], peak_rss_mb=rec["peak_rss_mb"])
        if rec["rc"] != 0:
            status = (
                f"timed out after {rec['wall_s']:.0f} s"
                if rec.get("timed_out")
                else f"failed (rc {rec['rc']}): {runner.tail(outdir / 'run.log')}"
            )
            return {**row, "status": status}
        pred = exchange.read_predictions(outdir / "predictions.csv")["predicted_label"]
    row.update(unknown_metrics(truth, pred, removed))
    row["status"] = "ok"
    return row


COLUMNS = [
    ("direction", "direction"),
    ("removed", "removed from reference"),
    ("tool_name", "tool"),
    ("removed_type_unknown_share", "removed type -> Unknown"),
    ("others_unknown_share", "others -> Unknown"),
    ("others_accuracy", "accuracy on others"),
    ("wall_s", "wall s"),
    ("peak_rss_mb", "peak MB"),
    ("status", "status"),
]


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    have = {(r["direction"], r["removed"], r["tool"]) for r in result["rows"]}
    rows = list(result["rows"]) + [
        {
            "direction": "D6toD5",
            "removed": g,
            "tool": t,
            "tool_name": TOOLS[t],
            "status": NOT_RUN.get(t, "not run yet (see README)"),
        }
        for g in ("NK", "B")
        for t in TOOLS
        if ("D6toD5", g, t) not in have
    ]
    rows.sort(key=lambda r: (r["direction"], GROUP_ORDER.index(r["removed"]), list(TOOLS).index(r["tool"])))
    out = [
        "# Table 2: unknown-type detection (Granja 2019 bone marrow)\n",
        f"Produced by `{result['command']}` on {m['date_utc']} ({m['cpu_model']}, {m['cpu_cores']} cores, "
        f"{m['ram_gb']} GB RAM, load average at start {m['loadavg']}).  One coarse group is removed from the "
        "reference (its query cells stay); each tool uses its own unknown-type option at its default.  "
        "`removed type -> Unknown`: share of that group's query cells labeled Unknown (higher is better); "
        "`others -> Unknown`: share of all other query cells labeled Unknown (lower is better); "
        "`accuracy on others`: fine-label accuracy on those other cells (Unknown counts as wrong).\n",
        runner.md_table(rows, COLUMNS),
        "\nNot run (no unknown-type output): " + "; ".join(NO_UNKNOWN.values()) + ".\n",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directions", nargs="+", default=["D6toD5"], choices=list(granja.DIRECTIONS))
    ap.add_argument("--remove", nargs="+", default=["NK", "B"], choices=["NK", "B", "Mono", "T", "GMP", "Progenitor"])
    ap.add_argument("--tools", nargs="+", default=list(TOOLS), choices=list(TOOLS))
    runner.add_table_args(ap, "unknown_table")
    args = ap.parse_args(argv)
    if args.render_only:
        runner.render_only(args.out, render)
        return 0
    runner.LOCK_ENABLED = not args.no_lock
    data = Path(args.data or granja.default_data_dir())
    work = args.work
    convert_dir = ours.convert_donors(data, work, args.reuse)
    out_json = args.out.with_suffix(".json")
    previous = json.loads(out_json.read_text())["rows"] if (args.reuse and out_json.is_file()) else []
    rows = {(r["direction"], r["removed"], r["tool"]): r for r in previous}
    result: dict[str, Any] = {}
    machine = runner.machine_info()
    for direction in args.directions:
        for group in args.remove:
            for tool in args.tools:
                print(f"[{direction} without {group}] {tool} ...", flush=True)
                row = run_case(args, direction, group, tool, convert_dir, work, data / FASTA_REL)
                rows[(direction, group, tool)] = row
                print(
                    f"    -> {row.get('status')} removed->Unknown={row.get('removed_type_unknown_share')} "
                    f"others->Unknown={row.get('others_unknown_share')}",
                    flush=True,
                )
                result = {
                    "table": "unknown",
                    "command": "python " + " ".join(["benchmarks/unknown_table.py", *(argv or sys.argv[1:])]),
                    "machine": machine,
                    "not_run": NO_UNKNOWN,
                    "versions": runner.pip_versions(sys.executable, ["seqalignatac"]),
                    "rows": sorted(
                        rows.values(), key=lambda r: (r["direction"], r["removed"], list(TOOLS).index(r["tool"]))
                    ),
                }
                runner.write_json(out_json, result)
                runner.write_text(args.out.with_suffix(".md"), render(result))
    for peer in ("scmingle", "epipack"):
        py = runner.SCRATCH / "venvs" / peer / "bin" / "python"
        if result and py.exists():
            result["versions"][peer] = runner.pip_versions(py, PEER_PACKAGES[peer])
    if result:
        runner.write_json(out_json, result)
        runner.write_text(args.out.with_suffix(".md"), render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
