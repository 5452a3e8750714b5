"""Layout-independent checksum of a block of a global float64 array (pure numba).

XOR over elements of mix64(bits(x) + 0x9E3779B97F4A7C15 * i), i the element's index in the global
array, mix64 the splitmix64 finaliser: the yardstick's checksum. XOR is order-independent, so blocks
written or read on any number of ranks combine to the same value.
"""
import numpy as np
from numba import njit, uint64

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
M1 = np.uint64(0xBF58476D1CE4E5B9)
M2 = np.uint64(0x94D049BB133111EB)


@njit(cache=True, boundscheck=False, nogil=True)
def xor_mix(rows, shape, offset, gstrides):
    """rows = the block reshaped to (-1, shape[-1]); shape/offset of the block; gstrides of the global
    array (elements)."""
    d = shape.shape[0]
    n_last = shape[d - 1]
    bits = rows.view(np.uint64)
    out = uint64(0)
    idx = np.zeros(d, dtype=np.int64)          # block coordinates of the current row (last axis 0)
    for row in range(bits.shape[0]):
        g = 0
        for ax in range(d):
            g += (idx[ax] + offset[ax]) * gstrides[ax]
        for x in range(n_last):
            z = bits[row, x] + GOLDEN * uint64(g + x)
            z = (z ^ (z >> uint64(30))) * M1
            z = (z ^ (z >> uint64(27))) * M2
            out ^= z ^ (z >> uint64(31))
        ax = d - 2                             # next row: odometer over the leading axes
        while ax >= 0:
            idx[ax] += 1
            if idx[ax] < shape[ax]:
                break
            idx[ax] = 0
            ax -= 1
    return out
