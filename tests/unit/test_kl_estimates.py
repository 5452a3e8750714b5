"""KL estimates that do not mislead (docs/learning.md, "KL estimates"): the exponential average with its
effective sample size and verdict (the reweighting rule of analysis/), thermodynamic integration against
closed-form Gaussian KLs of 1e2 where the exponential average fails, the Gauss-Kronrod rule, the summary of
`pqml learn` (mean of the last epochs, binned error, pooled ESS; the reference KL by TI in the file)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from mpi4py import MPI

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.reweighting import reweight  # noqa: E402

from parallel_qftml.errors import ConfigError  # noqa: E402
from parallel_qftml.learning.config import parse_learn_config  # noqa: E402
from parallel_qftml.learning.estimators import (binned_mean, ess_of_log_weights, kl_exp_average,  # noqa: E402
                                                 kl_window, overlap_verdict, pooled_exp_average)
from parallel_qftml.learning.thermo import gauss_kronrod, ti_combine, ti_kl, ti_rule  # noqa: E402
from parallel_qftml.models.action import PhiFourAction, TargetAction  # noqa: E402
from parallel_qftml.parallel.topology import Topology  # noqa: E402
from parallel_qftml.sampler import Sampler  # noqa: E402

L = 4
G_S = {"nn": -1.0, "phi2": 2.5}          # free fields (b = 0): S = 1/2 phi^T Q phi, Q positive definite
G_FAR = {"nn": -1.0, "phi2": 30.0}       # KL(S || FAR) = 95.2
G_NEAR = {"nn": -1.0, "phi2": 2.6}       # KL(S || NEAR) = 0.0248
MAX_PULL = 4.0


def precision(g) -> np.ndarray:
    """Q of S = -sum_{x,mu} w phi_x phi_{x+mu} + a sum phi^2 = phi^T Q phi / 2 on the periodic L x L lattice."""
    V = L * L
    q = np.zeros((V, V))
    idx = lambda i, j: (i % L) * L + (j % L)  # noqa: E731
    for i in range(L):
        for j in range(L):
            x = idx(i, j)
            q[x, x] += 2 * g.get("phi2", 0.0)
            for y in (idx(i + 1, j), idx(i, j + 1)):
                q[x, y] += g.get("nn", 0.0)
                q[y, x] += g.get("nn", 0.0)
    return q


def kl_gauss(g_p, g_q) -> float:
    """KL(N(0, Q_p^-1) || N(0, Q_q^-1)) = [tr(Q_q Q_p^-1) - V + ln det Q_p - ln det Q_q] / 2."""
    qp, qq = precision(g_p), precision(g_q)
    return 0.5 * (np.trace(qq @ np.linalg.inv(qp)) - qp.shape[0] + np.linalg.slogdet(qp)[1] - np.linalg.slogdet(qq)[1])


def mean_a_minus_s(g_p, g_q, t) -> float:
    """<A - S>_t along S_t = S + t (A - S), exactly: tr((Q_A - Q_S) Q_t^-1) / 2."""
    qp, qq = precision(g_p), precision(g_q)
    return 0.5 * float(np.trace((qq - qp) @ np.linalg.inv(qp + t * (qq - qp))))


def sample_d(g_p, g_q, n, seed=11, chain=3):
    """n samples of D = S - A from a chain of S (one sweep apart, after 200 tuning sweeps)."""
    topo = Topology(MPI.COMM_SELF, (L, L))
    s = Sampler(topo, PhiFourAction.from_target(2, g_p), seed, chain=chain)
    s.tune(200, 0.5)
    a_p, a_q = TargetAction(g_p), TargetAction(g_q)
    d = np.empty(n)
    for k in range(n):
        s.sweep(1)
        m = s.measure()
        d[k] = a_p.evaluate(m) - a_q.evaluate(m)
    return d


# ---------------------------------------------------------------------------------------- quadrature

def test_gauss_kronrod_rule():
    """Exact to degree 3n + 1 (Kronrod) and 2n - 1 (Gauss, on its own nodes); n = 7 gives QUADPACK's qk15."""
    for n in (1, 2, 3, 5, 7, 10):
        x, wk, wg = gauss_kronrod(n)
        assert x.size == 2 * n + 1 and np.all(np.diff(x) > 0) and np.all(np.abs(x) < 1) and np.all(wk > 0)
        assert np.count_nonzero(wg) == n
        for m in range(3 * n + 2):
            exact = 2.0 / (m + 1) if m % 2 == 0 else 0.0
            assert abs(np.dot(wk, x ** m) - exact) < 1e-13, (n, m)
            if m < 2 * n:
                assert abs(np.dot(wg, x ** m) - exact) < 1e-13, (n, m)
    x, wk, _ = gauss_kronrod(7)       # QUADPACK dqk15 xgk, wgk
    assert x[-1] == pytest.approx(0.991455371120812639206854697526329, abs=1e-14)
    assert wk[-1] == pytest.approx(0.022935322010529224963732008058970, abs=1e-14)
    assert wk[7] == pytest.approx(0.209482141084727828012999174891714, abs=1e-14)


