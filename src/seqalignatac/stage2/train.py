"""Full-batch training of the A2GNN model on a reference graph and a query graph."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
import torch
from torch.nn import functional as F
from tqdm.auto import tqdm
from ..progress import progress_enabled

from .model import A2GNN, Graph, grl_rate

log = logging.getLogger(__name__)


@dataclass
class GDAConfig:
    """Stage-2 hyper-parameters (defaults chosen as docs/stage2.md explains)."""

    k: int = 15  # neighbours per cell in each domain's kNN graph
    source_depth: int = 0  # propagation steps of conv2 on the labeled reference (A2GNN: 0)
    target_depth: int = 2  # K: propagation steps of conv2 on the query (A2GNN: 30; see docs/stage2.md)
    head_depth: int = 1  # propagation steps of the classifier graph conv (A2GNN: 1)
    hidden: int = 64  # A2GNN: 128
    dropout: float = 0.1
    alpha: float = 0.1  # weight of the domain loss (A2GNN: 0.001)
    epochs: int = 100  # A2GNN: 200
    lr: float = 0.01
    weight_decay: float = 5e-4
    class_weight: str = "balanced"  # "balanced" (inverse class frequency), "sqrt" (its square root) or "none"
    knn_method: str = "auto"  # auto | exact | faiss
    chunk_nnz: int = 50_000_000
    # Extensions beyond A2GNN (options; defaults chosen as docs/stage2.md explains).
    input_norm: str = "none"  # none | l2 | zscore | l2+zscore: per-cell L2 and/or per-feature z-score (reference stats)
    self_train_epochs: int = 0  # second phase: extra epochs with confident query pseudo-labels (0 = off)
    pseudo_fraction: float = 0.5  # per predicted class, the most confident fraction of query cells pseudo-labeled
    pseudo_weight: float = 1.0  # weight of the pseudo-label NLL
    pseudo_agree: bool = False  # pseudo-label only query cells whose GDA and kNN (input space) arg-max agree
    ensemble: int = 3  # models trained with seeds seed..seed+n-1; their probabilities are averaged
    knn_mix: float = 0.6  # final probabilities = (1 - w - v) GDA + w kNN label transfer + v logistic regression
    knn_space: str = "input"  # where that kNN runs: "input" (the embedding) or "hidden" (GDA's encoder output)
    knn_mix_k: int = 50  # neighbours of that kNN (0: annotate's knn_k / --knn-k)
    knn_vote_power: float = 0.5  # that kNN's class votes divided by (training cells of the class)^power (0: plain)
    linear_mix: float = 0.1  # weight of a class-balanced logistic regression on the input in the final mix
    linear_c: float = 1.0  # its inverse L2 regularization strength (scikit-learn's C)
    label_smoothing: float = 0.0  # label smoothing of the reference (and pseudo-label) NLL
    logit_adjust: float = 0.0  # tau of logit-adjusted training (Menon et al. 2021): logits + tau log prior in the loss
    im_weight: float = 0.0  # SHOT information maximisation on the query: weight of (entropy - diversity)
    im_diversity: float = 1.0  # weight of the diversity term (entropy of the mean query prediction) inside it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: A2GNN
    query_proba: np.ndarray
    reference_proba: np.ndarray
    query_hidden: np.ndarray
    reference_hidden: np.ndarray
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


INPUT_NORMS = ("none", "l2", "zscore", "l2+zscore")
CLASS_WEIGHTS = ("balanced", "sqrt", "none")


def class_weights(counts: np.ndarray, mode: str) -> np.ndarray | None:
    """Per-class loss weights from reference class sizes: inverse frequency ("balanced") or its square
    root ("sqrt"); None for "none".  (The weighted mean loss makes their overall scale irrelevant.)"""
    if mode == "none":
        return None
    if mode not in ("balanced", "sqrt"):
        raise ValueError(f"class_weight must be one of {', '.join(CLASS_WEIGHTS)}, not {mode!r}")
    counts = np.asarray(counts, dtype=np.float64)
    w = np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / max((counts > 0).sum(), 1), 0.0)
    return np.sqrt(w) if mode == "sqrt" else w


def information_maximisation(logits: torch.Tensor, diversity: float = 1.0) -> torch.Tensor:
    """SHOT's IM loss (Liang et al. 2020): mean per-cell prediction entropy minus ``diversity`` times
    the entropy of the mean prediction (confident, yet not collapsed onto a few classes)."""
    logp = F.log_softmax(logits, dim=1)
    p = logp.exp()
    ent = -(p * logp).sum(1).mean()
    mean_p = p.mean(0)
    div = -(mean_p * torch.log(mean_p + 1e-8)).sum()
    return ent - diversity * div


def normalize_inputs(x_ref: np.ndarray, x_query: np.ndarray, mode: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-cell L2 and/or per-feature z-score with the *reference* mean and sd (no query statistics
    beyond the transform itself, so the query's shift is left for the domain adaptation)."""
    if mode not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {', '.join(INPUT_NORMS)}, not {mode!r}")
    xr, xq = x_ref.astype(np.float32), x_query.astype(np.float32)
    if mode in ("l2", "l2+zscore"):
        xr = xr / np.maximum(np.linalg.norm(xr, axis=1, keepdims=True), 1e-12)
        xq = xq / np.maximum(np.linalg.norm(xq, axis=1, keepdims=True), 1e-12)
    if mode in ("zscore", "l2+zscore"):
        mu, sd = xr.mean(axis=0), xr.std(axis=0)
        sd = np.where(sd > 1e-8, sd, 1.0)
        xr, xq = (xr - mu) / sd, (xq - mu) / sd
    return np.ascontiguousarray(xr, dtype=np.float32), np.ascontiguousarray(xq, dtype=np.float32)


