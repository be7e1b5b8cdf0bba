"""Table 3: throughput and scale, collected from the other benchmarks' JSON in benchmarks/results/.

    python benchmarks/throughput_table.py [--results benchmarks/results]

Runs nothing heavy itself: it reads what the step benchmarks wrote (embedding peaks/s on CPU and
GPU, extract and tokenizer throughput, prepare memory, stage-1 and stage-2 time and memory at
100k/300k/1M cells, demo wall time) and lays it out as one table, each row naming its source file,
date and the load average recorded with it.  A measurement that no file holds yet is listed as
missing rather than left out.  Writes ``benchmarks/results/throughput_table.{md,json}``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))
import runner  # noqa: E402

Row = dict[str, Any]
OWN_TABLES = {"throughput_table.json", "accuracy_table.json", "unknown_table.json"}


def _get(obj: Any, *path: str, default: Any = None) -> Any:
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return default
        obj = obj[key]
    return obj


def _date(doc: dict) -> str | None:
    for path in (("date_utc",), ("date",), ("machine", "date_utc"), ("machine", "date"), ("info", "date")):
        v = _get(doc, *path)
        if isinstance(v, str):
            return v
    return None


def _load(doc: dict) -> Any:
    for path in (
        ("machine", "load_average_start"),
        ("machine", "load_average"),
        ("machine", "loadavg"),
        ("info", "load_average"),
        ("first_run", "load_average_start"),
        ("load_average",),
    ):
        v = _get(doc, *path)
        if isinstance(v, list) and v:
            return round(float(v[0]), 2)
    return None


def embed_rows(doc: dict) -> Iterable[Row]:
    device = str(doc.get("device_name") or _get(doc, "machine", "device") or "?")
    for r in doc.get("results", []):
        for dtype in doc.get("dtypes", ["bfloat16", "float32"]):
            m = r.get(dtype)
            if isinstance(m, dict) and m.get("peaks_per_s") is not None:
                yield {
                    "area": "embed",
                    "measure": f"NT {r.get('config')} peaks/s ({dtype}, {r.get('width_bp')} bp)",
                    "scale": f"{m.get('peaks')} peaks",
                    "value": m["peaks_per_s"],
                    "unit": "peaks/s",
                    "device": device,
                }


def tokenizer_rows(doc: dict) -> Iterable[Row]:
    for key in ("vectorized_fixed_width", "vectorized_with_N"):
        if isinstance(doc.get(key), dict):
            yield {
                "area": "embed",
                "measure": f"tokenizer ({key.replace('_', ' ')}) peaks/s",
                "scale": f"{doc[key].get('peaks')} peaks",
                "value": doc[key].get("best_peaks_per_s"),
                "unit": "peaks/s",
                "device": "CPU",
            }


def extract_rows(doc: dict) -> Iterable[Row]:
    for name, r in (doc.get("runs") or {}).items():
        yield {
            "area": "extract",
            "measure": f"extract peaks/s ({name} FASTA)",
            "scale": f"{doc.get('peaks')} peaks",
            "value": r.get("peaks_per_s"),
            "unit": "peaks/s",
            "device": "CPU",
            "extra": f"{r.get('wall_s')} s, {r.get('peak_rss_mb')} MB",
        }


def prepare_rows(doc: dict) -> Iterable[Row]:
    data = doc.get("data") or {}
    scale = f"{(data.get('reference_cells') or 0) + (data.get('query_cells') or 0)} cells x {data.get('reference_peaks')} peaks"
    for name, r in (doc.get("prepare") or {}).items():
        yield {
            "area": "prepare",
            "measure": f"prepare wall time ({name})",
            "scale": scale,
            "value": r.get("wall_s"),
            "unit": "s",
            "device": "CPU",
            "extra": f"peak {r.get('peak_rss_gb')} GB",
        }


def stage_rows(area: str) -> Callable[[dict], Iterable[Row]]:
    def rows(doc: dict) -> Iterable[Row]:
        for r in doc.get("results") or ([doc] if "cells" in doc else []):
            if not isinstance(r, dict) or "cells" not in r:
                continue
            device = r.get("device", "?")
            scale = f"{r['cells']:,} cells" + (f" x {r['peaks']:,} peaks" if r.get("peaks") else "")
            secs = r.get("epoch_seconds", r.get("seconds", r.get("train_seconds", r.get("wall_seconds"))))
            what = "epoch time" if "epoch_seconds" in r else "time"
            extra = []
            if isinstance(secs, dict):  # stage2_scale: {"graph_reference", "graph_query", "train", ...}
                epochs = _get(r, "config", "epochs")
                extra.append(
                    f"kNN graphs {secs.get('graph_reference')} + {secs.get('graph_query')} s; "
                    f"{secs.get('train_per_epoch')} s/epoch x {epochs} epochs"
                )
                secs, what = secs.get("graphs_plus_train", secs.get("train")), "graphs + training time"
            if r.get("extrapolated"):
                extra.append(f"extrapolated from {r.get('steps_measured')} steps")
            for k in ("epochs", "seconds_per_epoch"):
                if r.get(k) is not None:
                    extra.append(f"{k} {r[k]}")
            yield {
                "area": area,
                "measure": f"{area} {what}",
                "scale": scale,
                "value": secs,
                "unit": "s",
                "device": device,
                "extra": "; ".join(extra) or None,
            }
            mem = r.get("peak_rss_gb", r.get("peak_gb"))
            if isinstance(r.get("peak_rss_gib"), dict) and r["peak_rss_gib"]:
                mem = max(v for v in r["peak_rss_gib"].values() if isinstance(v, (int, float)))
            if mem is None and r.get("peak_rss_mb") is not None:
                mem = round(r["peak_rss_mb"] / 1024, 2)
            if mem is not None:
                yield {
                    "area": area,
                    "measure": f"{area} peak memory",
                    "scale": scale,
                    "value": mem,
                    "unit": "GB",
                    "device": device,
                }
            gpu = r.get("peak_gpu_gb", r.get("cuda_peak_gb"))
            if gpu is not None:
                yield {
                    "area": area,
                    "measure": f"{area} peak GPU memory",
                    "scale": scale,
                    "value": gpu,
                    "unit": "GB",
                    "device": device,
                }

    return rows


def demo_rows(doc: dict) -> Iterable[Row]:
    fr = doc.get("first_run") or {}
    yield {
        "area": "demo",
        "measure": "`seqalignatac demo` wall time (first run)",
        "scale": f"model {doc.get('model')}",
        "value": fr.get("wall_seconds"),
        "unit": "s",
        "device": "CPU",
        "extra": f"peak {fr.get('peak_rss_mib')} MiB; target {doc.get('target_seconds')} s; "
        f"meets target: {doc.get('meets_target')}",
    }
    rr = doc.get("rerun_all_up_to_date") or {}
    if rr:
        yield {
            "area": "demo",
            "measure": "demo rerun, all steps up to date",
            "scale": "",
            "value": rr.get("wall_seconds"),
            "unit": "s",
            "device": "CPU",
        }


def granja_run_rows(doc: dict) -> Iterable[Row]:
    run = doc.get("run") or {}
    if run.get("wall_seconds") is not None:
        data = doc.get("data") or {}
        scale = f"{data.get('reference_cells')} + {data.get('query_cells')} cells x {data.get('peaks_kept')} peaks"
        yield {
            "area": "pipeline",
            "measure": "`seqalignatac run` on Granja (all steps, kmer)",
            "scale": scale,
            "value": run["wall_seconds"],
            "unit": "s",
            "device": "CPU",
            "extra": f"peak {run.get('peak_rss_mib')} MiB; "
            + ", ".join(
                f"{k} {v.get('seconds')} s" for k, v in (run.get("steps") or {}).items() if isinstance(v, dict)
            ),
        }


def mix_rows(doc: dict) -> Iterable[Row]:
    secs = doc.get("seconds") or {}
    yield {
        "area": "stage 2",
        "measure": "stage 2 mix + Unknown time (after training)",
        "scale": f"{doc.get('cells'):,} cells",
        "value": doc.get("total_seconds"),
        "unit": "s",
        "device": "CPU",
        "extra": "; ".join(f"{k} {v} s" for k, v in secs.items()) + f"; peak {doc.get('peak_rss_gib')} GiB",
    }


# file-name prefix -> extractor; the first matching prefix wins
EXTRACTORS: list[tuple[str, Callable[[dict], Iterable[Row]]]] = [
    ("embed_throughput", embed_rows),
    ("tokenizer_throughput", tokenizer_rows),
    ("extract_throughput", extract_rows),
    ("prepare_memory", prepare_rows),
    ("stage1_scale", stage_rows("stage 1")),
    ("stage2_scale", stage_rows("stage 2")),
    ("stage2_mix_scale", mix_rows),
    ("demo_walltime", demo_rows),
    ("granja_run", granja_run_rows),
]
# what issue 7 asks this table to show; listed as missing when no file provides it
EXPECTED = [
    ("embed", "CPU", "embedding peaks/s on CPU"),
    ("embed", "GPU", "embedding peaks/s on GPU"),
    ("stage 1", "100,000 cells", "stage-1 time & memory at 100k cells"),
    ("stage 1", "300,000 cells", "stage-1 time & memory at 300k cells"),
    ("stage 1", "1,000,000 cells", "stage-1 time & memory at 1M cells"),
    ("stage 2", "100,000 cells", "stage-2 time & memory at 100k cells"),
    ("stage 2", "300,000 cells", "stage-2 time & memory at 300k cells"),
    ("stage 2", "1,000,000 cells", "stage-2 time & memory at 1M cells"),
    ("demo", "", "demo wall time"),
]


def collect(results: Path) -> tuple[list[Row], list[str], list[str]]:
    rows: list[Row] = []
    unread: list[str] = []
    for path in sorted(results.glob("*.json")):
        if path.name in OWN_TABLES:
            continue
        extractor = next((fn for prefix, fn in EXTRACTORS if path.name.startswith(prefix)), None)
        if extractor is None:
            unread.append(path.name)
            continue
        try:
            doc = json.loads(path.read_text())
            new = list(extractor(doc))
        except (OSError, ValueError, TypeError, KeyError) as exc:
            unread.append(f"{path.name} ({type(exc).__name__}: {exc})")
            continue
        for r in new:
            r.update(source=path.name, date=_date(doc), load_1min=_load(doc), command=doc.get("command"))
        rows.extend(new)
    missing = []
    for area, key, what in EXPECTED:
        hit = [
            r
            for r in rows
            if r["area"] == area and (key in str(r.get("scale")) or (key in ("CPU", "GPU") and _is_device(r, key)))
        ]
        if not hit:
            missing.append(what)
    return rows, missing, unread


def _is_device(row: Row, kind: str) -> bool:
    dev = str(row.get("device", "")).lower()
    is_gpu = any(s in dev for s in ("cuda", "gpu", "h100", "h200", "a100", "nvidia"))
    return is_gpu if kind == "GPU" else not is_gpu


COLUMNS = [
    ("area", "step"),
    ("measure", "measure"),
    ("scale", "scale"),
    ("value", "value"),
    ("unit", "unit"),
    ("device", "device"),
    ("extra", "notes"),
    ("source", "source"),
    ("load_1min", "load"),
]


def render(result: dict[str, Any]) -> str:
    m = result["machine"]
    out = [
        "# Table 3: throughput and scale\n",
        f"Collected by `{result['command']}` on {m['date_utc']} from the JSON files in benchmarks/results/ "
        "(each row names its source; the source's Markdown gives the exact command, machine and versions).  "
        "`load` is the 1-minute load average the source recorded: the 2-core machine was shared, so CPU "
        "figures are lower bounds on speed.\n",
        runner.md_table(result["rows"], COLUMNS),
    ]
    if result["missing"]:
        out.append("\n**Not measured yet** (no result file provides it): " + "; ".join(result["missing"]) + ".\n")
    if result["unread"]:
        out.append("\nResult files this collector does not read: " + ", ".join(result["unread"]) + ".\n")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, default=runner.RESULTS)
    ap.add_argument("--out", type=Path, default=None, help="output stem (default RESULTS/throughput_table)")
    args = ap.parse_args(argv)
    out = args.out or args.results / "throughput_table"
    rows, missing, unread = collect(args.results)
    result = {
        "table": "throughput",
        "command": "python " + " ".join(["benchmarks/throughput_table.py", *(argv or sys.argv[1:])]),
        "machine": runner.machine_info(),
        "rows": rows,
        "missing": missing,
        "unread": unread,
    }
    runner.write_json(out.with_suffix(".json"), result)
    runner.write_text(out.with_suffix(".md"), render(result))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
