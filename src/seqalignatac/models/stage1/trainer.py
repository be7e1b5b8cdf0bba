"""Training loop of the stage-1 network (reference and query cells in one model).

See :mod:`.model` for the network and :mod:`.batches` for how steps are cut from the sparse
matrix.  Early stopping watches the AUROC on held-out peaks (every cell); the state of the best
epoch is what gets written.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
import torch

from seqalignatac import keys
from seqalignatac.device import resolve_device
from seqalignatac.errors import InputError
from seqalignatac.models.stage1.batches import DEFAULT_MAX_ENTRIES, PeakCellBatches, cell_block_size, gather_rows
from seqalignatac.models.stage1.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from seqalignatac.models.stage1.config import TrainConfig
from seqalignatac.models.stage1.data import (
    aligned_embeddings,
    binarized_csr,
    domains,
    drop_peaks_without_embedding,
    nonempty_cells,
    peaks_by_cells,
    sequence_peaks,
)
from seqalignatac.models.stage1.model import CellHead, PeakEncoder, output_step
from seqalignatac.models.stage1.options import CHECKPOINT_MINUTES, MISSING_EMBEDDINGS
from seqalignatac.models.stage1.outputs import (
    cell_embeddings_adata,
    new_figure,
    save_figure,
    stage1_folder,
    write_results,
)
from seqalignatac.params import THREADS, check
from seqalignatac.progress import progress_enabled

log = logging.getLogger(__name__)


def train(
    adata,
    embeddings: Any,
    config: TrainConfig | None = None,
    device: str = "auto",
    threads: int | None = None,
    outdir: str | os.PathLike | None = None,
    resume: bool = False,
    checkpoint_minutes: float = 10.0,
    checkpoint_steps: int | None = None,
    progress: bool | None = None,
    path: str | os.PathLike | None = None,
    callback: Callable[[int], None] | None = None,
    free_input: bool = False,
    missing_embeddings: str = "error",
    overwrite: bool = False,
    **overrides: Any,
) -> tuple[Any, dict]:
    """Train stage 1 on all cells of ``adata`` and return ``(cell_embeddings, summary)``.

    ``embeddings``: an embedding-store path, ``EmbeddingStore``, DataFrame indexed by peak id,
    ``(ids, array)`` or an array aligned to ``adata.var_names``.  Only the peaks prepare selected
    for the sequence route (``var[keys.SEQUENCE_PEAK]``, when present) are used.  ``overrides`` replace fields of
    ``config`` (``train(adata, emb, epochs=5)``).  With ``outdir`` the standard layout is written
    and checkpoints are kept in ``outdir/checkpoint`` (at every epoch end, every
    ``checkpoint_minutes`` and every ``checkpoint_steps`` steps); ``resume=True`` continues from
    there and gives the same result as an uninterrupted run (same device and threads).
    ``callback(global_step)`` is called after every step.  ``free_input=True`` sets ``adata.X``
    to None once it has been indexed (the CLI does this: at atlas scale the matrix is the
    largest object and the trainer keeps its own peaks x cells index).
    ``missing_embeddings="drop"`` trains on the peaks that have an embedding (peaks without
    sequence are counted in the summary) instead of stopping with an error.  ``overwrite=True``
    replaces the results of another run in ``outdir`` (the runner's re-run) instead of refusing.
    """
    t_start = time.time()
    cfg = replace(config or TrainConfig(), **overrides)
    cfg.hidden = tuple(int(w) for w in cfg.hidden)
    cfg.check(path)
    if threads is not None:
        check(threads, THREADS, "--threads", path)
    check(checkpoint_minutes, CHECKPOINT_MINUTES, "checkpoint_minutes", path)
    dev = resolve_device(device)
    if threads:
        torch.set_num_threads(int(threads))
    if missing_embeddings not in MISSING_EMBEDDINGS:
        raise InputError(
            f"missing_embeddings must be one of {', '.join(MISSING_EMBEDDINGS)}, got {missing_embeddings!r}", path
        )

    inp = _read_inputs(adata, embeddings, missing_embeddings, free_input, path)
    adata, acc, E = inp.adata, inp.acc, inp.E
    n_peaks, n_cells = acc.n_peaks, acc.n_cells
    fingerprint = dict(
        asdict(cfg),
        input=os.path.abspath(path) if path else "",
        embeddings=os.path.abspath(inp.emb_info["embedding_path"]) if "embedding_path" in inp.emb_info else "",
        n_peaks=n_peaks,
        n_cells=n_cells,
        nnz=acc.nnz,
        embedding_dim=int(E.shape[1]),
    )
    # Outputs and checkpoints go to a staging folder, published as a unit when training ends.
    with stage1_folder(outdir, fingerprint, resume, overwrite) as work:
        split = _Split.draw(cfg, n_peaks, n_cells)
        model, head, opt = _build(cfg, E, split.train_peaks, inp.depth, n_peaks, n_cells, dev)
        E_t = torch.from_numpy(E).to(dev)
        max_entries = cfg.max_step_entries or DEFAULT_MAX_ENTRIES[dev.type]
        block = cell_block_size(n_cells, cfg.batch_size, cfg.cell_block_size, max_entries)
        batches = PeakCellBatches(
            acc.indptr, acc.indices, n_cells, split.train_peaks, cfg.batch_size, block, dev, cfg.max_steps_per_epoch
        )
        del acc, inp.acc
        log.info(
            "stage 1: %d peaks (%d held out) x %d cells, %d steps/epoch (%d cell block(s) of %d), device %s",
            n_peaks,
            split.n_hold,
            n_cells,
            batches.steps_per_epoch,
            batches.n_blocks,
            block,
            dev,
        )

        st = _State()
        if resume and work is not None:
            ck = load_checkpoint(work)
            if ck is not None:
                st = _restore(ck, model, opt, head, dev)
                log.info("resuming at epoch %d step %d", st.epoch + 1, st.step)
        loop = _Loop(
            cfg,
            model,
            head,
            opt,
            E_t,
            batches,
            split,
            dev,
            work,
            checkpoint_minutes,
            checkpoint_steps,
            progress,
            callback,
        )
        while not st.finished:
            loop.run_epoch(st)
            loop.end_epoch(st)

        # The written embeddings are those of the best epoch.
        # (end_epoch records a best state at the first epoch, so a finished run always has one)
        assert st.best_model is not None and st.best_Z is not None and st.best_b is not None
        model.load_state_dict(st.best_model)
        Z = st.best_Z.numpy()
        summary = _summary(cfg, st, adata, inp, split, batches, dev, path, t_start)
        cells = cell_embeddings_adata(adata, inp.keep, Z, summary)
        if work is not None:
            tensors = {f"encoder.{k}": v.numpy() for k, v in st.best_model.items()}
            tensors.update(cell_weights=Z, cell_bias=st.best_b.numpy(), heldout_peaks=split.hold_peaks.astype(np.int64))
            curve = pd.DataFrame(st.history)
            curve["best"] = curve["epoch"] == st.best_epoch  # the epoch whose weights were written
            write_results(work, cells, summary, tensors, curve, _plot_curve)
        return cells, summary


@dataclass
class _Inputs:
    adata: Any  # the input, or a view of its sequence-route peaks that have an embedding
    acc: Any  # peaks x cells index of the cells with an accessible peak
    E: np.ndarray  # peak embeddings aligned to the peaks
    emb_info: dict
    keep: np.ndarray  # cells with an accessible peak
    depth: np.ndarray  # accessible peaks of each kept cell
    n_without: int  # peaks dropped for want of an embedding


def _read_inputs(adata, embeddings, missing_embeddings: str, free_input: bool, path) -> _Inputs:
    """The matrix as a peaks x cells index and the embeddings aligned to its peaks."""
    n_without = 0
    adata, embeddings = sequence_peaks(adata, embeddings)
    if missing_embeddings == "drop":
        adata, n_without = drop_peaks_without_embedding(adata, embeddings, path)
    X = binarized_csr(adata, path)
    keep = nonempty_cells(X, path)
    depth = np.diff(X.indptr)[keep].astype(np.float64)
    acc = peaks_by_cells(X, keep)
    del X
    if free_input and not adata.is_view:  # a view (peaks left out above) shares its parent's matrix
        adata.X = None
    E, emb_info = aligned_embeddings(adata.var_names, embeddings, path)
    if acc.n_peaks < 4:
        raise InputError(f"only {acc.n_peaks} peaks: stage 1 needs peaks to learn from", path)
    return _Inputs(adata, acc, E, emb_info, keep, depth, n_without)


@dataclass
class _Split:
    """Held-out peaks (early stopping, reported AUROC/AUPRC) and the fixed metric sample."""

    hold_peaks: np.ndarray
    train_peaks: np.ndarray
    eval_cells: np.ndarray
    eval_hold: np.ndarray
    eval_train: np.ndarray

    @property
    def n_hold(self) -> int:
        return len(self.hold_peaks)

    @classmethod
    def draw(cls, cfg: TrainConfig, n_peaks: int, n_cells: int) -> _Split:
        """A seeded random split: the same peaks and sample for the same seed."""
        rng = np.random.default_rng(cfg.seed)
        order = rng.permutation(n_peaks)
        n_hold = min(n_peaks - 1, max(1, int(round(cfg.holdout_fraction * n_peaks))))
        hold_peaks, train_peaks = np.sort(order[:n_hold]), np.sort(order[n_hold:])
        eval_cells = np.sort(rng.choice(n_cells, size=min(n_cells, cfg.eval_cells), replace=False))
        per_peak = max(1, cfg.eval_entries // len(eval_cells))
        eval_hold = np.sort(rng.choice(hold_peaks, size=min(len(hold_peaks), per_peak), replace=False))
        eval_train = np.sort(
            rng.choice(train_peaks, size=min(len(train_peaks), per_peak, max(len(eval_hold), 1)), replace=False)
        )
        return cls(hold_peaks, train_peaks, eval_cells, eval_hold, eval_train)


def _build(
    cfg: TrainConfig,
    E: np.ndarray,
    train_peaks: np.ndarray,
    depth: np.ndarray,
    n_peaks: int,
    n_cells: int,
    dev: torch.device,
) -> tuple[PeakEncoder, CellHead, torch.optim.Optimizer]:
    """The seeded network, its per-cell head and the encoder's optimizer."""
    torch.manual_seed(cfg.seed)
    g = torch.Generator().manual_seed(cfg.seed)
    model = PeakEncoder(E.shape[1], cfg.hidden, cfg.bottleneck, cfg.activation, cfg.dropout).to(dev)
    Etr = E[train_peaks]
    model.set_standardization(torch.from_numpy(Etr.mean(0)).to(dev), torch.from_numpy(Etr.std(0)).to(dev))
    del Etr
    head = CellHead(n_cells, cfg.bottleneck, dev, cfg.lr, cfg.betas, generator=g)
    # Start each cell's bias at the logit of its accessible fraction: depth is absorbed from step 1.
    frac = np.clip(depth / n_peaks, 1e-6, 1 - 1e-6)
    head.b.copy_(torch.from_numpy(np.log(frac / (1 - frac)).astype(np.float32)))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=cfg.betas)
    return model, head, opt


