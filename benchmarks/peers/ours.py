"""seqAlignATAC's rows: the package's real command line, one measured step at a time.

Steps (each a ``seqalignatac`` subcommand, output folders as in docs/design.md)::

    prepare  -> extract -> embed --model kmer -> train --method nt  -> annotate --method gda|knn
    prepare  ----------------------------------> train --method lsi -> annotate --method gda|knn

``prepare`` gets no ``--query-labels-key``: the query's labels never enter our pipeline; they are
used afterwards, by the benchmark, to score ``predictions.csv``.  Every option not named below is
the command's own default (printed by ``seqalignatac <step> --help``).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import anndata as ad
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
import granja  # noqa: E402
import runner  # noqa: E402

SEQALIGNATAC = [sys.executable, "-m", "seqalignatac"]
THREADS = "2"


def step(
    name: str, cmd: list[str], workdir: Path, outputs: list[Path], reuse: bool, heavy: bool = True
) -> dict[str, Any]:
    """Run one measured step unless ``reuse`` and a successful record and its outputs exist.

    ``heavy`` steps (over ~2 CPU-minutes or 3 GB here) hold the machine-wide heavy-job lock."""
    record_path = workdir / f"step_{name}.json"
    if reuse and record_path.is_file() and all(p.exists() for p in outputs):
        rec = json.loads(record_path.read_text())
        if rec.get("rc") == 0:
            return rec
    rec = runner.run_measured(cmd, workdir / "logs" / f"{name}.log", env={"OMP_NUM_THREADS": THREADS}, lock=heavy)
    rec["step"] = name
    if rec["rc"] != 0:
        rec["error"] = runner.tail(Path(rec["log"]))
    runner.write_json(record_path, rec)
    return rec


def convert_donors(data: Path, work: Path, reuse: bool) -> Path:
    """``seqalignatac convert`` of the Granja matrix into one .h5ad per donor (under ``work/convert``)."""
    convert_dir = work / "convert"
    cells = granja.cells_with_coarse(data, work / "cells_with_coarse.tsv")
    conv = step(
        "convert",
        granja.convert_command(data, cells, convert_dir, sys.executable),
        work,
        [convert_dir / f"{d}.h5ad" for d in granja.DONORS],
        reuse,
        heavy=False,
    )
    if conv["rc"] != 0:
        sys.exit(f"seqalignatac convert failed: {conv.get('error')}")
    return convert_dir


def prepare(workdir: Path, ref_h5ad: Path, query_h5ad: Path, reuse: bool) -> dict[str, Any]:
    out = workdir / "prepare"
    return step(
        "prepare",
        [
            *SEQALIGNATAC,
            "prepare",
            "--reference",
            str(ref_h5ad),
            "--query",
            str(query_h5ad),
            "--labels-key",
            granja.LABEL_KEY,
            "--outdir",
            str(out),
        ],
        workdir,
        [out / "accessibility.h5ad", out / "peaks.bed"],
        reuse,
        heavy=False,
    )


def kmer_stage1(workdir: Path, fasta: Path, reuse: bool) -> list[dict[str, Any]]:
    recs = []
    peaks_fa = workdir / "extract" / "peaks.fa"
    recs.append(
        step(
            "extract",
            [
                *SEQALIGNATAC,
                "extract",
                "--peaks",
                str(workdir / "prepare" / "peaks.bed"),
                "--fasta",
                str(fasta),
                "--out",
                str(peaks_fa),
            ],
            workdir,
            [peaks_fa],
            reuse,
            heavy=False,
        )
    )
    emb = workdir / "embed" / "embeddings.h5"
    cache = workdir / "embed" / "cache"
    if not (reuse and emb.exists()):
        shutil.rmtree(cache, ignore_errors=True)  # a warm cache would time a lookup, not the embedding
    recs.append(
        step(
            "embed",
            [
                *SEQALIGNATAC,
                "embed",
                "--fasta",
                str(peaks_fa),
                "--model",
                "kmer",
                "--out",
                str(emb),
                "--device",
                "cpu",
                "--cache-dir",
                str(cache),
                "--threads",
                THREADS,
                "--no-progress",
            ],
            workdir,
            [emb],
            reuse,
            heavy=False,
        )
    )
    out = workdir / "train_kmer"
    # [train] missing_embeddings = "drop": peaks on contigs absent from the partial genome have no
    # sequence; stage 1 trains on the others (the count is in train_summary.json).
    settings = workdir / "train_settings.toml"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('[train]\nmissing_embeddings = "drop"\n')
    recs.append(
        step(
            "train_kmer",
            [
                *SEQALIGNATAC,
                "train",
                "--accessibility",
                str(workdir / "prepare" / "accessibility.h5ad"),
                "--embeddings",
                str(emb),
                "--outdir",
                str(out),
                "--method",
                "nt",
                "--config",
                str(settings),
                "--device",
                "cpu",
                "--threads",
                THREADS,
                "--no-progress",
            ],
            workdir,
            [out / "cell_embeddings.h5ad"],
            reuse,
        )
    )
    return recs


def lsi_stage1(workdir: Path, reuse: bool) -> list[dict[str, Any]]:
    out = workdir / "train_lsi"
    return [
        step(
            "train_lsi",
            [
                *SEQALIGNATAC,
                "train",
                "--accessibility",
                str(workdir / "prepare" / "accessibility.h5ad"),
                "--outdir",
                str(out),
                "--method",
                "lsi",
                "--device",
                "cpu",
                "--threads",
                THREADS,
                "--no-progress",
            ],
            workdir,
            [out / "cell_embeddings.h5ad"],
            reuse,
            heavy=False,
        )
    ]


def cells_for_level(cells: Path, level: str) -> tuple[Path, str]:
    """The cell-embeddings file and label key for a label level.

    For ``coarse`` a copy is written whose reference cells carry the 6-group label in
    ``obs['coarse_label']`` (a fixed function of the fine label; query cells stay unlabeled).
    """
    if level == "fine":
        return cells, granja.LABEL_KEY
    out = cells.with_name("cell_embeddings_coarse.h5ad")
    if not out.exists() or out.stat().st_mtime < cells.stat().st_mtime:
        a = ad.read_h5ad(cells)
        a.obs[granja.COARSE_KEY] = [
            granja.coarse_label(v) if isinstance(v, str) else None for v in a.obs[granja.LABEL_KEY]
        ]
        tmp = out.with_name(out.name + ".tmp-write.h5ad")
        a.write_h5ad(tmp)
        tmp.replace(out)
    return out, granja.COARSE_KEY


def annotate(
    workdir: Path, features: str, method: str, level: str, reuse: bool, extra: list[str] | None = None, tag: str = ""
) -> dict[str, Any]:
    cells, key = cells_for_level(workdir / f"train_{features}" / "cell_embeddings.h5ad", level)
    name = f"annotate_{features}_{method}_{level}{tag}"
    out = workdir / name
    return step(
        name,
        [
            *SEQALIGNATAC,
            "annotate",
            "--cells",
            str(cells),
            "--outdir",
            str(out),
            "--method",
            method,
            "--labels-key",
            key,
            "--device",
            "cpu",
            "--threads",
            THREADS,
            "--no-progress",
            *(extra or []),
        ],
        workdir,
        [out / "predictions.csv"],
        reuse,
        heavy=(method == "gda"),
    )


def predictions(workdir: Path, annotate_dir: str) -> pd.DataFrame:
    """predictions.csv indexed by the query's original cell ids (prepare prefixes obs_names)."""
    pred = pd.read_csv(workdir / annotate_dir / "predictions.csv", dtype={"cell_id": str})
    obs = ad.read_h5ad(workdir / "prepare" / "accessibility.h5ad", backed="r").obs
    original = obs["original_id"].astype(str)
    pred["cell_id"] = pred["cell_id"].map(lambda c: original.get(c, c))
    return pred.set_index("cell_id")


def summary(workdir: Path, rel: str) -> dict[str, Any]:
    p = workdir / rel
    return json.loads(p.read_text()) if p.is_file() else {}
