"""The paper-figure reproductions (jobs/reproduce_fig*.sh): the data sets of parallel_qftml.datasets and
their command line, the figure configs, and the plot scripts of analysis/ on tiny runs made here
(a few epochs of pqml learn in both modes and a few sweeps of pqml sample)."""
from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from parallel_qftml import datasets
from parallel_qftml.config import load_config
from parallel_qftml.learning.config import load_learn_config

REPO = Path(__file__).resolve().parents[2]
ANALYSIS = REPO / "analysis"
SCRIPTS = ("plot_learning.py", "plot_fig8.py", "plot_fig9.py")
FIG_CONFIGS = sorted((REPO / "jobs" / "configs").glob("fig*.toml"))


def env() -> dict:
    e = dict(os.environ, PYTHONPATH=str(REPO), OMPI_MCA_btl_vader_single_copy_mechanism="none", MPLBACKEND="Agg")
    e.pop("PQML_TEST_RAISE_ON_RANK", None)
    return e


def run(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=timeout)


def script(name: str):
    """Import analysis/<name> as a module (its main(argv) is then called in-process)."""
    spec = importlib.util.spec_from_file_location(name[:-3], ANALYSIS / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 1000
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- datasets ---------------------------------------------------------------------------------------------

def test_gaussian_shape_moments_determinism():
    x = datasets.gaussian((4, 4), 500, -0.5, 0.05, seed=3)
    assert x.shape == (500, 4, 4) and x.dtype == np.float64
    assert abs(x.mean() + 0.5) < 0.01 and abs(x.std() - 0.05) < 0.005
    assert np.array_equal(x, datasets.gaussian([4, 4], 500, -0.5, 0.05, seed=3))
    assert not np.array_equal(x, datasets.gaussian((4, 4), 500, -0.5, 0.05, seed=4))
    with pytest.raises(ValueError):
        datasets.gaussian((4, 4), 0, 0.0, 1.0, 1)
    with pytest.raises(ValueError):
        datasets.gaussian((4, 4), 3, 0.0, 0.0, 1)


@pytest.mark.parametrize("size", [8, 32])
def test_image_shape_range_determinism(size):
    x = datasets.image(size)
    assert x.shape == (size, size) and x.dtype == np.float64
    assert x.min() == -1.0 and x.max() == 1.0
    assert np.unique(x).size > size       # a picture, not a constant or a two-level mask
    assert np.array_equal(x, datasets.image(size))


def test_cli_writes_and_refuses_to_overwrite(tmp_path):
    out = tmp_path / "g.npy"
    args = ["-m", "parallel_qftml.datasets", "gaussian", str(out), "--shape", "4", "4", "--n", "10",
            "--mu", "-0.5", "--sigma", "0.05", "--seed", "1"]
    r = run(tmp_path, *args)
    assert r.returncode == 0, r.stderr
    x = np.load(out, allow_pickle=False)
    assert np.array_equal(x, datasets.gaussian((4, 4), 10, -0.5, 0.05, 1))
    before = out.read_bytes()
    r = run(tmp_path, *args[:-1], "2")
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "exists" in lines[0] and "--force" in lines[0]
    assert out.read_bytes() == before
    r = run(tmp_path, *args[:-1], "2", "--force")
    assert r.returncode == 0, r.stderr
    assert not np.array_equal(np.load(out), x)
    img = tmp_path / "img"                       # no .npy suffix: written under exactly this name
    r = run(tmp_path, "-m", "parallel_qftml.datasets", "image", str(img), "--size", "16")
    assert r.returncode == 0, r.stderr
    assert np.load(img, allow_pickle=False).shape == (16, 16)


# -- configs ----------------------------------------------------------------------------------------------

def test_figure_configs_exist():
    names = {p.name for p in FIG_CONFIGS}
    assert {"fig2_learn_a3.toml", "fig3_learn_a4.toml", "fig8_data_gaussian.toml", "fig8_data_gaussian_r.toml",
            "fig9_image.toml", "fig8_sample.toml", "fig9_sample.toml"} <= names
    for n in ("fig2", "fig3", "fig8", "fig9"):
        assert (REPO / "jobs" / f"reproduce_{n}.sh").is_file()


@pytest.mark.parametrize("path", FIG_CONFIGS, ids=lambda p: p.name)
def test_figure_config_parses(path):
    if "[action]" in path.read_text():
        cfg = load_config(path)
        assert cfg.action.kind in ("file", "target")
    else:
        cfg = load_learn_config(path)
        assert cfg.learn.epochs >= 1
        if cfg.learn.mode == "data":
            assert cfg.data.path.startswith("out/")


def test_figure_configs_match_the_paper():
    f3 = load_learn_config(REPO / "jobs/configs/fig3_learn_a4.toml")
    assert dict(f3.target) == {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175, "nnn": -1.0}
    assert dict(f3.reference) == {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175}
    assert f3.optimizer.lr == 1e-2 and f3.lattice.shape == (4, 4)
    s, sb = (load_learn_config(REPO / f"jobs/configs/{n}.toml") for n in ("fig8_data_gaussian",
                                                                            "fig8_data_gaussian_r"))
    for c in (s, sb):
        assert (c.learn.epochs, c.data.batch_size, c.optimizer.lr) == (400, 4, 0.1)
    assert "r" not in s.learn.params and "r" in sb.learn.params
    f9 = load_learn_config(REPO / "jobs/configs/fig9_image.toml")
    assert f9.lattice.shape == (32, 32) and f9.optimizer.lr == 0.1 and f9.learn.mode == "data"


@pytest.mark.parametrize("name", [f"reproduce_fig{n}.sh" for n in (2, 3, 8, 9)])
def test_reproduce_scripts_are_strict_bash(name):
    path = REPO / "jobs" / name
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert 'PYTHON=${PYTHON:-.venv/bin/python}' in text
    r = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


# -- plot scripts -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", SCRIPTS)
def test_plot_script_help(name):
    r = run(REPO, str(ANALYSIS / name), "--help", timeout=60)
    assert r.returncode == 0, r.stderr
    assert "usage:" in r.stdout and "--out" in r.stdout


LEARN_TARGET = """\
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 6
samples_per_epoch = 10
[target]
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -1.0 }
[reference]
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }
[optimizer]
lr = 1e-3
[sampler]
seed = 3
n_therm = 5
[output]
path = "target.h5"
save_every = 2
progress = false
"""

LEARN_DATA = """\
[lattice]
shape = [4, 4]
[learn]
mode = "data"
epochs = 3
n_chains = 2
params = ["w", "a", "b", "r"]
[data]
path = "data.npy"
batch_size = 4
[optimizer]
kind = "adam"
lr = 0.1
[sampler]
seed = 4
n_therm = 5
[output]
path = "data.h5"
save_every = 1
progress = false
"""

SAMPLE = """\
[lattice]
shape = [4, 4]
[action]
kind = "file"
path = "data.h5"
[sampler]
seed = 5
n_therm = 0
n_sweeps = 5
delta = 0.5
tune = false
[output]
path = "sample.h5"
save_every = 1
progress = false
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A target-mode and a data-mode learning run of a few epochs and a sample of the learned couplings."""
    d = tmp_path_factory.mktemp("repro")
    np.save(d / "data.npy", datasets.gaussian((4, 4), 8, -0.5, 0.05, 1), allow_pickle=False)
    np.save(d / "image.npy", datasets.image(4), allow_pickle=False)
    for name, text in (("target.toml", LEARN_TARGET), ("data.toml", LEARN_DATA), ("sample.toml", SAMPLE)):
        (d / name).write_text(text)
    for cmd, cfg in (("learn", "target.toml"), ("learn", "data.toml"), ("sample", "sample.toml")):
        r = run(d, "-m", "parallel_qftml", cmd, cfg)
        assert r.returncode == 0, r.stderr
    return d


def test_tiny_runs_have_the_expected_layout(runs):
    with h5py.File(runs / "target.h5", "r") as f:
        assert f["learning/epoch"].shape == (6,)
        assert np.isfinite(f["learning/kl"][:]).all() and np.isfinite(f["learning/kl_ref"][:]).all()
        assert f["learning/snapshots/epoch"][:].tolist() == [2, 4, 6]
    with h5py.File(runs / "sample.h5", "r") as f:
        assert f["configs/sweep"][:].tolist() == [1, 2, 3, 4, 5]
        assert f["configs/phi"].shape == (5, 1, 4, 4)


def test_plot_learning_couplings_and_kl(runs, tmp_path, capsys):
    mod = script("plot_learning.py")
    out = tmp_path / "fig2.png"
    assert mod.main([str(runs / "target.h5"), "--targets", "w=1,a=1.52425,b=0.175", "--out", str(out)]) == 0
    assert_png(out)
    out3 = tmp_path / "fig3.png"
    assert mod.main([str(runs / "target.h5"), "--panels", "kl", "--log-bins", "3", "--out", str(out3)]) == 0
    assert_png(out3)
    out_d = tmp_path / "data.png"                   # data mode: no KL, r learned -> four coupling panels
    assert mod.main([str(runs / "data.h5"), "--out", str(out_d), "--bin", "2"]) == 0
    assert_png(out_d)
    assert mod.learned_kinds(mod.load(runs / "data.h5")) == ["w", "a", "b", "r"]
    assert mod.learned_kinds(mod.load(runs / "target.h5")) == ["w", "a", "b"]
    assert mod.main([str(runs / "target.h5"), "--targets", "q=1", "--out", str(out)]) == 2
    assert "--targets" in capsys.readouterr().err


def test_plot_learning_binning():
    mod = script("plot_learning.py")
    epoch = np.arange(1, 101)
    val = np.ones(100)
    err = np.full(100, 0.5)
    e, v, s = mod.binned(epoch, val, err, b=10)
    assert len(e) == 10 and np.allclose(v, 1) and np.allclose(s, 0.5 / np.sqrt(10))
    e, v, s = mod.binned(epoch, val, err, log_bins=5)
    assert np.all(np.diff(e) > 0) and np.allclose(v, 1) and e[0] >= 1 and e[-1] <= 100
    e, v, s = mod.binned(epoch, epoch.astype(float), err, log_bins=500)   # more bins than epochs: one per epoch
    assert np.allclose(e, epoch) and np.array_equal(v, epoch)
    e, v, s = mod.binned(epoch, epoch.astype(float), err, log_bins=7)     # the blocks cover every epoch once
    assert len(e) == 7 and e[0] == 1 and v[-1] > 50


def test_plot_fig8(runs, tmp_path):
    mod = script("plot_fig8.py")
    out = tmp_path / "fig8.png"
    assert mod.main(["--data", str(runs / "data.npy"), "--samples", str(runs / "sample.h5"),
                     str(runs / "sample.h5"), "--samples-r", str(runs / "sample.h5"), "--out", str(out)]) == 0
    assert_png(out)
    vals, chains = mod.load_samples([runs / "sample.h5"] * 2)
    assert vals.size == 2 * 5 * 16 and len(chains) == 2
    out1 = tmp_path / "fig8_one.png"
    assert mod.main(["--data", str(runs / "data.npy"), "--samples", str(runs / "sample.h5"), "--out", str(out1)]) == 0
    assert_png(out1)
    assert mod.main(["--data", str(runs / "data.npy"), "--samples", str(runs / "target.h5"),
                     "--out", str(tmp_path / "x.png")]) == 2          # a learn file has no /configs/phi


def test_plot_fig9(runs, tmp_path, capsys):
    mod = script("plot_fig9.py")
    out = tmp_path / "fig9.png"
    assert mod.main(["--image", str(runs / "image.npy"), "--samples", str(runs / "sample.h5"),
                     "--sweeps", "1", "3", "5", "--out", str(out)]) == 0
    assert_png(out)
    assert mod.main(["--image", str(runs / "image.npy"), "--samples", str(runs / "sample.h5"),
                     "--sweeps", "50", "--out", str(out)]) == 2
    assert "sweep 50" in capsys.readouterr().err
