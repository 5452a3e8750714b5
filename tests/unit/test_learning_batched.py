"""All chains of a rank sampled in one kernel call (kernels/chain.target_samples, Trainer._sample_chains)
equal the chain-by-chain, sample-by-sample Python path bit for bit: the D values, the gradient
sums, the couplings after every epoch, the step sizes, the acceptances and the reference chains'
KL, for several chains, several sweeps per sample, 1D and 2D, with step-size tuning."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.learning.config import parse_learn_config
from parallel_qftml.learning.trainer import Trainer
from parallel_qftml.parallel.topology import Topology

CONFIG = """\
[lattice]
shape = {shape}
[learn]
mode = "target"
epochs = 6
n_chains = {n_chains}
samples_per_epoch = 7
sweeps_per_sample = {sps}
[target]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }}
[reference]
g = {{ nn = -0.9, phi2 = 1.4, phi4 = 0.2 }}
[sampler]
seed = 11
n_therm = 20
[output]
path = "unused"
"""


def trained(batched: bool, shape, n_chains, sps):
    topo = Topology(MPI.COMM_SELF, shape)
    cfg = parse_learn_config(CONFIG.format(shape=list(shape), n_chains=n_chains, sps=sps))
    tr = Trainer(cfg, topo)
    tr.batched = batched
    tr.thermalise()
    rows = [tr.run_epoch() for _ in range(cfg.learn.epochs)]
    state = {n: p.copy() for n, p in tr.params.items()}
    fields = [s.phi.copy() for s in tr.chains + tr.ref_chains]
    deltas = [s.delta for s in tr.chains + tr.ref_chains]
    counts = [s.sweep_count for s in tr.chains + tr.ref_chains]
    # the batched path books everything as sampling; the Python path also books measuring
    assert (tr.timers["measuring"] == 0.0) == batched
    topo.free()
    return rows, state, fields, deltas, counts


def bits(x):
    return np.asarray(x, dtype=np.float64).view(np.int64)


@pytest.mark.parametrize("shape,n_chains,sps", [((4, 4), 3, 1), ((6, 4), 2, 3), ((8,), 1, 2)])
def test_batched_chains_equal_unbatched(shape, n_chains, sps):
    a, b = trained(False, shape, n_chains, sps), trained(True, shape, n_chains, sps)
    rows_a, rows_b = a[0], b[0]
    for ra, rb in zip(rows_a, rows_b):
        assert sorted(ra) == sorted(rb)
        for k in ra:
            assert np.array_equal(bits(ra[k]), bits(rb[k])), k
    for n in a[1]:
        assert np.array_equal(bits(a[1][n]), bits(b[1][n])), n
    assert all(np.array_equal(bits(x), bits(y)) for x, y in zip(a[2], b[2]))
    assert a[3] == b[3] and a[4] == b[4]
    assert a[1]["a"].std() > 0          # the couplings moved (the comparison is not of untouched arrays)
