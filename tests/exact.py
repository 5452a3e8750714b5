"""Exact reference values for the physics tests, computed independently of parallel_qftml.

Action on a d-dimensional periodic lattice of shape (L_0, ..., L_{d-1}), sites x, unit vectors e_mu:

    S = - sum_x sum_mu w_mu phi_x phi_{x+mu}
        - w_nnn sum_x sum_{mu<nu} [phi_x phi_{x+mu+nu} + phi_x phi_{x+mu-nu}]
        + sum_x (a phi_x^2 + b phi_x^4 + r phi_x),            probability ~ exp(-S).

Every term is counted per (x, mu) (per (x, mu, nu, sign) for nnn), literally: on an axis of extent 2,
phi_{x+mu} = phi_{x-mu} and both links (x, mu) and (x-mu, mu) appear, so that pair of sites is coupled
twice (likewise the diagonal neighbours on a 2x2 plane: all four nnn terms of a site hit the same
site). This is what the sampler does. Observables, as the sampler's measure() returns them (global
sums): action = S, nn = sum_x sum_mu phi_x phi_{x+mu}, nnn = sum_x sum_{mu<nu} [phi_x phi_{x+mu+nu}
+ phi_x phi_{x+mu-nu}], phi1, phi2, phi4 = sum_x phi_x^{1,2,4}, m = phi1 / V, abs_m = |m|.
The references below are per site: <global sum> / V (m and abs_m as they are).

Free field (b = 0, r = 0, homogeneous): S = 1/2 phi^T M phi with M diagonal in momentum space,
    lambda(k) = 2a - 2 sum_mu w_mu cos k_mu - 2 w_nnn sum_{mu<nu} [cos(k_mu + k_nu) + cos(k_mu - k_nu)],
    k_mu = 2 pi n_mu / L_mu, n_mu = 0..L_mu-1 (the double counting at L_mu = 2 is included:
    cos k_mu = +-1 there), and <phi_x phi_y> = (1/V) sum_k exp(ik(x-y)) / lambda(k). Needs all
    lambda(k) > 0 (a mass gap).

Interacting theory on tiny lattices (2 <= V <= 4 sites): tensor Gauss-Legendre quadrature of the
V-dimensional integral over the box [-Phi, Phi]^V, with S evaluated by the literal formula above
(action()) at every quadrature point. Phi is where the single-site lower bound u (S >= sum_x u(phi_x))
has risen `tail` (default 45) above its minimum, so the weight outside the box is < e^-45 relative.
"""
from functools import lru_cache
import math

import numpy as np

__all__ = ["action", "observables", "free_field_spectrum", "free_field_phi2", "free_field_moments",
           "quadrature_moments"]


def _per_axis(w, d):
    w = np.broadcast_to(np.asarray(w, dtype=np.float64), (d,))
    return [float(v) for v in w]


@lru_cache(maxsize=None)
def _neighbours(shape):
    """Flat site indices, literally from the formula: nn[mu][x] = x + e_mu, and nnn = list of
    (x + e_mu + e_nu, x + e_mu - e_nu) index arrays for mu < nu (x runs over all sites, row-major)."""
    coords = np.indices(shape).reshape(len(shape), -1)
    flat = lambda c: np.ravel_multi_index(tuple(c % np.array(shape)[:, None]), shape)
    unit = np.eye(len(shape), dtype=np.int64)[:, :, None]
    nn = [flat(coords + unit[mu]) for mu in range(len(shape))]
    nnn = [(flat(coords + unit[mu] + unit[nu]), flat(coords + unit[mu] - unit[nu]))
           for mu in range(len(shape)) for nu in range(mu + 1, len(shape))]
    return nn, nnn


