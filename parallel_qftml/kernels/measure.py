"""Local sums of the action pieces of one block (pure numba; exact superaccumulators).

Per-site terms (docs/conventions.md), p = phi_x, p2 = p * p:
  PHI1: p     PHI2: p2     PHI4: p2 * p2     NN: p phi_{x+e_0} + ... + p phi_{x+e_{d-1}}, left to right
  NNN:  sum over mu < nu of p * phi_{x+mu+nu} and p * phi_{x+mu-nu}, left to right
  ACTION: ((a p2 + b (p2 p2)) + r p) - w_0(x) t_0 - ... - w_{d-1}(x) t_{d-1} [- w_nnn NNN], t_mu = p phi_{x+e_mu}
The terms of each tile of 2**d sites with even global corner (Geometry.tile_rows) are added in a fixed
order (per row: x-pairs, rows in member order), and the tile sums go into exact superaccumulators.
Tiles never straddle blocks, so the result does not depend on the rank layout, and the exact
accumulation costs 2**d times less than per site. Without diagonal couplings the NNN row is not
accumulated (it is exactly 0). The exact additions of the rows are interleaved (independent bins).
"""
import numpy as np
from numba import int64, njit, uint64

from .exactsum import add_bits, normalise, RENORM

PHI1, PHI2, PHI4, NNN, ACTION, NN = range(6)
N_PIECES = 6


def make_buffers(ndim: int, n_last: int):
    return np.empty((N_PIECES, n_last)), np.empty((N_PIECES, n_last // 2))


@njit(cache=True, boundscheck=False, nogil=True)
def local_pieces(phi, w, a, b, r, w_nnn, strides, nnn_fwd, tiles, n_last, acc, R, S):
    """Add this block's pieces to acc[N_PIECES, WIDTH] (normalised on return)."""
    d = strides.shape[0]
    n_obs = N_PIECES
    nh = n_last // 2
    n_nnn = nnn_fwd.shape[0]
    count = 0
    for tile in range(tiles.shape[0]):
        for m in range(tiles.shape[1]):
            base = uint64(tiles[tile, m])
            for x in range(n_last):
                i = base + uint64(x)
                p = phi[i]
                p2 = p * p
                R[PHI1, x] = p
                R[PHI2, x] = p2
                R[PHI4, x] = p2 * p2
                R[ACTION, x] = (a[i] * p2 + b[i] * (p2 * p2)) + r[i] * p
            for mu in range(d):
                st = uint64(strides[mu])
                wm = w[mu]
                for x in range(n_last):
                    i = base + uint64(x)
                    t = phi[i] * phi[i + st]
                    R[NN, x] = t if mu == 0 else R[NN, x] + t
                    R[ACTION, x] = R[ACTION, x] - wm[i] * t
            if n_nnn:
                o = nnn_fwd[0]
                for x in range(n_last):
                    i = base + uint64(x)
                    R[NNN, x] = phi[i] * phi[uint64(int64(i) + o)]
                for k in range(1, n_nnn):
                    o = nnn_fwd[k]
                    for x in range(n_last):
                        i = base + uint64(x)
                        R[NNN, x] = R[NNN, x] + phi[i] * phi[uint64(int64(i) + o)]
                if w_nnn != 0.0:
                    for x in range(n_last):
                        R[ACTION, x] = R[ACTION, x] - w_nnn * R[NNN, x]
            else:
                for x in range(n_last):
                    R[NNN, x] = 0.0
            for o in range(n_obs):
                if m == 0:
                    for j in range(nh):
                        S[o, j] = R[o, 2 * j] + R[o, 2 * j + 1]
                else:
                    for j in range(nh):
                        S[o, j] = S[o, j] + (R[o, 2 * j] + R[o, 2 * j + 1])
        Sb = S.view(np.int64)       # rows interleaved: independent chains of bin updates
        for j in range(nh):
            add_bits(acc, PHI1, Sb[PHI1, j])
            add_bits(acc, PHI2, Sb[PHI2, j])
            add_bits(acc, PHI4, Sb[PHI4, j])
            add_bits(acc, ACTION, Sb[ACTION, j])
            add_bits(acc, NN, Sb[NN, j])
            if n_nnn:
                add_bits(acc, NNN, Sb[NNN, j])
        count += nh
        if count > RENORM:
            normalise(acc)
            count = 0
    normalise(acc)

