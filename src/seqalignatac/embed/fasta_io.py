"""Read peak FASTA files (plain or gzip/bgzip) into ids and upper-case sequences, with clear errors."""

from __future__ import annotations

import gzip
import os
import re

from seqalignatac.errors import InputError, require_file

_BAD = re.compile(r"[^A-Za-z]")


def read_fasta(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Return (ids, sequences). Ids are the header up to the first whitespace.

    Sequences are upper-cased: the NT vocabulary has upper-case letters only, so soft-masked
    (lower-case) bases would otherwise all become ``<unk>``.
    """
    p = require_file(path, "FASTA")
    with open(p, "rb") as fh:
        magic = fh.read(2)
    opener = gzip.open if magic == b"\x1f\x8b" else open
    ids: list[str] = []
    seqs: list[str] = []
    chunks: list[str] = []
    seen: dict[str, int] = {}
    try:
        with opener(p, "rt", encoding="ascii", errors="strict") as fh:
            for lineno, line in enumerate(fh, 1):
                line = line.strip()
                if not line:
                    continue
                if line[0] == ">":
                    if ids:
                        seqs.append(_finish(chunks, ids[-1], p))
                    chunks = []
                    pid = line[1:].split(maxsplit=1)[0] if line[1:].strip() else ""
                    if not pid:
                        raise InputError(f"line {lineno}: empty FASTA header; every record needs a peak id", p)
                    if pid in seen:
                        raise InputError(
                            f"line {lineno}: duplicate peak id {pid!r} (first at record {seen[pid] + 1}); "
                            "peak ids must be unique", p)  # fmt: skip
                    seen[pid] = len(ids)
                    ids.append(pid)
                else:
                    if not ids:
                        raise InputError(f"line {lineno}: sequence before the first '>' header; not a FASTA file", p)
                    bad = _BAD.search(line)
                    if bad:
                        raise InputError(
                            f"line {lineno} (peak {ids[-1]}): unexpected character {bad.group()!r} in the sequence; "
                            "only letters (A, C, G, T, N, IUPAC codes) are allowed", p)  # fmt: skip
                    chunks.append(line)
    except UnicodeDecodeError as e:
        raise InputError(f"not a text FASTA file (non-ASCII byte at offset {e.start})", p) from None
    except (OSError, EOFError) as e:
        raise InputError(f"cannot read FASTA ({e})", p) from None
    if ids:
        seqs.append(_finish(chunks, ids[-1], p))
    if not ids:
        raise InputError("FASTA has no records; run `seqalignatac extract` on a non-empty peak set", p)
    return ids, seqs


def _finish(chunks: list[str], pid: str, path: str) -> str:
    if not chunks:
        raise InputError(f"peak {pid!r} has an empty sequence", path)
    return "".join(chunks).upper()
