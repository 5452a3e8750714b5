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


def kill_run(p, marker) -> None:
    """SIGKILL a launched run: the launcher's process group, then every process whose command line
    contains `marker` (e.g. the config path). Open MPI's ranks are not in mpirun's process group and
    outlive a SIGKILL of mpirun (measured: they go on computing and writing checkpoints), so they are
    killed by name; returns when none is left."""
    import signal
    import subprocess
    import time
    os.killpg(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    for _ in range(100):
        if subprocess.run(["pkill", "-9", "-f", str(marker)], capture_output=True).returncode != 0:
            return                                          # nothing left to kill
        time.sleep(0.1)
    raise AssertionError(f"processes of {marker} survive SIGKILL")
