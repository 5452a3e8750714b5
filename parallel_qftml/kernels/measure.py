"""Local sums of the action pieces of one block (pure numba; exact superaccumulators).

Pieces (docs/conventions.md), each an exact sum of per-site terms:
  PHI1 = sum_x phi_x          PHI2 = sum_x phi_x**2        PHI4 = sum_x (phi_x**2)**2
  NN   = sum_x sum_mu phi_x phi_{x+mu}
  NNN  = sum_x sum_{mu<nu} (phi_x phi_{x+mu+nu} + phi_x phi_{x+mu-nu})
  ACTION = sum of the terms a_x phi_x**2, b_x phi_x**4, r_x phi_x, -w_mu(x) (phi_x phi_{x+mu}),
           -w_nnn (phi_x phi_y) over the diagonal links
"""
import numpy as np
from numba import njit

from .exactsum import add_bits, normalise, RENORM

PHI1, PHI2, PHI4, NN, NNN, ACTION = range(6)
N_PIECES = 6


@njit(cache=True, boundscheck=False)
def _add_row(acc, o, T, Tb, n):
    for j in range(n):
        add_bits(acc, o, Tb[j])


@njit(cache=True, boundscheck=False)
def local_pieces(phi, w, a, b, r, w_nnn, strides, nnn_fwd, row_base, n_last, acc, tbuf):
    """Add this block's pieces to acc[N_PIECES, WIDTH]; rows: Geometry.rows(...) bases of ALL sites."""
    T = tbuf[0]
    P2 = tbuf[1]
    Tb = T.view(np.int64)
    count = 0
    for row in range(row_base.shape[0]):
        x0 = row_base[row]
        for j in range(n_last):
            T[j] = phi[x0 + j]
        _add_row(acc, PHI1, T, Tb, n_last)
        for j in range(n_last):
            P2[j] = phi[x0 + j] * phi[x0 + j]
            T[j] = P2[j]
        _add_row(acc, PHI2, T, Tb, n_last)
        for j in range(n_last):
            T[j] = a[x0 + j] * P2[j]
        _add_row(acc, ACTION, T, Tb, n_last)
        for j in range(n_last):
            T[j] = P2[j] * P2[j]
        _add_row(acc, PHI4, T, Tb, n_last)
        for j in range(n_last):
            T[j] = b[x0 + j] * (P2[j] * P2[j])
        _add_row(acc, ACTION, T, Tb, n_last)
        for j in range(n_last):
            T[j] = r[x0 + j] * phi[x0 + j]
        _add_row(acc, ACTION, T, Tb, n_last)
        for k in range(strides.shape[0]):
            s = strides[k]
            wl = w[k]
            for j in range(n_last):
                T[j] = phi[x0 + j] * phi[x0 + j + s]
            _add_row(acc, NN, T, Tb, n_last)
            for j in range(n_last):
                T[j] = -(wl[x0 + j] * (phi[x0 + j] * phi[x0 + j + s]))
            _add_row(acc, ACTION, T, Tb, n_last)
        for k in range(nnn_fwd.shape[0]):
            s = nnn_fwd[k]
            for j in range(n_last):
                T[j] = phi[x0 + j] * phi[x0 + j + s]
            _add_row(acc, NNN, T, Tb, n_last)
            if w_nnn != 0.0:
                for j in range(n_last):
                    T[j] = -(w_nnn * (phi[x0 + j] * phi[x0 + j + s]))
                _add_row(acc, ACTION, T, Tb, n_last)
        count += n_last * (2 + strides.shape[0] + nnn_fwd.shape[0])
        if count > RENORM:
            normalise(acc)
            count = 0
    normalise(acc)
