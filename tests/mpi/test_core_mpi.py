"""Distributed core under mpirun (2 and 4 ranks): halo exchange against np.roll of the gathered field,
and bit-identical configurations and observables on 1 rank versus the whole world."""
import hashlib

import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.halo import HaloExchange
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.sampler import Sampler

WORLD = MPI.COMM_WORLD


def _grids(size):
    grids = {2: [((16, 16), (2, 1)), ((16, 16), (1, 2)), ((8, 8, 8), (1, 2, 1)), ((8, 8, 4, 4), (1, 1, 2, 1))],
             4: [((16, 16), (2, 2)), ((8, 8, 8), (1, 2, 2)), ((16, 16), (4, 1)), ((8, 8, 8), (2, 2, 1))]}
    return grids.get(size, [])


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("nnn", [False, True])
def test_halo_equals_roll_of_global_field(nnn):
    """Every padded position (faces, edges, corners) holds the periodic neighbour's value."""
    for shape, grid in _grids(WORLD.Get_size()):
        topo = Topology(WORLD, shape, proc_grid=grid)
        g = topo.geometry
        halo = HaloExchange(topo, nnn)
        glob = np.random.default_rng(7).standard_normal(shape)
        f = np.full(int(np.prod(g.padded_shape)), np.nan)
        f.reshape(g.padded_shape)[g.interior] = glob[g.global_slices]
        halo.exchange(f)
        # the padded block equals the global field rolled so that the block's corner (-1,...) is at 0
        rolled = np.roll(glob, tuple(1 - o for o in g.offset), axis=tuple(range(len(shape))))
        expect = rolled[tuple(slice(0, n + 2) for n in g.local_shape)] if all(
            n + 2 <= L for n, L in zip(g.local_shape, shape)) else None
        got = f.reshape(g.padded_shape)
        if expect is not None:
            assert np.array_equal(got, expect), (shape, grid)
        idx = np.ix_(*[(np.arange(n + 2) - 1 + o) % L for n, o, L in zip(g.local_shape, g.offset, shape)])
        assert np.array_equal(got, glob[idx]), (shape, grid)
        # colour by colour
        gc = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
        for c in range(g.n_colours(nnn)):
            glob = np.where(g.colour_of(gc, nnn) == c, glob + 1.0, glob)
            f.reshape(g.padded_shape)[g.interior] = glob[g.global_slices]
            halo.exchange(f, c)
            assert np.array_equal(f.reshape(g.padded_shape), glob[idx]), (shape, grid, c)
        topo.free()


