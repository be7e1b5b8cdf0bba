"""Peak DNA sequences from a genome FASTA (plain or bgzip), upper case, fixed width or native.

Speed: each chromosome is read once (one pyfaidx read of the whole contig) and every peak on it is
sliced from memory, instead of one random faidx seek per peak; 500,000 peaks take seconds.
Peaks that fall off a chromosome end are padded with N to the fixed width and counted; peaks on
contigs missing from the FASTA are skipped and counted (method.md: never silently).
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from seqalignatac.errors import InputError, require_file
from seqalignatac.io.atomic import atomic_path, write_json
from seqalignatac.io.peaks import read_bed, reconcile_chroms

log = logging.getLogger(__name__)

DEFAULT_WIDTH = 1002  # 167 x 6: every sequence gives the same number of NT 6-mer tokens
EXAMPLES = 20  # peak ids listed per problem in the summary


def check_fasta_compression(path: str) -> str:
    """'plain' or 'bgzip'; InputError for a plain-gzip FASTA (no random access) with the fix."""
    with open(path, "rb") as fh:
        head = fh.read(18)
    if head[:2] != b"\x1f\x8b":
        return "plain"
    # BGZF: gzip member with FEXTRA (flag 4) whose first extra subfield is 'BC'.
    if len(head) >= 14 and head[3] & 4 and head[12:14] == b"BC":
        return "bgzip"
    raise InputError(
        "is gzip-compressed but not with bgzip, so it cannot be read by position; recompress it with "
        f"`gunzip -c {os.path.basename(path)} | bgzip > genome.fa.gz` (bgzip is in htslib/samtools) "
        "or decompress it with `gunzip`",
        path,
    )


def open_fasta(path: str | os.PathLike):
    """A pyfaidx.Fasta (upper case, raw strings) with clear errors."""
    import pyfaidx

    p = require_file(path, "FASTA file")
    kind = check_fasta_compression(p)
    try:
        return pyfaidx.Fasta(p, sequence_always_upper=True, as_raw=True, read_ahead=None)
    except PermissionError:
        raise InputError(
            "cannot write the FASTA index (.fai) beside it; run `samtools faidx` on it "
            "once, or copy the FASTA to a writable folder",
            p,
        ) from None
    except ImportError:
        raise InputError("reading a bgzip FASTA needs biopython (pip install biopython)", p) from None
    except Exception as exc:  # pyfaidx raises FastaIndexingError, UnsupportedCompressionFormat, ...
        hint = " (bgzip FASTA)" if kind == "bgzip" else ""
        raise InputError(
            f"not a readable FASTA{hint}: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}", p
        ) from None


def _gzi_blocks(path: str) -> np.ndarray:
    """(compressed, uncompressed) offsets of bgzip blocks from ``path.gzi``; just the start without one."""
    gzi = path + ".gzi"
    blocks = [(0, 0)]
    if os.path.exists(gzi):
        raw = np.fromfile(gzi, dtype="<u8")
        if len(raw) >= 1 and len(raw) == 1 + 2 * int(raw[0]):
            blocks += [tuple(r) for r in raw[1:].reshape(-1, 2).tolist()]
    return np.array(blocks, dtype=np.int64)


def read_contig(fa, name: str, kind: str, blocks: np.ndarray | None = None) -> bytes:
    """A whole contig as upper-case bytes, read once.

    Plain FASTA: pyfaidx (one read). bgzip: pyfaidx would go through Bio.bgzf, whose large reads
    concatenate 64 KB blocks quadratically; we seek to the block named by the .gzi index instead and
    inflate the contig's bytes in one go with the standard gzip module.
    """
    if kind == "plain":
        return fa[name][:].encode("ascii")
    import gzip

    rec = fa.faidx.index[name]
    n_full, rem = divmod(rec.rlen, rec.lenc)
    span = n_full * rec.lenb + rem
    if blocks is None:
        blocks = np.zeros((1, 2), dtype=np.int64)
    i = int(np.searchsorted(blocks[:, 1], rec.offset, side="right")) - 1
    comp, uncomp = int(blocks[i, 0]), int(blocks[i, 1])
    with open(fa.filename, "rb") as fh:
        fh.seek(comp)
        with gzip.GzipFile(fileobj=fh) as gz:
            gz.seek(rec.offset - uncomp)
            data = gz.read(span)
    return data.replace(b"\n", b"").replace(b"\r", b"")[: rec.rlen].upper()


def _windows(peaks: pd.DataFrame, width: int | str) -> tuple[np.ndarray, np.ndarray]:
    start = peaks["start"].to_numpy(np.int64)
    end = peaks["end"].to_numpy(np.int64)
    if width == "native":
        return start, end
    mid = (start + end) // 2
    s = mid - int(width) // 2
    return s, s + int(width)


def parse_width(value) -> int | str:
    if isinstance(value, str) and value.strip().lower() == "native":
        return "native"
    try:
        w = int(value)
    except (TypeError, ValueError):
        raise InputError(f"--width must be a positive integer or 'native' (got '{value}')") from None
    if w <= 0:
        raise InputError(f"--width must be a positive integer or 'native' (got {w})")
    if w % 6:
        log.warning("width %d is not a multiple of 6: NT 6-mer tokenization will leave single-base tokens", w)
    return w


def _read_peaks(peaks: str | os.PathLike | pd.DataFrame) -> tuple[pd.DataFrame, str | None, pd.Series]:
    """(peaks, their BED path or None, record names): names from the ``name`` column or chrom:start-end, unique."""
    peaks_path = None
    if not isinstance(peaks, pd.DataFrame):
        peaks_path = os.fspath(peaks)
        peaks = read_bed(peaks_path)
    if len(peaks) == 0:
        raise InputError("no peaks to extract", peaks_path)
    names = (
        peaks["name"].astype(str)
        if "name" in peaks.columns
        else (peaks["chrom"].astype(str) + ":" + peaks["start"].astype(str) + "-" + peaks["end"].astype(str))
    )
    dup = names.duplicated()
    if dup.any():
        raise InputError(
            f"{int(dup.sum())} duplicate peak names (first: '{names[dup].iloc[0]}'); names must be unique", peaks_path
        )
    return peaks, peaks_path, names


def _contig_names(chrom: np.ndarray, fa, fasta: str) -> dict:
    """Peak chromosome -> FASTA contig (e.g. '1' -> 'chr1'); InputError when the FASTA holds none of them."""
    renames = reconcile_chroms(pd.unique(chrom), fa.keys())
    if not renames:
        raise InputError(
            f"contains none of the peaks' chromosomes (peaks: {', '.join(pd.unique(chrom)[:5])}; FASTA: "
            f"{', '.join(list(fa.keys())[:5])}); is it the right genome?",
            fasta,
        )
    return renames


@dataclass
class _Tally:
    """What the write loop met: peaks skipped on absent contigs, clipped windows, N content."""

    absent: Counter[str] = field(default_factory=Counter)  # peaks per contig absent from the FASTA
    absent_examples: list[str] = field(default_factory=list)
    clipped_examples: list[str] = field(default_factory=list)
    n_clipped: int = 0
    n_all_n: int = 0
    n_written: int = 0
    n_bases: int = 0
    n_n: int = 0


def _window(seq: bytes, s: int, e: int) -> tuple[bytes, bool]:
    """Bases [s, e) of a contig and whether the window runs off an end (that part is padded with N)."""
    length = len(seq)
    if s < 0 or e > length:
        sub = b"N" * max(0, min(-s, e - s)) + seq[max(s, 0) : max(min(e, length), 0)]
        sub += b"N" * (e - s - len(sub))
        return sub, True
    return seq[s:e], False


def _contig_records(seq: bytes, idx, starts, ends, names: pd.Series, name_bytes: list[bytes], tally: _Tally):
    """(peak index, FASTA record) for each peak on one contig, in ``idx`` order; counts into ``tally``."""
    for i in idx:
        sub, clipped = _window(seq, int(starts[i]), int(ends[i]))
        if clipped:
            tally.n_clipped += 1
            if len(tally.clipped_examples) < EXAMPLES:
                tally.clipped_examples.append(names.iloc[i])
        nn = sub.count(b"N")
        tally.n_n += nn
        tally.n_bases += len(sub)
        tally.n_all_n += nn == len(sub)
        yield i, b">" + name_bytes[i] + b"\n" + sub + b"\n"


def _write_records(
    out, fa, kind: str, blocks, chrom: np.ndarray, renames: dict, names: pd.Series, starts, ends
) -> _Tally:
    """Write every record to ``out`` (atomically) in input order, reading each contig once."""
    tally = _Tally()
    name_bytes = [n.encode() for n in names]
    by_chrom = pd.Series(chrom).groupby(chrom, sort=False).indices  # chromosomes in order of first appearance
    # Sorted/grouped input (the usual BED) streams out in input order; otherwise records are buffered.
    grouped = 1 + int(np.count_nonzero(chrom[1:] != chrom[:-1])) == len(by_chrom)
    buffered: list[bytes | None] | None = None if grouped else [None] * len(chrom)
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        for c, idx in by_chrom.items():
            if c not in renames:
                tally.absent[c] += len(idx)
                tally.absent_examples += [names.iloc[i] for i in idx[: EXAMPLES - len(tally.absent_examples)]]
                continue
            seq = read_contig(fa, renames[c], kind, blocks)  # whole chromosome once, upper case
            recs = []
            for i, rec in _contig_records(seq, idx, starts, ends, names, name_bytes, tally):
                if buffered is None:
                    recs.append(rec)
                    if len(recs) == 20000:  # bounded memory: write in batches
                        fh.write(b"".join(recs))
                        recs = []
                else:
                    buffered[i] = rec
            tally.n_written += len(idx)
            if recs:
                fh.write(b"".join(recs))
            del seq
        if buffered is not None:
            fh.write(b"".join(r for r in buffered if r is not None))
    return tally


def extract_sequences(
    peaks: str | os.PathLike | pd.DataFrame,
    fasta: str | os.PathLike,
    out: str | os.PathLike,
    width: int | str = DEFAULT_WIDTH,
    summary: str | os.PathLike | None = None,
) -> dict:
    """Write one upper-case record ``>peak_id`` per peak to ``out``; return (and write) the summary.

    ``width``: an int (window centered on the peak midpoint) or ``'native'`` (the peak itself).
    Records follow the input order. The summary goes to ``summary`` (default ``<out>.summary.json``).
    """
    width = parse_width(width)
    peaks, peaks_path, names = _read_peaks(peaks)
    fa = open_fasta(fasta)
    fasta = os.fspath(fasta)
    kind = check_fasta_compression(fasta)
    blocks = _gzi_blocks(fasta) if kind == "bgzip" else None
    chrom = peaks["chrom"].astype(str).to_numpy()
    renames = _contig_names(chrom, fa, fasta)
    starts, ends = _windows(peaks, width)

    summary_path = summary or f"{os.fspath(out)}.summary.json"
    # The summary vouches for the FASTA: an old one must not stand beside a new FASTA if we are killed.
    Path(summary_path).unlink(missing_ok=True)
    tally = _write_records(out, fa, kind, blocks, chrom, renames, names, starts, ends)
    if tally.absent:
        log.warning(
            "%d peaks on %d contigs absent from %s were skipped: %s",
            sum(tally.absent.values()),
            len(tally.absent),
            fasta,
            ", ".join(list(tally.absent)[:5]),
        )
    if tally.n_clipped:
        log.warning("%d peaks run off a chromosome end; padded with N to width %s", tally.n_clipped, width)
    result = {
        "peaks": int(len(peaks)),
        "written": int(tally.n_written),
        "width": width,
        "clipped_at_chromosome_end": int(tally.n_clipped),
        "clipped_examples": tally.clipped_examples,
        "peaks_on_absent_contigs": int(sum(tally.absent.values())),
        "absent_contigs": {str(k): int(v) for k, v in tally.absent.items()},
        "absent_examples": tally.absent_examples,
        "fraction_n": round(tally.n_n / tally.n_bases, 6) if tally.n_bases else 0.0,
        "all_n_sequences": int(tally.n_all_n),
        "chromosome_renames": {k: v for k, v in renames.items() if k != v},
        "peaks_file": peaks_path or "",
        "fasta": fasta,
        "out": os.fspath(out),
    }
    write_json(summary_path, result)  # last: its presence means the FASTA is complete
    return result
