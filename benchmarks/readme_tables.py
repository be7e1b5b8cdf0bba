"""Rewrite the benchmark tables of the project README from the result files.

    python benchmarks/readme_tables.py [--readme README.md] [--results benchmarks/results] [--check]

The tables sit between ``<!-- benchmark-tables:start -->`` and ``<!-- benchmark-tables:end -->``
in README.md; nothing outside the markers is touched.  Sources, all for the held-out pair D6toD5:

- ``unknown_table.json``: our fine-type accuracy / macro-F1 (its nothing-removed case of
  ``sa_lsi_gda``, with arg-max) and the Unknown rows (one per left-out group, per tool that has
  them); while that case has not run, our fine row falls back to ``accuracy_table.json`` and says so.
- ``accuracy_table.json``: every other row (kNN ablation, LSI + logistic regression, Cellcano,
  scMINGLE) and every 6-coarse-group value, as they are.
- ``stage2_granja.json`` (if present): the GDA-on-all-10,000-peaks row.

``--check`` rewrites nothing and exits 1 when the README is out of date.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
START = "<!-- benchmark-tables:start -->"
END = "<!-- benchmark-tables:end -->"
DIRECTION = "D6toD5"
NOTHING = "none"
GROUPS = ["NK", "B", "Mono", "GMP", "Progenitor", "T"]
UNKNOWN_TOOLS = {"sa_lsi_gda": "seqAlignATAC, GDA on LSI", "scmingle": "scMINGLE 1.1.0", "epipack": "EpiPack 1.0.2"}


def pair(a: float | None, b: float | None) -> str:
    return "–" if a is None or b is None else f"{a:.3f} / {b:.3f}"


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f} %"


def _acc_row(acc: dict[str, Any], tool: str, level: str, direction: str) -> dict[str, Any] | None:
    for r in acc.get("rows", []):
        if (r["direction"], r["level"], r["tool"]) == (direction, level, tool) and r.get("status") == "ok":
            return r
    return None


Cell = tuple[str, str, float | None]  # (accuracy / macro-F1, arg-max note, macro-F1 used to mark the best)


def _cell(r: dict[str, Any] | None, argmax_key: str | None = None) -> Cell:
    if r is None:
        return "not run", "", None
    extra = ""
    if argmax_key and r.get(argmax_key) is not None:
        if r.get("macro_f1_argmax") is not None:
            extra = f" (arg-max {pair(r[argmax_key], r['macro_f1_argmax'])})"
        else:
            extra = f" (arg-max accuracy {r[argmax_key]:.3f})"
    return pair(r.get("accuracy"), r.get("macro_f1")), extra, r.get("macro_f1")


def accuracy_table(unknown: dict, acc: dict, stage2: dict | None, direction: str = DIRECTION) -> str:
    """Accuracy / macro-F1 on 16 types and 6 coarse groups; bold = highest macro-F1 in the column."""
    ours_full = next(
        (
            r
            for r in unknown.get("rows", [])
            if (r["direction"], r["removed"], r["tool"]) == (direction, NOTHING, "sa_lsi_gda")
            and r.get("status") == "ok"
        ),
        None,
    )
    notes = []
    if ours_full is not None:
        ours_fine = _cell(ours_full, "accuracy_argmax")
    else:
        text, extra, f1 = _cell(_acc_row(acc, "sa_lsi_gda", "fine", direction), "accuracy_best_label")
        ours_fine = (text, extra + " ‡", f1)
        notes.append(
            "‡ From accuracy_table.json: the nothing-removed case of `benchmarks/unknown_table.py` "
            "has not run on this pair yet."
        )
    rows: list[tuple[str, Cell, Cell]] = []
    coarse = _cell(_acc_row(acc, "sa_lsi_gda", "coarse", direction))
    if ours_full is not None:
        # prepare keeps every peak since issue 16: this case is the default pipeline end to end.
        name = "seqAlignATAC, default pipeline (GDA on LSI, all 10,000 peaks)"
        rows.append((name, ours_fine, (coarse[0], coarse[1] + " †" if coarse[0] != "not run" else "", coarse[2])))
        notes.append(
            "† 6 coarse groups: the earlier run on the 2,723 peaks `prepare` used to keep (accuracy_table.json)."
        )
    else:
        g = next((r for r in (stage2 or {}).get("results", []) if r.get("method") == "gda"), None)
        if g is not None:
            fine = (
                pair(g.get("accuracy_with_unknown"), g.get("macro_f1_with_unknown")),
                f" (arg-max {pair(g.get('accuracy'), g.get('macro_f1'))})",
                g.get("macro_f1_with_unknown"),
            )
            name = "seqAlignATAC, GDA on LSI (all 10,000 peaks; [stage2_granja](benchmarks/results/stage2_granja.md))"
            rows.append((name, fine, ("", "", None)))
        rows.append(("seqAlignATAC, GDA on LSI (2,723 peaks kept by `prepare`)", ours_fine, coarse))
    rows.append(
        (
            "seqAlignATAC, kNN ablation on LSI (2,723 kept peaks)",
            _cell(_acc_row(acc, "sa_lsi_knn", "fine", direction)),
            _cell(_acc_row(acc, "sa_lsi_knn", "coarse", direction)),
        )
    )
    kept, allp = (_cell(_acc_row(acc, t, "fine", direction)) for t in ("lsi_logreg", "lsi_logreg_allpeaks"))
    rows.append(
        (
            "TF-IDF/LSI + logistic regression (kept peaks / all peaks)",
            (f"{kept[0]}, {allp[0]}", "", max((v for v in (kept[2], allp[2]) if v is not None), default=None)),
            _cell(_acc_row(acc, "lsi_logreg", "coarse", direction)),
        )
    )
    for tool, name in (("cellcano", "Cellcano 1.0.4"), ("scmingle", "scMINGLE 1.1.0")):
        rows.append(
            (name, _cell(_acc_row(acc, tool, "fine", direction)), _cell(_acc_row(acc, tool, "coarse", direction)))
        )
    best = [max((r[i][2] for r in rows if r[i][2] is not None), default=None) for i in (1, 2)]
    lines = ["| | 16 cell types | 6 coarse groups |", "| --- | --- | --- |"]
    for name, fine, coarse in rows:
        cells = []
        for i, (text, extra, f1) in enumerate((fine, coarse)):
            cells.append((f"**{text}**" if f1 is not None and f1 == best[i] else text) + extra)
        lines.append(f"| {name} | {cells[0]} | {cells[1]} |")
    lines.append("")
    lines.append("Bold: the highest macro-F1 in the column." + ("  " + " ".join(notes) if notes else ""))
    return "\n".join(lines) + "\n"


def unknown_table(unknown: dict, direction: str = DIRECTION) -> str:
    """Per left-out group: share of its cells called Unknown / share of the other cells called Unknown."""
    ok = [r for r in unknown.get("rows", []) if r["direction"] == direction and r.get("status") == "ok"]
    tools = [t for t in UNKNOWN_TOOLS if any(r["tool"] == t for r in ok)]
    if not tools:
        return f"No unknown-type case has run on {direction} yet (`python benchmarks/unknown_table.py`).\n"
    by = {(r["removed"], r["tool"]): r for r in ok}
    lines = [
        "| left out of the reference | " + " | ".join(UNKNOWN_TOOLS[t] for t in tools) + " |",
        "| --- |" + " --- |" * len(tools),
    ]
    for g in GROUPS:
        if not any((g, t) in by for t in tools):
            continue
        labels = next(by[(g, t)].get("removed_labels") for t in tools if (g, t) in by)
        cells = [
            f"{pct(by[(g, t)]['removed_type_unknown_share'])} / {pct(by[(g, t)]['others_unknown_share'])}"
            if (g, t) in by
            else "not run"
            for t in tools
        ]
        lines.append(f"| {g} ({', '.join(labels or [])}) | " + " | ".join(cells) + " |")
    if any((NOTHING, t) in by for t in tools):
        cells = [
            f"– / {pct(by[(NOTHING, t)]['others_unknown_share'])}" if (NOTHING, t) in by else "not run" for t in tools
        ]
        lines.append("| nothing (every Unknown is false) | " + " | ".join(cells) + " |")
    means = []
    for t in tools:
        left = [by[(g, t)]["removed_type_unknown_share"] for g in GROUPS if (g, t) in by]
        false = [r["others_unknown_share"] for (_, tt), r in by.items() if tt == t]
        means.append(f"{pct(sum(left) / len(left)) if left else '–'} / {pct(max(false)) if false else '–'}")
    lines.append("| mean left-out share / largest false share | " + " | ".join(means) + " |")
    caption = (
        f"Unknown-type detection, same pair ({direction}; "
        "[unknown_table](benchmarks/results/unknown_table.md)): one coarse group removed from the reference "
        "at a time; share of its query cells called `Unknown` (higher is better) / share of the other "
        "query cells called `Unknown` (lower is better).\n"
    )
    return caption + "\n" + "\n".join(lines) + "\n"


def build_block(unknown: dict, acc: dict, stage2: dict | None, direction: str = DIRECTION) -> str:
    return accuracy_table(unknown, acc, stage2, direction) + "\n" + unknown_table(unknown, direction)


def replace_block(text: str, block: str) -> str:
    """``text`` with everything between the markers replaced by ``block`` (markers kept)."""
    if text.count(START) != 1 or text.count(END) != 1:
        raise ValueError(f"README must hold exactly one {START} and one {END}")
    head, rest = text.split(START)
    if END not in rest:
        raise ValueError(f"{END} comes before {START}")
    _, tail = rest.split(END)
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def _load(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    ap.add_argument("--results", type=Path, default=HERE / "results")
    ap.add_argument("--check", action="store_true", help="exit 1 if the README's tables are out of date")
    args = ap.parse_args(argv)
    unknown = _load(args.results / "unknown_table.json") or {}
    acc = _load(args.results / "accuracy_table.json") or {}
    block = build_block(unknown, acc, _load(args.results / "stage2_granja.json"))
    old = args.readme.read_text()
    new = replace_block(old, block)
    if args.check:
        if new != old:
            print(f"{args.readme}: benchmark tables out of date; run python benchmarks/readme_tables.py")
            return 1
        return 0
    if new != old:
        tmp = args.readme.with_name(args.readme.name + ".tmp-write")
        tmp.write_text(new)
        tmp.replace(args.readme)
    print(f"{args.readme}: {'rewritten' if new != old else 'already up to date'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
