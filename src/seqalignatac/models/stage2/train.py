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

from seqalignatac.device import resolve_device
from seqalignatac.models.stage2.graphs import build_graph
from seqalignatac.models.stage2.inputs import SplitCells
from seqalignatac.models.stage2.model import A2GNN, Graph, grl_rate
from seqalignatac.progress import progress_enabled

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
    # Extensions beyond A2GNN (defaults chosen as docs/stage2.md explains).
    ensemble: int = 3  # models trained with seeds seed..seed+n-1; their probabilities are averaged
    knn_mix: float = 0.6  # final probabilities = (1 - w - v) GDA + w kNN label transfer + v logistic regression
    knn_mix_k: int = 50  # neighbours of that kNN (0: annotate's knn_k / --knn-k)
    knn_vote_power: float = 0.5  # that kNN's class votes divided by (training cells of the class)^power (0: plain)
    linear_mix: float = 0.1  # weight of a class-balanced logistic regression on the input in the final mix
    linear_c: float = 1.0  # its inverse L2 regularization strength (scikit-learn's C)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainResult:
    model: A2GNN  # the first ensemble member (its hidden layer and curve are the ones reported)
    query_proba: np.ndarray
    reference_proba: np.ndarray
    query_hidden: np.ndarray
    reference_hidden: np.ndarray
    curve: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    models: list[A2GNN] = field(default_factory=list)  # every ensemble member, the first one included


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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


@dataclass
class GDAInputs:
    """Tensors and graphs of one stage-2 problem, built once and shared by every ensemble member."""

    xs: torch.Tensor
    xt: torch.Tensor
    gs: Graph
    gt: Graph

    @classmethod
    def build(
        cls,
        x_ref: np.ndarray,
        x_query: np.ndarray,
        a_ref: sp.csr_matrix,
        a_query: sp.csr_matrix,
        config: GDAConfig,
        device: torch.device,
    ) -> GDAInputs:
        return cls(
            xs=torch.from_numpy(np.ascontiguousarray(x_ref, dtype=np.float32)).to(device),
            xt=torch.from_numpy(np.ascontiguousarray(x_query, dtype=np.float32)).to(device),
            gs=Graph(a_ref, device, config.chunk_nnz),
            gt=Graph(a_query, device, config.chunk_nnz),
        )


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
) -> TrainResult:
    """Train on the reference cells in ``train_mask``; return class probabilities for all cells.

    With ``config.ensemble > 1`` that many models (seeds ``seed``, ``seed + 1``, ...) are trained
    and their probabilities averaged (:func:`ensemble_proba`); the first model's hidden layer and
    curve are returned, every model in ``models``.
    """
    t0 = time.perf_counter()
    inp = GDAInputs.build(x_ref, x_query, a_ref, a_query, config, device)
    y = torch.from_numpy(y_ref.astype(np.int64)).to(device)
    mask = torch.from_numpy(train_mask.astype(bool)).to(device)
    dom_y = torch.cat(
        [torch.zeros(x_ref.shape[0], dtype=torch.long), torch.ones(x_query.shape[0], dtype=torch.long)]
    ).to(device)
    counts = np.bincount(y_ref[train_mask], minlength=n_classes).astype(np.float64)
    runs = [
        _train_one(inp, y, mask, dom_y, counts, config, device=device, seed=seed + i, progress=progress)
        for i in range(max(1, config.ensemble))
    ]
    res = ensemble_proba([model for model, _ in runs], inp, config)
    res.curve = runs[0][1]
    res.seconds = time.perf_counter() - t0
    return res


