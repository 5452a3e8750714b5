"""Checkerboard Metropolis update of one colour of a local block: a pure numba function.

Arrays are the flattened padded block (lattice/geometry.py): phi[P], w[d, P] (w[mu, x] couples x and
x + e_mu), a[P], b[P], r[P]; ghosts of phi and w must be current. Per site (operation order is part of
the spec, ../shared/yardstick/README.md):

    u1, u2 = u53(o0, o1), u53(o2, o3)  with o = Philox((i, t, hit | hi(i) << 8, c3), key)
    q  = p + delta * (2*u1 - 1)
    n  = w[last][x] phi[x+e_last] + w[last][x-e_last] phi[x-e_last] + (same for axes d-2 ... 0)
    n  = n + w_nnn * (sum of diagonal neighbours in Geometry.nnn_offsets order)   (only if w_nnn != 0)
    dS = (q - p) * ((r - n) + (q + p) * (a + b * (q*q + p*p)))
    accept if dS <= 0 or u2 < exp(-dS)

IEEE binary64, left to right, no FMA, no fastmath. The kernel is staged per row like the yardstick's
c-vexp: (A) Philox for the row's sites (vectorised), (B) neighbour sums and dS, (C) the decision with a
branch-free exp approximation that brackets u2; libm's exp decides the rare ambiguous cases, so the
decisions, hence the bits, equal those of the plain per-site loop.
"""
import numpy as np
from numba import njit, uint32, uint64, int64

from ..rng import M0, M1, W0, W1, TWO_M31, TWO_M53

LOG2E = 1.4426950408889634      # 0x1.71547652b82fep0
LN2 = 0.6931471805599453        # 0x1.62e42fefa39efp-1
SHIFTER = 6755399441055744.0    # 0x1.8p52
EXP_BIAS = np.int64(0x4338000000000000 - 1023)
LO_FAC = 1.0 - 1e-8
HI_FAC = 1.0 + 1e-8


def make_buffers(n_half: int):
    """Scratch space for one row of n_half sites (reused across rows and sweeps)."""
    u = np.empty((4, n_half), dtype=np.uint32)
    f = np.empty((5, n_half), dtype=np.float64)
    acc = np.empty(n_half, dtype=np.int64)
    return u, f, acc


