"""The reference computations of tests/exact.py, checked independently.

Independent route: the V x V matrix M of the quadratic part, S = 1/2 phi^T M phi + sum_x (b phi^4 + r phi),
built here site by site and link by link from the action formula (tests/exact.py docstring), with
every (x, mu) link added separately, so an axis of extent 2 couples its two sites twice. Gaussian
integrals then follow from M^-1 by linear algebra, with no Fourier transform and no quadrature.
"""
import itertools
import math
import os
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import exact  # noqa: E402  (tests/exact.py)

SHAPES = [(2,), (4,), (6,), (3,), (2, 2), (2, 4), (4, 6), (3, 5), (2, 2, 2), (4, 2, 6), (2, 2, 2, 2)]


def matrix_M(shape, a, w, w_nnn=0.0):
    """M with S_quadratic = 1/2 phi^T M phi, one term of the action formula at a time."""
    shape = tuple(shape)
    d, V = len(shape), int(np.prod(shape))
    wv = np.broadcast_to(np.asarray(w, dtype=float), (d,))
    idx = lambda x: np.ravel_multi_index(tuple(c % n for c, n in zip(x, shape)), shape)
    M = np.zeros((V, V))

    def couple(i, j, c):                    # the action term -c phi_i phi_j
        M[i, j] -= c
        M[j, i] -= c

    for x in itertools.product(*[range(n) for n in shape]):
        i = idx(x)
        M[i, i] += 2 * a                    # a phi_x^2
        for mu in range(d):
            e = np.eye(d, dtype=int)[mu]
            couple(i, idx(np.add(x, e)), wv[mu])
            for nu in range(mu + 1, d):
                f = np.eye(d, dtype=int)[nu]
                couple(i, idx(np.add(x, e) + f), w_nnn)
                couple(i, idx(np.add(x, e) - f), w_nnn)
    return M


def neighbour_lists(shape):
    """(x, x+mu) and (x, x+mu+-nu) index pairs, per (x, mu) / (x, mu<nu, sign)."""
    shape = tuple(shape)
    d = len(shape)
    idx = lambda x: np.ravel_multi_index(tuple(c % n for c, n in zip(x, shape)), shape)
    nn, nnn = [], []
    for x in itertools.product(*[range(n) for n in shape]):
        for mu in range(d):
            e = np.eye(d, dtype=int)[mu]
            nn.append((idx(x), idx(np.add(x, e))))
            for nu in range(mu + 1, d):
                f = np.eye(d, dtype=int)[nu]
                nnn += [(idx(x), idx(np.add(x, e) + f)), (idx(x), idx(np.add(x, e) - f))]
    return nn, nnn


def gaussian_moments(shape, a, w, r=0.0, w_nnn=0.0):
    """Per-site expectations for b = 0 from M: mean m = -M^-1 r 1, covariance C = M^-1."""
    M = matrix_M(shape, a, w, w_nnn)
    V = M.shape[0]
    assert np.linalg.eigvalsh(M).min() > 0
    C = np.linalg.inv(M)
    m = -C @ np.full(V, r)
    E2 = C + np.outer(m, m)                 # <phi_x phi_y>
    c = np.diag(C)
    nn, nnn = neighbour_lists(shape)
    out = {"phi1": m.mean(), "phi2": np.diag(E2).mean(),
           "phi4": np.mean(3 * c ** 2 + 6 * c * m ** 2 + m ** 4),
           "nn": sum(E2[i, j] for i, j in nn) / V, "nnn": sum(E2[i, j] for i, j in nnn) / V}
    # <S> = 1/2 tr(M E2) + r sum m
    out["action"] = (0.5 * np.sum(M * E2) + r * m.sum()) / V
    out["sigma_max"] = math.sqrt(c.max())
    out["m_max"] = np.abs(m).max()
    return out


@pytest.mark.parametrize("shape", SHAPES)
def test_free_field_phi2_equals_inverse_matrix(shape):
    a, w = len(shape) + 0.4, 1.0
    M = matrix_M(shape, a, w)
    G = np.linalg.inv(M)
    assert exact.free_field_phi2(shape, a, w) == pytest.approx(np.diag(G).mean(), rel=1e-12)
    # translation invariance: every diagonal entry is the same
    assert np.allclose(np.diag(G), np.diag(G)[0], rtol=1e-12)


