"""Peak coordinates: parse ids and ``var`` columns, read/write BED, reconcile chromosome names.

Convention (see docs/inputs.md): 0-based, half-open, exactly like BED. ``chr1:100-600`` is the
BED line ``chr1 100 600``: 500 bp, first base at 0-based position 100. 10x Cell Ranger ATAC,
SnapATAC2, MACS2, Signac and ArchR name peaks by copying BED-style numbers, so ids read from
them round-trip unchanged. We cannot detect a 1-based file from the numbers alone, so we do not
guess; a 1-based input shifts every peak by one base (harmless for overlaps, visible in sequences).
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterable

import numpy as np
import pandas as pd

from seqalignatac.errors import InputError, require_file

# chrom, separator, start, separator, end.  ``.+`` is greedy, so chromosome names that contain
# '_' or '-' (chrUn_gl000220, HLA-A*01) keep them: only the last two numbers are coordinates.
_ID_PATTERN = r"^(?P<chrom>.+?)[:\-_](?P<start>\d+)[\-_](?P<end>\d+)$"
_ID_PATTERN_GREEDY = r"^(?P<chrom>.+)[:\-_](?P<start>\d+)[\-_](?P<end>\d+)$"

CHROM_COLUMNS = ("chrom", "chr", "seqnames", "chromosome", "seqname", "Chromosome")
START_COLUMNS = ("start", "chromStart", "Start")
END_COLUMNS = ("end", "chromEnd", "End")


def peak_ids(chrom: Iterable, start: Iterable, end: Iterable) -> pd.Index:
    """Canonical peak ids ``chrom:start-end`` (0-based half-open numbers)."""
    c = pd.Series(np.asarray(chrom), dtype=str)
    s = pd.Series(np.asarray(start, dtype=np.int64)).astype(str)
    e = pd.Series(np.asarray(end, dtype=np.int64)).astype(str)
    return pd.Index((c + ":" + s + "-" + e).to_numpy(), dtype=object)


def parse_peak_ids(ids: Iterable[str], source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Parse ``chr1:100-600``, ``chr1-100-600`` or ``chr1_100_600`` into chrom/start/end.

    Raises InputError naming the first id that does not parse (and the file it came from).
    """
    s = pd.Series(list(ids), dtype=object).astype(str)
    # '_' inside chromosome names (chr1_KI270706v1_random) needs the greedy form when the
    # separators are '_'; ':'-style ids use the first ':' so 'chr1:100-600' is unambiguous.
    colon = s.str.contains(":", regex=False)
    parsed = pd.DataFrame(index=s.index, columns=["chrom", "start", "end"], dtype=object)
    if colon.any():
        parsed.loc[colon] = s[colon].str.extract(r"^(?P<chrom>[^:]+):(?P<start>\d+)-(?P<end>\d+)$").to_numpy()
    if (~colon).any():
        parsed.loc[~colon] = s[~colon].str.extract(_ID_PATTERN_GREEDY).to_numpy()
    bad = parsed["chrom"].isna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise InputError(
            f"peak {i + 1} ('{s.iloc[i]}') is not a peak coordinate; expected names like chr1:100-600, "
            "chr1-100-600 or chr1_100_600, or var columns chrom/start/end "
            f"({int(bad.sum())} of {len(s)} names do not parse)",
            source,
        )
    out = pd.DataFrame(
        {
            "chrom": parsed["chrom"].astype(str).to_numpy(),
            "start": parsed["start"].astype(np.int64).to_numpy(),
            "end": parsed["end"].astype(np.int64).to_numpy(),
        }
    )
    check_chroms(out["chrom"].to_numpy(), "name", s.to_numpy(), source)
    validate_intervals(out, source, names=s.to_numpy())
    return out


def validate_intervals(df: pd.DataFrame, source=None, names=None) -> None:
    """Raise InputError on start < 0 or start >= end, naming the first offending peak."""
    start = df["start"].to_numpy()
    end = df["end"].to_numpy()
    for mask, problem in ((start < 0, "has a negative start"), (start >= end, "has start >= end")):
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            label = names[i] if names is not None else f"{df['chrom'].iloc[i]}:{start[i]}-{end[i]}"
            raise InputError(
                f"peak {i + 1} ('{label}') {problem}; coordinates must be 0-based half-open with "
                f"0 <= start < end ({int(mask.sum())} such peaks)",
                source,
            )


MISSING_CHROMS = {"", "nan", "NaN", "NA", "None", "<NA>"}  # a missing value written as text


