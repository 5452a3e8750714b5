"""The command line in a subprocess: user errors exit 2 with one stderr line and create nothing;
a small run writes a complete HDF5 file with its metadata."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from parallel_qftml.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]

SMALL = """\
[lattice]
shape = {shape}
{grid}
[parallel]
n_replicas = {n_replicas}

[action]
kind = "mrf"
a = 1.52425
b = 0.175

[sampler]
seed = 12345
n_therm = 20
n_sweeps = 21
measure_every = 2

[output]
path = "out/run.h5"
plot = {plot}
progress = false
"""


def small(shape=(8, 8), grid=None, n_replicas=1, plot=False) -> str:
    return SMALL.format(shape=list(shape), grid=f"proc_grid = {list(grid)}" if grid else "",
                        n_replicas=n_replicas, plot=str(plot).lower())


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO), OMPI_MCA_btl_vader_single_copy_mechanism="none")
    e.pop("PQML_TEST_RAISE_ON_RANK", None)
    return e


def pqml(tmp_path: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "parallel_qftml", *args], cwd=tmp_path, env=env(),
                          capture_output=True, text=True, timeout=timeout)


def assert_user_error(r: subprocess.CompletedProcess, *words: str) -> None:
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("pqml: error: ")
    for w in words:
        assert w in lines[0]
    assert r.stdout == ""


def files(tmp_path: Path) -> set:
    return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}


# ----------------------------------------------------------------------------- parsing

def test_parser():
    a = build_parser().parse_args(["sample", "c.toml", "--set", "sampler.seed=1", "--set", "output.plot=true"])
    assert (a.command, a.config, a.overrides) == ("sample", "c.toml", ["sampler.seed=1", "output.plot=true"])
    assert build_parser().parse_args(["info"]).command == "info"
    with pytest.raises(SystemExit):
        build_parser().parse_args([])


def test_info_in_process(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for word in ("parallel_qftml", "MPI", "mpi4py", "numba", "h5py", "numpy", "OMP_NUM_THREADS",
                 "NUMBA_NUM_THREADS", "NUMBA_CACHE_DIR"):
        assert word in out
    assert "HDF5 back-end" in out and ("mpio (parallel HDF5" in out or "gather to rank 0" in out)


def test_info_subprocess(tmp_path):
    r = pqml(tmp_path, "info")
    assert r.returncode == 0, r.stderr
    assert "world size  1" in r.stdout


# ----------------------------------------------------------------------------- user errors

BAD = {
    "unknown_key": (small().replace("[sampler]", "[sampler]\nsweeps = 3"), ["sampler.sweeps"]),
    "wrong_type": (small().replace("n_sweeps = 21", 'n_sweeps = "21"'), ["sampler.n_sweeps"]),
    "negative": (small().replace("n_sweeps = 21", "n_sweeps = -3"),
                 ["sampler.n_sweeps must be a positive integer, got -3"]),
    "complex_target": (small().replace('kind = "mrf"\na = 1.52425\nb = 0.175',
                                       'kind = "target"\ng = {nn = -1.0, phi2 = 1.5, i_phi2 = 0.2}'),
                       ["action.g.i_phi2", "reweighting"]),
    "syntax": (small().replace("seed = 12345", "seed = = 12345"), ["cfg.toml", "line"]),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_config_exits_2(tmp_path, case):
    text, words = BAD[case]
    (tmp_path / "cfg.toml").write_text(text)
    r = pqml(tmp_path, "sample", "cfg.toml")
    assert_user_error(r, *words)
    assert files(tmp_path) == {"cfg.toml"}


def test_missing_config_file(tmp_path):
    r = pqml(tmp_path, "sample", "nope.toml")
    assert_user_error(r, "nope.toml")
    assert files(tmp_path) == set()


def test_bad_set_override(tmp_path):
    (tmp_path / "cfg.toml").write_text(small())
    r = pqml(tmp_path, "sample", "cfg.toml", "--set", "sampler.n_hits=0")
    assert_user_error(r, "sampler.n_hits")
    assert files(tmp_path) == {"cfg.toml"}


def test_output_exists_without_overwrite(tmp_path):
    (tmp_path / "cfg.toml").write_text(small())
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "run.h5").write_text("precious")
    r = pqml(tmp_path, "sample", "cfg.toml")
    assert_user_error(r, "out/run.h5", "overwrite")
    assert (tmp_path / "out" / "run.h5").read_text() == "precious"
    assert files(tmp_path) == {"cfg.toml", "out", "out/run.h5"}


@pytest.mark.parametrize("shape,grid,key", [((7, 8), None, "lattice.shape"),
                                            ((8, 8), (2, 1), "lattice.proc_grid")])
def test_bad_geometry_exits_2(tmp_path, shape, grid, key):
    (tmp_path / "cfg.toml").write_text(small(shape, grid))
    r = pqml(tmp_path, "sample", "cfg.toml")
    assert_user_error(r, key)
    assert files(tmp_path) == {"cfg.toml"}


# ----------------------------------------------------------------------------- a real run

def test_small_run_writes_h5(tmp_path):
    h5py = __import__("h5py")
    (tmp_path / "cfg.toml").write_text(small(plot=True))
    r = pqml(tmp_path, "sample", "cfg.toml", "--set", "sampler.n_hits=2")
    assert r.returncode == 0, r.stderr
    assert "wrote out/run.h5" in r.stdout and "wrote out/run.png" in r.stdout
    assert (tmp_path / "out" / "run.png").stat().st_size > 0
    with h5py.File(tmp_path / "out" / "run.h5", "r") as f:
        a = f.attrs
        assert bool(a["complete"]) and a["schema_version"] == 2
        assert list(a["global_shape"]) == [8, 8] and list(a["proc_grid"]) == [1, 1]
        assert a["n_replicas"] == 1 and a["n_ranks"] == 1 and a["seed"] == 12345
        assert a["config_text"] == small(plot=True) and len(a["config_sha256"]) == 64
        assert a["config_overrides"] == "sampler.n_hits=2"
        for k in ("package_version", "created", "python_version", "numpy_version", "numba_version",
                  "h5py_version", "mpi_vendor", "mpi4py_version", "delta", "n_colours"):
            assert k in a, k
        obs = f["observables"]
        assert obs["sweep"][:].tolist() == list(range(22, 41, 2))
        for name in ("action", "nn", "nnn", "phi2", "phi4", "phi1", "m", "abs_m", "acceptance"):
            assert obs[name].shape == (10, 1) and obs[name].dtype == "float64"
    # a second run refuses to overwrite ...
    r2 = pqml(tmp_path, "sample", "cfg.toml")
    assert_user_error(r2, "overwrite")
    # ... unless told to
    r3 = pqml(tmp_path, "sample", "cfg.toml", "--set", "output.overwrite=true")
    assert r3.returncode == 0, r3.stderr


def mpirun_cmd(n: int) -> list[str]:
    cmd = [shutil.which("mpirun") or "mpirun", "-n", str(n), "--oversubscribe"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-run-as-root")
    return cmd + [sys.executable, "-m", "mpi4py", "-m", "parallel_qftml"]




def test_odd_local_extent_two_ranks_exits_2(tmp_path):
    (tmp_path / "cfg.toml").write_text(small((6, 6), (2, 1)))
    r = subprocess.run(mpirun_cmd(2) + ["sample", "cfg.toml"], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr
    errs = [ln for ln in r.stderr.splitlines() if ln.startswith("pqml: error:")]
    assert len(errs) == 1 and "odd" in errs[0], r.stderr
    assert files(tmp_path) == {"cfg.toml"}


def test_two_ranks_two_replicas(tmp_path):
    h5py = __import__("h5py")
    (tmp_path / "cfg.toml").write_text(small(n_replicas=2))
    r = subprocess.run(mpirun_cmd(2) + ["sample", "cfg.toml"], cwd=tmp_path, env=env(),
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("wrote out/run.h5") == 1
    with h5py.File(tmp_path / "out" / "run.h5", "r") as f:
        assert bool(f.attrs["complete"]) and f.attrs["n_ranks"] == 2 and f.attrs["n_replicas"] == 2
        assert f["observables/m"].shape == (10, 2) and f.attrs["delta"].shape == (2,)
