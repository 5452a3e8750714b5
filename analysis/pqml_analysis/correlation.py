"""Two-point functions and the second-moment correlation length from saved configurations
(serial, numpy only; never imports mpi4py).

Input: configurations phi of shape (n, *shape) on a periodic lattice, in Monte Carlo order, e.g. one
replica of the measurement file, `h5py.File(path)["configs/phi"][:, r]` (docs/schema.md); any object
with `.shape` and slicing along the first axis works (an h5py dataset is read one bin at a time).

Definitions (V = prod(shape), phi~(k) = sum_x e^{-i k.x} phi_x, k_mu = 2 pi n_mu / L_mu):
    G(x)     = <phi_0 phi_x> - <phi>^2, averaged over translations:
               (1/V) sum_y phi_y phi_{y+x} per configuration, computed as ifft(|phi~(k)|^2 / V)
    G~(k)    = sum_x e^{-i k.x} G(x) = <|phi~(k)|^2> / V - V <phi>^2 delta_{k,0}
    C(t)     = sum_{x_perp} G(t e_axis + x_perp): the zero-momentum (time-slice) correlator along
               `axis`, = (1/V_perp) <(1/L) sum_tau Phi_tau Phi_{tau+t}>_connected with the slice sums Phi
    chi      = G~(0) = V (<m^2> - <m>^2),  m = sum(phi)/V   (observables.susceptibility(absolute=False))
    F        = G~(p_min), p_min = 2 pi / L along one axis, averaged over the chosen axes
    xi_2     = sqrt(chi / F - 1) / (2 sin(pi / L))
The last is the standard second-moment correlation length on a periodic lattice (F. Cooper,
B. Freedman, D. Preston, Nucl. Phys. B 210 (1982) 210; in this form e.g. J. Salas, A. D. Sokal,
J. Stat. Phys. 98 (2000) 551, cond-mat/9904038). For a free field with G~(k) = 1/(m0^2 + k_hat^2)
it is exactly 1/m0 at any L. `connected=False` leaves out the <phi>^2 subtraction. With a broken
symmetry the finite-volume <m> is 0 only if the chain tunnels: chi is then the full, not the in-phase
fluctuation.

Errors: jackknife over n_bins equal bins of consecutive configurations (the first n mod n_bins are
dropped, as errors.bin_averages); every jackknife sample re-evaluates the nonlinear functions (the
<phi>^2 subtraction, chi/F, the square root). Bins must be longer than the integrated
autocorrelation time of the saved configurations.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import Estimate

__all__ = ["binned_spectra", "two_point", "timeslice_correlator", "second_moment", "SecondMoment"]


def binned_spectra(phi, n_bins: int = 20):
    """Bin averages of P(k) = |phi~(k)|^2 / V and of m = mean(phi) per configuration.

    Returns (P, m, n_total): P of shape (n_bins, *shape), m of shape (n_bins,). Reads one bin at a
    time (phi may be an h5py dataset)."""
    shape = tuple(phi.shape)
    if len(shape) < 2:
        raise ValueError(f"phi must have shape (n_configs, *lattice_shape), got {shape}")
    n_total, lat = shape[0], shape[1:]
    n_bins = int(n_bins)
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    size = n_total // n_bins
    if size < 1:
        raise ValueError(f"{n_total} configurations are too few for {n_bins} bins")
    start = n_total - size * n_bins
    vol = math.prod(lat)
    axes = tuple(range(1, len(lat) + 1))
    p_bins = np.empty((n_bins,) + lat)
    m_bins = np.empty(n_bins)
    for b in range(n_bins):
        x = np.asarray(phi[start + b * size: start + (b + 1) * size], dtype=np.float64)
        fk = np.fft.fftn(x, axes=axes)
        p_bins[b] = np.mean(fk.real ** 2 + fk.imag ** 2, axis=0) / vol
        m_bins[b] = x.mean()
    return p_bins, m_bins, n_total


def _jackknife(full, samples):
    """Error from leave-one-out values `samples` (n, ...) around `full`: sqrt((n-1)/n sum (t - tbar)^2)."""
    n = samples.shape[0]
    return np.sqrt((n - 1) / n * np.sum((samples - samples.mean(axis=0)) ** 2, axis=0))


def _leave_one_out(bins):
    n = bins.shape[0]
    return (bins.sum(axis=0)[None] - bins) / (n - 1)


def _method(what, n_total, n_bins):
    size = n_total // n_bins
    return (f"{what}: jackknife over {n_bins} bins of {size} configurations"
            + (f", first {n_total - size * n_bins} dropped" if n_total % n_bins else ""))


def two_point(phi, n_bins: int = 20, connected: bool = True):
    """G(x) of shape `shape` (x = 0 at index 0, periodic) and its jackknife error: Estimate (G, dG)."""
    p_bins, m_bins, n_total = binned_spectra(phi, n_bins)
    axes = tuple(range(1, p_bins.ndim))
    c_bins = np.fft.ifftn(p_bins, axes=axes).real                    # (1/V) sum_y phi_y phi_{y+x}, per bin
    sub = 1.0 if connected else 0.0

    def g(c, m):
        return c - sub * (m ** 2).reshape(m.shape + (1,) * (c.ndim - m.ndim))

    full = g(c_bins.mean(axis=0), m_bins.mean())
    err = _jackknife(full, g(_leave_one_out(c_bins), _leave_one_out(m_bins)))
    return Estimate((full, err), _method("two-point function G(x)", n_total, n_bins))


def timeslice_correlator(phi, axis: int = 0, n_bins: int = 20, connected: bool = True):
    """C(t) = sum_{x_perp} G(t e_axis + x_perp), t = 0..L_axis-1, and its jackknife error: Estimate (C, dC)."""
    p_bins, m_bins, n_total = binned_spectra(phi, n_bins)
    lat = p_bins.shape[1:]
    axis = int(axis) % len(lat)
    index = tuple(slice(None) if mu == axis else 0 for mu in range(len(lat)))
    p_t = p_bins[(slice(None),) + index]                            # (n_bins, L): k_perp = 0
    c_bins = np.fft.ifft(p_t, axis=1).real
    v_perp = math.prod(lat) / lat[axis]
    sub = v_perp if connected else 0.0

    def c(cb, m):
        return cb - sub * np.asarray(m ** 2)[..., None]

    full = c(c_bins.mean(axis=0), m_bins.mean())
    err = _jackknife(full, c(_leave_one_out(c_bins), _leave_one_out(m_bins)))
    return Estimate((full, err), _method(f"time-slice correlator along axis {axis}", n_total, n_bins))


@dataclass(frozen=True)
class SecondMoment:
    xi: float           # second-moment correlation length xi_2
    xi_err: float
    chi: float          # G~(0)
    chi_err: float
    F: float            # G~(p_min), averaged over `axes`
    F_err: float
    L: int
    axes: tuple
    method: str

    def describe(self) -> str:
        return (f"xi_2 = {self.xi:.6g} +- {self.xi_err:.2g}, chi = {self.chi:.6g} +- {self.chi_err:.2g}, "
                f"F = {self.F:.6g} +- {self.F_err:.2g} (L = {self.L}, p_min along axes {self.axes}) [{self.method}]")


def second_moment(phi, n_bins: int = 20, axes=None, connected: bool = True) -> SecondMoment:
    """chi, F and xi_2 = sqrt(chi/F - 1) / (2 sin(pi/L)) with jackknife errors (module docstring).

    axes: the lattice axes whose minimal momenta 2 pi/L e_mu are averaged into F (default: all);
    they must have the same extent L. A jackknife sample with chi/F <= 1 gives xi_2 = nan (then
    xi_err is nan: the data do not determine xi_2)."""
    p_bins, m_bins, n_total = binned_spectra(phi, n_bins)
    lat = p_bins.shape[1:]
    axes = tuple(range(len(lat))) if axes is None else tuple(int(a) % len(lat) for a in np.atleast_1d(axes))
    extents = {lat[a] for a in axes}
    if len(extents) != 1:
        raise ValueError(f"axes {axes} have different extents {[lat[a] for a in axes]}: choose axes of equal L")
    L = extents.pop()
    if L < 3:
        raise ValueError(f"extent L = {L} is too small for a second-moment correlation length")
    vol = math.prod(lat)
    zero = (slice(None),) + (0,) * len(lat)
    p0 = p_bins[zero]
    pmin = np.mean([p_bins[(slice(None),) + tuple(1 if mu == a else 0 for mu in range(len(lat)))]
                    for a in axes], axis=0)
    sub = vol if connected else 0.0

    def derived(p0_, pmin_, m_):
        chi = p0_ - sub * m_ ** 2
        with np.errstate(invalid="ignore"):
            xi = np.sqrt(chi / pmin_ - 1.0) / (2.0 * math.sin(math.pi / L))
        return chi, pmin_, xi

    full = derived(p0.mean(), pmin.mean(), m_bins.mean())
    loo = derived(_leave_one_out(p0), _leave_one_out(pmin), _leave_one_out(m_bins))
    errs = [float(_jackknife(f, s)) for f, s in zip(full, loo)]
    return SecondMoment(float(full[2]), errs[2], float(full[0]), errs[0], float(full[1]), errs[1], int(L), axes,
                        _method("second moment", n_total, p_bins.shape[0]))
