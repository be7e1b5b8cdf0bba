"""Synthetic scATAC data with real signal and a real batch effect (tests, demos, benchmarks).

What is simulated, and why each part is there:

* A random genome (GC ~0.41) with K cell-type motifs (random 8-12-mers). Each peak is either
  constitutive (open in every type; carries a shared "constitutive" motif) or specific to one
  type or a small set of types, and a specific peak carries several copies of its types' motifs.
  So a peak's sequence predicts which cells open it: k-mer and NT embeddings have something to learn.
* Cells of each type sample accessible peaks from that type's peak weights. Sampling is O(nnz):
  for a chunk of cells of one type we draw peak indices by cumulative-sum ``searchsorted`` and let
  repeated draws add up to counts (so binarization is exercised). No dense cells x peaks matrix.
* The query differs from the reference the way two real runs do: other sequencing depth, more
  background noise (uniform random peaks), a per-peak multiplicative batch perturbation, other
  type proportions (optionally types absent from the reference), and a partly different peak set:
  query peaks are jittered copies of reference peaks (midpoints moved less than a quarter of the
  overlap width, so they still map), some reference peaks are missing from the query, some
  query peaks have no reference counterpart, and a few reference peaks are split into two query
  peaks (prepare must OR them).
* Cell barcodes collide between the two files on purpose (10x runs reuse the barcode whitelist).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import click
import numpy as np
import pandas as pd
import scipy.sparse as sp

from seqalignatac import keys
from seqalignatac.io.atomic import atomic_path, write_h5ad, write_text
from seqalignatac.io.peaks import peak_ids
from seqalignatac.params import SEED, check_all, float_range, int_range

log = logging.getLogger(__name__)

_BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
# A/T 0.295 each, C/G 0.205 each -> GC 0.41 (human genome average).
_BASE_CUM = np.cumsum([0.295, 0.205, 0.205, 0.295])
SLOT = 1600  # bp reserved per peak: 1,002-bp windows (and jittered query copies) never collide
MOTIF_COPIES = (3, 6)


def _random_seq(rng: np.random.Generator, n: int) -> np.ndarray:
    return _BASES[np.searchsorted(_BASE_CUM, rng.random(n) * _BASE_CUM[-1])]


def _revcomp(seq: np.ndarray) -> np.ndarray:
    comp = np.zeros(256, dtype=np.uint8)
    comp[list(b"ACGT")] = list(b"TGCA")
    return comp[seq[::-1]]


def _write_fasta(path: Path, chroms: dict[str, np.ndarray], line: int = 60) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        for name, seq in chroms.items():
            fh.write(f">{name}\n".encode())
            n_full = len(seq) // line
            body = np.empty((n_full, line + 1), dtype=np.uint8)
            body[:, :line] = seq[: n_full * line].reshape(n_full, line)
            body[:, line] = ord("\n")
            fh.write(body.tobytes())
            if len(seq) % line:
                fh.write(seq[n_full * line :].tobytes() + b"\n")


def _proportions(rng: np.random.Generator, k: int, alpha: float, present: np.ndarray) -> np.ndarray:
    p = rng.dirichlet(np.full(k, alpha))
    p = np.maximum(p, 0.03) * present  # every present type gets at least ~3 % of cells
    return p / p.sum()


def _draw_cells(
    rng: np.random.Generator,
    types: np.ndarray,
    cum_weights: np.ndarray,
    depth_mean: float,
    depth_sigma: float,
    noise: float,
    column_of: np.ndarray,
    split_column: np.ndarray,
    n_columns: int,
    chunk: int,
    dtype,
) -> sp.csr_matrix:
    """Counts matrix (cells x n_columns), drawn sparsely chunk by chunk.

    ``column_of[p]`` is the output column of true peak p (-1: this dataset lacks it);
    ``split_column[p]`` >= 0 sends half of p's reads to a second column (a split peak).
    """
    n_true = cum_weights.shape[1]
    parts = []
    for lo in range(0, len(types), chunk):
        t_chunk = types[lo : lo + chunk]
        n = len(t_chunk)
        # Lognormal depth: mean depth_mean draws per cell, at least 5.
        k = np.maximum(5, rng.lognormal(np.log(depth_mean) - depth_sigma**2 / 2, depth_sigma, n)).astype(np.int64)
        k_noise = rng.binomial(k, noise)
        k_signal = k - k_noise
        rows, cols = [], []
        for t in np.unique(t_chunk):
            cells = np.flatnonzero(t_chunk == t)
            total = int(k_signal[cells].sum())
            cw = cum_weights[t]
            cols.append(np.searchsorted(cw, rng.random(total) * cw[-1], side="right").astype(np.int64))
            rows.append(np.repeat(cells, k_signal[cells]))
        rows.append(np.repeat(np.arange(n), k_noise))
        cols.append(rng.integers(0, n_true, int(k_noise.sum())))
        r = np.concatenate(rows)
        c = np.concatenate(cols)
        c = np.minimum(c, n_true - 1)
        out_c = column_of[c]
        split = split_column[c] >= 0
        if split.any():
            flip = split & (rng.random(len(c)) < 0.5)
            out_c[flip] = split_column[c[flip]]
        keep = out_c >= 0
        m = sp.coo_matrix(
            (np.ones(int(keep.sum()), dtype=dtype), (r[keep], out_c[keep])), shape=(n, n_columns)
        ).tocsr()  # duplicates sum: repeated draws become counts > 1
        m.sum_duplicates()
        parts.append(m)
    return sp.vstack(parts, format="csr") if len(parts) > 1 else parts[0]


def _check_options(
    n_cells, n_peaks, n_cell_types, seed, novel_query_types, mean_peaks_per_cell, reference_fraction, edge_peaks
) -> None:
    """SIMULATE_RANGES, each value named by its CLI option in messages; then the smallest sensible sizes."""
    check_all(
        dict(
            n_cells=n_cells,
            n_peaks=n_peaks,
            n_cell_types=n_cell_types,
            seed=seed,
            novel_query_types=novel_query_types,
            mean_peaks_per_cell=mean_peaks_per_cell,
            reference_fraction=reference_fraction,
            edge_peaks=edge_peaks,
        ),
        SIMULATE_RANGES,
        option_name=lambda key: SIMULATE_OPTIONS.get(key, "--" + key.replace("_", "-")),
    )
    if n_cells < 4 or n_peaks < 10 or n_cell_types < 1:
        raise click.BadParameter("need at least 4 cells, 10 peaks and 1 cell type")


@dataclass
class _Peaks:
    """The true peaks on the chromosomes, one SLOT each, and the chromosomes' names and lengths."""

    chrom_of: np.ndarray  # chromosome index per peak
    start: np.ndarray
    end: np.ndarray
    mid: np.ndarray  # midpoint in the slot (edge peaks keep theirs: query copies jitter around it)
    length: np.ndarray
    chrom_len: np.ndarray
    chrom_names: np.ndarray


