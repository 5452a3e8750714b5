"""pqml_analysis.errors on synthetic AR(1) series with known mean, variance and autocorrelation.

x_{t+1} = mu + rho (x_t - mu) + sqrt(1 - rho^2) eps_t, started in equilibrium: variance 1,
rho(t) = rho^|t|, tau_int = (1 + rho) / (2 (1 - rho)), and the mean of M consecutive values has the
exact variance v(M) = (1/M) [(1+rho)/(1-rho) - 2 rho (1 - rho^M) / (M (1-rho)^2)].
All seeds are fixed; every tolerance is a multiple (4) of the statistical scatter of the checked
estimator, either known exactly or measured over an ensemble of independent series.
"""
import math
import os
import sys

import numpy as np
import pytest
from scipy.signal import lfilter

try:
    from pqml_analysis.errors import bin_averages, binned_error, jackknife, tau_int_gamma
except ImportError:  # run without PYTHONPATH=analysis
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "analysis"))
    from pqml_analysis.errors import bin_averages, binned_error, jackknife, tau_int_gamma


def ar1(seed, rho, n, m=None, mu=0.0):
    """AR(1) series with unit variance, started from the stationary distribution; shape (n,) or (m, n)."""
    rng = np.random.default_rng(seed)
    shape = (n,) if m is None else (m, n)
    e = rng.standard_normal(shape) * math.sqrt(1.0 - rho ** 2)
    e[..., 0] = rng.standard_normal(shape[:-1])
    return mu + lfilter([1.0], [1.0, -rho], e, axis=-1)


def tau_exact(rho):
    return (1.0 + rho) / (2.0 * (1.0 - rho))


def var_mean_exact(rho, m):
    """Exact variance of the mean of m consecutive values of the unit-variance AR(1) process."""
    return ((1 + rho) / (1 - rho) - 2 * rho * (1 - rho ** m) / (m * (1 - rho) ** 2)) / m


def test_binned_error_formula_by_hand():
    x = np.array([9.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0])      # first entry dropped: bins (1,2) (3,4) (5,6)
    assert np.allclose(bin_averages(x, 3), [1.5, 3.5, 5.5])
    mean, err = binned_error(x, 3)
    o = np.array([1.5, 3.5, 5.5])
    assert mean == pytest.approx(3.5)
    assert err == pytest.approx(math.sqrt((np.mean(o ** 2) - np.mean(o) ** 2) / 2))   # eq. D1
    assert err == pytest.approx(2.0 / math.sqrt(3.0))
    with pytest.raises(ValueError):
        binned_error(np.arange(5.0), 10)


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_binned_error_long_series_matches_exact_error(rho):
    n, mu, n_bins = 2 ** 17, 3.0, 50
    x = ar1(11, rho, n, mu=mu)
    mean, err = binned_error(x, n_bins)
    exact = math.sqrt(2 * tau_exact(rho) / n)              # sqrt(2 tau_int sigma^2 / N)
    assert abs(mean - mu) < 4 * exact
    # relative scatter of a binned error from n bins is 1/sqrt(2(n-1)) ~ 10%
    assert abs(err / exact - 1) < 4 / math.sqrt(2 * (n_bins - 1))


