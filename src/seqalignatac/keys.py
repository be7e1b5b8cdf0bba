"""The data contract between steps: AnnData keys, table columns, file and folder names.

Every name that one step writes and another reads is defined here, once, one per line with what
it is for; ``docs/design.md`` carries the table :func:`contract_table` makes from these lines
(``python -m seqalignatac.keys`` prints it; a test keeps the two equal).  The user's label column
keeps the user's name end to end: ``prepare`` stores it under that name and records the name in
``uns['seqalignatac']['labels_key']``, where later steps find it.
"""

from __future__ import annotations

import inspect
import re

# ## AnnData keys
UNS = "seqalignatac"  # uns: the package's namespace in every file it writes
LABELS_KEY = "labels_key"  # uns[UNS], samplesheet column, summaries: the obs column with the cell types
DEFAULT_LABELS_KEY = "cell_type"  # the reference's label column when none is named
DOMAIN = "domain"  # obs: which input a cell came from (categorical)
REFERENCE = "reference"  # obs[DOMAIN] value of reference cells
QUERY = "query"  # obs[DOMAIN] value of query cells
ORIGINAL_ID = "original_id"  # obs: the cell's barcode in the user's file
N_PEAKS = "n_peaks"  # obs: accessible shared peaks of the cell
HAS_SIGNAL = "has_signal"  # obs: False for a cell with no accessible shared peak (no embedding)
SEQUENCE_PEAK = "sequence_peak"  # var: True for the peaks selected for the sequence route (peaks.bed)
SEQUENCE = "sequence"  # var: the peak's DNA sequence (sa.pp.peak_sequences)
PEAK_EMBEDDING = "X_peak_embedding"  # varm: the peak's sequence embedding (sa.tl.embed_peaks)
EMBEDDING = "X_seqalignatac"  # obsm: stage-1 cell embedding
CLASSES = "classes"  # uns[UNS]: reference classes, the column order of PROBA
PREDICTION = "seqalignatac_prediction"  # obs: predicted cell type or Unknown (query cells)
UNKNOWN_REASON_OBS = "seqalignatac_unknown_reason"  # obs: why a cell is Unknown
CONFIDENCE_OBS = "seqalignatac_confidence"  # obs: probability of the best class
ENTROPY_OBS = "seqalignatac_entropy"  # obs: entropy of the class probabilities
IS_UNKNOWN_OBS = "seqalignatac_unknown"  # obs: True for Unknown cells
BEST_LABEL_OBS = "seqalignatac_best_label"  # obs: most probable class, Unknown or not
PROBA = "seqalignatac_proba"  # obsm: class probabilities (cells x classes)
HIDDEN = "seqalignatac_hidden"  # obsm: stage-2 encoder output (gda)
QUERY_CLUSTER_OBS = "seqalignatac_query_cluster"  # obs: Leiden cluster of the query cell
NOVELTY_OBS = "seqalignatac_novelty"  # obs: how far the cell's neighbourhood is from every reference class

# ## predictions.csv columns
CELL_ID = "cell_id"  # the query cell's barcode in the user's query file
PREDICTED_LABEL = "predicted_label"  # cell type, or UNKNOWN
CONFIDENCE = "confidence"  # probability of the best class
ENTROPY = "entropy"  # entropy of the class probabilities
IS_UNKNOWN = "is_unknown"  # true when predicted_label is UNKNOWN
UNKNOWN_REASON = "unknown_reason"  # no_signal, low_confidence, far_from_reference, far_neighbourhood, far_cluster
BEST_LABEL = "best_label"  # most probable class, Unknown or not
QUERY_CLUSTER = "query_cluster"  # Leiden cluster of the query cells (0 = the largest)
NOVELTY = "novelty"  # z-score of the neighbourhood's distance to the closest reference class
UNKNOWN = "Unknown"  # the label of a cell no reference class explains

