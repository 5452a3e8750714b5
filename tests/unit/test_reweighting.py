"""Reweighting against closed-form Gaussian integrals, real and with an imaginary linear term."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.reweighting import reweight, weights  # noqa: E402

N = 40000
A = 1.0      # sampled action S = a x^2 / 2 (x ~ N(0, 1/a)), independent samples


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(2026).normal(0.0, 1.0 / np.sqrt(A), N)


def check(r, exact):
    assert r.err_re > 0 and r.err_re < 0.05 * max(abs(exact.real), 0.1)
    assert abs(r.value.real - exact.real) < 3 * r.err_re
    assert abs(r.value.imag - exact.imag) < 3 * max(r.err_im, 1e-300)


def test_real_target(x):
    """A' = a' x^2 / 2: <x^2> = 1/a'."""
    a2 = 1.2
    r = reweight(0.5 * (a2 - A) * x ** 2, x ** 2)
    check(r, complex(1 / a2, 0))
    assert r.value.imag == 0 and r.reliable and r.phase == pytest.approx(1.0)


def test_complex_linear_term(x):
    """A' = a x^2 / 2 + i h x: x is 'Gaussian' around -ih/a, so <x> = -ih/a, <x^2> = 1/a - h^2/a^2."""
    h = 0.4
    d = 1j * h * x
    r1 = reweight(d, x)
    assert abs(r1.value.real) < 3 * r1.err_re and abs(r1.value.imag + h / A) < 3 * r1.err_im
    assert r1.err_im < 0.05 * h / A
    r2 = reweight(d, x ** 2)
    check(r2, complex(1 / A - h ** 2 / A ** 2, 0))
    assert r2.reliable and r2.phase == pytest.approx(np.exp(-h ** 2 / (2 * A)), abs=5 * r2.phase_err)


def test_far_targets_are_marked_unreliable(x):
    broad = reweight(0.5 * (0.01 - A) * x ** 2, x ** 2)      # target 10x broader than the samples
    assert not broad.reliable and "ESS" in broad.reason
    sign = reweight(1j * 4.0 * x, x ** 2)                    # average phase e^{-8}: lost in the noise
    assert not sign.reliable and "phase" in sign.reason


def test_weights_do_not_overflow():
    w = weights(np.array([-2000.0, -1999.0, 5.0]))
    assert np.all(np.isfinite(w)) and w[0] == 1.0 and w[2] == 0.0


def _chain(g4, n_meas, seed):
    """<phi2>/V and the nnn piece per sweep from the core, sampling A = -nn + 1.52425 phi2 + 0.175 phi4
    + g4 nnn (the paper's A{4} at g4 = -1) on a 4x4 lattice."""
    from mpi4py import MPI
    from parallel_qftml.models.action import PhiFourAction
    from parallel_qftml.parallel.topology import Topology
    from parallel_qftml.sampler import Sampler
    act = PhiFourAction.from_target(2, {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175, "nnn": g4})
    s = Sampler(Topology(MPI.COMM_SELF, (4, 4)), act, seed=seed, n_hits=2)
    s.tune(500, 0.5)
    out = np.empty((n_meas, 2))
    for k in range(n_meas):
        s.sweep(1)
        m = s.measure()
        out[k] = m["phi2"] / 16, m["nnn"]
    return out


def test_reweighting_in_g4_agrees_with_direct_simulation():
    """Samples at g4 = -1 reweighted to g4' = -1.05 (dA = (g4' - g4) * nnn) agree with a direct
    simulation at -1.05 within the combined errors (binned jackknife, bins >> tau_int)."""
    from pqml_analysis.errors import binned_error, tau_int_gamma
    base = _chain(-1.0, 20000, 11)
    direct = _chain(-1.05, 20000, 12)
    r = reweight(-0.05 * base[:, 1], base[:, 0], n_bins=20)
    mean, err = binned_error(direct[:, 0], 20)
    assert r.reliable, r.describe()
    assert 20000 / 20 > 20 * max(tau_int_gamma(base[:, 0])[0], tau_int_gamma(direct[:, 0])[0])
    assert abs(r.value.real - mean) < 3 * np.hypot(r.err_re, err), (r.describe(), mean, err)
    # the reweighting moved the value by many errors: the test can tell the two couplings apart
    plain, plain_err = binned_error(base[:, 0], 20)
    assert abs(plain - mean) > 5 * np.hypot(plain_err, err)


@pytest.mark.parametrize("where", ["action", "observable"])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_never_reliable(x, where, bad):
    """A NaN or inf in dA or O (a damaged file) gives the verdict unreliable, naming the cause
    (before: NaN compares False with every threshold, so the verdict was 'reliable')."""
    d, o = 0.1 * x ** 2, x ** 2
    (d if where == "action" else o)[123] = bad
    for dd in (d, d + 0.2j * x):                                   # real and complex targets
        r = reweight(dd, o)
        assert not r.reliable and "non-finite" in r.reason, r
