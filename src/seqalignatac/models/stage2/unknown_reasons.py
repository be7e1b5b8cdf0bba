"""Why a query cell is ``Unknown``: the ``unknown_reason`` column of predictions.csv (empty when labelled).

Kept apart from stage 2 (which imports torch) so the report and other readers can use the names.
"""

from __future__ import annotations

from seqalignatac import keys

REASON_COLUMN = keys.UNKNOWN_REASON
NO_SIGNAL = "no_signal"  # no accessible shared peak: stage 1 could not embed the cell, nothing to compare
LOW_CONFIDENCE = "low_confidence"  # --unknown confidence: below the held-out reference confidences
FAR_FROM_REFERENCE = "far_from_reference"  # --unknown distance: the per-cell distance test
FAR_NEIGHBOURHOOD = "far_neighbourhood"  # --unknown distance: the neighbourhood (unknown_smooth) test
FAR_CLUSTER = "far_cluster"  # --unknown distance: the query-cluster (unknown_cluster_z) test
REASONS = (NO_SIGNAL, LOW_CONFIDENCE, FAR_FROM_REFERENCE, FAR_NEIGHBOURHOOD, FAR_CLUSTER)