def _lay_out_peaks(rng: np.random.Generator, n_peaks: int, n_chromosomes: int | None, edge_peaks: int) -> _Peaks:
    """One SLOT per peak, chromosome by chromosome, midpoint jittered inside the slot."""
    n_chrom = n_chromosomes or int(np.clip(n_peaks // 2000 + 2, 2, 22))
    chrom_of = np.sort(rng.integers(0, n_chrom, n_peaks))
    chrom_of[:n_chrom] = np.arange(n_chrom)  # every chromosome holds at least one peak
    chrom_of.sort()
    slot = np.zeros(n_peaks, dtype=np.int64)
    counts_per_chrom = np.bincount(chrom_of, minlength=n_chrom)
    for c in range(n_chrom):
        slot[chrom_of == c] = np.arange(counts_per_chrom[c])
    chrom_len = counts_per_chrom.astype(np.int64) * SLOT
    length = rng.integers(200, 801, n_peaks)
    mid = slot * SLOT + SLOT // 2 + rng.integers(-150, 151, n_peaks)
    start = mid - length // 2
    end = start + length
    if edge_peaks:
        _move_to_chromosome_ends(edge_peaks, chrom_of, chrom_len, length, start, end)
    chrom_names = np.array([f"chr{i + 1}" for i in range(n_chrom)])
    return _Peaks(chrom_of, start, end, mid, length, chrom_len, chrom_names)


def _move_to_chromosome_ends(edge_peaks, chrom_of, chrom_len, length, start, end) -> None:
    """Move ``edge_peaks`` peaks, in turn a chromosome's first and last, 20 bp from its ends (in place)."""
    n_peaks = len(chrom_of)
    first = np.flatnonzero(np.r_[True, chrom_of[1:] != chrom_of[:-1]])
    last = np.r_[first[1:] - 1, n_peaks - 1]
    ends = np.concatenate([np.column_stack([first, last]).ravel()])[:edge_peaks]
    for j, p in enumerate(ends):
        if j % 2 == 0:  # first peak of a chromosome: start near 0
            start[p] = 20
            end[p] = 20 + length[p]
        else:  # last peak: end near the chromosome end
            end[p] = chrom_len[chrom_of[p]] - 20
            start[p] = end[p] - length[p]


def _peak_types(
    rng: np.random.Generator, n_peaks: int, k_total: int, constitutive_fraction: float, specificity: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which types open which peak: (kind per peak, types x peaks membership, types x peaks weights)."""
    kind = np.where(rng.random(n_peaks) < constitutive_fraction, "constitutive", "specific")
    member = np.zeros((k_total, n_peaks), dtype=bool)
    spec = np.flatnonzero(kind == "specific")
    main_type = rng.integers(0, k_total, len(spec))
    member[main_type, spec] = True
    # 25 % of specific peaks are shared with a second type (lineage-like sharing)
    second = rng.random(len(spec)) < 0.25
    member[rng.integers(0, k_total, int(second.sum())), spec[second]] = True
    member[:, kind == "constitutive"] = True
    strength = rng.lognormal(0.0, 0.5, n_peaks)
    low = 1.0 / specificity
    weights = np.where(member, 1.0, low) * strength[None, :]
    weights[:, kind == "specific"] *= 2.0  # specific peaks are strong where open
    return kind, member, weights


def _planted_genome(
    rng: np.random.Generator, peaks: _Peaks, kind: np.ndarray, member: np.ndarray, motifs: list[np.ndarray]
) -> dict[str, np.ndarray]:
    """Random chromosomes; each peak carries several copies (either strand) of its types' motifs."""
    k_total = len(motifs) - 1  # the last motif is the constitutive one
    chroms = {name: _random_seq(rng, int(peaks.chrom_len[c])) for c, name in enumerate(peaks.chrom_names)}
    for p in range(len(kind)):
        seq = chroms[peaks.chrom_names[peaks.chrom_of[p]]]
        plant = [k_total] if kind[p] == "constitutive" else list(np.flatnonzero(member[:, p]))
        for t in plant:
            for _ in range(int(rng.integers(*MOTIF_COPIES))):
                m = motifs[t] if rng.random() < 0.5 else _revcomp(motifs[t])
                pos = int(rng.integers(peaks.start[p], peaks.end[p] - len(m)))
                seq[pos : pos + len(m)] = m
    return chroms


def _peak_sets(
    rng: np.random.Generator, n_peaks: int, query_only: float, reference_missing: float, split_fraction: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which true peaks each file lists, and which the query splits in two: (in_ref, in_query, split)."""
    only_q = rng.random(n_peaks) < query_only
    ref_missing = (rng.random(n_peaks) < reference_missing) & ~only_q
    in_ref = ~only_q
    in_query = ~ref_missing
    split = (rng.random(n_peaks) < split_fraction) & in_ref & in_query
    return in_ref, in_query, split


@dataclass
class _QueryPeaks:
    """The query file's peaks, in its own order, and the query column each true peak's reads land in."""

    chrom: np.ndarray  # chromosome index per query peak
    start: np.ndarray
    end: np.ndarray
    true: np.ndarray  # the true peak each query peak copies
    column: np.ndarray  # per true peak: its query column (-1: the query lacks it)
    split_column: np.ndarray  # per true peak: the second half's column (-1: not split)


def _query_peaks(
    rng: np.random.Generator, peaks: _Peaks, in_query: np.ndarray, split: np.ndarray, query_jitter: float
) -> _QueryPeaks:
    """Jittered copies (midpoint moved by <= query_jitter * length, width x 0.8-1.25), in a shuffled order."""
    n_peaks = len(peaks.start)
    shift = (rng.uniform(-query_jitter, query_jitter, n_peaks) * peaks.length).astype(np.int64)
    q_len = np.clip((peaks.length * rng.uniform(0.8, 1.25, n_peaks)).astype(np.int64), 150, 1000)
    q_mid = peaks.mid + shift
    chroms, starts, ends, trues = [], [], [], []
    for p in np.flatnonzero(in_query):
        if split[p]:  # two halves, midpoints 60 bp either side
            for off in (-60, 60):
                s0 = q_mid[p] + off - q_len[p] // 4
                chroms.append(peaks.chrom_of[p])
                starts.append(s0)
                ends.append(s0 + q_len[p] // 2)
                trues.append(p)
        else:
            s0 = max(1, q_mid[p] - q_len[p] // 2)
            chroms.append(peaks.chrom_of[p])
            starts.append(s0)
            ends.append(s0 + q_len[p])
            trues.append(p)
    q_chrom = np.array(chroms)
    q_start = np.array(starts, dtype=np.int64)
    q_end = np.minimum(np.array(ends, dtype=np.int64), peaks.chrom_len[q_chrom])
    q_true = np.array(trues)
    order = rng.permutation(len(q_true))  # a real second file lists peaks in its own order
    q_column = np.full(n_peaks, -1, dtype=np.int64)
    q_split_column = np.full(n_peaks, -1, dtype=np.int64)
    for col, p in enumerate(q_true[order]):
        if q_column[p] < 0:
            q_column[p] = col
        else:
            q_split_column[p] = col
    return _QueryPeaks(q_chrom[order], q_start[order], q_end[order], q_true[order], q_column, q_split_column)


def _cell_types(
    rng: np.random.Generator, n_ref: int, n_query: int, n_cell_types: int, novel_query_types: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's type; the query has other proportions and the novel types the reference lacks."""
    k_total = n_cell_types + novel_query_types
    present_ref = np.r_[np.ones(n_cell_types), np.zeros(novel_query_types)]
    ref_prop = _proportions(rng, k_total, 3.0, present_ref)
    q_prop = _proportions(rng, k_total, 1.5, np.ones(k_total))
    ref_types = rng.choice(k_total, n_ref, p=ref_prop)
    q_types = rng.choice(k_total, n_query, p=q_prop)
    return ref_types, q_types


def _draw_reference(rng, types, weights, ref_idx, depth, noise, chunk) -> sp.csr_matrix:
    """The reference's counts (float32): columns are the reference's peaks, no split peaks."""
    n_peaks = weights.shape[1]
    column = np.full(n_peaks, -1, dtype=np.int64)
    column[ref_idx] = np.arange(len(ref_idx))
    no_split = np.full(n_peaks, -1, dtype=np.int64)
    cum = np.cumsum(weights, axis=1)
    return _draw_cells(rng, types, cum, depth, 0.4, noise, column, no_split, len(ref_idx), chunk, np.float32)


def _draw_query(rng, types, weights, batch, qp: _QueryPeaks, depth, noise, chunk) -> sp.csr_matrix:
    """The query's counts (int32): batch-reweighted peaks, a wider depth spread, reads on its own (split) peaks."""
    cum = np.cumsum(weights * batch[None, :], axis=1)
    return _draw_cells(rng, types, cum, depth, 0.6, noise, qp.column, qp.split_column, len(qp.true), chunk, np.int32)


def _anndata(x, types, type_names, categories, batch_name, chrom_names, chrom_idx, s, e):
    """One file: cells (type, batch, total counts) x peaks (coordinates)."""
    import anndata as ad

    obs = pd.DataFrame(
        {
            keys.DEFAULT_LABELS_KEY: pd.Categorical(type_names[types], categories=categories),
            "batch": batch_name,
            "n_counts": np.asarray(x.sum(axis=1)).ravel().astype(np.float32),
        },
        index=[f"cell{i:07d}-1" for i in range(x.shape[0])],  # same barcodes in both files
    )
    var = pd.DataFrame(
        {"chrom": chrom_names[chrom_idx], "start": s, "end": e}, index=peak_ids(chrom_names[chrom_idx], s, e)
    )
    return ad.AnnData(X=x, obs=obs, var=var)


def _write_matrices(
    outdir: Path, peaks: _Peaks, ref_idx, qp: _QueryPeaks, x_ref, ref_types, x_q, q_types, type_names, n_cell_types
) -> tuple[Path, Path]:
    """reference.h5ad and query.h5ad (gzip-compressed unless very large)."""
    # the reference's categories list only its own types (novel query types are unknown to it)
    ref_chrom, ref_start, ref_end = peaks.chrom_of[ref_idx], peaks.start[ref_idx], peaks.end[ref_idx]
    names = peaks.chrom_names
    ref = _anndata(
        x_ref, ref_types, type_names, type_names[:n_cell_types], "reference", names, ref_chrom, ref_start, ref_end
    )
    qry = _anndata(x_q, q_types, type_names, type_names, "query", names, qp.chrom, qp.start, qp.end)
    comp = "gzip" if x_ref.nnz + x_q.nnz < 50_000_000 else None
    ref_path, q_path = outdir / "reference.h5ad", outdir / "query.h5ad"
    write_h5ad(ref, ref_path, compression=comp)
    write_h5ad(qry, q_path, compression=comp)
    return ref_path, q_path


def _write_truth(path: Path, peaks: _Peaks, kind, member, in_ref, in_query, split, batch) -> None:
    """peaks_truth.tsv: every true peak, its kind and types, which file lists it, its query batch factor."""
    chrom = peaks.chrom_names[peaks.chrom_of]
    types_of_peak = [
        ",".join(str(t) for t in np.flatnonzero(member[:, p])) if kind[p] == "specific" else "all"
        for p in range(len(kind))
    ]
    truth = pd.DataFrame(
        {
            "peak_id": peak_ids(chrom, peaks.start, peaks.end),
            "chrom": chrom,
            "start": peaks.start,
            "end": peaks.end,
            "kind": kind,
            "types": types_of_peak,
            "in_reference": in_ref,
            "in_query": in_query,
            "split_in_query": split,
            "query_batch_factor": np.round(batch, 4),
        }
    )
    write_text(path, truth.to_csv(sep="\t", index=False))


def _motif_text(motifs: list[np.ndarray], type_names: np.ndarray) -> dict[str, str]:
    """Each type's motif (and the constitutive one, last) as text, for simulation.json."""
    k_total = len(motifs) - 1
    return {
        ("constitutive" if t == k_total else str(type_names[t])): m.tobytes().decode() for t, m in enumerate(motifs)
    }


def simulate(
    outdir: str | os.PathLike,
    n_cells: int = 2000,
    n_peaks: int = 5000,
    n_cell_types: int = 5,
    seed: int = 0,
    *,
    reference_fraction: float = 0.6,
    mean_peaks_per_cell: float | None = None,
    constitutive_fraction: float = 0.3,
    specificity: float = 8.0,
    reference_noise: float = 0.05,
    query_noise: float = 0.2,
    query_depth_factor: float = 0.6,
    batch_sigma: float = 0.5,
    query_jitter: float = 0.15,
    reference_missing_fraction: float = 0.08,
    query_only_fraction: float = 0.05,
    split_fraction: float = 0.03,
    novel_query_types: int = 0,
    n_chromosomes: int | None = None,
    edge_peaks: int = 0,
    genome: bool = True,
    chunk_cells: int = 20000,
) -> dict:
    """Write ``genome.fa``, ``reference.h5ad``, ``query.h5ad`` (+ ``peaks_truth.tsv``) to ``outdir``.

    ``n_cells`` is the total over both files (``reference_fraction`` of them in the reference).
    ``mean_peaks_per_cell`` defaults to 10 % of the peaks, capped at 1,000.
    ``novel_query_types`` adds cell types present only in the query (for the Unknown flag).
    ``edge_peaks`` moves that many peaks within 200 bp of a chromosome end, so a 1,002-bp window
    clips (by default none clips at 1,002 bp; wider windows clip the first/last peak).
    ``genome=False`` skips the FASTA (million-cell benchmarks need only the matrices).

    Returns a dict of paths: fasta (None without genome), reference, query, truth, plus
    labels_key='cell_type', batch_key='batch', and the counts per file.
    """
    _check_options(
        n_cells, n_peaks, n_cell_types, seed, novel_query_types, mean_peaks_per_cell, reference_fraction, edge_peaks
    )
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)  # every draw below comes from it, in this order
    k_total = n_cell_types + novel_query_types

    # The true peaks, which types open them, and a genome whose peaks carry those types' motifs.
    peaks = _lay_out_peaks(rng, n_peaks, n_chromosomes, edge_peaks)
    kind, member, weights = _peak_types(rng, n_peaks, k_total, constitutive_fraction, specificity)
    motifs = [_random_seq(rng, int(rng.integers(8, 13))) for _ in range(k_total + 1)]  # last: constitutive
    fasta_path = outdir / "genome.fa" if genome else None
    if fasta_path is not None:
        _write_fasta(fasta_path, _planted_genome(rng, peaks, kind, member, motifs))

    # Each file's peak set, then its cells; the query differs the way a second run does.
    in_ref, in_query, split = _peak_sets(rng, n_peaks, query_only_fraction, reference_missing_fraction, split_fraction)
    ref_idx = np.flatnonzero(in_ref)
    qp = _query_peaks(rng, peaks, in_query, split, query_jitter)
    n_ref = max(2, int(round(n_cells * reference_fraction)))
    n_query = max(2, n_cells - n_ref)
    ref_types, q_types = _cell_types(rng, n_ref, n_query, n_cell_types, novel_query_types)
    depth = mean_peaks_per_cell or min(1000.0, 0.1 * n_peaks)
    batch = rng.lognormal(-(batch_sigma**2) / 2, batch_sigma, n_peaks)  # per-peak query perturbation
    x_ref = _draw_reference(rng, ref_types, weights, ref_idx, depth, reference_noise, chunk_cells)
    x_q = _draw_query(rng, q_types, weights, batch, qp, depth * query_depth_factor, query_noise, chunk_cells)

    type_names = np.array([f"type_{t}" for t in range(n_cell_types)] + [f"novel_{t}" for t in range(novel_query_types)])
    ref_path, q_path = _write_matrices(
        outdir, peaks, ref_idx, qp, x_ref, ref_types, x_q, q_types, type_names, n_cell_types
    )
    truth_path = outdir / "peaks_truth.tsv"
    _write_truth(truth_path, peaks, kind, member, in_ref, in_query, split, batch)
    params = {
        "n_cells": n_cells,
        "n_peaks": n_peaks,
        "n_cell_types": n_cell_types,
        "seed": seed,
        "novel_query_types": novel_query_types,
        "mean_peaks_per_cell": depth,
        "motifs": _motif_text(motifs, type_names),
        "reference_cells": n_ref,
        "query_cells": n_query,
        "reference_peaks": int(len(ref_idx)),
        "query_peaks": int(len(qp.true)),
        "reference_nnz": int(x_ref.nnz),
        "query_nnz": int(x_q.nnz),
    }
    write_text(outdir / "simulation.json", json.dumps(params, indent=2) + "\n")
    log.info("simulated %d reference + %d query cells, %d/%d peaks", n_ref, n_query, len(ref_idx), len(qp.true))
    return {
        "outdir": str(outdir),
        "fasta": None if fasta_path is None else str(fasta_path),
        "reference": str(ref_path),
        "query": str(q_path),
        "truth": str(truth_path),
        "params": str(outdir / "simulation.json"),
        keys.LABELS_KEY: keys.DEFAULT_LABELS_KEY,
        "batch_key": "batch",
        "n_reference": n_ref,
        "n_query": n_query,
    }


# Option ranges, shared by the CLI and the API.
SIMULATE_RANGES: dict[str, click.ParamType] = {
    "n_cells": int_range(4),
    "n_peaks": int_range(10),
    "n_cell_types": int_range(1),
    "seed": SEED,
    "novel_query_types": int_range(0),
    "mean_peaks_per_cell": float_range(1),
    "reference_fraction": float_range(0.05, 0.95),
    "edge_peaks": int_range(0),
}
SIMULATE_OPTIONS = {
    "n_cells": "--cells",
    "n_peaks": "--peaks",
    "n_cell_types": "--cell-types",
    "mean_peaks_per_cell": "--peaks-per-cell",
}
