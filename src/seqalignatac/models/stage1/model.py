"""The stage-1 network: peak embedding -> MLP -> bottleneck h -> one output unit per cell.

The per-cell output layer (weights ``Z``: cells x h, bias ``b``: cells) is *not* an
``nn.Module``: with a million cells its gradient is computed block by block and it is updated
by :class:`CellHead`'s lazy Adam, which touches only the cells of the current block (a dense
optimizer would decay the moments of every cell at every step, which is both wrong for blocks
and slow).  Column ``Z[c]`` after training is the embedding of cell ``c``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU}


class PeakEncoder(nn.Module):
    """Standardized peak embedding -> [Linear, BatchNorm, activation] x L -> bottleneck (B x h).

    The bottleneck is itself the last such layer (width ``h``); dropout is applied to its input.
    """

    in_mean: torch.Tensor  # buffers (register_buffer in __init__)
    in_std: torch.Tensor

    def __init__(
        self, in_dim: int, hidden: Sequence[int], bottleneck: int, activation: str = "gelu", dropout: float = 0.2
    ):
        super().__init__()
        self.register_buffer("in_mean", torch.zeros(in_dim))
        self.register_buffer("in_std", torch.ones(in_dim))
        layers: list[nn.Module] = []
        widths = [in_dim, *hidden]
        for a, b in zip(widths[:-1], widths[1:]):
            layers += [nn.Linear(a, b), nn.BatchNorm1d(b), ACTIVATIONS[activation]()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        layers += [nn.Linear(widths[-1], bottleneck), nn.BatchNorm1d(bottleneck), ACTIVATIONS[activation]()]
        self.net = nn.Sequential(*layers)

    def set_standardization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.in_mean.copy_(mean)
        self.in_std.copy_(torch.where(std > 0, std, torch.ones_like(std)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.in_mean) / self.in_std)


class CellHead:
    """Per-cell output weights and biases with a lazy (row-wise) Adam optimizer.

    ``step(idx, gZ, gb)`` updates only rows ``idx`` (``None`` = all cells), with per-row step
    counts for bias correction, so a cell's update is the same whatever block it came in.
    """

    TENSORS = ("Z", "b", "mZ", "vZ", "mb", "vb", "t")

    def __init__(
        self,
        n_cells: int,
        dim: int,
        device: torch.device,
        lr: float,
        betas=(0.95, 0.9995),
        eps: float = 1e-8,
        generator: torch.Generator | None = None,
    ):
        self.lr, self.betas, self.eps = lr, betas, eps
        # Same scale as nn.Linear's default initialisation of a (dim -> n_cells) layer.
        bound = 1.0 / math.sqrt(dim)
        self.Z = ((torch.rand(n_cells, dim, generator=generator) * 2 - 1) * bound).to(device)
        self.b = torch.zeros(n_cells, device=device)
        self.mZ = torch.zeros_like(self.Z)
        self.vZ = torch.zeros_like(self.Z)
        self.mb = torch.zeros_like(self.b)
        self.vb = torch.zeros_like(self.b)
        self.t = torch.zeros(n_cells, dtype=torch.int32, device=device)

    def rows(self, idx: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        if idx is None:
            return self.Z, self.b
        return self.Z[idx], self.b[idx]

    @torch.no_grad()
    def step(self, idx: torch.Tensor | None, gZ: torch.Tensor, gb: torch.Tensor) -> None:
        b1, b2 = self.betas
        sel = slice(None) if idx is None else idx
        t = self.t[sel] + 1
        self.t[sel] = t
        tf = t.to(gZ.dtype)
        c1 = 1 - torch.pow(b1, tf)
        c2 = 1 - torch.pow(b2, tf)
        mZ = self.mZ[sel].mul_(b1).add_(gZ, alpha=1 - b1)
        vZ = self.vZ[sel].mul_(b2).addcmul_(gZ, gZ, value=1 - b2)
        mb = self.mb[sel].mul_(b1).add_(gb, alpha=1 - b1)
        vb = self.vb[sel].mul_(b2).addcmul_(gb, gb, value=1 - b2)
        upd_Z = (mZ / c1[:, None]) / ((vZ / c2[:, None]).sqrt_().add_(self.eps))
        upd_b = (mb / c1) / ((vb / c2).sqrt_().add_(self.eps))
        if idx is None:  # the slices above were views: moments are already updated in place
            self.Z.sub_(upd_Z, alpha=self.lr)
            self.b.sub_(upd_b, alpha=self.lr)
        else:
            self.mZ[idx], self.vZ[idx], self.mb[idx], self.vb[idx] = mZ, vZ, mb, vb
            self.Z[idx] = self.Z[idx] - self.lr * upd_Z
            self.b[idx] = self.b[idx] - self.lr * upd_b

    def state(self) -> dict[str, torch.Tensor]:
        return {k: getattr(self, k).detach().cpu().clone() for k in self.TENSORS}

    def load(self, state: dict[str, torch.Tensor]) -> None:
        for k in self.TENSORS:
            getattr(self, k).copy_(state[k])


def output_step(
    H: torch.Tensor, Z: torch.Tensor, b: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean BCE-with-logits of ``H Z^T + b`` against a 0/1 target given by its ones ``(rows, cols)``.

    Returns ``(loss (0-d tensor), dL/dH, dL/dZ, dL/db)`` without materializing a dense target:
    BCE = sum softplus(l) - sum_{y=1} l, and dBCE/dl = sigmoid(l) - y.  Memory: one B x cells
    buffer (plus softplus' temporary).
    """
    n = H.shape[0] * Z.shape[0]
    L = torch.addmm(b, H, Z.T)  # B x cells logits
    ones = L[rows, cols]
    loss = torch.nn.functional.softplus(L).sum() - ones.sum()
    G = L.sigmoid_()
    G[rows, cols] = torch.sigmoid(ones) - 1  # (row, col) pairs are unique: plain assignment is exact
    G.mul_(1.0 / n)
    gH = G @ Z
    gZ = G.T @ H
    gb = G.sum(0)
    return loss / n, gH, gZ, gb  # loss stays a tensor: no device sync per step
