"""Actions of the phi^4 Markov random field (Bachtis, Aarts, Lucini, PRD 103, 074510).

Sampled action (eq. 5, with a linear term and a homogeneous diagonal coupling added):
    S = - sum_x sum_mu w_mu(x) phi_x phi_{x+mu} - w_nnn * NNN + sum_x (a_x phi_x^2 + b_x phi_x^4 + r_x phi_x)
with one w per link (d arrays, w_mu(x) couples x and x + e_mu) and a, b, r per site.
Target actions (eqs. 14/15): A = sum_k g_k A^(k) over the pieces nn, phi2, phi4, nnn, phi and the
imaginary term i g5 sum phi^2; a real target maps to S with w = -g_nn, a = g_phi2, b = g_phi4,
w_nnn = -g_nnn, r = g_phi. The talks' lattice form (eq. 4 of the paper, any d)
    S_E = sum_x [-kappa sum_mu phi_x phi_{x+mu} + (mu2 + 2 d kappa)/2 phi_x^2 + lam/4 phi_x^4]
maps to w = kappa, a = (mu2 + 2 d kappa)/2, b = lam/4.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import UserError
from ..rng import INIT, c3_of, fill_uniform, key_of


# The terms of a target action A = sum_k g_k A^(k) (the paper's eqs. 14/15): the model's vocabulary,
# which the config parsers check [target] / [action] g tables against.
TARGET_TERMS = ("nn", "phi2", "phi4", "nnn", "phi", "i_phi2")
PIECES = TARGET_TERMS

BOUNDED_DENSE_MAX = 2048      # b = 0 on at most this many sites: exact dense eigenvalues of the restricted form
BOUNDED_ITERATIONS = 2000     # above: iterations allowed to find the M-matrix certificate
BOUNDED_RTOL = 1e-10          # positive definite means lambda_min > BOUNDED_RTOL * (row-sum bound of |M|)


def _site(i, shape) -> tuple:
    return tuple(int(v) for v in np.unravel_index(int(i), shape))


def homogeneous_min_eigenvalue(w, a, w_nnn=0.0) -> tuple:
    """(lambda_min, signs) of the quadratic form of homogeneous couplings (b = 0, any even extents):
    lambda(k) = a - sum_mu w_mu cos k_mu - 2 w_nnn sum_{mu<nu} cos k_mu cos k_nu is multilinear in the
    cos k_mu, so its minimum over the lattice momenta is at cos k_mu = +-1 (k_mu = 0 or pi)."""
    import itertools
    d = len(w)
    best = None
    for s in itertools.product((1.0, -1.0), repeat=d):
        lam = a - sum(wm * sm for wm, sm in zip(w, s)) - 2.0 * w_nnn * sum(
            s[mu] * s[nu] for mu in range(d) for nu in range(mu + 1, d))
        if best is None or lam < best[0]:
            best = (float(lam), s)
    return best


def _restricted_form(w, a, w_nnn, zero) -> tuple:
    """The quadratic form of S restricted to the sites `zero` (bool, global shape): (index of those
    sites, diagonal a, pairs (i, j) into that index and their coefficients c: Q = sum a_i f_i^2
    + sum 2 c f_i f_j); every link (x, mu) and diagonal pair is counted literally (extent 2 too)."""
    shape = zero.shape
    d = len(shape)
    idx = np.flatnonzero(zero)
    pos = np.full(zero.size, -1, dtype=np.int64)
    pos[idx] = np.arange(idx.size)
    sites = np.arange(zero.size).reshape(shape)
    pi, pj, pc = [], [], []

    def add(nb, coef):
        x, y = pos, pos[nb.ravel()]
        keep = (x >= 0) & (y >= 0)
        pi.append(x[keep])
        pj.append(y[keep])
        pc.append(-0.5 * np.broadcast_to(coef, shape).ravel()[keep])

    for mu in range(d):
        add(np.roll(sites, -1, axis=mu), w[mu])
    if w_nnn:
        for mu in range(d):
            for nu in range(mu + 1, d):
                fwd = np.roll(sites, -1, axis=mu)
                add(np.roll(fwd, -1, axis=nu), w_nnn)
                add(np.roll(fwd, 1, axis=nu), w_nnn)
    cat = lambda v, t: np.concatenate(v) if v else np.zeros(0, t)  # noqa: E731
    return idx, np.broadcast_to(a, shape).ravel()[idx].astype(np.float64), cat(pi, np.int64), \
        cat(pj, np.int64), cat(pc, np.float64)


def check_quadratic_positive(w, a, w_nnn, zero) -> str | None:
    """None if the quadratic part of S restricted to the fields supported on `zero` (the sites where
    b = 0) is strictly positive definite; otherwise a message naming a site where it fails.
    Exact (dense Cholesky/eigenvalues) for at most BOUNDED_DENSE_MAX sites or constant couplings; above, a
    certificate v > 0 with C v > 0 for the comparison matrix C = diag(a) - |off-diagonal| (sufficient,
    and exact when w, w_nnn >= 0), found by at most BOUNDED_ITERATIONS Jacobi steps (docs/conventions.md)."""
    shape, d = zero.shape, zero.ndim
    n = int(zero.sum())
    if n == 0:
        return None
    const = all(np.ndim(x) == 0 or np.all(x == np.asarray(x).flat[0]) for x in (*w, a))
    if n == zero.size and const:
        lam, s = homogeneous_min_eigenvalue([float(np.asarray(x).flat[0]) for x in w],
                                            float(np.asarray(a).flat[0]), w_nnn)
        scale = abs(float(np.asarray(a).flat[0])) + sum(abs(float(np.asarray(x).flat[0])) for x in w) \
            + d * (d - 1) * abs(w_nnn)
        if lam > BOUNDED_RTOL * scale:
            return None
        k = "(" + ", ".join("0" if v > 0 else "pi" for v in s) + ")"
        return (f"b = 0 at every site and the quadratic form has eigenvalue {lam:.6g} <= 0 at momentum "
                f"k = {k} (a free field needs a > sum_mu w_mu cos k_mu + 2 w_nnn sum cos k_mu cos k_nu)")
    idx, diag, pi, pj, pc = _restricted_form(w, a, w_nnn, zero)
    if np.any(diag <= 0):
        i = idx[np.flatnonzero(diag <= 0)[0]]
        return (f"b = 0 and a = {float(np.broadcast_to(a, shape).ravel()[i]):.6g} <= 0 at site {_site(i, shape)}")
    absrow = diag + np.bincount(pi, np.abs(pc), n) + np.bincount(pj, np.abs(pc), n)
    tol = BOUNDED_RTOL * float(absrow.max())
    if n <= BOUNDED_DENSE_MAX:
        m = np.diag(diag)
        np.add.at(m, (pi, pj), pc)
        np.add.at(m, (pj, pi), pc)
        try:                                      # Cholesky of M - tol: the fast decision
            np.linalg.cholesky(m - tol * np.eye(n))
            return None
        except np.linalg.LinAlgError:
            pass
        lam, vec = np.linalg.eigh(m)              # refused: the eigenvalue and site for the message
        if lam[0] > tol:                          # (Cholesky and eigh disagree only within rounding)
            return None
        i = idx[int(np.argmax(np.abs(vec[:, 0])))]
        return (f"b = 0 on {n} site(s) and the quadratic form restricted to them has eigenvalue {lam[0]:.6g} "
                f"<= 0 (largest weight at site {_site(i, shape)})")
    ac = np.abs(pc)
    off = lambda v: np.bincount(pi, ac * v[pj], n) + np.bincount(pj, ac * v[pi], n)  # noqa: E731
    v = 1.0 / diag
    with np.errstate(over="ignore", invalid="ignore"):
        for _ in range(BOUNDED_ITERATIONS):
            nv = off(v)
            if np.all(diag * v - nv > tol * v):       # C v > 0 with margin: positive definite
                return None
            if v.max() > 1e100:                       # the Neumann series diverges: not certifiable
                break
            v = (1.0 + nv) / diag
        bad = int(np.argmin(np.nan_to_num(diag * v - off(v), nan=-np.inf)))
    return (f"b = 0 on {n} site(s) (more than {BOUNDED_DENSE_MAX}, so not checked exactly) and positive "
            f"definiteness of the quadratic form on them could not be certified (near site "
            f"{_site(idx[bad], shape)}): make b > 0 there or the form clearly positive")


def _scalar_or_array(v, shape):
    if np.ndim(v) == 0:
        return float(v)
    v = np.asarray(v, dtype=np.float64)
    if v.shape != tuple(shape):
        raise UserError(f"coupling array has shape {v.shape}, expected {tuple(shape)}")
    return v


@dataclass(frozen=True)
class PhiFourAction:
    """Couplings of S. Each of w[mu], a, b, r is a float (homogeneous) or a global-shape array;
    with spread > 0 (floats only) they are base + spread * (2u - 1), u keyed on the global site
    (rng.py, INIT), as the yardstick's inhomogeneous couplings."""
    ndim: int
    w: tuple
    a: object
    b: object
    r: object = 0.0
    w_nnn: float = 0.0
    spread: float = 0.0
    seed: int = 0

    @classmethod
    def homogeneous(cls, ndim, w=1.0, a=1.52425, b=0.175, r=0.0, w_nnn=0.0):
        ws = tuple(float(x) for x in (w if np.ndim(w) else [w] * ndim))
        if len(ws) != ndim:
            raise UserError(f"action.w has {len(ws)} entries, the lattice has {ndim} axes")
        return cls(ndim, ws, float(a), float(b), float(r), float(w_nnn))

    @classmethod
    def perturbed(cls, ndim, seed, spread=0.1, w=1.0, a=1.52425, b=0.175, r=0.0, w_nnn=0.0):
        """The yardstick's inhomogeneous couplings (`-i`): base + spread * (2u - 1) per link/site."""
        base = cls.homogeneous(ndim, w, a, b, r, w_nnn)
        return cls(ndim, base.w, base.a, base.b, base.r, base.w_nnn, float(spread), int(seed))

    @classmethod
    def inhomogeneous(cls, w, a, b, r=0.0, w_nnn=0.0):
        """Explicit global arrays: w of shape (d, *shape), a, b, r of shape `shape` (or floats)."""
        w = np.asarray(w, dtype=np.float64)
        shape = w.shape[1:]
        return cls(w.shape[0], tuple(w[mu] for mu in range(w.shape[0])), _scalar_or_array(a, shape),
                   _scalar_or_array(b, shape), _scalar_or_array(r, shape), float(w_nnn))

    @classmethod
    def from_lattice(cls, ndim, kappa, mu2, lam):
        return cls.homogeneous(ndim, w=kappa, a=(mu2 + 2 * ndim * kappa) / 2, b=lam / 4)

    @classmethod
    def from_target(cls, ndim, g: dict):
        return TargetAction(dict(g)).to_sampled(ndim)

    @property
    def has_nnn(self) -> bool:
        return self.w_nnn != 0.0

    def global_couplings(self, shape) -> tuple:
        """(w (d, *shape), a, b, r) as global arrays (floats broadcast; perturbed couplings generated)."""
        from ..lattice.geometry import Geometry
        shape = tuple(int(n) for n in shape)
        g = Geometry(shape, (1,) * len(shape), (0,) * len(shape))
        w, a, b, r = self.local_couplings(g)
        inner = lambda x: x.reshape(g.padded_shape)[g.interior].copy()  # noqa: E731
        return np.stack([inner(x) for x in w]), inner(a), inner(b), inner(r)

    def check_bounded(self, shape) -> None:
        """UserError unless e^{-S} is normalisable on the periodic lattice `shape` (docs/conventions.md,
        "Boundedness"): b >= 0 at every site, and on the sites Z where b = 0 the quadratic part of S
        (a, w, w_nnn) restricted to fields supported on Z is strictly positive definite. The one check
        for every way couplings arrive (Sampler, [action] of every kind, the learning trainer)."""
        shape = tuple(int(n) for n in shape)
        if getattr(self, "_bounded_on", None) == shape:
            return
        msg = self.unbounded_reason(shape)
        if msg:
            raise UserError(f"the action is unbounded below (e^-S is not normalisable): {msg}")
        object.__setattr__(self, "_bounded_on", shape)

    def unbounded_reason(self, shape) -> str | None:
        """None if bounded (see check_bounded), else the reason, naming a site or coupling."""
        shape = tuple(int(n) for n in shape)
        if self.spread:
            if self.b - self.spread > 0:          # b_x in [b - spread, b + spread)
                return None
            w, a, b, _ = self.global_couplings(shape)
        elif np.ndim(self.b) == 0:
            if self.b > 0:
                return None
            if self.b < 0:
                return f"b = {self.b:.6g} < 0"
            w, a, b = self.w, self.a, np.zeros(shape)
        else:
            w, a, b = self.w, self.a, np.asarray(self.b)
            if b.min() > 0:
                return None
        b = np.broadcast_to(b, shape)
        if b.min() < 0:
            i = int(np.argmin(b))
            return f"b = {float(b.ravel()[i]):.6g} < 0 at site {_site(i, shape)}"
        return check_quadratic_positive(w, a, self.w_nnn, b == 0)

    def local_couplings(self, geom):
        """(w[d, P], a[P], b[P], r[P]) flat padded arrays of this block, interior filled; the ghosts
        of w must be filled by a halo exchange (a, b, r are only read at the site itself)."""
        P = int(np.prod(geom.padded_shape))
        d = geom.ndim
        if d != self.ndim:
            raise UserError(f"action is {self.ndim}-dimensional but the lattice has {d} axes")
        w = np.zeros((d, P))
        a, b, r = np.zeros(P), np.zeros(P), np.zeros(P)
        flat = [w[mu] for mu in range(d)] + [a, b, r]
        values = [*self.w, self.a, self.b, self.r]
        if self.spread:
            # initialisation column 0 is the field of replica 0; then w for axes last..first, a, b, r
            k0, k1 = key_of(self.seed)
            base, gbase, _ = geom.rows(0, False)
            cols = [1 + (d - 1 - mu) for mu in range(d)] + [d + 1, d + 2, d + 3]
            for dst, v, c in zip(flat, values, cols):
                fill_uniform(dst, base, gbase, geom.local_shape[-1], c, k0, k1, c3_of(INIT, 0), v, self.spread)
        else:
            for dst, v in zip(flat, values):
                dst.reshape(geom.padded_shape)[geom.interior] = v[geom.global_slices] if np.ndim(v) else v
        return w, a, b, r


