"""An exception on one rank must abort the whole MPI job instead of hanging it.

Serial test that launches ``mpirun -n 2 python -m mpi4py -m parallel_qftml sample`` itself
(nesting mpirun inside an mpirun-launched pytest is fragile). The test hook PQML_TEST_RAISE_ON_RANK=1
(honoured with PQML_DEBUG_HOOKS=1, parallel_qftml/debughooks.py)
raises RuntimeError on rank 1 right after the topology is built, while rank 0 goes on into
collective calls.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

CONFIG = """\
[lattice]
shape = [8, 8]

[action]
kind = "mrf"
a = 1.52425
b = 0.175

[sampler]
seed = 1
n_therm = 10
n_sweeps = 100000

[output]
path = "out/abort.h5"
progress = false
"""


@pytest.mark.timeout(90)
def test_exception_on_one_rank_aborts_job(tmp_path):
    (tmp_path / "cfg.toml").write_text(CONFIG)
    cmd = [shutil.which("mpirun"), "-n", "2", "--oversubscribe"]
    if os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    cmd += [sys.executable, "-m", "mpi4py", "-m", "parallel_qftml", "sample", "cfg.toml"]
    env = dict(os.environ, PYTHONPATH=str(REPO), PQML_TEST_RAISE_ON_RANK="1", PQML_DEBUG_HOOKS="1",
               OMPI_MCA_btl_vader_single_copy_mechanism="none")
    t0 = time.monotonic()
    r = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    elapsed = time.monotonic() - t0
    assert r.returncode != 0, r.stderr
    assert elapsed < 30, f"took {elapsed:.1f} s"
    assert "[rank 1/2]" in r.stderr and "RuntimeError" in r.stderr, r.stderr
    out = tmp_path / "out" / "abort.h5"
    if out.exists():  # rank 0 may or may not have got that far; the file must not claim completeness
        h5py = __import__("h5py")
        with h5py.File(out, "r") as f:
            assert not f.attrs.get("complete", False)
