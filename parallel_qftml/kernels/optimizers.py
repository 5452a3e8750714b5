"""Elementwise optimiser updates in one pass each (pure numba; formulas in learning/optimizers.py).
Operation order as written, IEEE binary64 without contraction, so every layout gives the same bits."""
import numpy as np
from numba import njit


@njit(cache=True, boundscheck=False)
def sgd(p, g, lr):
    for i in range(p.shape[0]):
        p[i] = p[i] - lr * g[i]


@njit(cache=True, boundscheck=False)
def momentum(p, g, v, mu, lr):
    for i in range(p.shape[0]):
        v[i] = mu * v[i] + g[i]
        p[i] = p[i] - lr * v[i]


@njit(cache=True, boundscheck=False)
def adam(p, g, m, v, b1, b2, c1, c2, eps, lr):
    """c1 = 1 - b1^t, c2 = 1 - b2^t."""
    for i in range(p.shape[0]):
        gi = g[i]
        m[i] = b1 * m[i] + (1.0 - b1) * gi
        v[i] = b2 * v[i] + (1.0 - b2) * (gi * gi)
        p[i] = p[i] - lr * ((m[i] / c1) / (np.sqrt(v[i] / c2) + eps))
