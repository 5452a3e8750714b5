"""Exact single-unit samplers for the units of the phi^4 neural network (pure numba; no MPI, no I/O).

Every sampler turns ONE caller-supplied uniform u in [0, 1) into one sample by inverting the CDF, so the
caller controls the random streams completely and the map u -> x is monotone (docs/phi4nn.md).
Arrays are 2D: (rows, units); the per-unit coefficients a, b have shape (units,), the linear
coefficient c (which depends on the other layer) has shape (rows, units).

* phi^4 unit, density  ∝ exp(-(a x^2 + b x^4 + c x))  with b > 0 (any a, c), or b = 0 and a > 0:
  numerical inversion of the CDF (`sample_phi4`, `phi4_sample1`).
    1. Critical points of f(x) = a x^2 + b x^4 + c x: the roots of f' = 4 b x^3 + 2 a x + c, each found by
       safeguarded Newton on an interval where f' is monotone (the inflection points ±sqrt(-a/(6b))
       split the line for a < 0). x* = the global minimum; g(y) = f(x* + y) - f(x*) is evaluated in the
       Taylor form y (f'(x*) + y ((a + 6 b x*^2) + y (4 b x* + b y))), exact for a quartic and free of
       cancellation.
    2. The set {g <= T}, T = T_CUT = 46 (the mass outside is < e^-46 ~ 1e-20 of the total) is covered by
       one interval, or by two when both wells of a double well are retained and the barrier between
       them exceeds T (the barrier is then skipped); end points by safeguarded Newton on monotone
       branches of g.
    3. Each interval is cut into n equal panels, width <= PANEL_SIGMA = 1.5 local standard deviations
       1/sqrt(f'') of its minimum, N_MIN = 12 <= n <= N_MAX = 600; the mass of every panel by 8-point
       Gauss-Legendre.
    4. The panel holding u * Z is found by a linear scan of the cumulative masses; inside it,
       ∫_{x_k}^x e^-g = target is solved by Newton's method (the integral by 8-point Gauss-Legendre on
       [x_k, x]) with a bisection safeguard, to |dx| <= 4 eps (|x| + panel width).
  The map u -> x is monotone. Accuracy, against scipy quadrature at epsrel 1e-13 (tests/unit/
  test_phi4nn.py and a random sweep over 1e-6 <= b <= 1e2, |a| <= 50, |c| <= 100): |F(x(u)) - u| <=
  5e-13 for ordinary coefficients (single wells, double wells up to barrier 25), <= 5e-11 in extreme
  cases where |x*| / sigma ~ 1e3-1e5 (the resolution of x itself in double precision); ln Z and the
  moments to ~1e-12 relative. The sampler is thus exact far below any statistical resolution (a CDF
  error of 1e-12 needs ~1e24 samples to be seen). Cost: (n + ~5) * 8 exponentials plus the root
  finding, n = 12-30 for ordinary coefficients: 1.5-3 microseconds per sample on one core.
  `phi4_moments` returns ln Z and <x>, <x^2>, <x^4> with the same panels.
* Gaussian unit (b = 0, a > 0): x = -c/(2a) + ndtri(u) / sqrt(2a) (`sample_gaussian`); ndtri is Acklam's
  rational approximation refined by one Halley step with erfc (relative error ~1e-15).
* Bernoulli unit with values ±1, density ∝ exp(-c x): p(x = +1) = 1/(1 + e^{2c}); x = +1 if u < p else -1
  (`sample_pm1`).

u = 0 is allowed: it is replaced by 2^-54 in the Gaussian sampler (x finite), and gives x = L (at least
~9.6 standard deviations below the mode) for a phi^4 unit.
"""
import math

import numpy as np
from numba import njit

T_CUT = 46.0            # g = f - f_min at the ends of the tabulated interval
PANEL_SIGMA = 1.5       # panel width <= PANEL_SIGMA * local standard deviation 1/sqrt(f'') of each minimum
N_MIN = 12              # panels per interval at least
N_MAX = 600             # panels per interval at most (reached only for absurdly narrow wells)
_GL_X, _GL_W = np.polynomial.legendre.leggauss(8)
GL_X = np.ascontiguousarray(_GL_X)
GL_W = np.ascontiguousarray(_GL_W)
EPS = 2.220446049250313e-16
U_MIN = 2.0 ** -54


