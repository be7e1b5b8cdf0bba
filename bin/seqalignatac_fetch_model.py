#!/usr/bin/env python3
"""Nextflow step FETCHMODEL: download a Nucleotide Transformer from the Hugging Face Hub once per run.

The EMBED tasks then load the weights from the staged folder, so compute nodes need no internet.
Only PyTorch weights, configs and tokenizer files are fetched (no TensorFlow/Flax/ONNX copies).
"""

from __future__ import annotations

from pathlib import Path

import click

# Files EMBED never reads; skipping them keeps the download to the PyTorch weights.
IGNORE_PATTERNS = ["*.h5", "*.msgpack", "*.ckpt*", "*.onnx", "tf_*", "flax_*", "*.tflite"]


class FetchError(click.ClickException):
    """One-line `Error: ...` and exit status 2, like the package's InputError."""

    exit_code = 2


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--model", required=True, help="Hub repository id, e.g. InstaDeepAI/nucleotide-transformer-v2-50m-multi-species.")
@click.option("--outdir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write the snapshot to.")
@click.option("--revision", default=None, help="Branch, tag or commit to pin (default: the repository's default branch).")
@click.option("--cache-dir", default=None, type=click.Path(file_okay=False, path_type=Path), help="Hugging Face cache to reuse across runs.")
def main(model: str, outdir: Path, revision: str | None, cache_dir: Path | None) -> None:
    """Download MODEL's files into OUTDIR (a folder `seqalignatac embed --model` accepts)."""
    # Imported here so `--help` works without the hub client installed.
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    try:
        snapshot_download(
            repo_id=model,
            revision=revision,
            local_dir=outdir,
            cache_dir=cache_dir,
            ignore_patterns=IGNORE_PATTERNS,
        )
    except RepositoryNotFoundError:
        raise FetchError(
            f"{model}: no such model on the Hugging Face Hub (or it is private); check --nt_model, "
            "or give a local model folder"
        ) from None
    except RevisionNotFoundError:
        raise FetchError(f"{model}: revision '{revision}' not found; check --nt_revision") from None
    except LocalEntryNotFoundError:
        raise FetchError(
            f"{model}: cannot reach the Hugging Face Hub from this machine (offline?); download the model "
            "elsewhere and pass its folder as --nt_model"
        ) from None
    except HfHubHTTPError as e:
        raise FetchError(f"{model}: download failed: {e}".splitlines()[0]) from None
    except ValueError as e:  # malformed repository id
        raise FetchError(f"{model}: {e}".splitlines()[0]) from None
    if not (outdir / "config.json").is_file():
        raise FetchError(f"{model}: downloaded files contain no config.json; is this a transformers model?")
    click.echo(f"fetched {model} into {outdir}", err=True)


if __name__ == "__main__":
    main(prog_name="seqalignatac_fetch_model.py")