def test_ti_quadrature_error_bounds_the_error_on_the_exact_integrand():
    """The rule applied to the exact <A - S>_t of the Gaussians: the Kronrod value is within the stated
    quadrature error |Kronrod - Gauss| of the exact KL (conservatively: it is the Gauss rule's error),
    and that error shrinks with n."""
    exact = kl_gauss(G_S, G_FAR)
    assert 90 < exact < 100
    quad = []
    for n in (2, 3, 5, 7):
        t, _, _ = ti_rule(n)
        f = [mean_a_minus_s(G_S, G_FAR, 0.0)] + [mean_a_minus_s(G_S, G_FAR, ti) for ti in t]
        value, stat, gauss, q = ti_combine(f, np.zeros(len(f)), n)
        assert stat == 0.0
        assert abs(value - exact) <= q, (n, value, exact, q)
        assert abs(gauss - exact) <= 2 * q
        assert abs(value - exact) <= 0.1 * q or n == 2
        quad.append(q)
    assert quad[0] > 1 and quad[-1] < 0.1 and all(a > b for a, b in zip(quad, quad[1:]))


# ------------------------------------------------------------------------- large KL: TI vs exp. average

def test_large_kl_exponential_average_fails_and_says_so_ti_holds():
    """KL(S || A) = 95.2 between two free fields. The exponential average ln <e^{D - <D>}> of 1000 samples
    (5 independent chains) falls short every time, on average by more than its jackknife error bar and by
    many standard errors of the mean of the 5 (a bias, not noise), and its ESS (1-2 of 1000) says it is
    unreliable; TI (Gauss-Kronrod 4/9, 1500 samples 3 sweeps apart per node) lands within 4 of its stated
    errors, which are small enough to tell the exponential average's failure apart."""
    exact = kl_gauss(G_S, G_FAR)
    ests = [kl_exp_average(sample_d(G_S, G_FAR, 1000, chain=c), 20) for c in range(5)]
    for ex in ests:
        print(f"exact {exact:.3f}; exponential average {ex.describe()}")
    assert all(not ex.reliable and "poor overlap" in ex.reason and ex.ess < 10 for ex in ests)
    values = np.array([ex.value for ex in ests])
    short = exact - values.mean()
    assert np.all(values < exact)
    assert short > 4 * values.std(ddof=1) / math.sqrt(values.size)      # biased, far beyond the noise
    assert short > np.median([ex.err for ex in ests])                   # and beyond its own error bar
    ti = ti_kl(Topology(MPI.COMM_SELF, (L, L)), G_S, G_FAR, seed=7, n_gauss=4, n_samples=1500, sweeps_per_sample=3,
               n_therm=200)
    pull = (ti.value - exact) / ti.err
    print(f"TI {ti.describe()}; pull {pull:+.2f}; per node pulls "
          f"{np.round((ti.mean - [mean_a_minus_s(G_S, G_FAR, t) for t in ti.t]) / ti.mean_err, 2).tolist()}")
    assert ti.t.size == 10 and ti.t[0] == 0.0 and ti.n_samples == 1500
    assert abs(pull) < MAX_PULL
    assert ti.err < 0.05 * exact and short > 3 * ti.err             # sensitive: TI tells the failure apart
    assert ti.quad_err < ti.stat_err                                 # 4/9 nodes resolve this integrand
    assert np.all(ti.tau > 0.3) and np.all(ti.tau < 8)              # 75-sample bins >> tau_int


