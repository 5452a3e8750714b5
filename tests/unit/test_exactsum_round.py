"""round_row / round_rows (numba) against to_float (Python big ints), bit for bit.

Every accumulator here is reached through add_array (which normalises), or as the normalised integer
sum of such rows (what the MPI reduction produces).
"""
import math

import numpy as np
import pytest

from parallel_qftml.kernels.exactsum import (add_array, new_accumulators, normalise, round_row,
                                             round_rows, to_float)

MAX = np.finfo(np.float64).max
TINY = 5e-324                       # 2**-1074


def accumulate(rows):
    """Normalised accumulators, one row per sequence of doubles."""
    acc = new_accumulators(len(rows))
    one = new_accumulators(1)
    for o, terms in enumerate(rows):
        one[:] = 0
        add_array(one, 0, np.ascontiguousarray(terms, dtype=np.float64).ravel().view(np.int64))
        acc[o] = one[0]
    return acc


def same(a, b):
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return np.float64(a).view(np.int64) == np.float64(b).view(np.int64)


def check(rows):
    """round_row and round_rows equal to_float on every row; returns the values."""
    acc = accumulate(rows)
    before = acc.copy()
    out = np.full(acc.shape[0], -7.0)
    round_rows(acc, out)
    ref = [to_float(acc[o]) for o in range(acc.shape[0])]
    for o in range(acc.shape[0]):
        single = round_row(acc, o)
        assert same(single, ref[o]), (o, rows[o], single, ref[o])
        assert same(out[o], ref[o]), (o, rows[o], out[o], ref[o])
    assert np.array_equal(acc, before)          # acc is not modified
    return ref


def rounded(terms):
    acc = accumulate([terms])
    x = round_row(acc, 0)
    assert same(x, to_float(acc[0]))
    return x


def log_uniform(rng, n, lo=-1074, hi=1023):
    """Doubles of random sign with mantissa in [1, 2) and exponent uniform in [lo, hi]."""
    x = np.ldexp(rng.uniform(1.0, 2.0, n), rng.integers(lo, hi + 1, n))
    return np.where(rng.random(n) < 0.5, -x, x)


def random_finite_bits(rng, n):
    """Uniformly random bit patterns of finite doubles (subnormals and zeros included)."""
    b = rng.integers(np.iinfo(np.int64).min, np.iinfo(np.int64).max, n, dtype=np.int64, endpoint=True)
    e = (b >> 52) & 0x7FF
    b = np.where(e == 0x7FF, b & ~(np.int64(1) << 62), b)   # clear one exponent bit: finite
    return b.view(np.float64)


def test_random_mixed_sums():
    rng = np.random.default_rng(1234)
    rows = []
    for _ in range(1500):                       # whole exponent range: sticky-heavy, some overflow
        rows.append(log_uniform(rng, rng.integers(1, 30)))
    for _ in range(1500):                       # narrow exponent windows: rounding interacts
        c = int(rng.integers(-1074, 1024))
        rows.append(log_uniform(rng, rng.integers(1, 30), c, min(1023, c + int(rng.integers(0, 80)))))
    for _ in range(500):
        rows.append(random_finite_bits(rng, rng.integers(1, 20)))
    for _ in range(300):                        # ordinary-looking data
        rows.append(rng.normal(size=rng.integers(1, 200)) * 10.0 ** rng.integers(-300, 300))
    ref = check(rows)
    assert 3000 < np.isfinite(ref).sum() < len(ref)                # overflow to inf occurs too
    assert sum(1 for r in ref if r < 0) > 1000 and sum(1 for r in ref if r > 0) > 1000


def test_heavy_cancellation():
    rng = np.random.default_rng(1234)
    rows, tinies = [], []
    for _ in range(1000):
        x = log_uniform(rng, rng.integers(1, 20))
        tiny = log_uniform(rng, rng.integers(1, 4), -1074, int(rng.integers(-1074, 1023)))
        rows.append(rng.permutation(np.concatenate([x, -x[::-1], tiny])))
        tinies.append(tiny)
    ref = check(rows)
    alone = check(tinies)                                    # x and -x cancel exactly
    assert all(same(r, t) for r, t in zip(ref, alone))


