"""Checkpoint/restart on different rank counts, the configuration store, corrupted checkpoints and
changed physics (the CLI in subprocesses, 1/2/4 ranks via mpirun)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd  # noqa: E402
CONFIG = """\
[lattice]
shape = [16, 8]
[parallel]
n_replicas = {n_replicas}
[action]
kind = "mrf"
a = 1.3
b = 0.2
spread = 0.1
[sampler]
seed = 2024
n_therm = 20
n_sweeps = 180
measure_every = 2
[output]
path = "{path}"
save_every = 10
progress = false
[checkpoint]
keep = 2
"""


def pqml(n, *args, check=True, timeout=240):
    cmd = pqml_cmd(n, *args)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env(), timeout=timeout)
    if check and r.returncode:
        raise AssertionError(f"{cmd} -> {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def write_cfg(tmp_path, name, n_replicas=1):
    p = tmp_path / f"{name}.toml"
    p.write_text(CONFIG.format(n_replicas=n_replicas, path=tmp_path / f"{name}.h5"))
    return p


def read(path):
    with h5py.File(path, "r") as f:
        out = {k: f[k][()] for k in ("configs/phi", "configs/sweep", "observables/sweep", "couplings/w")}
        out.update({f"obs/{k}": f["observables"][k][()] for k in f["observables"]})
        out["complete"] = bool(f.attrs["complete"])
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted 200-sweep run on 2 ranks."""
    tmp = tmp_path_factory.mktemp("ref")
    cfg = write_cfg(tmp, "run")
    pqml(2, "sample", str(cfg))
    return read(tmp / "run.h5")


def test_saved_configurations_equal_gathered_fields(tmp_path, reference):
    """Configurations written by 2 and 4 ranks (MPI-IO) read back equal to a 1-rank run's fields."""
    cfg = write_cfg(tmp_path, "one")
    pqml(1, "sample", str(cfg))
    one = read(tmp_path / "one.h5")
    cfg4 = write_cfg(tmp_path, "four")
    pqml(4, "sample", str(cfg4))
    four = read(tmp_path / "four.h5")
    assert one["configs/phi"].shape == (18, 1, 16, 8)
    for other in (reference, four):
        for k in one:
            assert np.array_equal(one[k], other[k]), k
    assert list(one["configs/sweep"]) == list(range(30, 201, 10))
    assert one["complete"]


def test_restart_on_other_rank_counts_is_bit_identical(tmp_path, reference):
    """2 ranks to sweep 70, resumed on 1 rank to 140 and on 4 ranks to 200: identical to the
    uninterrupted run, observables without gap or duplicate."""
    cfg = write_cfg(tmp_path, "run")
    pqml(2, "sample", str(cfg), "--set", "sampler.n_sweeps=50")
    pqml(1, "sample", str(cfg), "--resume", "--set", "sampler.n_sweeps=120")
    pqml(4, "sample", str(cfg), "--resume")
    got = read(tmp_path / "run.h5")
    for k in reference:
        assert np.array_equal(got[k], reference[k]), k
    assert list(got["observables/sweep"]) == list(range(22, 201, 2))
    # resuming a finished run does nothing and keeps the file complete
    pqml(1, "sample", str(cfg), "--resume")
    assert read(tmp_path / "run.h5")["complete"]


def test_restart_with_replicas_is_bit_identical(tmp_path):
    """2 replicas: 4 ranks (2 x 2-rank grids) to sweep 70, resumed on 2 ranks (2 x 1) to 140 and on 4 to
    200: every replica's saved configurations and observables equal the uninterrupted 2-rank run."""
    ref_cfg = write_cfg(tmp_path, "ref", n_replicas=2)
    pqml(2, "sample", str(ref_cfg))
    ref = read(tmp_path / "ref.h5")
    assert ref["configs/phi"].shape == (18, 2, 16, 8) and ref["obs/m"].shape == (90, 2)
    assert not np.array_equal(ref["configs/phi"][:, 0], ref["configs/phi"][:, 1])     # two chains
    cfg = write_cfg(tmp_path, "run", n_replicas=2)
    pqml(4, "sample", str(cfg), "--set", "sampler.n_sweeps=50")
    pqml(2, "sample", str(cfg), "--resume", "--set", "sampler.n_sweeps=120")
    pqml(4, "sample", str(cfg), "--resume")
    got = read(tmp_path / "run.h5")
    assert got.keys() == ref.keys()
    for k in ref:
        assert np.array_equal(got[k], ref[k]), k
    assert list(got["observables/sweep"]) == list(range(22, 201, 2))


def test_corrupted_checkpoint_falls_back_to_previous(tmp_path, reference):
    cfg = write_cfg(tmp_path, "run")
    pqml(2, "sample", str(cfg), "--set", "sampler.n_sweeps=40", "--set", "checkpoint.every=20")
    ckdir = tmp_path / "run.h5.ckpt"
    newest = sorted(ckdir.glob("ckpt-*.h5"))[-1]
    assert newest.name.endswith("000060.h5")
    with h5py.File(newest, "r") as f:               # where the field's bytes are in the file
        off = f["phi"].id.get_chunk_info(0).byte_offset
    data = bytearray(newest.read_bytes())
    data[off + 100: off + 164] = b"\xff" * 64       # corrupt part of the field
    newest.write_bytes(bytes(data))
    r = pqml(2, "sample", str(cfg), "--resume")
    assert str(newest) in r.stderr and "not usable" in r.stderr
    got = read(tmp_path / "run.h5")
    for k in reference:
        assert np.array_equal(got[k], reference[k]), k


def test_truncated_checkpoints_only_is_a_clear_error(tmp_path):
    cfg = write_cfg(tmp_path, "run")
    pqml(1, "sample", str(cfg), "--set", "sampler.n_sweeps=20")
    for p in (tmp_path / "run.h5.ckpt").glob("ckpt-*.h5"):
        p.write_bytes(p.read_bytes()[:1000])
    r = pqml(1, "sample", str(cfg), "--resume", check=False)
    assert r.returncode == 2
    assert "no valid checkpoint" in r.stderr and "ckpt-" in r.stderr


def test_changed_physics_is_refused_unless_forced(tmp_path):
    cfg = write_cfg(tmp_path, "run")
    pqml(1, "sample", str(cfg), "--set", "sampler.n_sweeps=20")
    r = pqml(1, "sample", str(cfg), "--resume", "--set", "action.a=1.4", check=False)
    assert r.returncode == 2 and "--force" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = pqml(1, "sample", str(cfg), "--resume", "--force", "--set", "action.a=1.4", check=False)
    assert r.returncode == 2 and "[action]" in r.stderr      # the checkpoint keeps its couplings (issue 11)
    r = pqml(1, "sample", str(cfg), "--resume", "--force", "--set", "sampler.n_hits=2")
    assert r.returncode == 0


def test_gather_backend_writes_the_same_bytes(tmp_path, reference):
    cfg = write_cfg(tmp_path, "run")
    r = subprocess.run(pqml_cmd(2, "sample", cfg), capture_output=True, text=True,
                       env=env(PQML_H5_BACKEND="gather"), timeout=240)
    assert r.returncode == 0, r.stderr
    assert "gathered to rank 0" in r.stderr
    got = read(tmp_path / "run.h5")
    for k in reference:
        assert np.array_equal(got[k], reference[k]), k
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert f.attrs["backend"] == "gather"
