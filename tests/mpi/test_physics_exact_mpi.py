"""The sampler against the exact free-field propagator on the whole MPI world (automatic grid).

Free field on a 16x8 periodic lattice, w = 1, a = 2.5 (mass^2 = 2a - 4 = 1), b = r = w_nnn = 0:
<phi_x^2> = (1/V) sum_k 1/(2a - 2 sum_mu cos k_mu) = 0.25411039366, <S>/V = 1/2 (tests/exact.py).
Run: mpirun -n 2 python -m mpi4py -m pytest --with-mpi tests/mpi/test_physics_exact_mpi.py
"""
import os
import sys

import numpy as np
import pytest

from mpi4py import MPI

from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.sampler import Sampler

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import exact  # noqa: E402  (tests/exact.py)

try:
    from pqml_analysis.errors import binned_error, tau_int_gamma
except ImportError:  # run without PYTHONPATH=analysis
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "analysis"))
    from pqml_analysis.errors import binned_error, tau_int_gamma

SHAPE = (16, 8)
A, W = 2.5, 1.0
SEED = 2024
N_TUNE, N_MEAS, N_HITS, N_BINS = 500, 30_000, 2, 50
KEYS = ("action", "nn", "phi2", "phi1", "acceptance")


def chain(comm, n_meas):
    topo = Topology(comm, SHAPE)
    sampler = Sampler(topo, PhiFourAction.homogeneous(2, w=W, a=A, b=0.0), seed=SEED, n_hits=N_HITS)
    sampler.tune(N_TUNE, 0.5)
    out = np.empty((n_meas, len(KEYS)))
    for i in range(n_meas):
        sampler.sweep(1)
        m = sampler.measure()
        out[i] = [m[k] for k in KEYS]
    return topo, sampler, out


@pytest.mark.mpi(min_size=2)
def test_free_field_16x8_world():
    comm = MPI.COMM_WORLD
    topo, sampler, out = chain(comm, N_MEAS)
    assert topo.grid_comm.Get_size() == comm.Get_size()
    # every rank holds the same global series, bit for bit
    series = comm.allgather(out)
    for rank, other in enumerate(series):
        assert np.array_equal(other, out), f"rank {rank} measured a different series than rank {comm.rank}"
    V = np.prod(SHAPE)
    ref = exact.free_field_moments(SHAPE, A, W)
    for key, scale in (("phi2", ref["phi2"]), ("action", ref["action"])):
        x = out[:, KEYS.index(key)] / V
        mean, sigma = binned_error(x, N_BINS)
        tau = tau_int_gamma(x)[0]
        line = (f"16x8 on {comm.size} ranks (grid {topo.proc_grid}) {key}: {mean:.6f} +- {sigma:.6f} "
                f"(exact {ref[key]:.6f}, pull {(mean - ref[key]) / sigma:+.2f}, tau_int {tau:.2f})")
        if comm.rank == 0:
            print(line)
        assert N_MEAS // N_BINS >= 10 * tau, line
        assert sigma < 0.01 * scale, line
        assert abs(mean - ref[key]) < 3 * sigma, line
    assert abs(out[:, KEYS.index("acceptance")].mean() - 0.5) < 0.1


@pytest.mark.mpi(min_size=2)
def test_free_field_16x8_world_equals_one_rank():
    """The first measurements on the whole world equal those of the same chain on one rank."""
    n = 300
    _, _, world = chain(MPI.COMM_WORLD, n)
    _, _, single = chain(MPI.COMM_SELF, n)
    assert np.array_equal(world, single)


# ---------------------------------------------------------------------------------------------
# 4D free field with two split axes

SHAPE_4D = (4, 4, 4, 4)
A_4D = 4.5                               # mass^2 = 2a - 2 d w = 1: <phi^2> = 0.12844280 (tests/exact.py)
N_TUNE_4D, N_MEAS_4D, N_BINS_4D, SEED_4D = 200, 2_500, 25, 4044


@pytest.mark.mpi(min_size=2)
def test_free_field_4d_two_split_axes():
    """Free field on 4^4 (w = 1, a = 4.5): <phi^2>, <S>/V and the nn piece against the exact lattice
    propagator within 3 measured standard errors (binned, bins >= 10 tau_int). Process grid
    [2, 2, 1, 1] on 4 ranks (two split axes: faces, edges and corners of a 4D block through the halo),
    [2, 1, 1, 1] on 2 (or 3) ranks; every rank holds the same series."""
    comm = MPI.COMM_WORLD
    grid = (2, 2, 1, 1) if comm.size >= 4 else (2, 1, 1, 1)
    sub = comm.Split(0 if comm.rank < int(np.prod(grid)) else MPI.UNDEFINED, comm.rank)
    if sub == MPI.COMM_NULL:                 # ranks beyond the grid (e.g. the 3rd of 3) sit this one out
        comm.Barrier()
        return
    topo = Topology(sub, SHAPE_4D, proc_grid=grid)
    sampler = Sampler(topo, PhiFourAction.homogeneous(4, w=W, a=A_4D, b=0.0), seed=SEED_4D, n_hits=N_HITS)
    sampler.tune(N_TUNE_4D, 0.5)
    out = np.empty((N_MEAS_4D, len(KEYS)))
    for i in range(N_MEAS_4D):
        sampler.sweep(1)
        m = sampler.measure()
        out[i] = [m[k] for k in KEYS]
    assert all(np.array_equal(o, out) for o in sub.allgather(out))
    V = np.prod(SHAPE_4D)
    ref = exact.free_field_moments(SHAPE_4D, A_4D, W)
    for key, rel in (("phi2", 0.02), ("action", 0.02), ("nn", 0.05)):
        x = out[:, KEYS.index(key)] / V
        mean, sigma = binned_error(x, N_BINS_4D)
        tau = tau_int_gamma(x)[0]
        line = (f"4^4 on grid {topo.proc_grid} {key}: {mean:.6f} +- {sigma:.6f} (exact {ref[key]:.6f}, "
                f"pull {(mean - ref[key]) / sigma:+.2f}, tau_int {tau:.2f})")
        if sub.rank == 0:
            print(line)
        assert N_MEAS_4D // N_BINS_4D >= 10 * tau, line
        assert sigma < rel * abs(ref[key]), line
        assert abs(mean - ref[key]) < 3 * sigma, line
    assert abs(out[:, KEYS.index("acceptance")].mean() - 0.5) < 0.1
    topo.free()
    sub.Free()
    comm.Barrier()
