"""pqml_analysis.multihist (Ferrenberg-Swendsen / MBAR) on independent Gaussian variables.

D variables x_k with p(x) proportional to exp(-beta E), E = sum_k x_k^2: x_k ~ N(0, 1/(2 beta)),
Z(beta) = (pi/beta)^(D/2), so exactly
    <E>_beta = D/(2 beta),  <x_0^2>_beta = 1/(2 beta),  f_i - f_0 = -ln(Z_i/Z_0) = (D/2) ln(beta_i/beta_0).
Ensembles at 4 betas; interpolation to betas in between (and the sampled ones) must agree within 3
jackknife errors, and the jackknife errors are checked against the scatter over 100 independent
repetitions (E drawn directly from its exact distribution Gamma(D/2, 1/beta) there, for speed).
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.multihist import (effective_sample_size, expectation, expectation_jackknife,  # noqa: E402
                                     free_energies_jackknife, free_energy, overlap_matrix, solve_free_energies)
from pqml_analysis.reweighting import reweight  # noqa: E402

D = 100
BETAS = np.array([0.8, 0.9, 1.0, 1.1])
N = 2000
N_BINS = 20


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(2024)
    e_list, o_list = [], []
    for b in BETAS:
        x = rng.normal(0.0, math.sqrt(1 / (2 * b)), (N, D))
        e_list.append(np.sum(x ** 2, axis=1))
        o_list.append(x[:, 0] ** 2)
    return e_list, o_list


def f_exact(betas):
    return 0.5 * D * np.log(np.asarray(betas) / BETAS[0])


def test_free_energies_match_exact_ln_z_ratios(data):
    e_list, _ = data
    f = solve_free_energies(e_list, BETAS, tol=1e-12, max_iter=100)
    f_it = solve_free_energies(e_list, BETAS, tol=1e-12, max_iter=10000, method="iterate")
    assert np.allclose(f, f_it, rtol=0, atol=1e-9)
    assert f[0] == 0.0
    res = free_energies_jackknife(e_list, BETAS, N_BINS)
    fj, df = res
    assert np.allclose(fj, f, atol=1e-9)                         # N is a multiple of N_BINS: same data
    assert df[0] == 0.0 and np.all(df[1:] > 0) and np.all(df[1:] < 0.05)
    exact = f_exact(BETAS)
    assert np.all(np.abs(fj[1:] - exact[1:]) < 3 * df[1:]), (fj - exact) / np.where(df > 0, df, 1)
    # all pairwise differences f_i - f_j (errors of differences not needed: each is within 3 errors of
    # f_i - f_0 and f_j - f_0 separately); the free energy at the sampled betas is self-consistent
    assert np.allclose(free_energy(e_list, BETAS, f, BETAS), f, atol=1e-9)
    assert "jackknife over 20 bins" in res.method


@pytest.mark.parametrize("beta_new", [0.8, 0.85, 0.95, 1.0, 1.05, 1.1])
def test_interpolated_expectations(data, beta_new):
    e_list, o_list = data
    r = expectation_jackknife(e_list, e_list, BETAS, beta_new, N_BINS)
    assert abs(r[0] - D / (2 * beta_new)) < 3 * r[1] and r[1] < 0.005 * D / (2 * beta_new)
    r2 = expectation_jackknife(o_list, e_list, BETAS, beta_new, N_BINS)
    assert abs(r2[0] - 1 / (2 * beta_new)) < 3 * r2[1] and r2[1] < 0.05 / (2 * beta_new)
    assert "ESS" in r.method
    # several observables and betas at once give the same numbers
    f = solve_free_energies(e_list, BETAS)
    both = expectation([np.stack([e, o], axis=1) for e, o in zip(e_list, o_list)], e_list, BETAS, f, [beta_new, 1.0])
    assert both.shape == (2, 2) and both[0] == pytest.approx([r[0], r2[0]], rel=1e-9)


def test_single_ensemble_is_plain_reweighting(data):
    e_list, o_list = data
    e, o = e_list[1], o_list[1]
    f = solve_free_energies([e], [0.9])
    assert np.array_equal(f, [0.0])
    assert expectation([o], [e], [0.9], f, 0.9) == pytest.approx(o.mean(), rel=1e-13)
    rw = reweight((0.95 - 0.9) * e, o)
    assert expectation([o], [e], [0.9], f, 0.95) == pytest.approx(rw.value.real, rel=1e-12)


def test_large_energies_do_not_overflow(data):
    """E -> E + c changes f_i by (beta_i - beta_0) c and <E> by c; c = 1e5 makes exp(-beta E) underflow."""
    e_list, _ = data
    c = 1e5
    f = solve_free_energies(e_list, BETAS)
    shifted = [e + c for e in e_list]
    fs = solve_free_energies(shifted, BETAS)
    assert np.allclose(fs - (BETAS - BETAS[0]) * c, f, rtol=0, atol=1e-6)
    assert expectation(shifted, shifted, BETAS, fs, 0.95) == pytest.approx(
        expectation(e_list, e_list, BETAS, f, 0.95) + c, rel=1e-12)
    # outside the sampled range the overlap collapses, which the effective sample size shows
    assert effective_sample_size(e_list, BETAS, f, 0.95) > 0.5 * 4 * N
    assert effective_sample_size(e_list, BETAS, f, 2.0) < 50


def test_jackknife_errors_match_scatter_over_repetitions():
    """Over M independent repetitions: std of the estimates = mean jackknife error within 4 sigma of
    the comparison (rel. scatter of a sample std from M values 1/sqrt(2(M-1)) = 7 %, of the mean
    jackknife error ~ 16 %/sqrt(M) = 1.6 %), and the pulls have unit width."""
    m, n, bn = 100, 1000, 0.95
    rng = np.random.default_rng(99)
    vals, errs, fvals, ferrs = [], [], [], []
    for _ in range(m):
        e_list = [rng.gamma(D / 2, 1 / b, n) for b in BETAS]
        r = expectation_jackknife(e_list, e_list, BETAS, bn, N_BINS)
        rf = free_energies_jackknife(e_list, BETAS, N_BINS)
        vals.append(r[0]), errs.append(r[1]), fvals.append(rf[0][3]), ferrs.append(rf[1][3])
    tol = 4 * math.sqrt(1 / (2 * (m - 1)) + 0.16 ** 2 / m)        # 0.29
    for v, e, exact in ((vals, errs, D / (2 * bn)), (fvals, ferrs, f_exact(BETAS)[3])):
        v, e = np.array(v), np.array(e)
        assert abs(np.std(v, ddof=1) / np.mean(e) - 1) < tol
        pulls = (v - exact) / e
        assert abs(pulls.mean()) < 4 * 1.1 / math.sqrt(m)
        assert abs(pulls.std() - 1) < tol


def test_overlap_matrix_detects_disconnected_ensembles(data):
    e_list, _ = data
    o = overlap_matrix(e_list, BETAS, solve_free_energies(e_list, BETAS))
    assert np.allclose(o.sum(axis=1), 1.0, atol=1e-9)
    gap = 1 - np.sort(np.linalg.eigvals(o).real)[-2]
    assert gap > 0.1 and np.all(np.diag(o, 1) > 0.1)             # neighbours overlap
    # 0.5, 0.6 | 2.0, 2.1 with D = 400: E ~ 400 vs 100 +- 5-15, no configuration in common
    rng = np.random.default_rng(1)
    far = np.array([0.5, 0.6, 2.0, 2.1])
    e_far = [rng.gamma(200, 1 / b, 1000) for b in far]
    o = overlap_matrix(e_far, far, solve_free_energies(e_far, far))
    assert 1 - np.sort(np.linalg.eigvals(o).real)[-2] < 1e-6
