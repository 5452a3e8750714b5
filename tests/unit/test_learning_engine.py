"""Pieces of the learning engine: the uniform proposal of appendix B samples the right (truncated)
distribution, the optimisers and schedules follow their formulas, and learned couplings can be sampled
(`[action] kind = "file"`), as can a target action (`kind = "target"`)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from launch import env, pqml_cmd  # noqa: E402
from pqml_analysis import binned_error, tau_int_gamma  # noqa: E402

from parallel_qftml.learning.optimizers import Optimizer, learning_rate  # noqa: E402
from parallel_qftml.models.action import PhiFourAction  # noqa: E402
from parallel_qftml.parallel.topology import Topology  # noqa: E402
from parallel_qftml.sampler import Sampler  # noqa: E402


def test_uniform_proposal_samples_the_truncated_distribution():
    """Two sites (shape (2,): both links couple them), proposal uniform on [lo, hi]: the chain samples
    e^{-S} restricted to [lo, hi]^2. <phi^2>, <phi0 phi1> against 2D Gauss-Legendre quadrature."""
    w, a, b, r, lo, hi = 0.4, 0.3, 0.5, 0.2, -1.5, 1.0
    x, wt = np.polynomial.legendre.leggauss(200)
    p = lo + (hi - lo) * (x + 1) / 2
    P0, P1 = np.meshgrid(p, p, indexing="ij")
    S = -2 * w * P0 * P1 + a * (P0**2 + P1**2) + b * (P0**4 + P1**4) + r * (P0 + P1)
    rho = np.outer(wt, wt) * np.exp(-(S - S.min()))
    exact = {"phi2": np.sum(rho * (P0**2 + P1**2)) / rho.sum() / 2, "nn": np.sum(rho * 2 * P0 * P1) / rho.sum() / 2}
    s = Sampler(Topology(MPI.COMM_SELF, (2,)), PhiFourAction.homogeneous(1, w, a, b, r), seed=17, n_hits=2,
                proposal=(lo, hi))
    s.sweep(200)
    n = 40000
    series = {k: np.empty(n) for k in exact}
    for i in range(n):
        s.sweep(1)
        m = s.measure()
        for k in exact:
            series[k][i] = m[k] / 2
    assert s.interior().min() >= lo and s.interior().max() < hi
    for k, v in exact.items():
        mean, err = binned_error(series[k], 20)
        tau = tau_int_gamma(series[k])[0]
        print(f"uniform proposal {k}: {mean:.5f} +- {err:.5f}, exact {v:.5f}, pull {(mean - v) / err:+.2f}, tau {tau:.2f}")
        assert n // 20 >= 10 * tau and err < 0.01
        assert abs(mean - v) < 3 * err


def test_optimizers_follow_their_formulas():
    rng = np.random.default_rng(3)
    g = [rng.normal(size=(2, 3)) for _ in range(3)]
    for kind in ("sgd", "momentum", "adam"):
        p0 = rng.normal(size=(2, 3))
        params = {"a": p0.copy()}
        opt = Optimizer(kind, params, momentum=0.8, beta1=0.9, beta2=0.99, eps=1e-8)
        ref, m, v = p0.copy(), np.zeros_like(p0), np.zeros_like(p0)
        for t, gt in enumerate(g, start=1):
            opt.step(params, {"a": gt.copy()}, 0.1)
            if kind == "sgd":
                ref = ref - 0.1 * gt
            elif kind == "momentum":
                m = 0.8 * m + gt
                ref = ref - 0.1 * m
            else:
                m = 0.9 * m + 0.1 * gt
                v = 0.99 * v + 0.01 * gt * gt
                ref = ref - 0.1 * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.99**t)) + 1e-8)
        assert np.allclose(params["a"], ref, rtol=1e-14, atol=1e-14), kind
        assert opt.t == 3


def test_learning_rate_schedules():
    assert learning_rate(0.1, "constant", 7, 0.5, 3) == 0.1
    assert learning_rate(0.1, "step", 7, 0.5, 3) == pytest.approx(0.1 * 0.25)
    assert learning_rate(0.1, "exponential", 3, 0.5, 1) == pytest.approx(0.0125)
    assert learning_rate(0.1, "inverse", 10, 0.5, 10) == pytest.approx(0.05)


LEARN = """
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 3
samples_per_epoch = 5
[target]
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -0.5 }
[sampler]
seed = 3
n_therm = 10
[output]
path = "learn.h5"
progress = false
"""

SAMPLE = """
[lattice]
shape = [4, 4]
[action]
{action}
[sampler]
seed = 5
n_therm = 10
n_sweeps = 20
[output]
path = "{out}"
progress = false
"""


def test_sample_learned_couplings_and_a_target_action(tmp_path):
    run = lambda *a: subprocess.run(pqml_cmd(1, *a), capture_output=True, text=True, env=env(), cwd=tmp_path,  # noqa
                                    timeout=300)
    (tmp_path / "learn.toml").write_text(LEARN)
    r = run("learn", "learn.toml")
    assert r.returncode == 0, r.stderr
    (tmp_path / "file.toml").write_text(SAMPLE.format(action='kind = "file"\npath = "learn.h5"', out="s1.h5"))
    r = run("sample", "file.toml")
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "learn.h5") as f, h5py.File(tmp_path / "s1.h5") as g:
        for k in ("w", "a", "b", "r"):
            assert np.array_equal(f[f"couplings/{k}"][()], g[f"couplings/{k}"][()]), k
        assert g["observables/action"].shape == (20, 1)
    (tmp_path / "target.toml").write_text(SAMPLE.format(
        action='kind = "target"\ng = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -1.0 }', out="s2.h5"))
    r = run("sample", "target.toml")
    assert r.returncode == 0, r.stderr
    (tmp_path / "bad.toml").write_text(SAMPLE.format(action='kind = "file"\npath = "missing.h5"', out="s3.h5"))
    r = run("sample", "bad.toml")
    assert r.returncode == 2 and r.stderr.startswith("pqml: error:") and "missing.h5" in r.stderr
    assert not (tmp_path / "s3.h5").exists()


def test_divergence_stops_with_exit_4_and_keeps_the_last_good_checkpoint(tmp_path):
    """A learning rate of 1000 blows the couplings up: the run stops with exit code 4 and a one-line
    message naming the newest checkpoint, which is loadable (checkpoint.every = 1)."""
    text = LEARN.replace("epochs = 3", "epochs = 500\nb_min = 0.01") + '[optimizer]\nlr = 1000.0\n[checkpoint]\nevery = 1\n'
    # b_min > 0 keeps the action bounded (no boundedness stop at epoch 0, tests/unit/test_bounded.py):
    # this is the non-finite path
    (tmp_path / "div.toml").write_text(text)
    r = subprocess.run(pqml_cmd(1, "learn", "div.toml"), capture_output=True, text=True, env=env(),
                       cwd=tmp_path, timeout=300)
    assert r.returncode == 4, r.stderr
    err = r.stderr.strip().splitlines()[-1]
    assert err.startswith("pqml: error: training diverged at epoch") and "last good checkpoint" in err
    ckpt = err.rsplit(" ", 1)[-1]
    assert (tmp_path / ckpt).exists()
    with h5py.File(tmp_path / ckpt) as f:
        assert all(np.all(np.isfinite(f[f"couplings/{k}"][()])) for k in "wabr")
    with h5py.File(tmp_path / "learn.h5") as f:
        assert not f.attrs["complete"]


def test_hooks_see_every_epoch_and_can_end_training(tmp_path, monkeypatch):
    """run_learn(hooks=...): called after every epoch with the row; True ends the run (complete file,
    final checkpoint, gradient snapshots written)."""
    from parallel_qftml.learn import run_learn
    from parallel_qftml.learning.config import parse_learn_config
    monkeypatch.chdir(tmp_path)
    cfg = parse_learn_config(LEARN.replace("epochs = 3", "epochs = 50") + "save_every = 1\n")
    seen = []
    assert run_learn(cfg, MPI.COMM_WORLD, hooks=[lambda tr, row: seen.append(row["kl"]) or tr.epoch == 4]) == 0
    assert len(seen) == 4
    with h5py.File(tmp_path / "learn.h5") as f:
        assert f.attrs["complete"] and f["learning/epoch"][()].tolist() == [1, 2, 3, 4]
        assert np.array_equal(f["learning/kl"][()], seen)
        assert f["learning/gradients/w"].shape == (4, 2, 4, 4)
        assert np.any(f["learning/gradients/a"][-1] != 0)
    assert sorted(p.name for p in (tmp_path / "learn.h5.ckpt").iterdir())[-1] == "ckpt-000000000004.h5"


def test_data_from_the_samplers_configurations(tmp_path):
    """[data] path = a pqml sample file: its /configs/phi (n_saved, n_replicas, *shape) are the data."""
    from parallel_qftml.io.dataset import load_blocks
    text = SAMPLE.format(action='kind = "mrf"\na = 1.2\nb = 0.2', out="mc.h5").replace(
        "[parallel]", "") + "save_every = 4\n[parallel]\nn_replicas = 1\n"
    (tmp_path / "mc.toml").write_text(text)
    r = subprocess.run(pqml_cmd(1, "sample", "mc.toml"), capture_output=True, text=True, env=env(), cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    blocks, lo, hi = load_blocks(str(tmp_path / "mc.h5"), "", Topology(MPI.COMM_SELF, (4, 4)))
    with h5py.File(tmp_path / "mc.h5") as f:
        phi = f["configs/phi"][()]
    assert phi.shape == (5, 1, 4, 4) and np.array_equal(blocks, phi.reshape(5, 4, 4))
    assert lo == phi.min() and hi == phi.max()
    learn = LEARN.replace('mode = "target"', 'mode = "data"').replace(
        "[target]\ng = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -0.5 }\n",
        '[data]\npath = "mc.h5"\nbatch_size = 2\n')
    (tmp_path / "learn.toml").write_text(learn)
    r = subprocess.run(pqml_cmd(1, "learn", "learn.toml"), capture_output=True, text=True, env=env(), cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr


def test_data_mode_learns_the_maximum_likelihood_gaussian(tmp_path):
    """KL(q||p) from data with only a, r learned (w = b = 0): p factorises into Gaussians
    exp(-(a_x phi^2 + r_x phi)) whose maximum-likelihood values give mean -r/(2a) and variance 1/(2a)
    equal to each site's empirical mean and variance of the data (eq. 25: the gradient vanishes when the
    model moments equal the data moments). PCD, Adam with a decaying rate; the model moments are averaged
    over the last 100 epochs and their error is the binned error over those epochs."""
    rng = np.random.default_rng(11)
    data = rng.normal(0.3, 0.5, size=(200, 4, 4))
    np.save(tmp_path / "d.npy", data, allow_pickle=False)
    text = """
