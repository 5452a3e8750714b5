"""Statistical errors of Monte Carlo time series (serial, numpy only; never imports mpi4py).

binned_error   mean and error of a primary observable from bin averages
               (Bachtis, Aarts, Lucini 2021, appendix D, eq. D1)
jackknife      value and error of a derived quantity f(<A>, <B>, ...) by leave-one-bin-out jackknife
bootstrap      value and error of a derived quantity by resampling bin averages with replacement
               (B. Efron, Ann. Statist. 7 (1979) 1; fixed seed, so reproducible)
tau_int_gamma  integrated autocorrelation time by the Gamma method with automatic windowing
               (U. Wolff, Comput. Phys. Commun. 156 (2004) 143, hep-lat/0306017)
gamma_error    mean and error of a primary observable by the Gamma method (same analysis)

Conventions: a series is the sequence of measurements in Monte Carlo time, one per measurement.
When the length N is not a multiple of n_bins, the first N mod n_bins measurements (the oldest,
least thermalised ones) are dropped so that all bins have equal length.
tau_int is normalised so that uncorrelated data have tau_int = 1/2, and the variance of the mean is
2 tau_int sigma^2 / N (sigma^2 the variance of a single measurement).

Every function returns an `Estimate`: a tuple that unpacks exactly as before ((value, err), or
(tau, d_tau, W) for tau_int_gamma) and carries `.method`, a one-line statement of how the error was
obtained; `.describe()` gives "value +- err [method]".
"""
import math

import numpy as np

__all__ = ["Estimate", "bin_averages", "binned_error", "jackknife", "bootstrap", "tau_int_gamma", "gamma_error"]


class Estimate(tuple):
    """A result tuple ((value, err) or (tau, d_tau, W)) with `.method`: how its error was obtained.

    It is a plain tuple for unpacking, indexing, comparison, numpy and pickling; only the attribute
    and `describe()` are added."""

    def __new__(cls, values=(), method: str = ""):
        self = super().__new__(cls, values)
        self.method = method
        return self

    def describe(self) -> str:
        if len(self) == 2 and np.ndim(self[0]) == 0:
            return f"{self[0]:.6g} +- {self[1]:.2g} [{self.method}]"
        return f"{tuple(self)} [{self.method}]"


def _binning_text(n_total: int, n_bins: int) -> str:
    size = n_total // n_bins
    dropped = n_total - size * n_bins
    return f"{n_bins} bins of {size} measurements" + (f", first {dropped} dropped" if dropped else "")


