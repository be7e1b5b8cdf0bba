"""Mini-batches of peaks against all cells, or against blocks of cells, straight from CSR indices.

The accessibility pattern lives on the device as a peaks x cells CSR without values (int64
``indptr``, int32 ``indices``: 4 bytes per accessible entry).  A step needs only the positions of
the ones inside its (peak batch x cell block) rectangle; the loss never sees a dense target.

An epoch visits every (training peak, cell) pair once: peaks are shuffled into batches, cells
into blocks (one block of all cells when ``batch_size x n_cells`` fits the per-step budget), and
the (batch, block) pairs are visited in a random order.  All permutations derive from
``(seed, epoch)`` alone, so a run resumed mid-epoch replays exactly the remaining steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_MAX_ENTRIES = {"cpu": 1 << 25, "cuda": 1 << 28}  # entries of the B x cells logit buffer


def cell_block_size(n_cells: int, batch_size: int, requested: int, max_entries: int) -> int:
    """Cells per step: ``requested`` if given, else all cells when they fit ``max_entries``."""
    if requested and requested > 0:
        return min(requested, n_cells)
    return max(1, min(n_cells, max_entries // batch_size))


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    # SeedSequence mixes (seed, epoch) into an independent stream per epoch.
    g = torch.Generator()
    g.manual_seed(int(np.random.SeedSequence([seed, epoch, 11]).generate_state(1, dtype=np.uint64)[0] >> 1))
    return g


@dataclass
class EpochPlan:
    """The step order of one epoch (CPU tensors; small)."""

    peak_order: torch.Tensor  # permutation of the training peaks
    cell_perm: torch.Tensor | None  # permutation of cells (None: one block of all cells)
    pairs: torch.Tensor  # step -> batch * n_blocks + block
    n_batches: int
    n_blocks: int

    def __len__(self) -> int:
        return len(self.pairs)


class PeakCellBatches:
    def __init__(
        self,
        indptr: np.ndarray,
        indices: np.ndarray,
        n_cells: int,
        train_peaks: np.ndarray,
        batch_size: int,
        block_size: int,
        device: torch.device,
        max_steps_per_epoch: int = 0,
    ):
        self.device = device
        self.indptr = torch.as_tensor(indptr, dtype=torch.int64).to(device)
        self.indices = torch.as_tensor(indices, dtype=torch.int32).to(device)
        self.n_cells = n_cells
        self.train_peaks = torch.as_tensor(train_peaks, dtype=torch.int64)
        self.batch_size = batch_size
        self.block_size = block_size
        self.n_blocks = -(-n_cells // block_size)
        self.n_batches = -(-len(train_peaks) // batch_size)
        self.max_steps = max_steps_per_epoch
        # Per-epoch cell -> (block, slot) maps; rebuilt when the epoch changes.
        self._plan_epoch: int | None = None
        self._block_of: torch.Tensor | None = None
        self._slot_of: torch.Tensor | None = None

    @property
    def full_epoch_steps(self) -> int:
        return self.n_batches * self.n_blocks

    @property
    def steps_per_epoch(self) -> int:
        """Steps of one (possibly shortened) epoch: a random subset of pairs when ``max_steps`` is set."""
        return min(self.full_epoch_steps, self.max_steps) if self.max_steps else self.full_epoch_steps

    def plan(self, seed: int, epoch: int) -> EpochPlan:
        g = epoch_generator(seed, epoch)
        peak_order = self.train_peaks[torch.randperm(len(self.train_peaks), generator=g)]
        cell_perm = torch.randperm(self.n_cells, generator=g) if self.n_blocks > 1 else None
        pairs = torch.randperm(self.n_batches * self.n_blocks, generator=g)[: self.steps_per_epoch]
        if cell_perm is not None and self._plan_epoch != epoch:
            block_of = torch.empty(self.n_cells, dtype=torch.int32)
            slot_of = torch.empty(self.n_cells, dtype=torch.int64)
            pos = torch.arange(self.n_cells)
            block_of[cell_perm] = (pos // self.block_size).to(torch.int32)
            slot_of[cell_perm] = pos % self.block_size
            self._block_of, self._slot_of = block_of.to(self.device), slot_of.to(self.device)
            self._plan_epoch = epoch
        return EpochPlan(peak_order, cell_perm, pairs, self.n_batches, self.n_blocks)

    def step(self, plan: EpochPlan, k: int) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:
        """Step ``k``: (peak ids, cell ids or None for all, rows, cols) of the ones in the rectangle."""
        pair = int(plan.pairs[k])
        i, j = divmod(pair, plan.n_blocks)
        n = len(plan.peak_order)  # near-equal batches: never a batch of 1 peak (BatchNorm needs 2)
        peaks = plan.peak_order[i * n // plan.n_batches : (i + 1) * n // plan.n_batches].to(self.device)
        rows, cols = self.ones(peaks)
        if plan.cell_perm is None:
            return peaks, None, rows, cols
        cells = plan.cell_perm[j * self.block_size : (j + 1) * self.block_size].to(self.device)
        # plan() fills both maps whenever it draws a cell permutation
        assert self._block_of is not None and self._slot_of is not None
        inside = self._block_of[cols] == j
        return peaks, cells, rows[inside], self._slot_of[cols[inside]]

    def ones(self, peaks: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(row within ``peaks``, cell index) of every accessible entry of those peaks."""
        return gather_rows(self.indptr, self.indices, peaks)


def gather_rows(
    indptr: torch.Tensor, indices: torch.Tensor, rows_sel: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Vectorized CSR row gather: (position in ``rows_sel``, column) of each stored entry."""
    starts = indptr[rows_sel]
    lens = indptr[rows_sel + 1] - starts
    total = int(lens.sum())
    dev = indptr.device
    if total == 0:
        empty = torch.empty(0, dtype=torch.int64, device=dev)
        return empty, empty
    rows = torch.repeat_interleave(torch.arange(len(rows_sel), device=dev), lens, output_size=total)
    # offset of each entry = start of its row + rank inside the row
    first = torch.cumsum(lens, 0) - lens
    pos = torch.arange(total, device=dev) - first[rows] + starts[rows]
    return rows, indices[pos].to(torch.int64)
