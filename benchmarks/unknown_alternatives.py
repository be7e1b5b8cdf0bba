"""Issue 16, round 2: Unknown scores beyond the per-cell Mahalanobis score, on the tuning sets only.

    python benchmarks/unknown_alternatives.py [--quick] [--workdir DIR]

Uses the cases of benchmarks/unknown_calibration.py (same cache, same criterion:
benchmarks/results/issue16_criterion.md, applied by its ``summarize``/``choose``) and never reads
the D5T1 labels of the held-out pair.  Two kinds of evidence are compared with round 1's rule:

- **query clusters**: Leiden communities of the query's kNN graph (the package's
  :func:`~seqalignatac.models.stage2.clusters.leiden_clusters` at several resolutions); a cluster
  is Unknown when the median log per-cell score of its cells lies more than ``z`` inlier standard
  deviations above the query's inlier mean (the fit round 1's rule uses).  Alone, and OR-ed
  with round 1's rule (benchmarks/results/unknown_calibration.md's pick).  The criterion's pick
  here is the package's default since round 2 (``unknown_cluster_z`` 1.5, Leiden resolution 3,
  clusters of at least 15 cells).
- **reference mixing**: the share of reference cells among a query cell's 30 nearest cells of the
  pooled reference + query (after :func:`robust_shift`); a type the reference lacks should have few.
  Reported as AUROC only: it ranks NK below known cells on every Granja set (see the results).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import unknown_calibration as C

from seqalignatac.models.stage2 import unknown as U
from seqalignatac.models.stage2.clusters import leiden_clusters, query_graph
from seqalignatac.models.stage2.graphs import l2_normalize

RESOLUTIONS = (1.0, 3.0, 10.0)
CLUSTER_Z = (1.0, 1.5, 2.0, 2.5)
MIN_SIZES = (1, 15)  # 15: no cluster smaller than the neighbourhood test's K
MIX_K = 30
SHIPPED = "round 1 (Mahalanobis, K 15, sq 0.005, floor 1 sd)"


def rule_names() -> list[str]:
    names = [SHIPPED]
    for r in RESOLUTIONS:
        for zt in CLUSTER_Z:
            for m in MIN_SIZES:
                rule = _cluster_rule(r, zt, m)
                names += [rule, f"round 1 OR {rule}"]
    return names


def _cluster_rule(r: float, zt: float, m: int) -> str:
    return f"clusters res {r:g}, z > {zt:g}" + (f", >= {m} cells" if m > 1 else "")


def reference_mixing(c: dict, k: int = MIX_K) -> np.ndarray:
    """Per query cell: minus the log of its reference-neighbour share over the share expected by counts."""
    from sklearn.neighbors import NearestNeighbors

    rx, ry = np.concatenate([c["tx"], c["hx"]]), np.concatenate([c["ty"], c["hy"]])
    qx = U.robust_shift(c["qx"], c["qpred"], rx, ry)
    both = l2_normalize(np.concatenate([qx, rx]))
    idx = NearestNeighbors(n_neighbors=k + 1).fit(both).kneighbors(l2_normalize(qx))[1][:, 1:]
    share = (idx >= qx.shape[0]).mean(axis=1)
    expected = rx.shape[0] / both.shape[0]
    return -np.log((share + 1.0 / k) / expected)


def case_flags(c: dict) -> tuple[dict, dict]:
    """(flags per rule name, AUROCs) for one case."""
    from sklearn.metrics import roc_auc_score

    qd, hd = U.distance_scores(c["qx"], c["qpred"], c["hx"], c["hy"], c["tx"], c["ty"])
    graph = query_graph(c["qx"], 15)
    smoothed = U.smooth_scores(c["qx"], qd, 15, neighbours=graph)
    round1, info = U.call_unknown("distance", 0.0, np.ones(qd.size), np.ones(1), qd, hd, smoothed, 0.005, 0.0)
    flags = {SHIPPED: round1}
    auroc = {}
    novel = c["novel"]
    has_both = 0 < novel.sum() < novel.size
    if has_both:
        auroc["per-cell score"] = float(roc_auc_score(novel, np.log(np.maximum(qd, 1e-12))))
        auroc["reference mixing"] = float(roc_auc_score(novel, reference_mixing(c)))
    for r in RESOLUTIONS:
        cl = leiden_clusters(c["qx"], 0, None, graph, resolution=r)
        if has_both:
            z, _ = U.cluster_scores(info, qd, cl)
            auroc[f"cluster median, res {r:g}"] = float(roc_auc_score(novel, z.loc[cl].to_numpy()))
        for zt in CLUSTER_Z:
            for m in MIN_SIZES:
                rule = _cluster_rule(r, zt, m)
                # the package's test, at this grid point
                flags[rule] = U.cluster_flags({**info, "cluster_z": zt, "cluster_min_cells": m}, qd, cl)
                flags[f"round 1 OR {rule}"] = round1 | flags[rule]
    return flags, auroc


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    a, cases = C.cases_from_args(argv, __doc__, "unknown_alternatives")
    names = rule_names()
    rows = []
    for c in cases:
        flags, auroc = case_flags(c)
        row = {"set": c["set"], "left_out": c["left_out"], "n_query": int(c["truth"].size)}
        row["n_novel"] = int(c["novel"].sum())
        row["auroc"] = auroc
        row.update({n: C.rates(flags[n], c["novel"], ~c["novel"]) for n in names})
        rows.append(row)
        print(f"  {c['set']} without {c['left_out']}", flush=True)
    rules = [{"name": n} for n in names]
    summary = C.summarize(rows, rules)
    command = "python benchmarks/unknown_alternatives.py" + (" --quick" if a.quick else "")
    C.save(a.out, command, t0, rows, summary, C.choose(summary), markdown)
    return 0


def markdown(rows, summary, chosen, meta) -> str:
    m = meta["machine"]
    lines = [
        "# Unknown: query clusters and reference mixing on the tuning sets (issue 16, round 2)",
        "",
        f"{meta['date']}; `{meta['command']}`; {m.get('cpu_model', '')}, {m.get('cpu_count', '')} cores, "
        f"load average at start {m.get('load_average_start', '')}; {meta['seconds']} s.",
        "",
        "Cases and criterion as in benchmarks/results/unknown_calibration.md (criterion: "
        "benchmarks/results/issue16_criterion.md).  No case reads the D5T1 labels of the held-out pair.",
        "",
        f"**Criterion's pick among these rules:** {chosen['rule'] if chosen else 'none admissible'}.",
        "",
        *C.RULE_HEADER,
    ]
    lines += [C.rule_row(d, d is chosen, "pick") for d in summary]
    kinds = sorted({k for r in rows for k in r["auroc"]})
    lines += _case_table(
        "AUROC of each score for the left-out cells (per case)",
        ["left-out cells", *kinds],
        [(r, [str(r["n_novel"]), *(C.fmt(r["auroc"].get(k)) for k in kinds)]) for r in rows if r["auroc"]],
    )
    pick = [SHIPPED] + ([chosen["rule"]] if chosen and chosen["rule"] != SHIPPED else [])
    lines += _case_table(
        "Per case (recall / false)",
        pick,
        [(r, [f"{C.fmt(r[p]['recall'])} / {C.fmt(r[p]['false'])}" for p in pick]) for r in rows],
    )
    return "\n".join(lines) + "\n"


def _case_table(title: str, columns: list[str], rows: list[tuple[dict, list[str]]]) -> list[str]:
    """A per-case Markdown table: set, left-out type, then ``columns``."""
    lines = [
        "",
        f"## {title}",
        "",
        "| set | left out | " + " | ".join(columns) + " |",
        "|---" * (2 + len(columns)) + "|",
    ]
    return lines + [f"| {r['set']} | {r['left_out']} | " + " | ".join(vals) + " |" for r, vals in rows]


if __name__ == "__main__":
    raise SystemExit(main())
