"""Table 2: unknown-type detection on real data (Granja 2019 bone marrow), both directions.

    python benchmarks/unknown_table.py [--directions D6toD5 D5toD6] [--remove none NK B Mono GMP Progenitor]
                                       [--tools sa_lsi_gda sa_kmer_gda scmingle epipack] [--reuse]

With no option: both directions, seqAlignATAC GDA on LSI, and per direction six cases: nothing
removed, then one coarse group removed from the reference at a time (NK = 25_NK; B = 16_Pre.B +
17_B; Mono = 11_* + 12_*; GMP = 07_GMP; Progenitor = 01_HSC + 05_CMP.LMPP + 06_CLP.1 + 15_CLP.2).
The query keeps every cell.  ``T`` (19_* to 24_*: six of the 16 types, about 40 % of the cells)
can be named with ``--remove T`` but is not in the default: without any T cell the reference loses
the neighbours of NK and of every other T state at once, which is no longer "one type missing".
Every tool is trained on the remaining fine labels and run with its own unknown-type option at its
documented default:

- seqAlignATAC: ``annotate`` as shipped (``--unknown distance`` at its defaults; docs/stage2.md
  step 4); the whole pipeline reruns on the reduced reference.
- scMINGLE: ``predict(..., uncover_novel=True)`` (convex hulls in the contrastive embedding).
- EpiPack: ``Global_oor_detector(...).annotate(confidence_threshold=0.01)`` (its tutorial's value).
- Cellcano and the LSI + logistic-regression baseline have no unknown output; they are listed, not run.

Peers run only when named with ``--tools`` (they take long and need their own environments).

Per case: share of the removed type's query cells labeled Unknown (its recall as a new type;
higher is better); share of the other query cells labeled Unknown (false Unknowns; lower is
better); accuracy on those other cells; the commonest predictions of the removed cells.  The
nothing-removed case gives accuracy and macro-F1 over the 16 types (Unknown counted wrong, and
arg-max, Unknown flags ignored) scored by ``seqalignatac.metrics.evaluate``.  A summary per
direction and tool: mean recall of the left-out types, mean and largest false-Unknown share, and
the nothing-removed scores.  D5toD6 is the pair our defaults were tuned on (not held out).
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
from accuracy_table import FASTA_REL, PEER_PACKAGES, PEERS_DIR, TUNED_NOTE, TUNED_ON, peer_python  # noqa: E402

from seqalignatac.metrics import evaluate  # noqa: E402

UNKNOWN = exchange.UNKNOWN
NO_PREDICTION = "(no prediction)"
TOOLS: dict[str, str] = {
    "sa_lsi_gda": "seqAlignATAC GDA on LSI (--unknown distance)",
    "sa_kmer_gda": "seqAlignATAC GDA, k-mer stage 1 (--unknown distance)",
    "scmingle": "scMINGLE 1.1.0 (uncover_novel=True)",
    "epipack": "EpiPack 1.0.2 (Global_oor_detector, threshold 0.01)",
}
DEFAULT_TOOLS = ["sa_lsi_gda"]
NOTHING = "none"  # the case with nothing removed from the reference
GROUP_ORDER = [NOTHING, "NK", "B", "Mono", "GMP", "Progenitor", "T"]
DEFAULT_REMOVE = [NOTHING, "NK", "B", "Mono", "GMP", "Progenitor"]
DIRECTION_ORDER = list(granja.DIRECTIONS)
NO_UNKNOWN = {
    "cellcano": "Cellcano 1.0.4: no unknown-type output (every cell gets a reference label)",
    "lsi_logreg": "TF-IDF/LSI + logistic regression: no unknown-type output",
}


def unknown_metrics(truth: pd.Series, pred: pd.Series, removed: set[str]) -> dict[str, Any]:
    """Share of removed-type cells called Unknown, share of other cells called Unknown, accuracy on others."""
    t = truth.astype(str)
    p = pred.reindex(t.index).fillna(NO_PREDICTION).astype(str)  # a dropped cell is not an Unknown call
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


def full_metrics(truth: pd.Series, pred: pd.Series, argmax: pd.Series | None = None) -> dict[str, Any]:
    """Nothing removed: accuracy and macro-F1 over the query's types, Unknown counted wrong.

    ``argmax`` (our ``best_label``: the most probable reference label, Unknown flags ignored) adds
    ``accuracy_argmax`` / ``macro_f1_argmax``; tools without it get ``None`` there.  Every Unknown
    call is false here, so ``others_unknown_share`` is the Unknown share of all cells."""
    t = truth.astype(str)
    p = pred.reindex(t.index).fillna(NO_PREDICTION).astype(str)
    m = evaluate(t.to_numpy(), p.to_numpy(), unknown_label=UNKNOWN)
    out: dict[str, Any] = {
        "n_removed_type_cells": 0,
        "n_other_cells": int(m["n_cells"]),
        "accuracy": m["accuracy"],
        "macro_f1": m["macro_f1"],
        "others_unknown_share": m["unknown_rate"],
        "others_accuracy": m["accuracy"],
        "per_class_f1": {str(k): float(v) for k, v in m["per_class"]["f1"].items()},
        "accuracy_argmax": None,
        "macro_f1_argmax": None,
    }
    if argmax is not None:
        a = argmax.reindex(t.index).fillna(NO_PREDICTION).astype(str)
        ma = evaluate(t.to_numpy(), a.to_numpy(), unknown_label=UNKNOWN)
        out["accuracy_argmax"], out["macro_f1_argmax"] = ma["accuracy"], ma["macro_f1"]
    return out


def case_dir(work: Path, direction: str, group: str) -> Path:
    name = "unknown_nothing_removed" if group == NOTHING else f"unknown_without_{group}"
    return work / direction / name


def run_case(args, direction: str, group: str, tool: str, convert_dir: Path, work: Path, fasta: Path) -> dict[str, Any]:
    ref_donor, query_donor = granja.donors(direction)
    case = case_dir(work, direction, group)
    case.mkdir(parents=True, exist_ok=True)
    query_h5ad = convert_dir / f"{query_donor}.h5ad"
    if group == NOTHING:
        ref_h5ad = convert_dir / f"{ref_donor}.h5ad"
    else:
        ref_h5ad = case / "reference.h5ad"
        if not ref_h5ad.exists():
            import anndata as ad

            ref = ad.read_h5ad(convert_dir / f"{ref_donor}.h5ad")
            ref = ref[(ref.obs[granja.COARSE_KEY].astype(str) != group).to_numpy()].copy()
            tmp = ref_h5ad.with_name("reference.tmp-write.h5ad")
            ref.write_h5ad(tmp)
            tmp.replace(ref_h5ad)
    query = granja.load_donor(convert_dir, query_donor)
    truth = query.obs[granja.LABEL_KEY]
    removed = set() if group == NOTHING else {v for v in truth.unique() if granja.coarse_label(v) == group}
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
    argmax = None
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
        table = ours.predictions(case, f"annotate_{features}_gda_fine")
        pred = table["predicted_label"]
        argmax = table["best_label"] if "best_label" in table.columns else None
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
    row.update(full_metrics(truth, pred, argmax) if group == NOTHING else unknown_metrics(truth, pred, removed))
    row["status"] = "ok"
    return row


def row_key(r: dict[str, Any]) -> tuple[int, int, int]:
    return (
        DIRECTION_ORDER.index(r["direction"]),
        GROUP_ORDER.index(r["removed"]),
        list(TOOLS).index(r["tool"]),
    )


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One summary per (direction, tool) over its finished (status ok) cases.

    ``left_out_recall_mean``: mean over the left-out groups of the share of their query cells
    called Unknown.  ``false_unknown_mean`` / ``_max``: mean and largest share of Unknown calls on
    cells whose type the reference has, over every case (left-out cases' other cells, and all cells
    of the nothing-removed case); ``false_unknown_max_case`` names the case of the largest.
    Accuracy and macro-F1 (Unknown wrong; arg-max) come from the nothing-removed case."""
    out = []
    keys = sorted(
        {(r["direction"], r["tool"]) for r in rows if r.get("status") == "ok"},
        key=lambda k: (DIRECTION_ORDER.index(k[0]), list(TOOLS).index(k[1])),
    )
    for direction, tool in keys:
        ok = [r for r in rows if (r["direction"], r["tool"]) == (direction, tool) and r.get("status") == "ok"]
        ok.sort(key=row_key)
        left = [r for r in ok if r["removed"] != NOTHING]
        false = [(r["others_unknown_share"], r["removed"]) for r in ok if r.get("others_unknown_share") is not None]
        worst = max(false) if false else (None, None)
        full = next((r for r in ok if r["removed"] == NOTHING), {})
        out.append(
            {
                "direction": direction,
                "tool": tool,
                "tool_name": TOOLS[tool],
                "left_out_groups": [r["removed"] for r in left],
                "left_out_recall_mean": _mean([r["removed_type_unknown_share"] for r in left]),
                "false_unknown_mean": _mean([f for f, _ in false]),
                "false_unknown_max": worst[0],
                "false_unknown_max_case": worst[1],
                "accuracy": full.get("accuracy"),
                "macro_f1": full.get("macro_f1"),
                "accuracy_argmax": full.get("accuracy_argmax"),
                "macro_f1_argmax": full.get("macro_f1_argmax"),
            }
        )
    return out