def observables(phi, shape):
    """Global sums of a batch of fields phi[..., *shape] (literal formulas of the module docstring).

    Returns a dict of arrays over the batch axes: nn_axes (list: sum_x phi_x phi_{x+mu} per mu), nn,
    nnn, phi1, phi2, phi4.
    """
    shape = tuple(int(n) for n in shape)
    V = int(np.prod(shape))
    phi = np.asarray(phi, dtype=np.float64)
    batch = phi.shape[:phi.ndim - len(shape)]
    f = phi.reshape(-1, V)
    nn_idx, nnn_idx = _neighbours(shape)
    nn_axes = [np.einsum("ij,ij->i", f, f[:, j]).reshape(batch) for j in nn_idx]
    nnn = np.zeros(f.shape[0])
    for plus, minus in nnn_idx:
        nnn += np.einsum("ij,ij->i", f, f[:, plus] + f[:, minus])
    p2 = f * f
    return {"nn_axes": nn_axes, "nn": sum(nn_axes), "nnn": nnn.reshape(batch),
            "phi1": f.sum(axis=1).reshape(batch), "phi2": p2.sum(axis=1).reshape(batch),
            "phi4": np.einsum("ij,ij->i", p2, p2).reshape(batch)}


def action(phi, shape, w, a, b, r=0.0, w_nnn=0.0, obs=None):
    """S of a batch of fields phi[..., *shape]; homogeneous a, b, r, w_nnn; w scalar or one per axis.

    obs: observables(phi, shape) if already computed (phi is then not used).
    """
    shape = tuple(int(n) for n in shape)
    wv = _per_axis(w, len(shape))
    o = observables(phi, shape) if obs is None else obs
    s = -sum(wv[mu] * o["nn_axes"][mu] for mu in range(len(shape)))
    return s - w_nnn * o["nnn"] + a * o["phi2"] + b * o["phi4"] + r * o["phi1"]


# ---------------------------------------------------------------------------------------------
# free field

def free_field_spectrum(shape, a, w, w_nnn=0.0):
    """lambda(k) on the momentum grid, shape `shape`; raises ValueError without a mass gap."""
    shape = tuple(shape)
    d = len(shape)
    wv = _per_axis(w, d)
    k = np.meshgrid(*[2 * np.pi * np.arange(n) / n for n in shape], indexing="ij")
    lam = 2.0 * a - 2.0 * sum(wv[mu] * np.cos(k[mu]) for mu in range(d))
    for mu in range(d):
        for nu in range(mu + 1, d):
            lam = lam - 2.0 * w_nnn * (np.cos(k[mu] + k[nu]) + np.cos(k[mu] - k[nu]))
    if not np.all(lam > 0):
        raise ValueError(f"no mass gap: min lambda(k) = {lam.min()} (a={a}, w={w}, w_nnn={w_nnn})")
    return lam


def free_field_phi2(shape, a, w, w_nnn=0.0):
    """<phi_x^2> = (1/V) sum_k 1 / (2a - 2 sum_mu w cos k_mu - ...) of the free field."""
    return float(np.mean(1.0 / free_field_spectrum(shape, a, w, w_nnn)))


def free_field_moments(shape, a, w, w_nnn=0.0):
    """Free-field (b = r = 0) per-site expectations: phi2, phi4 = 3 phi2^2, nn, nnn, action = 1/2, m = 0.

    nn per site = sum_mu <phi_x phi_{x+mu}> = sum_mu (1/V) sum_k cos k_mu / lambda(k), similarly nnn;
    action per site = 1/2 (equipartition: <phi^T M phi / 2> = V/2).
    """
    shape = tuple(shape)
    d = len(shape)
    lam = free_field_spectrum(shape, a, w, w_nnn)
    k = np.meshgrid(*[2 * np.pi * np.arange(n) / n for n in shape], indexing="ij")
    g0 = float(np.mean(1.0 / lam))
    nn = float(sum(np.mean(np.cos(k[mu]) / lam) for mu in range(d)))
    nnn = float(sum(np.mean((np.cos(k[mu] + k[nu]) + np.cos(k[mu] - k[nu])) / lam)
                    for mu in range(d) for nu in range(mu + 1, d)))
    return {"phi2": g0, "phi4": 3.0 * g0 * g0, "nn": nn, "nnn": nnn, "action": 0.5, "m": 0.0,
            "phi1": 0.0}


