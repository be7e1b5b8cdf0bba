"""Every step for every pair of a samplesheet, in one process (CPU or one GPU), no Nextflow.

Per pair: prepare -> extract -> embed -> train -> annotate -> report, written to the layout of
docs/design.md.  Each step is skipped when its inputs and parameters are unchanged since it last
finished (see :mod:`.stamps`); a step that a killed run left unfinished resumes.  A failing pair
is reported with its error and the other pairs still run.
"""

from __future__ import annotations

import gc
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from seqalignatac import __version__, keys
from seqalignatac.errors import InputError, write_fault
from seqalignatac.io.atomic import note_kept
from seqalignatac.io.locks import FolderLock
from seqalignatac.io.samplesheet import Pair
from seqalignatac.progress import progress_enabled
from seqalignatac.workflow.stamps import STAMP_DIR, Stamps, plan

log = logging.getLogger(__name__)

STEPS = keys.STEPS
RUN_LOCK = ".seqalignatac-run.lock"  # in OUTDIR: held by the run writing there


@dataclass
class RunOptions:
    """Settings shared by every pair (``seqalignatac run`` options)."""

    fasta: Path | None = None
    model: str | None = None  # kmer[:K], NT directory or hub name; not needed for train_method='lsi'
    train_method: str = "nt"  # nt | lsi
    annotate_method: str = "gda"  # gda | knn
    width: int | str = 1002
    overlap_width: int | None = None  # None: prepare's default
    min_peak_frac: float | None = None
    max_sequence_peaks: int | None = None
    device: str = "auto"
    dtype: str = "auto"
    batch_size: int | None = None
    cache_dir: Path | None = None
    threads: int | None = None
    seed: int = 0
    train_overrides: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields (epochs, ...)
    annotate_overrides: dict[str, Any] = field(default_factory=dict)  # annotate keyword arguments
    max_umap_cells: int = 20_000
    force: bool = False  # ignore stamps: run every step again
    progress: bool | None = None  # None: bars only when stderr is a terminal

    @property
    def uses_sequence(self) -> bool:
        return self.train_method == "nt"


@dataclass
class Step:
    name: str
    folder: Path
    inputs: dict[str, Path]
    params: dict[str, Any]
    outputs: list[Path]
    run: Callable[[bool], Any]  # run(resume): resume=True continues what a killed run left


@dataclass
class PairResult:
    pair_id: str
    ok: bool
    error: str = ""
    seconds: float = 0.0
    ran: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    resumed: list[str] = field(default_factory=list)
    report: Path | None = None


# ----------------------------------------------------------------------------------- options

ANNOTATE_KEYWORDS = (
    "unknown",
    "unknown_quantile",
    "unknown_smooth",
    "unknown_smooth_quantile",
    "unknown_cluster_z",
    "calibration_fraction",
    "knn_k",
)


def allowed_overrides(opts: RunOptions) -> tuple[set[str], set[str]]:
    """Names accepted in ``train_overrides`` and ``annotate_overrides`` for these options."""
    from dataclasses import fields

    from seqalignatac.models.stage2.train import GDAConfig

    if opts.train_method == "lsi":
        from seqalignatac.models.stage1.options import TRAIN_SETTINGS

        train = {k for k in TRAIN_SETTINGS if k.startswith("lsi_")}  # lsi()'s keywords
    else:
        from seqalignatac.models.stage1.config import TrainConfig

        train = {f.name for f in fields(TrainConfig)} - {"seed"}
    return train, ({f.name for f in fields(GDAConfig)} | set(ANNOTATE_KEYWORDS))


