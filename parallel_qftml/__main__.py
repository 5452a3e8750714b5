"""``python -m parallel_qftml`` (under MPI: ``python -m mpi4py -m parallel_qftml``)."""
import sys

from .cli import main

code = main()
if code and "mpi4py.MPI" in sys.modules:
    # A nonzero code here is a clean, collective exit (user error 2, checkpointed 3) reached by every
    # rank: finalize so that `python -m mpi4py` does not turn it into MPI_Abort and its banner.
    from mpi4py import MPI
    if MPI.Is_initialized() and not MPI.Is_finalized():
        MPI.Finalize()
raise SystemExit(code)
