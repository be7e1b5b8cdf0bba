"""seqAlignATAC: scATAC-seq cell-type annotation from a labeled reference.

Python API, scanpy style (AnnData in, AnnData out; the same code the ``seqalignatac`` commands run)::

    import seqalignatac as sa
    acc = sa.pp.harmonize(reference, query, labels_key="cell_type")   # prepare
    sa.pp.peak_sequences(acc, fasta="genome.fa")                      # extract
    sa.tl.embed_peaks(acc, model="kmer")                              # embed
    sa.tl.cell_embedding(acc, method="lsi")                           # stage 1 (train)
    model = sa.tl.annotate(acc)                                       # stage 2 (annotate)
    sa.models.Annotator.load("annotate/model").predict(acc)           # a saved model, again

Submodules load on first use, so ``import seqalignatac`` stays light (no torch).
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _pkg_version

try:
    __version__ = _pkg_version("seqalignatac")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

_SUBMODULES = ("pp", "tl", "models", "datasets", "keys", "errors")
__all__ = ["__version__", *_SUBMODULES]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