# ---------------------------------------------------------------------------------------------
# quadrature on tiny lattices

def _cutoff(shape, w, a, b, r, w_nnn, tail):
    """Smallest Phi beyond which u(phi) - min u >= tail, for the single-site bound S >= sum_x u(phi_x),
    u(phi) = (a - c) phi^2 + b phi^4 - |r| |phi|, from |w phi_x phi_y| <= |w| (phi_x^2 + phi_y^2) / 2:
    c = sum_mu |w_mu| + d (d-1) |w_nnn| (each site is in 2 links per axis, 4 diagonal terms per plane)."""
    d = len(shape)
    c = sum(abs(v) for v in _per_axis(w, d)) + d * (d - 1) * abs(w_nnn)
    if b <= 0.0 and a <= c:
        raise ValueError(f"cannot bound the integrand (b = 0 and a <= {c}); pass cutoff")
    grid = np.linspace(0.0, 1e3, 2_000_001)
    vals = (a - c) * grid ** 2 + b * grid ** 4 - abs(r) * grid
    umin = vals.min()
    beyond = np.nonzero((vals - umin >= tail) & (grid > grid[np.argmin(vals)]))[0]
    return float(grid[beyond[0]])


@lru_cache(maxsize=None)
def _quadrature(shape, w, a, b, r, w_nnn, n_points, cutoff):
    shape = tuple(shape)
    V = int(np.prod(shape))
    x, wt = np.polynomial.legendre.leggauss(n_points)
    x, wt = x * cutoff, wt * cutoff
    keys = ("action", "nn", "nnn", "phi1", "phi2", "phi4")
    rest = np.stack(np.meshgrid(*([x] * (V - 1)), indexing="ij"), axis=-1).reshape(-1, V - 1)
    wrest = np.prod(np.stack(np.meshgrid(*([wt] * (V - 1)), indexing="ij"), axis=-1).reshape(-1, V - 1),
                    axis=1)
    phi = np.empty((rest.shape[0], V))
    phi[:, 1:] = rest
    shift, z, acc = None, 0.0, np.zeros(len(keys))
    for i in range(n_points):                       # one chunk per value of the first site's field
        phi[:, 0] = x[i]
        obs = observables(phi.reshape((-1,) + shape), shape)
        obs["action"] = action(None, shape, w, a, b, r, w_nnn, obs=obs)
        s_lo = float(obs["action"].min())
        if shift is None or s_lo < shift:           # keep exp(-(S - shift)) <= 1: rescale the sums
            if shift is not None:
                z, acc = z * math.exp(s_lo - shift), acc * math.exp(s_lo - shift)
            shift = s_lo
        p = (wt[i] * wrest) * np.exp(shift - obs["action"])
        z += p.sum()
        acc += np.array([np.dot(p, obs[key]) for key in keys])
    out = {key: float(v) / z / V for key, v in zip(keys, acc)}
    out["m"] = out["phi1"]
    return out


def quadrature_moments(shape=(2, 2), w=1.0, a=1.0, b=0.5, r=0.0, w_nnn=0.0, n_points=64, cutoff=None,
                       tail=45.0):
    """Exact per-site expectations of the interacting theory on a tiny periodic lattice (2 <= V <= 4).

    Returns a dict with action, nn, nnn, phi1, phi2, phi4 (global sums / V) and m = phi1.
    Tensor Gauss-Legendre with n_points per site on [-cutoff, cutoff]^V, S = action() at every
    point; the integrand is analytic, so the result converges exponentially in n_points (for the
    couplings of the tests: relative change < 1e-10 from 48 to 64 and 96 points).
    (<|m|> is left out on purpose: its integrand has a kink at m = 0 and converges only slowly.)
    Cost ~ n_points^V (64 points, V = 4: ~1.5 s). Results are cached.
    """
    shape = tuple(int(n) for n in shape)
    if not 2 <= int(np.prod(shape)) <= 4:
        raise ValueError(f"quadrature only for 2 <= V <= 4 sites, got shape {shape}")
    w = tuple(_per_axis(w, len(shape)))
    if cutoff is None:
        cutoff = _cutoff(shape, w, a, b, r, w_nnn, tail)
    return dict(_quadrature(shape, w, float(a), float(b), float(r), float(w_nnn), int(n_points),
                            float(cutoff)))