@pytest.mark.parametrize("shape", [(2, 2), (2, 4), (4, 6), (3, 5), (2, 2, 2), (4, 2, 6)])
def test_free_field_moments_with_nnn_and_anisotropy(shape):
    d = len(shape)
    w = np.linspace(0.8, 1.1, d)
    w_nnn = 0.15
    a = w.sum() + d * (d - 1) * w_nnn + 0.3
    g = gaussian_moments(shape, a, w, 0.0, w_nnn)
    f = exact.free_field_moments(shape, a, w, w_nnn)
    for key in ("phi2", "phi4", "nn", "nnn", "action"):
        assert f[key] == pytest.approx(g[key], rel=1e-11, abs=1e-13), key
    assert f["action"] == 0.5


def test_free_field_without_mass_gap_is_rejected():
    with pytest.raises(ValueError):
        exact.free_field_phi2((4, 4), 2.0, 1.0)          # k = 0 mode is massless


@pytest.mark.parametrize("shape", [(2,), (4,), (2, 2), (2, 4), (3, 5), (2, 2, 2)])
def test_action_equals_matrix_form(shape):
    rng = np.random.default_rng(3)
    d = len(shape)
    w, a, b, r, w_nnn = np.linspace(0.9, 1.2, d), 0.7, 0.3, -0.4, 0.25
    M = matrix_M(shape, a, w, w_nnn)
    phi = rng.normal(size=(5,) + tuple(shape))
    f = phi.reshape(5, -1)
    ref = 0.5 * np.einsum("bi,ij,bj->b", f, M, f) + (b * f ** 4 + r * f).sum(axis=1)
    assert np.allclose(exact.action(phi, shape, w, a, b, r, w_nnn), ref, rtol=1e-12, atol=1e-12)
    nn, nnn = neighbour_lists(shape)
    obs = exact.observables(phi, shape)
    assert np.allclose(obs["nn"], [sum(g[i] * g[j] for i, j in nn) for g in f], rtol=1e-12)
    assert np.allclose(obs["nnn"], [sum(g[i] * g[j] for i, j in nnn) for g in f], rtol=1e-12, atol=1e-12)


def test_extent_two_double_counts():
    """2x2: nn couples each neighbour pair twice, nnn couples the diagonal pair four times."""
    phi = np.array([[1.0, 2.0], [3.0, 5.0]])           # phi[y, x]
    obs = exact.observables(phi, (2, 2))
    assert obs["nn"] == 2 * (1 * 2 + 3 * 5) + 2 * (1 * 3 + 2 * 5)
    assert obs["nnn"] == 4 * (1 * 5 + 2 * 3)


@pytest.mark.parametrize("shape,w,a,r,w_nnn", [
    ((2, 2), 1.0, 3.0, 0.0, 0.0),
    ((2, 2), 1.0, 3.0, 0.2, 0.3),
    ((2, 2), (0.7, 1.2), 2.5, -0.3, 0.1),
    ((2,), 1.0, 2.5, 0.4, 0.0),
    ((4,), 0.9, 1.5, 0.1, 0.0),
])
def test_quadrature_b0_equals_gaussian(shape, w, a, r, w_nnn):
    g = gaussian_moments(shape, a, w, r, w_nnn)
    cutoff = g["m_max"] + 10.0 * g["sigma_max"]        # each marginal: > 9 sigma inside the box
    q = exact.quadrature_moments(shape, w=w, a=a, b=0.0, r=r, w_nnn=w_nnn, n_points=64, cutoff=cutoff)
    for key in ("phi1", "phi2", "phi4", "nn", "nnn", "action"):
        assert q[key] == pytest.approx(g[key], rel=1e-9, abs=1e-12), key
    if r == 0.0 and w_nnn == 0.0:
        assert q["phi2"] == pytest.approx(exact.free_field_phi2(shape, a, w), rel=1e-9)


PHYSICS_CASES = {          # the 2x2 cases of tests/unit/test_physics_exact.py, with the reference values
    "nn": (dict(w=1.0, a=1.0, b=0.5, r=0.0, w_nnn=0.0),
           dict(phi2=0.701387823518217, phi4=0.895852413433683, action=0.0520737932831559,
                nn=1.0972402369519, m=0.0)),
    "nnn_r": (dict(w=1.0, a=1.0, b=0.5, r=0.2, w_nnn=0.3),
              dict(phi2=1.41963289502875, phi4=2.61747190544044, action=-0.8914115068345,
                   nn=2.66039939805429, nnn=2.64676616100213, m=-0.826755541142722)),
}


