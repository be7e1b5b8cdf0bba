"""seqAlignATAC: scATAC-seq cell-type annotation from a labeled reference.

Pipeline steps (each a ``seqalignatac`` subcommand and a Python function):
prepare -> extract -> embed -> train (stage 1) -> annotate (stage 2) -> report.
"""

from importlib.metadata import PackageNotFoundError, version as _pkg_version

try:
    __version__ = _pkg_version("seqalignatac")
except PackageNotFoundError:  # running from a source tree without install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