def test_small_kl_exponential_average_is_reliable_and_right():
    exact = kl_gauss(G_S, G_NEAR)
    ex = kl_exp_average(sample_d(G_S, G_NEAR, 2000), 20)
    print(f"exact {exact:.5f}; {ex.describe()}")
    assert ex.reliable and ex.ess > 1800
    assert abs(ex.value - exact) < MAX_PULL * ex.err and exact > 5 * ex.err


# --------------------------------------------------------------------------------- diagnostics, rules

@pytest.mark.parametrize("spread", [0.1, 1.0, 3.0, 6.0])
def test_verdict_is_the_reweighting_rule(spread):
    """The KL weights e^{D} are the reweighting weights exp(-(A - S)): same ESS and verdict as
    analysis/pqml_analysis/reweighting.reweight on the same samples (one rule, two places)."""
    d = np.random.default_rng(int(spread * 10)).normal(0.0, spread, 3000)
    est = kl_exp_average(d, 20)
    rw = reweight(-d, np.ones_like(d), 20)
    assert est.ess == pytest.approx(rw.ess, rel=1e-12)
    assert est.reliable == rw.reliable
    assert overlap_verdict(rw.ess, d.size)[0] == rw.reliable
    assert est.reliable == (spread < 3.0)           # ESS ~ N e^{-sigma^2}: 3000 e^{-9} < 100
    bad = d.copy()
    bad[5] = np.nan
    assert not kl_exp_average(bad, 20).reliable and not reweight(-bad, np.ones_like(bad), 20).reliable
    assert math.isnan(ess_of_log_weights(bad))


def test_pooled_exp_average_equals_the_direct_one():
    """Per-epoch (KL, ESS, ln sum w) pool to the exponential average and ESS of all samples together."""
    d = np.random.default_rng(3).normal(1.0, 1.5, (40, 50))
    d += np.linspace(0, 0.3, 40)[:, None]           # epochs differ a little
    ests = [kl_exp_average(row, 10) for row in d]
    kl, ess = pooled_exp_average([e.value for e in ests], [e.lsw for e in ests], [e.ess for e in ests], 50)
    direct = kl_exp_average(d.ravel(), 10)
    assert kl == pytest.approx(direct.value, abs=1e-10) and ess == pytest.approx(direct.ess, rel=1e-10)


def test_binned_mean_of_ar1_sees_the_autocorrelation():
    """AR(1) with rho = 0.8: tau_int = (1 + rho) / (2 (1 - rho)) = 4.5; 20 blocks of 5000."""
    rng = np.random.default_rng(1)
    rho, n = 0.8, 100_000
    e = rng.normal(size=n)
    x = np.empty(n)
    x[0] = e[0]
    for i in range(1, n):
        x[i] = rho * x[i - 1] + math.sqrt(1 - rho * rho) * e[i]
    mean, err, tau = binned_mean(x, 20)
    exact_err = math.sqrt(2 * 4.5 / n)
    assert err == pytest.approx(exact_err, rel=0.5) and tau == pytest.approx(4.5, rel=0.6)
    assert abs(mean) < 4 * exact_err


