"""pqml_analysis.correlation against the free field, where everything is known in closed form.

S = -w sum_{x,mu} phi_x phi_{x+mu} + a sum_x phi_x^2 = 1/2 phi^T M phi on a periodic lattice; M is
diagonal in momentum space with lambda(k) = 2a - 2w sum_mu cos k_mu (docs/conventions.md). Exact
independent configurations: phi = ifft(fft(eta) / sqrt(lambda)), eta white noise, so that
<phi phi^T> = M^-1. Then
    G(x) = (1/V) sum_k e^{ik.x} / lambda(k),   G~(k) = 1/lambda(k),   chi = 1/lambda(0),
    F = 1/lambda(2 pi/L e_mu),   xi_2^2 = (lambda(p_min)/lambda(0) - 1)/(4 sin^2(pi/L)) = w/(2a - 2dw).
The per-configuration estimators are quadratic in a Gaussian field, so their variances are exact too
(Isserlis): Var[(1/V) sum_y phi_y phi_{y+x}] = (2/V^2) sum_k G~(k)^2 cos^2(k.x), Var P(0) = 2 chi^2,
Var P(p_min) = F^2. Checks: |estimate - exact| < 3 measured errors (4 for every point of an array),
and the measured (jackknife)
error equals the exact standard error within 4 times the relative scatter of a jackknife error from
n bins, 1/sqrt(2(n-1)), so the error is neither too small nor too large to be meaningful.
"""
import math
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.correlation import binned_spectra, second_moment, timeslice_correlator, two_point  # noqa: E402

N_BINS = 50
ERR_TOL = 4 / math.sqrt(2 * (N_BINS - 1))            # 0.40


def lam(shape, a, w):
    ks = np.meshgrid(*[2 * np.pi * np.fft.fftfreq(L) for L in shape], indexing="ij")
    return 2 * a - 2 * w * sum(np.cos(k) for k in ks), ks


def free_configs(seed, shape, a, w, n):
    lm, _ = lam(shape, a, w)
    assert lm.min() > 0
    axes = tuple(range(1, len(shape) + 1))
    eta = np.random.default_rng(seed).standard_normal((n,) + tuple(shape))
    return np.fft.ifftn(np.fft.fftn(eta, axes=axes) / np.sqrt(lm), axes=axes).real


def check(est, err, exact, exact_se, tol=ERR_TOL):
    """Scalars within 3 errors; arrays (many correlated points, e.g. 256 for G(x)) every point within 4:
    with 3 a max over the points exceeds it in ~5 % of seeds (measured over 60 seeds)."""
    est, err, exact, exact_se = map(np.asarray, (est, err, exact, exact_se))
    k = 3 if est.ndim == 0 else 4
    assert np.all(np.abs(est - exact) < k * err), np.max(np.abs(est - exact) / err)
    assert np.all(np.abs(err / exact_se - 1) < tol), ((err / exact_se).min(), (err / exact_se).max())


SHAPE2, A2, W2, XI2 = (16, 16), 2.0 + 1.0 / 18.0, 1.0, 3.0   # xi_2 = sqrt(w / (2a - 4w)) = 3
N2 = 4000


@pytest.fixture(scope="module")
def phi2d():
    return free_configs(7, SHAPE2, A2, W2, N2)


def test_free_field_two_point(phi2d):
    lm, ks = lam(SHAPE2, A2, W2)
    vol = lm.size
    g_exact = np.fft.ifftn(1 / lm).real
    res = two_point(phi2d, N_BINS)
    g, dg = res
    assert g.shape == dg.shape == SHAPE2 and "jackknife over 50 bins of 80 configurations" in res.method
    # exact standard error of the mean of (1/V) sum_y phi_y phi_{y+x} over N2 configurations
    se = np.array([[math.sqrt(2 / vol ** 2 * np.sum(np.cos(ks[0] * x0 + ks[1] * x1) ** 2 / lm ** 2) / N2)
                    for x1 in range(SHAPE2[1])] for x0 in range(SHAPE2[0])])
    check(g, dg, g_exact, se)
    # the error is ~ 0.3 % of G(0) everywhere (dominated by the k = 0 mode), 13 % of G(8, 8) = 0.0092
    assert np.all(dg < 0.005 * g_exact[0, 0]) and np.all(dg < 0.2 * g_exact)
    # symmetries of the estimate: G(x) = G(-x) exactly, G(x0, x1) = G(x1, x0) within errors
    assert np.allclose(g, np.roll(g[::-1, ::-1], 1, axis=(0, 1)), rtol=0, atol=1e-12)
    assert np.all(np.abs(g - g.T) < 3 * math.sqrt(2) * dg)


