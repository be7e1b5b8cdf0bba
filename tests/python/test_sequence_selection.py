"""The sequence route (extract, embed, the stage-1 network) uses the peaks prepare selected for it
(``var[keys.SEQUENCE_PEAK]``, peaks.bed); LSI uses every peak of accessibility.h5ad."""

from __future__ import annotations

import json

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch

import seqalignatac as sa
from seqalignatac import keys
from seqalignatac.models.stage1 import lsi, train
from seqalignatac.pp.mapping import run_prepare

torch.set_num_threads(1)

FAST = dict(hidden=(32,), bottleneck=8, batch_size=128, progress=False, threads=1, epochs=1, patience=1)
CAP = 400  # of the simulation's ~1,500 peaks


@pytest.fixture(scope="module")
def capped(sim, tmp_path_factory):
    """prepare with a cap below the peak count, then extract + k-mer embedding of its peaks.bed."""
    import pyfaidx

    from seqalignatac.embed.kmer import kmer_embed
    from seqalignatac.io.embedding_store import write_embeddings
    from seqalignatac.pp.sequences import extract_sequences

    d = tmp_path_factory.mktemp("capped")
    run_prepare(sim["reference"], sim["query"], sim["labels_key"], sim["labels_key"], d, max_sequence_peaks=CAP)
    extract_sequences(d / keys.PEAKS_BED, sim["fasta"], d / keys.PEAKS_FASTA)
    fa = pyfaidx.Fasta(str(d / keys.PEAKS_FASTA))
    ids = list(fa.keys())
    write_embeddings(d / keys.EMBEDDINGS, ids, kmer_embed([str(fa[i]) for i in ids], k=4))
    return d, ad.read_h5ad(d / keys.ACCESSIBILITY), ids


def test_peaks_bed_is_the_most_open_selected_peaks(capped):
    d, acc, ids = capped
    sel = acc.var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)
    assert acc.n_vars > CAP and sel.sum() == CAP
    bed = pd.read_csv(d / keys.PEAKS_BED, sep="\t", header=None)
    assert list(bed[3]) == list(acc.var_names[sel]) and sorted(ids) == sorted(acc.var_names[sel])
    n_open = (acc.var["n_cells_reference"] + acc.var["n_cells_query"]).to_numpy()
    assert n_open[sel].min() >= n_open[~sel].max()  # the most frequently open
    s = json.loads((d / keys.PREPARE_SUMMARY).read_text())
    assert s["peaks_kept"] == acc.n_vars and s["peaks_selected_for_sequence"] == CAP
    assert s["query_accessibility_retained_sequence"] < s["query_accessibility_retained"]


def test_network_trains_on_the_selected_peaks_and_lsi_on_all(capped):
    d, acc, _ = capped
    # embeddings of the selected peaks only, and the default missing_embeddings="error": no error
    _, s = train(acc, str(d / keys.EMBEDDINGS), **FAST)
    assert s["n_peaks"] == CAP and s["n_peaks_without_embedding"] == 0
    # an array aligned to all peaks is cut to the selected rows
    emb = np.random.default_rng(0).normal(size=(acc.n_vars, 5)).astype(np.float32)
    _, s = train(acc, emb, **FAST)
    assert s["n_peaks"] == CAP
    _, s = lsi(acc)
    assert s["n_peaks"] == acc.n_vars > CAP


def test_api_sequence_route_uses_the_selected_peaks(sim):
    acc = sa.pp.harmonize(sim["reference"], sim["query"], labels_key=sim["labels_key"], max_sequence_peaks=CAP)
    sel = acc.var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)
    sa.pp.peak_sequences(acc, fasta=sim["fasta"])
    assert (acc.var[keys.SEQUENCE][sel] != "").all() and (acc.var[keys.SEQUENCE][~sel] == "").all()
    sa.tl.embed_peaks(acc, model="kmer:4")
    emb = acc.varm[keys.PEAK_EMBEDDING]
    assert np.isfinite(emb[sel]).all() and np.isnan(emb[~sel]).all()
    sa.tl.cell_embedding(acc, method="nt", device="cpu", **{k: v for k, v in FAST.items() if k != "threads"})
    assert acc.uns[keys.UNS]["stage1"]["n_peaks"] == CAP
    assert acc.uns[keys.UNS]["stage1"]["n_peaks_without_embedding"] == 0


def test_a_matrix_without_the_column_is_used_whole(capped):
    d, acc, ids = capped
    old = acc[:, acc.var[keys.SEQUENCE_PEAK].to_numpy(dtype=bool)].copy()
    del old.var[keys.SEQUENCE_PEAK]
    _, s = train(old, str(d / keys.EMBEDDINGS), **FAST)
    assert s["n_peaks"] == CAP
