"""``seqalignatac train``: a thin click wrapper around :func:`train` and :func:`lsi`."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from seqalignatac import keys
from seqalignatac.cli.options import config_option, progress_option
from seqalignatac.errors import InputError, require_file
from seqalignatac.io.settings import read_settings
from seqalignatac.models.stage1.config import TrainConfig
from seqalignatac.models.stage1.data import read_accessibility
from seqalignatac.models.stage1.options import NT_RUN_SETTINGS, TRAIN_RANGES, TRAIN_SETTINGS
from seqalignatac.params import DEVICE, SEED, THREADS

log = logging.getLogger(__name__)


@click.command(context_settings={"show_default": True})
@click.option(
    "--accessibility",
    required=True,
    type=click.Path(dir_okay=False),
    help=f"{keys.ACCESSIBILITY} from prepare (cells x peaks, binarized).",
)
@click.option(
    "--embeddings",
    type=click.Path(dir_okay=False),
    help=f"Peak embedding store ({keys.EMBEDDINGS}) from embed; required for --method nt.",
)
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Output folder.")
@click.option(
    "--method",
    type=click.Choice(["nt", "lsi"]),
    default="nt",
    help="nt: sequence-to-accessibility network; lsi: TF-IDF + SVD ablation (no sequence).",
)
@click.option("--device", type=DEVICE, default="auto", help="auto, cpu, cuda or cuda:N.")
@click.option("--seed", type=SEED, default=0)
@click.option("--threads", type=THREADS, default=None, help="CPU threads for torch (default: torch's choice).")
@click.option("--epochs", type=TRAIN_RANGES["epochs"], default=TrainConfig.epochs, help="nt: maximum epochs.")
@click.option(
    "--patience",
    type=TRAIN_RANGES["patience"],
    default=TrainConfig.patience,
    help="nt: stop after this many epochs without a better held-out AUROC.",
)
@config_option("train")
@progress_option()
def train_command(
    accessibility, embeddings, outdir, method, device, seed, threads, epochs, patience, config_path, progress
):
    """Stage 1: cell embeddings (obsm['X_seqalignatac']) for reference and query cells together.

    Every other setting (network size, learning rate, step sizes, LSI settings, resuming a killed
    run, ...) is a key of the [train] table of the --config file (docs/settings.md).
    """
    settings = read_settings(config_path, "train", TRAIN_SETTINGS)
    if method == "nt" and not embeddings:
        raise InputError("--embeddings is required for --method nt (or use --method lsi)")
    _warn_unused(settings, method, ", ".join(map(str, config_path)))
    resume = settings.pop("resume", False)
    adata = read_accessibility(accessibility)
    if method == "lsi":
        from seqalignatac.models.stage1.lsi import lsi

        _, summary = lsi(
            adata, seed=seed, outdir=outdir, resume=resume, path=accessibility, **_for_method(settings, "lsi")
        )
        click.echo(
            f"LSI: {summary['n_cells']} cells x {summary['dims']} dims "
            f"(dropped components {summary['dropped_components'] or 'none'}){_no_signal_note(summary)} "
            f"-> {Path(outdir)}",
            err=True,
        )
        return
    require_file(embeddings, "embedding store")
    from seqalignatac.models.stage1.trainer import train

    nt = _for_method(settings, "nt")
    run_kw = {k: nt.pop(k) for k in NT_RUN_SETTINGS if k in nt}
    cfg = TrainConfig(epochs=epochs, patience=patience, seed=seed, **nt)
    _, summary = train(
        adata,
        embeddings,
        config=cfg,
        device=device,
        threads=threads,
        outdir=outdir,
        resume=resume,
        progress=progress,
        path=accessibility,
        free_input=True,
        **run_kw,
    )
    click.echo(
        f"stage 1: {summary['n_cells']} cells x {summary['dims']} dims, held-out AUROC "
        f"{summary['heldout_auroc']:.3f} (best epoch {summary['best_epoch']}){_no_signal_note(summary)} "
        f"-> {Path(outdir)}",
        err=True,
    )


def _for_method(settings: dict, method: str) -> dict:
    """The [train] settings that ``method`` uses (lsi_* keys for lsi, the others for nt)."""
    return {k: v for k, v in settings.items() if k.startswith("lsi_") == (method == "lsi")}


def _warn_unused(settings: dict, method: str, path) -> None:
    other = sorted(set(settings) - set(_for_method(settings, method)) - {"resume"})
    if other:
        log.warning("%s: [train] %s not used by --method %s", path, ", ".join(other), method)


def _no_signal_note(summary: dict) -> str:
    n = summary.get("n_dropped_cells", 0)
    return f"; {n} cells without an accessible peak kept unembedded" if n else ""