@dataclass
class _Loop:
    """One epoch of steps, then the evaluation and the early-stopping bookkeeping, with checkpoints."""

    cfg: Any
    model: Any
    head: Any
    opt: Any
    E_t: Any
    batches: Any
    split: Any
    dev: Any
    work: Any
    checkpoint_minutes: float
    checkpoint_steps: int | None
    progress: bool | None
    callback: Any
    last_ck: float = field(default_factory=time.time)

    def checkpoint(self, st: _State) -> None:
        if self.work is not None:
            save_checkpoint(self.work, _snapshot(st, self.model, self.opt, self.head))
            self.last_ck = time.time()

    def run_epoch(self, st: _State) -> None:
        """The steps of epoch ``st.epoch`` from ``st.step`` on (a resumed epoch continues where it stopped)."""
        model, head, opt, dev = self.model, self.head, self.opt, self.dev
        plan = self.batches.plan(self.cfg.seed, st.epoch)
        st.plan_len = len(plan)
        if st.step_losses is None or st.step == 0:
            st.step_losses = torch.zeros(len(plan), dtype=torch.float64, device=dev)
        st.step_losses = st.step_losses.to(dev)
        model.train()
        t_epoch = time.time()
        bar = _bar(len(plan), st.step, f"epoch {st.epoch + 1}", self.progress)
        for k in range(st.step, len(plan)):
            peaks, cells, rows, cols = self.batches.step(plan, k)
            H = model(self.E_t[peaks])
            Zb, bb = head.rows(cells)
            with torch.no_grad():
                loss, gH, gZ, gb = output_step(H.detach(), Zb, bb, rows, cols)
            opt.zero_grad(set_to_none=True)
            H.backward(gH)
            opt.step()
            head.step(cells, gZ, gb)
            st.step_losses[k] = loss  # summed at the epoch end, in step order (no sync here)
            st.step, st.global_step = k + 1, st.global_step + 1
            bar.update(1)
            if self.callback is not None:
                self.callback(st.global_step)
            if (self.checkpoint_steps and st.global_step % self.checkpoint_steps == 0) or (
                self.checkpoint_minutes and time.time() - self.last_ck > 60 * self.checkpoint_minutes
            ):
                st.epoch_seconds += time.time() - t_epoch
                t_epoch = time.time()
                self.checkpoint(st)
        bar.close()
        st.epoch_seconds += time.time() - t_epoch

    def end_epoch(self, st: _State) -> None:
        """Held-out and training metrics, the best state so far, early stopping, a checkpoint."""
        cfg, split, epoch = self.cfg, self.split, st.epoch
        assert st.step_losses is not None  # run_epoch, which ends every epoch here, sets them
        hold = evaluate(self.model, self.head, self.E_t, self.batches, split.eval_hold, split.eval_cells, self.dev)
        trn = evaluate(self.model, self.head, self.E_t, self.batches, split.eval_train, split.eval_cells, self.dev)
        row = dict(
            epoch=epoch + 1,
            train_loss=float(st.step_losses.sum()) / max(1, st.plan_len),
            train_auroc=trn["auroc"],
            train_auprc=trn["auprc"],
            heldout_loss=hold["loss"],
            heldout_auroc=hold["auroc"],
            heldout_auprc=hold["auprc"],
            seconds=round(st.epoch_seconds, 3),
        )
        st.history.append(row)
        log.info(
            "epoch %d: loss %.4f, train AUROC %.4f, held-out AUROC %.4f AUPRC %.4f (%.1fs)",
            epoch + 1,
            row["train_loss"],
            row["train_auroc"],
            row["heldout_auroc"],
            row["heldout_auprc"],
            row["seconds"],
        )
        score = row["heldout_auroc"] if math.isfinite(row["heldout_auroc"]) else -row["heldout_loss"]
        if st.best_epoch == 0 or score > st.best_score + cfg.min_delta:
            st.best_score, st.best_epoch, st.bad_epochs = score, epoch + 1, 0
            st.best_model = {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            st.best_Z, st.best_b = self.head.Z.detach().cpu().clone(), self.head.b.detach().cpu().clone()
        else:
            st.bad_epochs += 1
        st.epoch, st.step, st.step_losses, st.epoch_seconds = epoch + 1, 0, None, 0.0
        st.stopped_early = st.bad_epochs >= cfg.patience and st.epoch < cfg.epochs
        st.finished = st.epoch >= cfg.epochs or st.stopped_early
        self.checkpoint(st)


def _summary(
    cfg: TrainConfig,
    st: _State,
    adata,
    inp: _Inputs,
    split: _Split,
    batches: PeakCellBatches,
    dev: torch.device,
    path,
    t_start: float,
) -> dict:
    """``train_summary.json``: the best epoch's metrics, the run's sizes and settings."""
    keep, n_peaks, n_cells = inp.keep, inp.E.shape[0], batches.n_cells
    best = st.history[st.best_epoch - 1]
    dom = domains(adata, path)
    nnz = int(batches.indices.numel())
    return dict(
        method="nt",
        dims=int(cfg.bottleneck),
        train_auroc=best["train_auroc"],
        train_auprc=best["train_auprc"],
        heldout_auroc=best["heldout_auroc"],
        heldout_auprc=best["heldout_auprc"],
        best_epoch=st.best_epoch,
        epochs_run=st.epoch,
        stopped_early=bool(st.stopped_early),
        seed=cfg.seed,
        device=dev.type,
        n_cells=n_cells,
        n_peaks=n_peaks,
        n_train_peaks=len(split.train_peaks),
        n_heldout_peaks=split.n_hold,
        n_reference_cells=int((dom[keep] == keys.REFERENCE).sum()) if dom is not None else None,
        n_query_cells=int((dom[keep] == keys.QUERY).sum()) if dom is not None else None,
        n_dropped_cells=int((~keep).sum()),
        dropped_cell_examples=[str(c) for c in adata.obs_names[~keep][:5]],
        nnz=nnz,
        density=round(float(nnz) / (n_peaks * n_cells), 6),
        steps_per_epoch=batches.steps_per_epoch,
        full_epoch_steps=batches.full_epoch_steps,
        cell_block_size=batches.block_size,
        n_cell_blocks=batches.n_blocks,
        metric_entries=dict(
            heldout=int(len(split.eval_hold) * len(split.eval_cells)),
            train=int(len(split.eval_train) * len(split.eval_cells)),
            exact=bool(len(split.eval_cells) == n_cells and len(split.eval_hold) == split.n_hold),
        ),
        seconds_per_epoch=round(float(np.mean([h["seconds"] for h in st.history])), 3),
        seconds=round(time.time() - t_start, 2),
        config={k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(cfg).items()},
        **inp.emb_info,
        n_peaks_without_embedding=inp.n_without,
    )


@torch.no_grad()
def evaluate(
    model: PeakEncoder,
    head: CellHead,
    E: torch.Tensor,
    batches: PeakCellBatches,
    peaks: np.ndarray,
    cells: np.ndarray,
    dev: torch.device,
    chunk_entries: int = 1 << 24,
) -> dict[str, float]:
    """BCE, AUROC and AUPRC over ``peaks`` x ``cells`` (eval mode; sklearn metrics)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    model.eval()
    cells_t = torch.as_tensor(cells, dtype=torch.int64, device=dev)
    slot = torch.full((batches.n_cells,), -1, dtype=torch.int64, device=dev)
    slot[cells_t] = torch.arange(len(cells), device=dev)
    Zs, bs = head.Z[cells_t], head.b[cells_t]
    step = max(1, chunk_entries // len(cells))
    scores, labels = [], []
    for s in range(0, len(peaks), step):
        p = torch.as_tensor(peaks[s : s + step], dtype=torch.int64, device=dev)
        L = torch.addmm(bs, model(E[p]), Zs.T)
        y = torch.zeros_like(L, dtype=torch.bool)
        rows, cols = gather_rows(batches.indptr, batches.indices, p)
        c = slot[cols]
        m = c >= 0
        y[rows[m], c[m]] = True
        scores.append(L.flatten().float().cpu().numpy())
        labels.append(y.flatten().cpu().numpy())
    model.train()
    s_all, y_all = np.concatenate(scores), np.concatenate(labels)
    loss = float(np.mean(np.logaddexp(0, s_all) - y_all * s_all))
    if y_all.all() or not y_all.any():
        return {"loss": loss, "auroc": float("nan"), "auprc": float("nan")}
    return {
        "loss": loss,
        "auroc": float(roc_auc_score(y_all, s_all)),
        "auprc": float(average_precision_score(y_all, s_all)),
    }


@dataclass
class _State:
    epoch: int = 0  # completed epochs
    step: int = 0  # completed steps in the current epoch
    global_step: int = 0
    step_losses: torch.Tensor | None = None
    epoch_seconds: float = 0.0
    history: list = field(default_factory=list)
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_epochs: int = 0
    stopped_early: bool = False
    finished: bool = False
    best_model: dict | None = None
    best_Z: torch.Tensor | None = None
    best_b: torch.Tensor | None = None
    plan_len: int = 0  # steps of the current epoch (set when it starts; not checkpointed)


_SCALARS = (
    "epoch",
    "step",
    "global_step",
    "epoch_seconds",
    "best_score",
    "best_epoch",
    "bad_epochs",
    "stopped_early",
    "finished",
)


def _snapshot(st: _State, model, opt, head: CellHead) -> dict[str, Any]:
    return {
        "scalars": {k: getattr(st, k) for k in _SCALARS},
        "history": copy.deepcopy(st.history),
        "step_losses": None if st.step_losses is None else st.step_losses.cpu(),
        "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(),
        "head": head.state(),
        "best_model": st.best_model,
        "best_Z": st.best_Z,
        "best_b": st.best_b,
        "rng": rng_state(),
    }


def _restore(ck: dict[str, Any], model, opt, head: CellHead, dev: torch.device) -> _State:
    st = _State(**ck["scalars"])
    st.history = list(ck["history"])
    st.step_losses = ck["step_losses"]
    st.best_model, st.best_Z, st.best_b = ck["best_model"], ck["best_Z"], ck["best_b"]
    model.load_state_dict(ck["model"])
    opt.load_state_dict(ck["optimizer"])
    head.load(ck["head"])
    set_rng_state(ck["rng"])
    return st


def _bar(total: int, initial: int, desc: str, enabled: bool | None):
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit="step",
        leave=False,
        disable=not progress_enabled(enabled),
        file=sys.stderr,
        mininterval=1.0,
    )


def _plot_curve(curve: pd.DataFrame, path) -> None:
    fig, (ax1, ax2) = new_figure(2)
    ax1.plot(curve["epoch"], curve["train_loss"], label="train (running)")
    ax1.plot(curve["epoch"], curve["heldout_loss"], label="held-out peaks")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("BCE")
    ax1.legend()
    ax2.plot(curve["epoch"], curve["train_auroc"], label="train AUROC")
    ax2.plot(curve["epoch"], curve["heldout_auroc"], label="held-out AUROC")
    ax2.plot(curve["epoch"], curve["heldout_auprc"], label="held-out AUPRC", linestyle="--")
    if curve["best"].any():
        best = int(curve["epoch"][curve["best"]].iloc[0])
        ax2.axvline(best, color="grey", linestyle=":", label=f"best epoch ({best})")
    ax2.set_xlabel("epoch")
    ax2.legend()
    save_figure(fig, path)
