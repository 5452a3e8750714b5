"""Estimators of the learning engine (NumPy only: no MPI, importable by the serial analysis).

Notation (paper, section III and appendix A): p = e^{-S}/Z is the MRF, q = e^{-A}/Z_A the target,
O_k(x) = dS/dtheta_k(x) (kernels/gradient.py), D = S - A per configuration.

* KL(p||q) gradient, eq. 12 / A9:  dF/dtheta = <A><O> - <A O> + <S O> - <S><O> = Cov_p(D, O).
* KL(q||p) gradient (eq. 25, loss = -<ln p>_data):  <O>_data - <O>_p.
* KL(p||q) itself: KL = <A - S>_p + ln(Z_A / Z) with Z_A / Z = <e^{S - A}>_p, i.e.
  KL = ln <exp(D - <D>)>_p, evaluated with the maximum taken out (no overflow); >= 0 by Jensen.
  This "exponential average" reweights p to q with weights w_l = e^{D_l}: where the overlap is poor
  a few samples dominate, it is biased low by far more than its jackknife error, and only the
  effective sample size ESS = (sum w)^2 / sum w^2 of the weights tells (kl_exp_average, the verdict
  overlap_verdict: the rule of analysis/pqml_analysis/reweighting.py). Large KL: learning/thermo.py.

Chains contribute ChainSums in a fixed (chain) order, and the pooled moments are combined in that
order (Chan, Golub, LeVeque 1979), so the result does not depend on how chains are spread over ranks.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass
class ChainSums:
    """Sums over the n samples of one chain in one epoch: shift c = D of its first sample,
    sd = sum (D - c), so[K, V] = sum O, sdo[K, V] = sum (D - c) O (sdo None when D is not used)."""
    n: int
    c: float
    sd: float
    so: np.ndarray
    sdo: np.ndarray | None

    def flat(self) -> np.ndarray:
        """One flat float64 buffer: n, c, sd, so, sdo (the unit of the cross-rank exchange)."""
        parts = [np.array([self.n, self.c, self.sd]), self.so.ravel()]
        if self.sdo is not None:
            parts.append(self.sdo.ravel())
        return np.concatenate(parts)

    @classmethod
    def from_flat(cls, buf: np.ndarray, shape: tuple, with_d: bool) -> "ChainSums":
        size = int(np.prod(shape))
        so = buf[3:3 + size].reshape(shape)
        sdo = buf[3 + size:3 + 2 * size].reshape(shape) if with_d else None
        return cls(int(buf[0]), float(buf[1]), float(buf[2]), so, sdo)


def pooled_mean(chains: list) -> np.ndarray:
    """<O> over all samples of all chains (added in chain order)."""
    total = chains[0].so.copy()
    for ch in chains[1:]:
        total += ch.so
    return total / sum(ch.n for ch in chains)


def pooled_covariance(chains: list) -> tuple:
    """(<O>, Cov(D, O)) over all samples of all chains, Cov with 1/N (eq. 12 as written).

    Per chain: mean D_c = c + sd/n, mean O_c = so/n, co-moment M_c = sdo - sd * O_c
    (= sum (D - D_c)(O - O_c)); pooled: M = sum_c [M_c + n_c (D_c - D)(O_c - O)], Cov = M / N."""
    N = sum(ch.n for ch in chains)
    mean_o = pooled_mean(chains)
    mean_d = sum(ch.n * (ch.c + ch.sd / ch.n) for ch in chains) / N
    M = np.zeros_like(mean_o)
    for ch in chains:
        o_c = ch.so / ch.n
        M += ch.sdo - ch.sd * o_c
        M += (ch.n * (ch.c + ch.sd / ch.n - mean_d)) * (o_c - mean_o)
    return mean_o, M / N


def _kl(d: np.ndarray) -> float:
    with np.errstate(over="ignore", invalid="ignore"):     # a diverging run gives inf/nan, caught later
        x = d - d.mean()
        m = x.max()
        return float(m + np.log(np.mean(np.exp(x - m))))


def kl_estimate(d, n_bins: int = 20) -> tuple:
    """(KL, jackknife error) of KL(p||q) = ln <exp(D - <D>)>_p from samples D = S - A of p.

    The error is the delete-one-block jackknife over min(n_bins, N) contiguous blocks (samples are
    ordered chain by chain, so a block holds consecutive, correlated samples); NaN for N < 2."""
    d = np.asarray(d, dtype=np.float64).ravel()
    if d.size == 0:
        return float("nan"), float("nan")
    kl = _kl(d)
    nb = min(int(n_bins), d.size)
    if nb < 2:
        return kl, float("nan")
    jk = _kl_leave_block_out(d, nb)
    return kl, float(np.sqrt((nb - 1) / nb * np.sum((jk - jk.mean()) ** 2)))


def _kl_leave_block_out(d: np.ndarray, nb: int) -> np.ndarray:
    """_kl of d without block b, for the nb contiguous blocks of np.array_split (all at once: one
    (nb, N) masked array instead of nb Python calls; the same values up to rounding)."""
    n = d.size
    edges = np.array([len(b) for b in np.array_split(np.arange(n), nb)]).cumsum()
    block_of = np.searchsorted(edges, np.arange(n), side="right")
    keep = block_of[None, :] != np.arange(nb)[:, None]                       # (nb, N)
    count = keep.sum(axis=1)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = np.where(keep, d, 0.0).sum(axis=1) / count
        x = np.where(keep, d[None, :] - mean[:, None], -np.inf)
        m = x.max(axis=1)
        return m + np.log(np.where(keep, np.exp(x - m[:, None]), 0.0).sum(axis=1) / count)


# -- overlap diagnostic and verdict of a KL estimate ---------------------------------------------------

MIN_ESS = 100              # the verdict rule of analysis/pqml_analysis/reweighting.py (MIN_ESS, MIN_ESS_FRACTION):
MIN_ESS_FRACTION = 0.01    # one rule, tests/unit/test_kl_estimates.py checks both give the same verdict


def ess_of_log_weights(x) -> float:
    """Effective sample size (sum w)^2 / sum w^2 of the weights w_l = e^{x_l} (maximum taken out)."""
    x = np.asarray(x, dtype=np.float64).ravel()
    if x.size == 0 or not np.all(np.isfinite(x)):
        return float("nan")
    w = np.exp(x - x.max())
    return float(w.sum() ** 2 / np.sum(w * w))


def overlap_verdict(ess: float, n: int, min_ess: float = MIN_ESS, min_ess_fraction: float = MIN_ESS_FRACTION):
    """(reliable, reason): reliable iff ESS >= max(min_ess, min_ess_fraction * n), the reweighting rule."""
    need = max(min_ess, min_ess_fraction * n)
    if math.isfinite(ess) and ess >= need:
        return True, ""
    return False, f"ESS {ess:.0f} < {need:.0f}: poor overlap"


@dataclass(frozen=True)
class KLEstimate:
    """An exponential-average KL estimate with its overlap diagnostic (kl_exp_average)."""
    value: float
    err: float                # jackknife error (statistical only: it does not show the bias)
    ess: float                # effective sample size of the weights e^{D}
    n: int
    lsw: float                # ln sum_l e^{D_l}: pools the weights of several estimates (pooled_exp_average)
    reliable: bool
    reason: str

    def describe(self) -> str:
        return (f"{self.value:.4g} ± {self.err:.2g} (exponential average), ESS {self.ess:.0f} of {self.n}: "
                + ("reliable" if self.reliable else f"UNRELIABLE ({self.reason})"))


def kl_exp_average(d, n_bins: int = 20) -> KLEstimate:
    """kl_estimate(d, n_bins) with the ESS of its weights e^{D} and the verdict overlap_verdict."""
    d = np.asarray(d, dtype=np.float64).ravel()
    kl, err = kl_estimate(d, n_bins)
    ess = ess_of_log_weights(d)
    with np.errstate(over="ignore", invalid="ignore"):
        lsw = float(d.max() + np.log(np.sum(np.exp(d - d.max())))) if d.size else float("nan")
    ok, why = overlap_verdict(ess, d.size)
    return KLEstimate(kl, err, ess, int(d.size), lsw, ok, why)


def pooled_exp_average(kl, lsw, ess, n: int):
    """(KL, ESS) of the exponential average over the pooled samples of several estimates of the same
    divergence (per estimate e: its KL_e, ln sum e^{D} = lsw_e, ESS_e, each of n samples).

    <D>_e = lsw_e - ln n - KL_e; sum w^2 of an estimate = (sum w)^2 / ESS_e; pooled:
    KL = ln sum_e e^{lsw_e} - ln(N) - <D>,  ESS = (sum_e e^{lsw_e})^2 / sum_e e^{2 lsw_e} / ESS_e."""
    kl, lsw, ess = (np.asarray(v, dtype=np.float64) for v in (kl, lsw, ess))
    m = lsw.max()
    sw = np.exp(lsw - m)
    mean_d = np.mean(lsw - math.log(n) - kl)
    pooled_kl = float(m + math.log(sw.sum()) - math.log(n * kl.size) - mean_d)
    return pooled_kl, float(sw.sum() ** 2 / np.sum(sw * sw / ess))


def binned_mean(x, n_bins: int = 20):
    """(mean, error, tau_int) of a time series from n_bins contiguous blocks of equal length (the oldest
    N mod n_bins samples are left out of the error only, as in analysis/); tau_int = n err^2 / (2 var), the
    convention tau = 1/2 + sum rho (1/2 for independent samples). The blocks must be longer than tau_int."""
    x = np.asarray(x, dtype=np.float64).ravel()
    nb = min(int(n_bins), x.size)
    if nb < 2:
        return float(np.mean(x)) if x.size else float("nan"), float("nan"), float("nan")
    k = x.size // nb
    blocks = x[x.size - nb * k:].reshape(nb, k).mean(axis=1)
    err = float(np.std(blocks, ddof=1) / math.sqrt(nb))
    var = float(np.var(x, ddof=1))
    tau = x.size * err * err / (2 * var) if var > 0 else float("nan")
    return float(np.mean(x)), err, tau


def summary_window(n_epochs: int) -> int:
    """Epochs averaged by the summary of pqml learn: min(100, epochs / 10), at least 1."""
    return max(1, min(100, n_epochs // 10))


@dataclass(frozen=True)
class KLWindow:
    """Per-epoch exponential-average KL estimates over the last epochs (kl_window)."""
    mean: float               # mean of the per-epoch estimates
    err: float                # its error from blocks of consecutive epochs (binned_mean: autocorrelation)
    n_epochs: int
    n: int                    # samples per epoch
    median_ess: float         # median per-epoch ESS
    reliable: bool            # overlap_verdict(median_ess, n): the bias of a mean of per-epoch estimates
    reason: str               # is that of one epoch's estimate, so the verdict is per epoch
    pooled: float             # the exponential average over all samples of these epochs (pooled_exp_average;
    pooled_ess: float         # meaningful for a fixed action only, e.g. the reference) and its ESS

    def describe(self, pooled: bool = False) -> str:
        p = (f"; pooled over those epochs {self.pooled:.4g}, ESS {self.pooled_ess:.0f} of {self.n * self.n_epochs}"
             if pooled else "")
        ep = f"{self.n_epochs} epochs" if self.n_epochs != 1 else "epoch"
        return (f"{self.mean:.4g} ± {self.err:.2g} (mean of the last {ep}; per-epoch ESS median "
                f"{self.median_ess:.0f} of {self.n}: " + ("reliable" if self.reliable else f"UNRELIABLE, {self.reason}")
                + f"{p})")


def kl_window(kl, ess, lsw, n: int, n_last: int) -> KLWindow:
    """Summary of the last n_last per-epoch estimates (KL_e, ESS_e, lsw_e, n samples each): their mean
    with an error from min(10, n_last // 2) blocks of consecutive epochs (the estimates of nearby epochs
    are correlated through the couplings and the chains), the verdict of the median per-epoch ESS
    (averaging epochs reduces the noise, not the bias of each epoch's estimate), and the estimate from
    all samples pooled (valid when the action does not change between the epochs)."""
    kl, ess, lsw = (np.asarray(v, dtype=np.float64)[-n_last:] for v in (kl, ess, lsw))
    mean, err, _ = binned_mean(kl, max(2, min(10, kl.size // 2)))
    med = float(np.median(ess))
    ok, why = overlap_verdict(med, n)
    pooled, p_ess = pooled_exp_average(kl, lsw, ess, n)
    return KLWindow(mean, err, int(kl.size), int(n), med, ok, why, pooled, p_ess)
