"""Learning under mpirun (2 and 4 ranks): the learned couplings, the optimiser state and the KL series
are bit-identical to the same run on one rank (same total number of chains), for domain decomposition,
replica groups, and both combined; target mode (with nnn target, r, reference chains, Adam, norm
clipping) and data mode (PCD and CD-k)."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.learning.config import parse_learn_config
from parallel_qftml.learning.trainer import Trainer
from parallel_qftml.parallel.topology import Topology

WORLD = MPI.COMM_WORLD

TARGET = """
[lattice]
shape = [8, 8]
[learn]
mode = "target"
epochs = 6
n_chains = 4
samples_per_epoch = 6
params = ["w", "a", "b", "r"]
[target]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -0.2 }}
[reference]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }}
[init]
w_mean = 0.5
w_std = 0.2
r_std = 0.05
[optimizer]
kind = "{opt}"
lr = 0.01
clip_norm = 3.0
[sampler]
seed = 4242
n_therm = 10
[output]
path = "unused.h5"
"""

DATA = """
[lattice]
shape = [8, 4]
[learn]
mode = "data"
epochs = 3
n_chains = 4
sweeps_per_sample = 2
[data]
path = "unused"
batch_size = 4
method = "{method}"
proposal = "uniform"
[optimizer]
kind = "momentum"
lr = 0.05
[sampler]
seed = 99
n_therm = 5
[output]
path = "unused.h5"
"""


def _gather(tr, comm_topo):
    """Global couplings, optimiser slots (rank 0 of the world; None elsewhere)."""
    g = tr.geom
    arrays = {**tr.params, **tr.opt.slots}
    out = {}
    for name, arr in sorted(arrays.items()):
        parts = comm_topo.world.gather((g.global_slices, arr.copy(), comm_topo.replica), root=0)
        if parts is None:
            continue
        full = np.full(arr.shape[:-g.ndim] + tuple(g.shape), np.nan)
        for sl, a, rep in parts:
            if rep == 0:
                full[(Ellipsis,) + sl] = a
        out[name] = full
    return out if comm_topo.world.Get_rank() == 0 else None


def _train(comm, text, n_replicas, grid, data=None):
    cfg = parse_learn_config(text)
    topo = Topology(comm, cfg.lattice.shape, n_replicas=n_replicas, proc_grid=grid)
    blocks = None
    if data is not None:
        g = topo.geometry
        blocks = (data[(slice(None),) + tuple(g.global_slices)].copy(), float(data.min()), float(data.max()))
    tr = Trainer(cfg, topo, blocks)
    tr.thermalise()
    rows = [tr.run_epoch() for _ in range(cfg.learn.epochs)]
    out = _gather(tr, topo)
    topo.free()
    return rows, out


def _layouts(size, shape):
    d = len(shape)
    lay = [(1, None)]                                  # domain decomposition, automatic grid
    if size % 2 == 0:
        lay.append((2, None))                          # 2 replica groups
    if size == 4:
        lay.append((4, (1,) * d))                      # 4 replica groups of one rank
        lay.append((2, (1,) * (d - 1) + (2,)))         # 2 replicas x 2 blocks (split along the last axis)
    return lay


def _compare(text, data=None):
    shape = parse_learn_config(text).lattice.shape
    ref = _train(MPI.COMM_SELF, text, 1, None, data) if WORLD.Get_rank() == 0 else None
    bad = []
    for n_rep, grid in _layouts(WORLD.Get_size(), shape):
        rows, out = _train(WORLD, text, n_rep, grid, data)
        if WORLD.Get_rank() == 0:
            ref_rows, ref_out = ref
            assert sorted(out) == sorted(ref_out)
            bad += [(n_rep, grid, k) for k in ref_out if not np.array_equal(out[k], ref_out[k])]
            bad += [(n_rep, grid, "row", e, k) for e, (r0, r1) in enumerate(zip(ref_rows, rows)) for k in r0
                    if not np.array_equal(r0[k], r1[k], equal_nan=True)]
    bad = WORLD.bcast(bad, root=0)      # every rank fails together (no rank left waiting in a collective)
    assert not bad, bad


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_target_learning_bit_identical_on_every_layout(opt):
    _compare(TARGET.format(opt=opt))


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_data_learning_bit_identical_on_every_layout(method):
    data = np.random.default_rng(5).normal(-0.5, 0.1, size=(12, 8, 4))
    _compare(DATA.format(method=method), data)