# ============================================================================================ Gaussian
@njit(cache=True, nogil=True)
def ndtri(p):
    """Inverse of the standard normal CDF, p in (0, 1) (Acklam's algorithm + one Halley step)."""
    if p <= 0.0:
        return -math.inf
    if p >= 1.0:
        return math.inf
    plow = 0.02425
    if p < plow:
        q = math.sqrt(-2.0 * math.log(p))
        x = ((((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
             / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                 + 3.754408661907416e+00) * q + 1.0))
    elif p <= 1.0 - plow:
        q = p - 0.5
        r = q * q
        x = ((((((-3.969683028665376e+01 * r + 2.209460984245205e+02) * r - 2.759285104469687e+02) * r
                + 1.383577518672690e+02) * r - 3.066479806614716e+01) * r + 2.506628277459239e+00) * q
             / (((((-5.447609879822406e+01 * r + 1.615858368580409e+02) * r - 1.556989798598866e+02) * r
                  + 6.680131188771972e+01) * r - 1.328068155288572e+01) * r + 1.0))
    else:
        q = math.sqrt(-2.0 * math.log1p(-p))
        x = -((((((-7.784894002430293e-03 * q - 3.223964580411365e-01) * q - 2.400758277161838e+00) * q
                 - 2.549732539343734e+00) * q + 4.374664141464968e+00) * q + 2.938163982698783e+00)
              / ((((7.784695709041462e-03 * q + 3.224671290700398e-01) * q + 2.445134137142996e+00) * q
                  + 3.754408661907416e+00) * q + 1.0))
    # Halley refinement; the residual is taken in the smaller tail for accuracy
    if x < 0.0:
        e = 0.5 * math.erfc(-x / math.sqrt(2.0)) - p
    else:
        e = (1.0 - p) - 0.5 * math.erfc(x / math.sqrt(2.0))
        # 1 - p is exact for the 53-bit uniforms used here
    uu = e * math.sqrt(2.0 * math.pi) * math.exp(0.5 * x * x)
    return x - uu / (1.0 + 0.5 * x * uu)


@njit(cache=True, nogil=True)
def sample_gaussian(a, c, u, out):
    """out[k, i] ~ density ∝ exp(-(a_i x^2 + c[k, i] x)), a_i > 0: mean -c/(2a), variance 1/(2a)."""
    nr, nu = c.shape
    for i in range(nu):
        sd = 1.0 / math.sqrt(2.0 * a[i])
        for k in range(nr):
            uk = u[k, i]
            if uk < U_MIN:
                uk = U_MIN
            out[k, i] = -c[k, i] / (2.0 * a[i]) + sd * ndtri(uk)


# ======================================================================================== Bernoulli ±1
@njit(cache=True, nogil=True)
def sample_pm1(c, u, out):
    """out[k, i] in {-1, +1} with p(x) ∝ exp(-c[k, i] x): x = +1 iff u < 1 / (1 + exp(2c))."""
    nr, nu = c.shape
    for k in range(nr):
        for i in range(nu):
            z = 2.0 * c[k, i]
            if z >= 0.0:
                e = math.exp(-z)
                p = e / (1.0 + e)
            else:
                p = 1.0 / (1.0 + math.exp(z))
            out[k, i] = 1.0 if u[k, i] < p else -1.0


# ============================================================================================== phi^4
@njit(cache=True, nogil=True, inline="always")
def _fprime(a, b, c, x):
    return (4.0 * b * x * x + 2.0 * a) * x + c


@njit(cache=True, nogil=True)
def _root_increasing(a, b, c, lo, hi, sign):
    """Root of sign * f'(x) on [lo, hi] where sign * f' is increasing, f'(lo) * sign <= 0 <= sign * f'(hi)."""
    x = 0.5 * (lo + hi)
    for _ in range(200):
        p = sign * _fprime(a, b, c, x)
        if p > 0.0:
            hi = x
        elif p < 0.0:
            lo = x
        else:
            return x
        dp = sign * (12.0 * b * x * x + 2.0 * a)
        xn = x - p / dp if dp != 0.0 else 0.5 * (lo + hi)
        if not (lo < xn < hi):
            xn = 0.5 * (lo + hi)
        if abs(xn - x) <= 2.0 * EPS * abs(x) or hi - lo <= 2.0 * EPS * max(abs(lo), abs(hi)):
            return xn
        x = xn
    return x


@njit(cache=True, nogil=True, inline="always")
def _g(y, fp, q2, q3, b):
    """f(x* + y) - f(x*) for the quartic, in cancellation-free Taylor form."""
    return y * (fp + y * (q2 + y * (q3 + b * y)))


@njit(cache=True, nogil=True, inline="always")
def _gp(y, fp, q2, q3, b):
    return fp + y * (2.0 * q2 + y * (3.0 * q3 + 4.0 * b * y))


@njit(cache=True, nogil=True)
def _cross(y0, y1, fp, q2, q3, b, target):
    """Solve g(y) = target on [y0, y1] (or [y1, y0]) where |g| increases from y0 towards y1 and
    g(y0) <= target <= g(y1). Returns y."""
    lo, hi = y0, y1          # g(lo) <= target <= g(hi) along the branch
    y = 0.5 * (lo + hi)
    for _ in range(200):
        r = _g(y, fp, q2, q3, b) - target
        if r > 0.0:
            hi = y
        elif r < 0.0:
            lo = y
        else:
            return y
        d = _gp(y, fp, q2, q3, b)
        yn = y - r / d if d != 0.0 else 0.5 * (lo + hi)
        if not (min(lo, hi) < yn < max(lo, hi)):
            yn = 0.5 * (lo + hi)
        if abs(yn - y) <= 4.0 * EPS * (abs(y) + 1e-300) or abs(hi - lo) <= 4.0 * EPS * max(abs(lo), abs(hi)):
            return yn
        y = yn
    return y


@njit(cache=True, nogil=True)
def _cross_open(y0, direction, step, fp, q2, q3, b, target):
    """Solve g(y) = target beyond y0 in `direction` (±1), g increasing along that way, g(y0) <= target."""
    d = step
    for _ in range(2000):
        if _g(y0 + direction * d, fp, q2, q3, b) >= target:
            break
        d *= 2.0
    return _cross(y0, y0 + direction * d, fp, q2, q3, b, target)


@njit(cache=True, nogil=True)
def _n_panels(width, sig):
    if sig < math.inf:
        return int(min(max(math.ceil(width / (PANEL_SIGMA * sig)), N_MIN), N_MAX))
    return N_MIN


@njit(cache=True, nogil=True)
def _setup(a, b, c):
    """Returns (xs, fp, q2, q3, f_min, L0, h0, n0, L1, h1, n1): the global minimum x*, the Taylor
    coefficients of g about it, f(x*), and one or two segments [L, L + n h] (offsets from x*) of n panels
    of width h covering {g <= T} (n1 = 0 unless two wells are retained and the barrier between them
    exceeds T, in which case the barrier is skipped)."""
    # ---- critical points
    has_l = False
    has_r = False
    xl = 0.0
    xr = 0.0
    xm = 0.0
    if a >= 0.0:
        if c == 0.0:
            xs = 0.0
        else:
            bnd = (abs(c) / (4.0 * b)) ** (1.0 / 3.0)
            if a > 0.0:
                bnd = min(bnd, abs(c) / (2.0 * a))
            bnd *= 1.0 + 1e-9     # a valid bracket despite rounding
            if c < 0.0:
                xs = _root_increasing(a, b, c, 0.0, bnd, 1.0)
            else:
                xs = _root_increasing(a, b, c, -bnd, 0.0, 1.0)
    else:
        q = math.sqrt(-a / (6.0 * b))
        bnd = max(math.sqrt(-a / b), (abs(c) / (2.0 * b)) ** (1.0 / 3.0)) * (1.0 + 1e-9)
        if _fprime(a, b, c, q) < 0.0:
            has_r = True
            xr = _root_increasing(a, b, c, q, bnd, 1.0)
        if _fprime(a, b, c, -q) > 0.0:
            has_l = True
            xl = _root_increasing(a, b, c, -bnd, -q, 1.0)
        if has_l and has_r:
            xm = _root_increasing(a, b, c, -q, q, -1.0)
            # compare the two minima: g about xl at xr - xl
            d = _g(xr - xl, _fprime(a, b, c, xl), a + 6.0 * b * xl * xl, 4.0 * b * xl, b)
            xs = xr if d < 0.0 else xl
        elif has_r:
            xs = xr
        else:
            xs = xl
    fp = _fprime(a, b, c, xs)
    q2 = a + 6.0 * b * xs * xs
    q3 = 4.0 * b * xs
    f_min = xs * (c + xs * (a + b * xs * xs))
    # ---- local scales of the retained minima and the hull of {g <= T}
    curv = 2.0 * a + 12.0 * b * xs * xs
    sig = 1.0 / math.sqrt(curv) if curv > 0.0 else math.inf
    step = min(sig * math.sqrt(2.0 * T_CUT), (T_CUT / b) ** 0.25) * 0.5
    if has_l and has_r:
        other = xl if xs == xr else xr
        yo = other - xs
        go = _g(yo, fp, q2, q3, b)
        ym = xm - xs
        di = 1.0 if yo > 0.0 else -1.0      # direction from x* to the other minimum
        if go <= T_CUT:
            curv_o = 2.0 * a + 12.0 * b * other * other
            sig_o = 1.0 / math.sqrt(curv_o) if curv_o > 0.0 else math.inf
            far = _cross_open(yo, di, step, fp, q2, q3, b, T_CUT)
            back = _cross_open(0.0, -di, step, fp, q2, q3, b, T_CUT)
            if _g(ym, fp, q2, q3, b) > T_CUT:
                # two segments; the barrier (g > T) between them is skipped
                near_s = _cross(0.0, ym, fp, q2, q3, b, T_CUT)
                near_o = _cross(yo, ym, fp, q2, q3, b, T_CUT)
                L0 = min(back, near_s)
                w0 = abs(near_s - back)
                L1 = min(far, near_o)
                w1 = abs(far - near_o)
                n0 = _n_panels(w0, sig)
                n1 = _n_panels(w1, sig_o)
                if L1 < L0:       # segments in increasing order: u -> x stays monotone
                    return xs, fp, q2, q3, f_min, L1, w1 / n1, n1, L0, w0 / n0, n0
                return xs, fp, q2, q3, f_min, L0, w0 / n0, n0, L1, w1 / n1, n1
            L = min(far, back)
            width = abs(far - back)
            n0 = _n_panels(width, min(sig, sig_o))
            return xs, fp, q2, q3, f_min, L, width / n0, n0, 0.0, 0.0, 0
        # the other well is negligible; the barrier top (g(ym) > go > T) bounds the branch
        near_s = _cross(0.0, ym, fp, q2, q3, b, T_CUT)
        back = _cross_open(0.0, -di, step, fp, q2, q3, b, T_CUT)
        L = min(near_s, back)
        width = abs(near_s - back)
    else:
        R = _cross_open(0.0, 1.0, step, fp, q2, q3, b, T_CUT)
        L = _cross_open(0.0, -1.0, step, fp, q2, q3, b, T_CUT)
        width = R - L
    n0 = _n_panels(width, sig)
    return xs, fp, q2, q3, f_min, L, width / n0, n0, 0.0, 0.0, 0


@njit(cache=True, nogil=True, inline="always")
def _panel_mass(y0, h, fp, q2, q3, b):
    half = 0.5 * h
    mid = y0 + half
    s = 0.0
    for j in range(GL_X.shape[0]):
        s += GL_W[j] * math.exp(-_g(mid + half * GL_X[j], fp, q2, q3, b))
    return s * half


@njit(cache=True, nogil=True)
def phi4_sample1(a, b, c, u, buf):
    """One sample of the density ∝ exp(-(a x^2 + b x^4 + c x)) from the uniform u (b > 0; b = 0 with a > 0
    is Gaussian). buf: scratch of length >= 2 N_MAX."""
    if b == 0.0:
        if not a > 0.0:
            return math.nan
        uu = u if u >= U_MIN else U_MIN
        return -c / (2.0 * a) + ndtri(uu) / math.sqrt(2.0 * a)
    if not b > 0.0:
        return math.nan
    xs, fp, q2, q3, f_min, L0, h0, n0, L1, h1, n1 = _setup(a, b, c)
    n = n0 + n1
    tot = 0.0
    for k in range(n):
        if k < n0:
            m = _panel_mass(L0 + k * h0, h0, fp, q2, q3, b)
        else:
            m = _panel_mass(L1 + (k - n0) * h1, h1, fp, q2, q3, b)
        buf[k] = m
        tot += m
    target = u * tot
    k = 0
    acc = 0.0
    while k < n - 1 and acc + buf[k] <= target:
        acc += buf[k]
        k += 1
    t = target - acc
    mk = buf[k]
    if k < n0:
        y0 = L0 + k * h0
        h = h0
    else:
        y0 = L1 + (k - n0) * h1
        h = h1
    if not mk > 0.0:
        return xs + y0 + 0.5 * h
    if t > mk:
        t = mk
    lo = y0
    hi = y0 + h
    y = y0 + h * (t / mk)
    for _ in range(60):
        r = _panel_mass(y0, y - y0, fp, q2, q3, b) - t
        if r > 0.0:
            hi = y
        elif r < 0.0:
            lo = y
        else:
            break
        dens = math.exp(-_g(y, fp, q2, q3, b))
        yn = y - r / dens if dens > 0.0 else 0.5 * (lo + hi)
        if not (lo < yn < hi):
            yn = 0.5 * (lo + hi)
        done = abs(yn - y) <= 4.0 * EPS * (abs(xs + y) + h)
        y = yn
        if done or hi - lo <= 4.0 * EPS * (abs(xs + y) + h):
            break
    return xs + y


@njit(cache=True, nogil=True)
def sample_phi4(a, b, c, u, out):
    """out[k, i] ~ density ∝ exp(-(a_i x^2 + b_i x^4 + c[k, i] x)) from the uniforms u[k, i]."""
    nr, nu = c.shape
    buf = np.empty(2 * N_MAX)
    for i in range(nu):
        for k in range(nr):
            out[k, i] = phi4_sample1(a[i], b[i], c[k, i], u[k, i], buf)


@njit(cache=True, nogil=True)
def phi4_moments1(a, b, c):
    """(ln Z, <x>, <x^2>, <x^4>) of the density exp(-(a x^2 + b x^4 + c x)) / Z."""
    if b == 0.0:
        if not a > 0.0:
            return math.nan, math.nan, math.nan, math.nan
        mu = -c / (2.0 * a)
        var = 1.0 / (2.0 * a)
        lnz = 0.5 * math.log(math.pi / a) + c * c / (4.0 * a)
        return lnz, mu, mu * mu + var, mu ** 4 + 6.0 * mu * mu * var + 3.0 * var * var
    if not b > 0.0:
        return math.nan, math.nan, math.nan, math.nan
    xs, fp, q2, q3, f_min, L0, h0, n0, L1, h1, n1 = _setup(a, b, c)
    z = 0.0
    m1 = 0.0
    m2 = 0.0
    m4 = 0.0
    for k in range(n0 + n1):
        if k < n0:
            h = h0
            mid = L0 + k * h0 + 0.5 * h0
        else:
            h = h1
            mid = L1 + (k - n0) * h1 + 0.5 * h1
        half = 0.5 * h
        for j in range(GL_X.shape[0]):
            y = mid + half * GL_X[j]
            w = half * GL_W[j] * math.exp(-_g(y, fp, q2, q3, b))
            x = xs + y
            x2 = x * x
            z += w
            m1 += w * x
            m2 += w * x2
            m4 += w * x2 * x2
    return math.log(z) - f_min, m1 / z, m2 / z, m4 / z


@njit(cache=True, nogil=True)
def phi4_moments(a, b, c, out):
    """out[:, k, i] = (ln Z, <x>, <x^2>, <x^4>) for density ∝ exp(-(a_i x^2 + b_i x^4 + c[k, i] x))."""
    nr, nu = c.shape
    for i in range(nu):
        for k in range(nr):
            lz, m1, m2, m4 = phi4_moments1(a[i], b[i], c[k, i])
            out[0, k, i] = lz
            out[1, k, i] = m1
            out[2, k, i] = m2
            out[3, k, i] = m4
