"""Click wrappers: embed, embed-merge, embed-export, nt-tiny."""

from __future__ import annotations

import click

from seqalignatac.cli.options import progress_option
from seqalignatac.errors import InputError
from seqalignatac.params import DEVICE, POSITIVE_INT, SEED, THREADS


@click.command("embed")
@click.option(
    "--fasta", required=True, type=click.Path(dir_okay=False), help="Peak FASTA (from `extract`), plain or gzip."
)
@click.option(
    "--model",
    required=True,
    help="Hub name (InstaDeepAI/nucleotide-transformer-...), a local hub-layout directory, or kmer[:K].",
)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output embedding store (.h5).")
@click.option("--device", default="auto", show_default=True, type=DEVICE, help="auto, cpu or cuda (cuda:N).")
@click.option(
    "--dtype",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "float32", "bfloat16", "float16"]),
    help="Compute dtype; auto = bfloat16 on GPU, float32 on CPU.",
)
@click.option(
    "--batch-size",
    type=POSITIVE_INT,
    default=None,
    help="Peaks per batch (default: chosen from the model; halves on CUDA out-of-memory).",
)
@click.option("--shard", default=None, metavar="I/N", help="Embed only block I of N (1-based); merge with embed-merge.")
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Content-addressed cache (default $SEQALIGNATAC_CACHE or ~/.cache/seqalignatac/embeddings); also makes reruns resume.",
)
@click.option("--threads", type=THREADS, default=None, help="CPU threads for torch.")
@progress_option("Progress bar (peaks/s)")
def embed_command(fasta, model, out, device, dtype, batch_size, shard, cache_dir, threads, progress) -> None:
    """Embed peak sequences with a Nucleotide Transformer (or k-mer spectra) into EMB.h5."""
    from seqalignatac.embed.runner import embed_fasta

    r = embed_fasta(fasta, model, out, device=device, dtype=dtype, batch_size=batch_size, shard=shard,
                    cache_dir=cache_dir, threads=threads, progress=progress)  # fmt: skip
    click.echo(f"{out}: {r.n_peaks} peaks x {r.dim} ({r.n_cached} unique sequences from cache, "
               f"{r.n_computed} computed) in {r.seconds:.1f} s", err=True)  # fmt: skip


@click.command("embed-merge")
@click.argument("parts", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Merged embedding store (.h5).")
def embed_merge_command(parts, out) -> None:
    """Merge embedding stores (e.g. the shards of one FASTA) into one, in FASTA order."""
    from seqalignatac.io.embedding_store import merge_embeddings

    s = merge_embeddings(list(parts), out)
    click.echo(f"{out}: {s['n']} peaks x {s['dim']} from {s['parts']} parts", err=True)


@click.command("embed-export")
@click.argument("emb", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Output .npz with arrays ids, embeddings.")
def embed_export_command(emb, out) -> None:
    """Export an embedding store to .npz: `ids` (str) and `embeddings` (float32)."""
    from seqalignatac.io.embedding_store import export_npz

    if not str(out).endswith(".npz"):
        raise InputError("--out must end in .npz", out)
    s = export_npz(emb, out)
    click.echo(f"{out}: {s['n']} ids x {s['dim']}", err=True)


@click.command("nt-tiny")
@click.option("--outdir", required=True, type=click.Path(file_okay=False), help="Directory to write (hub layout).")
@click.option("--arch", type=click.Choice(["v1", "v2"]), default="v2", show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
def nt_tiny_command(outdir, arch, seed) -> None:
    """Write a tiny randomly initialized Nucleotide Transformer with the real vocabulary."""
    from seqalignatac.embed.tiny import write_tiny

    write_tiny(outdir, arch=arch, seed=seed)
    click.echo(f"{outdir}: tiny NT {arch} (seed {seed})", err=True)
