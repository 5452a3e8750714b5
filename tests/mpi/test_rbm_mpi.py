"""Data-parallel RBM training under mpirun (2 and 4 ranks): weights, mu2, chains and optimiser state are
bit-identical to the same training on one rank (the chains are spread over the ranks, keyed on the
global chain index, and gathered before every update)."""
import numpy as np
import pytest
from mpi4py import MPI

from parallel_qftml.rbm.config import parse_rbm_config
from parallel_qftml.rbm.trainer import RBMTrainer

WORLD = MPI.COMM_WORLD

TEXT = """
[rbm]
n_hidden = {n_h}
mu2 = 9.0
learn_mu2 = {learn}
[target]
kind = "free_field"
shape = [10]
m2 = 4.0
[train]
epochs = 8
n_chains = 13
k = 2
[optimizer]
kind = "{opt}"
lr = 0.01
[sampler]
seed = 77
[output]
path = "unused.h5"
"""


def _train(comm, text, data=None):
    tr = RBMTrainer(parse_rbm_config(text), comm, data)
    rows = [tr.run_epoch() for _ in range(tr.cfg.train.epochs)]
    return tr, rows


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("n_h,learn,opt", [(10, "false", "sgd"), (6, "true", "adam")])
def test_rbm_training_bit_identical_on_every_rank_count(n_h, learn, opt):
    text = TEXT.format(n_h=n_h, learn=learn, opt=opt)
    tr, rows = _train(WORLD, text)
    bad = []
    if WORLD.Get_rank() == 0:
        ref, ref_rows = _train(MPI.COMM_SELF, text)
        for name, a, b in (("W", tr.params["W"], ref.params["W"]), ("mu2", tr.mu2, ref.mu2),
                           ("chains", tr.chains, ref.chains),
                           *((k, tr.opt.slots[k], ref.opt.slots[k]) for k in ref.opt.slots)):
            if not np.array_equal(a, b):
                bad.append(name)
        for (r0, e0, s0), (r1, e1, s1) in zip(ref_rows, rows):
            if r0 != r1 or not np.array_equal(e0, e1) or not np.array_equal(s0, s1):
                bad.append("rows")
                break
    bad = WORLD.bcast(bad, root=0)
    assert not bad, bad


PHI4 = """
[rbm]
model = "{model}"
n_hidden = 4
[data]
path = "unused"
batch_size = 9
[train]
epochs = 3
n_chains = 11
k = 2
method = "{method}"
[optimizer]
kind = "adam"
lr = 0.01
[sampler]
seed = 3
[output]
path = "unused.h5"
"""


@pytest.mark.mpi(min_size=2)
@pytest.mark.parametrize("model,method", [("phi4-bernoulli", "pcd"), ("gaussian-gaussian", "cd")])
def test_phi4_network_bit_identical_on_every_rank_count(model, method):
    from parallel_qftml.rbm.trainer import Phi4NNTrainer
    data = np.random.default_rng(4).normal(0.1, 0.8, size=(27, 6))
    text = PHI4.format(model=model, method=method)

    def train(comm):
        tr = Phi4NNTrainer(parse_rbm_config(text), comm, data)
        rows = [tr.run_epoch()[0] for _ in range(3)]
        return tr, rows
    tr, rows = train(WORLD)
    bad = []
    if WORLD.Get_rank() == 0:
        ref, ref_rows = train(MPI.COMM_SELF)
        bad = [k for k in ref.params if not np.array_equal(ref.params[k], tr.params[k])]
        bad += ["chains"] if not np.array_equal(ref.chains, tr.chains) else []
        bad += ["rows"] if ref_rows != rows else []
    bad = WORLD.bcast(bad, root=0)
    assert not bad, bad
