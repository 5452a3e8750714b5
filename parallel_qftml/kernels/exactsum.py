"""Exact, order-independent summation of doubles (a 'superaccumulator', Kulisch-style).

A double is m * 2**(p - 1074) with a 53-bit integer m and bit position p in [0, 2046]; m << (p mod 32)
is added, as three 32-bit limbs, to int64 bins p // 32, p // 32 + 1, p // 32 + 2. Integer addition is
associative, so a sum over any rank layout, in any order, gives the same bins; the bins of all ranks are
added with an integer MPI reduction and rounded once (to nearest, ties to even) at the end. This is what
makes the observables bit-identical on 1, 2 and 4 ranks. Each add puts < 2**33 into a bin; bins are
normalised (carries propagated) before 2**29 adds.
"""
import math

import numpy as np
from numba import njit, int64, uint64

N_BINS = 67          # value bins (p // 32 + 2 <= 65, one spare for carries)
NONFINITE = N_BINS   # counter of NaN/inf terms
WIDTH = N_BINS + 1
RENORM = 1 << 29
MANT = (1 << 52) - 1
LOW32 = 0xFFFFFFFF


def new_accumulators(n: int) -> np.ndarray:
    return np.zeros((n, WIDTH), dtype=np.int64)


@njit(cache=True, inline="always")
def add_bits(acc, o, bits):
    """Add the double whose IEEE bits are `bits` (int64) to accumulator row o."""
    e = (bits >> int64(52)) & int64(0x7FF)
    if e == int64(0x7FF):
        acc[o, NONFINITE] += 1
        return
    m = bits & int64(MANT)
    p = int64(0)
    if e != 0:
        m |= int64(1) << int64(52)
        p = e - int64(1)
    k = p >> int64(5)
    s = p & int64(31)
    lo = (m & int64(LOW32)) << s
    hi = (m >> int64(32)) << s
    v0 = lo & int64(LOW32)
    v1 = (lo >> int64(32)) + (hi & int64(LOW32))
    v2 = hi >> int64(32)
    neg = bits >> int64(63)          # 0 or -1: negate without a branch (the signs of the terms are
    acc[o, k] += (v0 ^ neg) - neg    # random; a branch on them mispredicts: 5.5 -> 2.9 ns per add)
    acc[o, k + 1] += (v1 ^ neg) - neg
    acc[o, k + 2] += (v2 ^ neg) - neg


@njit(cache=True)
def normalise(acc):
    """Propagate carries so that bins 0..N_BINS-2 lie in [0, 2**32); the top bin keeps the sign."""
    for o in range(acc.shape[0]):
        for k in range(N_BINS - 1):
            c = acc[o, k] >> int64(32)
            acc[o, k] -= c << int64(32)
            acc[o, k + 1] += c


def to_float(row: np.ndarray) -> float:
    """Correctly rounded value of one normalised accumulator row."""
    if row[NONFINITE]:
        return float("nan")
    total = 0
    for k in range(N_BINS - 1, -1, -1):
        total = (total << 32) + int(row[k])
    try:
        return total / (1 << 1074)   # int / int true division is correctly rounded
    except OverflowError:            # a sum of finite doubles beyond the double range
        return float("inf") if total > 0 else float("-inf")



@njit(cache=True, boundscheck=False)
def add_array(acc, o, bits):
    """Add the doubles whose IEEE bits are the int64 array `bits` (``x.view(np.int64)`` of a
    contiguous 1-d float64 array) to accumulator row o; normalised on return."""
    count = 0
    for i in range(bits.shape[0]):
        add_bits(acc, o, bits[i])
        count += 1
        if count > RENORM:
            normalise(acc)
            count = 0
    normalise(acc)


@njit(cache=True, boundscheck=False)
def round_row(acc, o):
    """Correctly rounded value of normalised accumulator row o, bit for bit equal to to_float(acc[o]).

    The row holds the integer N = sum_k acc[o, k] * 2**(32 k) (bins 0..N_BINS-2 in [0, 2**32), the top
    bin signed) and the value N * 2**-1074. NaN if the row saw a NaN/inf term; otherwise |N| is formed in
    a local copy (two's-complement negation across the limbs when the top bin is negative), its top 64
    bits are rounded to 53 bits, to nearest with ties to even (all bits below them are a sticky flag),
    and the sign is put back. Results beyond the double range (including rounding up to 2**1024) give
    +-inf, as to_float does; |N| < 2**53 (subnormals) is exact. acc is not modified.
    """
    if acc[o, NONFINITE] != 0:
        return np.nan
    top = N_BINS - 1
    neg = acc[o, top] < 0
    s = int64(-1) if neg else int64(1)
    mag = np.empty(N_BINS, dtype=np.int64)   # |N| in 32-bit limbs (s * row, carries propagated)
    c = int64(0)
    for k in range(top):
        t = c + s * acc[o, k]
        mag[k] = t & int64(LOW32)
        c = t >> int64(32)
    mag[top] = c + s * acc[o, top]
    sign = -1.0 if neg else 1.0
    if mag[top] != 0:                        # |N| >= 2**2112 > 2**2098: beyond the double range
        return sign * np.inf
    h = top - 1                              # highest non-zero limb
    while h >= 0 and mag[h] == 0:
        h -= 1
    if h < 0:
        return 0.0
    nb = math.frexp(float(mag[h]))[1]       # bit length of limb h, 1..32 (exact: limb < 2**32)
    a2 = uint64(mag[h])
    a1 = uint64(mag[h - 1]) if h >= 1 else uint64(0)
    a0 = uint64(mag[h - 2]) if h >= 2 else uint64(0)
    sh = uint64(nb)
    # the 64 bits of |N| from its leading one down: |N| = w * 2**(32 h + nb - 64) + (bits below)
    w = (a2 << (uint64(64) - sh)) | (a1 << (uint64(32) - sh)) | (a0 >> sh)
    sticky = (a0 & ((uint64(1) << sh) - uint64(1))) != uint64(0)
    for k in range(h - 2):
        sticky |= mag[k] != 0
    mant = w >> uint64(11)                   # 53 bits
    rem = w & uint64(0x7FF)                  # the 11 bits rounded away; 0x400 is half an ulp
    half = uint64(0x400)
    if rem > half or (rem == half and (sticky or (mant & uint64(1)) != uint64(0))):
        mant += uint64(1)                    # may carry to 2**53: still exact as a double
    # |N| ~ mant * 2**(32 h + nb - 53); ldexp is exact here (no rounding for |N| < 2**53, the
    # subnormal range) and overflows to inf beyond the largest double
    return sign * math.ldexp(float(mant), 32 * h + nb - 53 - 1074)


@njit(cache=True)
def round_rows(acc, out):
    """out[o] = round_row(acc, o) for every row of the normalised accumulators acc."""
    for o in range(acc.shape[0]):
        out[o] = round_row(acc, o)