def check_integral(values: np.ndarray, column: str, names, source=None) -> None:
    """Coordinates must be whole numbers: 100.7 truncated to 100 would silently move the peak."""
    bad = ~np.isfinite(values) | (values != np.floor(values))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"peak {i + 1} ('{names[i]}'): column '{column}' holds {float(values[i]):g}, not a whole "
            f"number; coordinates must be integers ({int(bad.sum())} such peaks)",
            source,
        )


def check_chroms(chrom: np.ndarray, column: str, names, source=None) -> None:
    """A missing chromosome would become the contig 'nan' and match nothing: refuse it."""
    text = pd.Series(chrom, dtype=object)
    bad = (text.isna() | text.astype(str).str.strip().isin(MISSING_CHROMS)).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(
            f"peak {i + 1} ('{names[i]}'): column '{column}' has no chromosome ({str(chrom[i])!r}); "
            f"every peak needs one ({int(bad.sum())} such peaks)",
            source,
        )


def _first_column(df: pd.DataFrame, names: Iterable[str]) -> str | None:
    lower = {str(c).lower(): c for c in df.columns}
    for n in names:
        if n in df.columns:
            return n
        if n.lower() in lower:
            return lower[n.lower()]
    return None


def coords_from_var(var: pd.DataFrame, source: str | os.PathLike | None = None) -> pd.DataFrame:
    """Peak coordinates of an AnnData ``var``: chrom/start/end columns win over the names."""
    cc, sc, ec = _first_column(var, CHROM_COLUMNS), _first_column(var, START_COLUMNS), _first_column(var, END_COLUMNS)
    if cc is not None and sc is not None and ec is not None:
        try:
            start = pd.to_numeric(var[sc], errors="raise").to_numpy()
            end = pd.to_numeric(var[ec], errors="raise").to_numpy()
        except (ValueError, TypeError):
            raise InputError(f"var columns '{sc}'/'{ec}' must be integer coordinates", source) from None
        names = np.asarray(var.index, dtype=str)
        for col, values in ((sc, start), (ec, end)):
            check_integral(values.astype(float), col, names, source)
        chrom = var[cc].astype(object).to_numpy()
        check_chroms(chrom, cc, names, source)
        out = pd.DataFrame({"chrom": chrom.astype(str), "start": start.astype(np.int64), "end": end.astype(np.int64)})
        validate_intervals(out, source, names=names)
        return out
    if len(var) == 0:
        raise InputError("no peaks (the matrix has 0 columns)", source)
    return parse_peak_ids(var.index, source)


def looks_like_peak_ids(ids: Iterable[str], n: int = 50) -> bool:
    """True when the first ``n`` names parse as coordinates (used to detect transposed inputs)."""
    sample = pd.Series(list(ids)[:n], dtype=object).astype(str)
    if len(sample) == 0:
        return False
    return bool(sample.str.match(_ID_PATTERN).all())


# ---------------------------------------------------------------- BED / peak tables


def _open_text(path: str):
    with open(path, "rb") as fh:
        magic = fh.read(2)
    return gzip.open(path, "rt") if magic == b"\x1f\x8b" else open(path)


