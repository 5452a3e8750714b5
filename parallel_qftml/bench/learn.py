"""Benchmark of one learning epoch: time split into sampling, measuring, gradient, all-reduce, update.

  mpirun -n 2 python -m mpi4py -m parallel_qftml.bench.learn [--L 256] [--epochs 5] [--samples 50]
        [--replicas 1|2] [--optimizer adam]
Runs the target-mode engine (KL(p||q) against A{4} = A{3} + g4 nnn, learning w, a, b, r of a 2D LxL
lattice from Gaussian couplings) for a warm-up epoch plus --epochs timed epochs and prints, on rank 0,
epochs/s and each part's share of the epoch as measured on rank 0 (timers in learning/trainer.py):
  sampling   the Metropolis sweeps (incl. halo exchanges)
  measuring  the exact action pieces (S, A) and their global sums, per sample
  gradient   the per-site dS/dtheta sums (kernel) and the pooled covariance
  wait       waiting for the slowest replica group before the exchange (load imbalance)
  allreduce  the cross-replica exchange of the chain sums (parallel/ensemble.py) and D values
  update     clipping, exact gradient norms, the optimiser step, the push to the chains, statistics
The issue's requirement: allreduce + update < 10 % of the epoch at L = 256 on 2 ranks.
"""
from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench.learn", description=__doc__.split("\n")[0])
    ap.add_argument("--L", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--samples", type=int, default=50, help="samples per chain per epoch (the paper: 50)")
    ap.add_argument("--replicas", type=int, default=1, help="replica groups (chains = replicas)")
    ap.add_argument("--optimizer", default="adam")
    args = ap.parse_args(argv)
    from mpi4py import MPI

    from ..learning.config import parse_learn_config
    from ..learning.trainer import Trainer
    from ..parallel.topology import Topology

    comm = MPI.COMM_WORLD
    text = f"""
[lattice]
shape = [{args.L}, {args.L}]
[parallel]
n_replicas = {args.replicas}
[learn]
mode = "target"
epochs = {args.epochs + 1}
n_chains = {args.replicas}
samples_per_epoch = {args.samples}
params = ["w", "a", "b", "r"]
[target]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -1.0 }}
[init]
w_mean = 0.9
w_std = 0.05
a_mean = 1.52425
[optimizer]
kind = "{args.optimizer}"
lr = 1e-4
[sampler]
seed = 1
n_therm = 20
[output]
path = "unused.h5"
"""
    cfg = parse_learn_config(text)
    topo = Topology(comm, cfg.lattice.shape, n_replicas=args.replicas)
    tr = Trainer(cfg, topo)
    tr.thermalise()
    tr.run_epoch()                                   # compiles everything
    for k in tr.timers:
        tr.timers[k] = 0.0
    comm.Barrier()
    t0 = time.perf_counter()
    for _ in range(args.epochs):
        tr.run_epoch()
    comm.Barrier()
    wall = time.perf_counter() - t0
    if comm.Get_rank() == 0:
        parts = dict(tr.timers)
        parts["other"] = wall - sum(parts.values())
        share = {k: v / wall for k, v in parts.items()}
        print(f"learning epoch benchmark: {topo.describe()}, {cfg.learn.n_chains} chain(s) x "
              f"{args.samples} samples, optimizer {args.optimizer}")
        print(f"epochs/s = {args.epochs / wall:.3f}  (epoch {wall / args.epochs * 1e3:.1f} ms, "
              f"{cfg.learn.n_chains * args.samples * args.L ** 2 / (wall / args.epochs) / 1e6:.1f} Msite-samples/s)")
        print("  " + "  ".join(f"{k} {100 * v:.1f}%" for k, v in share.items()))
        print(f"allreduce+update = {100 * (share['allreduce'] + share['update']):.2f}% of the epoch "
              f"(requirement < 10 %)")
    topo.free()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