def pseudo_labels(proba: np.ndarray, fraction: float, agree: np.ndarray | None = None) -> np.ndarray:
    """Class-balanced confident pseudo-labels: per predicted class, its most confident ``fraction``
    of query cells keep their arg-max label; the others get -1 (scNym/Cellcano-style self-training).
    With ``agree`` (a second classifier's probabilities) only cells whose two arg-max agree qualify."""
    pred, conf = proba.argmax(1), proba.max(1)
    out = np.full(pred.shape, -1, dtype=np.int64)
    ok = np.ones(pred.shape, dtype=bool) if agree is None else agree.argmax(1) == pred
    for c in np.unique(pred):
        idx = np.flatnonzero((pred == c) & ok)
        n = int(np.ceil(fraction * idx.size))
        out[idx[np.argsort(-conf[idx], kind="stable")[:n]]] = c
    return out


@dataclass
class _Inputs:
    """Tensors and graphs of one stage-2 problem, built once and shared by every ensemble member."""

    xs: torch.Tensor
    xt: torch.Tensor
    gs: Graph
    gt: Graph
    y: torch.Tensor
    mask: torch.Tensor
    dom_y: torch.Tensor


def train_gda(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    train_mask: np.ndarray,
    x_query: np.ndarray,
    a_ref: sp.csr_matrix,
    a_query: sp.csr_matrix,
    n_classes: int,
    config: GDAConfig,
    *,
    device: torch.device,
    seed: int = 0,
    progress: bool | None = None,
    query_knn_proba: np.ndarray | None = None,
) -> TrainResult:
    """Train on the reference cells in ``train_mask``; return class probabilities for all cells.

    With ``config.ensemble > 1`` that many models (seeds ``seed``, ``seed + 1``, ...) are trained
    and their probabilities averaged; the first model, its hidden layer and its curve are returned.
    """
    t0 = time.perf_counter()
    x_ref, x_query = normalize_inputs(x_ref, x_query, config.input_norm)
    inp = _Inputs(
        xs=torch.from_numpy(np.ascontiguousarray(x_ref, dtype=np.float32)).to(device),
        xt=torch.from_numpy(np.ascontiguousarray(x_query, dtype=np.float32)).to(device),
        gs=Graph(a_ref, device, config.chunk_nnz),
        gt=Graph(a_query, device, config.chunk_nnz),
        y=torch.from_numpy(y_ref.astype(np.int64)).to(device),
        mask=torch.from_numpy(train_mask.astype(bool)).to(device),
        dom_y=torch.cat([torch.zeros(x_ref.shape[0], dtype=torch.long),
                         torch.ones(x_query.shape[0], dtype=torch.long)]).to(device),
    )
    counts = np.bincount(y_ref[train_mask], minlength=n_classes).astype(np.float64)
    runs = [
        _train_one(inp, counts, config, device=device, seed=seed + i, progress=progress,
                   query_knn_proba=query_knn_proba)
        for i in range(max(1, config.ensemble))
    ]
    first = runs[0]
    if len(runs) > 1:
        first.query_proba = np.mean([r.query_proba for r in runs], axis=0)
        first.reference_proba = np.mean([r.reference_proba for r in runs], axis=0)
    first.seconds = time.perf_counter() - t0
    return first


