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

from ..config import TARGET_TERMS as PIECES
from ..errors import UserError
from ..rng import INIT, c3_of, fill_uniform, key_of


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
