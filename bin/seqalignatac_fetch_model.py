#!/usr/bin/env python3
"""Nextflow step FETCHMODEL: download a Nucleotide Transformer from the Hugging Face Hub once per run.

The EMBED tasks then load the weights from the staged folder, so compute nodes need no internet.
Only weights, configs and tokenizer files are fetched, never the repository's code: the policy and
the work live in :func:`seqalignatac.embed.hub.fetch_model`, the one downloader `embed --model` uses too.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--model", required=True, help="Hub repository id, e.g. InstaDeepAI/nucleotide-transformer-v2-50m-multi-species."
)
@click.option(
    "--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write the snapshot to."
)
@click.option(
    "--revision", default=None, help="Branch, tag or commit to pin (default: the repository's default branch)."
)
@click.option(
    "--cache-dir",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Hugging Face cache to reuse across runs.",
)
def main(model: str, outdir: Path, revision: str | None, cache_dir: Path | None) -> None:
    """Download MODEL's files into OUTDIR (a folder `seqalignatac embed --model` accepts)."""
    from seqalignatac.cli.main import ShownError  # imported here so `--help` starts fast
    from seqalignatac.embed.hub import fetch_model
    from seqalignatac.errors import SeqAlignATACError

    try:
        # The pipeline's parameters are the options a user changes when the download fails.
        fetch_model(model, outdir, revision, cache_dir, model_option="--nt_model", revision_option="--nt_revision")
    except SeqAlignATACError as e:  # one line and exit status 2, like every seqalignatac command
        raise ShownError(e) from None
    click.echo(f"fetched {model} into {outdir}", err=True)


if __name__ == "__main__":
    main(prog_name="seqalignatac_fetch_model.py")