def test_ties_to_even_fixed():
    # 2**53 + 1 is halfway between 2**53 and 2**53 + 2: even -> 2**53 (round-half-up gives 2**53 + 2)
    assert rounded([2.0**53, 1.0]) == 2.0**53
    assert rounded([-2.0**53, -1.0]) == -2.0**53
    # 2**53 + 3 is halfway between 2**53 + 2 (odd mantissa) and 2**53 + 4: -> 2**53 + 4
    assert rounded([2.0**53, 2.0, 1.0]) == 2.0**53 + 4
    assert rounded([-2.0**53, -2.0, -1.0]) == -(2.0**53 + 4)
    # 2**54 + 2 (+ 4): ulp 4 there
    assert rounded([2.0**54, 2.0]) == 2.0**54
    assert rounded([2.0**54, 4.0, 2.0]) == 2.0**54 + 8
    # 1 + 2**-53 is halfway between 1 and 1 + 2**-52: -> 1 (round-half-up gives 1 + 2**-52)
    assert rounded([1.0, 2.0**-53]) == 1.0
    assert rounded([-1.0, -2.0**-53]) == -1.0


def test_sticky_bits_fixed():
    # just above / below a halfway case: the deciding bit is far below the top 64 bits
    assert rounded([2.0**53, 1.0, TINY]) == 2.0**53 + 2          # ignoring sticky gives 2**53
    assert rounded([-2.0**53, -1.0, -TINY]) == -(2.0**53 + 2)
    assert rounded([2.0**53, 1.0, -TINY]) == 2.0**53
    assert rounded([2.0**53, 2.0, 1.0, -TINY]) == 2.0**53 + 2    # ignoring sticky gives 2**53 + 4
    assert rounded([1.0, 2.0**-53, 2.0**-1000]) == 1.0 + 2.0**-52
    # sticky within the third limb of the window (bits just below the 64 kept bits)
    assert rounded([1.0, 2.0**-53, 2.0**-70]) == 1.0 + 2.0**-52


def test_random_ties_and_near_ties():
    rng = np.random.default_rng(1234)
    rows, expect = [], []
    for _ in range(1500):
        e = int(rng.integers(-1020, 1020))
        a = float(np.ldexp(rng.uniform(1.0, 2.0), e))
        if a >= MAX / 2:
            continue
        half = float(np.spacing(a)) / 2                          # exact: a + half is a halfway case
        m = int(np.float64(a).view(np.int64) & 1)                # odd mantissa rounds up
        tie = a + float(np.spacing(a)) if m else a
        sgn = 1.0 if rng.random() < 0.5 else -1.0
        below = TINY if rng.random() < 0.5 else float(np.ldexp(1.0, int(rng.integers(-1074, max(e - 60, -1073)))))
        rows += [[sgn * a, sgn * half], [sgn * a, sgn * half, sgn * below],
                 [sgn * a, sgn * half, -sgn * below]]
        expect += [sgn * tie, sgn * (a + 2 * half), sgn * a]
    ref = check(rows)
    assert all(same(r, x) for r, x in zip(ref, expect))
    assert len({int(np.float64(abs(r[0])).view(np.int64) & 1) for r in rows}) == 2   # even and odd


def test_carry_to_next_power_of_two():
    assert rounded([2.0**53 - 1, 0.5]) == 2.0**53                 # halfway, odd -> up, carry
    assert rounded([-(2.0**53 - 1), -0.5]) == -2.0**53
    assert rounded([2.0**53 - 1, 0.25]) == 2.0**53 - 1
    assert rounded([1.0, -2.0**-54]) == 1.0                       # 1 - 2**-54: tie, even is 1
    assert rounded([2.0, -2.0**-53, 2.0**-60]) == 2.0             # above halfway below 2
    rng = np.random.default_rng(1234)
    rows = []
    for _ in range(500):
        top = float(np.ldexp(2.0**53 - 1, int(rng.integers(-1072, 970))))   # all-ones mantissa
        u = float(np.spacing(top))
        sgn = 1.0 if rng.random() < 0.5 else -1.0
        rows += [[sgn * top, sgn * u / 2], [sgn * top, sgn * 0.75 * u], [sgn * top, sgn * u / 4]]
    ref = check(rows)
    for i in range(0, len(rows), 3):
        top = abs(rows[i][0])
        assert abs(ref[i]) == abs(ref[i + 1]) == math.ldexp(1.0, math.frexp(top)[1])   # carried up
        assert abs(ref[i + 2]) == top