@pytest.mark.parametrize("case", sorted(PHYSICS_CASES))
def test_quadrature_converged_and_pinned(case):
    pars, pinned = PHYSICS_CASES[case]
    q = exact.quadrature_moments((2, 2), **pars)                       # default: 64 points
    q48 = exact.quadrature_moments((2, 2), n_points=48, **pars)
    wide = exact.quadrature_moments((2, 2), tail=70.0, **pars)         # larger box
    for key in ("phi1", "phi2", "phi4", "nn", "nnn", "action"):
        assert q48[key] == pytest.approx(q[key], rel=1e-9, abs=1e-12), key
        assert wide[key] == pytest.approx(q[key], rel=1e-11, abs=1e-13), key
    for key, value in pinned.items():
        assert q[key] == pytest.approx(value, rel=1e-11, abs=1e-13), key


@pytest.mark.slow
def test_quadrature_doubling():
    pars, _ = PHYSICS_CASES["nnn_r"]
    q48 = exact.quadrature_moments((2, 2), n_points=48, **pars)
    q96 = exact.quadrature_moments((2, 2), n_points=96, **pars)
    for key in ("phi1", "phi2", "phi4", "nn", "nnn", "action"):
        assert q48[key] == pytest.approx(q96[key], rel=1e-9, abs=1e-12), key


@pytest.mark.parametrize("w,a,r,w_nnn", [(0.5, 4.0, 0.2, 0.3), (-0.4, 3.5, -0.3, 0.35), (1.0, 7.0, 0.5, 0.6)])
def test_cube_b0_equals_gaussian(w, a, r, w_nnn):
    """exact.cube_moments (2x2x2, nn + nnn, reduced by parity and Hubbard-Stratonovich) against the
    site-by-site matrix M at b = 0: an independent route through every piece of the reduction."""
    g = gaussian_moments((2, 2, 2), a, w, r, w_nnn)
    c = exact.cube_moments(w=w, a=a, b=0.0, r=r, w_nnn=w_nnn, cutoff=g["m_max"] + 10.0 * g["sigma_max"])
    for key in ("phi1", "phi2", "phi4", "nn", "nnn", "action"):
        assert c[key] == pytest.approx(g[key], rel=1e-12, abs=1e-13), key


CUBE_CASES = {             # the 2x2x2 cases of tests/unit/test_physics_exact.py, with the reference values
    "ferro_r": (dict(w=0.5, a=2.6, b=0.5, r=0.2, w_nnn=0.3),
                dict(action=0.16954967911776, nn=1.31087295175245, nnn=2.64264920401353, phi2=0.550944459613449,
                     phi4=0.564150641978371, m=-0.483749998930543)),
    "antiferro": (dict(w=-0.4, a=1.5, b=0.5, r=0.0, w_nnn=0.35),
                  dict(action=-1.08241850873799, nn=-4.62537011782767, nnn=9.28056977503981, phi2=1.62234030061269,
                       phi4=3.16483701747597, m=0.0)),
}


@pytest.mark.parametrize("case", sorted(CUBE_CASES))
def test_cube_converged_and_pinned(case):
    pars, pinned = CUBE_CASES[case]
    c = exact.cube_moments(**pars)
    coarse = exact.cube_moments(n_inner=120, n_outer=320, **pars)
    wide = exact.cube_moments(tail=70.0, **pars)                       # larger box
    for key in ("phi1", "phi2", "phi4", "nn", "nnn", "action"):
        assert coarse[key] == pytest.approx(c[key], rel=1e-11, abs=1e-13), key
        assert wide[key] == pytest.approx(c[key], rel=1e-11, abs=1e-13), key
    for key, value in pinned.items():
        assert c[key] == pytest.approx(value, rel=1e-11, abs=1e-13), key
    with pytest.raises(ValueError, match="Hubbard"):
        exact.cube_moments(w=1.0, w_nnn=0.4)                          # 2 w_nnn <= |w|