[lattice]
shape = [4, 4]
[learn]
mode = "data"
epochs = 300
n_chains = 8
sweeps_per_sample = 5
params = ["a", "r"]
[data]
path = "d.npy"
batch_size = 20
[init]
w_mean = 0.0
w_std = 0.0
a_mean = 1.0
a_std = 0.0
b_mean = 0.0
b_std = 0.0
[optimizer]
kind = "adam"
lr = 0.02
schedule = "step"
decay = 0.5
decay_every = 100
[sampler]
seed = 5
n_therm = 50
[output]
path = "dm.h5"
save_every = 1
progress = false
"""
    (tmp_path / "dm.toml").write_text(text)
    r = subprocess.run(pqml_cmd(1, "learn", "dm.toml"), capture_output=True, text=True, env=env(), cwd=tmp_path,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    with h5py.File(tmp_path / "dm.h5") as f:
        a, rr = f["learning/snapshots/a"][-100:], f["learning/snapshots/r"][-100:]
    errs = {}
    for name, model, emp in (("variance", 1 / (2 * a), data.var(0)), ("mean", -rr / (2 * a), data.mean(0))):
        avg = model.mean(axis=(1, 2))                     # site average, per epoch
        mean, err = errs[name] = binned_error(avg, 10)
        pull = (mean - emp.mean()) / err
        print(f"data mode {name}: model {mean:.5f} +- {err:.5f}, data {emp.mean():.5f}, pull {pull:+.2f}; "
              f"max per-site |model - data| {np.abs(model.mean(0) - emp).max():.4f}")
        assert abs(pull) < 4
        # per site the learned value wanders with the stochastic gradient on time scales beyond these
        # 100 epochs (binned per-site errors are too small by ~2x), so only a loose check per site
        assert np.abs(model.mean(0) - emp).max() < 0.05 * np.abs(emp).mean()
    # the start (a = 1: variance 1/2) was far from the data's variance, in units of the variance's error
    start_pull = abs(1 / (2 * 1.0) - data.var(0).mean()) / errs["variance"][1]
    print(f"data mode: start variance 0.5 is {start_pull:.0f} errors of the learned variance from the data's")
    assert start_pull > 50
