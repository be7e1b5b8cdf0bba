"""Stage-2 building blocks: kNN graphs, propagation (and its hand-written backward), GRL."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from seqalignatac.models.stage2.graphs import build_graph, knn_indices, normalized_adjacency
from seqalignatac.models.stage2.model import A2GNN, Graph, grl_rate, propagate


def _points(n=300, d=8, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def test_graph_is_symmetric_normalized_with_self_loops():
    a = build_graph(_points(), 10)
    assert sp.issparse(a) and a.shape == (300, 300)
    assert abs(a - a.T).max() < 1e-6
    assert (a.diagonal() > 0).all()
    # D^-1/2 (A+I) D^-1/2: entry ij = 1/sqrt(d_i d_j) with d the degree incl. the self loop.
    deg = np.diff(a.indptr)
    i, j = a.nonzero()
    np.testing.assert_allclose(a[i, j].A1, 1 / np.sqrt(deg[i] * deg[j]), rtol=1e-5)
    assert a.nnz <= 300 * (2 * 10 + 1)


def test_knn_is_cosine_and_faiss_agrees_with_exact():
    x = _points(2000, 16)
    exact = knn_indices(x, 10, method="exact")
    assert not (exact == np.arange(2000)[:, None]).any()  # self excluded
    # Cosine: scaling a row does not change its neighbours.
    x2 = x.copy()
    x2[::2] *= 7.0
    np.testing.assert_array_equal(np.sort(knn_indices(x2, 10, method="exact"), 1), np.sort(exact, 1))
    approx = knn_indices(x, 10, method="faiss", seed=0)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, approx)])
    assert recall > 0.9


def test_propagation_backward_matches_autograd_and_chunks_agree():
    a = normalized_adjacency(knn_indices(_points(200), 6))
    x = torch.randn(200, 5, dtype=torch.float32, requires_grad=True)
    g = Graph(a)
    out = propagate(x, g, 4)
    dense = torch.from_numpy(a.toarray())
    ref = torch.linalg.matrix_power(dense, 4) @ x
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
    w = torch.randn(200, 5)
    (gx,) = torch.autograd.grad((out * w).sum(), x)
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    torch.testing.assert_close(gx, gref, rtol=1e-4, atol=1e-5)
    # torch sparse backend, in row blocks of at most 300 non-zeros, gives the same product.
    blocks = Graph(a, chunk_nnz=300, backend="torch")
    assert len(blocks.blocks) > 1
    torch.testing.assert_close(blocks.power(x.detach(), 4), ref.detach(), rtol=1e-4, atol=1e-5)


def test_grl_schedule_and_reversal():
    assert grl_rate(0.0) == 0.0
    assert grl_rate(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    a = normalized_adjacency(knn_indices(_points(50), 5))
    model = A2GNN(8, 3, hidden=16, dropout=0.0)
    x = torch.from_numpy(_points(50))
    _, dom, h = model(x, Graph(a), 2, 1, grl=0.5)
    # The discriminator's input gradient reaches the encoder negated and scaled by the rate.
    dom.sum().backward()
    wgrad = model.conv2.lin.weight.grad.clone()
    model.zero_grad()
    _, dom, h = model(x, Graph(a), 2, 1, grl=-0.5)
    dom.sum().backward()
    torch.testing.assert_close(model.conv2.lin.weight.grad, -wgrad)


def test_pyg_normalisation_matches_dense_reference():
    # Random neighbour tables with repeated neighbours and cells listing themselves.
    rng = np.random.default_rng(3)
    for n, k in [(120, 9), (40, 39), (7, 0)]:
        idx = rng.integers(0, n, size=(n, k))
        a = normalized_adjacency(idx)
        assert a.dtype == np.float32 and a.has_sorted_indices
        dense = np.zeros((n, n))
        dense[np.repeat(np.arange(n), k), idx.ravel()] = 1.0
        dense = np.maximum(dense, dense.T)
        np.fill_diagonal(dense, 1.0)
        dinv = 1 / np.sqrt(dense.sum(1))
        np.testing.assert_allclose(a.toarray(), dinv[:, None] * dense * dinv[None, :], rtol=1e-6, atol=1e-7)
        # Same sparsity as the dense reference (no explicit zeros, no missing self loops).
        assert a.nnz == int((dense > 0).sum())


def test_pyg_propagation_layer_matches_dense_forward_and_backward():
    a = normalized_adjacency(knn_indices(_points(150), 5))
    dense = torch.from_numpy(a.toarray())
    x = torch.randn(150, 4, dtype=torch.float32, requires_grad=True)
    w = torch.randn(150, 4)
    ref = torch.linalg.matrix_power(dense, 3) @ x
    (gref,) = torch.autograd.grad((ref * w).sum(), x)
    for chunk in (50_000_000, 400):  # one block; several row blocks
        g = Graph(a, chunk_nnz=chunk, backend="torch")
        assert g.scipy is None and (len(g.blocks) > 1) == (chunk == 400)
        out = propagate(x, g, 3)
        torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)
        (gx,) = torch.autograd.grad((out * w).sum(), x)
        torch.testing.assert_close(gx, gref, rtol=1e-4, atol=1e-5)