def bin_averages(series, n_bins: int) -> np.ndarray:
    """Averages of n_bins consecutive equal-length bins (leading N mod n_bins entries dropped)."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"series must be one-dimensional, got shape {x.shape}")
    n_bins = int(n_bins)
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    size = x.size // n_bins
    if size < 1:
        raise ValueError(f"series of length {x.size} is too short for {n_bins} bins")
    return x[x.size - size * n_bins:].reshape(n_bins, size).mean(axis=1)


def binned_error(series, n_bins: int = 20):
    """Mean and binned error of a series: (mean, err).

    With bin averages O_k, k = 1..n:  mean = <O> = (1/n) sum_k O_k and
    err = sqrt((<O^2> - <O>^2) / (n - 1)), averages over the bins (paper, eq. D1). The error is
    reliable when the bin length N/n is much larger than the integrated autocorrelation time.
    """
    o = bin_averages(series, n_bins)
    mean = o.mean()
    err = math.sqrt(max(np.mean((o - mean) ** 2), 0.0) / (o.size - 1))
    return Estimate((float(mean), err), f"binning: {_binning_text(np.size(series), o.size)} (eq. D1)")


def _bins_of(series_list, n_bins: int):
    rows = [np.asarray(s, dtype=np.float64) for s in series_list]
    if not rows or any(r.shape != rows[0].shape for r in rows):
        raise ValueError("series_list must hold one or more series of equal length")
    return np.array([bin_averages(r, n_bins) for r in rows]), rows[0].size    # (n_obs, n), N


def jackknife(series_list, func, n_bins: int = 20):
    """Jackknife value and error of a derived quantity: (value, err).

    series_list: sequence of equal-length series A, B, ... (or a 2D array, one series per row).
    func(mean_A, mean_B, ...) -> scalar or array: the derived quantity as a function of the means.
    Each series is cut into n_bins bins; theta_k = func of the means with bin k left out;
    value = func(full means) (no bias correction),
    err = sqrt((n - 1)/n * sum_k (theta_k - mean_k theta_k)^2).
    For func = identity this reproduces binned_error exactly.
    """
    bins, n_total = _bins_of(series_list, n_bins)                      # (n_obs, n)
    n = bins.shape[1]
    full = bins.mean(axis=1)
    left_out = (full[:, None] * n - bins) / (n - 1)                    # (n_obs, n)
    theta = np.array([np.asarray(func(*left_out[:, k]), dtype=np.float64) for k in range(n)])
    value = np.asarray(func(*full), dtype=np.float64)
    err = np.sqrt((n - 1) / n * np.sum((theta - theta.mean(axis=0)) ** 2, axis=0))
    method = f"jackknife: leave one out of {_binning_text(n_total, n)}, no bias correction"
    if value.ndim == 0:
        return Estimate((float(value), float(err)), method)
    return Estimate((value, err), method)


def bootstrap(series_list, func, n_bins: int = 20, n_boot: int = 1000, seed: int = 0):
    """Bootstrap value and error of a derived quantity: (value, err); call as `jackknife`.

    Each series is cut into n_bins bins (as bin_averages); a bootstrap sample draws n_bins bin
    indices with replacement (the same indices for every series, so their correlations are kept;
    numpy default_rng(seed), so the result is reproducible) and evaluates func on the means of the
    drawn bins. value = func(full means) (no bias correction), err = standard deviation (ddof = 1)
    of the n_boot sample values. For func = identity the expected err^2 is (n-1)/n times the binned
    (= jackknife) one: the plain bootstrap uses the 1/n variance of the bin averages.
    """
    n_boot = int(n_boot)
    if n_boot < 2:
        raise ValueError(f"n_boot must be >= 2, got {n_boot}")
    bins, n_total = _bins_of(series_list, n_bins)                      # (n_obs, n)
    n = bins.shape[1]
    idx = np.random.default_rng(seed).integers(0, n, size=(n_boot, n))
    counts = np.zeros((n_boot, n))
    np.add.at(counts, (np.arange(n_boot)[:, None], idx), 1.0)         # times bin k is drawn in sample b
    means = bins @ counts.T / n                                        # (n_obs, n_boot)
    theta = np.array([np.asarray(func(*means[:, b]), dtype=np.float64) for b in range(n_boot)])
    value = np.asarray(func(*bins.mean(axis=1)), dtype=np.float64)
    err = theta.std(axis=0, ddof=1)
    method = f"bootstrap: {n_boot} resamples of {_binning_text(n_total, n)}, seed {seed}, no bias correction"
    if value.ndim == 0:
        return Estimate((float(value), float(err)), method)
    return Estimate((value, err), method)


def _autocovariance(x: np.ndarray, t_max: int) -> np.ndarray:
    """Gamma(t) = 1/(N - t) sum_i (x_i - xbar)(x_{i+t} - xbar), t = 0..t_max (via FFT)."""
    n = x.size
    d = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(d, size)
    acf = np.fft.irfft(f * np.conj(f), size)[: t_max + 1]
    return acf / (n - np.arange(t_max + 1))


def _gamma_analysis(series, S: float):
    """(tau_int, d_tau, W, Gamma(0) bias-corrected, N) of the Gamma method; see tau_int_gamma."""
    x = np.asarray(series, dtype=np.float64)
    if x.ndim != 1 or x.size < 4:
        raise ValueError("series must be one-dimensional with at least 4 entries")
    n = x.size
    t_max = n // 2
    gamma = _autocovariance(x, t_max)
    if not gamma[0] > 0.0:
        raise ValueError("series has zero variance: tau_int is undefined")
    w_opt = None
    g_int = 0.0                                                        # tau_int(W) - 1/2
    for w in range(1, t_max + 1):
        g_int += gamma[w] / gamma[0]
        if g_int <= 0.0:
            tau_w = np.finfo(float).tiny
        else:
            tau_w = S / math.log((g_int + 1.0) / g_int)        # = S / ln((2tau+1)/(2tau-1))
        if math.exp(-w / tau_w) - tau_w / math.sqrt(w * n) < 0.0:
            w_opt = w
            break
    if w_opt is None:
        import warnings
        warnings.warn(f"Gamma method: no window found up to W = {t_max}; series too short", RuntimeWarning)
        w_opt = t_max
    g = gamma[: w_opt + 1].copy()
    c_f = g[0] + 2.0 * g[1:].sum()
    g += c_f / n                                                       # bias correction of Gamma
    c_f = g[0] + 2.0 * g[1:].sum()
    tau = 0.5 * c_f / g[0]
    d_tau = 2.0 * tau * math.sqrt(max(w_opt + 0.5 - tau, 0.0) / n)
    return float(tau), float(d_tau), int(w_opt), float(g[0]), n


def tau_int_gamma(series, S: float = 1.5):
    """Integrated autocorrelation time by the Gamma method: (tau_int, d_tau, W).

    Gamma(t) is the autocovariance, rho(t) = Gamma(t)/Gamma(0), tau_int(W) = 1/2 + sum_{t=1}^W rho(t).
    The window W is the first W >= 1 with g(W) = exp(-W/tau_W) - tau_W/sqrt(W N) < 0, where
    tau_W = S / ln((2 tau_int(W) + 1)/(2 tau_int(W) - 1)) (tau_W -> 0 if tau_int(W) <= 1/2); it
    balances the truncation bias against the statistical error (Wolff 2004, sec. 3.3; S = 1-2).
    The bias of Gamma from subtracting the sample mean is corrected by Gamma(t) += C(W)/N,
    C(W) = Gamma(0) + 2 sum_{t=1}^W Gamma(t). Error: d_tau = 2 tau_int sqrt((W + 1/2 - tau_int)/N).
    The error of the mean is then sqrt(2 tau_int Gamma(0) / N) with the corrected Gamma(0), i.e.
    sqrt(C(W)/N) after the correction: gamma_error returns it.
    Raises ValueError for a constant series; warns (RuntimeWarning) if no window < N/2 is found.

    pyerrors (Obs.gamma_method) uses the same window rule and the approximate correction
    tau_0 (1 + (2W+1)/N)/(1 + 1/N) (Wolff eq. 49, as cited in pyerrors; tau_0 = tau_int(W) before the
    correction) instead: its tau_int is larger than this one by the factor (1 + 2 tau_0/N)/(1 + 1/N)
    (relative (2 tau - 1)/N), and its error of the mean is identical (both are
    sqrt(C(W) (1 + (2W+1)/N) / N)). pyerrors also clamps tau_int(W) >= 1/2; this function does not.
    """
    tau, d_tau, w, _, n = _gamma_analysis(series, S)
    return Estimate((tau, d_tau, w), f"Gamma method (Wolff 2004): automatic window S = {S:g} -> W = {w}, "
                                     f"N = {n}, bias-corrected Gamma")


def gamma_error(series, S: float = 1.5):
    """Mean and error of a primary observable by the Gamma method: (mean, err).

    err = sqrt(2 tau_int Gamma(0) / N) with tau_int and the bias-corrected Gamma(0) of tau_int_gamma
    (Wolff 2004); this equals pyerrors' Obs.dvalue with the same S to rounding.
    """
    x = np.asarray(series, dtype=np.float64)
    tau, _, w, g0, n = _gamma_analysis(x, S)
    return Estimate((float(x.mean()), math.sqrt(2.0 * tau * g0 / n)),
                    f"Gamma method (Wolff 2004): tau_int = {tau:.3g}, window S = {S:g} -> W = {w}, N = {n}")
