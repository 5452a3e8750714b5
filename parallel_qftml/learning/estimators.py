"""Estimators of the learning engine (NumPy only: no MPI, importable by the serial analysis).

Notation (paper, section III and appendix A): p = e^{-S}/Z is the MRF, q = e^{-A}/Z_A the target,
O_k(x) = dS/dtheta_k(x) (kernels/gradient.py), D = S - A per configuration.

* KL(p||q) gradient, eq. 12 / A9:  dF/dtheta = <A><O> - <A O> + <S O> - <S><O> = Cov_p(D, O).
* KL(q||p) gradient (eq. 25, loss = -<ln p>_data):  <O>_data - <O>_p.
* KL(p||q) itself: KL = <A - S>_p + ln(Z_A / Z) with Z_A / Z = <e^{S - A}>_p, i.e.
  KL = ln <exp(D - <D>)>_p, evaluated with the maximum taken out (no overflow); >= 0 by Jensen.

Chains contribute ChainSums in a fixed (chain) order, and the pooled moments are combined in that
order (Chan, Golub, LeVeque 1979), so the result does not depend on how chains are spread over ranks.
"""
from __future__ import annotations

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
    blocks = np.array_split(np.arange(d.size), nb)
    jk = np.array([_kl(np.delete(d, b)) for b in blocks])
    return kl, float(np.sqrt((nb - 1) / nb * np.sum((jk - jk.mean()) ** 2)))
