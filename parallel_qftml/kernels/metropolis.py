"""Checkerboard Metropolis update of one colour of a local block: a pure numba function.

Arrays are the flattened padded block (lattice/geometry.py): phi[P], w[d, P] (w[mu, x] couples x and
x + e_mu), a[P], b[P], r[P]; ghosts of phi and w must be current. Per site (operation order is part of
the spec, ../shared/yardstick/README.md):

    u1, u2 = u53(o0, o1), u53(o2, o3)  with o = Philox((i, t, hit | hi(i) << 8, c3), key)
    q  = p + delta * (2*u1 - 1)
    n  = w[last][x] phi[x+e_last] + w[last][x-e_last] phi[x-e_last] + (same for axis d-2) [+ P] [+ w_nnn T]
         P = sum over axes d-3 ... 0 of the same pair terms, left to right (only for d >= 3)
         T = sum of the diagonal neighbours in Geometry.nnn_offsets order (only if w_nnn != 0)
    dS = (q - p) * ((r - n) + (q + p) * (a + b * (q*q + p*p)))
    accept if dS <= 0 or u2 < exp(-dS)

IEEE binary64, left to right, no FMA, no fastmath. The kernel is staged per row like the yardstick's
c-vexp: (A) Philox for the row's sites of this colour, (B) q and dS for the whole row (contiguous slices
vectorise; stride-2 access would not, and computing the other colour's values and discarding them is
cheaper), (C) the decision with a branch-free exp approximation that brackets u2; libm's exp decides
the rare ambiguous cases, so the decisions, hence the bits, equal those of a plain per-site loop.
"""
import numpy as np
from numba import njit, uint32, uint64, int64

from ..rng import TWO_M53, philox

LOG2E = 1.4426950408889634      # 0x1.71547652b82fep0
LN2 = 0.6931471805599453        # 0x1.62e42fefa39efp-1
SHIFTER = 6755399441055744.0    # 0x1.8p52
EXP_BIAS = np.int64(0x4338000000000000 - 1023)
LO_FAC = 1.0 - 1e-8
HI_FAC = 1.0 + 1e-8


def make_buffers(n_last: int):
    """Scratch space for one row of n_last sites (reused across rows and sweeps)."""
    f = np.empty((9, n_last))
    f[3] = 0.5          # full-row u1: positions of the other colour always hold a value in [0, 1)
    return f, np.empty(n_last, dtype=np.int64)


@njit(cache=True, boundscheck=False, nogil=True)
def _uniforms(U1, U2, gb, n, t, hit, k0, k1, c3):
    """(A) u1, u2 of the n sites gb, gb + 2, ... (vectorises: no strided memory access here)."""
    for j in range(n):
        gi = gb + 2 * j
        o0, o1, o2, o3 = philox(uint32(gi & 0xFFFFFFFF), t, uint32(hit) | uint32((gi >> 32) << 8), c3, k0, k1)
        U1[j] = float(int64(((uint64(o0) << uint64(32)) | uint64(o1)) >> uint64(11))) * TWO_M53
        U2[j] = float(int64(((uint64(o2) << uint64(32)) | uint64(o3)) >> uint64(11))) * TWO_M53


@njit(cache=True, boundscheck=False, nogil=True)
def _slow_axes_sums(P, phi, w, base, n, strides):
    """(B0, d >= 3) P_x = sum over axes d-3 ... 0 of w_mu(x) phi_{x+mu} + w_mu(x-mu) phi_{x-mu}."""
    d = strides.shape[0]
    for k in range(d - 3, -1, -1):
        s = strides[k]
        wl = w[k]
        pf, pb = phi[base + s:base + s + n], phi[base - s:base - s + n]
        wf, wb = wl[base:base + n], wl[base - s:base - s + n]
        if k == d - 3:
            for j in range(n):
                P[j] = wf[j] * pf[j] + wb[j] * pb[j]
        else:
            for j in range(n):
                P[j] = P[j] + wf[j] * pf[j]
                P[j] = P[j] + wb[j] * pb[j]


@njit(cache=True, boundscheck=False, nogil=True)
def _nnn_sums(T, phi, nnn_off, base, n):
    """(B0') T_x = sum of the diagonal neighbours of x (Geometry.nnn_offsets order)."""
    s = nnn_off[0]
    p = phi[base + s:base + s + n]
    for j in range(n):
        T[j] = p[j]
    for k in range(1, nnn_off.shape[0]):
        s = nnn_off[k]
        p = phi[base + s:base + s + n]
        for j in range(n):
            T[j] = T[j] + p[j]


