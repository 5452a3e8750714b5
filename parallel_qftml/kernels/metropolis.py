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
def _neighbour_sums(N, phi, w, nn_off, nn_axis, base, n):
    """(B1) n_x for every site of the row (both colours). Contiguous 1D slices let LLVM vectorise."""
    s = nn_off[0]
    wl = w[nn_axis[0]]
    pf, pb = phi[base + s:base + s + n], phi[base - s:base - s + n]
    wf, wb = wl[base:base + n], wl[base - s:base - s + n]
    for j in range(n):
        N[j] = wf[j] * pf[j] + wb[j] * pb[j]
    for k in range(1, nn_off.shape[0]):
        s = nn_off[k]
        wl = w[nn_axis[k]]
        pf, pb = phi[base + s:base + s + n], phi[base - s:base - s + n]
        wf, wb = wl[base:base + n], wl[base - s:base - s + n]
        for j in range(n):
            N[j] = N[j] + wf[j] * pf[j]
            N[j] = N[j] + wb[j] * pb[j]


@njit(cache=True, boundscheck=False, nogil=True)
def _nnn_sums(N, T, phi, w_nnn, nnn_off, base, n):
    """(B1') n_x += w_nnn * (sum of diagonal neighbours, Geometry.nnn_offsets order), whole row."""
    s = nnn_off[0]
    p = phi[base + s:base + s + n]
    for j in range(n):
        T[j] = p[j]
    for k in range(1, nnn_off.shape[0]):
        s = nnn_off[k]
        p = phi[base + s:base + s + n]
        for j in range(n):
            T[j] = T[j] + p[j]
    for j in range(n):
        N[j] = N[j] + w_nnn * T[j]


@njit(cache=True, boundscheck=False, nogil=True)
def _delta_action(D, Q, phi, a, b, r, N, U, base, n, delta):
    """(B2) proposal q and dS for every site of the row (contiguous, vectorises); U holds u1 at the
    sites of this colour and some value in [0, 1) elsewhere, whose results are discarded."""
    ps, as_, bs, rs = phi[base:base + n], a[base:base + n], b[base:base + n], r[base:base + n]
    for x in range(n):
        p = ps[x]
        q = p + delta * (2.0 * U[x] - 1.0)
        D[x] = (q - p) * ((rs[x] - N[x]) + (q + p) * (as_[x] + bs[x] * (q * q + p * p)))
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
def update_colour(phi, w, a, b, r, w_nnn, nn_off, nn_axis, nnn_off,
                  row_base, row_gbase, row_x0, n_last, sweep, k0, k1, c3, delta, n_hits, fbuf, abuf):
    """Update all sites of one colour (rows given by Geometry.rows); returns the number accepted."""
    n_half = n_last // 2
    U1, U2, N, Uf, Df, Qf, D, E, T = fbuf[0], fbuf[1], fbuf[2], fbuf[3], fbuf[4], fbuf[5], fbuf[6], fbuf[7], fbuf[8]
    t = uint32(sweep)
    kk0 = uint32(k0)
    kk1 = uint32(k1)
    cc3 = uint32(c3)
    accepted = 0
    for row in range(row_base.shape[0]):
        base = row_base[row]
        x0 = row_x0[row]
        for hit in range(n_hits):
            _uniforms(U1, U2, row_gbase[row] + x0, n_half, t, hit, kk0, kk1, cc3)
            _neighbour_sums(N, phi, w, nn_off, nn_axis, base, n_last)
            if w_nnn != 0.0:
                _nnn_sums(N, T, phi, w_nnn, nnn_off, base, n_last)
            for j in range(n_half):
                Uf[x0 + 2 * j] = U1[j]
            _delta_action(Df, Qf, phi, a, b, r, N, Uf, base, n_last, delta)
            for j in range(n_half):
                D[j] = Df[x0 + 2 * j]
            _decide(abuf, D, U2, E, n_half)
            for j in range(n_half):
                if abuf[j]:
                    phi[base + x0 + 2 * j] = Qf[x0 + 2 * j]
                accepted += abuf[j]
    return accepted
