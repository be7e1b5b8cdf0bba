"""Stage 2: graph domain adaptation (A2GNN) from labeled reference cells to query cells.

``annotate(cells)`` -> (annotated query AnnData, summary); ``--method knn`` is the
Embedding+kNN baseline on the same embeddings.  ``annotate_full(cells).annotator`` is the fitted
model (:class:`Annotator`: ``save``, ``load``, ``predict``).
"""

from seqalignatac.models.stage2.annotator import Annotator
from seqalignatac.models.stage2.api import annotate, annotate_full
from seqalignatac.models.stage2.train import GDAConfig

__all__ = ["annotate", "annotate_full", "GDAConfig", "Annotator"]
