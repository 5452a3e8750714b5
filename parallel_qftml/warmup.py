"""Compile every numba kernel once, serially, before the ranks of a job start together.

``python -m parallel_qftml.warmup`` (job templates, ``make warm``) runs `warm_up()`: the sampler, the
fused one-rank kernels, the learning trainer, the optimizers and the RBM chains on tiny lattices, so
that NUMBA_CACHE_DIR holds them and no two ranks compile the same kernel at once. It sits above the
sampler and the trainers (the sampler never imports training). It initialises MPI (COMM_SELF): under
a plain ``srun`` step without PMI use ``--mpi=pmix`` (jobs/README.md).
"""
from __future__ import annotations

import sys

import numpy as np


def warm_up():
    """Compile (or load from NUMBA_CACHE_DIR) every kernel on a tiny lattice, serially; job scripts
    call this once per node before the parallel launch so that ranks do not compile concurrently."""
    from mpi4py import MPI
    from .models.action import PhiFourAction
    from .parallel.topology import Topology
    from .sampler import Sampler
    for w_nnn in (0.0, 0.1):
        topo = Topology(MPI.COMM_SELF, (4, 4))
        s = Sampler(topo, PhiFourAction.perturbed(2, 1, 0.1, w_nnn=w_nnn), seed=1)
        s.tune(20, 0.5)
        s.measure()
        s.measured(2, 1)
        topo.free()
    from .learning.config import parse_learn_config      # the learning kernels (gradient, exact norms)
    from .learning.trainer import Trainer
    topo = Topology(MPI.COMM_SELF, (4, 4))
    cfg = parse_learn_config('[lattice]\nshape = [4, 4]\n[learn]\nmode = "target"\nepochs = 1\n'
                             'samples_per_epoch = 2\n[target]\ng = { nn = -1.0, phi2 = 2.5 }\n'
                             '[sampler]\nseed = 1\nn_therm = 2\n[output]\npath = "unused"\n')
    tr = Trainer(cfg, topo)
    tr.thermalise()
    tr.run_epoch()
    topo.free()
    from .learning.optimizers import OPTIMIZERS, Optimizer
    for kind in OPTIMIZERS:
        p = {"x": np.zeros(4)}
        Optimizer(kind, p).step(p, {"x": np.ones(4)}, 0.1)
    from .kernels.gibbs import ZIG_F, ZIG_K, ZIG_W, gibbs_chains    # pqml rbm's chains (rbm/trainer.py)
    from .rng import key_of
    W = np.full((3, 2), 0.1)
    gibbs_chains(np.zeros((2, 3)), 0, W, np.ascontiguousarray(W.T), np.zeros(2), 4.0, 1.0, 1, 0, *key_of(1),
                 np.uint32(3), ZIG_K, ZIG_W, ZIG_F)


if __name__ == "__main__":
    warm_up()
    sys.exit(0)