def test_free_field_second_moment(phi2d):
    lm, _ = lam(SHAPE2, A2, W2)
    chi, f = 1 / lm[0, 0], 1 / lm[1, 0]
    r = second_moment(phi2d, N_BINS)
    assert r.L == 16 and r.axes == (0, 1)
    assert math.sqrt(W2 / lm[0, 0]) == pytest.approx(XI2)
    assert math.sqrt(chi / f - 1) / (2 * math.sin(math.pi / 16)) == pytest.approx(XI2)
    check(r.chi, r.chi_err, chi, chi * math.sqrt(2 / N2))
    check(r.F, r.F_err, f, f / math.sqrt(2 * N2))       # two independent directions
    # xi_2 by error propagation: dxi/xi = 1/2 q/(q-1) sqrt(2/N + 1/(2N)), q = chi/F
    q = chi / f
    check(r.xi, r.xi_err, XI2, XI2 * 0.5 * q / (q - 1) * math.sqrt(2 / N2 + 1 / (2 * N2)))
    assert r.xi_err < 0.05 * XI2
    assert "xi_2 = " in r.describe() and "jackknife over 50 bins" in r.describe()
    # one direction only: same chi, F from axis 1
    r1 = second_moment(phi2d, N_BINS, axes=1)
    assert r1.chi == r.chi and abs(r1.F - f) < 3 * r1.F_err
    # chi is the susceptibility V(<m^2> - <m>^2) of the magnetisation
    m = phi2d.mean(axis=(1, 2))
    assert r.chi == pytest.approx(lm.size * (np.mean(m ** 2) - np.mean(m) ** 2), rel=1e-10)


def test_free_field_timeslice_anisotropic():
    shape, a, w, n = (24, 8), 2.0 + 1.0 / 8.0, 1.0, 3000     # xi_2 = sqrt(1 / 0.25) = 2
    phi = free_configs(8, shape, a, w, n)
    lm, _ = lam(shape, a, w)
    lt = lm[:, 0]                                             # k_perp = 0
    kt = 2 * np.pi * np.fft.fftfreq(shape[0])
    t = np.arange(shape[0])
    c_exact = np.array([np.sum(np.cos(kt * s) / lt) / shape[0] for s in t])
    se = np.array([math.sqrt(2 / shape[0] ** 2 * np.sum(np.cos(kt * s) ** 2 / lt ** 2) / n) for s in t])
    c, dc = timeslice_correlator(phi, axis=0, n_bins=N_BINS)
    assert c.shape == (24,)
    check(c, dc, c_exact, se)
    # C(t) is the sum of G(t, x_perp) over x_perp
    g, _ = two_point(phi, N_BINS)
    assert np.allclose(c, g.sum(axis=1), rtol=1e-12, atol=1e-14)
    # along axis 1 (L = 8)
    c1, _ = timeslice_correlator(phi, axis=1, n_bins=N_BINS)
    assert np.allclose(c1, g.sum(axis=0), rtol=1e-12, atol=1e-14)
    # xi_2 along the long axis; extents differ, so the default (all axes) is refused
    r = second_moment(phi, N_BINS, axes=[0])
    q = lm[1, 0] / lm[0, 0]                                   # chi / F, F from one direction only
    check(r.xi, r.xi_err, 2.0, 2.0 * 0.5 * q / (q - 1) * math.sqrt(3 / n))    # ~ 7 %: chi/F - 1 = 0.27
    with pytest.raises(ValueError):
        second_moment(phi, N_BINS)


def test_reads_bins_from_hdf5_and_drops_leading_configs(tmp_path, phi2d):
    h5py = pytest.importorskip("h5py")
    with h5py.File(tmp_path / "c.h5", "w") as fh:
        fh["phi"] = phi2d[:1003]
    with h5py.File(tmp_path / "c.h5", "r") as fh:
        p, m, n = binned_spectra(fh["phi"], 10)
    p_ref, m_ref, _ = binned_spectra(phi2d[3:1003], 10)      # the 3 oldest are dropped
    assert n == 1003 and np.allclose(p, p_ref, rtol=1e-13) and np.allclose(m, m_ref, rtol=1e-13)
    with pytest.raises(ValueError):
        binned_spectra(phi2d[:5], 10)