@njit(cache=True, boundscheck=False, nogil=True)
def _delta_action(D, Q, phi, w, a, b, r, U, P, T, w_nnn, base, n, strides, delta):
    """(B) proposal q and dS for every site of one row, both colours (contiguous 1D slices, so LLVM
    vectorises; the other colour's results are discarded). U holds u1 at this colour's sites and some
    value in [0, 1) elsewhere. n_x = (last axis fwd + bwd) + axis d-2 fwd + bwd [+ P_x] [+ w_nnn T_x]."""
    d = strides.shape[0]
    ps, as_, bs, rs = phi[base:base + n], a[base:base + n], b[base:base + n], r[base:base + n]
    wl = w[d - 1]
    pf1, pb1, wf1, wb1 = phi[base + 1:base + 1 + n], phi[base - 1:base - 1 + n], wl[base:base + n], wl[base - 1:base - 1 + n]
    if d == 1:
        for x in range(n):
            nsum = wf1[x] * pf1[x] + wb1[x] * pb1[x]
            if w_nnn != 0.0:
                nsum = nsum + w_nnn * T[x]
            p = ps[x]
            q = p + delta * (2.0 * U[x] - 1.0)
            D[x] = (q - p) * ((rs[x] - nsum) + (q + p) * (as_[x] + bs[x] * (q * q + p * p)))
            Q[x] = q
        return
    s = strides[d - 2]
    wl = w[d - 2]
    pf0, pb0, wf0, wb0 = phi[base + s:base + s + n], phi[base - s:base - s + n], wl[base:base + n], wl[base - s:base - s + n]
    if d == 2 and w_nnn == 0.0:       # the hot case, kept free of branches
        for x in range(n):
            nsum = wf1[x] * pf1[x] + wb1[x] * pb1[x] + wf0[x] * pf0[x] + wb0[x] * pb0[x]
            p = ps[x]
            q = p + delta * (2.0 * U[x] - 1.0)
            D[x] = (q - p) * ((rs[x] - nsum) + (q + p) * (as_[x] + bs[x] * (q * q + p * p)))
            Q[x] = q
        return
    for x in range(n):
        nsum = wf1[x] * pf1[x] + wb1[x] * pb1[x] + wf0[x] * pf0[x] + wb0[x] * pb0[x]
        if d > 2:
            nsum = nsum + P[x]
        if w_nnn != 0.0:
            nsum = nsum + w_nnn * T[x]
        p = ps[x]
        q = p + delta * (2.0 * U[x] - 1.0)
        D[x] = (q - p) * ((rs[x] - nsum) + (q + p) * (as_[x] + bs[x] * (q * q + p * p)))
        Q[x] = q


@njit(cache=True, boundscheck=False, nogil=True)
def _decide(A, D, U2, E, n):
    """(C) accept[j] for dS = D[j]: bracket u2 against exp_approx(-dS) (relative error < 3e-10, the
    yardstick's c-vexp); libm's exp decides the ambiguous cases. Returns 1 if any was ambiguous."""
    Ebits = E.view(np.int64)
    namb = 0
    for j in range(n):
        d = D[j]
        xx = -min(max(d, 0.0), 700.0)
        E[j] = xx * LOG2E + SHIFTER
        nn = E[j] - SHIFTER
        rr = xx - nn * LN2
        pp = 1.0 + rr * (1.0 + rr * (1 / 2.0 + rr * (1 / 6.0 + rr * (1 / 24.0 + rr * (
            1 / 120.0 + rr * (1 / 720.0 + rr * (1 / 5040.0 + rr * (1 / 40320.0))))))))
        Ebits[j] = (Ebits[j] - EXP_BIAS) << int64(52)
        e = pp * E[j]
        u = U2[j]
        lo = e * LO_FAC
        hi = e * HI_FAC
        sure = (d <= 0.0) | ((u < lo) & (d <= 700.0))
        amb = (d > 0.0) & (((u >= lo) & (u <= hi)) | (d > 700.0))
        A[j] = int64(sure) | (int64(amb) << int64(1))
        namb |= int64(amb)
    if namb:
        for j in range(n):
            if A[j] & 2:
                A[j] = int64(U2[j] < np.exp(-D[j]))


@njit(cache=True, boundscheck=False, nogil=True)
def update_colour(phi, w, a, b, r, w_nnn, strides, nnn_off,
                  row_base, row_gbase, row_x0, n_last, sweep, k0, k1, c3, delta, n_hits, fbuf, abuf):
    """Update all sites of one colour (rows given by Geometry.rows); returns the number accepted."""
    n_half = n_last // 2
    U1, U2, N, Uf, Df, Qf, D, E, T = fbuf[0], fbuf[1], fbuf[2], fbuf[3], fbuf[4], fbuf[5], fbuf[6], fbuf[7], fbuf[8]
    t = uint32(sweep)
    kk0 = uint32(k0)
    kk1 = uint32(k1)
    cc3 = uint32(c3)
    d = strides.shape[0]
    accepted = 0
    for row in range(row_base.shape[0]):
        base = row_base[row]
        x0 = row_x0[row]
        for hit in range(n_hits):
            _uniforms(U1, U2, row_gbase[row] + x0, n_half, t, hit, kk0, kk1, cc3)
            if d > 2:
                _slow_axes_sums(N, phi, w, base, n_last, strides)
            if w_nnn != 0.0:
                _nnn_sums(T, phi, nnn_off, base, n_last)
            for j in range(n_half):
                Uf[x0 + 2 * j] = U1[j]
            _delta_action(Df, Qf, phi, w, a, b, r, Uf, N, T, w_nnn, base, n_last, strides, delta)
            for j in range(n_half):
                D[j] = Df[x0 + 2 * j]
            _decide(abuf, D, U2, E, n_half)
            for j in range(n_half):
                x = base + x0 + 2 * j
                phi[x] = Qf[x0 + 2 * j] if abuf[j] else phi[x]
                accepted += abuf[j]
    return accepted
