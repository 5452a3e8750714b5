"""A training run killed (SIGKILL at random moments and inside a checkpoint write) or stopped by
SIGTERM/SIGUSR1 and resumed — on another number of ranks — ends bit-identical to the uninterrupted
run: couplings, optimiser state (Adam), per-epoch series, snapshots. Subprocesses under mpirun."""
from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import assert_same as same, kill_run, read_h5 as read, run_ok, wait_for  # noqa: E402
from launch import start as _start  # noqa: E402

CONFIG = """\
[lattice]
shape = [16, 8]
[learn]
mode = "target"
epochs = 120
n_chains = 2
samples_per_epoch = 10
params = ["w", "a", "b", "r"]
[target]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -0.3 }}
[reference]
g = {{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }}
[init]
w_mean = 0.5
w_std = 0.2
r_std = 0.05
[optimizer]
kind = "adam"
lr = 0.01
[sampler]
seed = 31
n_therm = 20
[output]
path = "{path}"
save_every = 7
progress = false
[checkpoint]
every = 10
keep = 2
"""










def start(n, cfg, *args, **extra):
    return _start(n, "learn", cfg, *args, **extra)


def run(n, cfg, *args):
    return run_ok(n, "learn", cfg, *args)


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ref")
    cfg = tmp / "ref.toml"
    cfg.write_text(CONFIG.format(path=tmp / "ref.h5"))
    run(2, cfg)
    data = read(tmp / "ref.h5")
    assert data["complete"] and data["learning/epoch"].size == 120 and data["learning/snapshots/epoch"].size == 17
    return data


def test_killed_training_resumes_bit_identical_on_other_rank_counts(tmp_path, reference):
    ref = reference
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run.h5"
    cfg.write_text(CONFIG.format(path=out))
    rng = np.random.default_rng(5)
    plan = [(2, "random"), (1, "checkpoint"), (4, "random")]
    for k, (n, moment) in enumerate(plan):
        args = ("--resume",) if k else ()
        if moment == "random":              # somewhere in the ~30 epochs after the next checkpoint
            p = start(n, cfg, *args)
            wait_for(p, "checkpoint ")
            time.sleep(rng.uniform(0.05, 0.3))   # the remaining >= 60 epochs take > 1 s even when idle
            assert p.poll() is None, "the run finished before the kill"
        else:
            p = start(n, cfg, *args, PQML_TEST_PAUSE_AT=moment)
            wait_for(p, f"PQML_TEST_PAUSE {moment}")
        kill_run(p, cfg)
        if out.exists():
            assert not read(out)["complete"]            # readable after every kill
    run(4, cfg, "--resume")
    same(read(out), ref)


@pytest.mark.parametrize("n,sig", [(2, signal.SIGUSR1), (1, signal.SIGTERM)])
def test_stop_signal_checkpoints_exits_3_and_resumes(tmp_path, reference, n, sig):
    ref = reference
    cfg = tmp_path / "run.toml"
    out = tmp_path / "run.h5"
    cfg.write_text(CONFIG.format(path=out))
    p = start(n, cfg, PQML_TEST_PAUSE_AT="checkpoint", PQML_TEST_PAUSE_SECONDS="0.3")
    wait_for(p, "PQML_TEST_PAUSE checkpoint")       # training is under way (first checkpoint, epoch 10)
    os.kill(p.pid, sig)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 3, err
    assert "stopped by signal" in err and not read(out)["complete"]
    run(2, cfg, "--resume")
    same(read(out), ref)
