"""pqml_analysis.errors.bootstrap: reproducible with its seed, and consistent with the jackknife.

For the mean (func = identity) the plain bootstrap of n bin averages has the expected variance
(n-1)/n times the binned one (it divides by n, not n-1), so err_boot/err_bin = sqrt((n-1)/n) up to the
bootstrap's own Monte Carlo noise, relative 1/sqrt(2 n_boot) (2.2 % for n_boot = 1000; tolerance 4x).
For smooth derived functions jackknife and bootstrap agree to first order; the brief's tolerance 20 %.
"""
import math
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import lfilter

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.errors import Estimate, binned_error, bootstrap, jackknife, tau_int_gamma  # noqa: E402


def ar1(seed, rho, n, mu=0.0):
    rng = np.random.default_rng(seed)
    e = rng.standard_normal(n) * math.sqrt(1.0 - rho ** 2)
    e[0] = rng.standard_normal()
    return mu + lfilter([1.0], [1.0, -rho], e)


@pytest.fixture(scope="module")
def xy():
    return ar1(1, 0.7, 40000, mu=2.0), ar1(2, 0.7, 40000, mu=5.0)


def test_deterministic_with_seed(xy):
    x, y = xy
    f = lambda a, b: a / b                                          # noqa: E731
    r1, r2 = bootstrap([x, y], f, seed=3), bootstrap([x, y], f, seed=3)
    assert tuple(r1) == tuple(r2)
    r3 = bootstrap([x, y], f, seed=4)
    assert r3[0] == r1[0] and r3[1] != r1[1]                         # value does not depend on the seed
    assert abs(r3[1] / r1[1] - 1) < 4 * math.sqrt(2 / 1000)          # different resamples, same error
    assert "seed 3" in r1.method and "1000 resamples of 20 bins" in r1.method


@pytest.mark.parametrize("n_bins", [10, 20, 50])
def test_mean_matches_binned_error(xy, n_bins):
    x, _ = xy
    (v, e), (m, s) = bootstrap([x], lambda a: a, n_bins, n_boot=1000, seed=0), binned_error(x, n_bins)
    assert v == pytest.approx(m, rel=1e-14)
    assert abs(e / (s * math.sqrt((n_bins - 1) / n_bins)) - 1) < 4 / math.sqrt(2 * 1000)


def test_smooth_functions_agree_with_jackknife(xy):
    x, y = xy
    cases = [(lambda a, b: a / b, [x, y]),
             (lambda a, b: 64 * (b - a ** 2), [x, x ** 2]),                   # a susceptibility
             (lambda a, b: 1 - b / (3 * a ** 2), [x ** 2, x ** 4])]           # a Binder cumulant
    for f, series in cases:
        vb, eb = bootstrap(series, f)
        vj, ej = jackknife(series, f)
        assert vb == pytest.approx(vj, rel=1e-12)
        assert abs(eb / ej - 1) < 0.2


def test_vector_valued_and_leading_entries_dropped(xy):
    x, y = xy
    x = x[:10007]
    y = y[:10007]
    v, e = bootstrap(np.array([x, y]), lambda a, b: np.array([a, b, a - b]), 20)
    assert v.shape == e.shape == (3,)
    assert v[0] == pytest.approx(x[7:].mean(), rel=1e-13)          # first 10007 mod 20 = 7 dropped
    _, e_ref = bootstrap([x - y], lambda d: d, 20)
    assert e[2] == pytest.approx(e_ref, rel=1e-12)                   # same resampled bins for every series
    with pytest.raises(ValueError):
        bootstrap([x], lambda a: a, n_boot=1)


def test_results_say_how_they_were_obtained(xy):
    x, y = xy
    for r in (binned_error(x), jackknife([x, y], lambda a, b: a * b), bootstrap([x], lambda a: a),
              tau_int_gamma(x)):
        assert isinstance(r, Estimate) and isinstance(r, tuple) and r.method
        assert r.method in r.describe()
        assert pickle.loads(pickle.dumps(r)) == r and pickle.loads(pickle.dumps(r)).method == r.method
    assert binned_error(x, 20).method.startswith("binning: 20 bins of 2000 measurements")
    assert "W = " in tau_int_gamma(x).method
