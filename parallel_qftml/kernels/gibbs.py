"""@njit block-Gibbs steps of the scalar-field RBM's persistent chains (pure: no MPI, no I/O).

Aarts, Lucini, Park, PRD 109, 034521, conditionals of eq. 7 (docs/rbm.md):
    h | phi ~ N(eta + sigma_h2 W^T phi, sigma_h2 1),    phi | h ~ N(W h / mu2, 1/mu2 1).

Random numbers (docs/rbm.md, "Random numbers of pqml rbm"). Chain c in epoch t reads 64-bit words from
Philox4x32-10 (rng.py) with key (seed mod 2^32, seed >> 32) and counter (c, t, p, c3), p = 0, 1, ...;
counter p gives the words o0 << 32 | o1 and o2 << 32 | o3, in that order. Each standard normal is drawn
by the 256-layer ziggurat (Marsaglia & Tsang 2000, J. Stat. Softw. 5(8); the layout of NumPy's
generator): one word u gives layer i = u & 255, the sign (bit 8) and a 52-bit mantissa m = u >> 12;
x = m w_i is accepted if m < k_i (98.5 % of the words); otherwise the wedge or, for i = 0, the tail
beyond r = 3.6541528853610088 is sampled exactly with further words (uniforms in (0, 1]: 1 - (word >> 11)
2^-53).
The normals of a chain and epoch are used in the order: step 1 hidden units 0..N_h-1, step 1 visible
units 0..N_v-1, step 2 hidden, ... Every sum runs over the units in index order, so a chain's new state
depends only on (seed, c, t, its old state, W, eta, mu2, sigma_h2), never on the rows beside it: the
same bits on any number of ranks.
"""
import numpy as np
from numba import njit, uint32, uint64

from ..rng import TWO_M53, philox

ZIG_R = 3.6541528853610088          # start of the tail (256 layers of area ZIG_V each)
ZIG_V = 4.92867323399e-3


def _ziggurat_tables():
    """k_i (uint64), w_i, f_i of the 256-layer ziggurat for 52-bit mantissas (Marsaglia & Tsang's zigset)."""
    m = 2.0 ** 52
    ki, wi, fi = np.zeros(256, np.uint64), np.zeros(256), np.zeros(256)
    dn = tn = ZIG_R
    q = ZIG_V / np.exp(-0.5 * dn * dn)
    ki[0], ki[1] = np.uint64((dn / q) * m), 0
    wi[0], wi[255] = q / m, dn / m
    fi[0], fi[255] = 1.0, np.exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = np.sqrt(-2.0 * np.log(ZIG_V / dn + np.exp(-0.5 * dn * dn)))
        ki[i + 1] = np.uint64((dn / tn) * m)
        tn = dn
        fi[i] = np.exp(-0.5 * dn * dn)
        wi[i] = dn / m
    return ki, wi, fi


ZIG_K, ZIG_W, ZIG_F = _ziggurat_tables()


@njit(cache=True, inline="always")
def _word(st, c, t, c3, k0, k1):
    """Next 64-bit word of stream (c, t); st = [next counter p, buffered word, 1 if buffered]."""
    if st[2]:
        st[2] = uint64(0)
        return st[1]
    o0, o1, o2, o3 = philox(c, t, uint32(st[0]), c3, k0, k1)
    st[0] += uint64(1)
    st[1] = uint64(o2) << uint64(32) | uint64(o3)
    st[2] = uint64(1)
    return uint64(o0) << uint64(32) | uint64(o1)


@njit(cache=True, inline="always")
def _uniform(st, c, t, c3, k0, k1):
    """A uniform in (0, 1] (53 bits) from the next word."""
    return 1.0 - float(_word(st, c, t, c3, k0, k1) >> uint64(11)) * TWO_M53


@njit(cache=True, boundscheck=False)
def fill_normals(z, c, t, c3, k0, k1, ki, wi, fi):
    """z[:] = standard normals of stream (chain c, epoch t) by the ziggurat (module docstring)."""
    st = np.zeros(3, np.uint64)
    c, t = uint32(c), uint32(t)
    for j in range(z.shape[0]):
        while True:
            u = _word(st, c, t, c3, k0, k1)
            i = np.int64(u & uint64(255))
            neg = (u >> uint64(8)) & uint64(1)
            m = u >> uint64(12)                       # 52 bits
            x = float(m) * wi[i]
            if m < ki[i]:
                break
            if i == 0:                                # the tail x > r (Marsaglia 1964)
                while True:
                    xx = -np.log(_uniform(st, c, t, c3, k0, k1)) / ZIG_R
                    yy = -np.log(_uniform(st, c, t, c3, k0, k1))
                    if yy + yy > xx * xx:
                        break
                x = ZIG_R + xx
                break
            if fi[i] + _uniform(st, c, t, c3, k0, k1) * (fi[i - 1] - fi[i]) < np.exp(-0.5 * x * x):
                break
        z[j] = -x if neg else x


@njit(cache=True, boundscheck=False)
def gibbs_chains(chains, c_first, W, WT, eta, mu2, sigma_h2, k, t, k0, k1, c3, ki, wi, fi):
    """k block-Gibbs steps phi -> h -> phi of every row of `chains` (n, N_v), in place; row r is global
    chain c_first + r, t the epoch. W (N_v, N_h) and WT = W^T (C-contiguous copies), eta (N_h,)."""
    n, nv = chains.shape
    nh = W.shape[1]
    sd_h = np.sqrt(sigma_h2)
    sd_v = 1.0 / np.sqrt(mu2)
    h = np.empty(nh)
    v = np.empty(nv)
    z = np.empty(k * (nh + nv))
    for r in range(n):
        fill_normals(z, c_first + r, t, c3, k0, k1, ki, wi, fi)
        for i in range(nv):
            v[i] = chains[r, i]
        q = 0
        for _ in range(k):
            for a in range(nh):
                h[a] = 0.0
            for i in range(nv):                       # h_a = sum_i phi_i W_ia, i ascending
                vi = v[i]
                for a in range(nh):
                    h[a] += vi * W[i, a]
            for a in range(nh):
                h[a] = eta[a] + sigma_h2 * h[a] + sd_h * z[q + a]
            q += nh
            for i in range(nv):
                v[i] = 0.0
            for a in range(nh):                       # phi_i = sum_a W_ia h_a, a ascending
                ha = h[a]
                for i in range(nv):
                    v[i] += ha * WT[a, i]
            for i in range(nv):
                v[i] = v[i] / mu2 + sd_v * z[q + i]
            q += nv
        for i in range(nv):
            chains[r, i] = v[i]