def check_options(opts: RunOptions) -> None:
    """Unknown or out-of-range step options fail once, before any pair starts (nothing is written).

    Values are checked by the steps' own validators (the click types of their commands), and
    replaced by the converted values (``k=20.0`` -> 20), so a step never sees what its CLI refuses.
    """
    from seqalignatac.params import DEVICE, MAX_UMAP_CELLS, POSITIVE_INT, SEED, THREADS, check_all
    from seqalignatac.pp.mapping import PREPARE_RANGES

    check_all(
        asdict(opts),
        {
            "device": DEVICE,
            "threads": THREADS,
            "seed": SEED,
            "batch_size": POSITIVE_INT,
            "max_umap_cells": MAX_UMAP_CELLS,
            "overlap_width": PREPARE_RANGES["overlap_width"],
            "min_peak_frac": PREPARE_RANGES["min_peak_frac"],
            "max_sequence_peaks": PREPARE_RANGES["max_sequence_peaks"],
        },
    )
    train_ok, annotate_ok = allowed_overrides(opts)
    for flag, given, ok in (
        ("--train-opt", opts.train_overrides, train_ok),
        ("--annotate-opt", opts.annotate_overrides, annotate_ok),
    ):
        bad = sorted(set(given) - ok)
        if bad:
            raise InputError(f"{flag}: unknown option(s) {', '.join(bad)}; allowed: {', '.join(sorted(ok))}")
    try:
        opts.train_overrides = _checked_train(opts)
    except (InputError, TypeError, ValueError) as e:
        raise InputError(f"--train-opt: {_problem(e)}") from None
    try:
        opts.annotate_overrides = _checked_annotate(opts)
    except (InputError, TypeError, ValueError) as e:
        raise InputError(f"--annotate-opt: {_problem(e)}") from None


def _problem(e: Exception) -> str:
    return e.format_message() if isinstance(e, InputError) else str(e)


def _converted(given: dict[str, Any], ranges: dict, name=lambda k: "--" + k.replace("_", "-")) -> dict[str, Any]:
    from seqalignatac.params import check

    return {k: (check(v, ranges[k], name(k)) if k in ranges and v is not None else v) for k, v in given.items()}


def _checked_train(opts: RunOptions) -> dict[str, Any]:
    from seqalignatac.models.stage1.options import TRAIN_RANGES, TRAIN_SETTINGS, setting_name

    # The [train] table's types (`hidden=64,32` -> (64, 32)), and epochs/patience's.
    given = _converted(opts.train_overrides, {**TRAIN_RANGES, **TRAIN_SETTINGS}, setting_name)
    if opts.train_method == "nt":
        from seqalignatac.models.stage1.config import TrainConfig

        TrainConfig(seed=opts.seed, **given).check()  # the cross-field and choice rules
    return given


def _checked_annotate(opts: RunOptions) -> dict[str, Any]:
    from dataclasses import fields

    from seqalignatac.models.stage2.options import (
        ANNOTATE_RANGES,
        GDA_RANGES,
        check_annotate_options,
        config_with,
        setting_name,
    )
    from seqalignatac.models.stage2.train import GDAConfig

    given = _converted(opts.annotate_overrides, {**GDA_RANGES, **ANNOTATE_RANGES}, setting_name)
    cfg_names = {f.name for f in fields(GDAConfig)}
    check_annotate_options(
        opts.annotate_method,
        config=config_with(**{k: v for k, v in given.items() if k in cfg_names}),
        **{k: v for k, v in given.items() if k not in cfg_names},
    )
    return given


# ----------------------------------------------------------------------------------- steps


@dataclass(frozen=True)
class _PairContext:
    """What every step of one pair reads: the pair, its FASTA, the run's options and its folders."""

    pair: Pair
    fasta: Path | None
    opts: RunOptions
    pair_dir: Path
    overlap_width: int  # prepare's, the default filled in
    min_peak_frac: float
    max_sequence_peaks: int

    def folder(self, step: str) -> Path:
        return self.pair_dir / step

    @property
    def accessibility(self) -> Path:
        return self.folder(keys.PREPARE_DIR) / keys.ACCESSIBILITY

    @property
    def peaks_bed(self) -> Path:
        return self.folder(keys.PREPARE_DIR) / keys.PEAKS_BED

    @property
    def peaks_fasta(self) -> Path:
        return self.folder(keys.EXTRACT_DIR) / keys.PEAKS_FASTA

    @property
    def embeddings(self) -> Path:
        return self.folder(keys.EMBED_DIR) / keys.EMBEDDINGS

    @property
    def cells(self) -> Path:
        return self.folder(keys.TRAIN_DIR) / keys.CELL_EMBEDDINGS


