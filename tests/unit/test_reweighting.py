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
