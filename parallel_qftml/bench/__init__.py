"""Benchmarks (docs/performance.md); each prints the CPU and the ratios measured in one invocation.

  python -m parallel_qftml.bench            the Metropolis sweep against the C reference (metropolis.py)
  python -m parallel_qftml.bench.small      pqml sample on small lattices, a measurement every sweep
  python -m parallel_qftml.bench.io         parallel HDF5 writes, checkpoint and restart (under mpirun)
  python -m parallel_qftml.bench.learn      one learning epoch split into its parts (under mpirun)
  python -m parallel_qftml.bench.rbm        RBM / phi^4-network epochs
  python -m parallel_qftml.bench.rbm_cli    pqml rbm against the serial RBM training API
"""
