"""Calibration of the ``--unknown distance`` call: left-out types vs false Unknowns on known types.

Never reads the D5T1 labels of the reported D6T1 -> D5T1 pair.  Sets:

- ``sim``: the stage-2 tests' generator (Gaussian classes, query with a batch shift), one type
  left out of the reference (3 seeds) or none (2 seeds); GDA with the tests' small config.
- ``demo``: ``seqalignatac demo``'s simulated pair through stage 1 (no left-out type: every
  Unknown is false).
- ``granja``: the tuning sets of ``_tuning_sets.py`` (``reverse`` = D5T1 -> D6T1, ``depth`` = the
  depth split inside D6T1) with one class removed from the reference (25_NK, 17_B, 07_GMP).

For every set and method (gda, knn) one ``annotate_full`` run (default configuration), then the
Unknown call recomputed from the same probabilities and embeddings with (a) the previous rule
(mean-centred query, held-out 95% quantile times the pooled query/held-out median ratio, k 15),
(b) the current rule (``--unknown-k`` 30) at several ``--unknown-quantile`` values, (c) the same
rule with k 15 (the distance k before the re-tuning on the logtf-logidf all-cell LSI) and k 50,
and (d) two alternatives at q 0.02: ``perclass`` (threshold = the predicted class's reference
``1 - q`` score times the pooled query/reference inflation of the left-side fits) and
``refmed-shift`` (the query moved by median(query) - median(reference) instead of by the
offsets from predicted-class centroids), (e) the neighbourhood test (``--unknown-smooth K``): the
per-cell score smoothed to the median log score of the K nearest query cells, flagged beyond the
``1 - sq`` point of the left-side normal fit of the smoothed scores, OR-ed with the per-cell test
at quantile 0.01 (or alone), and (f) a cluster-level test: KMeans on the query (round(c sqrt(n))
clusters, seed 0), each cell scored by its cluster's median log score, flagged beyond the same fit
at 0.02 but never below the reference's per-cell 0.98 score.  Reported per row: Unknown rate on the left-out
class's query cells, on the others, on the others whose arg-max label is right, and the AUROC
of each score for left-out vs others (threshold-free).

Selection criterion (written before choosing): highest mean left-out recall over the 12 Granja
rows (NK, B, GMP x reverse, depth x gda, knn) subject to a false-Unknown rate on known-type
query cells <= 5% on every Granja row and on both demo rows, and <= 5% averaged over the
simulation rows (whose "other" cells include misclassified ones, rightly flagged).

    .venv/bin/python benchmarks/unknown_calibration.py [--quick]   # --quick: sim + demo only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

from _common import machine_info

from seqalignatac import keys
from seqalignatac.models.stage2 import api
from seqalignatac.models.stage2 import unknown as U
from seqalignatac.models.stage2.unknown import call_unknown, class_distance, distance_scores, inlier_fit

QUANTILES = (0.1, 0.05, 0.02, 0.01)
DEFAULT_Q = 0.02
DEFAULT_K = 30
OLD_K = 15  # GDAConfig.k, the distance k of the previous rule and of the rule before the re-tuning
ALT_Q = 0.02
SMOOTH = ((15, 0.005), (30, 0.01), (30, 0.005), (30, 0.002), (60, 0.005))  # (K, smoothed quantile)
DEFAULT_SMOOTH = (30, 0.005)
SMOOTH_CELL_Q = 0.01
KMEANS_C = (0.2, 0.5)
DROPS = ("25_NK", "17_B", "07_GMP")


def previous_rule(qx, qpred, hx, hy, tx, ty, k, quantile=0.05):
    """The rule before this change (kept here for comparison only)."""
    ref_mean = np.concatenate([tx, hx]).mean(axis=0)
    q = qx - qx.mean(axis=0) + ref_mean
    hd = class_distance(hx, hy, tx, ty, k)
    qd = class_distance(q, qpred, tx, ty, k)
    scale = {c: np.median(hd[hy == c]) for c in np.unique(hy)}
    pooled = float(np.median(hd))
    qn = qd / np.array([scale.get(c, pooled) for c in qpred])
    qn[np.isnan(qn)] = np.inf
    hn = hd / np.array([scale[c] for c in hy])
    finite = qn[np.isfinite(qn)]
    infl = float(np.median(finite) / np.median(hn))
    return qn, qn > float(np.quantile(hn, 1 - quantile)) * max(1.0, infl)


def perclass_flags(qd, qpred, hx, hy, tx, ty, k, quantile):
    """Per-class reference threshold times the pooled query/reference inflation (an alternative)."""
    rd = np.concatenate([U.leave_one_out_distance(tx, ty, k), class_distance(hx, hy, tx, ty, k)])
    ry = np.concatenate([ty, hy])
    rd = rd / np.array([np.nanmedian(rd[ry == c]) for c in ry])
    ok, fin = np.isfinite(rd), np.isfinite(qd)
    mu_q, _ = inlier_fit(np.log(np.maximum(qd[fin], 1e-12)))
    mu_r, _ = inlier_fit(np.log(np.maximum(rd[ok], 1e-12)))
    infl = max(1.0, float(np.exp(mu_q - mu_r)))
    flags = ~fin
    for c in np.unique(qpred):
        v = rd[(ry == c) & ok]
        v = v if v.size >= 5 else rd[ok]
        sel = (qpred == c) & fin
        flags[sel] = qd[sel] > float(np.quantile(v, 1 - quantile)) * infl
    return flags


def refmed_scores(qx, qpred, hx, hy, tx, ty, k):
    """distance_scores with the query moved by median(query) - median(reference) (an alternative)."""
    orig = U.robust_shift
    U.robust_shift = lambda a, b, c, d: a - (np.median(a, axis=0) - np.median(c, axis=0))
    try:
        return U.distance_scores(qx, qpred, hx, hy, tx, ty, k)
    finally:
        U.robust_shift = orig


def smooth_flags(qx, qd, rd, conf, kk, sq, cell_q):
    """The ``--unknown-smooth`` rule as annotate_full calls it (cell_q 0: neighbourhood test alone)."""
    sd = U.smooth_scores(qx, qd, kk)
    flags, _ = call_unknown("distance", 0.02, conf, np.ones(1), qd, rd, sd, sq, cell_q)
    return flags


def kmeans_flags(qx, qd, rd, c, quantile=0.02, seed=0):
    """Cluster-level alternative: cells of KMeans clusters whose median log score is in the tail."""
    from scipy.stats import norm
    from sklearn.cluster import KMeans

    n = qx.shape[0]
    kc = int(max(2, min(n // 10, round(c * np.sqrt(n)))))
    lab = KMeans(kc, n_init=3, random_state=seed).fit_predict(U.l2_normalize(qx))
    lq = np.log(np.maximum(qd, 1e-12))
    med = np.empty_like(lq)
    for j in np.unique(lab):
        med[lab == j] = np.median(lq[lab == j])
    mu, sd = inlier_fit(med[np.isfinite(med)])
    thr = max(mu + norm.ppf(1 - quantile) * sd, np.log(np.quantile(rd, 1 - quantile)))
    return med > thr


def capture(cells, method, config=None, seed=0):
    """annotate_full, keeping the arguments of its distance_scores call."""
    box = {}
    orig = api.distance_scores

    def spy(*a, **kw):
        box["args"] = a
        return orig(*a, **kw)

    api.distance_scores = spy
    try:
        t = time.perf_counter()
        res = api.annotate_full(
            cells, method=method, config=config, unknown="distance", threads=1, progress=False, seed=seed
        )
        secs = time.perf_counter() - t
    finally:
        api.distance_scores = orig
    return res, box["args"], secs


def auroc(score, pos):
    from sklearn.metrics import roc_auc_score

    if not 0 < pos.sum() < pos.size:
        return None
    return float(roc_auc_score(pos, np.nan_to_num(score, posinf=1e9)))


def rates(flags, novel, correct):
    other = ~novel
    return {
        "novel": float(flags[novel].mean()) if novel.any() else None,
        "other": float(flags[other].mean()),
        "other_correct": float(flags[other & correct].mean()) if (other & correct).any() else None,
    }


def evaluate(name, cells, method, novel_label, config=None):
    res, args, secs = capture(cells, method, config)
    qx, qpred, hx, hy, tx, ty, k = args[:7]
    q = res.query
    truth = q.obs[keys.labels_key_of(cells)].astype(str).to_numpy()
    best = q.obs["seqalignatac_best_label"].astype(str).to_numpy()
    novel = truth == novel_label if novel_label else np.zeros(truth.size, dtype=bool)
    correct = best == truth
    conf = q.obs["seqalignatac_confidence"].to_numpy()
    row = {
        "set": name,
        "method": method,
        "left_out": novel_label,
        "n_query": int(truth.size),
        "n_left_out": int(novel.sum()),
        "argmax_accuracy_known": float(correct[~novel].mean()),
        "annotate_seconds": round(secs, 2),
    }
    assert k == DEFAULT_K, k
    old_score, old_flags = previous_rule(qx, qpred, hx, hy, tx, ty, OLD_K)
    row["previous"] = {**rates(old_flags, novel, correct), "auroc": auroc(old_score, novel)}
    qd, rd = distance_scores(qx, qpred, hx, hy, tx, ty, k)
    row["current_auroc"] = auroc(qd, novel)
    for quant in QUANTILES:
        flags, _ = call_unknown("distance", quant, conf, np.ones(1), qd, rd)
        row[f"current_q{quant}"] = rates(flags, novel, correct)
    for kk in (OLD_K, 50):
        qd2, rd2 = distance_scores(qx, qpred, hx, hy, tx, ty, kk)
        row[f"k{kk}_auroc"] = auroc(qd2, novel)
        for quant in QUANTILES:
            flags, _ = call_unknown("distance", quant, conf, np.ones(1), qd2, rd2)
            row[f"k{kk}_q{quant}"] = rates(flags, novel, correct)
    row[f"perclass_q{ALT_Q}"] = rates(perclass_flags(qd, qpred, hx, hy, tx, ty, k, ALT_Q), novel, correct)
    qd3, rd3 = refmed_scores(qx, qpred, hx, hy, tx, ty, k)
    row["refmed_auroc"] = auroc(qd3, novel)
    flags, _ = call_unknown("distance", ALT_Q, conf, np.ones(1), qd3, rd3)
    row[f"refmed-shift_q{ALT_Q}"] = rates(flags, novel, correct)
    for kk, sq in SMOOTH:
        row[f"smooth{kk}_sq{sq}"] = rates(smooth_flags(qx, qd, rd, conf, kk, sq, SMOOTH_CELL_Q), novel, correct)
    kk, sq = DEFAULT_SMOOTH
    row[f"smooth{kk}_sq{sq}_alone"] = rates(smooth_flags(qx, qd, rd, conf, kk, sq, 0.0), novel, correct)
    for c in KMEANS_C:
        row[f"kmeans{c}"] = rates(kmeans_flags(qx, qd, rd, c), novel, correct)
    default = q.obs["seqalignatac_unknown"].to_numpy()
    row["default_run"] = rates(default, novel, correct)  # what annotate_full itself called (defaults)
    return row


def sim_rows():
    from test_stage2 import TINY, make_cells

    rows = []
    for seed, drop in [(1, 0), (2, 3), (3, 1), (1, None), (4, None)]:
        cells = make_cells(drop=drop, seed=seed)
        for method in ("gda", "knn"):
            rows.append(evaluate(f"sim seed {seed}", cells, method, None if drop is None else f"type{drop}", TINY))
    return rows


def demo_rows(workdir: Path):
    import anndata as ad

    from seqalignatac.workflow.demo import run_demo

    path = workdir / "demo" / "results" / "demo" / "train" / "cell_embeddings.h5ad"
    if not path.is_file():
        run_demo(workdir / "demo", threads=1, progress=False)
    cells = ad.read_h5ad(path)
    return [evaluate("demo", cells, m, None) for m in ("gda", "knn")]


def granja_rows():
    from _tuning_sets import lsi_sets

    rows = []
    for drop in DROPS:
        for name, cells in lsi_sets(drop_reference_label=drop).items():
            for method in ("gda", "knn"):
                rows.append(evaluate(f"granja {name}", cells, method, drop))
                print(rows[-1]["set"], drop, method, rows[-1]["annotate_seconds"], flush=True)
    return rows


def fmt(v):
    return "" if v is None else f"{v:.3f}"


def variants():
    """(name, row key, AUROC key) of every rule compared in the summary."""
    out = [("previous (q 0.05, k 15)", "previous", "previous")]
    for q in QUANTILES:
        out.append(
            (
                f"current k {DEFAULT_K}, q {q}" + (" (default with --unknown-smooth 0)" if q == DEFAULT_Q else ""),
                f"current_q{q}",
                "current_auroc",
            )
        )
    for kk in (OLD_K, 50):
        out += [(f"current k {kk}, q {q}", f"k{kk}_q{q}", f"k{kk}_auroc") for q in QUANTILES]
    out += [
        (f"perclass k {DEFAULT_K}, q {ALT_Q}", f"perclass_q{ALT_Q}", "current_auroc"),
        (f"refmed-shift k {DEFAULT_K}, q {ALT_Q}", f"refmed-shift_q{ALT_Q}", "refmed_auroc"),
    ]
    for kk, sq in SMOOTH:
        out.append(
            (
                f"smooth K {kk} sq {sq} OR per-cell q {SMOOTH_CELL_Q}"
                + (" (default)" if (kk, sq) == DEFAULT_SMOOTH else ""),
                f"smooth{kk}_sq{sq}",
                "current_auroc",
            )
        )
    kk, sq = DEFAULT_SMOOTH
    out.append((f"smooth K {kk} sq {sq} alone", f"smooth{kk}_sq{sq}_alone", "current_auroc"))
    out += [(f"kmeans c {c} (cluster median), q {ALT_Q}", f"kmeans{c}", "current_auroc") for c in KMEANS_C]
    return out


def summary(rows):
    """Per rule: Granja mean left-out recall, max false Unknown (Granja, demo), sim means, AUROC, criterion."""
    gr = [r for r in rows if r["set"].startswith("granja")]
    de = [r for r in rows if r["set"].startswith("demo")]
    si = [r for r in rows if r["set"].startswith("sim")]
    out = []
    for name, key, akey in variants():

        def au(r, akey=akey):
            return r[akey]["auroc"] if akey == "previous" else r[akey]

        d = {
            "rule": name,
            "key": key,
            "granja_novel": float(np.mean([r[key]["novel"] for r in gr])) if gr else None,
            "granja_other_max": max((r[key]["other"] for r in gr), default=None),
            "granja_other_mean": float(np.mean([r[key]["other"] for r in gr])) if gr else None,
            "granja_auroc": float(np.mean([au(r) for r in gr])) if gr else None,
            "demo_other_max": max((r[key]["other"] for r in de), default=None),
            "sim_novel": float(np.mean([r[key]["novel"] for r in si if r["left_out"]])),
            "sim_other": float(np.mean([r[key]["other"] for r in si])),
        }
        d["meets_criterion"] = (
            d["granja_other_max"] is not None
            and d["granja_other_max"] <= 0.05
            and (d["demo_other_max"] or 0) <= 0.05
            and d["sim_other"] <= 0.05
        )
        out.append(d)
    return out


def markdown(rows, meta):
    lines = [
        "# Unknown calibration (`--unknown distance`)",
        "",
        f"Date: {meta['date']}.  Command: `{meta['command']}`.  Machine: {meta['machine'].get('cpu_model', '')}.",
        "Features: Granja tuning sets with the stage-1 LSI defaults (all cells, logtf-logidf; cache tag",
        "`defaults-v2`); stage 2 with the GDAConfig defaults (0.3 GDA + 0.6 kNN + 0.1 logistic regression).",
        "",
        "Criterion (chosen before looking): highest mean left-out recall over the Granja rows subject to a",
        "false-Unknown rate on known-type query cells <= 5% on every Granja row and both demo rows, and <= 5%",
        "averaged over the simulation rows.  No row reads the D5T1 labels of the D6T1 -> D5T1 pair.",
        "",
        "## Summary",
        "",
        (
            "| rule | Granja left-out recall (mean of rows) | Granja false Unknown max / mean | demo false Unknown max "
            "| sim left-out recall / other | Granja AUROC | meets criterion |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    for d in summary(rows):
        lines.append(
            f"| {d['rule']} | {fmt(d['granja_novel'])} | {fmt(d['granja_other_max'])} / "
            f"{fmt(d['granja_other_mean'])} | {fmt(d['demo_other_max'])} | {fmt(d['sim_novel'])} / "
            f"{fmt(d['sim_other'])} | {fmt(d['granja_auroc'])} | {'yes' if d['meets_criterion'] else 'no'} |"
        )
    lines += [
        "",
        "## Per row",
        "",
        "Unknown rate on the left-out class's query cells (`novel`), on all other query cells (`other`) and on",
        "the other cells whose arg-max label is right (`oc`: pure false Unknowns); AUROC of the distance score",
        "for left-out vs others.  `previous` = the rule before the distance rewrite; `q=...` = the current rule",
        f"(k {DEFAULT_K}) at that `--unknown-quantile` (the default {DEFAULT_Q} with `--unknown-smooth 0`); `k15 q=0.01` = the",
        "default before that re-tuning; `smooth (default)` = `--unknown-smooth 30 --unknown-smooth-quantile 0.005`",
        "OR the per-cell test at 0.01 (recomputed); `annotate_full default` = what annotate_full itself called.",
        "",
        "| set | method | left out | acc (known) | prev novel / other | prev AUROC | AUROC k15 / k30 / k50 | "
        "k15 q=0.01 novel / other | "
        + " | ".join(f"q={q} novel / other / oc" for q in QUANTILES)
        + " | smooth (default) novel / other / oc | annotate_full default novel / other |",
        "|---" * (10 + len(QUANTILES)) + "|",
    ]
    for r in rows:
        k15 = r[f"k{OLD_K}_q0.01"]
        cells = [
            r["set"],
            r["method"],
            r["left_out"] or "-",
            fmt(r["argmax_accuracy_known"]),
            f"{fmt(r['previous']['novel']) or '-'} / {fmt(r['previous']['other'])}",
            fmt(r["previous"]["auroc"]),
            f"{fmt(r['k15_auroc'])} / {fmt(r['current_auroc'])} / {fmt(r['k50_auroc'])}",
            f"{fmt(k15['novel']) or '-'} / {fmt(k15['other'])}",
        ]
        for q in QUANTILES:
            c = r[f"current_q{q}"]
            cells.append(f"{fmt(c['novel']) or '-'} / {fmt(c['other'])} / {fmt(c['other_correct'])}")
        c = r[f"smooth{DEFAULT_SMOOTH[0]}_sq{DEFAULT_SMOOTH[1]}"]
        cells.append(f"{fmt(c['novel']) or '-'} / {fmt(c['other'])} / {fmt(c['other_correct'])}")
        c = r["default_run"]
        cells.append(f"{fmt(c['novel']) or '-'} / {fmt(c['other'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="simulation and demo only (no Granja data)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/seqalignatac_unknown_calibration"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / "unknown_calibration")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    rows = sim_rows() + demo_rows(a.workdir)
    if not a.quick:
        rows += granja_rows()
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python benchmarks/unknown_calibration.py" + (" --quick" if a.quick else ""),
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{a.out}.json").write_text(
        json.dumps({"meta": meta, "summary": summary(rows), "rows": rows}, indent=2, default=str) + "\n"
    )
    Path(f"{a.out}.md").write_text(markdown(rows, meta))
    print(Path(f"{a.out}.md").read_text())


if __name__ == "__main__":
    main()
