"""pqml_analysis.errors compared with pyerrors 2.x (test dependency) on synthetic AR(1) series.

x_{t+1} = mu + rho (x_t - mu) + s sqrt(1 - rho^2) eps_t, started in equilibrium: mean mu, variance s^2,
rho(t) = rho^|t|, tau_int = 1/2 + sum_{t>=1} rho^t = (1 + rho)/(2 (1 - rho)) (the convention of both
pqml_analysis and pyerrors: tau_int = 1/2 without autocorrelation), and the mean of M consecutive
values has the exact variance v(M) = (s^2/M) [(1+rho)/(1-rho) - 2 rho (1 - rho^M)/(M (1-rho)^2)].

What is compared, and to what precision (docs/analysis_methods.md has the measured numbers):
* means: identical to 1e-12 (same arithmetic mean; N is a multiple of the number of bins, so binning
  drops nothing).
* Gamma method with the same S: the same autocovariance (divided by N - t), the same window rule
  (first W with exp(-W/tau_W) - tau_W/sqrt(W N) < 0), so the same W. The two differ only in the
  bias correction: ours adds C(W)/N to Gamma(t) (Wolff 2004, sec. 3), pyerrors multiplies
  tau_0 = tau_int(W) by (1 + (2W+1)/N)/(1 + 1/N) ("eq. 49" in its source). Hence, to rounding (1e-10):
  tau_ours = tau_0 (1 + (2W+1)/N)/(1 + 2 tau_0/N) with pyerrors' tau_0 (e_n_tauint[W]), i.e.
  |tau_ours/tau_pyerrors - 1| < 2 tau/N, and the error of the mean is the same number
  sqrt(C(W)(1 + (2W+1)/N)/N) in both (gamma_error vs dvalue). Exception: pyerrors clamps
  tau_int(W) >= 1/2 (+eps), we do not, so for uncorrelated data with a negative sum of rho they
  differ by that fluctuation (O(1/sqrt(N))).
* binning vs Gamma method: both estimate the same error, but with different statistical noise. A
  binned error from n bins scatters by 1/sqrt(2(n-1)) relative (chi^2 with n-1 dof: 12.7 % for
  n = 32), the Gamma-method error by about sqrt((W + 1/2 - tau)/N) (4 % here); per series they agree
  within 4 times the binning scatter, and over 200 independent series the mean of err_bin^2/err_G^2
  equals the exact expectation of binning, (v(B) - v(N))/(n-1)/v(N), within 4 standard errors.
* derived quantities: value f(means) identical (1e-12; no bias correction in either). Our
  leave-one-bin-out jackknife on n bins and pyerrors' linear error propagation applied to the same n
  bin averages (with S = 0) agree to first order in the bin fluctuations; the remainder is the
  second-order Taylor term, at most ~ sqrt(2 tau/B)/(n-1) (1.5e-3 here): tolerance 5e-3. Against
  pyerrors' Gamma method on the raw series the difference is statistical, as for primaries.
* truth: estimates within 4 of their own estimated errors of the exact AR(1) values.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

pe = pytest.importorskip("pyerrors")

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.errors import (bin_averages, binned_error, bootstrap, gamma_error, jackknife,  # noqa: E402
                                  tau_int_gamma)


def ar1(seed, rho, n, m=None, mu=0.0, s=1.0):
    """AR(1) series with mean mu and variance s^2, started from the stationary distribution."""
    rng = np.random.default_rng(seed)
    shape = (n,) if m is None else (m, n)
    e = rng.standard_normal(shape) * math.sqrt(1.0 - rho ** 2)
    e[..., 0] = rng.standard_normal(shape[:-1])
    return mu + s * lfilter([1.0], [1.0, -rho], e, axis=-1)


def tau_exact(rho):
    return (1.0 + rho) / (2.0 * (1.0 - rho))


def var_mean_exact(rho, m, s=1.0):
    return s ** 2 * ((1 + rho) / (1 - rho) - 2 * rho * (1 - rho ** m) / (m * (1 - rho) ** 2)) / m


def pe_obs(x, name="ens"):
    return pe.Obs([np.asarray(x, dtype=np.float64)], [f"{name}|r0"])


N = 2 ** 16


@pytest.mark.parametrize("rho", [0.5, 0.8, 0.95])
@pytest.mark.parametrize("S", [1.0, 1.5, 2.0])
def test_gamma_method_agrees_with_pyerrors(rho, S):
    x = ar1(1, rho, N, mu=3.0)
    o = pe_obs(x)
    o.gamma_method(S=S)
    tau, d_tau, w = tau_int_gamma(x, S)
    mean, err = gamma_error(x, S)
    assert w == o.e_windowsize["ens"]
    tau0 = o.e_n_tauint["ens"][w]                                # pyerrors' tau_int(W) before correction
    assert tau == pytest.approx(tau0 * (1 + (2 * w + 1) / N) / (1 + 2 * tau0 / N), rel=1e-10)
    assert abs(tau / o.e_tauint["ens"] - 1) < 2 * tau / N
    print(f"AR(1) rho={rho} S={S}: W {w} (pyerrors {o.e_windowsize['ens']}), error vs pyerrors' dvalue: "
          f"relative difference {err / o.dvalue - 1:+.1e}")
    assert err == pytest.approx(o.dvalue, rel=1e-10)
    assert mean == pytest.approx(o.value, rel=1e-12) and binned_error(x, 32)[0] == pytest.approx(o.value, rel=1e-12)
    # d_tau = 2 tau sqrt((W + 1/2 - tau)/N): pyerrors evaluates it with tau_0, we with the corrected tau
    assert d_tau == pytest.approx(o.e_dtauint["ens"], rel=4 * (2 * w + 1) / N + 1e-12)
    # both against the truth
    assert abs(tau - tau_exact(rho)) < 4 * d_tau
    rel = math.sqrt((w + 0.5) / N)                               # relative error of the error (Wolff)
    assert abs(err / math.sqrt(var_mean_exact(rho, N)) - 1) < 4 * rel


def test_uncorrelated_data_pyerrors_clamps_tau():
    """rho = 0: if sum rho(t) up to W is negative, pyerrors sets tau_int(W) = 1/2 + eps, we keep it.
    (With this seed rho(1) < 0, so the case occurs; the window is W = 1 in both.)"""
    x = ar1(1, 0.0, N)
    o = pe_obs(x)
    o.gamma_method(S=1.5)
    tau, d_tau, w = tau_int_gamma(x, 1.5)
    assert w == o.e_windowsize["ens"] == 1
    rho1 = o.e_rho["ens"][1]
    assert rho1 < 0 and tau < 0.5 and o.e_tauint["ens"] >= 0.5
    assert tau == pytest.approx((0.5 + rho1) * (1 + 3 / N) / (1 + (1 + 2 * rho1) / N), rel=1e-10)
    # the difference is 2 |rho(1)| with rho(1) ~ N(0, 1/N) for uncorrelated data (here -2 sigma)
    assert abs(tau / o.e_tauint["ens"] - 1) < 2 * 4 / math.sqrt(N)
    assert abs(tau - 0.5) < 4 * d_tau


def test_binning_vs_gamma_single_series():
    n_bins = 64
    for rho, seed in ((0.5, 2), (0.8, 3), (0.95, 4)):
        x = ar1(seed, rho, N, mu=-1.0)
        o = pe_obs(x)
        o.gamma_method(S=1.5)
        mean_b, err_b = binned_error(x, n_bins)
        assert mean_b == pytest.approx(o.value, rel=1e-12)
        assert abs(err_b / o.dvalue - 1) < 4 / math.sqrt(2 * (n_bins - 1))     # 0.36
        exact = math.sqrt(var_mean_exact(rho, N))
        assert abs(mean_b + 1.0) < 4 * exact
        assert abs(err_b / exact - 1) < 4 / math.sqrt(2 * (n_bins - 1))


def test_binning_vs_gamma_ensemble():
    m, n, n_bins, rho = 200, 2 ** 14, 32, 0.8
    xs = ar1(5, rho, n, m=m, mu=1.0)
    err_b = np.array([binned_error(x, n_bins)[1] for x in xs])
    err_g = np.empty(m)
    for i, x in enumerate(xs):
        o = pe_obs(x)
        o.gamma_method(S=1.5)
        err_g[i] = o.dvalue
        assert abs(gamma_error(x, 1.5)[1] / o.dvalue - 1) < 1e-10 or o.e_n_tauint["ens"][o.e_windowsize["ens"]] <= 0.5
    v = var_mean_exact(rho, n)
    expect = (var_mean_exact(rho, n // n_bins) - v) / (n_bins - 1) / v    # <err_bin^2>/v(N) = 0.991
    q = err_b ** 2 / err_g ** 2
    assert abs(q.mean() - expect) < 4 * q.std() / math.sqrt(m)
    r = err_b / err_g                                             # per-series scatter: the binning's
    assert abs(r.std() / (1 / math.sqrt(2 * (n_bins - 1))) - 1) < 0.3
    # and the Gamma method is the less noisy one
    assert (err_g / math.sqrt(v)).std() < 0.5 * (err_b / math.sqrt(v)).std()
    assert abs(np.mean(err_g ** 2) / v - 1) < 4 * np.std(err_g ** 2 / v) / math.sqrt(m)


V = 64


def chi_f(m2, m1):
    return V * (m2 - m1 ** 2)


def ratio_f(a, b):
    return a / b


def derived_cases():
    m = ar1(7, 0.8, N, mu=0.3, s=0.2)                    # chi = V s^2 = 2.56
    x, y = ar1(8, 0.5, N), ar1(9, 0.9, N)
    a, b = 2.0 + x, 4.0 + 0.5 * x + y                    # <a>/<b> = 0.5, a and b correlated
    return [("chi", [m ** 2, m], chi_f, V * 0.04), ("ratio", [a, b], ratio_f, 0.5)]


@pytest.mark.parametrize("case", derived_cases(), ids=lambda c: c[0])
def test_derived_quantity_jackknife_vs_pyerrors(case):
    name, series, f, truth = case
    n_bins = 64
    value, err = jackknife(series, f, n_bins)
    # pyerrors on the same bin averages, no autocorrelation (S = 0): linear error propagation
    ob = [pe_obs(bin_averages(s, n_bins), "bins") for s in series]
    db = f(*ob)
    db.gamma_method(S=0)
    assert value == pytest.approx(db.value, rel=1e-12)
    assert abs(err / db.dvalue - 1) < 5e-3                # second-order terms only (measured <= 6e-5)
    # pyerrors' Gamma method on the raw series: the same value, the error within the binning scatter
    o = [pe_obs(s) for s in series]
    d = f(*o)
    d.gamma_method(S=1.5)
    assert value == pytest.approx(d.value, rel=1e-12)
    assert abs(err / d.dvalue - 1) < 4 / math.sqrt(2 * (n_bins - 1))
    # both against the truth
    assert abs(value - truth) < 3 * err and abs(d.value - truth) < 3 * d.dvalue
    # the bootstrap of the same bins agrees with the jackknife
    assert abs(bootstrap(series, f, n_bins)[1] / err - 1) < 0.2
