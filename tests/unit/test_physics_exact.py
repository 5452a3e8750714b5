"""The sampler against exact results (serial: one rank, Topology(MPI.COMM_SELF, shape)).

Action and observables as in tests/exact.py (the literal formula; on an axis of extent 2 both links
(x, mu) and (x - mu, mu) couple the same pair of sites). Probability ~ exp(-S).

* Free field (b = r = w_nnn = 0, homogeneous, a mass gap m^2 = 2a - 2 d w > 0):
  <phi_x^2> = (1/V) sum_k 1 / (2a - 2 w sum_mu cos k_mu), <S>/V = 1/2 (equipartition),
  <sum_mu phi_x phi_{x+mu}> = (1/V) sum_k sum_mu cos k_mu / lambda(k).
* Interacting phi^4 on 2x2: <phi^2>, <phi^4>, <S>/V, <m> from a 4-dimensional quadrature
  (tests/exact.py, accurate to ~1e-12; values pinned in test_exact_reference.py).

Each check: mean of the per-sweep measurement (global sum / V) with its binned error sigma
(pqml_analysis.errors.binned_error, N_BINS bins); |mean - exact| < 3 sigma; sigma is small enough
that the check means something; the bin length is >= 10 tau_int (Gamma method), so sigma is
trustworthy. Seeds are fixed, so the outcome is deterministic. A failure is a bug report: never
widen a tolerance to make it pass.
"""
import os
import sys

import numpy as np
import pytest

from mpi4py import MPI

from parallel_qftml.models.action import PhiFourAction
from parallel_qftml.parallel.topology import Topology
from parallel_qftml.sampler import Sampler

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import exact  # noqa: E402  (tests/exact.py)

try:
    from pqml_analysis.errors import binned_error, tau_int_gamma
except ImportError:  # run without PYTHONPATH=analysis
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "analysis"))
    from pqml_analysis.errors import binned_error, tau_int_gamma

N_BINS = 50
N_TUNE = 500
TARGET_ACCEPTANCE = 0.5
KEYS = ("action", "nn", "nnn", "phi1", "phi2", "phi4", "m", "abs_m", "acceptance")


def run_chain(comm, shape, action, seed, n_meas, n_hits):
    """Tune N_TUNE sweeps, then n_meas x (sweep(1), measure()); per-site series (global sum / V)."""
    topo = Topology(comm, shape)
    sampler = Sampler(topo, action, seed=seed, delta=1.0, n_hits=n_hits, init="random")
    sampler.tune(N_TUNE, TARGET_ACCEPTANCE)
    V = int(np.prod(shape))
    out = {k: np.empty(n_meas) for k in KEYS}
    for i in range(n_meas):
        sampler.sweep(1)
        m = sampler.measure()
        for k in KEYS:
            out[k][i] = m[k]
    for k in ("action", "nn", "nnn", "phi1", "phi2", "phi4"):
        out[k] /= V
    return sampler, out


def check(series, key, exact_value, max_sigma, label):
    """|mean - exact| < 3 sigma, sigma < max_sigma, bin length >= 10 tau_int. Returns a report line."""
    x = series[key]
    mean, sigma = binned_error(x, N_BINS)
    tau, d_tau, _ = tau_int_gamma(x)
    line = (f"{label} {key}: {mean:.6f} +- {sigma:.6f} (exact {exact_value:.6f}, "
            f"pull {(mean - exact_value) / sigma:+.2f}, tau_int {tau:.2f} +- {d_tau:.2f}, N {x.size})")
    print(line)
    assert x.size // N_BINS >= 10 * tau, f"bins too short for the autocorrelation: {line}"
    assert sigma < max_sigma, f"statistical error too large for a meaningful check: {line}"
    assert abs(mean - exact_value) < 3 * sigma, f"disagrees with the exact value: {line}"
    return line


def check_acceptance(series, label):
    acc = series["acceptance"].mean()
    assert abs(acc - TARGET_ACCEPTANCE) < 0.1, f"{label}: tuned acceptance {acc:.3f}, target {TARGET_ACCEPTANCE}"


