"""The data contract between steps: AnnData keys, table columns, file and folder names.

Every name that one step writes and another reads is defined here, once; ``docs/design.md`` is
checked against this module by ``tests/python/test_contract.py``.  The user's label column keeps
the user's name end to end: ``prepare`` stores it under that name and records it in
``uns[UNS][LABELS_KEY_UNS]``, where later steps find it.
"""

from __future__ import annotations

# --- AnnData -------------------------------------------------------------------------------------
UNS = "seqalignatac"  # uns namespace of every file the package writes
LABELS_KEY_UNS = "labels_key"  # uns[UNS][...]: the obs column holding the cell types
DEFAULT_LABELS_KEY = "cell_type"  # the reference's label column when none is named
DOMAIN = "domain"  # obs: which input a cell came from
REFERENCE = "reference"  # ... its values
QUERY = "query"
DOMAINS = (REFERENCE, QUERY)
ORIGINAL_ID = "original_id"  # obs: the cell's barcode in the user's file
ID_PREFIX = {REFERENCE: "ref:", QUERY: "query:"}  # keeps a barcode found in both inputs two cells
HAS_SIGNAL = "has_signal"  # obs: False for a cell with no accessible shared peak
EMBEDDING = "X_seqalignatac"  # obsm: stage-1 cell embedding
CLASSES = "classes"  # uns[UNS][...]: class order of PROBA

# obs/obsm written by annotate on the query
PREDICTION = "seqalignatac_prediction"
UNKNOWN_REASON_OBS = "seqalignatac_unknown_reason"
CONFIDENCE_OBS = "seqalignatac_confidence"
ENTROPY_OBS = "seqalignatac_entropy"
IS_UNKNOWN_OBS = "seqalignatac_unknown"
BEST_LABEL_OBS = "seqalignatac_best_label"
PROBA = "seqalignatac_proba"
HIDDEN = "seqalignatac_hidden"

# --- predictions.csv columns --------------------------------------------------------------------
CELL_ID = "cell_id"
PREDICTED_LABEL = "predicted_label"
CONFIDENCE = "confidence"
ENTROPY = "entropy"
IS_UNKNOWN = "is_unknown"
UNKNOWN_REASON = "unknown_reason"
BEST_LABEL = "best_label"
UNKNOWN = "Unknown"  # the label of a cell no reference class explains

# --- step folders and files ---------------------------------------------------------------------
PREPARE_DIR, EXTRACT_DIR, EMBED_DIR, TRAIN_DIR, ANNOTATE_DIR, REPORT_DIR = (
    "prepare", "extract", "embed", "train", "annotate", "report")
ACCESSIBILITY = "accessibility.h5ad"
PEAKS_BED = "peaks.bed"
PREPARE_SUMMARY = "prepare_summary.json"
PEAKS_FASTA = "peaks.fa"
EMBEDDINGS = "embeddings.h5"
CELL_EMBEDDINGS = "cell_embeddings.h5ad"
TRAIN_SUMMARY = "train_summary.json"
TRAINING_CURVE = "training_curve.tsv"
STAGE1_MODEL = "model.safetensors"
PREDICTIONS = "predictions.csv"
QUERY_ANNOTATED = "query_annotated.h5ad"
ANNOTATE_SUMMARY = "annotate_summary.json"
ANNOTATOR_DIR = "model"  # annotate/model/: the saved stage-2 model (stage2.annotator.Annotator.load)
METRICS = "metrics.json"
PER_CLASS = "per_class.csv"
CONFUSION = "confusion_matrix.csv"


def labels_key_of(adata, labels_key: str | None = None) -> str:
    """The obs column with the cell types: ``labels_key`` when given, else the one ``prepare`` recorded."""
    if labels_key:
        return labels_key
    recorded = (adata.uns.get(UNS) or {}).get(LABELS_KEY_UNS)
    return str(recorded) if recorded else DEFAULT_LABELS_KEY
