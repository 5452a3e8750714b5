"""Boundedness of e^{-S} (docs/conventions.md, "Boundedness"): PhiFourAction.check_bounded against an
independently built matrix of the quadratic form, and its use on every way couplings arrive (TOML kinds,
the Sampler, learning init and learning updates)."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch import env, pqml_cmd  # noqa: E402

import parallel_qftml.models.action as act_mod  # noqa: E402
from parallel_qftml.errors import UserError  # noqa: E402
from parallel_qftml.models.action import (PhiFourAction, check_quadratic_positive,  # noqa: E402
                                          homogeneous_min_eigenvalue)


def quadratic_matrix(w, a, w_nnn, shape):
    """M with phi.M.phi = -sum_x sum_mu w_mu(x) phi_x phi_{x+mu} - w_nnn sum_diag + sum_x a_x phi_x^2,
    by polarisation of that quadratic form evaluated literally with np.roll (independent of action.py)."""
    d = len(shape)
    w = [np.broadcast_to(x, shape) for x in w]
    a = np.broadcast_to(a, shape)

    def q(phi):
        s = np.sum(a * phi * phi)
        for mu in range(d):
            s -= np.sum(w[mu] * phi * np.roll(phi, -1, axis=mu))
            for nu in range(mu + 1, d):
                fwd = np.roll(phi, -1, mu)
                s -= w_nnn * np.sum(phi * (np.roll(fwd, -1, nu) + np.roll(fwd, 1, nu)))
        return s

    V = int(np.prod(shape))
    e = np.eye(V).reshape(V, *shape)
    diag = np.array([q(e[i]) for i in range(V)])
    m = np.empty((V, V))
    for i in range(V):
        for j in range(V):
            m[i, j] = diag[i] if i == j else (q(e[i] + e[j]) - diag[i] - diag[j]) / 2
    return m


@pytest.mark.parametrize("shape", [(6,), (2, 2), (4, 6), (2, 4, 2)])
@pytest.mark.parametrize("w_nnn", [0.0, 0.3, -0.4])
def test_homogeneous_closed_form_is_the_minimum_eigenvalue(shape, w_nnn):
    rng = np.random.default_rng(len(shape) * 10 + int(10 * w_nnn))
    w = list(rng.normal(size=len(shape)))
    lam, _ = homogeneous_min_eigenvalue(w, 0.7, w_nnn if len(shape) > 1 else 0.0)
    exact = np.linalg.eigvalsh(quadratic_matrix(w, 0.7, w_nnn if len(shape) > 1 else 0.0, shape))[0]
    assert lam == pytest.approx(exact, abs=1e-12)


@pytest.mark.parametrize("dense_max", [act_mod.BOUNDED_DENSE_MAX, 0])
@pytest.mark.parametrize("ferro", [True, False])
def test_restricted_form_check_matches_dense_eigenvalues(monkeypatch, dense_max, ferro):
    """Inhomogeneous w, a, w_nnn and a random zero set Z on 4x4: accepted iff lambda_min of M restricted
    to Z is > 0. With dense_max = 0 the M-matrix certificate is used: exact for w, w_nnn >= 0 (ferro);
    for mixed signs it may only refuse more (never accept an indefinite form)."""
    monkeypatch.setattr(act_mod, "BOUNDED_DENSE_MAX", dense_max)
    shape = (4, 4)
    rng = np.random.default_rng(7 + ferro)
    checked = 0
    for trial in range(12):
        w = rng.uniform(0, 1, (2, *shape)) if ferro else rng.normal(0, 0.7, (2, *shape))
        w_nnn = 0.2 if ferro else -0.3
        zero = rng.uniform(size=shape) < 0.6
        base = rng.uniform(0, 0.4, shape)
        m0 = quadratic_matrix(list(w), base, w_nnn, shape)
        sel = zero.ravel()
        lam0 = np.linalg.eigvalsh(m0[np.ix_(sel, sel)])[0]
        for shift in (0.05, -0.05):                # a = base + c: lambda_min = lam0 + c
            a = base + (shift - lam0)
            ok = check_quadratic_positive(list(w), a, w_nnn, zero) is None
            if dense_max or ferro:
                assert ok == (shift > 0), (trial, shift)
            else:
                assert not (ok and shift < 0)
            checked += 1
    assert checked == 24


def test_unbounded_reasons_name_the_site():
    shape = (4, 4)
    b = np.full(shape, 0.1)
    b[2, 3] = -0.5
    msg = PhiFourAction.inhomogeneous(np.ones((2, *shape)), 1.0, b).unbounded_reason(shape)
    assert "b = -0.5 < 0 at site (2, 3)" in msg
    b[2, 3] = 0.0
    a = np.full(shape, -7.0)                       # a < 0 is fine where b > 0 ...
    assert PhiFourAction.inhomogeneous(np.ones((2, *shape)), a, b).unbounded_reason(shape) is not None
    a[2, 3] = 4.5                                  # ... and an isolated b = 0 site needs a > 0 there only
    assert PhiFourAction.inhomogeneous(np.ones((2, *shape)), a, b).unbounded_reason(shape) is None
    a[2, 3] = -1.0
    msg = PhiFourAction.inhomogeneous(np.ones((2, *shape)), a, b).unbounded_reason(shape)
    assert "a = -1 <= 0 at site (2, 3)" in msg
    assert PhiFourAction.homogeneous(2, a=-50.0, b=1e-6).unbounded_reason(shape) is None
    assert PhiFourAction.homogeneous(2, a=2.0, b=0.0).unbounded_reason(shape) is not None     # massless
    assert PhiFourAction.homogeneous(2, a=2.01, b=0.0).unbounded_reason(shape) is None
    assert PhiFourAction.homogeneous(2, w=-1.0, a=2.0, b=0.0).unbounded_reason(shape) is not None   # k = pi
    # perturbed couplings: b_x = b + spread (2u - 1) in [b - spread, b + spread)
    assert PhiFourAction.perturbed(2, 1, spread=0.1, b=0.175).unbounded_reason(shape) is None
    assert "< 0 at site" in PhiFourAction.perturbed(2, 1, spread=0.3, b=0.175).unbounded_reason(shape)


def test_sampler_refuses_an_unbounded_action():
    from parallel_qftml.parallel.topology import Topology
    from parallel_qftml.sampler import Sampler
    topo = Topology(MPI.COMM_SELF, (4, 4))
    with pytest.raises(UserError, match="unbounded below"):
        Sampler(topo, PhiFourAction.homogeneous(2, a=0.0, b=0.0), seed=1)
    Sampler(topo, PhiFourAction.homogeneous(2, a=2.5, b=0.0), seed=1)          # a free field: fine


SAMPLE = """
[lattice]
shape = [4, 4]
[action]
{action}
[sampler]
seed = 5
n_therm = 10
n_sweeps = 10
[output]
path = "out/run.h5"
progress = false
"""


def run(tmp_path, *args, n=1):
    return subprocess.run(pqml_cmd(n, *args), capture_output=True, text=True, env=env(), cwd=tmp_path, timeout=300)


def assert_refused(r, code, *words):
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    if code == 4:                       # a training run logs its start before it diverges
        lines = [ln for ln in lines if ln.startswith("pqml: error: ")]
    assert len(lines) == 1 and lines[0].startswith("pqml: error: "), r.stderr
    for word in words:
        assert word in lines[0], lines[0]


UNBOUNDED_TOML = [
    'kind = "mrf"\na = 0\nb = 0',
    'kind = "mrf"\na = -1\nb = 0',
    'kind = "mrf"\na = 1.5\nb = 0\nw_nnn = 0.5',
    'kind = "mrf"\na = 1.52425\nb = 0.175\nspread = 0.3',
    'kind = "lattice"\nkappa = 0.2\nmu2 = -0.1\nlam = 0',
    'kind = "target"\ng = { nn = -1.0, phi2 = 1.0 }',
]


@pytest.mark.parametrize("action", UNBOUNDED_TOML)
def test_unbounded_toml_actions_are_config_errors(action):
    from parallel_qftml.config import parse_config
    from parallel_qftml.errors import ConfigError
    cfg = parse_config(SAMPLE.format(action=action))
    with pytest.raises(ConfigError, match=r"^config error: \[action\] kind = .*unbounded below"):
        cfg.to_action()
    bounded = re.sub(r"^(b|lam) = 0$", r"\1 = 0.01", action, flags=re.M).replace(
        "spread = 0.3", "spread = 0.1").replace("phi2 = 1.0", "phi2 = 1.0, phi4 = 0.1")
    assert bounded != action
    parse_config(SAMPLE.format(action=bounded)).to_action()        # the same with b > 0 is fine


@pytest.mark.parametrize("action", UNBOUNDED_TOML[:2])
def test_unbounded_toml_actions_exit_2_and_write_nothing(tmp_path, action):
    (tmp_path / "c.toml").write_text(SAMPLE.format(action=action))
    assert_refused(run(tmp_path, "sample", "c.toml"), 2, "unbounded below", "[action]")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


LEARN = """
[lattice]
shape = [4, 4]
[learn]
mode = "data"
epochs = 3
n_chains = 2
sweeps_per_sample = 2
params = ["a"]
[data]
path = "d.npy"
batch_size = 20
[init]
w_mean = 0.0
w_std = 0.0
a_mean = {a_mean}
a_std = 0.0
b_mean = 0.0
b_std = 0.0
[optimizer]
kind = "sgd"
lr = {lr}
[sampler]
seed = 5
n_therm = 10
[output]
path = "out/dm.h5"
progress = false
"""


def test_unbounded_initial_couplings_exit_2(tmp_path):
    np.save(tmp_path / "d.npy", np.random.default_rng(1).normal(0, 0.5, size=(20, 4, 4)), allow_pickle=False)
    (tmp_path / "l.toml").write_text(LEARN.format(a_mean=-1.0, lr=0.01))
    assert_refused(run(tmp_path, "learn", "l.toml"), 2, "initial couplings", "unbounded below", "eigenvalue -1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npy", "l.toml"]


@pytest.mark.parametrize("n", [1, 2])
def test_learning_update_leaving_the_bounded_region_is_divergence(tmp_path, n):
    """w = b = 0, only a learned: a Gaussian per site. a = 10 starts far above the data's maximum-likelihood
    value 1/(2 var) = 2; the gradient <phi^2>_data - <phi^2>_model ~ 0.25 - 0.05 and lr = 100 step a to
    about -10 at the first update: exit 4 (on 2 ranks too: the decision is collective), naming the
    bounded region and the same site."""
    np.save(tmp_path / "d.npy", np.random.default_rng(1).normal(0, 0.5, size=(20, 4, 4)), allow_pickle=False)
    (tmp_path / "l.toml").write_text(LEARN.format(a_mean=10.0, lr=100.0))
    assert_refused(run(tmp_path, "learn", "l.toml", n=n), 4, "training diverged at epoch 0", "bounded region",
                   "b = 0 and a = -12.1331 <= 0 at site (0, 1)")


TARGET_LEARN = """
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 1
[target]
g = {target}
{reference}
[sampler]
seed = 3
[output]
path = "unused.h5"
"""


@pytest.mark.parametrize("target, reference, section", [
    ("{ nn = -1.0, phi2 = 1.0 }", "", "[target]"),                  # a free field with m^2 < 0: no KL
    ("{ nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }", "[reference]\ng = { nn = -1.0, phi2 = 2.0 }", "[reference]"),
])
def test_unbounded_learning_target_or_reference_is_refused(target, reference, section):
    """In process: the Trainer refuses before any output exists (run_learn builds it before the file)."""
    from parallel_qftml.learning.config import parse_learn_config
    from parallel_qftml.learning.trainer import Trainer
    from parallel_qftml.parallel.topology import Topology
    cfg = parse_learn_config(TARGET_LEARN.format(target=target, reference=reference))
    with pytest.raises(UserError) as e:
        Trainer(cfg, Topology(MPI.COMM_SELF, (4, 4)))
    assert str(e.value).startswith(f"config error: {section} the action is unbounded below"), str(e.value)
    assert "eigenvalue " + ("-1" if section == "[target]" else "0") + " <= 0" in str(e.value)   # 1 - 2; 2 - 2
