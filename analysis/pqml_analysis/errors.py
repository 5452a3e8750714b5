"""Statistical errors of Monte Carlo time series (serial, numpy only; never imports mpi4py).

binned_error   mean and error of a primary observable from bin averages
               (Bachtis, Aarts, Lucini 2021, appendix D, eq. D1)
jackknife      value and error of a derived quantity f(<A>, <B>, ...) by leave-one-bin-out jackknife
tau_int_gamma  integrated autocorrelation time by the Gamma method with automatic windowing
               (U. Wolff, Comput. Phys. Commun. 156 (2004) 143, hep-lat/0306017)

Conventions: a series is the sequence of measurements in Monte Carlo time, one per measurement.
When the length N is not a multiple of n_bins, the first N mod n_bins measurements (the oldest,
least thermalised ones) are dropped so that all bins have equal length.
tau_int is normalised so that uncorrelated data have tau_int = 1/2, and the variance of the mean is
2 tau_int sigma^2 / N (sigma^2 the variance of a single measurement).
"""
import math

import numpy as np

__all__ = ["bin_averages", "binned_error", "jackknife", "tau_int_gamma"]


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
    return float(mean), err


def jackknife(series_list, func, n_bins: int = 20):
    """Jackknife value and error of a derived quantity: (value, err).

    series_list: sequence of equal-length series A, B, ... (or a 2D array, one series per row).
    func(mean_A, mean_B, ...) -> scalar or array: the derived quantity as a function of the means.
    Each series is cut into n_bins bins; theta_k = func of the means with bin k left out;
    value = func(full means) (no bias correction),
    err = sqrt((n - 1)/n * sum_k (theta_k - mean_k theta_k)^2).
    For func = identity this reproduces binned_error exactly.
    """
    rows = [np.asarray(s, dtype=np.float64) for s in series_list]
    if not rows or any(r.shape != rows[0].shape for r in rows):
        raise ValueError("series_list must hold one or more series of equal length")
    bins = np.array([bin_averages(r, n_bins) for r in rows])           # (n_obs, n)
    n = bins.shape[1]
    full = bins.mean(axis=1)
    left_out = (full[:, None] * n - bins) / (n - 1)                    # (n_obs, n)
    theta = np.array([np.asarray(func(*left_out[:, k]), dtype=np.float64) for k in range(n)])
    value = np.asarray(func(*full), dtype=np.float64)
    err = np.sqrt((n - 1) / n * np.sum((theta - theta.mean(axis=0)) ** 2, axis=0))
    if value.ndim == 0:
        return float(value), float(err)
    return value, err


def _autocovariance(x: np.ndarray, t_max: int) -> np.ndarray:
    """Gamma(t) = 1/(N - t) sum_i (x_i - xbar)(x_{i+t} - xbar), t = 0..t_max (via FFT)."""
    n = x.size
    d = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(d, size)
    acf = np.fft.irfft(f * np.conj(f), size)[: t_max + 1]
    return acf / (n - np.arange(t_max + 1))


def tau_int_gamma(series, S: float = 1.5):
    """Integrated autocorrelation time by the Gamma method: (tau_int, d_tau, W).

    Gamma(t) is the autocovariance, rho(t) = Gamma(t)/Gamma(0), tau_int(W) = 1/2 + sum_{t=1}^W rho(t).
    The window W is the first W >= 1 with g(W) = exp(-W/tau_W) - tau_W/sqrt(W N) < 0, where
    tau_W = S / ln((2 tau_int(W) + 1)/(2 tau_int(W) - 1)) (tau_W -> 0 if tau_int(W) <= 1/2); it
    balances the truncation bias against the statistical error (Wolff 2004, sec. 3.3; S = 1-2).
    The bias of Gamma from subtracting the sample mean is corrected by Gamma(t) += C(W)/N,
    C(W) = Gamma(0) + 2 sum_{t=1}^W Gamma(t). Error: d_tau = 2 tau_int sqrt((W + 1/2 - tau_int)/N).
    The error of the mean is then sqrt(2 tau_int Gamma(0) / N).
    Raises ValueError for a constant series; warns (RuntimeWarning) if no window < N/2 is found.
    """
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
    return float(tau), float(d_tau), int(w_opt)
