"""The ranks sharing this rank's node (MPI ``COMM_TYPE_SHARED``): what they need together, e.g. memory."""
from __future__ import annotations

import numpy as np


def node_sums(values, comm) -> tuple:
    """(list of the sums of each of `values` (ints) over the ranks of `comm` on this node, True on the
    node's lowest rank). Collective over `comm`."""
    from mpi4py import MPI
    node = comm.Split_type(MPI.COMM_TYPE_SHARED, key=comm.Get_rank())
    try:
        return [int(v) for v in node.allreduce(np.asarray(values, dtype=np.int64), op=MPI.SUM)], node.Get_rank() == 0
    finally:
        node.Free()
