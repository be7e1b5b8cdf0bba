"""The ``seqalignatac`` command: one subcommand per pipeline step.

Subcommands are imported lazily so ``seqalignatac --help`` and light steps start fast
without importing torch.  Each entry maps a command name to ``module:attribute`` of a
``click.Command`` defined next to the code it wraps.
"""

from __future__ import annotations

import importlib
import logging

import click

from seqalignatac import __version__

# name -> (module, attribute, one-line help shown in `seqalignatac --help`)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "convert": (
        "seqalignatac.cli.convert",
        "convert_command",
        "MatrixMarket or 10x peak matrix -> .h5ad (cells x peaks).",
    ),
    "prepare": (
        "seqalignatac.cli.prepare",
        "prepare_command",
        "Harmonize the query onto the reference peaks; binarize; filter.",
    ),
    "extract": (
        "seqalignatac.cli.extract",
        "extract_command",
        "Peak DNA sequences (fixed width or native) from a FASTA.",
    ),
    "simulate": (
        "seqalignatac.cli.simulate",
        "simulate_command",
        "Synthetic genome + reference/query with a batch effect.",
    ),
    "embed": ("seqalignatac.cli.embed", "embed_command", "Embed peak sequences (Nucleotide Transformer or k-mer)."),
    "embed-merge": ("seqalignatac.cli.embed", "embed_merge_command", "Merge embedding shards into one store."),
    "embed-export": (
        "seqalignatac.cli.embed",
        "embed_export_command",
        "Export an embedding store to .npz (ids, embeddings).",
    ),
    "nt-tiny": (
        "seqalignatac.cli.embed",
        "nt_tiny_command",
        "Write a tiny random Nucleotide Transformer (tests, demo).",
    ),
    "train": (
        "seqalignatac.cli.train",
        "train_command",
        "Stage 1: cell embeddings from peak embeddings + accessibility.",
    ),
    "annotate": ("seqalignatac.cli.annotate", "annotate_command", "Stage 2: graph domain adaptation label transfer."),
    "evaluate": ("seqalignatac.cli.annotate", "evaluate_command", "Score predictions against known labels."),
    "report": ("seqalignatac.cli.report", "report_command", "Self-contained HTML report for one pair (or an index)."),
    "run": ("seqalignatac.cli.run", "run_command", "Run every step for each pair of a samplesheet, on one machine."),
    "demo": ("seqalignatac.cli.run", "demo_command", "Simulate a small dataset and run the whole pipeline on it."),
}


class ShownError(click.ClickException):
    """A :class:`~seqalignatac.errors.SeqAlignATACError` as click shows it: its one line, its exit status."""

    def __init__(self, error) -> None:
        super().__init__(error.format_message())
        # click types exit_code as a ClassVar, yet reads it from the instance: one status per error works
        self.exit_code = error.exit_code  # type: ignore[misc]
        self.prefix = error.prefix

    def show(self, file=None) -> None:
        click.echo(self.prefix + self.format_message(), file=file, err=file is None)


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attr, _ = COMMANDS[name]
        return getattr(importlib.import_module(module), attr)

    def invoke(self, ctx: click.Context):
        """The package's errors and faults of the machine become one line, never a traceback."""
        from seqalignatac.errors import SeqAlignATACError

        try:
            return self._invoke_step(ctx)
        except SeqAlignATACError as e:
            raise ShownError(e) from None

    def _invoke_step(self, ctx: click.Context):
        """Ctrl-C and a full or read-only disk as the package's errors (see docs/errors.md)."""
        from seqalignatac.errors import Interrupted, write_fault
        from seqalignatac.io.atomic import forget_kept, kept_notes

        forget_kept()
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            kept = kept_notes()
            raise Interrupted(
                "Interrupted (Ctrl-C); kept: "
                + ("; ".join(kept) if kept else "the outputs of finished steps only, no partial file")
            ) from None
        except (OSError, RuntimeError) as e:  # h5py raises RuntimeError for some failed writes
            fault = write_fault(e)
            if fault is None:
                raise
            kept = kept_notes()
            if kept:
                fault.message += "; kept: " + "; ".join(kept)
            raise fault from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help from the table, so `--help` imports nothing heavy.
        rows = [(name, COMMANDS[name][2]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="seqalignatac")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
def cli(verbose: int, quiet: bool) -> None:
    """seqAlignATAC: annotate scATAC-seq query cells from a labeled reference."""
    level = logging.WARNING if quiet else (logging.DEBUG if verbose > 1 else logging.INFO)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def main() -> None:
    cli(prog_name="seqalignatac")


if __name__ == "__main__":  # pragma: no cover
    main()
