"""Tuning the ``Unknown`` call on the tuning sets only (issue 16): left-out types vs false Unknowns.

    python benchmarks/unknown_calibration.py [--quick] [--workdir DIR]   # --quick: sim + demo only

Never reads the D5T1 labels of the held-out pair D6T1 -> D5T1.  Cases (one stage-2 run each, the
default ``gda``; the inputs of its Unknown test are cached under ``--workdir``):

- ``granja reverse`` (D5T1 -> D6T1) and ``granja depth`` (D6T1 split at its median depth), with
  nothing left out and with each coarse group (NK, B, Mono, GMP, Progenitor) removed from the
  reference; stage-1 LSI at its defaults is refitted on each reduced pair, as a user would run it.
- ``sim``: the stage-2 tests' generator (Gaussian classes, a batch-shifted query), one type left
  out (4 seeds) or none (4 seeds).
- ``demo``: ``seqalignatac demo``'s pair (no type left out: every Unknown is false).

Rules compared on the same probabilities and cells: ``previous`` (the shipped rule before issue 16:
mean cosine distance to the 30 nearest reference cells of the predicted class, the neighbourhood
test at K 30 / 0.005 OR the per-cell test at 0.01) and the Mahalanobis score of
:func:`seqalignatac.models.stage2.unknown.distance_scores` with a grid of covariance priors
(``prior_cells``; ``inf``: one pooled covariance), neighbourhood sizes K, neighbourhood quantiles,
per-cell quantiles (off: no per-cell test) and floors of the neighbourhood threshold in per-cell sd.  The selection criterion,
written before the first run, is benchmarks/results/issue16_criterion.md; :func:`choose` applies it.
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
sys.path.insert(0, str(HERE / "peers"))
sys.path.insert(0, str(HERE.parent / "tests" / "python"))

from _common import machine_info

from seqalignatac import keys
from seqalignatac.models.stage2 import api
from seqalignatac.models.stage2 import unknown as U
from seqalignatac.models.stage2.graphs import l2_normalize

GROUPS = ("none", "NK", "B", "Mono", "GMP", "Progenitor")
SMOOTH_K = (15, 30, 50)
SMOOTH_Q = (0.01, 0.005, 0.002, 0.001)
CELL_Q = (0.0, 0.01)
PRIORS = (30.0, 100.0, 300.0, 1000.0, float("inf"))  # prior_cells: weight of the pooled covariance
FLOORS = (0.0, 1.0, 1.5, 2.0)  # neighbourhood threshold floor, in per-cell inlier sd
MAX_FALSE = 0.05  # issue16_criterion.md: false Unknown share allowed on every case
TIE = 0.01  # mean recall within this of the best: prefer the lower false rate


# --- cases ----------------------------------------------------------------------------------------


def capture(cells, config=None) -> dict:
    """One default ``gda`` run; the inputs of its Unknown test and its default calls."""
    box: dict = {}
    orig = U.distance_scores

    def spy(*a, **kw):
        box["args"] = a
        return orig(*a, **kw)

    U.distance_scores = spy
    try:
        res = api.annotate_full(cells, method="gda", config=config, threads=2, progress=False)
    finally:
        U.distance_scores = orig
    qx, qpred, hx, hy, tx, ty = box["args"][:6]
    q = res.query
    return {
        "qx": qx,
        "qpred": qpred,
        "hx": hx,
        "hy": hy,
        "tx": tx,
        "ty": ty,
        "truth": q.obs[keys.labels_key_of(cells)].astype(str).to_numpy(),
        "best": q.obs[keys.BEST_LABEL_OBS].astype(str).to_numpy(),
    }


def cached(path: Path, make) -> dict:
    if path.is_file():
        with np.load(path, allow_pickle=True) as z:
            return {k: z[k] for k in z.files}
    d = make()
    tmp = path.with_name(path.stem + ".tmp.npz")
    np.savez(tmp, **d)
    tmp.replace(path)
    return d


def granja_cases(workdir: Path, groups=GROUPS) -> list[dict]:
    import _tuning_sets as T
    import granja

    from seqalignatac.models.stage1.lsi import lsi

    T.WORKDIR = workdir
    accs = None
    out = []
    for group in groups:
        for name in T.SETS:

            def make(name=name, group=group):
                nonlocal accs
                accs = accs or T.accessibility_sets(workdir)
                acc = accs[name]
                if group != "none":
                    grp = np.array([granja.coarse_label(v) for v in acc.obs[T.LABEL].astype(str)])
                    acc = acc[~((acc.obs[keys.DOMAIN] == keys.REFERENCE).to_numpy() & (grp == group))].copy()
                return capture(lsi(acc)[0])

            d = cached(workdir / f"case_granja_{name}_{group}.npz", make)
            removed = sorted({v for v in d["truth"] if group != "none" and granja.coarse_label(v) == group})
            out.append({"set": f"granja {name}", "left_out": group, "novel": np.isin(d["truth"], removed), **d})
            print(f"case granja {name} without {group}: {d['truth'].size} query cells", flush=True)
    return out


def sim_cases(workdir: Path) -> list[dict]:
    from test_stage2 import TINY, make_cells

    out = []
    for seed, drop in [(1, 0), (2, 3), (3, 1), (5, 2), (0, None), (1, None), (4, None), (5, None)]:
        d = cached(
            workdir / f"case_sim_{seed}_{drop}.npz", lambda s=seed, k=drop: capture(make_cells(drop=k, seed=s), TINY)
        )
        novel = d["truth"] == f"type{drop}" if drop is not None else np.zeros(d["truth"].size, dtype=bool)
        out.append(
            {"set": f"sim seed {seed}", "left_out": "none" if drop is None else f"type{drop}", "novel": novel, **d}
        )
    return out


def demo_cases(workdir: Path) -> list[dict]:
    import anndata as ad

    from seqalignatac.workflow.demo import run_demo

    def make():
        path = workdir / "demo" / "results" / "demo" / "train" / keys.CELL_EMBEDDINGS
        if not path.is_file():
            run_demo(workdir / "demo", threads=2, progress=False)
        return capture(ad.read_h5ad(path))

    d = cached(workdir / "case_demo.npz", make)
    return [{"set": "demo", "left_out": "none", "novel": np.zeros(d["truth"].size, dtype=bool), **d}]


# --- rules ------------------------------------------------------------------------------------------


def previous_scores(qx, qpred, hx, hy, tx, ty, k=30):
    """The distance score shipped before issue 16 (kept here for comparison only)."""
    from sklearn.neighbors import NearestNeighbors

    def mean_knn(points, base):
        kk = max(1, min(k, base.shape[0]))
        dist, _ = NearestNeighbors(n_neighbors=kk).fit(l2_normalize(base)).kneighbors(l2_normalize(points))
        return (dist**2 / 2.0).mean(axis=1)

    def per_class(points, cls):
        out = np.full(points.shape[0], np.nan)
        for c in np.unique(cls):
            if (ty == c).any():
                out[cls == c] = mean_knn(points[cls == c], tx[ty == c])
        return out

    shifted = U.robust_shift(qx, qpred, np.concatenate([tx, hx]), np.concatenate([ty, hy]))
    qd, rd = per_class(shifted, qpred), per_class(hx, hy)
    scale = {c: np.nanmedian(rd[hy == c]) for c in np.unique(hy)}
    pooled = float(np.nanmedian(rd))
    qn = qd / np.array([scale.get(c, pooled) for c in qpred])
    qn[np.isnan(qn)] = np.inf
    rn = rd / np.array([scale[c] for c in hy])
    return qn, rn[np.isfinite(rn)]


def rule_grid() -> list[dict]:
    rules = [
        {
            "name": "previous (kNN cosine, K 30, sq 0.005, per-cell 0.01)",
            "score": "previous",
            "K": 30,
            "sq": 0.005,
            "cq": 0.01,
        }
    ]
    for prior in PRIORS:
        for kk in SMOOTH_K:
            for sq in SMOOTH_Q:
                for cq in CELL_Q:
                    for fl in FLOORS:
                        name = f"mahalanobis prior {prior:g}, K {kk}, sq {sq}, per-cell {cq or 'off'}, floor {fl:g} sd"
                        rules.append(
                            {"name": name, "score": f"mahalanobis {prior:g}", "K": kk, "sq": sq, "cq": cq, "floor": fl}
                        )
    return rules


def evaluate(cases: list[dict], rules: list[dict]) -> list[dict]:
    from sklearn.metrics import roc_auc_score

    rows = []
    for c in cases:
        args = (c["qx"], c["qpred"], c["hx"], c["hy"], c["tx"], c["ty"])
        scores = {"previous": previous_scores(*args)}
        scores.update({f"mahalanobis {p:g}": U.distance_scores(*args, prior_cells=p) for p in PRIORS})
        smoothed: dict = {}
        row = {
            "set": c["set"],
            "left_out": c["left_out"],
            "n_query": int(c["truth"].size),
            "n_novel": int(c["novel"].sum()),
        }
        novel, other = c["novel"], ~c["novel"]
        for name, (qd, _) in scores.items():
            if 0 < novel.sum() < novel.size:
                row[f"auroc {name}"] = float(roc_auc_score(novel, np.nan_to_num(qd, posinf=1e9)))
        for r in rules:
            qd, rd = scores[r["score"]]
            key = (r["score"], r["K"])
            if key not in smoothed:
                smoothed[key] = U.smooth_scores(c["qx"], qd, r["K"])
            flags, _ = U.call_unknown(
                "distance",
                0.0,
                np.ones(qd.size),
                np.ones(1),
                qd,
                rd,
                smoothed[key],
                r["sq"],
                r["cq"],
                r.get("floor", 0.0),
            )
            row[r["name"]] = rates(flags, novel, other)
        rows.append(row)
        print(f"  {c['set']} without {c['left_out']}", flush=True)
    return rows


def rates(flags, novel, other) -> dict:
    return {
        "recall": float(flags[novel].mean()) if novel.any() else None,
        "false": float(flags[other].mean()) if other.any() else None,
    }


def summarize(rows: list[dict], rules: list[dict]) -> list[dict]:
    """Per rule: the numbers issue16_criterion.md judges it by, and whether it is admissible."""
    gr = [r for r in rows if r["set"].startswith("granja")]
    sim = [r for r in rows if r["set"].startswith("sim")]
    fixed = [r for r in rows if r["set"] == "demo" or (r["set"].startswith("granja") and r["left_out"] == "none")]
    out = []
    for rule in rules:
        n = rule["name"]
        rec = [r[n]["recall"] for r in gr if r[n]["recall"] is not None]
        nk = [r[n]["recall"] for r in gr if r["left_out"] == "NK"]
        d = {
            "rule": n,
            "granja_recall_mean": float(np.mean(rec)) if rec else None,
            "granja_nk_recall_mean": float(np.mean(nk)) if nk else None,
            "granja_false_max": max((r[n]["false"] for r in gr), default=None),
            "granja_false_mean": float(np.mean([r[n]["false"] for r in gr])) if gr else None,
            "nothing_left_out_false_max": max((r[n]["false"] for r in fixed), default=None),
            "sim_false_mean": float(np.mean([r[n]["false"] for r in sim])) if sim else None,
            "sim_recall_mean": float(np.mean([r[n]["recall"] for r in sim if r[n]["recall"] is not None]))
            if sim
            else None,
        }
        d["admissible"] = all(
            v is None or v <= MAX_FALSE
            for v in (d["granja_false_max"], d["nothing_left_out_false_max"], d["sim_false_mean"])
        )
        out.append(d)
    return out


def choose(summary: list[dict]) -> dict | None:
    """issue16_criterion.md: the admissible rule with the highest mean Granja recall; within TIE of it,
    the lowest mean false rate (then the first listed, the simpler grid point)."""
    ok = [d for d in summary if d["admissible"] and d["granja_recall_mean"] is not None]
    if not ok:
        return None
    best = max(d["granja_recall_mean"] for d in ok)
    near = [d for d in ok if d["granja_recall_mean"] >= best - TIE]
    return min(near, key=lambda d: d["granja_false_mean"])


# --- output -----------------------------------------------------------------------------------------


def fmt(v) -> str:
    return "–" if v is None else f"{v:.3f}"


def markdown(rows, summary, chosen, meta) -> str:
    shown = [d for d in summary if d["rule"].startswith("previous") or d is chosen or d["admissible"]]
    shown = sorted(shown, key=lambda d: -(d["granja_recall_mean"] or 0))[:15]
    if summary[0] not in shown:
        shown.append(summary[0])
    lines = [
        "# Unknown calibration on the tuning sets (issue 16)",
        "",
        f"{meta['date']}; `{meta['command']}`; {meta['machine'].get('cpu_model', '')}, "
        f"{meta['machine'].get('cpu_count', '')} cores, load average at start {meta['machine'].get('load_average_start', '')}; "
        f"{meta['seconds']} s.",
        "",
        "Criterion (written before the first run): benchmarks/results/issue16_criterion.md.  No case reads the",
        "D5T1 labels of the held-out pair D6T1 -> D5T1.  `recall`: share of the left-out type's query cells",
        "called Unknown; `false`: share of all other query cells called Unknown.",
        "",
        f"**Chosen:** {chosen['rule'] if chosen else 'none admissible'}.  Issue 16's second round adds a "
        "cluster test on top of it, picked by the same criterion: unknown_alternatives.md.",
        "",
        "## Rules (the previous default, the chosen one and the best admissible ones)",
        "",
        *RULE_HEADER,
    ]
    lines += [rule_row(d, d is chosen) for d in shown]
    pick = [summary[0]["rule"]] + ([chosen["rule"]] if chosen else [])
    lines += [
        "",
        "## Per case (recall / false)",
        "",
        f"| set | left out | query cells | left-out cells | AUROC previous / Mahalanobis (prior {U.PRIOR_CELLS:g}) | "
        + " | ".join(pick)
        + " |",
        "|---" * (5 + len(pick)) + "|",
    ]
    for r in rows:
        cells = [
            r["set"],
            r["left_out"],
            str(r["n_query"]),
            str(r["n_novel"]),
            f"{fmt(r.get('auroc previous'))} / {fmt(r.get(f'auroc mahalanobis {U.PRIOR_CELLS:g}'))}",
        ]
        cells += [f"{fmt(r[p]['recall'])} / {fmt(r[p]['false'])}" for p in pick]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


RULE_HEADER = [
    "| rule | Granja recall mean | Granja NK recall mean | Granja false max / mean | nothing left out: false max | sim recall / false | admissible |",
    "|---|---|---|---|---|---|---|",
]


def rule_row(d: dict, chosen: bool, mark: str = "chosen") -> str:
    """One rule's line of the rules table (its :func:`summarize` numbers)."""
    return (
        f"| {d['rule']}{f' **({mark})**' if chosen else ''} | {fmt(d['granja_recall_mean'])} | "
        f"{fmt(d['granja_nk_recall_mean'])} | {fmt(d['granja_false_max'])} / {fmt(d['granja_false_mean'])} | "
        f"{fmt(d['nothing_left_out_false_max'])} | {fmt(d['sim_recall_mean'])} / {fmt(d['sim_false_mean'])} | "
        f"{'yes' if d['admissible'] else 'no'} |"
    )