@dataclass(frozen=True)
class TargetAction:
    """A = sum_k g_k A^(k) (eqs. 14/15); keys of `g` are PIECES, missing ones are zero."""
    g: dict = field(default_factory=dict)

    def __post_init__(self):
        unknown = set(self.g) - set(PIECES)
        if unknown:
            raise UserError(f"unknown target term(s) {sorted(unknown)}; allowed: {list(PIECES)}")

    @property
    def is_complex(self) -> bool:
        return self.g.get("i_phi2", 0.0) != 0.0

    def evaluate(self, pieces: dict):
        """A from measured pieces (keys nn, phi2, phi4, nnn, phi1); complex if i_phi2 != 0."""
        g = self.g
        re = (g.get("nn", 0.0) * pieces["nn"] + g.get("phi2", 0.0) * pieces["phi2"]
              + g.get("phi4", 0.0) * pieces["phi4"] + g.get("nnn", 0.0) * pieces["nnn"]
              + g.get("phi", 0.0) * pieces["phi1"])
        return complex(re, g["i_phi2"] * pieces["phi2"]) if self.is_complex else re

    def to_sampled(self, ndim) -> PhiFourAction:
        if self.is_complex:
            raise UserError("a complex target (i_phi2 != 0) cannot be sampled; it is reached by reweighting")
        g = self.g
        return PhiFourAction.homogeneous(ndim, w=-g.get("nn", 0.0), a=g.get("phi2", 0.0),
                                         b=g.get("phi4", 0.0), r=g.get("phi", 0.0), w_nnn=-g.get("nnn", 0.0))