def _train_one(
    inp: _Inputs,
    counts: np.ndarray,
    config: GDAConfig,
    *,
    device: torch.device,
    seed: int = 0,
    progress: bool | None = None,
    query_knn_proba: np.ndarray | None = None,
) -> TrainResult:
    """One seeded A2GNN model; ``counts`` = training reference cells per class."""
    seed_everything(seed)
    t0 = time.perf_counter()
    xs, xt, gs, gt, y, mask, dom_y = inp.xs, inp.xt, inp.gs, inp.gt, inp.y, inp.mask, inp.dom_y
    n_classes = counts.size

    w = class_weights(counts, config.class_weight)
    weight = None if w is None else torch.tensor(w, dtype=torch.float32, device=device)
    # Logit adjustment: train on logits + tau log(prior), predict with the raw logits.
    adjust = None
    if config.logit_adjust:
        prior = np.maximum(counts, 1.0) / max(counts.sum(), 1.0)
        adjust = torch.tensor(config.logit_adjust * np.log(prior), dtype=torch.float32, device=device)
    smooth = float(config.label_smoothing)

    def nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if adjust is not None:
            logits = logits + adjust
        if smooth <= 0:
            return F.cross_entropy(logits, target, weight=weight)
        # Label smoothing weighted by the *target* class only (torch's label_smoothing with class
        # weights also weights the uniform part per class, which pushes mass onto rare classes).
        logp = F.log_softmax(logits, dim=1)
        per = -(1 - smooth) * logp.gather(1, target[:, None])[:, 0] - smooth * logp.mean(1)
        wt = weight[target] if weight is not None else torch.ones_like(per)
        return (wt * per).sum() / wt.sum().clamp_min(1e-12)

    model = A2GNN(xs.shape[1], n_classes, hidden=config.hidden, dropout=config.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    curve: list[dict] = []
    total = config.epochs + max(0, config.self_train_epochs)
    bar = tqdm(range(total), desc="stage 2 (GDA)", disable=not progress_enabled(progress), leave=False)
    pseudo: torch.Tensor | None = None
    for epoch in bar:
        if epoch == config.epochs and config.self_train_epochs > 0:
            # Phase 2: confident, class-balanced query pseudo-labels from the phase-1 model.
            model.eval()
            with torch.no_grad():
                lt, _, _ = model(xt, gt, config.target_depth, config.head_depth)
            pseudo = torch.from_numpy(
                pseudo_labels(F.softmax(lt, dim=1).cpu().numpy(), config.pseudo_fraction,
                              query_knn_proba if config.pseudo_agree else None)
            ).to(device)
        model.train()
        rate = grl_rate(min(epoch / config.epochs, 1.0))
        logits_s, dom_s, _ = model(xs, gs, config.source_depth, config.head_depth, rate)
        # Query class logits are only needed for the pseudo-label phase and the IM loss.
        need_t = pseudo is not None or config.im_weight > 0
        logits_t, dom_t, _ = model(xt, gt, config.target_depth, config.head_depth if need_t else 0, rate)
        cls_loss = nll(logits_s[mask], y[mask])
        dom_loss = F.cross_entropy(torch.cat([dom_s, dom_t]), dom_y)
        loss = cls_loss + config.alpha * dom_loss
        pl_loss = torch.zeros(())
        im_loss = torch.zeros(())
        if pseudo is not None and bool((pseudo >= 0).any()):
            keep = pseudo >= 0
            pl_loss = nll(logits_t[keep], pseudo[keep])
            loss = loss + config.pseudo_weight * pl_loss
        if config.im_weight > 0:
            # Ramped in with the same schedule as the gradient reversal.
            im_loss = information_maximisation(logits_t, config.im_diversity)
            loss = loss + config.im_weight * rate * im_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(
            {
                "epoch": epoch + 1,
                "loss": float(loss.detach()),
                "cls_loss": float(cls_loss.detach()),
                "domain_loss": float(dom_loss.detach()),
                "pseudo_loss": float(pl_loss.detach()),
                "im_loss": float(im_loss.detach()),
                "grl": rate,
            }
        )
        bar.set_postfix(loss=f"{curve[-1]['loss']:.3f}")

    model.eval()
    with torch.no_grad():
        ls, _, hs = model(xs, gs, config.source_depth, config.head_depth)
        lt, _, ht = model(xt, gt, config.target_depth, config.head_depth)
    return TrainResult(
        model=model.cpu(),
        query_proba=F.softmax(lt, dim=1).cpu().numpy(),
        reference_proba=F.softmax(ls, dim=1).cpu().numpy(),
        query_hidden=ht.cpu().numpy(),
        reference_hidden=hs.cpu().numpy(),
        curve=curve,
        seconds=time.perf_counter() - t0,
    )