def fmt_top(top: dict[str, int] | None, n: int = 3) -> str | None:
    """``{'24_CD8.CM': 208, 'Unknown': 9}`` -> ``'24_CD8.CM 208, Unknown 9'`` (first ``n``)."""
    if not top:
        return None
    return ", ".join(f"{k} {v}" for k, v in list(top.items())[:n])


def _pair(a: float | None, b: float | None) -> str | None:
    return None if a is None or b is None else f"{a:.3f} / {b:.3f}"


def case_name(group: str) -> str:
    return "nothing removed" if group == NOTHING else group


def held_out_mark(direction: str, tool: str) -> str:
    return " †" if direction in TUNED_ON and tool.startswith("sa_") else ""


SUMMARY_COLUMNS = [
    ("direction_mark", "direction"),
    ("tool_name", "tool"),
    ("left_out", "mean left-out recall (types)"),
    ("false_unknown_mean", "false Unknown, mean"),
    ("false_max", "false Unknown, max (case)"),
    ("acc_f1", "nothing removed: accuracy / macro-F1"),
    ("acc_f1_argmax", "nothing removed, arg-max: accuracy / macro-F1"),
]

COLUMNS = [
    ("direction_mark", "direction"),
    ("removed_name", "removed from reference"),
    ("tool_name", "tool"),
    ("removed_type_unknown_share", "removed type -> Unknown"),
    ("others_unknown_share", "others -> Unknown"),
    ("others_accuracy", "accuracy on others"),
    ("acc_f1", "accuracy / macro-F1 (arg-max)"),
    ("top", "top predictions of the removed cells"),
    ("wall_s", "wall s"),
    ("peak_rss_mb", "peak MB"),
    ("status", "status"),
]