# ---------------------------------------------------------------------------------------------
# free field: shape, a (w = 1, mass^2 = 2a - 2d), seed, measurements, hits

FREE = {
    "1d-L32": ((32,), 1.25, 101, 50_000, 2),      # m^2 = 0.5: <phi^2> = 0.66666666698
    "2d-8x8": ((8, 8), 2.4, 202, 50_000, 2),      # m^2 = 0.8: <phi^2> = 0.27446506585
    "3d-4x4x4": ((4, 4, 4), 3.5, 303, 50_000, 2),  # m^2 = 1.0: <phi^2> = 0.17415917416
}


@pytest.mark.parametrize("case", list(FREE))
def test_free_field(case):
    shape, a, seed, n_meas, n_hits = FREE[case]
    w = 1.0
    ref = exact.free_field_moments(shape, a, w)
    act = PhiFourAction.homogeneous(len(shape), w=w, a=a, b=0.0, r=0.0, w_nnn=0.0)
    _, s = run_chain(MPI.COMM_SELF, shape, act, seed, n_meas, n_hits)
    check_acceptance(s, case)
    check(s, "phi2", ref["phi2"], 0.02 * ref["phi2"], case)
    check(s, "action", ref["action"], 0.02 * ref["action"], case)
    check(s, "nn", ref["nn"], 0.05 * ref["nn"], case)


# ---------------------------------------------------------------------------------------------
# interacting phi^4 on 2x2 against quadrature

INTERACTING = {
    "nn": (dict(w=1.0, a=1.0, b=0.5, r=0.0, w_nnn=0.0), 404, 200_000, 4),        # <phi^2> = 0.70138782352
    "nnn_r": (dict(w=1.0, a=1.0, b=0.5, r=0.2, w_nnn=0.3), 505, 200_000, 4),     # <phi^2> = 1.41963289503
}


@pytest.mark.parametrize("case", list(INTERACTING))
def test_phi4_2x2_quadrature(case):
    pars, seed, n_meas, n_hits = INTERACTING[case]
    ref = exact.quadrature_moments((2, 2), **pars)
    act = PhiFourAction.homogeneous(2, **pars)
    _, s = run_chain(MPI.COMM_SELF, (2, 2), act, seed, n_meas, n_hits)
    check_acceptance(s, case)
    check(s, "phi2", ref["phi2"], 0.02 * ref["phi2"], case)
    check(s, "phi4", ref["phi4"], 0.02 * ref["phi4"], case)
    check(s, "action", ref["action"], 0.05, case)
    # <m>: 0 by symmetry for r = 0; for r > 0 negative (S contains + r phi): tests the sign of r
    check(s, "m", ref["m"], 0.05, case)


def test_measure_is_consistent():
    """The pieces of one measurement fit together: S from nn, nnn, phi2, phi4, phi1; m, abs_m."""
    pars = INTERACTING["nnn_r"][0]
    topo = Topology(MPI.COMM_SELF, (2, 4))
    sampler = Sampler(topo, PhiFourAction.homogeneous(2, **pars), seed=7, n_hits=1)
    sampler.sweep(3)
    m = sampler.measure()
    s = (-pars["w"] * m["nn"] - pars["w_nnn"] * m["nnn"] + pars["a"] * m["phi2"] + pars["b"] * m["phi4"]
         + pars["r"] * m["phi1"])
    assert m["action"] == pytest.approx(s, rel=1e-12, abs=1e-12)
    assert m["m"] == pytest.approx(m["phi1"] / 8, rel=1e-15)
    assert m["abs_m"] == pytest.approx(abs(m["phi1"]) / 8, rel=1e-15)
    # and the same numbers from the gathered field with the reference formulas
    phi = sampler.gather()
    obs = exact.observables(phi, (2, 4))
    for key in ("nn", "nnn", "phi1", "phi2", "phi4"):
        assert m[key] == pytest.approx(float(obs[key]), rel=1e-12, abs=1e-12), key
    assert m["action"] == pytest.approx(float(exact.action(phi, (2, 4), **pars)), rel=1e-12, abs=1e-12)