def test_kl_window_error_and_verdict():
    """The summary statistics of the last epochs: mean of the per-epoch KL with a binned error that
    sees the correlation between neighbouring epochs, the verdict of the median per-epoch ESS, and the
    pooled estimate (a fixed action: the same as all samples at once)."""
    rng = np.random.default_rng(2)
    slow = np.repeat(rng.normal(0, 0.2, 10), 10)     # epochs correlated in runs of 10 (KL ~ sigma^2 / 2)
    good = [kl_exp_average(rng.normal(0, 0.1 * math.exp(s), 500), 10) for s in slow]
    w = kl_window([e.value for e in good], [e.ess for e in good], [e.lsw for e in good], 500, 100)
    naive = np.std([e.value for e in good], ddof=1) / 10
    assert w.n_epochs == 100 and w.n == 500 and w.reliable and w.median_ess > 490 and w.err > 1.5 * naive
    assert "mean of the last 100 epochs" in w.describe() and "reliable" in w.describe()
    assert "pooled" not in w.describe() and "ESS" in w.describe(pooled=True).split("pooled")[1]
    d = rng.normal(0, 4.0, (100, 50))                 # a fixed, far action: 50 samples per epoch
    bad = [kl_exp_average(row, 10) for row in d]
    wb = kl_window([e.value for e in bad], [e.ess for e in bad], [e.lsw for e in bad], 50, 100)
    assert not wb.reliable and "UNRELIABLE" in wb.describe() and wb.median_ess < 5
    direct = kl_exp_average(d.ravel(), 10)
    assert wb.pooled == pytest.approx(direct.value, abs=1e-10) and wb.pooled_ess == pytest.approx(direct.ess)
    assert wb.mean < wb.pooled < 8.0                  # exact KL = sigma^2 / 2 = 8: both short, pooling less so


# ------------------------------------------------------------------------------ config, pqml learn

LEARN = """
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 30
samples_per_epoch = 10
[target]
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175, nnn = -1.0 }
[reference]
g = { nn = -1.0, phi2 = 1.52425, phi4 = 0.175 }
REF
[optimizer]
lr = 1e-3
[sampler]
seed = 5
n_therm = 20
[output]
path = "learn.h5"
progress = false
"""


@pytest.mark.parametrize("ref, words", [
    ('estimator = "bennett"', ["reference.estimator"]),
    ("nodes = 3", ["reference", "nodes"]),
    ('estimator = "ti"\n[ti]\nnodes = 16', ["ti.nodes", "1..15"]),
    ('estimator = "ti"\n[ti]\nsamples = 5', ["ti.samples"]),
    ('estimator = "ti"\n[ti]\nsweeps = 5', ["ti", "sweeps"]),
])
def test_ti_keys_are_checked(ref, words):
    with pytest.raises(ConfigError) as e:
        parse_learn_config(LEARN.replace("REF", ref))
    assert all(w in str(e.value) for w in words), str(e.value)


def test_final_kl_ti_needs_target_mode_and_fig3_uses_ti():
    from parallel_qftml.learning.config import load_learn_config
    text = """
[lattice]
shape = [4, 4]
[learn]
mode = "data"
epochs = 1
final_kl = "ti"
[data]
path = "x.npy"
[sampler]
seed = 1
[output]
path = "o.h5"
"""
    with pytest.raises(ConfigError, match="learn.final_kl"):
        parse_learn_config(text)
    f3 = load_learn_config(Path(__file__).resolve().parents[2] / "jobs/configs/fig3_learn_a4.toml")
    assert f3.reference_estimator == "ti" and f3.learn.final_kl == "ti" and f3.ti.nodes == 7