def _pair_context(pair: Pair, fasta: Path | None, opts: RunOptions, pair_dir: Path) -> _PairContext:
    """The pair's context, with prepare's defaults for the options left unset."""
    from seqalignatac.pp.mapping import DEFAULT_MAX_SEQUENCE_PEAKS, DEFAULT_MIN_PEAK_FRAC, DEFAULT_OVERLAP_WIDTH

    overlap = opts.overlap_width if opts.overlap_width is not None else DEFAULT_OVERLAP_WIDTH
    min_frac = opts.min_peak_frac if opts.min_peak_frac is not None else DEFAULT_MIN_PEAK_FRAC
    cap = opts.max_sequence_peaks if opts.max_sequence_peaks is not None else DEFAULT_MAX_SEQUENCE_PEAKS
    return _PairContext(pair, fasta, opts, pair_dir, overlap, min_frac, cap)


def _prepare(c: _PairContext, resume: bool) -> None:
    """prepare: the pair's peaks mapped onto shared peaks, one accessibility matrix."""
    from seqalignatac.pp.mapping import run_prepare

    run_prepare(
        c.pair.reference,
        c.pair.query,
        c.pair.labels_key,
        c.pair.query_labels_key,
        c.folder(keys.PREPARE_DIR),
        overlap_width=c.overlap_width,
        min_peak_frac=c.min_peak_frac,
        max_sequence_peaks=c.max_sequence_peaks,
    )


def _extract(c: _PairContext, resume: bool) -> None:
    """extract: the shared peaks' sequences from the genome FASTA."""
    from seqalignatac.pp.sequences import extract_sequences

    assert c.fasta is not None  # the sequence steps exist only when check_files found the FASTA
    extract_sequences(c.peaks_bed, c.fasta, c.peaks_fasta, width=c.opts.width)


def _embed(c: _PairContext, resume: bool) -> None:
    """embed: one sequence embedding per peak (k-mer spectra or a Nucleotide Transformer)."""
    from seqalignatac.embed.runner import embed_fasta

    opts = c.opts
    embed_fasta(
        str(c.peaks_fasta),
        str(opts.model),
        str(c.embeddings),
        device=opts.device,
        dtype=opts.dtype,
        batch_size=opts.batch_size,
        cache_dir=None if opts.cache_dir is None else str(opts.cache_dir),
        threads=opts.threads,
        progress=opts.progress,
    )


def _train(c: _PairContext, resume: bool) -> None:
    """train: stage-1 cell embeddings (the sequence model, or LSI)."""
    from seqalignatac.models.stage1.data import read_accessibility

    opts, acc = c.opts, c.accessibility
    adata = read_accessibility(str(acc))
    if opts.train_method == "lsi":
        from seqalignatac.models.stage1 import lsi

        lsi(
            adata,
            seed=opts.seed,
            outdir=c.folder(keys.TRAIN_DIR),
            resume=resume,
            overwrite=True,
            path=str(acc),
            **opts.train_overrides,
        )
    else:
        from seqalignatac.models.stage1.trainer import TrainConfig, train

        cfg = TrainConfig(seed=opts.seed, **opts.train_overrides)
        train(
            adata,
            str(c.embeddings),
            config=cfg,
            device=opts.device,
            threads=opts.threads,
            outdir=c.folder(keys.TRAIN_DIR),
            resume=resume,
            overwrite=True,
            progress=opts.progress,
            path=str(acc),
            missing_embeddings="drop",
        )


