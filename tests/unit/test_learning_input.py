"""`pqml learn` refuses bad input: exit code 2, one stderr line `pqml: error: ...` naming the problem,
nothing written (no output file, no plot, no checkpoint directory). One rank, in a subprocess
(tests/launch.py).

Cases: training data of the wrong lattice shape, with a NaN, not a NumPy/HDF5 file, missing, fewer
configurations than data.batch_size; a complex target; an unknown key; and a pickled object array,
which must be refused *without* being unpickled (the pickle's payload would create a file).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd  # noqa: E402

SHAPE = (4, 4)

DATA_CFG = """\
[lattice]
shape = [4, 4]

[learn]
mode = "data"
epochs = 2
n_chains = 2
sweeps_per_sample = 1

[data]
path = "{path}"
batch_size = {batch_size}

[optimizer]
kind = "sgd"
lr = 0.01

[sampler]
seed = 11
n_therm = 10

[output]
path = "out/learn.h5"
plot = true
progress = false
"""

TARGET_CFG = """\
[lattice]
shape = [4, 4]

[learn]
mode = "target"
epochs = 2
n_chains = 2
samples_per_epoch = 5

[target]
g = {g}

[sampler]
seed = 11
n_therm = 10

[output]
path = "out/learn.h5"
plot = true
progress = false
"""


def data_cfg(path="data.npy", batch_size=2, extra_learn=""):
    text = DATA_CFG.format(path=path, batch_size=batch_size)
    return text.replace("sweeps_per_sample = 1", "sweeps_per_sample = 1" + extra_learn)


def learn(tmp_path: Path, text: str, timeout: float = 120) -> subprocess.CompletedProcess:
    (tmp_path / "cfg.toml").write_text(text)
    return subprocess.run(pqml_cmd(1, "learn", "cfg.toml"), cwd=tmp_path, env=env(), capture_output=True,
                          text=True, timeout=timeout)


def files(tmp_path: Path) -> set:
    return {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")}


def assert_refused(tmp_path: Path, r: subprocess.CompletedProcess, inputs: set, *words: str) -> str:
    """Exit 2, exactly one stderr line `pqml: error: ...` containing every word, no stdout, and no file
    besides the inputs (the output path, its plot and its checkpoint directory were not created)."""
    assert r.returncode == 2, f"exit code {r.returncode}; stderr:\n{r.stderr}"
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith("pqml: error: "), line
    for w in words:
        assert w in line, f"{w!r} not in {line!r}"
    assert r.stdout == "", r.stdout
    assert not (tmp_path / "out").exists(), files(tmp_path)
    assert files(tmp_path) == inputs | {"cfg.toml"}, files(tmp_path)
    return line


def good_data(n=6, shape=SHAPE):
    return np.random.default_rng(5).normal(size=(n, *shape))


# ----------------------------------------------------------------------------- data mode

def test_good_data_runs(tmp_path):
    """Control: the configuration the error cases start from is valid and runs."""
    np.save(tmp_path / "data.npy", good_data())
    r = learn(tmp_path, data_cfg())
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "out" / "learn.h5").is_file()


def test_wrong_lattice_shape(tmp_path):
    np.save(tmp_path / "data.npy", good_data(shape=(4, 6)))
    r = learn(tmp_path, data_cfg())
    assert_refused(tmp_path, r, {"data.npy"}, "data.npy", "shape", "(4, 4)")


def test_nan_in_data(tmp_path):
    x = good_data()
    x[3, 1, 2] = np.nan
    np.save(tmp_path / "data.npy", x)
    r = learn(tmp_path, data_cfg())
    assert_refused(tmp_path, r, {"data.npy"}, "data.npy", "NaN")


def test_infinite_value_in_data(tmp_path):
    x = good_data()
    x[0, 0, 0] = -np.inf
    np.save(tmp_path / "data.npy", x)
    r = learn(tmp_path, data_cfg())
    assert_refused(tmp_path, r, {"data.npy"}, "data.npy", "infinite")


def test_batch_size_larger_than_data(tmp_path):
    np.save(tmp_path / "data.npy", good_data(n=3))
    r = learn(tmp_path, data_cfg(batch_size=5))
    assert_refused(tmp_path, r, {"data.npy"}, "batch_size", "5", "3")


def test_missing_data_file(tmp_path):
    r = learn(tmp_path, data_cfg(path="nowhere.npy"))
    assert_refused(tmp_path, r, set(), "nowhere.npy", "not found")


@pytest.mark.parametrize("name", ["data.txt", "fake.npy"])
def test_data_file_neither_npy_nor_h5(tmp_path, name):
    """Recognised by content (magic bytes), not by the name: a text file called .npy is refused too."""
    (tmp_path / name).write_text("0 1 2 3\n" * 16)
    r = learn(tmp_path, data_cfg(path=name))
    assert_refused(tmp_path, r, {name}, name, "neither")


class _Payload:
    """Unpickling this creates the file `path` (so a test can see whether anything was unpickled)."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_object_array_refused_without_unpickling(tmp_path):
    sentinel = tmp_path.parent / f"{tmp_path.name}_UNPICKLED"
    obj = np.empty((2, *SHAPE), dtype=object)
    obj[...] = 0.0
    obj[0, 0, 0] = _Payload(str(sentinel))
    np.save(tmp_path / "data.npy", obj, allow_pickle=True)
    assert not sentinel.exists()
    r = learn(tmp_path, data_cfg())
    assert_refused(tmp_path, r, {"data.npy"}, "data.npy", "object")
    assert not sentinel.exists(), "the data file was unpickled"
    # the payload is live: loading it with pickles allowed does create the sentinel
    np.load(tmp_path / "data.npy", allow_pickle=True)
    assert sentinel.exists()
    sentinel.unlink()


# ----------------------------------------------------------------------------- configuration

def test_complex_target(tmp_path):
    r = learn(tmp_path, TARGET_CFG.format(g="{nn = -1, phi2 = 1.5, i_phi2 = 0.15}"))
    assert_refused(tmp_path, r, set(), "target.g.i_phi2", "complex")


@pytest.mark.parametrize("section,key", [("learn", "learning_rate"), ("data", "batchsize")])
def test_unknown_key(tmp_path, section, key):
    np.save(tmp_path / "data.npy", good_data())
    text = data_cfg().replace(f"[{section}]\n", f"[{section}]\n{key} = 3\n")
    r = learn(tmp_path, text)
    assert_refused(tmp_path, r, {"data.npy"}, f"{section}.{key}")
