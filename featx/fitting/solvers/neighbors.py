"""Nearest neighbours in torch: blocked distance products and top-k, memory bounded.

:func:`nearest` finds the ``k`` nearest training rows of every query with the metrics
scikit-learn's ``KNeighborsClassifier`` uses here (euclidean, cosine, manhattan), by
blocks of queries and of training rows, so the memory is bounded by the block sizes
whatever the row counts; a running top-k is merged block by block. Neighbours come back
nearest first, and equal distances in training-row order (as scikit-learn's brute force
returns them), so the votes replayed from them (``featx.fitting.search``) are
scikit-learn's except where two distances tie at float32 precision.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

METRICS = ("euclidean", "cosine", "manhattan")
#: elements of one block of distances (queries x training rows), float32
BLOCK_ELEMENTS = 1 << 24


def nearest(
    train: np.ndarray, queries: np.ndarray, k: int, *, metric: str = "euclidean", device: torch.device | str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` nearest training rows of each query.

    Args:
        train: ``(n_train, d)`` float32.
        queries: ``(n_queries, d)`` float32.
        k: neighbours per query (at most ``n_train``).
        metric: ``euclidean``, ``cosine`` (1 - cosine similarity) or ``manhattan``.
        device: where to compute.

    Returns:
        ``(distances (n_queries, k) float32, indices (n_queries, k) int64)``, nearest first.
    """
    import torch

    if metric not in METRICS:
        raise ValueError(f"unsupported metric {metric!r}")
    device = torch.device(device)
    with torch.no_grad():
        T = torch.from_numpy(np.ascontiguousarray(train, dtype=np.float32)).to(device)
        Q = torch.from_numpy(np.ascontiguousarray(queries, dtype=np.float32)).to(device)
        if metric == "cosine":
            T = T / T.norm(dim=1, keepdim=True).clamp_min(1e-30)
            Q = Q / Q.norm(dim=1, keepdim=True).clamp_min(1e-30)
        train_norms = (T * T).sum(1)
        n_train = T.shape[0]
        train_block = max(k, min(n_train, BLOCK_ELEMENTS // max(1, min(len(Q), 4096))))
        query_block = max(1, BLOCK_ELEMENTS // train_block)
        distances, indices = [], []
        for q0 in range(0, len(Q), query_block):
            q = Q[q0 : q0 + query_block]
            best_d = torch.full((len(q), 0), float("inf"), device=device)
            best_i = torch.zeros((len(q), 0), dtype=torch.int64, device=device)
            for t0 in range(0, n_train, train_block):
                block = _distances(q, T[t0 : t0 + train_block], train_norms[t0 : t0 + train_block], metric)
                take = min(k, block.shape[1])
                d_block, i_block = torch.topk(block, take, dim=1, largest=False, sorted=True)
                # merge: earlier blocks first, so a stable sort keeps equal distances in row order
                merged_d = torch.cat([best_d, d_block], 1)
                merged_i = torch.cat([best_i, i_block + t0], 1)
                merged_d, order = torch.sort(merged_d, dim=1, stable=True)
                best_d, best_i = merged_d[:, :k], torch.gather(merged_i, 1, order)[:, :k]
            distances.append(best_d)
            indices.append(best_i)
        out_d = torch.cat(distances)
        if metric == "euclidean":
            out_d = out_d.clamp_min(0.0).sqrt()
        return out_d.cpu().numpy(), torch.cat(indices).cpu().numpy()


def _distances(q: torch.Tensor, t: torch.Tensor, t_norms: torch.Tensor, metric: str) -> torch.Tensor:
    """Squared euclidean, cosine or manhattan distances of a block: ``(len(q), len(t))``."""
    import torch

    if metric == "manhattan":
        return torch.cdist(q, t, p=1)
    products = q @ t.T
    if metric == "cosine":
        return 1.0 - products
    return ((q * q).sum(1, keepdim=True) - 2.0 * products + t_norms.view(1, -1)).clamp_min(0.0)
