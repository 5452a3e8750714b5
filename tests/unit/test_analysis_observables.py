"""Loading run files as `ensemble|replica` series; susceptibility and Binder cumulant on synthetic
Gaussian data where they are known exactly."""
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd  # noqa: E402
from pqml_analysis.load import load_run, load_series  # noqa: E402
from pqml_analysis.observables import binder, susceptibility  # noqa: E402


def test_binder_and_susceptibility_of_gaussian_m():
    """m ~ N(0, s^2): U = 1 - 3 s^4 / (3 s^4) = 0 and chi_m = V s^2."""
    rng = np.random.default_rng(5)
    s, V = 0.3, 64
    m = rng.normal(0, s, 100000)
    u, du = binder(m)
    assert abs(u) < 3 * du and du < 0.02
    chi, dchi = susceptibility(m, V, absolute=False)
    assert abs(chi - V * s ** 2) < 3 * dchi and dchi < 0.05 * V * s ** 2
    chi_abs, _ = susceptibility(m, V)          # with |m|: V s^2 (1 - 2/pi)
    assert abs(chi_abs - V * s ** 2 * (1 - 2 / np.pi)) < 0.05 * V * s ** 2


def test_load_series_from_a_run_file(tmp_path):
    cfg = tmp_path / "ens.toml"
    cfg.write_text(f"""[lattice]
shape = [8, 8]
[parallel]
n_replicas = 2
[action]
kind = "mrf"
a = 1.52425
b = 0.175
[sampler]
seed = 3
n_therm = 20
n_sweeps = 40
measure_every = 2
[output]
path = "{tmp_path / 'ens.h5'}"
progress = false
""")
    r = subprocess.run(pqml_cmd(2, "sample", cfg), capture_output=True, text=True, env=env(), timeout=240)
    assert r.returncode == 0, r.stderr
    run = load_run(tmp_path / "ens.h5")
    assert run["complete"] and list(run["sweep"]) == list(range(22, 61, 2))
    series = load_series([tmp_path / "ens.h5"], "m")
    assert sorted(series) == ["ens|0", "ens|1"]
    with h5py.File(tmp_path / "ens.h5", "r") as f:
        assert np.array_equal(series["ens|1"], f["observables/m"][:, 1])
