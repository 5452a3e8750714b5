"""Checkerboard Metropolis update of one colour of a local block: a pure numba function.

Arrays are the flattened padded block (lattice/geometry.py): phi[P], w[d, P] (w[mu, x] couples x and
x + e_mu), a[P], b[P], r[P]; ghosts of phi and w must be current. Per site (operation order is part of
the spec, ../shared/yardstick/README.md):

    u1, u2 = u53(o0, o1), u53(o2, o3)  with o = Philox((i, t, hit | hi(i) << 8, c3), key)
    q  = p + delta * (2*u1 - 1)       (random walk; with prop_width > 0 instead q = prop_lo + prop_width * u1,
                                       the independence proposal of appendix B: uniform between the data
                                       minimum prop_lo and maximum prop_lo + prop_width)
    n  = w[last][x] phi[x+e_last] + w[last][x-e_last] phi[x-e_last] + (same for axis d-2) [+ P] [+ w_nnn T]
         P = sum over axes d-3 ... 0 of the same pair terms, left to right (only for d >= 3)
         T = sum of the diagonal neighbours in Geometry.nnn_offsets order (only if w_nnn != 0)
    dS = (q - p) * ((r - n) + (q + p) * (a + b * (q*q + p*p)))
    accept if dS <= 0 or u2 < exp(-dS)

IEEE binary64, left to right, no FMA, no fastmath. The kernel is staged per row like the yardstick's
c-vexp: (A) Philox for the row's sites of this colour (one loop, Philox inlined: vectorises), (B) q and
dS at those sites, (C) the decision with a branch-free exp approximation that brackets u2; libm's exp
decides the rare ambiguous cases, so the decisions, hence the bits, equal those of a plain per-site
loop. Indices are uint64 so numba emits no negative-index wraparound branch, and the row is handled in
one function without array slices (each slice costs atomic reference-count updates); loop counters
stay signed (uint64 counters were 10 % slower), indices are converted where used. Measured
alternatives (docs/performance.md): computing (B) for the whole row to get contiguous access, or
Philox with the rounds outermost as in the C code, were both slower here.
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
    return np.empty((4, n_last // 2)), np.empty(n_last // 2, dtype=np.int64)


@njit(cache=True, boundscheck=False, nogil=True)
def update_schedule(phi, w, a, b, r, w_nnn, strides, nnn_off, rows, schedule, n_last,
                    sweep, k0, k1, c3, delta, n_hits, fbuf, abuf, gdst, gsrc, prop_lo=0.0, prop_width=0.0):
    """Run the update steps of `schedule` in order; returns the number of accepted updates.

    rows[k, c, i] (k = base, gbase, x0) are Geometry.rows(c) stacked over the colours c. A step
    (c, lo, hi, slab) updates the sites of colour c in rows lo..hi-1; if slab >= 0 it then refills the
    ghosts of that axis-0 slab along the other axes by periodic copy (gdst/gsrc from
    Geometry.slab_ghost_pairs, shifted by slab * strides[0]), which the pipelined sweep needs."""
    U1, U2, Q, D = fbuf[0], fbuf[1], fbuf[2], fbuf[3]
    E = U1                   # (C) reuses U1's storage: u1 is consumed by then
    Ebits = E.view(np.int64)
    A = abuf
    t = uint32(sweep)
    kk0 = uint32(k0)
    kk1 = uint32(k1)
    cc3 = uint32(c3)
    d = strides.shape[0]
    wl1 = w[d - 1]
    wl0 = w[d - 2] if d > 1 else w[d - 1]
    s1 = uint64(1)
    s0 = uint64(strides[d - 2]) if d > 1 else uint64(0)
    nh = n_last // 2
    has_nnn = w_nnn != 0.0
    accepted = 0
    for step in range(schedule.shape[0]):
        colour, row_lo, row_hi, slab = schedule[step, 0], schedule[step, 1], schedule[step, 2], schedule[step, 3]
        for row in range(row_lo, row_hi):
            p0 = uint64(rows[0, colour, row] + rows[2, colour, row])
            gb = rows[1, colour, row] + rows[2, colour, row]
            for hit in range(n_hits):
                # (A) u1, u2 for this colour's sites of the row
                c2 = uint32(hit)
                for j in range(nh):
                    gi = gb + 2 * j
                    o0, o1, o2, o3 = philox(uint32(gi & 0xFFFFFFFF), t, c2 | uint32((gi >> 32) << 8), cc3, kk0, kk1)
                    U1[j] = float(int64(((uint64(o0) << uint64(32)) | uint64(o1)) >> uint64(11))) * TWO_M53
                    U2[j] = float(int64(((uint64(o2) << uint64(32)) | uint64(o3)) >> uint64(11))) * TWO_M53
                if prop_width > 0.0:
                    for j in range(nh):
                        Q[j] = prop_lo + prop_width * U1[j]
                else:
                    for j in range(nh):
                        Q[j] = phi[p0 + uint64(2 * j)] + delta * (2.0 * U1[j] - 1.0)
                # (B) dS at this colour's sites
                if d == 2 and not has_nnn:      # the hot case
                    for j in range(nh):
                        x = p0 + uint64(2 * j)
                        nsum = (wl1[x] * phi[x + s1] + wl1[x - s1] * phi[x - s1] + wl0[x] * phi[x + s0]
                                + wl0[x - s0] * phi[x - s0])
                        p = phi[x]
                        q = Q[j]
                        D[j] = (q - p) * ((r[x] - nsum) + (q + p) * (a[x] + b[x] * (q * q + p * p)))
                else:
                    for j in range(nh):
                        x = p0 + uint64(2 * j)
                        nsum = wl1[x] * phi[x + s1] + wl1[x - s1] * phi[x - s1]
                        if d > 1:
                            nsum = nsum + wl0[x] * phi[x + s0] + wl0[x - s0] * phi[x - s0]
                        if d > 2:
                            s = uint64(strides[d - 3])
                            wk = w[d - 3]
                            pk = wk[x] * phi[x + s] + wk[x - s] * phi[x - s]
                            for k in range(d - 4, -1, -1):
                                s = uint64(strides[k])
                                wk = w[k]
                                pk = pk + wk[x] * phi[x + s]
                                pk = pk + wk[x - s] * phi[x - s]
                            nsum = nsum + pk
                        if has_nnn:
                            tk = phi[uint64(int64(x) + nnn_off[0])]
                            for k in range(1, nnn_off.shape[0]):
                                tk = tk + phi[uint64(int64(x) + nnn_off[k])]
                            nsum = nsum + w_nnn * tk
                        p = phi[x]
                        q = Q[j]
                        D[j] = (q - p) * ((r[x] - nsum) + (q + p) * (a[x] + b[x] * (q * q + p * p)))
                # (C) decision: bracket u2 against exp_approx(-dS) (relative error < 3e-10, c-vexp)
                namb = 0
                for j in range(nh):
                    dd = D[j]
                    xx = -min(max(dd, 0.0), 700.0)
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
                    sure = (dd <= 0.0) | ((u < lo) & (dd <= 700.0))
                    amb = (dd > 0.0) & (((u >= lo) & (u <= hi)) | (dd > 700.0))
                    A[j] = int64(sure) | (int64(amb) << int64(1))
                    namb |= int64(amb)
                if namb:       # rare: decide exactly with libm's exp
                    for j in range(nh):
                        if A[j] & 2:
                            A[j] = int64(U2[j] < np.exp(-D[j]))
                for j in range(nh):
                    x = p0 + uint64(2 * j)
                    phi[x] = Q[j] if A[j] else phi[x]
                    accepted += A[j]
        if slab >= 0:
            off = slab * strides[0]
            for i in range(gdst.shape[0]):
                phi[gdst[i] + off] = phi[gsrc[i] + off]
    return accepted

