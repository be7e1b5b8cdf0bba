"""The samplesheet: one reference/query pair per CSV row (shared by `seqalignatac run` and Nextflow).

Columns (docs/design.md): ``pair_id``, ``reference``, ``labels_key``, ``query`` are
required; ``query_labels_key`` and ``fasta`` are optional.  A relative path is taken from the
current folder (as ``nextflow run`` does) or, when no such file exists there, from the
samplesheet's own folder (so a sheet and its data can move together).

Structural problems (columns, empty cells, duplicate ids) are reported here, before any work
starts, naming the row and column.  Whether the files behind the paths are readable is checked
per pair when that pair runs (:meth:`Pair.check_files`), so one broken file stops only its pair.
"""

from __future__ import annotations

import csv
import difflib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from seqalignatac import keys
from seqalignatac.errors import InputError, require_file

log = logging.getLogger(__name__)

REQUIRED = ("pair_id", keys.REFERENCE, keys.LABELS_KEY, keys.QUERY)
OPTIONAL = ("query_labels_key", "fasta")
PATH_COLUMNS = ("reference", "query", "fasta")
RENAMED = {"reference_label_key": keys.LABELS_KEY, "query_label_key": "query_labels_key"}  # before 0.2
# Folder-safe: letters, digits, '.', '_', '-'; must not start with '.' or '-'.
PAIR_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
H5AD_SUFFIXES = (".h5ad",)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name a file or folder (None when it can): one rule for every such id."""
    if PAIR_ID_RE.fullmatch(name):
        return None
    return (
        f"{name!r} is not a valid id; use letters, digits, '.', '_' or '-', starting with a letter "
        "or digit (no spaces, slashes or '..'; it names output files)"
    )


@dataclass(frozen=True)
class Pair:
    """One samplesheet row, paths resolved."""

    pair_id: str
    reference: Path
    labels_key: str
    query: Path
    query_labels_key: str | None = None
    fasta: Path | None = None
    row: int = 0  # line number in the CSV (header is line 1); 0 when not from a file
    sheet_dir: Path | None = None  # where relative paths were also looked for

    def _require(self, path: Path, what: str, from_sheet: bool = True) -> None:
        if from_sheet and self.sheet_dir is not None and not path.exists():
            where = f" (relative paths are looked up in the current folder, then in {self.sheet_dir})"
            raise InputError(f"{what} does not exist; check row {self.row} of the samplesheet{where}", path)
        require_file(path, what)

    def check_files(self, fasta: Path | None = None, need_fasta: bool = True) -> Path | None:
        """Raise InputError naming the first missing/unreadable file; return the FASTA to use."""
        self._require(self.reference, f"reference of pair '{self.pair_id}'")
        self._require(self.query, f"query of pair '{self.pair_id}'")
        chosen = self.fasta or (Path(fasta) if fasta is not None else None)
        if need_fasta:
            if chosen is None:
                raise InputError(f"pair '{self.pair_id}' has no genome FASTA: give --fasta or fill the 'fasta' column")
            self._require(chosen, f"genome FASTA of pair '{self.pair_id}'", self.fasta is not None)
        return chosen


def read_samplesheet(path: str | os.PathLike) -> list[Pair]:
    """Read and validate a samplesheet CSV; raise InputError naming the row/column at fault."""
    p = Path(require_file(path, "samplesheet"))
    base = p.resolve().parent
    try:
        text = p.read_text(encoding="utf-8-sig")  # tolerate a BOM written by Excel
    except UnicodeDecodeError as e:
        raise InputError(f"not UTF-8 text ({e.reason} at byte {e.start}); save it as a UTF-8 CSV", p) from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError("samplesheet is empty; expected a header line: " + ",".join(REQUIRED + OPTIONAL), p)
    if "\t" in lines[0] and "," not in lines[0]:
        raise InputError("header has tabs but no commas; the samplesheet must be comma-separated (CSV)", p)

    reader = csv.reader(lines)
    header = [h.strip() for h in next(reader)]
    _check_header(header, p)

    pairs: list[Pair] = []
    seen: dict[str, int] = {}
    for lineno, fields in enumerate(reader, start=2):
        if not any(f.strip() for f in fields):
            continue  # blank lines are harmless
        if len(fields) != len(header):
            raise InputError(
                f"row {lineno} has {len(fields)} fields but the header has {len(header)}; "
                "check for a missing or extra comma (quote values that contain commas)",
                p,
            )
        row = {h: f.strip() for h, f in zip(header, fields)}
        for col in REQUIRED:
            if not row[col]:
                raise InputError(f"row {lineno}, column '{col}': empty; every pair needs a value here", p)
        pid = row["pair_id"]
        problem = name_problem(pid)
        if problem:
            raise InputError(f"row {lineno}, column 'pair_id': {problem}", p)
        if pid in seen:
            raise InputError(
                f"row {lineno}, column 'pair_id': '{pid}' is already used on row {seen[pid]}; ids must be unique", p
            )
        seen[pid] = lineno
        for col in ("reference", "query"):
            if not row[col].lower().endswith(H5AD_SUFFIXES):
                raise InputError(
                    f"row {lineno}, column '{col}': '{row[col]}' is not an .h5ad file; "
                    "convert matrices first with `seqalignatac convert`",
                    p,
                )

        def resolve(value: str) -> Path:
            # Like Nextflow: relative to the launch folder; else beside the samplesheet.
            q = Path(os.path.expanduser(value))
            if q.is_absolute() or q.exists() or not (base / q).exists():
                return q.absolute()
            return base / q

        pairs.append(
            Pair(
                pair_id=pid,
                reference=resolve(row["reference"]),
                labels_key=row[keys.LABELS_KEY],
                query=resolve(row["query"]),
                query_labels_key=row.get("query_labels_key") or None,
                fasta=resolve(row["fasta"]) if row.get("fasta") else None,
                row=lineno,
                sheet_dir=base,
            )
        )
    if not pairs:
        raise InputError("samplesheet has a header but no pairs; add one row per reference/query pair", p)
    return pairs


def _check_header(header: list[str], path: Path) -> None:
    known = REQUIRED + OPTIONAL
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise InputError(f"column(s) {', '.join(repr(d) for d in dupes)} appear more than once in the header", path)
    for h in header:
        if h in known:
            continue
        if h in RENAMED:
            raise InputError(f"column '{h}' is now called '{RENAMED[h]}'; rename it in the header", path)
        close = difflib.get_close_matches(h, known, n=1, cutoff=0.75)
        if close and close[0] not in header:
            raise InputError(f"unknown column '{h}'; did you mean '{close[0]}'?", path)
        log.warning("%s: ignoring unknown column '%s'", path, h)
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(
            f"missing required column(s) {', '.join(repr(m) for m in missing)}; the header must have "
            f"{', '.join(REQUIRED)} (optional: {', '.join(OPTIONAL)})",
            path,
        )