def _run(comm, shape, w_nnn, n_replicas=1, sweeps=50):
    topo = Topology(comm, shape, n_replicas=n_replicas)
    act = PhiFourAction.perturbed(len(shape), 2024, 0.1, w=1.0, a=1.2, b=0.2, r=0.05, w_nnn=w_nnn)
    s = Sampler(topo, act, seed=99 + 2 ** 40, delta=1.2, n_hits=2)
    series = []
    for _ in range(sweeps // 10):
        s.sweep(10)
        series.append(s.measure())
    return topo, s.gather(), series


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("shape", [(16, 16), (8, 8, 8)])
@pytest.mark.parametrize("w_nnn", [0.0, 0.15])
def test_bit_identical_to_one_rank(shape, w_nnn):
    """50 sweeps on the whole world give the same bits as on one rank: field and every observable."""
    topo, field, series = _run(WORLD, shape, w_nnn)
    if WORLD.Get_rank() == 0:
        _, f1, s1 = _run(MPI.COMM_SELF, shape, w_nnn)
        assert topo.proc_grid != (1,) * len(shape)
        assert field.tobytes() == f1.tobytes(), hashlib.sha1(field.tobytes()).hexdigest()
        assert series == s1     # floats compared exactly
    WORLD.Barrier()


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("shape", [(8, 8), (4, 4, 4)])
@pytest.mark.parametrize("w_nnn", [0.0, 0.15])
def test_measured_block_equals_sweep_and_measure(shape, w_nnn):
    """Sampler.measured on a grid of several ranks (one all-reduce per block) gives the bits of
    sweep() + measure() per measurement, and both equal the fused one-rank kernels (kernels/chain.py)."""
    from parallel_qftml.kernels.chain import OBS_COLUMNS

    def make(comm):
        topo = Topology(comm, shape)
        return topo, Sampler(topo, PhiFourAction.perturbed(len(shape), 3, 0.1, w_nnn=w_nnn), seed=77)
    topo, a = make(WORLD)
    _, b = make(WORLD)
    assert not a.local and topo.proc_grid != (1,) * len(shape)
    rows = np.concatenate([a.measured(4, 3), a.measured(1, 3), a.measured(2, 3)])
    ref = []
    for _ in range(7):
        b.sweep(3)
        m = b.measure()
        ref.append([m[c] for c in OBS_COLUMNS])
    assert rows.tobytes() == np.array(ref).tobytes()
    assert a.last_acceptance == b.last_acceptance and a.sweep_count == b.sweep_count == 21
    ga, gb = a.gather(), b.gather()
    assert ga is None or ga.tobytes() == gb.tobytes()
    if WORLD.Get_rank() == 0:
        _, one = make(MPI.COMM_SELF)
        assert one.local and one.measured(7, 3).tobytes() == rows.tobytes()
    WORLD.Barrier()


@pytest.mark.mpi(min_size=4)
@pytest.mark.parametrize("w_nnn", [0.0, 0.15])
def test_replicas_times_grid(w_nnn):
    """R = 2 replicas x (size/2)-rank grids: every replica's field and every observable of every
    measurement equal the 1-rank run of the same chain (Sampler(chain=k)); the replicas differ."""
    topo, field, series = _run(WORLD, (16, 16), w_nnn, n_replicas=2)
    assert topo.grid_comm.Get_size() == WORLD.Get_size() // 2
    got = WORLD.gather((topo.replica, field, series) if topo.is_grid_root else None, root=0)
    if WORLD.Get_rank() == 0:
        got = sorted((g for g in got if g is not None), key=lambda g: g[0])
        assert [g[0] for g in got] == [0, 1]
        assert got[0][1].tobytes() != got[1][1].tobytes() and got[0][2] != got[1][2]
        act = PhiFourAction.perturbed(2, 2024, 0.1, w=1.0, a=1.2, b=0.2, r=0.05, w_nnn=w_nnn)
        for k, f, ser in got:
            s = Sampler(Topology(MPI.COMM_SELF, (16, 16)), act, seed=99 + 2 ** 40, delta=1.2, n_hits=2, chain=k)
            one = []
            for _ in range(5):
                s.sweep(10)
                one.append(s.measure())
            assert s.gather().tobytes() == f.tobytes(), f"replica {k}: field differs"
            assert len(ser) == 5 and set(ser[0]) == {"action", "nn", "nnn", "phi1", "phi2", "phi4", "m", "abs_m",
                                                     "acceptance"}
            assert ser == one, f"replica {k}: observables differ"      # every key, floats compared exactly
    WORLD.Barrier()


@pytest.mark.mpi(min_size=2)
def test_inhomogeneous_global_arrays_distributed():
    """Explicit global coupling arrays are sliced per block: same bits as on one rank."""
    rng = np.random.default_rng(11)
    shape = (16, 8)
    w = 1.0 + 0.1 * rng.standard_normal((2, *shape))
    a = 1.3 + 0.1 * rng.standard_normal(shape)
    act = PhiFourAction.inhomogeneous(w, a, 0.2, 0.0)
    fields = []
    for comm in (WORLD, MPI.COMM_SELF):
        s = Sampler(Topology(comm, shape), act, seed=8)
        s.sweep(30)
        fields.append((s.gather(), s.measure()))
    if WORLD.Get_rank() == 0:
        assert fields[0][0].tobytes() == fields[1][0].tobytes() and fields[0][1] == fields[1][1]