def summary_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The summary as Markdown-ready rows."""
    out = []
    for s in summarize(rows):
        n = len(s["left_out_groups"])
        out.append(
            {
                **s,
                "direction_mark": s["direction"] + held_out_mark(s["direction"], s["tool"]),
                "left_out": None
                if s["left_out_recall_mean"] is None
                else f"{s['left_out_recall_mean']:.3f} ({n}: {', '.join(s['left_out_groups'])})",
                "false_max": None
                if s["false_unknown_max"] is None
                else f"{s['false_unknown_max']:.3f} ({case_name(s['false_unknown_max_case'])})",
                "acc_f1": _pair(s["accuracy"], s["macro_f1"]),
                "acc_f1_argmax": _pair(s["accuracy_argmax"], s["macro_f1_argmax"]),
            }
        )
    return out


def case_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every case run, plus a "not run yet" row for each default case (default tools) not run."""
    have = {(r["direction"], r["removed"], r["tool"]) for r in result["rows"]}
    tools = [t for t in TOOLS if t in DEFAULT_TOOLS or any(r["tool"] == t for r in result["rows"])]
    rows = list(result["rows"]) + [
        {"direction": d, "removed": g, "tool": t, "status": "not run yet"}
        for d in DIRECTION_ORDER
        for g in DEFAULT_REMOVE
        for t in tools
        if (d, g, t) not in have
    ]
    out = []
    for r in sorted(rows, key=row_key):
        status = r.get("status")
        mark = held_out_mark(r["direction"], r["tool"])
        if status == "ok" and mark:
            status = "ok, not held out †"
        removed_name = (
            "nothing"
            if r["removed"] == NOTHING
            else f"{r['removed']} ({', '.join(r['removed_labels'])})"
            if r.get("removed_labels")
            else r["removed"]
        )
        acc = _pair(r.get("accuracy"), r.get("macro_f1"))
        if acc and r.get("accuracy_argmax") is not None:
            acc += f" ({_pair(r['accuracy_argmax'], r['macro_f1_argmax'])})"
        out.append(
            {
                **r,
                "direction_mark": r["direction"] + mark,
                "removed_name": removed_name,
                "tool_name": TOOLS[r["tool"]],
                "acc_f1": acc,
                "top": fmt_top(r.get("removed_type_top_predictions")),
                "status": status,
            }
        )
    return out


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    invocations = result.get("invocations") or [{"command": result["command"], "date_utc": m["date_utc"]}]
    out = [
        "# Table 2: unknown-type detection (Granja 2019 bone marrow)\n",
        "Produced by `python benchmarks/unknown_table.py` (invocations at the end, run with `--reuse` so that "
        f"rows accumulate), last on {m['date_utc']} ({m['cpu_model']}, {m['cpu_cores']} cores, {m['ram_gb']} GB "
        f"RAM, load average at start {m['loadavg']}).  Per direction (reference donor -> query donor) one coarse "
        "group at a time is removed from the reference (its query cells stay), plus a case with nothing removed; "
        "each tool uses its own unknown-type option at its default.  The query's labels are used only for "
        "scoring.\n",
        "## Summary\n",
        "`mean left-out recall`: mean over the left-out groups of the share of their query cells labeled Unknown "
        "(higher is better).  `false Unknown`: share of Unknown calls on cells whose type the reference has "
        "(every case's other cells, and all cells when nothing is removed), mean over the cases and the largest "
        "(lower is better).  `nothing removed`: accuracy / macro-F1 over the 16 types with Unknown counted wrong, "
        "and with the arg-max label (Unknown flags ignored; seqAlignATAC only).\n",
        runner.md_table(summary_rows(result["rows"]), SUMMARY_COLUMNS),
        "## Cases\n",
        "`removed type -> Unknown`: share of that group's query cells labeled Unknown (higher is better); "
        "`others -> Unknown`: share of all other query cells labeled Unknown (lower is better); "
        "`accuracy on others`: fine-label accuracy on those other cells (Unknown counts as wrong); "
        "`accuracy / macro-F1`: nothing-removed case only; `top predictions`: the commonest labels given to the "
        "removed type's cells.  Wall time is the sum of the steps, from when the heavy-job lock was held.\n",
        runner.md_table(case_rows(result), COLUMNS),
        "\n† " + TUNED_NOTE + "\n",
        "\nPeers (scMINGLE, EpiPack) and the k-mer route run only when named with `--tools`.  "
        "Not run (no unknown-type output): " + "; ".join(NO_UNKNOWN.values()) + ".\n",
        "\nInvocations:\n\n" + "\n".join(f"- `{i['command']}` ({i.get('date_utc', '')})" for i in invocations) + "\n",
    ]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--directions", nargs="+", default=DIRECTION_ORDER, choices=DIRECTION_ORDER)
    ap.add_argument(
        "--remove",
        nargs="+",
        default=DEFAULT_REMOVE,
        choices=GROUP_ORDER,
        help=f"cases: '{NOTHING}' (nothing removed) and coarse groups (default: %(default)s; T only when named)",
    )
    ap.add_argument("--tools", nargs="+", default=DEFAULT_TOOLS, choices=list(TOOLS), help="default: %(default)s")
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
    old = json.loads(out_json.read_text()) if (args.reuse and out_json.is_file()) else {}
    rows = {(r["direction"], r["removed"], r["tool"]): r for r in old.get("rows", [])}
    machine = runner.machine_info()
    command = "python " + " ".join(["benchmarks/unknown_table.py", *(argv if argv is not None else sys.argv[1:])])
    invocations = [*old.get("invocations", []), {"command": command, "date_utc": machine["date_utc"]}]
    result: dict[str, Any] = {}
    versions = runner.pip_versions(sys.executable, ["seqalignatac"])
    for direction in args.directions:
        for group in args.remove:
            for tool in args.tools:
                print(f"[{direction} without {group}] {tool} ...", flush=True)
                row = run_case(args, direction, group, tool, convert_dir, work, data / FASTA_REL)
                rows[(direction, group, tool)] = row
                print(
                    f"    -> {row.get('status')} removed->Unknown={row.get('removed_type_unknown_share')} "
                    f"others->Unknown={row.get('others_unknown_share')} acc={row.get('accuracy')} "
                    f"f1={row.get('macro_f1')} wall={row.get('wall_s')}s",
                    flush=True,
                )
                result = {
                    "table": "unknown",
                    "command": command,
                    "invocations": invocations,
                    "machine": machine,
                    "not_run": NO_UNKNOWN,
                    "versions": versions,
                    "rows": sorted(rows.values(), key=row_key),
                }
                result["summary"] = summarize(result["rows"])
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
