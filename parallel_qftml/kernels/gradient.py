"""Per-site derivatives of the MRF action with respect to its couplings (pure numba, no MPI, no I/O).

O_k(x) = dS/dtheta_k(x) for S of eq. 5 with the linear term (docs/conventions.md):
    k = mu (0..d-1):  dS/dw_mu(x) = -phi_x phi_{x+mu}
    k = d:            dS/da_x     =  phi_x^2
    k = d + 1:        dS/db_x     =  phi_x^4
    k = d + 2:        dS/dr_x     =  phi_x
Sums over samples go into compact arrays so[K, V_local] (V_local in C order of the block), in the
order the samples arrive; with a scalar c per sample, sdo += c * O as well (the covariance of the
KL(p||q) gradient, eq. 12). Every site's sums depend only on its own samples, so they are the same on
any rank layout.
"""
from numba import njit, uint64

N_EXTRA = 3      # a, b, r after the d link couplings


def n_features(ndim: int) -> int:
    return ndim + N_EXTRA


@njit(cache=True, boundscheck=False, nogil=True)
def accumulate(phi, strides, row_base, n_last, c, with_c, so, sdo):
    """so[k, j] += O_k(x_j); if with_c also sdo[k, j] += c * O_k(x_j) (x_j: interior site j)."""
    d = strides.shape[0]
    for row in range(row_base.shape[0]):
        b0 = uint64(row_base[row])
        j0 = row * n_last
        for mu in range(d):
            st = uint64(strides[mu])
            for x in range(n_last):
                i = b0 + uint64(x)
                o = -(phi[i] * phi[i + st])
                so[mu, j0 + x] += o
                if with_c:
                    sdo[mu, j0 + x] += c * o
        for x in range(n_last):
            i = b0 + uint64(x)
            p = phi[i]
            p2 = p * p
            p4 = p2 * p2
            j = j0 + x
            so[d, j] += p2
            so[d + 1, j] += p4
            so[d + 2, j] += p
            if with_c:
                sdo[d, j] += c * p2
                sdo[d + 1, j] += c * p4
                sdo[d + 2, j] += c * p