def test_learn_summary_quotes_the_mean_of_the_last_epochs_and_the_ti_reference(tmp_path, monkeypatch, capsys):
    """pqml learn with [reference] estimator = "ti" and learn.final_kl = "ti": /learning/reference_ti and
    /learning/final_ti in the file, the ESS series, and a summary line with the mean of the last 3 (= 30 / 10)
    epochs, its verdict and both TI values. The TI settings do not change the training (physics hash)."""
    from parallel_qftml.learn import run_learn
    monkeypatch.chdir(tmp_path)
    text = LEARN.replace("REF", 'estimator = "ti"\n[ti]\nnodes = 2\nsamples = 200\nn_therm = 50').replace(
        'mode = "target"', 'mode = "target"\nfinal_kl = "ti"')
    cfg = parse_learn_config(text)
    assert cfg.reference_estimator == "ti" and cfg.ti.nodes == 2 and cfg.learn.final_kl == "ti"
    assert cfg.physics_sha256 == parse_learn_config(LEARN.replace("REF", "")).physics_sha256
    assert run_learn(cfg, MPI.COMM_WORLD) == 0
    out = capsys.readouterr().out
    with h5py.File(tmp_path / "learn.h5") as f:
        g = f["learning/reference_ti"]
        assert g["t"].shape == (6,) and g["t"][0] == 0.0 and np.all(np.isfinite(g["mean_err"][()]))
        value, stat, quad = (float(g.attrs[k]) for k in ("value", "stat_err", "quad_err"))
        assert value > 20 and stat > 0 and quad > 0
        fg = f["learning/final_ti"]
        assert fg["t"].shape == (6,) and int(fg.attrs["epoch"]) == 30
        fvalue, fstat, fquad = (float(fg.attrs[k]) for k in ("value", "stat_err", "quad_err"))
        kl, ess, lsw = (f[f"learning/{k}"][()] for k in ("kl", "kl_ess", "kl_lsw"))
        assert np.all((ess >= 1) & (ess <= 10)) and np.all(np.isfinite(f["learning/kl_ref_ess"][()]))
    line = [s for s in out.splitlines() if s.startswith("epoch 30:")][0]
    w = kl_window(kl, ess, lsw, 10, 3)
    assert f"KL {w.mean:.4g} ± {w.err:.2g} (mean of the last 3 epochs;" in line, line
    assert "UNRELIABLE" in line                      # 10 samples per epoch can never reach ESS 100
    assert f"reference KL {value:.4g} ± {stat:.2g} (stat) ± {quad:.2g} (quadrature)" in line
    assert f"final KL {fvalue:.4g} ± {fstat:.2g} (stat) ± {fquad:.2g} (quadrature) by thermodynamic" in line
    # analysis/plot_learning.py draws the TI reference line and the final point
    import importlib.util
    spec = importlib.util.spec_from_file_location("plot_learning", Path(__file__).resolve().parents[2]
                                                  / "analysis/plot_learning.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    run = mod.load(tmp_path / "learn.h5")
    assert run["reference_ti"]["value"] == value and run["final_ti"]["value"] == fvalue and mod.n_per_epoch(run) == 10
    assert mod.main([str(tmp_path / "learn.h5"), "--panels", "kl", "--out", str(tmp_path / "kl.png")]) == 0
    assert (tmp_path / "kl.png").stat().st_size > 1000


# ------------------------------------------------------------------- TI of a learned (inhomogeneous) S

MODEL = """
[lattice]
shape = [4, 4]
[learn]
mode = "target"
epochs = 1
[target]
g = { nn = -1.0, phi2 = 10.0 }
[init]
w_mean = 1.0
w_std = 0.15
a_mean = 2.5
a_std = 0.2
b_mean = 0.0
b_std = 0.0
[sampler]
seed = 9
[output]
path = "unused.h5"
"""


def precision_of(w, a) -> np.ndarray:
    """Q of S = -sum_{x,mu} w_mu(x) phi_x phi_{x+mu} + sum a_x phi_x^2 (b = 0) on the periodic L x L lattice."""
    V = L * L
    q = np.diag(2.0 * np.asarray(a).ravel())
    for i in range(L):
        for j in range(L):
            x = i * L + j
            for mu, y in ((0, ((i + 1) % L) * L + j), (1, i * L + (j + 1) % L)):
                q[x, y] -= w[mu][i, j]
                q[y, x] -= w[mu][i, j]
    assert q.shape == (V, V)
    return q


def test_model_ti_of_an_inhomogeneous_free_field_matches_the_closed_form():
    """Trainer.model_ti: KL(p_S || q_A) of the trainer's current couplings (w per link, a per site, b = 0)
    against a far target (KL ~ 20), by TI along S_t = S + t (A - S) in coupling space, against
    [tr(Q_A Q_S^-1) - V + ln det Q_S - ln det Q_A] / 2."""
    from parallel_qftml.learning.trainer import Trainer
    cfg = parse_learn_config(MODEL)
    tr = Trainer(cfg, Topology(MPI.COMM_SELF, (L, L)))
    w, a = tr.params["w"], tr.params["a"]
    assert np.ptp(w) > 0.2 and np.ptp(a) > 0.3 and np.all(tr.params["b"] == 0)      # inhomogeneous
    qs, qa = precision_of(w, a), precision(cfg.target)
    exact = 0.5 * (np.trace(qa @ np.linalg.inv(qs)) - qs.shape[0] + np.linalg.slogdet(qs)[1] - np.linalg.slogdet(qa)[1])
    ti = tr.model_ti(n_gauss=4, n_samples=600, sweeps_per_sample=3, n_therm=100)
    f = [0.5 * np.trace((qa - qs) @ np.linalg.inv(qs + t * (qa - qs))) for t in ti.t]
    pull = (ti.value - exact) / ti.err
    print(f"exact {exact:.3f}; TI {ti.describe()}; pull {pull:+.2f}; per node pulls "
          f"{np.round((ti.mean - f) / ti.mean_err, 2).tolist()}")
    assert 15 < exact < 30 and abs(pull) < MAX_PULL and ti.err < 0.08 * exact
    assert np.all(np.abs((ti.mean - f) / ti.mean_err) < MAX_PULL)


def test_resume_keeps_the_reference_ti_and_rewrites_the_final_ti(tmp_path, monkeypatch, capsys):
    """The reference TI is computed once (a resumed run keeps it, bit for bit); the final TI is replaced
    by that of the resumed run's end (its epoch attribute says which). A file without the ESS series
    (an older version) is refused with a one-line error."""
    from parallel_qftml.learn import run_learn
    monkeypatch.chdir(tmp_path)
    text = LEARN.replace("REF", 'estimator = "ti"\n[ti]\nnodes = 1\nsamples = 40\nn_therm = 10').replace(
        'mode = "target"', 'mode = "target"\nfinal_kl = "ti"').replace("epochs = 30", "epochs = 4")
    assert run_learn(parse_learn_config(text), MPI.COMM_WORLD) == 0
    with h5py.File(tmp_path / "learn.h5") as f:
        ref0 = f["learning/reference_ti/mean"][()]
        fin0 = f["learning/final_ti/mean"][()]
        assert int(f["learning/final_ti"].attrs["epoch"]) == 4
    cfg = parse_learn_config(text, overrides=("learn.epochs=6",))
    assert cfg.learn.epochs == 6
    assert run_learn(cfg, MPI.COMM_WORLD, resume=True) == 0
    capsys.readouterr()
    with h5py.File(tmp_path / "learn.h5") as f:
        assert np.array_equal(f["learning/reference_ti/mean"][()], ref0)
        assert int(f["learning/final_ti"].attrs["epoch"]) == 6 and f["learning/final_ti/mean"].shape == (4,)
        assert not np.array_equal(f["learning/final_ti/mean"][()], fin0)      # other couplings
        assert f["learning/epoch"][()].tolist() == [1, 2, 3, 4, 5, 6]
    with h5py.File(tmp_path / "learn.h5", "r+") as f:         # a file of the version before the ESS series
        del f["learning/kl_ess"]
    from parallel_qftml.errors import UserError
    with pytest.raises(UserError, match="older version.*kl_ess"):
        run_learn(parse_learn_config(text, overrides=("learn.epochs=8",)), MPI.COMM_WORLD, resume=True)
