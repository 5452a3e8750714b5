"""Weight functions W(S) of histogram reweighting: how far a sample can be reweighted (Bachtis, Aarts,
Lucini, PRD 103, 074510, section III, eqs. 21-22, Figs. 6 and 7). Serial numpy; never imports mpi4py.

An ensemble sampled with weight e^{-S} holds per configuration l the sampled action S_l and the target
action A'_l (complex allowed: A' = sum_k g_k A^(k) + i g5 sum phi^2). With the multi-dimensional
histogram h(S, Re A', Im A') of the ensemble,

    W(S)  = sum_{Re A', Im A'} h(S, Re A', Im A') e^{S - Re A' - i Im A'}
            / sum_{S, Re A', Im A'} h(S, Re A', Im A') e^{S - Re A' - i Im A'}          (eq. 22)
    W0(S) = the same with every exponential = 1, i.e. the normalised histogram of S,

so that <S>_{A'} = sum_S S W(S) (eq. 21): W(S) is the distribution of S that the sample predicts for the
target, W0(S) the distribution it actually sampled. Reweighting is trustworthy only where W(S) lies inside
the sampled W0(S); a W(S) piled up at the edge of the sampled range says that the target's histogram is
not in the sample (Fig. 7).

Bins (chosen automatically; `width=` overrides): the same width delta = 0.05 (`DELTA`) in each of the
three axes S, Re A', Im A', edges starting at each axis' minimum (an axis whose values are all equal has
a single bin at that value, e.g. Im A' = 0 for a real target). The exponent S - Re A' - i Im A' is
evaluated at the cell centres, so every configuration's weight is off by at most delta in the real
exponent (a factor e^{+-0.05}) and delta/2 in its phase, with a spread inside the cell that mostly
averages out. This width is absolute, not relative to the spread of the data, because the exponent is.
Measured on Gaussian ensembles (tests/unit/test_analysis_overlap.py): sum_S S W(S) differs from the
configuration-by-configuration <S> by ~1 % of its statistical error at delta = 0.05 (~12 % at 0.1, whose
S and Re A' grids can alias; ~35 % at 0.2).
Only the occupied cells are stored (at most one per configuration: np.unique of the cell indices), so a
fine grid costs no memory; should an axis need more than MAX_BINS (2^20) bins, its width is increased to
range / MAX_BINS. W is returned on the S bins of width delta (the paper's "each uniquely sampled action");
WeightFunction.rebin(k) sums k adjacent S bins for plotting (W is additive over S bins, exactly), and
display_rebin() picks k from the Freedman-Diaconis width 2 IQR(S) / N^(1/3).

Stability: the real exponents x = S - Re A' are shifted by their maximum over the cells before
exponentiating (the shift cancels in the ratio), the phase e^{-i Im A'} is kept apart; no overflow, no
underflow of the largest weights.

Checks and verdict:
  check_mean(wf)   sum_S S W(S) against <S> reweighted configuration by configuration
                   (reweighting.reweight); they agree to binning precision, tolerance documented there.
  wf.edge_fraction the share of sum_S |W(S)| that lies in the tails of the sampled distribution (the S
                   bins below the EDGE_QUANTILE = 1 % and above the 99 % quantile of W0); ~0.02 for a
                   well-overlapping target, -> 1 when W(S) piles up at the edge of the sampled range.
  wf.reliable      the verdict of reweighting.reweight (effective sample size, average phase) AND
                   edge_fraction <= EDGE_MAX = 0.2 (for a Gaussian S shifted by the target, 20 % of the
                   target's mass beyond the sampled 99 % quantile is a shift of ~1.5 sigma, where the ESS
                   has dropped to ~N/10).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .reweighting import Reweighted, reweight

__all__ = ["DELTA", "EDGE_MAX", "EDGE_QUANTILE", "MAX_BINS", "WeightFunction", "weight_function", "check_mean",
           "parse_couplings", "parse_scan", "target_action", "TERMS"]

DELTA = 0.05
MAX_BINS = 1 << 20
EDGE_QUANTILE = 0.01
EDGE_MAX = 0.2


@dataclass(frozen=True)
class WeightFunction:
    edges: np.ndarray       # (n + 1,) S bin edges
    W: np.ndarray           # (n,) complex, sum = 1
    W0: np.ndarray          # (n,) float, the normalised histogram of S, sum = 1
    widths: tuple           # bin widths of (S, Re A', Im A') used for the histogram
    n_cells: int            # occupied cells of h(S, Re A', Im A')
    verdict: Reweighted     # reweighting.reweight(A' - S, S): <S> directly, ESS, phase, verdict
    edge_fraction: float    # share of sum |W| in the 1 % tails of W0 (see module docstring)

    @property
    def centres(self) -> np.ndarray:
        return 0.5 * (self.edges[1:] + self.edges[:-1])

    @property
    def mean(self) -> complex:
        """sum_S S W(S) (eq. 21)."""
        return complex(np.sum(self.centres * self.W))

    @property
    def reliable(self) -> bool:
        return self.verdict.reliable and self.edge_fraction <= EDGE_MAX

    @property
    def reason(self) -> str:
        r = [self.verdict.reason] if self.verdict.reason else []
        if self.edge_fraction > EDGE_MAX:
            r.append(f"{100 * self.edge_fraction:.0f} % of |W| in the 1 % tails of the sampled S: W(S) at the "
                     f"edge of the sampled range")
        return "; ".join(r)

    def rebin(self, k: int) -> "WeightFunction":
        """The same weight function on S bins k times wider (sums of k adjacent bins; the last bin may be
        narrower). W, W0 stay normalised; verdict and edge_fraction are those of the fine bins."""
        k = max(1, int(k))
        if k == 1:
            return self
        n = self.W.size
        starts = np.arange(0, n, k)
        edges = np.append(self.edges[starts], self.edges[-1])
        return WeightFunction(edges, np.add.reduceat(self.W, starts), np.add.reduceat(self.W0, starts),
                              self.widths, self.n_cells, self.verdict, self.edge_fraction)

    def display_rebin(self, s_values) -> "WeightFunction":
        """Rebinned to about the Freedman-Diaconis width 2 IQR / N^(1/3) of the sampled S (for plots)."""
        s = np.asarray(s_values, dtype=np.float64)
        q75, q25 = np.percentile(s, [75, 25])
        fd = 2.0 * (q75 - q25) / s.size ** (1.0 / 3.0)
        return self.rebin(int(round(fd / self.widths[0])) if fd > 0 else 1)


def _axis(x: np.ndarray, width: float):
    """Bin index of every value, bin width and the centre of bin 0 (one bin if all values are equal)."""
    lo, hi = float(x.min()), float(x.max())
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ValueError("non-finite values in the series")
    if hi == lo:
        return np.zeros(x.size, dtype=np.int64), 0.0, lo
    width = max(float(width), (hi - lo) / MAX_BINS)
    idx = np.floor((x - lo) / width).astype(np.int64)
    return idx, width, lo + 0.5 * width


def weight_function(S, target, width=None, n_bins_verdict: int = 20) -> WeightFunction:
    """W(S) and W0(S) (eq. 22) of an ensemble with per-configuration sampled action S_l and target A'_l.

    S: real series (time-ordered, replicas one after another); target: A'_l, real or complex, same length.
    width: bin width (one number for all three axes, or three for S, Re A', Im A'); default DELTA.
    n_bins_verdict: jackknife bins of the direct reweighting (reweighting.reweight) used for the verdict.
    """
    s = np.asarray(S, dtype=np.float64)
    a = np.asarray(target, dtype=np.complex128)
    if s.ndim != 1 or a.shape != s.shape or s.size < 2:
        raise ValueError(f"S and target must be series of equal length >= 2, got {s.shape}, {a.shape}")
    w3 = (DELTA,) * 3 if width is None else (tuple(float(v) for v in width) if np.ndim(width) else (float(width),) * 3)
    if len(w3) != 3 or min(w3) <= 0:
        raise ValueError(f"width must be positive (one value or three), got {width}")
    (i_s, h_s, c_s), (i_re, h_re, c_re), (i_im, h_im, c_im) = (_axis(x, h) for x, h in
                                                               zip((s, a.real, a.imag), w3))
    # occupied cells of h(S, Re A', Im A') and their counts
    n_re, n_im = int(i_re.max()) + 1, int(i_im.max()) + 1
    if (int(i_s.max()) + 1) * n_re * n_im < 2 ** 62:             # one int64 key per cell: a fast 1D unique
        keys, counts = np.unique((i_s * n_re + i_re) * n_im + i_im, return_counts=True)
        cells = np.stack([keys // (n_re * n_im), (keys // n_im) % n_re, keys % n_im], axis=1)
    else:
        cells, counts = np.unique(np.stack([i_s, i_re, i_im], axis=1), axis=0, return_counts=True)
    s_c = c_s + cells[:, 0] * h_s
    re_c = c_re + cells[:, 1] * h_re
    im_c = c_im + cells[:, 2] * h_im
    x = s_c - re_c                                            # real exponent S - Re A'
    cell_w = counts * np.exp(x - x.max()) * np.exp(-1j * im_c)
    n_s = int(i_s.max()) + 1
    num = np.zeros(n_s, dtype=np.complex128)
    np.add.at(num, cells[:, 0], cell_w)
    total = num.sum()
    if total == 0:
        raise ValueError("the weights sum to zero (the phase cancels exactly): W(S) is undefined")
    W = num / total
    W0 = np.bincount(i_s, minlength=n_s).astype(np.float64) / s.size
    lo = c_s - 0.5 * h_s
    edges = lo + h_s * np.arange(n_s + 1) if h_s > 0 else np.array([s[0] - 0.5, s[0] + 0.5])
    verdict = reweight(a - s, s, n_bins_verdict)
    cum = np.cumsum(W0)
    tails = (cum <= EDGE_QUANTILE) | (cum - W0 >= 1.0 - EDGE_QUANTILE)
    aw = np.abs(W)
    edge = float(aw[tails].sum() / aw.sum()) if aw.sum() > 0 else 1.0
    return WeightFunction(edges, W, W0, (h_s, h_re, h_im), int(cells.shape[0]), verdict, edge)


def check_mean(wf: WeightFunction):
    """sum_S S W(S) (eq. 21) against <S> reweighted configuration by configuration:
    (from_W, direct, tolerance, ok).

    They differ only by the binning: S_l -> its bin centre (|shift| <= h_S/2) and every weight's exponent
    -> its cell centre (real part off by <= (h_S + h_Re)/2, phase by <= h_Im/2). The tolerance is
    h_S/2 / |phase| (the worst case of the first) + 5 % of the direct value's statistical (jackknife)
    error (the second, which averages out; observed far below it): binning may not change the result by
    more than a small part of its statistical error.
    """
    v = wf.verdict
    from_w = wf.mean
    direct = v.value
    tol = 0.5 * wf.widths[0] / max(v.phase, 1e-300) + 0.05 * math.hypot(v.err_re, v.err_im)
    return from_w, direct, tol, abs(from_w - direct) <= tol


# --- the target action A' = sum_k g_k A^(k) (+ i g5 sum phi^2) from the pieces of a measurement file ---

TERMS = ("nn", "phi2", "phi4", "nnn", "phi", "i_phi2")
PIECE = {"nn": "nn", "phi2": "phi2", "phi4": "phi4", "nnn": "nnn", "phi": "phi1", "i_phi2": "phi2"}


def parse_couplings(text: str) -> dict:
    """'nn=-1,phi2=1.52425,i_phi2=0.15' -> {"nn": -1.0, ...} (the terms of analysis/reweight_scan.py)."""
    g = {}
    for part in filter(None, (p.strip() for p in str(text).split(","))):
        k, eq, v = part.partition("=")
        k = k.strip()
        if k not in TERMS or not eq:
            raise ValueError(f"bad term {part!r} in {text!r} (TERM=VALUE with TERM one of {', '.join(TERMS)})")
        try:
            g[k] = float(v)
        except ValueError:
            raise ValueError(f"bad value {v.strip()!r} of {k} in {text!r}") from None
    if not g:
        raise ValueError(f"no couplings in {text!r}")
    return g


def parse_scan(text: str):
    """'nnn=-1.05:-0.8:6' -> ("nnn", array of 6 values from -1.05 to -0.8)."""
    term, eq, rng = str(text).partition("=")
    term = term.strip()
    if term not in TERMS or term == "i_phi2" or not eq:
        raise ValueError(f"bad scan {text!r} (TERM=start:stop:n, TERM one of {', '.join(TERMS[:-1])})")
    try:
        start, stop, n = rng.split(":")
        grid = np.linspace(float(start), float(stop), int(n))
    except ValueError:
        raise ValueError(f"bad scan range {rng!r} in {text!r} (start:stop:n)") from None
    if grid.size < 1:
        raise ValueError(f"empty scan {text!r}")
    return term, grid


def target_action(g: dict, obs: dict) -> np.ndarray:
    """A' = sum_k g_k A^(k) + i g_{i_phi2} sum phi^2 per measurement, from the pieces in obs
    (series of nn, phi2, phi4, nnn, phi1 of a measurement file)."""
    re = sum(g.get(k, 0.0) * np.asarray(obs[PIECE[k]], dtype=np.float64) for k in TERMS if k != "i_phi2")
    re = re + np.zeros_like(np.asarray(obs["phi2"], dtype=np.float64))
    return re + 1j * g.get("i_phi2", 0.0) * np.asarray(obs["phi2"], dtype=np.float64)
