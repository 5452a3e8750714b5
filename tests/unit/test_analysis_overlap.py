"""Weight functions W(S) of eq. 22 (analysis/pqml_analysis/overlap.py) on Gaussian ensembles with
closed-form reweighted means: if S ~ N(mu, s^2) and A' = S - (h - i k) S, the weights e^{(h - i k) S}
turn the distribution of S into N(mu + (h - i k) s^2, s^2) (a complex shift), so <S>_{A'} = mu + (h - ik) s^2."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "analysis"))
from pqml_analysis.overlap import (EDGE_MAX, check_mean, parse_couplings, parse_scan,  # noqa: E402
                                   target_action, weight_function)
from pqml_analysis.reweighting import reweight  # noqa: E402

N, MU, SIG = 40000, 10.0, 2.0


@pytest.fixture(scope="module")
def s():
    return np.random.default_rng(7).normal(MU, SIG, N)


@pytest.mark.parametrize("h, k", [(0.0, 0.0), (0.3, 0.0), (0.3, 0.2), (-0.2, 0.35)])
def test_sum_s_w_is_the_reweighted_mean(s, h, k):
    target = s - (h - 1j * k) * s
    wf = weight_function(s, target)
    assert wf.W.sum() == pytest.approx(1.0, abs=1e-12) and wf.W0.sum() == pytest.approx(1.0, abs=1e-12)
    from_w, direct, tol, ok = check_mean(wf)
    assert ok, (from_w, direct, tol)
    r = reweight(target - s, s)
    assert direct == r.value                                       # the check compares with reweight itself
    # binning changes the result by far less than its statistical error
    assert abs(from_w - direct) < 0.1 * max(r.err_re, r.err_im)
    exact = MU + (h - 1j * k) * SIG ** 2
    assert abs(from_w.real - exact.real) < 4 * r.err_re and abs(from_w.imag - exact.imag) < 4 * max(r.err_im, 1e-9)
    assert wf.reliable and wf.edge_fraction < 0.1
    if k == 0:
        assert np.all(wf.W.imag == 0)                              # a real target: one Im A' bin, no phase


def test_w0_is_the_normalised_histogram(s):
    wf = weight_function(s, s - 0.2 * s + 0.1j * s)
    counts, _ = np.histogram(s, bins=wf.edges)
    np.testing.assert_allclose(wf.W0, counts / N, atol=1e-15)
    assert wf.edges[0] <= s.min() and wf.edges[-1] > s.max()
    np.testing.assert_allclose(np.diff(wf.edges), 0.05)           # the default width DELTA
    same = weight_function(s, s)                                   # A' = S: every weight is 1, W = W0
    np.testing.assert_allclose(same.W, same.W0, atol=1e-15)
    coarse = wf.rebin(7)                                           # W is additive over S bins
    assert coarse.W.sum() == pytest.approx(1.0) and coarse.W0.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(coarse.W[:3], [wf.W[7 * j:7 * j + 7].sum() for j in range(3)])


def test_far_target_piles_up_at_the_edge_and_is_unreliable(s):
    h = 5.0 / SIG                                                  # target mean 5 sigma above the sample's
    wf = weight_function(s, s - h * s)
    assert not wf.verdict.reliable and "ESS" in wf.verdict.reason
    assert wf.edge_fraction > 0.5 and wf.edge_fraction > EDGE_MAX and not wf.reliable
    assert "edge" in wf.reason
    peak = wf.centres[np.argmax(np.abs(wf.W))]
    assert peak >= np.quantile(s, 0.99)                            # the mass sits at the top of the sampled range
    ok = check_mean(wf)[3]                                         # the identity holds even there
    assert ok


def test_large_exponents_do_not_overflow():
    rng = np.random.default_rng(3)
    s = 1e5 + rng.normal(0.0, 1.0, 2000)                           # e^{S} alone would overflow
    wf = weight_function(s, np.zeros_like(s) + 0.5j * s)
    assert np.all(np.isfinite(wf.W)) and wf.W.sum() == pytest.approx(1.0)
    assert check_mean(wf)[3]


def test_widths_and_errors():
    s = np.linspace(0.0, 1.0, 101)
    wf = weight_function(s, 2.0 * s, width=(0.25, 0.5, 1.0))
    assert wf.widths[:2] == (0.25, 0.5) and wf.W.size == 5
    with pytest.raises(ValueError):
        weight_function(s, s[:-1])
    with pytest.raises(ValueError):
        weight_function(s, s, width=0.0)


def test_target_parsing():
    g = parse_couplings("nn=-1,phi2=1.52425,phi4=0.175,nnn=-1,i_phi2=0.15")
    assert g == {"nn": -1.0, "phi2": 1.52425, "phi4": 0.175, "nnn": -1.0, "i_phi2": 0.15}
    term, grid = parse_scan("nnn=-1.05:-0.8:6")
    assert term == "nnn" and grid.tolist() == pytest.approx([-1.05, -1.0, -0.95, -0.9, -0.85, -0.8])
    # every piece different, so a coefficient on the wrong piece shows
    obs = {k: np.array([1.0, 2.0]) * (j + 1) + 0.1 * j ** 2
           for j, k in enumerate(("nn", "phi2", "phi4", "nnn", "phi1"))}
    a = target_action({**g, "phi": 0.3}, obs)
    np.testing.assert_allclose(a, -obs["nn"] + 1.52425 * obs["phi2"] + 0.175 * obs["phi4"] - obs["nnn"]
                               + 0.3 * obs["phi1"] + 0.15j * obs["phi2"], rtol=1e-15)
    for bad in ("xx=1", "nn", "nn=abc", ""):
        with pytest.raises(ValueError):
            parse_couplings(bad)
    for bad in ("i_phi2=0:1:3", "nnn=0:1", "foo=0:1:3"):
        with pytest.raises(ValueError):
            parse_scan(bad)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("complex_target", [False, True])
def test_target_action_equals_the_package(seed, complex_target):
    """analysis/ keeps its own A' (it may not import parallel_qftml); it must equal
    parallel_qftml.models.action.TargetAction.evaluate term by term: random coefficients for every term,
    every piece a different random series (equal pieces would let swapped coefficients pass)."""
    from parallel_qftml.models.action import TargetAction
    rng = np.random.default_rng(seed)
    g = {k: float(rng.uniform(-2, 2)) for k in ("nn", "phi2", "phi4", "nnn", "phi")}
    if complex_target:
        g["i_phi2"] = float(rng.uniform(0.05, 1))
    obs = {k: rng.normal(10 * j, 1 + j, 50) for j, k in enumerate(("nn", "phi2", "phi4", "nnn", "phi1"))}
    got = target_action(g, obs)
    ref = np.array([TargetAction(g).evaluate({k: float(v[i]) for k, v in obs.items()}) for i in range(50)])
    assert np.iscomplexobj(ref) == complex_target
    np.testing.assert_allclose(got, ref, rtol=1e-13, atol=1e-13)
    for drop in g:                                                 # and every term matters
        assert not np.allclose(target_action({**g, drop: 0.0}, obs), ref)
