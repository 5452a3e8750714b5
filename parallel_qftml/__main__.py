"""``python -m parallel_qftml`` (recommended under MPI: ``python -m mpi4py -m parallel_qftml``)."""
from .cli import main

raise SystemExit(main())