# ## query_clusters.csv columns (and QUERY_CLUSTER)
N_CELLS = "n_cells"  # query cells in the cluster
TOP_LABEL = "top_label"  # most common best_label of the cluster's cells
TOP_LABEL_SHARE = "top_label_share"  # share of the cluster's cells with top_label
UNKNOWN_SHARE = "unknown_share"  # share of the cluster's cells called Unknown
MEDIAN_NOVELTY = "median_novelty"  # median novelty of the cluster's cells
EXPLAINED = "explained"  # False: the reference does not explain the cluster (a novel population)

# ## Step folders
PREPARE_DIR = "prepare"  # harmonized accessibility
EXTRACT_DIR = "extract"  # peak sequences
EMBED_DIR = "embed"  # peak sequence embeddings
TRAIN_DIR = "train"  # stage-1 cell embeddings
ANNOTATE_DIR = "annotate"  # stage-2 labels
REPORT_DIR = "report"  # HTML report and MultiQC table

# ## Files
ACCESSIBILITY = "accessibility.h5ad"  # prepare: reference + query cells x shared peaks, 0/1
PEAKS_BED = "peaks.bed"  # prepare: the shared peaks selected for the sequence route
PREPARE_SUMMARY = "prepare_summary.json"  # prepare: mapping and filter counts
PEAKS_FASTA = "peaks.fa"  # extract: one record per peak
EMBEDDINGS = "embeddings.h5"  # embed: the peak embedding store
CELL_EMBEDDINGS = "cell_embeddings.h5ad"  # train: every cell with obsm[EMBEDDING]
TRAIN_SUMMARY = "train_summary.json"  # train: method, dims, scores, epochs
TRAINING_CURVE = "training_curve.tsv"  # train and annotate: loss per epoch
STAGE1_MODEL = "model.safetensors"  # train: the stage-1 network's weights
PREDICTIONS = "predictions.csv"  # annotate: one row per query cell
QUERY_CLUSTERS = "query_clusters.csv"  # annotate: one row per query cluster, explained by the reference or not
QUERY_ANNOTATED = "query_annotated.h5ad"  # annotate: the query with the obs/obsm keys above
ANNOTATE_SUMMARY = "annotate_summary.json"  # annotate: counts, Unknown thresholds, settings
ANNOTATOR_DIR = "model"  # annotate: the saved stage-2 model (sa.models.Annotator.load)
METRICS = "metrics.json"  # annotate, evaluate: scores when the query has labels
PER_CLASS = "per_class.csv"  # annotate, evaluate: precision, recall, F1 per class
CONFUSION = "confusion_matrix.csv"  # annotate, evaluate: rows truth, columns predictions

DOMAINS = (REFERENCE, QUERY)
STEPS = (PREPARE_DIR, EXTRACT_DIR, EMBED_DIR, TRAIN_DIR, ANNOTATE_DIR, REPORT_DIR)
ID_PREFIX = {REFERENCE: "ref:", QUERY: "query:"}  # prepare's cell ids keep a barcode in both inputs two cells
RESERVED_OBS = (DOMAIN, ORIGINAL_ID, N_PEAKS, HAS_SIGNAL)  # a label column cannot have one of these names


def labels_key_of(adata, labels_key: str | None = None) -> str:
    """The obs column with the cell types: ``labels_key`` when given, else the one ``prepare`` recorded."""
    if labels_key:
        return labels_key
    recorded = (adata.uns.get(UNS) or {}).get(LABELS_KEY)
    return str(recorded) if recorded else DEFAULT_LABELS_KEY


_LINE = re.compile(r'^([A-Z][A-Z0-9_]*) = "([^"]*)"\s*#\s*(.*)$')


def contract_table() -> str:
    """The markdown table of every name above (docs/design.md, section "The contract")."""
    out: list[str] = []
    module = inspect.getmodule(contract_table)
    assert module is not None  # a function defined in this module always has it
    for line in inspect.getsource(module).splitlines():
        if line.startswith("# ## "):
            out += ["", f"**{line[5:]}**", "", "| name in `seqalignatac.keys` | value | what it is |", "|---|---|---|"]
        elif m := _LINE.match(line):
            out.append(f"| `{m[1]}` | `{m[2]}` | {m[3].replace('|', '/')} |")
    return "\n".join(out).strip() + "\n"


if __name__ == "__main__":
    print(contract_table(), end="")