@njit(cache=True, boundscheck=False, nogil=True)
def update_colour(phi, w, a, b, r, w_nnn, nn_off, nn_axis, nnn_off,
                  row_base, row_gbase, row_x0, n_half, sweep, k0, k1, c3, delta, n_hits,
                  ubuf, fbuf, abuf):
    """Update all sites of one colour (rows given by Geometry.rows); returns the number accepted."""
    C0 = ubuf[0]
    C1 = ubuf[1]
    C2 = ubuf[2]
    C3 = ubuf[3]
    Q = fbuf[0]
    U2 = fbuf[1]
    N = fbuf[2]
    D = fbuf[3]
    E = fbuf[4]
    Ebits = E.view(np.int64)
    A = abuf
    t = uint32(sweep)
    kk0 = uint32(k0)
    kk1 = uint32(k1)
    cc3 = uint32(c3)
    nd = nn_off.shape[0]
    nnnn = nnn_off.shape[0]
    use_nnn = w_nnn != 0.0
    accepted = 0
    for row in range(row_base.shape[0]):
        base = row_base[row]
        x0 = row_x0[row]
        gb = row_gbase[row] + x0
        p0 = base + x0
        for hit in range(n_hits):
            # (A) random numbers, Philox rounds outermost so the loop over sites vectorises
            for j in range(n_half):
                gi = gb + 2 * j
                C0[j] = uint32(gi & 0xFFFFFFFF)
                C1[j] = t
                C2[j] = uint32(hit) | uint32((gi >> 32) << 8)
                C3[j] = cc3
            rk0 = kk0
            rk1 = kk1
            for rnd in range(10):
                if rnd:
                    rk0 = uint32(rk0 + W0)
                    rk1 = uint32(rk1 + W1)
                for j in range(n_half):
                    q0 = M0 * uint64(C0[j])
                    q1 = M1 * uint64(C2[j])
                    n0 = uint32(q1 >> uint64(32)) ^ C1[j] ^ rk0
                    n2 = uint32(q0 >> uint64(32)) ^ C3[j] ^ rk1
                    C0[j] = n0
                    C1[j] = uint32(q1)
                    C2[j] = n2
                    C3[j] = uint32(q0)
            for j in range(n_half):
                # u53 as two exact int32 -> double conversions (same value as ((hi<<32|lo)>>11)*2^-53)
                u1 = (float(np.int32(C0[j] >> uint32(1))) * TWO_M31
                      + float(np.int32(((C0[j] & uint32(1)) << uint32(21)) | (C1[j] >> uint32(11)))) * TWO_M53)
                U2[j] = (float(np.int32(C2[j] >> uint32(1))) * TWO_M31
                         + float(np.int32(((C2[j] & uint32(1)) << uint32(21)) | (C3[j] >> uint32(11)))) * TWO_M53)
                Q[j] = phi[p0 + 2 * j] + delta * (2.0 * u1 - 1.0)
            # (B) neighbour sums, axis by axis (last axis first), then dS
            s = nn_off[0]
            wl = w[nn_axis[0]]
            for j in range(n_half):
                x = p0 + 2 * j
                N[j] = wl[x] * phi[x + s] + wl[x - s] * phi[x - s]
            for k in range(1, nd):
                s = nn_off[k]
                wl = w[nn_axis[k]]
                for j in range(n_half):
                    x = p0 + 2 * j
                    N[j] = N[j] + wl[x] * phi[x + s]
                    N[j] = N[j] + wl[x - s] * phi[x - s]
            if use_nnn:
                s = nnn_off[0]
                for j in range(n_half):
                    E[j] = phi[p0 + 2 * j + s]
                for k in range(1, nnnn):
                    s = nnn_off[k]
                    for j in range(n_half):
                        E[j] = E[j] + phi[p0 + 2 * j + s]
                for j in range(n_half):
                    N[j] = N[j] + w_nnn * E[j]
            for j in range(n_half):
                x = p0 + 2 * j
                p = phi[x]
                q = Q[j]
                D[j] = (q - p) * ((r[x] - N[j]) + (q + p) * (a[x] + b[x] * (q * q + p * p)))
            # (C) decision: bracket u2 against exp_approx(-dS) (relative error < 3e-10)
            for j in range(n_half):
                dc = min(max(D[j], 0.0), 700.0)
                E[j] = -dc * LOG2E + SHIFTER
            namb = 0
            for j in range(n_half):
                d = D[j]
                xx = -min(max(d, 0.0), 700.0)
                nn = E[j] - SHIFTER
                rr = xx - nn * LN2
                pp = 1.0 + rr * (1.0 + rr * (1 / 2.0 + rr * (1 / 6.0 + rr * (1 / 24.0 + rr * (
                    1 / 120.0 + rr * (1 / 720.0 + rr * (1 / 5040.0 + rr * (1 / 40320.0))))))))
                sbits = (Ebits[j] - EXP_BIAS) << int64(52)
                Ebits[j] = sbits
                e = pp * E[j]
                u = U2[j]
                lo = e * LO_FAC
                hi = e * HI_FAC
                sure = (d <= 0.0) | ((u < lo) & (d <= 700.0))
                amb = (d > 0.0) & (((u >= lo) & (u <= hi)) | (d > 700.0))
                A[j] = int64(sure) | (int64(amb) << int64(1))
                namb |= int64(amb)
            if namb:
                for j in range(n_half):
                    if A[j] & 2:
                        A[j] = int64(U2[j] < np.exp(-D[j]))
            for j in range(n_half):
                x = p0 + 2 * j
                phi[x] = Q[j] if A[j] else phi[x]
                accepted += A[j]
    return accepted
