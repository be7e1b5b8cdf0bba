"""NT embedding throughput with random weights of the real sizes, through the production code path.

For each config (v2-50m, v2-500m, v1-2.5b) at a fixed peak width (1,002 bp = 168 tokens) this
reports peaks/s, tokens/s, model FLOP/s (2 x parameters x tokens; attention score FLOPs not
counted) and the fraction of the device's dense bf16 peak, plus the cosine between bf16 and fp32
pooled embeddings of the same peaks.  Results: benchmarks/results/embed_throughput_<device>.{md,json}.

GPU:  python benchmarks/embed_throughput.py --device cuda
CPU:  OMP_NUM_THREADS=2 python benchmarks/embed_throughput.py --device cpu --configs v2-50m,v2-500m --peaks 32 --batch-size 8
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import json
import os
import platform
import shlex
import sys
import time

import numpy as np
import torch

from seqalignatac.embed.nt_model import build_nt, n_params, to_device_dtype
from seqalignatac.embed.runner import NTEmbedder, default_batch_size
from seqalignatac.embed.tiny import nt_config
from seqalignatac.embed.tokenizer import NTTokenizer, nt_vocab

CONFIGS = {
    # sizes from docs/nucleotide-transformer-and-peers.md A1 (hub config.json files)
    "v2-50m": ("v2", dict(hidden_size=512, num_hidden_layers=12, num_attention_heads=16, intermediate_size=2048)),
    "v2-500m": ("v2", dict(hidden_size=1024, num_hidden_layers=29, num_attention_heads=16, intermediate_size=4096)),
    "v1-2.5b": ("v1", dict(hidden_size=2560, num_hidden_layers=32, num_attention_heads=20, intermediate_size=10240)),
}
# Dense (no sparsity) bf16 tensor-core peak, FLOP/s, from the vendors' data sheets.
BF16_PEAK = {"H100 SXM": 989e12, "H100 80GB HBM3": 989e12, "H100 PCIe": 756e12, "H100 NVL": 835e12,
             "H200": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}  # fmt: skip


def machine_info() -> dict:
    info = {"date_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "platform": platform.platform(), "python": platform.python_version(),
            "cpu_count": os.cpu_count(), "load_average": os.getloadavg()}  # fmt: skip
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu_model"] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        with open("/proc/meminfo") as f:
            info["ram_gib"] = round(int(next(l for l in f if l.startswith("MemTotal")).split()[1]) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    import transformers

    info.update(torch=torch.__version__, transformers=transformers.__version__, numpy=np.__version__,
                omp_num_threads=os.environ.get("OMP_NUM_THREADS"), torch_threads=torch.get_num_threads())  # fmt: skip
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def bf16_peak(name: str | None) -> float | None:
    if not name:
        return None
    for key, v in sorted(BF16_PEAK.items(), key=lambda kv: -len(kv[0])):
        if all(part in name for part in key.split()):
            return v
    return None


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_pool(emb: NTEmbedder, tokens: np.ndarray, bs: int) -> np.ndarray:
    counts = np.full(len(tokens), tokens.shape[1])
    out = []
    pending = None
    for a in range(0, len(tokens), bs):
        r = emb.pool(tokens[a : a + bs], counts[a : a + bs])
        if pending is not None:
            out.append(pending.cpu().numpy())
        pending = r
    out.append(pending.cpu().numpy())
    return np.concatenate(out)


def bench(
    name: str,
    device: str,
    n_peaks: int,
    width: int,
    bs: int | None,
    dtypes: list[str],
    cos_peaks: int,
    seed: int,
    fp32_peaks: int | None = None,
) -> dict:
    arch, sizes = CONFIGS[name]
    cfg = nt_config(arch, **sizes)
    torch.manual_seed(seed)
    t = time.perf_counter()
    with torch.device(device):
        model32 = build_nt(cfg)  # random init, fp32
    build_s = time.perf_counter() - t
    P = n_params(model32)
    tok = NTTokenizer.from_vocab(nt_vocab(arch), cfg["max_position_embeddings"] - 2)
    rng = np.random.default_rng(seed)
    seqs = ["".join(rng.choice(list("ACGT"), width)) for _ in range(max(n_peaks, cos_peaks))]
    tokens, counts = tok.encode(seqs)
    T = int(tokens.shape[1])
    bs = bs or default_batch_size(device, cfg["hidden_size"], T)
    row = {"config": name, "params": P, "hidden": cfg["hidden_size"], "layers": cfg["num_hidden_layers"],
           "width_bp": width, "tokens_per_peak": T, "batch_size": bs, "peaks": n_peaks, "build_s": round(build_s, 1)}  # fmt: skip
    pooled = {}
    for dname in dtypes:
        dtype = getattr(torch, dname)
        model = model32 if dname == "float32" else to_device_dtype(copy.deepcopy(model32), device, dtype)
        emb = NTEmbedder(model, tok, device, dtype)
        n = min(n_peaks, fp32_peaks) if (dname == "float32" and fp32_peaks) else n_peaks
        run_pool(emb, tokens[: min(bs, n)], bs)  # warm-up (kernels, allocator)
        sync(device)
        t = time.perf_counter()
        run_pool(emb, tokens[:n], bs)
        sync(device)
        sec = time.perf_counter() - t
        pooled[dname] = run_pool(emb, tokens[:cos_peaks], bs) if cos_peaks else None
        flops = 2.0 * P * n * T / sec
        row[dname] = {"peaks": n, "seconds": round(sec, 3), "peaks_per_s": round(n / sec, 2),
                      "tokens_per_s": round(n * T / sec, 1), "model_tflops": round(flops / 1e12, 3)}  # fmt: skip
        if device.startswith("cuda"):
            row[dname]["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            peak = bf16_peak(torch.cuda.get_device_name(0))
            if peak and dname == "bfloat16":
                row[dname]["fraction_of_bf16_peak"] = round(flops / peak, 3)
        if model is not model32:
            del model, emb
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        print(f"{name} {dname}: {row[dname]}", file=sys.stderr, flush=True)
    if "float32" in pooled and len(pooled) > 1 and cos_peaks:
        a = pooled["float32"]
        for dname, b in pooled.items():
            if dname != "float32":
                cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
                row[f"cosine_{dname}_vs_float32"] = {
                    "min": float(cos.min()),
                    "mean": float(cos.mean()),
                    "peaks": cos_peaks,
                }
    return row


def to_markdown(res: dict) -> str:
    m = res["machine"]
    lines = [f"# NT embedding throughput ({res['device_name']})", "",
             f"- date: {m['date_utc']}; command: `{res['command']}`",
             f"- machine: {m.get('cpu_model')} ({m['cpu_count']} cores, {m.get('ram_gib')} GiB RAM), "
             f"load average {', '.join(f'{x:.2f}' for x in m['load_average'])}; GPU: {m.get('gpu', 'none')}",
             f"- torch {m['torch']}, transformers {m['transformers']}, threads {m['torch_threads']}",
             "- random weights of the real sizes; model FLOPs = 2 x parameters x tokens; fixed-shape batches "
             "(no padding, no mask); inference_mode", "",
             "| config | params | dtype | batch | peaks | peaks/s | tokens/s | model TFLOP/s | of bf16 peak | bf16-vs-fp32 cosine (min / mean) |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]  # fmt: skip
    for r in res["results"]:
        for d in res["dtypes"]:
            x = r.get(d)
            if not x:
                continue
            cos = r.get("cosine_bfloat16_vs_float32")
            cos_s = f"{cos['min']:.5f} / {cos['mean']:.5f} ({cos['peaks']} peaks)" if cos and d == "bfloat16" else ""
            frac = x.get("fraction_of_bf16_peak")
            lines.append(f"| {r['config']} | {r['params'] / 1e6:.1f}M | {d} | {r['batch_size']} | {x['peaks']} | {x['peaks_per_s']} | "
                         f"{x['tokens_per_s']:.0f} | {x['model_tflops']} | {'' if frac is None else f'{frac:.1%}'} | {cos_s} |")  # fmt: skip
    for s in res.get("skipped", []):
        lines.append(f"\nSkipped: {s}")
    if res["device_name"] == "CPU":
        lines.append(
            "\nGPU run pending (no GPU was lent to this session). On a GPU machine run:\n"
            "`python benchmarks/embed_throughput.py --device cuda` (v2-50m, v2-500m, v1-2.5b; 16,384 peaks "
            "in bf16, 2,048 in fp32, cosine on 512); it writes benchmarks/results/embed_throughput_gpu.{md,json}."
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--peaks", type=int, default=None, help="timed peaks per config (default 16384 GPU, 32 CPU)")
    ap.add_argument("--width", type=int, default=1002)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--dtypes", default=None, help="default: bfloat16,float32")
    ap.add_argument(
        "--cos-peaks", type=int, default=None, help="peaks for the bf16-vs-fp32 cosine (default 512 GPU, 16 CPU)"
    )
    ap.add_argument(
        "--fp32-peaks", type=int, default=None, help="timed peaks for float32 (default 2048 GPU: fp32 is ~10x slower)"
    )
    ap.add_argument("--skip", action="append", default=[], help="note on something not run (goes into the report)")
    ap.add_argument("--out", default=None, help="output prefix (default benchmarks/results/embed_throughput_<cpu|gpu>)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    gpu = a.device.startswith("cuda")
    if gpu and not torch.cuda.is_available():
        sys.exit("no CUDA GPU visible; use --device cpu")
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 reference stays fp32
    n = a.peaks or (16384 if gpu else 32)
    cos_peaks = a.cos_peaks if a.cos_peaks is not None else (512 if gpu else 16)
    dtypes = (a.dtypes or "bfloat16,float32").split(",")
    res = {"command": " ".join(shlex.quote(x) for x in [sys.executable.split("/")[-1], *sys.argv]),
           "device_name": torch.cuda.get_device_name(0) if gpu else "CPU", "machine": machine_info(),
           "dtypes": dtypes, "results": [], "skipped": a.skip}  # fmt: skip
    for name in a.configs.split(","):
        fp32_peaks = a.fp32_peaks or (2048 if gpu else None)
        res["results"].append(bench(name, a.device, n, a.width, a.batch_size, dtypes, cos_peaks, a.seed, fp32_peaks))
        if gpu:
            torch.cuda.empty_cache()
    res["machine"]["load_average_end"] = os.getloadavg()
    prefix = a.out or os.path.join(os.path.dirname(__file__), "results", f"embed_throughput_{'gpu' if gpu else 'cpu'}")
    with open(prefix + ".json", "w") as f:
        json.dump(res, f, indent=2)
    md = to_markdown(res)
    with open(prefix + ".md", "w") as f:
        f.write(md)
    print(md)


if __name__ == "__main__":
    main()