def _annotate(c: _PairContext, resume: bool) -> None:
    """annotate: stage-2 labels for the query cells (gda or knn)."""
    from dataclasses import fields

    from seqalignatac.models.stage2.api import annotate_full
    from seqalignatac.models.stage2.options import config_with
    from seqalignatac.models.stage2.outputs import read_cells, write_outputs
    from seqalignatac.models.stage2.train import GDAConfig

    opts = c.opts
    # annotate_overrides: GDAConfig fields (epochs, k, ...) or annotate_full keywords (unknown, ...)
    cfg_names = {f.name for f in fields(GDAConfig)}
    cfg = config_with(**{k: v for k, v in opts.annotate_overrides.items() if k in cfg_names})
    kw = {k: v for k, v in opts.annotate_overrides.items() if k not in cfg_names}
    res = annotate_full(
        read_cells(c.cells),
        keys.EMBEDDING,
        opts.annotate_method,
        config=cfg,
        device=opts.device,
        seed=opts.seed,
        threads=opts.threads,
        progress=opts.progress,
        source=str(c.cells),
        **kw,
    )
    write_outputs(res, c.folder(keys.ANNOTATE_DIR))


def _report(c: _PairContext, resume: bool) -> None:
    """report: the pair's HTML report and MultiQC table."""
    from seqalignatac.report.html import build_report

    opts = c.opts
    build_report(
        c.pair.pair_id,
        c.folder(keys.PREPARE_DIR),
        c.folder(keys.TRAIN_DIR),
        c.folder(keys.ANNOTATE_DIR),
        c.folder(keys.REPORT_DIR),
        extract_dir=c.folder(keys.EXTRACT_DIR) if opts.uses_sequence else None,
        embed_dir=c.folder(keys.EMBED_DIR) if opts.uses_sequence else None,
        run_params={
            **_run_params(c.pair, c.fasta, opts),
            "overlap_width": c.overlap_width,
            "min_peak_frac": c.min_peak_frac,
            "max_sequence_peaks": c.max_sequence_peaks,
        },
        max_umap_cells=opts.max_umap_cells,
        seed=opts.seed,
    )


def pair_steps(pair: Pair, fasta: Path | None, opts: RunOptions, pair_dir: Path) -> list[Step]:
    """The step list of one pair; each ``run`` calls the step's Python function."""
    c = _pair_context(pair, fasta, opts, pair_dir)
    prep, train, ann, report = (
        c.folder(s) for s in (keys.PREPARE_DIR, keys.TRAIN_DIR, keys.ANNOTATE_DIR, keys.REPORT_DIR)
    )
    steps = [
        Step(
            keys.PREPARE_DIR,
            prep,
            {"reference": pair.reference, "query": pair.query},
            {
                "labels_key": pair.labels_key,
                "query_labels_key": pair.query_labels_key,
                "overlap_width": c.overlap_width,
                "min_peak_frac": c.min_peak_frac,
                "max_sequence_peaks": c.max_sequence_peaks,
            },
            [c.accessibility, c.peaks_bed, prep / keys.PREPARE_SUMMARY],
            partial(_prepare, c),
        ),
    ]
    train_inputs = {"accessibility": c.accessibility}
    if opts.uses_sequence:
        steps += _sequence_steps(c)
        train_inputs["embeddings"] = c.embeddings
    steps += [
        Step(
            keys.TRAIN_DIR,
            train,
            train_inputs,
            {"method": opts.train_method, "seed": opts.seed, **opts.train_overrides},
            [c.cells, train / keys.TRAIN_SUMMARY],
            partial(_train, c),
        ),
        Step(
            keys.ANNOTATE_DIR,
            ann,
            {"cells": c.cells},
            {"method": opts.annotate_method, "seed": opts.seed, **opts.annotate_overrides},
            [ann / keys.PREDICTIONS, ann / keys.QUERY_ANNOTATED],
            partial(_annotate, c),
        ),
        Step(
            keys.REPORT_DIR,
            report,
            {
                "accessibility": c.accessibility,
                "prepare_summary": prep / keys.PREPARE_SUMMARY,
                "cells": c.cells,
                "train_summary": train / keys.TRAIN_SUMMARY,
                "predictions": ann / keys.PREDICTIONS,
            },
            {"max_umap_cells": opts.max_umap_cells, "seed": opts.seed},
            [report / f"{pair.pair_id}_report.html", report / f"{pair.pair_id}_mqc.tsv"],
            partial(_report, c),
        ),
    ]
    return steps


