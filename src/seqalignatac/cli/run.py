"""`seqalignatac run` and `seqalignatac demo`: thin click wrappers around the runner."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import click

from seqalignatac.cli.options import progress_option
from seqalignatac.errors import InputError
from seqalignatac.models.stage1.options import TRAIN_RANGES
from seqalignatac.params import DEVICE, MAX_UMAP_CELLS, POSITIVE_INT, SEED, THREADS, int_range
from seqalignatac.pp.mapping import (
    DEFAULT_MAX_SEQUENCE_PEAKS,
    DEFAULT_MIN_PEAK_FRAC,
    DEFAULT_OVERLAP_WIDTH,
    PREPARE_RANGES,
)

log = logging.getLogger(__name__)


class PairsFailed(click.ClickException):
    """Some pairs failed: their errors were printed as they happened; exit status 1."""

    exit_code = 1


def _width(ctx, param, value: str):
    from seqalignatac.pp.sequences import parse_width

    return parse_width(value)


def _report_results(results, outdir: Path) -> None:
    ok = [r for r in results if r.ok]
    bad = [r for r in results if not r.ok]
    for r in ok:
        what = f"ran {', '.join(r.ran)}" if r.ran else "all steps up to date"
        click.echo(f"{r.pair_id}: done in {r.seconds:.1f} s ({what}) -> {r.report}", err=True)
    for r in bad:
        click.echo(f"{r.pair_id}: FAILED: {r.error}", err=True)
    click.echo(f"Index of all pairs: {outdir / 'index.html'}", err=True)
    if bad:
        raise PairsFailed(
            f"{len(bad)} of {len(results)} pairs failed: {', '.join(r.pair_id for r in bad)} (errors above)"
        )


def _parse_value(text: str):
    """KEY=VALUE values: JSON (4, 0.5, true, [64, 32]), 'a,b' lists of numbers, else a string."""
    t = text.strip()
    try:
        return json.loads(t)
    except json.JSONDecodeError:
        pass
    if "," in t:
        try:
            return [json.loads(x) for x in t.split(",")]
        except json.JSONDecodeError:
            pass
    return t


def _key_values(ctx, param, values) -> dict:
    out = {}
    for v in values:
        key, sep, val = v.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{v!r}: expected KEY=VALUE, e.g. epochs=50")
        out[key.strip().replace("-", "_")] = _parse_value(val)
    return out


def common_options(f):
    """Options shared by `run` and `demo`."""
    opts = [
        click.option(
            "--train-method",
            type=click.Choice(["nt", "lsi"]),
            default="nt",
            show_default=True,
            help="Stage 1: sequence model on the peak embeddings, or the LSI ablation (no sequence).",
        ),
        click.option(
            "--annotate-method",
            type=click.Choice(["gda", "knn"]),
            default="gda",
            show_default=True,
            help="Stage 2: graph domain adaptation, or the kNN label-transfer baseline.",
        ),
        click.option("--device", type=DEVICE, default="auto", show_default=True, help="auto, cpu, cuda or cuda:N."),
        click.option("--threads", type=THREADS, default=None, help="CPU threads (default: the libraries' choice)."),
        click.option("--seed", type=SEED, default=0, show_default=True),
        click.option(
            "--epochs",
            type=TRAIN_RANGES["epochs"],
            default=None,
            help="Stage-1 maximum epochs (default: train's default).",
        ),
        click.option(
            "--train-opt",
            "train_opts",
            multiple=True,
            callback=_key_values,
            metavar="KEY=VALUE",
            help="Any other stage-1 setting, a [train] key of docs/settings.md (repeatable), "
            "e.g. --train-opt hidden=128 --train-opt patience=10 (lsi: --train-opt lsi_components=20).",
        ),
        click.option(
            "--annotate-opt",
            "annotate_opts",
            multiple=True,
            callback=_key_values,
            metavar="KEY=VALUE",
            help="Any other stage-2 setting (repeatable), e.g. --annotate-opt k=20 --annotate-opt unknown=none.",
        ),
        click.option(
            "--max-umap-cells",
            type=MAX_UMAP_CELLS,
            default=20_000,
            show_default=True,
            help="Report UMAP on a random subsample of at most this many cells.",
        ),
        click.option("--force", is_flag=True, help="Run every step again even when its inputs are unchanged."),
        progress_option("Progress bars"),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command("run")
@click.option(
    "--samplesheet",
    required=True,
    type=click.Path(dir_okay=False),
    help="CSV: pair_id, reference, labels_key, query[, query_labels_key, fasta].",
)
@click.option(
    "--fasta",
    type=click.Path(dir_okay=False),
    default=None,
    help="Genome FASTA (plain or bgzip) for pairs without a 'fasta' column value.",
)
@click.option(
    "--model",
    default=None,
    help="Peak embedder: kmer[:K], a Nucleotide Transformer directory (hub layout) or hub name.",
)
@click.option(
    "--outdir", required=True, type=click.Path(file_okay=False), help="Results folder (one subfolder per pair)."
)
@click.option(
    "--width",
    default="1002",
    show_default=True,
    callback=_width,
    help="Peak sequence width in bp around the midpoint (multiple of 6), or 'native'.",
)
@click.option(
    "--overlap-width",
    type=PREPARE_RANGES["overlap_width"],
    default=None,
    help=f"prepare: W for peak matching (default {DEFAULT_OVERLAP_WIDTH}).",
)
@click.option(
    "--min-peak-frac",
    type=PREPARE_RANGES["min_peak_frac"],
    default=None,
    help=f"prepare: sequence route only, leave out peaks open in fewer than this fraction of cells "
    f"(default {DEFAULT_MIN_PEAK_FRAC:g}).",
)
@click.option(
    "--max-sequence-peaks",
    type=PREPARE_RANGES["max_sequence_peaks"],
    default=None,
    help=f"prepare: at most this many peaks (the most frequently open) for extract, embed and the nt "
    f"model (default {DEFAULT_MAX_SEQUENCE_PEAKS:,}); lsi uses every peak.",
)
@click.option(
    "--dtype",
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    default="auto",
    show_default=True,
    help="embed: model precision (auto: bfloat16 on GPU, float32 on CPU).",
)
@click.option("--batch-size", type=POSITIVE_INT, default=None, help="embed: peaks per batch.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="embed: sequence-embedding cache shared by all pairs and runs "
    "(default $SEQALIGNATAC_CACHE or ~/.cache/seqalignatac/embeddings).",
)
@common_options
def run_command(
    samplesheet,
    fasta,
    model,
    outdir,
    width,
    overlap_width,
    min_peak_frac,
    max_sequence_peaks,
    dtype,
    batch_size,
    cache_dir,
    train_method,
    annotate_method,
    device,
    threads,
    seed,
    epochs,
    train_opts,
    annotate_opts,
    max_umap_cells,
    force,
    progress,
):
    """Run prepare, extract, embed, train, annotate and report for every pair of a samplesheet.

    Re-running skips the steps whose inputs and parameters did not change and resumes a step that
    an interrupted run left unfinished.  A failing pair does not stop the others; the exit status
    is 1 when any pair failed.
    """
    from seqalignatac.io.samplesheet import read_samplesheet
    from seqalignatac.workflow.pipeline import RunOptions, run_pipeline

    pairs = read_samplesheet(samplesheet)
    opts = RunOptions(
        fasta=Path(fasta).absolute() if fasta else None,
        model=model,
        train_method=train_method,
        annotate_method=annotate_method,
        width=width,
        overlap_width=overlap_width,
        min_peak_frac=min_peak_frac,
        max_sequence_peaks=max_sequence_peaks,
        device=device,
        dtype=dtype,
        batch_size=batch_size,
        cache_dir=Path(cache_dir) if cache_dir else None,
        threads=threads,
        seed=seed,
        train_overrides={**train_opts, **({"epochs": epochs} if epochs else {})},
        annotate_overrides=annotate_opts,
        max_umap_cells=max_umap_cells,
        force=force,
        progress=progress,
    )
    out = Path(outdir)
    results = run_pipeline(pairs, out, opts)
    _report_results(results, out)


@click.command("demo")
@click.option(
    "--outdir", required=True, type=click.Path(file_okay=False), help="Folder for the data, model and results."
)
@click.option(
    "--model",
    "model_kind",
    type=click.Choice(["kmer", "nt-tiny"]),
    default="kmer",
    show_default=True,
    help="kmer: k-mer spectra (fast, informative); nt-tiny: a tiny random Nucleotide Transformer "
    "(exercises the NT code path; random weights carry little signal).",
)
@click.option("--cells", type=int_range(100), default=1000, show_default=True, help="Simulated cells (both domains).")
@click.option("--peaks", type=int_range(100), default=2000, show_default=True, help="Simulated peaks.")
@click.option("--cell-types", type=int_range(2), default=5, show_default=True)
@common_options
def demo_command(
    outdir,
    model_kind,
    cells,
    peaks,
    cell_types,
    train_method,
    annotate_method,
    device,
    threads,
    seed,
    epochs,
    train_opts,
    annotate_opts,
    max_umap_cells,
    force,
    progress,
):
    """Simulate a small reference/query pair, run the whole pipeline on it, print where the report is."""
    from seqalignatac.workflow.demo import run_demo

    results, out = run_demo(
        Path(outdir),
        model_kind=model_kind,
        n_cells=cells,
        n_peaks=peaks,
        n_cell_types=cell_types,
        train_method=train_method,
        annotate_method=annotate_method,
        device=device,
        threads=threads,
        seed=seed,
        epochs=epochs,
        train_opts=train_opts,
        annotate_opts=annotate_opts,
        max_umap_cells=max_umap_cells,
        force=force,
        progress=progress,
    )
    _report_results(results, out)
    r = results[0]
    if r.ok:
        click.echo(f"Report: {r.report}")
        click.echo(f"Open it in a browser, e.g.  xdg-open {r.report}   (or: python -m webbrowser {r.report})")


__all__ = ["run_command", "demo_command", "InputError"]