def ensemble_proba(models: list[A2GNN], inp: GDAInputs, config: GDAConfig) -> TrainResult:
    """Class probabilities of every cell from trained models (eval mode, averaged over the models);
    hidden layers of the first.  Training and :class:`~.annotator.Annotator` both predict here."""
    outs = []
    for model in models:
        model.to(inp.xs.device).eval()
        with torch.no_grad():
            ls, _, hs = model(inp.xs, inp.gs, config.source_depth, config.head_depth)
            lt, _, ht = model(inp.xt, inp.gt, config.target_depth, config.head_depth)
        outs.append(
            (F.softmax(lt, dim=1).cpu().numpy(), F.softmax(ls, dim=1).cpu().numpy(), ht.cpu().numpy(), hs.cpu().numpy())
        )
        model.cpu()
    query_proba, reference_proba, query_hidden, reference_hidden = outs[0]
    if len(outs) > 1:
        query_proba = np.mean([o[0] for o in outs], axis=0)
        reference_proba = np.mean([o[1] for o in outs], axis=0)
    return TrainResult(
        model=models[0],
        query_proba=query_proba,
        reference_proba=reference_proba,
        query_hidden=query_hidden,
        reference_hidden=reference_hidden,
        models=list(models),
    )


def _train_one(
    inp: GDAInputs,
    y: torch.Tensor,
    mask: torch.Tensor,
    dom_y: torch.Tensor,
    counts: np.ndarray,
    config: GDAConfig,
    *,
    device: torch.device,
    seed: int = 0,
    progress: bool | None = None,
) -> tuple[A2GNN, list[dict]]:
    """One seeded A2GNN model and its training curve; ``counts`` = training reference cells per class."""
    seed_everything(seed)
    xs, xt, gs, gt = inp.xs, inp.xt, inp.gs, inp.gt
    w = class_weights(counts, config.class_weight)
    weight = None if w is None else torch.tensor(w, dtype=torch.float32, device=device)
    model = A2GNN(xs.shape[1], counts.size, hidden=config.hidden, dropout=config.dropout).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    curve: list[dict] = []
    bar = tqdm(range(config.epochs), desc="stage 2 (GDA)", disable=not progress_enabled(progress), leave=False)
    for epoch in bar:
        model.train()
        rate = grl_rate(min(epoch / config.epochs, 1.0))
        logits_s, dom_s, _ = model(xs, gs, config.source_depth, config.head_depth, rate)
        _, dom_t, _ = model(xt, gt, config.target_depth, 0, rate)  # query class logits are not needed
        cls_loss = F.cross_entropy(logits_s[mask], y[mask], weight=weight)
        dom_loss = F.cross_entropy(torch.cat([dom_s, dom_t]), dom_y)
        loss = cls_loss + config.alpha * dom_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        curve.append(
            {
                "epoch": epoch + 1,
                "loss": float(loss.detach()),
                "cls_loss": float(cls_loss.detach()),
                "domain_loss": float(dom_loss.detach()),
                "grl": rate,
            }
        )
        bar.set_postfix(loss=f"{curve[-1]['loss']:.3f}")
    return model, curve


def domain_graphs(split: SplitCells, config: GDAConfig, threads: int | None, seed: int):
    """The reference and query kNN graphs (normalized adjacencies), built the same way every time."""
    a_ref = build_graph(split.x_ref, config.k, what="reference", method=config.knn_method, threads=threads, seed=seed)
    a_query = build_graph(split.x_query, config.k, what="query", method=config.knn_method, threads=threads, seed=seed)
    return a_ref, a_query


def fit_gda(
    split: SplitCells,
    y_ref: np.ndarray,
    train_mask: np.ndarray,
    n_classes: int,
    config: GDAConfig,
    device: str,
    seed: int,
    threads: int | None,
    progress: bool | None,
) -> tuple[TrainResult, dict]:
    """Train ``config.ensemble`` A2GNN models on the two graphs: (result, graph sizes)."""
    a_ref, a_query = domain_graphs(split, config, threads, seed)
    res = train_gda(
        split.x_ref,
        np.maximum(y_ref, 0),
        train_mask,
        split.x_query,
        a_ref,
        a_query,
        n_classes,
        config,
        device=resolve_device(device),
        seed=seed,
        progress=progress,
    )
    return res, {"reference_nnz": int(a_ref.nnz), "query_nnz": int(a_query.nnz)}


def set_threads(threads: int | None) -> None:
    if threads:
        import torch

        torch.set_num_threads(int(threads))