def save(out: Path, command: str, t0: float, rows: list, summary: list, chosen: dict | None, render) -> None:
    """Write ``out``.json (meta, chosen rule, summary, rows) and ``out``.md (``render``), and print the latter."""
    meta = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": command,
        "machine": machine_info(),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    Path(f"{out}.json").write_text(
        json.dumps({"meta": meta, "chosen": chosen, "summary": summary, "rows": rows}, indent=2) + "\n"
    )
    Path(f"{out}.md").write_text(render(rows, summary, chosen, meta))
    print(Path(f"{out}.md").read_text())


def cases_from_args(argv: list[str] | None, doc: str, name: str) -> tuple[argparse.Namespace, list[dict]]:
    """The options shared by the Unknown tuning scripts (``--quick``, ``--workdir``, ``--out``
    defaulting to results/``name``) and their cases."""
    ap = argparse.ArgumentParser(description=doc.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="simulation and demo only (no Granja data)")
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/seqalignatac_unknown_calibration"))
    ap.add_argument("--out", type=Path, default=HERE / "results" / name)
    a = ap.parse_args(argv)
    a.workdir.mkdir(parents=True, exist_ok=True)
    cases = sim_cases(a.workdir) + demo_cases(a.workdir)
    if not a.quick:
        cases += granja_cases(a.workdir)
    return a, cases


def main(argv: list[str] | None = None) -> int:
    t0 = time.perf_counter()
    a, cases = cases_from_args(argv, __doc__, "unknown_calibration")
    rules = rule_grid()
    rows = evaluate(cases, rules)
    summary = summarize(rows, rules)
    command = "python benchmarks/unknown_calibration.py" + (" --quick" if a.quick else "")
    save(a.out, command, t0, rows, summary, choose(summary), markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
