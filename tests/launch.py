"""Launching the CLI in subprocesses for tests: one rank directly, several under mpirun (as root with
the consent flags Open MPI wants), with the package on PYTHONPATH and no CMA in containers."""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=str(REPO), OMPI_MCA_btl_vader_single_copy_mechanism="none",
                OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
                OMPI_MCA_rmaps_base_oversubscribe="1", **extra)


def pqml_cmd(n: int, *args) -> list:
    """`python -m mpi4py -m parallel_qftml ARGS` on n ranks."""
    c = [sys.executable, "-m", "mpi4py", "-m", "parallel_qftml", *map(str, args)]
    if n > 1:
        c = ["mpirun", "-n", str(n), "--oversubscribe", *(["--allow-run-as-root"] if os.geteuid() == 0 else []), *c]
    return c