# ---------------------------------------------------------------------------------------------
# the 2x2x2 lattice with nn and nnn couplings: an 8-dimensional integral reduced to 2 + 2 dimensions

def cube_moments(w=0.5, a=3.0, b=0.5, r=0.0, w_nnn=0.3, n_inner=160, n_outer=480, cutoff=None, tail=45.0):
    """Exact per-site expectations on the periodic 2x2x2 lattice (V = 8) with nn and nnn couplings, as
    quadrature_moments returns them (action, nn, nnn, phi1, phi2, phi4, m).

    Tensor quadrature of the 8-dimensional integral would cost n^8; instead the action is rewritten
    exactly. On extent 2 every axis couples a pair twice and every plane's four diagonal terms of a site
    hit the same site (module docstring), so with the sites split by parity into E and O (4 each, M_E,
    M_O their field sums) and the 4 antipodal pairs (e, e + (1,1,1)) (always one even, one odd site):
        nn  = 2 sum_{pairs at distance 1} phi phi = 2 (M_E M_O - P),   P = sum_e phi_e phi_{e+(1,1,1)},
        nnn = 4 sum_{pairs at distance 2} phi phi = 2 (M_E^2 + M_O^2 - sum_x phi_x^2),
        S   = -Q(M_E, M_O) + 2 w P + sum_x (U(phi_x)),   Q = 2 w M_E M_O + 2 w_nnn (M_E^2 + M_O^2),
              U = (a + 2 w_nnn) phi^2 + b phi^4 + r phi.
    Q = M^T C M with C = [[2 w_nnn, w], [w, 2 w_nnn]]; for C positive definite (2 w_nnn > |w|) the
    Hubbard-Stratonovich identity e^{M^T C M} ~ int d^2psi e^{-psi^T C^-1 psi / 4 + psi . M} decouples
    the 4 antipodal pairs:  Z ~ int d^2psi e^{-psi^T C^-1 psi / 4} F(psi)^4,
        F(psi) = int du dv e^{-U(u) - U(v) - 2 w u v + psi_E u + psi_O v},
    and moments put u^k, v, u v into one or two of the four factors (<M_E M_O> = 4 <u v> + 12 <u_1 v_2>,
    <M_E^2> = 4 <u^2> + 12 <u_1 u_2>, ...). Inner integral: Gauss-Legendre, n_inner points per axis on
    [-Phi, Phi] (Phi from the single-site bound, as quadrature_moments: the 8-dimensional weight outside
    the box is < e^-tail); psi given phi is Gaussian around 2 C M with covariance 2 C, so the outer box
    |psi_i| <= 2 lambda_max(C) 4 Phi + 10 sqrt(2 lambda_max(C)) holds it all; a first pass there finds
    where the psi weight exceeds e^-(tail + 10) of its maximum, the second pass integrates that range
    (+ 10 % on each side), Gauss-Legendre with n_outer points per axis. Every term is positive
    (no cancellation); logs are shifted against overflow. Converged to ~1e-12 relative at the defaults
    for the couplings of the tests (test_exact_reference.py: against b = 0 in closed form and against
    other point counts and boxes). Cost ~0.5 s.
    """
    C = np.array([[2.0 * w_nnn, w], [w, 2.0 * w_nnn]])
    lam = np.linalg.eigvalsh(C)
    if lam.min() <= 0:
        raise ValueError(f"cube_moments needs 2 w_nnn > |w| (Hubbard-Stratonovich), got w={w}, w_nnn={w_nnn}")
    if cutoff is None:
        cutoff = _cutoff((2, 2, 2), w, a, b, r, w_nnn, tail)
    x, wx = np.polynomial.legendre.leggauss(n_inner)
    x, wx = x * cutoff, wx * cutoff
    U = (a + 2.0 * w_nnn) * x ** 2 + b * x ** 4 + r * x
    K = np.exp(-2.0 * w * np.outer(x, x) - 2.0 * abs(w) * cutoff ** 2)        # <= 1
    big = 2.0 * lam.max() * 4.0 * cutoff + 10.0 * math.sqrt(2.0 * lam.max())
    Ci = np.linalg.inv(C)

    def on_box(lo, hi):
        """F_ij and the log weight of each psi point of the tensor Gauss-Legendre grid on [lo, hi]^2."""
        p, wp = np.polynomial.legendre.leggauss(n_outer)
        p, wp = lo + (p + 1.0) * 0.5 * (hi - lo), wp * 0.5 * (hi - lo)
        lu = p[:, None] * x[None, :] - U[None, :] + np.log(wx)[None, :]       # psi u - U(u) + log w_u
        shift = lu.max(axis=1)
        A = np.exp(lu - shift[:, None])                                       # (n_outer, n_inner), <= 1
        # pair integrals with u^i v^j inserted: F_ij[psi_E, psi_O] = (A x^i) K (A x^j)^T, times e^{shifts}
        F = {(i, j): (A * x ** i) @ K @ (A * x ** j).T for i, j in ((0, 0), (1, 0), (0, 1), (2, 0), (0, 2),
                                                                    (4, 0), (0, 4), (1, 1))}
        PE, PO = np.meshgrid(p, p, indexing="ij")
        lg = -0.25 * (Ci[0, 0] * PE ** 2 + 2 * Ci[0, 1] * PE * PO + Ci[1, 1] * PO ** 2)
        lg = lg + np.log(np.outer(wp, wp)) + 4.0 * (shift[:, None] + shift[None, :])
        with np.errstate(divide="ignore"):
            lt = lg + 4.0 * np.log(F[0, 0])
        return p, F, lt

    # pass 1 on the box that surely holds the weight; pass 2 on the part where it is > e^-(tail + 10)
    # of its maximum (plus 10 % of that range on each side), so that the points resolve the peak
    p, F, lt = on_box(-big, big)
    keep = np.nonzero((lt - lt.max() > -(tail + 10.0)).any(axis=0) | (lt - lt.max() > -(tail + 10.0)).any(axis=1))[0]
    margin = 0.1 * (p[keep[-1]] - p[keep[0]]) + 2.0 * big / n_outer
    lo, hi = max(-big, p[keep[0]] - margin), min(big, p[keep[-1]] + margin)
    p, F, lt = on_box(lo, hi)
    f0 = F[0, 0]
    wt = np.exp(lt - lt.max())                                                # weight of each psi point
    z = wt.sum()
    ev = lambda *num: float(np.sum(wt * np.prod([F[k] / f0 for k in num], axis=0)) / z)
    phi1 = 0.5 * (ev((1, 0)) + ev((0, 1)))
    phi2 = 0.5 * (ev((2, 0)) + ev((0, 2)))
    phi4 = 0.5 * (ev((4, 0)) + ev((0, 4)))
    uv = ev((1, 1))
    me_mo = 4.0 * uv + 12.0 * ev((1, 0), (0, 1))
    me2_mo2 = 4.0 * (ev((2, 0)) + ev((0, 2))) + 12.0 * (ev((1, 0), (1, 0)) + ev((0, 1), (0, 1)))
    nn = 2.0 * (me_mo - 4.0 * uv) / 8.0
    nnn = 2.0 * (me2_mo2 - 8.0 * phi2) / 8.0
    act = -w * nn - w_nnn * nnn + a * phi2 + b * phi4 + r * phi1
    return {"action": act, "nn": nn, "nnn": nnn, "phi1": phi1, "phi2": phi2, "phi4": phi4, "m": phi1}