def _sequence_steps(c: _PairContext) -> list[Step]:
    """extract and embed: the steps only the sequence model (``--train-method nt``) needs."""
    opts = c.opts
    assert c.fasta is not None  # the sequence route: check_files found the FASTA
    model_inputs = {"model": Path(opts.model)} if opts.model and Path(opts.model).is_dir() else {}
    extract = c.folder(keys.EXTRACT_DIR)
    return [
        Step(
            keys.EXTRACT_DIR,
            extract,
            {"peaks": c.peaks_bed, "fasta": Path(c.fasta)},
            {"width": str(opts.width)},
            [c.peaks_fasta, extract / f"{keys.PEAKS_FASTA}.summary.json"],
            partial(_extract, c),
        ),
        Step(
            keys.EMBED_DIR,
            c.folder(keys.EMBED_DIR),
            {"fasta": c.peaks_fasta, **model_inputs},
            {"model": str(opts.model), "dtype": opts.dtype},
            [c.embeddings],
            partial(_embed, c),
        ),
    ]


def _run_params(pair: Pair, fasta: Path | None, opts: RunOptions) -> dict[str, Any]:
    p = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(opts).items() if k not in ("progress", "force")}
    p.update(
        reference=str(pair.reference),
        query=str(pair.query),
        labels_key=pair.labels_key,
        query_labels_key=pair.query_labels_key or "",
        fasta=str(fasta) if fasta else "",
    )
    if not opts.uses_sequence:
        for k in ("model", "width", "dtype", "batch_size", "cache_dir"):
            p.pop(k, None)
    return p


# ----------------------------------------------------------------------------------- one pair


def _internal_error(e: Exception, pair_dir: Path) -> str:
    log_path = pair_dir / STAMP_DIR / "error.log"
    try:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        log_path.write_text(traceback.format_exc())
    except OSError:
        return f"{type(e).__name__}: {e}"
    return f"{type(e).__name__}: {e} (traceback in {log_path})"


def run_pair(pair: Pair, outdir: Path, opts: RunOptions, label: str = "") -> PairResult:
    """All steps of one pair; never raises for a problem of this pair (KeyboardInterrupt excepted)."""
    t0 = time.perf_counter()
    res = PairResult(pair.pair_id, ok=False)
    pair_dir = outdir / pair.pair_id
    stamps = Stamps(pair_dir)
    bar = None
    try:
        fasta = pair.check_files(opts.fasta, need_fasta=opts.uses_sequence)
        steps = pair_steps(pair, fasta, opts, pair_dir)
        bar = _progress_bar(len(steps), f"{label}{pair.pair_id}", opts)
        for step in steps:
            bar.set_postfix_str(step.name)
            _run_step(step, pair.pair_id, stamps, opts, res)
            bar.update(1)
        res.ok = True
        res.report = pair_dir / keys.REPORT_DIR / f"{pair.pair_id}_report.html"
    except InputError as e:
        res.error = e.format_message()
    except KeyboardInterrupt:
        done = [*res.skipped, *res.ran]
        note_kept(
            f"{pair.pair_id}: finished steps {', '.join(done) if done else 'none'} in {pair_dir} "
            "(rerun the same command to continue)"
        )
        raise
    except Exception as e:  # noqa: BLE001 - one pair's failure must not stop the others
        fault = write_fault(e)  # a full or read-only disk: one line, and no error.log to write there
        res.error = fault.format_message() if fault is not None else _internal_error(e, pair_dir)
    finally:
        if bar is not None:
            bar.close()
    res.seconds = time.perf_counter() - t0
    if not res.ok:
        log.error("%s: FAILED: %s", pair.pair_id, res.error)  # now, not only in the summary at the end
    return res