def test_subnormals():
    rng = np.random.default_rng(1234)
    rows = []
    for _ in range(800):
        m = rng.integers(0, 1 << 52, rng.integers(1, 40), dtype=np.int64)      # subnormal bit patterns
        x = m.view(np.float64)
        rows.append(np.where(rng.random(x.size) < 0.5, -x, x))
    for _ in range(200):                                                      # crossing 2**-1022
        m = rng.integers(1 << 51, 1 << 52, rng.integers(2, 6), dtype=np.int64)
        rows.append(m.view(np.float64))
    ref = check(rows)
    assert any(abs(r) >= 2.0**-1022 for r in ref) and any(0 < abs(r) < 2.0**-1022 for r in ref)
    assert rounded([TINY]) == TINY and rounded([-TINY, -TINY]) == -2 * TINY
    assert rounded([2.0**-1022, -TINY]) == 2.0**-1022 - TINY


def test_zero():
    for terms in ([], [0.0], [-0.0], [-0.0, -0.0], [1.0, -1.0], [MAX, -MAX], [TINY, -TINY],
                  [1e300, 1e-300, -1e300, -1e-300]):
        x = rounded(terms)
        assert x == 0.0 and math.copysign(1.0, x) == 1.0          # +0.0, like to_float


def test_overflow_and_near_max():
    assert rounded([1.7e308, 1.7e308]) == math.inf
    assert rounded([-1.7e308, -1.7e308]) == -math.inf
    assert rounded([1.7e308] * 1000) == math.inf
    assert rounded([-1.7e308] * 1000) == -math.inf
    assert rounded([MAX] * 20000) == math.inf                    # reaches the top (carry) bin
    assert rounded([-MAX] * 20000) == -math.inf
    assert rounded([2.0**1023] * 2**15) == math.inf              # exactly 2**2112: only the top bin set
    assert rounded([-2.0**1023] * 2**15) == -math.inf
    half = 2.0**970                                              # half an ulp of MAX
    assert rounded([MAX, half]) == math.inf                      # tie, odd mantissa -> 2**1024
    assert rounded([-MAX, -half]) == -math.inf
    assert rounded([MAX, half, -TINY]) == MAX                    # just below the tie
    assert rounded([MAX, half / 2]) == MAX
    assert rounded([MAX, MAX, -MAX]) == MAX                      # intermediate beyond range, exact back
    assert rounded([-MAX, -MAX, MAX]) == -MAX
    assert rounded([MAX, 1.0]) == MAX
    rng = np.random.default_rng(1234)
    rows = []
    for _ in range(500):
        k = int(rng.integers(1, 6))
        x = MAX * rng.uniform(0.5, 1.0, k) * np.where(rng.random(k) < 0.5, -1.0, 1.0)
        rows.append(np.concatenate([x, log_uniform(rng, 3, 900, 1000)]))
    ref = check(rows)
    assert any(np.isinf(ref)) and any(0.5 * MAX < abs(r) < math.inf for r in ref)


def test_nonfinite_terms():
    for terms in ([math.nan], [1.0, math.inf], [-math.inf], [math.inf, -math.inf], [MAX, MAX, math.nan],
                  [-0.0, -math.nan]):
        assert math.isnan(rounded(terms))


def test_reduced_rows():
    """Normalised integer sums of several accumulators (what the MPI reduction yields)."""
    rng = np.random.default_rng(1234)
    parts = [accumulate([log_uniform(rng, int(rng.integers(1, 10)), -60, 60) for _ in range(300)])
             for _ in range(4)]
    acc = sum(parts)
    normalise(acc)
    out = np.empty(acc.shape[0])
    round_rows(acc, out)
    for o in range(acc.shape[0]):
        assert same(out[o], to_float(acc[o])) and same(round_row(acc, o), out[o])


@pytest.mark.parametrize("n", [0, 1])
def test_round_rows_shapes(n):
    acc = accumulate([[1.5]] * n)
    out = np.empty(n)
    round_rows(acc, out)
    assert list(out) == [1.5] * n
