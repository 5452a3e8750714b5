"""Counter-based random numbers: Philox4x32-10 (Salmon et al. 2011, Random123).

Every random number is a pure function of (seed, replica, purpose, sweep, global site, draw), so a
run gives the same numbers on any rank layout (docs/conventions.md, "Random numbers").

Key   (k0, k1) = (seed & 0xFFFFFFFF, seed >> 32)
Counter (c0, c1, c2, c3):
    c0 = global site index i mod 2**32 (row-major over the global shape)
    c1 = sweep t (updates) or 0 (initialisation)
    c2 = draw | (i >> 32) << 8      draw = Metropolis hit (updates) or block 0..3 (initialisation)
    c3 = purpose | replica << 2     purpose UPDATE = 0, INIT = 1, COUPLING_INIT = 2
Replica 0 reproduces ../shared/yardstick/README.md bit for bit: updates (i, t, 0, 0), init (i, 0, c2, 1).
Two 32-bit words give one double: u53(hi, lo) = ((hi << 32 | lo) >> 11) * 2**-53, exact, in [0, 1).
"""
import numpy as np
from numba import njit, uint32, uint64

UPDATE = 0
INIT = 1
COUPLING_INIT = 2    # initial couplings of a learning run (draw = coupling index, replica 0)
M0 = np.uint64(0xD2511F53)
M1 = np.uint64(0xCD9E8D57)
W0 = np.uint32(0x9E3779B9)
W1 = np.uint32(0xBB67AE85)
TWO_M53 = 2.0 ** -53


def key_of(seed: int):
    """Philox key (k0, k1) of a 64-bit seed."""
    seed = int(seed)
    if not 0 <= seed < 2 ** 64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return np.uint32(seed & 0xFFFFFFFF), np.uint32(seed >> 32)


def c3_of(purpose: int, replica: int):
    return np.uint32((purpose | (replica << 2)) & 0xFFFFFFFF)


@njit(cache=True, inline="always")
def philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 of counter (c0..c3) with key (k0, k1); returns four uint32 words."""
    c0 = uint32(c0)
    c1 = uint32(c1)
    c2 = uint32(c2)
    c3 = uint32(c3)
    k0 = uint32(k0)
    k1 = uint32(k1)
    for r in range(10):
        if r:
            k0 = uint32(k0 + W0)
            k1 = uint32(k1 + W1)
        p0 = M0 * uint64(c0)
        p1 = M1 * uint64(c2)
        n0 = uint32(p1 >> uint64(32)) ^ c1 ^ k0
        n2 = uint32(p0 >> uint64(32)) ^ c3 ^ k1
        c0 = n0
        c1 = uint32(p1 & uint64(0xFFFFFFFF))
        c2 = n2
        c3 = uint32(p0 & uint64(0xFFFFFFFF))
    return c0, c1, c2, c3


@njit(cache=True, inline="always")
def u53(hi, lo):
    """Two 32-bit words -> double in [0, 1) with 53 random bits (exact)."""
    return float((uint64(hi) << uint64(32) | uint64(lo)) >> uint64(11)) * TWO_M53


@njit(cache=True, boundscheck=False)
def fill_uniform(dst, row_base, row_gbase, n_last, col, k0, k1, c3, base, spread):
    """dst[row_base + x] = base + spread * (2 v_col - 1) for every site of the given rows (flat arrays).

    v_col is initialisation uniform number `col` of the site: block col // 2 uses counter
    (i, 0, col // 2 | hi(i) << 8, c3), v[2b] = u53(o0, o1), v[2b + 1] = u53(o2, o3).
    """
    blk = uint32(col // 2)
    for row in range(row_base.shape[0]):
        b0 = row_base[row]
        g0 = row_gbase[row]
        for x in range(n_last):
            i = g0 + x
            o0, o1, o2, o3 = philox(uint32(i & 0xFFFFFFFF), 0, blk | uint32((i >> 32) << 8), c3, k0, k1)
            v = u53(o0, o1) if col % 2 == 0 else u53(o2, o3)
            dst[b0 + x] = base + spread * (2.0 * v - 1.0)


@njit(cache=True, boundscheck=False)
def fill_normal(dst, row_base, row_gbase, n_last, blk, k0, k1, c3, mean, std):
    """dst[row_base + x] = mean + std * z with z a standard normal keyed on the global site: the
    initialisation block `blk` of the site (counter (i, 0, blk | hi(i) << 8, c3)) gives u1, u2 and
    z = sqrt(-2 ln(1 - u1)) cos(2 pi u2) (Box-Muller)."""
    b = uint32(blk)
    for row in range(row_base.shape[0]):
        b0 = row_base[row]
        g0 = row_gbase[row]
        for x in range(n_last):
            i = g0 + x
            o0, o1, o2, o3 = philox(uint32(i & 0xFFFFFFFF), 0, b | uint32((i >> 32) << 8), c3, k0, k1)
            z = np.sqrt(-2.0 * np.log(1.0 - u53(o0, o1))) * np.cos(2.0 * np.pi * u53(o2, o3))
            dst[b0 + x] = mean + std * z
