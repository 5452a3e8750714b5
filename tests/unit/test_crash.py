"""Crash safety and stop signals on 2 ranks (subprocesses under mpirun).

A run killed with SIGKILL at random moments and at two chosen ones (inside a checkpoint write, inside
a configuration write), resumed each time, ends bit-identical to the uninterrupted run, and its
measurement file is readable after every kill. SIGUSR1 (via mpirun) and SIGTERM (to the process, as
SLURM sends it) stop a run with a checkpoint and exit code 3; resuming completes it identically."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import assert_same as same, env, kill_run, pqml_cmd, read_h5 as read, run_ok, wait_for  # noqa: E402
from launch import start as _start  # noqa: E402
CONFIG = """\
[lattice]
shape = [64, 32]
[action]
kind = "mrf"
a = 1.3
b = 0.2
spread = 0.1
[sampler]
seed = 99
n_therm = 40
n_sweeps = 10000
measure_every = 2
[output]
path = "{path}"
save_every = 20
progress = false
[checkpoint]
every = 100
keep = 2
"""












def start(n, cfg, *args, **extra):
    return _start(n, "sample", cfg, *args, **extra)


def run(n, cfg, *args):
    return run_ok(n, "sample", cfg, *args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    cfg = tmp / "ref.toml"
    cfg.write_text(CONFIG.format(path=tmp / "ref.h5"))
    run(2, cfg)
    return read(tmp / "ref.h5")




def test_sigkill_at_random_moments_then_resume_is_bit_identical(tmp_path, reference):
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run.h5"
    cfg.write_text(CONFIG.format(path=out))
    rng = np.random.default_rng(20261123)
    # "random": a random moment of the first second after the run's first checkpoint line, i.e. while
    # sampling, measuring and writing (timed from the run's own progress, not from a guess of its
    # duration, so that the kill lands before the end on a fast machine too: the whole run takes ~4 s)
    kills = ["random", "checkpoint", "random", "config", "random"]
    survived = 0
    for k, moment in enumerate(kills):
        args = ("--resume",) if k else ()
        if moment == "random":
            p = start(2, cfg, *args)
            wait_for(p, "(sweep ")
            time.sleep(rng.uniform(0.0, 1.0))
            if p.poll() is None:
                kill_run(p, cfg)
            else:
                survived += 1
        else:
            p = start(2, cfg, *args, PQML_TEST_PAUSE_AT=moment)
            wait_for(p, f"PQML_TEST_PAUSE {moment}")
            kill_run(p, cfg)
        if out.exists():
            data = read(out)            # readable after every kill
            assert not data["complete"] or survived
    assert survived == 0, "a 'random' kill came after the run had finished"
    run(2, cfg, "--resume")
    same(read(out), reference)


@pytest.mark.parametrize("how", ["usr1-mpirun", "term-1rank"])
def test_stop_signal_checkpoints_and_exits_3(tmp_path, reference, how):
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run.h5"
    cfg.write_text(CONFIG.format(path=out))
    n = 2 if how == "usr1-mpirun" else 1
    p = start(n, cfg, PQML_TEST_PAUSE_AT="config", PQML_TEST_PAUSE_SECONDS="1")
    wait_for(p, "PQML_TEST_PAUSE config")        # sampling is under way
    os.kill(p.pid, signal.SIGUSR1 if n == 2 else signal.SIGTERM)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    assert "stopped by signal" in err
    assert not read(out)["complete"]
    ck = sorted((tmp_path / "run.h5.ckpt").glob("ckpt-*.h5"))
    assert ck, "no checkpoint written"
    run(2, cfg, "--resume")
    same(read(out), reference)


def test_unwritable_or_full_disk_is_refused_before_sampling(tmp_path):
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG.format(path="/etc/hostname/run.h5"))
    r = subprocess.run(pqml_cmd(1, "sample", cfg), capture_output=True, text=True, env=env(), timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "not writable" in r.stderr
    big = CONFIG.format(path=tmp_path / "big.h5").replace("[64, 32]", "[1024, 1024]").replace(
        "n_sweeps = 10000", "n_sweeps = 10000000")    # fits in memory; 5e5 saved 8 MiB configurations: 4 TB
    cfg.write_text(big)
    r = subprocess.run(pqml_cmd(1, "sample", cfg), capture_output=True, text=True, env=env(), timeout=120)
    assert r.returncode == 2 and "not enough disk space" in r.stderr and r.stderr.count("\n") == 1
    assert not (tmp_path / "big.h5").exists()


BLOCKS = """\
[lattice]
shape = [32, 32]
[action]
kind = "mrf"
a = 1.3
b = 0.2
spread = 0.1
[sampler]
seed = 5
n_therm = 20
n_sweeps = {n_sweeps}
measure_every = 2
[output]
path = "{path}"
progress = false
plot = false
[checkpoint]
every = {every}
keep = 2
"""


def _checkpoint_rows(ckdir: Path) -> int:
    """n_meas of the newest checkpoint in ckdir (0 if none)."""
    import h5py
    ck = sorted(ckdir.glob("ckpt-*.h5"))
    if not ck:
        return 0
    with h5py.File(ck[-1], "r") as f:
        return int(f.attrs["n_meas"])


def _wait_checkpoint(p, timeout=120) -> float:
    wait_for(p, "checkpoint ", timeout)
    return time.monotonic()


def test_sigkill_in_first_and_last_second_of_a_row_block_loses_nothing(tmp_path):
    """One rank (the fused kernels): measurement rows are buffered between checkpoints and written in
    blocks (io/output.RunFile). SIGKILL at random moments of the first and of the last second before
    a checkpoint (the interval is measured from the run's own checkpoint lines): every killed file is
    readable and holds at least the rows of its newest checkpoint, and the resumed run ends
    bit-identical to an uninterrupted one."""
    rng = np.random.default_rng(20261204)
    ref_cfg, cfg, out = tmp_path / "ref.toml", tmp_path / "run.toml", tmp_path / "run.h5"
    # checkpoint interval: about 1.5 s of this machine's sampling (calibrated by a short run); 9 of them
    # leave room for the four kills, each of which loses at most the interval it lands in
    cal = tmp_path / "cal.toml"
    cal.write_text(BLOCKS.format(n_sweeps=20000, every=20000, path=tmp_path / "cal.h5"))
    t0 = time.monotonic()
    run(1, cal)
    rate = 20000 / max(time.monotonic() - t0 - 1.0, 0.2)      # sweeps/s, start-up (~1 s) taken off
    every = int(max(2000, 1.5 * rate) // 1000 * 1000)
    text = BLOCKS.format(n_sweeps=9 * every, every=every, path="{path}")
    ref_cfg.write_text(text.format(path=tmp_path / "ref.h5"))
    cfg.write_text(text.format(path=out))
    run(1, ref_cfg)
    for k, moment in enumerate(["first", "last", "first", "last"]):
        p = start(1, cfg, *(("--resume",) if k else ()))
        t_a = _wait_checkpoint(p)
        if moment == "first":
            time.sleep(rng.uniform(0.0, 1.0))
        else:
            interval = _wait_checkpoint(p) - t_a
            time.sleep(max(0.0, interval - rng.uniform(0.0, min(1.0, interval / 2))))
        assert p.poll() is None, f"kill {k} ({moment}) came after the run had finished"
        kill_run(p, cfg)
        data = read(out)                                 # readable after every kill
        assert not data["complete"]
        assert len(data["observables/sweep"]) >= _checkpoint_rows(tmp_path / "run.h5.ckpt")
    run(1, cfg, "--resume")
    same(read(out), read(tmp_path / "ref.h5"))