def read_peak_table(path: str | os.PathLike, what: str = "peaks file") -> pd.DataFrame:
    """Read a BED (no header) or a TSV/CSV with a header naming chrom/start/end columns.

    Returns a frame with chrom, start, end, name (+ any other columns a header named).
    ``name`` is the BED 4th column when present, else ``chrom:start-end``.
    """
    p = require_file(path, what)
    with _open_text(p) as fh:
        lines = []
        for line in fh:
            if line.startswith(("#", "track", "browser")) or not line.strip():
                continue
            lines.append(line.rstrip("\n\r"))
    if not lines:
        raise InputError(f"{what} is empty (no peak lines)", p)
    sep = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    first = lines[0].split(sep)
    known = {n.lower() for n in CHROM_COLUMNS + START_COLUMNS + END_COLUMNS}
    numeric = first[1].strip().lstrip("-").isdigit() if len(first) > 1 else False
    has_header = len(first) >= 3 and not numeric and any(f.strip().lower() in known for f in first)
    rows = [ln.split(sep) for ln in (lines[1:] if has_header else lines)]
    width = max(len(r) for r in rows) if rows else len(first)
    if width < 3 and not (has_header and len(first) == 1):
        # A single column of ids (10x features / a list of peak names).
        ids = [r[0] for r in rows] if rows else []
        df = parse_peak_ids(ids, p)
        df["name"] = ids
        return df
    rows = [r + [""] * (width - len(r)) for r in rows]
    if has_header:
        cols = [c.strip() for c in first] + [f"col{i}" for i in range(len(first), width)]
        df = pd.DataFrame(rows, columns=cols[:width])
        cc, sc, ec = _first_column(df, CHROM_COLUMNS), _first_column(df, START_COLUMNS), _first_column(df, END_COLUMNS)
        if cc is None or sc is None or ec is None:
            raise InputError(
                f"header {first[:6]} names no chrom/start/end columns; use BED (no header) or name them chrom, start, end",
                p,
            )
        df = df.rename(columns={cc: "chrom", sc: "start", ec: "end"})
        if "name" not in df.columns:
            idc = _first_column(df, ("peak_id", "id", "peak"))
            if idc is not None:
                df = df.rename(columns={idc: "name"})
    else:
        names = ["chrom", "start", "end", "name"] + [f"col{i}" for i in range(5, width + 1)]
        df = pd.DataFrame(rows, columns=names[:width])
    for col in ("start", "end"):
        num = pd.to_numeric(df[col], errors="coerce")
        bad = (num.isna() | (num != np.floor(num))).to_numpy()  # 100.7 would be truncated to 100
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise InputError(f"line {i + 1 + int(has_header)}: {col} '{df[col].iloc[i]}' is not an integer", p)
        df[col] = num.astype(np.int64)
    missing = df["chrom"].astype(str).str.strip().isin(MISSING_CHROMS).to_numpy()
    if missing.any():
        i = int(np.flatnonzero(missing)[0])
        raise InputError(
            f"line {i + 1 + int(has_header)}: chromosome '{df['chrom'].iloc[i]}' is missing; every "
            f"peak needs one ({int(missing.sum())} such lines)",
            p,
        )
    df["chrom"] = df["chrom"].astype(str)
    validate_intervals(df, p)
    ids = peak_ids(df["chrom"], df["start"], df["end"])
    if "name" not in df.columns:
        df["name"] = ids
    else:  # narrowPeak and friends often leave the name as '.': fall back to chrom:start-end
        blank = df["name"].astype(str).str.strip().isin(["", "."]).to_numpy()
        df.loc[blank, "name"] = np.asarray(ids)[blank]
    df["name"] = df["name"].astype(str)
    return df.reset_index(drop=True)


def read_bed(path: str | os.PathLike) -> pd.DataFrame:
    """Read a BED file of peaks (0-based half-open); see :func:`read_peak_table`."""
    return read_peak_table(path, "BED file")


def bed_text(df: pd.DataFrame) -> str:
    """BED text (chrom, start, end, name) for a frame with those columns."""
    names = df["name"] if "name" in df.columns else peak_ids(df["chrom"], df["start"], df["end"])
    out = pd.DataFrame(
        {
            "chrom": df["chrom"].to_numpy(),
            "start": df["start"].to_numpy(),
            "end": df["end"].to_numpy(),
            "name": np.asarray(names),
        }
    )
    return out.to_csv(sep="\t", header=False, index=False)


def write_bed(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write chrom/start/end/name as BED, atomically."""
    from seqalignatac.io.atomic import write_text

    write_text(path, bed_text(df))


# ---------------------------------------------------------------- chromosome names

_MITO = ("chrM", "MT", "M", "chrMT")


def chrom_aliases(name: str) -> list[str]:
    """Names the same chromosome may carry elsewhere: chr1 <-> 1, chrM <-> MT <-> M."""
    out = [name]
    if name in _MITO:
        out += [m for m in _MITO if m != name]
    elif name.startswith("chr"):
        out.append(name[3:])
    else:
        out.append("chr" + name)
    return out


def reconcile_chroms(wanted: Iterable[str], available: Iterable[str]) -> dict[str, str]:
    """Map each wanted chromosome name to the name used in ``available`` (absent: not in the dict)."""
    avail = set(available)
    mapping: dict[str, str] = {}
    for name in dict.fromkeys(wanted):
        for alias in chrom_aliases(name):
            if alias in avail:
                mapping[name] = alias
                break
    return mapping


def to_pyranges(chrom, start, end, idx=None):
    """A PyRanges with an ``idx`` column (row number), for overlap joins."""
    import pyranges as pr

    idx = np.arange(len(start)) if idx is None else idx
    df = pd.DataFrame(
        {
            "Chromosome": np.asarray(chrom, dtype=str),
            "Start": np.asarray(start, dtype=np.int64),
            "End": np.asarray(end, dtype=np.int64),
            "idx": np.asarray(idx, dtype=np.int64),
        }
    )
    return pr.PyRanges(df)


def trimmed(start: np.ndarray, end: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Fixed-width windows centered on each peak midpoint (start clipped at 0 for interval tools)."""
    mid = (np.asarray(start, dtype=np.int64) + np.asarray(end, dtype=np.int64)) // 2
    s = mid - width // 2
    return np.maximum(s, 0), s + width
