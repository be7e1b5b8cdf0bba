"""``embed``: FASTA -> one pooled vector per peak, cached, sharded, resumable."""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from seqalignatac.device import resolve_device
from seqalignatac.embed.cache import EmbeddingCache, default_cache_root, sequence_keys
from seqalignatac.embed.fasta_io import read_fasta
from seqalignatac.embed.hub import ModelSpec, resolve_model
from seqalignatac.errors import InputError
from seqalignatac.io.atomic import note_kept
from seqalignatac.io.embedding_store import ids_digest, write_embeddings
from seqalignatac.params import DEVICE, POSITIVE_INT, THREADS, check_all
from seqalignatac.progress import progress_enabled

log = logging.getLogger(__name__)

POOLING_NT = "mean of the last hidden state over non-padding tokens, <cls> included"
POOLING_KMER = "L2-normalized reverse-complement-collapsed k-mer counts"
RECIPE_VERSION = "nt-meanpool-v1"  # bump when the pooled vector changes meaning
DTYPES = ("auto", "float32", "bfloat16", "float16")


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` (1-based) -> (I, N)."""
    if text is None:
        return None
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise InputError(f"--shard {text!r}: expected I/N, e.g. 1/4 (shards are numbered from 1)") from None
    if not (n >= 1 and 1 <= i <= n):
        raise InputError(f"--shard {text!r}: need 1 <= I <= N (shards are numbered from 1)")
    return i, n


def shard_slice(n_items: int, shard: tuple[int, int] | None) -> slice:
    """Contiguous block ``I`` of ``N``: merging the shards in order restores the FASTA order."""
    if shard is None:
        return slice(0, n_items)
    i, n = shard
    return slice((i - 1) * n_items // n, i * n_items // n)


def resolve_dtype(dtype: str, device: str):
    import torch

    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
    if dtype == "auto":
        # bf16 on GPUs (tensor cores, ~1e-3 relative error); fp32 on CPU (bf16 is slow there)
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


@dataclass
class EmbedResult:
    n_peaks: int
    n_unique: int
    n_cached: int
    n_computed: int
    dim: int
    seconds: float
    model: str
    fingerprint: str
    batch_size: int | None = None


class NTEmbedder:
    """Loaded NT + tokenizer; ``pool(token_ids, counts)`` -> float32 pooled vectors."""

    def __init__(self, model, tokenizer, device: str, dtype) -> None:
        import torch

        self.torch = torch
        self.model, self.tokenizer = model, tokenizer
        self.device, self.dtype = device, dtype
        self.dim = int(model.config.hidden_size)
        self.cuda = str(device).startswith("cuda")

    @classmethod
    def load(cls, model_dir: str, device: str, dtype) -> NTEmbedder:
        from seqalignatac.embed.nt_model import load_nt
        from seqalignatac.embed.tokenizer import NTTokenizer

        model = load_nt(model_dir, dtype=dtype, device=device)
        tok = NTTokenizer.from_dir(model_dir, default_max_length=model.config.max_position_embeddings - 2)
        return cls(model, tok, device, dtype)

    def check_lengths(self, counts: np.ndarray, seqs: Sequence[str], ids: Sequence[str], path: str) -> None:
        cap = self.tokenizer.model_max_length
        over = np.flatnonzero(counts > cap)
        if over.size:
            i = int(over[0])
            n_other = len(seqs[i]) - sum(seqs[i].count(b) for b in "ACGT")
            why = f"; N and other non-ACGT letters are one token each, this peak has {n_other}" if n_other else ""
            raise InputError(
                f"{over.size} peaks are longer than the model's context, e.g. {ids[i]} ({len(seqs[i])} bp = "
                f"{int(counts[i])} tokens{why}); this model takes at most {cap} tokens, i.e. "
                f"{(cap - 1) * 6} bp without N; extract narrower peaks (extract --width) or drop them",
                path,
            )

    def pool(self, tokens: np.ndarray, counts: np.ndarray):
        """Forward one batch; returns a float32 tensor (B, H) on the device (not yet synced)."""
        torch = self.torch
        x = torch.from_numpy(tokens)
        if self.cuda:
            x = x.pin_memory()
        x = x.to(self.device, non_blocking=True).long()
        T = tokens.shape[1]
        full = bool((counts == T).all())
        with torch.inference_mode():
            if full:
                # no padding: no mask at all, so SDPA may take its flash kernel
                h = self.model(input_ids=x).last_hidden_state
                return h.sum(1, dtype=torch.float32) / T
            c = torch.from_numpy(counts).to(self.device)
            mask = torch.arange(T, device=self.device)[None, :] < c[:, None]
            h = self.model(input_ids=x, attention_mask=mask.long()).last_hidden_state
            return (h * mask[..., None].to(h.dtype)).sum(1, dtype=torch.float32) / c[:, None].float()


def default_batch_size(device: str, hidden: int, tokens: int) -> int:
    if not device.startswith("cuda"):
        return 16
    # ~ constant activation memory per batch; halves on OOM anyway
    b = int(2**20 * 128 / max(1, tokens * hidden))
    return int(2 ** np.clip(np.floor(np.log2(max(b, 1))), 0, 12))


def embed_fasta(
    fasta: str,
    model: str,
    out: str,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int | None = None,
    shard: str | None = None,
    cache_dir: str | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    _on_batch: Callable[[int], None] | None = None,
) -> EmbedResult:
    """Embed every record of ``fasta`` (or one shard) and write the store ``out`` atomically."""
    t0 = time.perf_counter()
    sh = parse_shard(shard)
    check_all(
        dict(batch_size=batch_size, threads=threads, device=device),
        dict(batch_size=POSITIVE_INT, threads=THREADS, device=DEVICE),
    )
    spec = resolve_model(model)
    ids_all, seqs_all = read_fasta(fasta)
    sl = shard_slice(len(ids_all), sh)
    ids, seqs = ids_all[sl], seqs_all[sl]
    attrs: dict[str, object] = {"model": spec.name, "n_total": len(ids_all), "source": os.path.basename(fasta)}
    if sh is not None:
        attrs["shard"] = f"{sh[0]}/{sh[1]}"
        attrs["source_ids_sha256"] = ids_digest(ids_all)
    if threads:
        import torch

        torch.set_num_threads(int(threads))
    if spec.kind == "kmer":
        res = _embed_kmer(spec, ids, seqs, out, attrs, t0)
    else:
        res = _embed_nt(
            spec, ids, seqs, out, attrs, fasta, device, dtype, batch_size, cache_dir, progress, _on_batch, t0
        )
    log.info("embedded %d peaks (%d unique, %d from cache) with %s in %.1f s -> %s",
             res.n_peaks, res.n_unique, res.n_cached, res.model, res.seconds, out)  # fmt: skip
    return res


def _embed_kmer(
    spec: ModelSpec, ids: Sequence[str], seqs: Sequence[str], out: str, attrs: dict[str, object], t0: float
) -> EmbedResult:
    from seqalignatac.embed.kmer import kmer_embed

    emb = kmer_embed(seqs, k=spec.k) if seqs else np.zeros((0, _kmer_dim(spec.k)), dtype=np.float32)
    fp = f"kmer-k{spec.k}-canonical-l2-v1"
    attrs.update(model_fingerprint=fp, pooling=POOLING_KMER)
    write_embeddings(out, ids, emb, attrs)
    return EmbedResult(len(ids), len(set(seqs)), 0, len(ids), emb.shape[1], time.perf_counter() - t0, spec.name, fp)


def _kmer_dim(k: int) -> int:
    from seqalignatac.embed.kmer import kmer_dim

    return kmer_dim(k)


def _embed_nt(
    spec: ModelSpec,
    ids: Sequence[str],
    seqs: Sequence[str],
    out: str,
    attrs: dict[str, object],
    fasta: str,
    device: str,
    dtype: str,
    batch_size: int | None,
    cache_dir: str | None,
    progress: bool | None,
    on_batch: Callable[[int], None] | None,
    t0: float,
) -> EmbedResult:
    import torch
    from tqdm.auto import tqdm

    from seqalignatac.embed.nt_model import fingerprint_files

    assert spec.path is not None, "resolve_model gives every NT spec a folder"
    dev = str(resolve_device(device))
    tdtype = resolve_dtype(dtype, dev)
    root = default_cache_root() if cache_dir is None else cache_dir
    emb = NTEmbedder.load(spec.path, dev, tdtype)
    dtype_name = str(tdtype).removeprefix("torch.")
    fp = hashlib.sha256(f"{fingerprint_files(spec.path, root)}|{dtype_name}|{RECIPE_VERSION}".encode()).hexdigest()
    attrs.update(model_fingerprint=fp, pooling=POOLING_NT, dtype=dtype_name)
    cache = EmbeddingCache(root, fp, emb.dim, spec.name)

    # One vector per distinct sequence: duplicates and cache hits are never recomputed.
    keys = sequence_keys(seqs)
    first: dict[bytes, int] = {}
    row_of = np.empty(len(keys), dtype=np.int64)
    for i, k in enumerate(keys):
        row_of[i] = first.setdefault(k, len(first))
    ukeys = list(first)
    useqs = [seqs[i] for i in first.values()]
    uids = [ids[i] for i in first.values()]
    vec = np.empty((len(ukeys), emb.dim), dtype=np.float32)
    hit = np.fromiter((k in cache for k in ukeys), dtype=bool, count=len(ukeys))
    if hit.any():
        vec[hit] = cache.get([ukeys[i] for i in np.flatnonzero(hit)])
    todo = np.flatnonzero(~hit)

    tokens, counts = emb.tokenizer.encode_many([useqs[i] for i in todo])
    emb.check_lengths(counts, [useqs[i] for i in todo], [uids[i] for i in todo], fasta)
    order = np.argsort(counts, kind="stable")  # equal token counts side by side: no padding
    bs = batch_size or default_batch_size(dev, emb.dim, int(counts.max(initial=1)))
    bar = tqdm(total=len(todo), unit=" peaks", desc="embed", disable=not progress_enabled(progress) or len(todo) == 0,
               smoothing=0.1, dynamic_ncols=True)  # fmt: skip
    pending = None  # (positions, device tensor): lag by one batch so the GPU never waits on us
    start, n_batches = 0, 0
    try:
        while start < len(order):
            # sorted by token count: equal-width peaks give unpadded fixed-shape batches,
            # mixed widths pad only up to the longest neighbour
            pos = order[start : start + bs]
            T = int(counts[pos].max())
            try:
                result = emb.pool(np.ascontiguousarray(tokens[pos, :T]), counts[pos])
            except torch.cuda.OutOfMemoryError:
                if bs == 1:
                    raise InputError(
                        f"CUDA out of memory even with batch size 1 at {T} tokens; use a GPU with more memory"
                    ) from None
                bs = max(1, bs // 2)
                log.warning("CUDA out of memory: batch size halved to %d", bs)
                if dev.startswith("cuda"):
                    torch.cuda.empty_cache()
                continue
            if pending is not None:
                done, pending = pending, None  # a batch is handed to the cache once, even if that fails
                _finish(done, todo, ukeys, vec, cache, bar)
            pending = (pos, result)
            start += len(pos)
            n_batches += 1
            if on_batch is not None:
                on_batch(n_batches)
        if pending is not None:
            done, pending = pending, None
            _finish(done, todo, ukeys, vec, cache, bar)
    except BaseException:
        note_kept(f"{cache.n_put} new sequence embeddings in the cache {cache.dir} (a rerun reuses them)")
        raise
    finally:
        if pending is not None:  # interrupted (Ctrl-C, error elsewhere): keep the batch already computed
            try:
                _finish(pending, todo, ukeys, vec, cache, bar)
            except Exception:  # e.g. the CUDA context itself failed; the batch is redone on resume
                pass
        bar.close()
        cache.close()
    write_embeddings(out, ids, vec[row_of], {**attrs, "batch_size": bs, "device": dev})
    return EmbedResult(len(ids), len(ukeys), int(hit.sum()), len(todo), emb.dim,
                       time.perf_counter() - t0, spec.name, fp, bs)  # fmt: skip


def _finish(pending, todo, ukeys, vec, cache: EmbeddingCache, bar) -> None:
    pos, result = pending
    rows = result.cpu().numpy()  # waits for this batch only
    which = todo[pos]
    vec[which] = rows
    cache.put([ukeys[i] for i in which], rows)
    bar.update(len(pos))
