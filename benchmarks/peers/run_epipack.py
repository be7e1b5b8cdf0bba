"""Run EpiPack (PyPI ``epipackpy`` 1.0.2) on an exchange folder; runs inside its own venv.

``python run_epipack.py --exchange DIR --outdir OUT [--oor]`` writes ``OUT/predictions.csv``.

It follows the package's own tutorials step by step (ZhangLabGT/EpiPack, docs/source/
data_preparation.ipynb, reference_mapping.ipynb, cell_label_transfer.ipynb, global_oor.ipynb at
commit 8157a3c), with the values those tutorials use:

1. Per dataset, a binary peak autoencoder: ``make_binary``; keep peaks open in >= 5% of that
   dataset's cells; ``Peak_Model(count_enhancer=X.todense()).train_model(nepochs=150)``; ``get_z()``.
2. Reference model: ``PEIVI(count, peak_emb, batch_id, reg_mmd=10, reg_rec=1, reg_z_l2=1,
   use_batch_norm=False, use_layer_norm=True).train_model(pre_train_epoch=50, nepochs=100)``.
3. Query mapping: ``PEIVI_MAPPING(..., reg_mmd=10, reg_mmd_inter=100, reg_rec=0.1, reg_z_l2=0.1,
   use_batch_norm=False, use_layer_norm=True)``, ``query_model_initial(..., query_batch_num=1)``,
   ``train_model(nepochs=100)``.
4. ``Classifier(ref_latent_emb, ref_label, hidden_num=64, batchnorm=False).train_model(nepochs=100)``.
5. With ``--oor``: ``Global_oor_detector`` on the joint classification space,
   ``annotate(confidence_threshold=0.01)`` (the tutorial's recommended threshold); rejected cells
   become ``Unknown``.

One input differs, and cannot be helped here: EpiPack's shared "promoter" matrix is meant to be a
gene-activity matrix made by Signac/snapATAC2 from *fragment files* and a *gene annotation*.
Neither exists for this data on this machine (only the peak matrix was published; no hg19 gene
annotation can be downloaded), so the shared matrix is the shared peak matrix, normalized as the
tutorial normalizes gene scores (``normalize_total(1e4)``, ``log1p``).  ``query_model_initial``'s
``gene_feature_num`` (default 3000, the tutorial's gene count) is set to that matrix's width.
Seeds: numpy, random and torch seeded with 0 (the tutorials set none).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

import numpy as np  # noqa: E402
import scipy.sparse as sp  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exchange  # noqa: E402

SEED = 0


def _lognorm(x: sp.csr_matrix) -> np.ndarray:
    """scanpy's normalize_total(target_sum=1e4) + log1p, done sparse then densified for EpiPack."""
    totals = np.asarray(x.sum(axis=1)).ravel()
    totals[totals == 0] = 1.0
    y = (sp.diags(1e4 / totals) @ x).tocsr()
    y.data = np.log1p(y.data)
    return y.toarray().astype(np.float32)


def _peak_embedding(epk, x: sp.csr_matrix) -> np.ndarray:
    b = (x > 0).astype(np.float32).tocsc()
    keep = np.asarray(b.sum(axis=0)).ravel() >= int(b.shape[0] * 0.05)
    model = epk.ml.Peak_Model(count_enhancer=np.asarray(b[:, keep].todense()), device="cpu")
    model.train_model(nepochs=150)
    return model.get_z().detach().numpy(), int(keep.sum())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Run EpiPack on an exchange folder.")
    ap.add_argument("--exchange", required=True, type=Path)
    ap.add_argument("--outdir", required=True, type=Path)
    ap.add_argument("--oor", action="store_true", help="flag out-of-reference cells (Global_oor_detector)")
    args = ap.parse_args(argv)
    import epipackpy as epk

    np.random.seed(SEED)
    random.seed(SEED)
    torch.manual_seed(SEED)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    t0 = time.time()
    data = exchange.read(args.exchange)
    ref_pz, ref_kept = _peak_embedding(epk, data["ref_x"])
    query_pz, query_kept = _peak_embedding(epk, data["query_x"])
    ref_g, query_g = _lognorm(data["ref_x"]), _lognorm(data["query_x"])

    ref_batch = np.zeros(ref_g.shape[0], dtype=int)
    query_batch = np.zeros(query_g.shape[0], dtype=int)
    base = epk.ml.PEIVI(
        count=ref_g,
        peak_emb=ref_pz,
        batch_id=ref_batch,
        reg_mmd=10,
        reg_rec=1,
        reg_z_l2=1,
        use_batch_norm=False,
        use_layer_norm=True,
        device="cpu",
    )
    base.train_model(pre_train_epoch=50, nepochs=100)
    z_ref = base.get_latent()

    mapping = epk.ml.PEIVI_MAPPING(
        promoter_dt=query_g,
        enhancer_z=query_pz,
        ref_embedding=z_ref,
        batch_id=query_batch,
        reg_mmd=10,
        reg_mmd_inter=100,
        reg_rec=0.1,
        reg_z_l2=0.1,
        use_batch_norm=False,
        use_layer_norm=True,
        device="cpu",
    )
    query_model = epk.ml.query_model_initial(
        mapping, base.state_dict(), query_batch_num=1, gene_feature_num=ref_g.shape[1]
    )
    query_model.train_model(nepochs=100)
    z_query = query_model.get_latent()

    classes = np.array(sorted(set(data["ref_labels"])))
    y = np.searchsorted(classes, data["ref_labels"])
    clf = epk.ml.Classifier(ref_latent_emb=z_ref, ref_label=y, hidden_num=64, batchnorm=False, device="cpu")
    clf.train_model(nepochs=100)
    result, _ = clf.get_z(z_query)
    pred = classes[np.asarray(result, dtype=int)].astype(object)
    n_rejected = 0
    if args.oor:
        _, space = clf.get_z(np.concatenate([z_ref, z_query]))
        space = space.detach().cpu().numpy()
        goor = epk.ml.Global_oor_detector(space[: len(z_ref)], space[len(z_ref) :], y, result)
        reject, _score = goor.annotate(confidence_threshold=0.01)
        pred[np.asarray(reject, dtype=int)] = exchange.UNKNOWN
        n_rejected = len(reject)
    exchange.write_predictions(args.outdir / "predictions.csv", data["query_ids"], pred)
    info = {
        "tool": "EpiPack",
        "total_s": time.time() - t0,
        "oor": args.oor,
        "n_rejected": n_rejected,
        "ref_peaks_kept_for_peak_model": ref_kept,
        "query_peaks_kept_for_peak_model": query_kept,
        "seed": SEED,
    }
    (args.outdir / "epipack_run.json").write_text(json.dumps(info, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
