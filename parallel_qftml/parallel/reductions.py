"""The one place for cross-rank arithmetic (physics code never calls comm.Allreduce itself).

Floating-point sums that must not depend on the rank layout use exact superaccumulators
(kernels/exactsum.py): the integer bins are added with MPI_SUM, which is exact and associative.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..kernels.exactsum import normalise, round_rows


def exact_global_sums(acc: np.ndarray, comm, buffer: np.ndarray | None = None) -> list:
    """Correctly rounded global sums of normalised local accumulators acc[n, WIDTH] (in place). With
    `buffer` (a contiguous int64 array that holds acc and e.g. integer counts beside it) the whole
    buffer is summed over the ranks in the same single all-reduce (in place)."""
    if comm.Get_size() > 1:
        if buffer is None:
            comm.Allreduce(MPI.IN_PLACE, acc, op=MPI.SUM)
        else:
            assert buffer.flags.c_contiguous and np.shares_memory(acc, buffer)
            comm.Allreduce(MPI.IN_PLACE, buffer, op=MPI.SUM)
    normalise(acc)
    out = np.empty(acc.shape[0])
    round_rows(acc, out)          # = to_float of each row, bit for bit (tests/unit/test_exactsum_round.py)
    return [float(x) for x in out]


def global_int_sum(value: int, comm) -> int:
    return int(comm.allreduce(int(value), op=MPI.SUM))


def global_max(value: float, comm) -> float:
    return comm.allreduce(float(value), op=MPI.MAX)


def any_rank(flag: bool, comm) -> bool:
    if comm.Get_size() == 1:
        return bool(flag)
    return bool(comm.allreduce(bool(flag), op=MPI.LOR))


def bcast(obj, comm, root: int = 0):
    return comm.bcast(obj, root=root)


def gather_to_root(obj, comm, root: int = 0):
    """Python objects of all ranks on `root` (rank order), None elsewhere."""
    return comm.gather(obj, root=root)


def xor_reduce(value: int, comm) -> int:
    """Bitwise XOR of a uint64 over the ranks (checksums; order-independent)."""
    return int(comm.allreduce(np.uint64(value), op=MPI.BXOR))


def first_message(msg, comm):
    """The first non-None message over the ranks (rank order), on every rank; None if there is none."""
    return next((m for m in comm.allgather(msg) if m is not None), None)


def replica_values(topo, value, root_only: bool = True):
    """One value per replica (taken from each replica's grid root): on world rank 0 (root_only) or on
    every rank. A dict of floats gives a dict of arrays(n_replicas); a float an array(n_replicas)."""
    mine = (topo.replica, value) if topo.is_grid_root else None
    items = topo.world.gather(mine, root=0) if root_only else topo.world.allgather(mine)
    if items is None:
        return None
    n = topo.n_replicas
    if not isinstance(value, dict):
        out = np.full(n, np.nan)
        for it in filter(None, items):
            out[it[0]] = it[1]
        return out
    res: dict = {}
    for it in filter(None, items):
        for k, v in it[1].items():
            res.setdefault(k, np.full(n, np.nan))[it[0]] = v
    return res


def replica_rows(topo, rows: np.ndarray):
    """Each replica's rows[m, k] (from its grid root) stacked as array [m, k, n_replicas] on world rank 0,
    None elsewhere; replicas without a value (none in a sampling run) are NaN. One gather per block."""
    if topo.world.Get_size() == 1:
        return np.asarray(rows)[:, :, None].copy()
    mine = (topo.replica, np.asarray(rows)) if topo.is_grid_root else None
    items = topo.world.gather(mine, root=0)
    if items is None:
        return None
    out = np.full(np.shape(rows) + (topo.n_replicas,), np.nan)
    for it in filter(None, items):
        out[:, :, it[0]] = it[1]
    return out


def tile_presum(x: np.ndarray, ndim: int) -> np.ndarray:
    """Sums over tiles of 2**ndim elements along the last `ndim` axes (every extent even), the tile's
    elements added in lexicographic order of their offsets. A block of a lattice with even offsets and
    extents holds whole tiles, so the tile sums, and any exact sum of them, do not depend on the layout."""
    corners = np.ndindex(*(2,) * ndim)
    lead = (slice(None),) * (x.ndim - ndim)
    first = next(corners)
    out = x[lead + tuple(slice(c, None, 2) for c in first)].copy()
    for c in corners:
        out += x[lead + tuple(slice(ci, None, 2) for ci in c)]
    return out


def exact_array_sums(arrays, comm, tile_ndim: int = 0) -> list:
    """Correctly rounded global sums of each local float64 array in `arrays` over the ranks of `comm`
    (bit-identical on every rank layout). With tile_ndim = d the arrays are lattice blocks (trailing d
    axes) and are first pre-summed over 2**d-site tiles (tile_presum): the same for every layout, and
    2**d times fewer exact additions."""
    from ..kernels.exactsum import add_array, new_accumulators
    acc = new_accumulators(len(arrays))
    for o, x in enumerate(arrays):
        x = np.asarray(x, dtype=np.float64)
        if tile_ndim:
            x = tile_presum(x, tile_ndim)
        add_array(acc, o, np.ascontiguousarray(x).ravel().view(np.int64))
    return exact_global_sums(acc, comm)
