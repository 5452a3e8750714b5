"""The one place for cross-rank arithmetic (physics code never calls comm.Allreduce itself).

Floating-point sums that must not depend on the rank layout use exact superaccumulators
(kernels/exactsum.py): the integer bins are added with MPI_SUM, which is exact and associative.
"""
from __future__ import annotations

import numpy as np
from mpi4py import MPI

from ..kernels.exactsum import normalise, to_float


def exact_global_sums(acc: np.ndarray, comm) -> list:
    """Correctly rounded global sums of normalised local accumulators acc[n, WIDTH] (in place)."""
    comm.Allreduce(MPI.IN_PLACE, acc, op=MPI.SUM)
    normalise(acc)
    return [to_float(row) for row in acc]


def global_int_sum(value: int, comm) -> int:
    return int(comm.allreduce(int(value), op=MPI.SUM))


def global_max(value: float, comm) -> float:
    return comm.allreduce(float(value), op=MPI.MAX)


def any_rank(flag: bool, comm) -> bool:
    return bool(comm.allreduce(bool(flag), op=MPI.LOR))
