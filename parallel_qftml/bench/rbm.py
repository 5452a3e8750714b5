"""Benchmark of RBM training epochs (issue 7): epochs/s and the share of matrix products.

  [mpirun -n 2 python -m mpi4py -m] python -m parallel_qftml.bench.rbm [--epochs 3]
Cases: the digits data set (N_v = 64, scikit-learn's 8x8 digits, N_h = 64) with the scalar-field RBM
(PCD) and with a Gaussian-Bernoulli phi^4 network (PCD), and synthetic data of the paper's Olivetti size
(N_v = 4096, N_h = 32, 40 examples, batch 5 as in appendix B) with the phi^4 network. The matrix-product
share is measured by replaying, in the same process, the products one epoch performs (same shapes, same
count) and dividing by the epoch time; the rest is Python, per-row random streams and the unit samplers.
"""
from __future__ import annotations

import argparse
import time

import numpy as np


def _config(model, n_h, batch, n_chains, epochs):
    from ..rbm.config import parse_rbm_config
    mu2 = '\nmu2 = 30.0' if model == "scalar" else ""
    return parse_rbm_config(f"""
[rbm]
model = "{model}"
n_hidden = {n_h}{mu2}
init_std = 0.01
[data]
path = "unused"
batch_size = {batch}
[train]
epochs = {epochs}
n_chains = {n_chains}
k = 1
[optimizer]
kind = "sgd"
lr = 1e-4
[sampler]
seed = 1
[output]
path = "unused.h5"
""")


def _matmul_replay(n_v, n_h, rows_gibbs, rows_stats, reps) -> float:
    """Seconds for the matrix products of `reps` updates: per Gibbs row v@W and h@W^T (1 x N), and the
    statistics v^T h of the batch and the chains."""
    rng = np.random.default_rng(0)
    W = rng.standard_normal((n_v, n_h))
    v1, h1 = rng.standard_normal((1, n_v)), rng.standard_normal((1, n_h))
    V, H = rng.standard_normal((rows_stats, n_v)), rng.standard_normal((rows_stats, n_h))
    t0 = time.perf_counter()
    for _ in range(reps):
        for _ in range(rows_gibbs):
            v1 @ W
            h1 @ W.T
        V.T @ H
        V @ W
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench.rbm", description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=3)
    args = ap.parse_args(argv)
    from mpi4py import MPI

    from ..datasets import digits
    from ..parallel.rows import row_range
    from ..rbm.trainer import Phi4NNTrainer, RBMTrainer
    comm = MPI.COMM_WORLD
    cases = [("digits, scalar-field RBM", "scalar", digits(), 64, 100, 64),
             ("digits, phi^4 net (gaussian-bernoulli)", "gaussian-bernoulli", digits(), 64, 100, 64),
             ("Olivetti size 4096 x 32, phi^4 net", "gaussian-bernoulli",
              np.random.default_rng(2).random((40, 4096)), 32, 5, 5)]
    for label, model, data, n_h, batch, chains in cases:
        cfg = _config(model, n_h, batch, chains, args.epochs)
        tr = RBMTrainer(cfg, comm, data) if model == "scalar" else Phi4NNTrainer(cfg, comm, data)
        tr.run_epoch()                                        # compiles, warms caches
        comm.Barrier()
        t0 = time.perf_counter()
        for _ in range(args.epochs):
            tr.run_epoch()
        comm.Barrier()
        dt = (time.perf_counter() - t0) / args.epochs
        updates = 1 if model == "scalar" else data.shape[0] // batch
        mine = len(row_range(comm, chains))
        stats_rows = batch + chains
        mm = _matmul_replay(data.shape[1], n_h, mine * cfg.train.k, stats_rows, updates)
        if model == "scalar":   # + the correlation matrices and (C_t - C_m) W of eqs. 20-22
            rng = np.random.default_rng(0)
            X, P = rng.random((batch, data.shape[1])), rng.random((chains, data.shape[1]))
            W = rng.random((data.shape[1], n_h))
            t1 = time.perf_counter()
            C = X.T @ X
            D = P.T @ P
            (C - D) @ W
            mm += time.perf_counter() - t1
        if comm.Get_rank() == 0:
            print(f"{label:42s} {comm.Get_size()} rank(s): {1 / dt:8.2f} epochs/s ({dt * 1e3:8.1f} ms/epoch, "
                  f"{updates} update(s)), matrix products {100 * min(mm / dt, 1):5.1f} % of the epoch")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
