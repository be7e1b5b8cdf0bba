"""The stage-2 network: A2GNN's adversarial graph domain adaptation (Liu et al., AAAI 2024).

Shared weights on both graphs (A2GNN-adv/model.py):
  h1 = dropout(relu(conv1(x)))                  conv1: a depth-zero graph conv, i.e. a Linear
  h2 = relu(conv2(h1, A, depth))                depth: shallow on the reference, K on the query
  logits = head(dropout(h2), A, head_depth)     a graph conv classifier (one step by default)
  domain = discriminator(GRL(h2, lambda))       gradient reversal, lambda = 2/(1+exp(-10 p)) - 1

A graph conv with depth t is ``A_hat^t (x W) + b`` (A2GNN-adv/layers.py). ``A_hat`` is
symmetric, so the backward pass of t propagation steps is t more propagation steps: the
custom autograd function below keeps no intermediate activations (memory O(n h), not
O(n h t)) and multiplies row blocks of the graph one at a time when the graph is large.

PyTorch Geometric: ``A_hat`` is built by PyG (``graphs.gcn_edges``: ``to_undirected`` +
``gcn_norm``), and one propagation step is PyG's message passing layer
``SimpleConv(aggr="sum")`` on each row block held as a torch sparse CSR ``adj_t`` (fused into
one sparse product), on every device.  The autograd function stays hand-written, for a measured
reason (``benchmarks/results/stage2_pyg_memory.md``: one forward + backward of ``A_hat^2 X``,
64 channels, k = 15, 1,000,000 cells, 2-core CPU): with torch's own autograd the same PyG layer
differentiates the sparse product by transposing ``A_hat`` at every backward step, 1.70 GiB
extra and 40 s against 1.06 GiB and 15 s with the symmetric backward here; PyG's edge-list
message passing (``edge_index`` + ``edge_weight``) keeps one message per edge and channel,
4.3 GiB at 300,000 cells (about 14 GiB extrapolated to 1,000,000).  ``backend="scipy"`` (CPU)
multiplies with scipy's CSR kernel instead: 0.72 GiB extra at 1,000,000 cells, slower on 2
threads (3.15 s against 2.7 s at 300,000 cells, interleaved runs).
PyG's ``NeighborLoader`` is not used: full-batch training fits a million cells in a few GiB,
and PyG's neighbour sampling needs pyg-lib or torch-sparse, compiled extensions this package
does not install.
"""

from __future__ import annotations

import math

import scipy.sparse as sp
import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import SimpleConv

from seqalignatac.models.stage2.graphs import to_torch


class Graph:
    """A normalized adjacency on a device, stored as row blocks of at most ``chunk_nnz`` entries."""

    def __init__(
        self,
        adj: sp.csr_matrix,
        device: torch.device | str = "cpu",
        chunk_nnz: int = 50_000_000,
        backend: str = "auto",
    ):
        adj = adj.tocsr()
        self.n = adj.shape[0]
        self.nnz = int(adj.nnz)
        self.device = torch.device(device)
        # "auto" = "torch": PyG's layer on torch CSR blocks, on every device.  "scipy" (CPU only)
        # multiplies with scipy's CSR kernel: less extra memory (int32 indices), slower on 2 threads.
        if backend not in ("auto", "scipy", "torch"):
            raise ValueError(f"backend must be auto, scipy or torch, not {backend!r}")
        use_scipy = backend == "scipy"
        if use_scipy and self.device.type != "cpu":
            raise ValueError("the scipy backend runs on the CPU only")
        self.scipy = adj.astype("float32") if use_scipy else None
        self.blocks: list[torch.Tensor] = []
        if self.scipy is not None:
            return
        # PyG's parameter-free message passing layer: sum_j A_ij x_j, fused into one sparse
        # product (torch_geometric.utils.spmm) because each block is a torch sparse CSR ``adj_t``.
        self._conv = SimpleConv(aggr="sum")
        start = 0
        indptr = adj.indptr
        while start < self.n:
            # Largest end with indptr[end] - indptr[start] <= chunk_nnz (at least one row).
            end = int(indptr.searchsorted(indptr[start] + chunk_nnz, side="right")) - 1
            end = min(max(end, start + 1), self.n)
            self.blocks.append(to_torch(adj[start:end], device))
            start = end

    def matmul(self, x: torch.Tensor) -> torch.Tensor:
        if self.scipy is not None:
            return torch.from_numpy(self.scipy @ x.detach().numpy())
        # A block is rows [start, end) of A_hat = adj_t (symmetric): the layer's source nodes are all
        # n rows of x, its target nodes the block's rows, so x is passed as (source, no target).
        if len(self.blocks) == 1:
            return self._conv((x, None), self.blocks[0])
        return torch.cat([self._conv((x, None), b) for b in self.blocks], dim=0)

    def power(self, x: torch.Tensor, steps: int) -> torch.Tensor:
        for _ in range(steps):
            x = self.matmul(x)
        return x


class _Propagate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, graph: Graph, steps: int) -> torch.Tensor:
        ctx.graph, ctx.steps = graph, steps
        return graph.power(x.contiguous(), steps)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # d(A^t x)/dx applied to grad is (A^T)^t grad = A^t grad (A_hat is symmetric).
        return ctx.graph.power(grad.contiguous(), ctx.steps), None, None


def propagate(x: torch.Tensor, graph: Graph, steps: int) -> torch.Tensor:
    return x if steps <= 0 else _Propagate.apply(x, graph, steps)


class GraphConv(nn.Module):
    """``A_hat^t (x W) + b``; propagates on the narrower side of W (same result, cheaper)."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.lin = nn.Linear(in_dim, out_dim, bias=False)
        self.bias = nn.Parameter(torch.zeros(out_dim))

    def forward(self, x: torch.Tensor, graph: Graph | None = None, steps: int = 0) -> torch.Tensor:
        if steps <= 0 or graph is None:
            return self.lin(x) + self.bias
        if self.lin.out_features <= self.lin.in_features:
            h = propagate(self.lin(x), graph, steps)
        else:
            h = self.lin(propagate(x, graph, steps))
        return h + self.bias


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, rate: float) -> torch.Tensor:
        ctx.rate = rate
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.rate * grad, None


def grl_rate(progress: float) -> float:
    """A2GNN's gradient-reversal strength over training progress p in [0, 1]."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


class A2GNN(nn.Module):
    def __init__(self, in_dim: int, n_classes: int, hidden: int = 128, dropout: float = 0.1):
        super().__init__()
        self.conv1 = GraphConv(in_dim, hidden)
        self.conv2 = GraphConv(hidden, hidden)
        self.head = GraphConv(hidden, n_classes)
        self.discriminator = nn.Linear(hidden, 2)
        self.dropout = dropout

    def encode(self, x: torch.Tensor, graph: Graph, depth: int) -> torch.Tensor:
        h = F.dropout(F.relu(self.conv1(x)), self.dropout, self.training)
        return F.relu(self.conv2(h, graph, depth))

    def forward(
        self, x: torch.Tensor, graph: Graph, depth: int, head_depth: int = 1, grl: float = 0.0
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (class logits, domain logits, encoder output)."""
        h = self.encode(x, graph, depth)
        logits = self.head(F.dropout(h, self.dropout, self.training), graph, head_depth)
        domain = self.discriminator(_GradReverse.apply(h, grl))
        return logits, domain, h
