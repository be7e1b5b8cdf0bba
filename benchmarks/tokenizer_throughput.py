"""NT tokenizer throughput on one CPU core: vectorized encoder vs transformers' EsmTokenizer.

Target: >= 200,000 peaks/s of 1,002 bp (fixed width, the `extract` default) on one core.
Results: benchmarks/results/tokenizer_throughput.{md,json}.

    OMP_NUM_THREADS=1 python benchmarks/tokenizer_throughput.py
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from embed_throughput import machine_info  # noqa: E402

from seqalignatac.embed.tokenizer import NTTokenizer, nt_vocab  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peaks", type=int, default=100_000)
    ap.add_argument("--width", type=int, default=1002)
    ap.add_argument(
        "--batch", type=int, default=8192, help="peaks per encode() call (as the embed step does in pieces)"
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--reference-peaks", type=int, default=500, help="peaks for the EsmTokenizer comparison")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "tokenizer_throughput"))
    a = ap.parse_args()
    try:
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as the target says
    except (AttributeError, OSError):
        pass
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer(b"ACGT", dtype=np.uint8)
    raw = alphabet[rng.integers(0, 4, size=(a.peaks, a.width))]
    seqs = [r.tobytes().decode() for r in raw]
    with_n = [s[:500] + "N" + s[501:] for s in seqs[: a.peaks // 10]]  # general path (N inside)
    mixed = [s[:500] + "N" + s[501:] if i % 100 == 0 else s for i, s in enumerate(seqs)]  # 1% of peaks with an N
    tok = NTTokenizer.from_vocab(nt_vocab("v2"), 2048)

    def timed(batch_seqs, batch):
        best, runs = float("inf"), []
        for _ in range(a.repeats):
            t = time.perf_counter()
            for i in range(0, len(batch_seqs), batch):
                tok.encode(batch_seqs[i : i + batch])
            s = time.perf_counter() - t
            runs.append(len(batch_seqs) / s)
            best = min(best, s)
        return {
            "peaks": len(batch_seqs),
            "best_peaks_per_s": round(len(batch_seqs) / best),
            "median_peaks_per_s": round(float(np.median(runs))),
        }

    res = {"command": " ".join(shlex.quote(x) for x in ["python", *sys.argv]), "machine": machine_info(),
           "width_bp": a.width, "batch": a.batch, "target_peaks_per_s": 200_000}  # fmt: skip
    res["vectorized_fixed_width"] = timed(seqs, a.batch)
    res["vectorized_1pct_with_N"] = timed(mixed, a.batch)
    res["vectorized_with_N"] = timed(with_n, a.batch)
    from transformers import EsmTokenizer

    with tempfile.TemporaryDirectory() as d:
        with open(os.path.join(d, "vocab.txt"), "w") as f:
            f.write("\n".join(nt_vocab("v2")) + "\n")
        ref = EsmTokenizer(os.path.join(d, "vocab.txt"), eos_token=None, model_max_length=2048)
        sub = seqs[: a.reference_peaks]
        t = time.perf_counter()
        ref_ids = ref(sub)["input_ids"]
        s = time.perf_counter() - t
        ours = tok.encode(sub)[0]
        res["identical_ids_to_EsmTokenizer"] = bool(all(list(ours[i]) == ref_ids[i] for i in range(len(sub))))
    res["EsmTokenizer"] = {"peaks": len(sub), "peaks_per_s": round(len(sub) / s, 1)}
    res["machine"]["load_average_end"] = os.getloadavg()
    ok = res["vectorized_fixed_width"]["best_peaks_per_s"] >= res["target_peaks_per_s"]
    res["meets_target"] = ok
    m = res["machine"]
    md = "\n".join([
        "# NT tokenizer throughput (one CPU core)", "",
        f"- date: {m['date_utc']}; command: `{res['command']}`",
        f"- machine: {m.get('cpu_model')} ({m['cpu_count']} cores, {m.get('ram_gib')} GiB RAM), pinned to one core; "
        f"load average at start {', '.join(f'{x:.2f}' for x in m['load_average'])}, at end "
        f"{', '.join(f'{x:.2f}' for x in m['load_average_end'])} (other jobs shared the machine)",
        f"- numpy {m['numpy']}, transformers {m['transformers']}; peaks of {a.width} bp, {a.batch} peaks per call, best of {a.repeats}", "",
        "| encoder | peaks | best peaks/s | median peaks/s |", "| --- | --- | --- | --- |",
        f"| vectorized, fixed width ACGT | {res['vectorized_fixed_width']['peaks']} | {res['vectorized_fixed_width']['best_peaks_per_s']:,} | {res['vectorized_fixed_width']['median_peaks_per_s']:,} |",
        f"| vectorized, 1% of peaks with an N | {res['vectorized_1pct_with_N']['peaks']} | {res['vectorized_1pct_with_N']['best_peaks_per_s']:,} | {res['vectorized_1pct_with_N']['median_peaks_per_s']:,} |",
        f"| vectorized, one N per peak (general path) | {res['vectorized_with_N']['peaks']} | {res['vectorized_with_N']['best_peaks_per_s']:,} | {res['vectorized_with_N']['median_peaks_per_s']:,} |",
        f"| transformers EsmTokenizer (reference) | {res['EsmTokenizer']['peaks']} | {res['EsmTokenizer']['peaks_per_s']:,} | |", "",
        f"Target >= 200,000 peaks/s: {'met' if ok else 'NOT met'}. Ids identical to EsmTokenizer on {len(sub)} peaks: {res['identical_ids_to_EsmTokenizer']}.",
    ]) + "\n"  # fmt: skip
    with open(a.out + ".json", "w") as f:
        json.dump(res, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