def test_binned_error_ensemble_unbiased():
    """Mean of err^2 over many series equals its exact expectation (v(B) - v(N))/(n - 1)."""
    rho, n, n_bins, m, mu = 0.8, 2 ** 13, 16, 400, -1.25
    xs = ar1(12, rho, n, m=m, mu=mu)
    res = np.array([binned_error(x, n_bins) for x in xs])
    err2 = res[:, 1] ** 2
    expect = (var_mean_exact(rho, n // n_bins) - var_mean_exact(rho, n)) / (n_bins - 1)
    assert abs(err2.mean() - expect) < 4 * err2.std() / math.sqrt(m)
    # pulls (mean - mu)/err are Student-t distributed with n-1 dof: std sqrt((n-1)/(n-3)) ~ 1.07
    pulls = (res[:, 0] - mu) / res[:, 1]
    assert abs(pulls.mean()) < 4 * 1.07 / math.sqrt(m)
    assert abs(pulls.std() / math.sqrt((n_bins - 1) / (n_bins - 3)) - 1) < 4 / math.sqrt(2 * m)


def test_jackknife_of_identity_is_binned_error():
    x = ar1(13, 0.5, 10007, mu=2.0)
    for n_bins in (10, 20, 33):
        v, e = jackknife([x], lambda a: a, n_bins)
        m, s = binned_error(x, n_bins)
        assert v == pytest.approx(m, rel=1e-14)
        assert e == pytest.approx(s, rel=1e-10)


def test_jackknife_vector_valued():
    x, y = ar1(14, 0.3, 4000, mu=1.0), ar1(15, 0.3, 4000, mu=2.0)
    v, e = jackknife(np.array([x, y]), lambda a, b: np.array([a, b, a + b]), 20)
    assert v.shape == e.shape == (3,)
    assert e[0] == pytest.approx(binned_error(x, 20)[1], rel=1e-10)
    assert e[1] == pytest.approx(binned_error(y, 20)[1], rel=1e-10)
    assert e[2] == pytest.approx(binned_error(x + y, 20)[1], rel=1e-10)


def test_jackknife_ratio_matches_delta_method():
    """f = <A>/<B> for independent AR(1) series: Var f = v_A/muB^2 + muA^2 v_B/muB^4 to O(1/N^2)."""
    rho, n, n_bins, m, mu_a, mu_b = 0.7, 2 ** 13, 20, 400, 2.0, 4.0
    a = ar1(16, rho, n, m=m, mu=mu_a)
    b = ar1(17, rho, n, m=m, mu=mu_b)
    res = np.array([jackknife([a[i], b[i]], lambda p, q: p / q, n_bins) for i in range(m)])
    v = var_mean_exact(rho, n)
    var_f = v / mu_b ** 2 + mu_a ** 2 * v / mu_b ** 4
    err2 = res[:, 1] ** 2
    # (binning with bin length B >> tau underestimates by v(N)-terms; use the exact binned expectation)
    var_binned = var_f * (var_mean_exact(rho, n // n_bins) - v) / (n_bins - 1) / v
    assert abs(err2.mean() - var_binned) < 4 * err2.std() / math.sqrt(m)
    assert abs(res[:, 0].std() / math.sqrt(var_f) - 1) < 4 / math.sqrt(2 * m)
    assert abs(res[:, 0].mean() - mu_a / mu_b) < 4 * math.sqrt(var_f / m)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.8, 0.9])
def test_tau_int_gamma_single_series(rho):
    x = ar1(21, rho, 2 ** 17, mu=5.0)
    tau, d_tau, w = tau_int_gamma(x)
    assert abs(tau - tau_exact(rho)) < 4 * d_tau
    assert 1 <= w < 30 * tau_exact(rho)
    # error of the mean from the Gamma method vs the exact one
    err = math.sqrt(2 * tau * np.var(x) / x.size)
    assert abs(err / math.sqrt(2 * tau_exact(rho) / x.size) - 1) < 0.1


@pytest.mark.parametrize("rho", [0.5, 0.9])
def test_tau_int_gamma_ensemble(rho):
    """Unbiased over an ensemble, and d_tau describes the actual scatter of tau_int."""
    m = 200
    xs = ar1(22, rho, 2 ** 14, m=m)
    res = np.array([tau_int_gamma(x) for x in xs])
    taus, dtaus = res[:, 0], res[:, 1]
    assert abs(taus.mean() - tau_exact(rho)) < 4 * taus.std() / math.sqrt(m)
    # d_tau is Wolff's leading-order estimate: agree with the measured scatter to 30%
    assert 0.7 < dtaus.mean() / taus.std() < 1.3


def test_tau_int_gamma_rejects_constant():
    with pytest.raises(ValueError):
        tau_int_gamma(np.ones(100))
