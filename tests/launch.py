"""Launching the CLI in subprocesses for tests: one rank directly, several under mpirun (as root with
the consent flags Open MPI wants), with the package on PYTHONPATH and no CMA in containers."""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def env(**extra) -> dict:
    """The environment of a launched run; a test hook variable (PQML_TEST_*, parallel_qftml/debughooks.py)
    in `extra` also sets the switch PQML_DEBUG_HOOKS=1 without which the hooks are ignored."""
    if any(k.startswith("PQML_TEST_") for k in extra):
        extra.setdefault("PQML_DEBUG_HOOKS", "1")
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


def wait_gone(marker, timeout=60) -> None:
    """Return once no process's command line contains `marker` (e.g. the config path). mpirun can exit
    while its ranks are still finishing (measured after SIGTERM to mpirun: a rank renamed its stop
    checkpoint after mpirun had returned), so a test that inspects their files waits for them first."""
    import subprocess
    import time
    t0 = time.time()
    while subprocess.run(["pgrep", "-f", str(marker)], capture_output=True).returncode == 0:
        if time.time() - t0 > timeout:
            raise AssertionError(f"processes of {marker} still running {timeout} s after their launcher ended")
        time.sleep(0.1)


def start(n: int, command: str, cfg, *args, **extra):
    """Launch `pqml COMMAND CFG ARGS` on n ranks in its own session (stdout/stderr piped, text)."""
    import subprocess
    return subprocess.Popen(pqml_cmd(n, command, cfg, *args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env(**extra), start_new_session=True)


def run_ok(n: int, command: str, cfg, *args):
    """Run `pqml COMMAND CFG ARGS` on n ranks and assert exit code 0."""
    import subprocess
    r = subprocess.run(pqml_cmd(n, command, cfg, *args), capture_output=True, text=True, env=env(), timeout=300)
    assert r.returncode == 0, r.stderr
    return r


def wait_for(p, marker, timeout=120) -> None:
    """Read p's stderr lines until one contains `marker` (the PQML_TEST_PAUSE hook prints it)."""
    import time
    t0, seen = time.time(), []
    while time.time() - t0 < timeout:
        line = p.stderr.readline()
        seen.append(line)
        if marker in line:
            return
        if not line and p.poll() is not None:
            raise AssertionError(f"process ended (code {p.returncode}) before {marker!r}; stderr:\n{''.join(seen)}")
    raise AssertionError(f"no {marker!r} within {timeout} s")


def read_h5(path) -> dict:
    """Every dataset of an HDF5 file (path -> array) and its root attribute `complete` (raises if the
    file is unreadable)."""
    import h5py
    with h5py.File(path, "r") as f:
        out = {}
        f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
        out["complete"] = bool(f.attrs["complete"])
    return out


def assert_same(a: dict, b: dict) -> None:
    """Bit-identical dictionaries of arrays (NaN equal to NaN)."""
    import numpy as np
    assert sorted(a) == sorted(b)
    for k in a:
        assert np.array_equal(a[k], b[k], equal_nan=np.asarray(a[k]).dtype.kind == "f"), k