def _progress_bar(total: int, desc: str, opts: RunOptions):
    """One bar per pair, one tick per step (off unless ``opts.progress`` or stderr is a terminal)."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        desc=desc,
        unit="step",
        file=sys.stderr,
        disable=not progress_enabled(opts.progress),
        leave=True,
        dynamic_ncols=True,
    )


def _run_step(step: Step, pair_id: str, stamps: Stamps, opts: RunOptions, res: PairResult) -> None:
    """Skip the step when its stamp says it is up to date, else run (or resume) it and stamp it.

    Records it in ``res`` as skipped, resumed and/or ran; raises when the step fails or does not
    write all its outputs.
    """
    planned = plan(step.name, __version__, step.params, step.inputs)
    if not opts.force and stamps.is_done(step.name, planned, step.outputs):
        res.skipped.append(step.name)
        log.info("%s: %s up to date, skipped", pair_id, step.name)
        return
    resume = not opts.force and stamps.was_started(step.name, planned)
    if resume:
        res.resumed.append(step.name)
        log.info("%s: %s resumes an interrupted run", pair_id, step.name)
    else:  # the step publishes its folder as a unit: the old outputs stay until then
        log.info("%s: %s ...", pair_id, step.name)
    stamps.start(step.name, planned)
    ts, cpu0 = time.perf_counter(), time.process_time()
    step.run(resume)
    gc.collect()  # steps hold large matrices; free them before the next one
    missing = [str(o) for o in step.outputs if not o.exists()]
    if missing:
        raise RuntimeError(f"step {step.name} finished without writing {', '.join(missing)}")
    stamps.finish(step.name, planned, step.outputs, time.perf_counter() - ts, time.process_time() - cpu0)
    res.ran.append(step.name)
    log.info(
        "%s: %s done in %.1f s (CPU %.1f s)",
        pair_id,
        step.name,
        time.perf_counter() - ts,
        time.process_time() - cpu0,
    )


# ----------------------------------------------------------------------------------- all pairs


def run_pipeline(
    pairs: Sequence[Pair],
    outdir: str | os.PathLike,
    opts: RunOptions,
    on_result: Callable[[PairResult], None] | None = None,
) -> list[PairResult]:
    """Run every pair, then write ``OUTDIR/index.html``; returns one result per pair."""
    out = Path(outdir)
    if out.exists() and not out.is_dir():
        raise InputError("--outdir exists and is not a folder", out)
    if opts.uses_sequence and not opts.model:
        raise InputError(
            "--model is required (kmer, a Nucleotide Transformer directory or hub name) unless --train-method lsi"
        )
    check_options(opts)
    if opts.uses_sequence:
        from seqalignatac.embed.hub import resolve_model

        resolve_model(str(opts.model))  # a bad --model fails once, before any pair starts
    out.mkdir(parents=True, exist_ok=True)
    results: list[PairResult] = []
    from tqdm.contrib.logging import logging_redirect_tqdm

    from seqalignatac.report.html import build_index

    # One run per output folder: a second one refuses at once, naming this one.
    with FolderLock(out / RUN_LOCK, f"output folder {out}"), logging_redirect_tqdm():
        for i, pair in enumerate(pairs, 1):
            r = run_pair(pair, out, opts, label=f"[{i}/{len(pairs)}] ")
            results.append(r)
            if on_result is not None:
                on_result(r)
        build_index(out, {r.pair_id: {"ok": r.ok, "error": r.error, "seconds": r.seconds} for r in results})
    return results
