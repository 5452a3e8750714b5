"""Data parallelism over rows (mini-batch elements, persistent chains) for the RBM trainers.

Rows 0..n-1 are split into contiguous ranges, rank r taking range(r * n // P, (r + 1) * n // P). Each
rank samples its rows with random streams keyed on the global row index; `allgather_rows` then gives
every rank all rows in global order, and every rank computes the gradient from the same full arrays
in the same order — so the learned weights are bit-identical on any number of ranks, and the only
message per step is one Allgatherv of the sampled rows.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI


def row_range(comm, n: int) -> range:
    """This rank's rows of n."""
    p, r = comm.Get_size(), comm.Get_rank()
    return range(r * n // p, (r + 1) * n // p)


def allgather_rows(comm, local: np.ndarray, n: int) -> np.ndarray:
    """All n rows (global order) from every rank's `local` rows (shape (len(row_range), ...))."""
    if comm.Get_size() == 1:
        return local
    local = np.ascontiguousarray(local, dtype=np.float64)
    width = int(np.prod(local.shape[1:]))
    p = comm.Get_size()
    counts = np.array([((r + 1) * n // p - r * n // p) * width for r in range(p)])
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]])
    out = np.empty((n,) + local.shape[1:])
    comm.Allgatherv(local, [out, counts, displs, MPI.DOUBLE])
    return out
