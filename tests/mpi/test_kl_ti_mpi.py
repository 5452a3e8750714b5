"""Thermodynamic integration of the KL (learning/thermo.py) under mpirun (2 and 4 ranks): every node's
mean, error and the estimate are bit-identical to one rank, for domain decomposition, replica groups (the
nodes spread over the groups) and both combined."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.learning.thermo import ti_kl
from parallel_qftml.parallel.topology import Topology

WORLD = MPI.COMM_WORLD
A3 = {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175}
A4 = {**A3, "nnn": -1.0}
SHAPE = (8, 8)


def _ti(comm, n_replicas, grid):
    topo = Topology(comm, SHAPE, n_replicas=n_replicas, proc_grid=grid)
    est = ti_kl(topo, A3, A4, seed=77, n_gauss=1, n_samples=24, sweeps_per_sample=2, n_therm=20, n_bins=4)
    topo.free()
    return est


@pytest.mark.mpi(min_size=2)
def test_ti_bit_identical_on_every_layout():
    ref = _ti(MPI.COMM_SELF, 1, None) if WORLD.Get_rank() == 0 else None
    size = WORLD.Get_size()
    layouts = [(1, None)] + ([(2, None)] if size % 2 == 0 else []) + ([(4, (1, 1)), (2, (1, 2))] if size == 4 else [])
    bad = []
    for n_rep, grid in layouts:
        est = _ti(WORLD, n_rep, grid)
        if WORLD.Get_rank() == 0:
            for k in ("t", "mean", "mean_err", "tau", "acceptance"):
                if not np.array_equal(getattr(est, k), getattr(ref, k)):
                    bad.append((n_rep, grid, k))
            for k in ("value", "stat_err", "quad_err", "gauss_value"):
                if getattr(est, k) != getattr(ref, k):
                    bad.append((n_rep, grid, k))
        # every rank holds the same estimate
        vals = WORLD.allgather((est.value, est.stat_err, est.mean.tobytes()))
        if any(v != vals[0] for v in vals):
            bad.append((n_rep, grid, "ranks differ"))
    if WORLD.Get_rank() == 0:
        assert ref.t.size == 4 and np.all(np.isfinite(ref.mean)) and ref.value > 0
    bad = WORLD.bcast(bad, root=0)
    assert not bad, bad
