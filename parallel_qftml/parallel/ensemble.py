"""Combining the chains of all replica groups (the ensemble all-reduce of the learning engine).

Chains are numbered globally; replica group k runs chains [k m, (k + 1) m). The per-site sums of a
block live on the ranks that own the block, so the only cross-rank step is between ranks holding the
same block in different replica groups (topology.across_comm, ordered by replica): one Allgather of
one flat buffer per rank, after which every rank adds the chains in chain order. An MPI_SUM
all-reduce would be shorter but its order of additions depends on the MPI library and the number of
ranks; the gather-then-add keeps the learned couplings bit-identical on any layout (docs/learning.md).
"""
from __future__ import annotations

import numpy as np

from ..learning.estimators import ChainSums


def chain_range(topo, n_chains: int) -> range:
    """The global chain numbers run by this rank's replica group."""
    m = n_chains // topo.n_replicas
    return range(topo.replica * m, (topo.replica + 1) * m)


def wait_for_groups(topo) -> None:
    """Barrier of the ranks holding this block in every replica group, so that the time a group waits
    for a slower one is not booked as communication (benchmarks)."""
    if topo.n_replicas > 1:
        topo.across_comm.Barrier()


def gather_chain_sums(topo, local: list, shape: tuple, with_d: bool) -> list:
    """ChainSums of every chain (in global chain order) for this rank's block."""
    if topo.n_replicas == 1:
        return list(local)
    buf = np.concatenate([c.flat() for c in local])
    out = np.empty(buf.size * topo.n_replicas)
    topo.across_comm.Allgather(buf, out)
    return [ChainSums.from_flat(part, shape, with_d) for part in np.split(out, len(local) * topo.n_replicas)]


def gather_chain_values(topo, local: list) -> list:
    """Per-chain Python values (identical on the ranks of a group) of all chains, in chain order."""
    if topo.n_replicas == 1:
        return list(local)
    return [v for group in topo.across_comm.allgather(list(local)) for v in group]
