"""`seqalignatac demo`: simulated data + (optionally) a tiny NT, then the full pipeline.

Layout under OUTDIR: ``data/`` (genome.fa, reference.h5ad, query.h5ad), ``model/`` (tiny NT,
only with ``--model nt-tiny``), ``samplesheet.csv``, ``results/`` (the `run` layout, with the
report in ``results/demo/report/demo_report.html``).  Running the demo again re-uses what is
already there (same simulation settings: nothing is recomputed).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from seqalignatac import keys
from seqalignatac.io.atomic import write_text
from seqalignatac.io.samplesheet import read_samplesheet
from seqalignatac.workflow.pipeline import PairResult, RunOptions, run_pipeline

log = logging.getLogger(__name__)

PAIR_ID = "demo"
# Stage 1 peaks within a few epochs on this small simulation; a shorter early-stopping patience
# (train's default is 20) keeps the demo within minutes on a laptop.  --train-opt overrides it.
DEMO_TRAIN = {"patience": 5}


def _simulate_once(data: Path, **params: Any) -> dict[str, Any]:
    """Simulate unless ``data`` already holds a simulation with these settings (keeps re-runs instant)."""
    from seqalignatac.datasets.synthetic import simulate

    info_path = data / "demo_simulation.json"
    if info_path.is_file():
        info = json.loads(info_path.read_text())
        if info.get("params") == params and all(
            Path(info["paths"][k]).is_file() for k in ("reference", "query", "fasta")
        ):
            log.info("demo: re-using the simulated data in %s", data)
            return info["paths"]
    log.info(
        "demo: simulating %d cells x %d peaks (%d cell types) in %s",
        params["n_cells"],
        params["n_peaks"],
        params["n_cell_types"],
        data,
    )
    paths = simulate(data, **params)
    write_text(info_path, json.dumps({"params": params, "paths": paths}, indent=2, default=str) + "\n")
    return paths


def _tiny_model(model_dir: Path, seed: int) -> Path:
    from seqalignatac.embed.tiny import write_tiny

    if not (model_dir / "config.json").is_file():
        log.info("demo: writing a tiny random Nucleotide Transformer to %s", model_dir)
        write_tiny(model_dir, arch="v2", seed=seed)
    return model_dir


def run_demo(
    outdir: Path,
    model_kind: str = "kmer",
    n_cells: int = 1000,
    n_peaks: int = 2000,
    n_cell_types: int = 5,
    train_method: str = "nt",
    annotate_method: str = "gda",
    device: str = "auto",
    threads: int | None = None,
    seed: int = 0,
    epochs: int | None = None,
    train_opts: dict | None = None,
    annotate_opts: dict | None = None,
    max_umap_cells: int = 20_000,
    force: bool = False,
    progress: bool | None = None,
) -> tuple[list[PairResult], Path]:
    outdir = Path(outdir).absolute()
    sim = _simulate_once(outdir / "data", n_cells=n_cells, n_peaks=n_peaks, n_cell_types=n_cell_types, seed=seed)
    model = str(_tiny_model(outdir / "model", seed)) if model_kind == "nt-tiny" else "kmer"
    sheet = outdir / "samplesheet.csv"
    text = (
        "pair_id,reference,labels_key,query,query_labels_key,fasta\n"
        f"{PAIR_ID},{sim['reference']},{sim[keys.LABELS_KEY]},{sim['query']},{sim[keys.LABELS_KEY]},{sim['fasta']}\n"
    )
    if not sheet.is_file() or sheet.read_text() != text:
        write_text(sheet, text)
    opts = RunOptions(
        model=model,
        train_method=train_method,
        annotate_method=annotate_method,
        device=device,
        threads=threads,
        seed=seed,
        cache_dir=outdir / "embed_cache",
        train_overrides={**DEMO_TRAIN, **(train_opts or {}), **({"epochs": epochs} if epochs else {})},
        annotate_overrides=dict(annotate_opts or {}),
        max_umap_cells=max_umap_cells,
        force=force,
        progress=progress,
    )
    results_dir = outdir / "results"
    return run_pipeline(read_samplesheet(sheet), results_dir, opts), results_dir
