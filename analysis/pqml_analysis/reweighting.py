"""Reweighting from a sampled ensemble to a target action, real or complex (paper, section IV and
appendix C; Bachtis, Aarts, Lucini, PRD 103, 074510).

For configurations phi_l sampled with weight e^{-S}, the expectation value in the target A' is
    <O>_{A'} = sum_l O_l w_l / sum_l w_l,   w_l = exp(-(A'_l - S_l))
(eq. 20 with the sums over configurations). A' may carry an imaginary part (i g5 sum phi^2): then
w_l = exp(-Re dA_l) exp(-i Im dA_l). Numerically: the real exponents are shifted by their maximum
before exponentiating (a log-sum-exp: the shift cancels in the ratio) and the phase is kept separately,
so no overflow and no loss of the phase. Errors: jackknife over bins of the four sums Re/Im(O w),
Re/Im(w) (errors.jackknife), so autocorrelations are covered when the bins are longer than tau_int.

Overlap diagnostics: the effective sample size ESS = (sum |w|)^2 / sum |w|^2 and the average phase
<e^{-i Im dA}>_{|w|} = sum w / sum |w| (the sign problem). Verdict `reliable` iff
ESS >= max(min_ess, min_ess_fraction * N) and |average phase| >= 3 times its jackknife error.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import jackknife

MIN_ESS = 100
MIN_ESS_FRACTION = 0.01


@dataclass(frozen=True)
class Reweighted:
    value: complex          # <O> in the target ensemble
    err_re: float           # jackknife errors of the real and imaginary parts
    err_im: float
    ess: float              # effective sample size of the weights
    n: int                  # number of configurations
    phase: float            # |average phase|, 1 without an imaginary part
    phase_err: float
    reliable: bool
    reason: str             # why not reliable ("" if it is)

    def describe(self) -> str:
        return (f"Re = {self.value.real:.6g} +- {self.err_re:.2g}, Im = {self.value.imag:.6g} +- "
                f"{self.err_im:.2g} (jackknife); ESS = {self.ess:.0f} of {self.n}, |phase| = {self.phase:.3g}"
                f" +- {self.phase_err:.2g}: " + ("reliable" if self.reliable else f"UNRELIABLE ({self.reason})"))


def weights(delta_action) -> np.ndarray:
    """w_l / max_l |w_l| for dA_l = A'_l - S_l (complex allowed), without overflow."""
    d = np.asarray(delta_action, dtype=np.complex128)
    x = -d.real
    return np.exp(x - x.max()) * np.exp(-1j * d.imag)


def reweight(delta_action, observable, n_bins: int = 20, min_ess: float = MIN_ESS,
             min_ess_fraction: float = MIN_ESS_FRACTION) -> Reweighted:
    """<O> in the target ensemble from a series of dA_l = A'_l - S_l and O_l (time-ordered)."""
    w = weights(delta_action)
    o = np.asarray(observable, dtype=np.complex128)
    if o.shape != w.shape or w.ndim != 1:
        raise ValueError(f"delta_action and observable must be series of equal length, got {w.shape}, {o.shape}")
    ow = o * w

    def ratio(a, b, c, e):
        z = complex(a, b) / complex(c, e)
        return [z.real, z.imag]

    (re, im), (err_re, err_im) = jackknife([ow.real, ow.imag, w.real, w.imag], ratio, n_bins)
    aw = np.abs(w)
    ess = float(aw.sum() ** 2 / np.sum(aw ** 2))
    phase, phase_err = jackknife([w.real, w.imag, aw], lambda a, b, c: abs(complex(a, b)) / c, n_bins)
    n = w.size
    reasons = []
    if ess < max(min_ess, min_ess_fraction * n):
        reasons.append(f"ESS {ess:.0f} < {max(min_ess, min_ess_fraction * n):.0f}: poor overlap")
    if phase < 3 * phase_err:
        reasons.append(f"average phase {phase:.2g} +- {phase_err:.2g} compatible with 0: sign problem")
    return Reweighted(complex(re, im), float(err_re), float(err_im), ess, n, float(phase), float(phase_err),
                      not reasons, "; ".join(reasons))
