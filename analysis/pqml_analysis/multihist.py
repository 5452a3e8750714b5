"""Ferrenberg-Swendsen multi-histogram reweighting without histograms (serial, numpy only; never
imports mpi4py).

Setting: R ensembles i = 0..R-1, each sampled with p_i(x) proportional to exp(-beta_i E(x) - rest(x)),
where one coupling beta multiplies the observable E and `rest` is the same for all ensembles; in the
package's action S = -w nn + a phi2 + b phi4 + ..., e.g. beta = a and E = the measured `phi2`
(docs/schema.md). Ensemble i holds N_i configurations with energies E_{i,n} (and observables O_{i,n}).

Free energies f_i = -ln Z_i, Z_i = sum_x exp(-beta_i E(x) - rest(x)), are the solution of the
self-consistent equations of A. M. Ferrenberg, R. H. Swendsen, Phys. Rev. Lett. 63 (1989) 1195 in the
limit of one configuration per histogram bin, which is the MBAR estimator of M. R. Shirts,
J. D. Chodera, J. Chem. Phys. 129 (2008) 124105:

    f_i = -ln sum_{j,n} exp(-beta_i E_jn - D_jn),   D_jn = ln sum_k N_k exp(f_k - beta_k E_jn),

fixed up to a common constant; the gauge here is f_0 = 0, so f_i - f_0 = -ln(Z_i / Z_0). At any beta,

    <O>_beta = sum_{j,n} O_jn w_jn / sum_{j,n} w_jn,   ln w_jn = -beta E_jn - D_jn,
    f(beta) = -ln sum_{j,n} w_jn.

Numerics: every sum of exponentials is a log-sum-exp (shifted by its maximum), so energies of any size
do not overflow. The equations are solved by Newton's method on the convex function
Phi(f) = sum_{jn} D_jn - sum_i N_i f_i (its gradient vanishes exactly at the self-consistent
solution; Shirts-Chodera) with a backtracking line search, started from a
thermodynamic-integration guess f_{i+1} - f_i = (beta_{i+1} - beta_i)(<E>_i + <E>_{i+1})/2; the plain
self-consistent iteration is available as method="iterate". Convergence: max_i |f_i' - f_i| < tol for
one self-consistent update f -> f'.

Errors: jackknife over bins. Every ensemble is cut into n_bins bins of consecutive measurements (the
oldest N_i mod n_bins dropped, as errors.bin_averages); jackknife sample k leaves out bin k of every
ensemble (the ensembles are independent, so this is a leave-one-block-out of the combined data set),
re-solves the free energies (warm start) and re-evaluates <O>. Bins must be longer than tau_int.
"""
from __future__ import annotations


import numpy as np

from .errors import Estimate

__all__ = ["solve_free_energies", "expectation", "free_energy", "effective_sample_size", "overlap_matrix",
           "free_energies_jackknife", "expectation_jackknife"]


def _lse(a, axis=None):
    """log(sum(exp(a))) along axis, shifted by the maximum."""
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return np.squeeze(out, axis=axis) if axis is not None else float(out.reshape(()))


def _prepare(E_list, betas):
    es = [np.asarray(e, dtype=np.float64).ravel() for e in E_list]
    b = np.asarray(betas, dtype=np.float64).ravel()
    if len(es) != b.size or b.size < 1:
        raise ValueError(f"need one energy series per beta: {len(es)} series, {b.size} betas")
    if any(e.size < 1 for e in es):
        raise ValueError("every ensemble needs at least one configuration")
    if any(not np.all(np.isfinite(e)) for e in es):
        raise ValueError("energies must be finite")
    n = np.array([e.size for e in es], dtype=np.float64)
    return np.concatenate(es), b, n


def _log_denominator(e_all, betas, log_n, f):
    """D_jn = ln sum_k N_k exp(f_k - beta_k E_jn), shape (N_total,)."""
    return _lse(log_n[:, None] + f[:, None] - betas[:, None] * e_all[None, :], axis=0)


def _initial_guess(es_mean, betas):
    order = np.argsort(betas)
    f = np.zeros(betas.size)
    for a, b in zip(order[:-1], order[1:]):
        f[b] = f[a] + (betas[b] - betas[a]) * 0.5 * (es_mean[a] + es_mean[b])
    return f - f[0]


def _solve(e_all, betas, n, f0, tol, max_iter, method):
    r = betas.size
    log_n = np.log(n)
    f = np.array(f0, dtype=np.float64) - f0[0]
    if r == 1:
        return f, 0
    u = -betas[:, None] * e_all[None, :]                                # (R, N_total)

    def update(f_):
        d = _lse(log_n[:, None] + f_[:, None] + u, axis=0)
        lw = f_[:, None] + u - d[None, :]                               # ln W_{i,jn}
        g = -_lse(u - d[None, :], axis=1)                               # self-consistent update
        return d, lw, g - g[0]

    def phi(f_, d):
        return float(np.sum(d) - np.dot(n, f_))

    d, lw, f_new = update(f)
    for it in range(1, int(max_iter) + 1):
        if np.max(np.abs(f_new - f)) < tol:
            return f_new, it
        if method == "iterate":
            f = f_new
        else:
            w = np.exp(lw)                                              # (R, N_total), sum_jn W_i = 1 at the solution
            s = w.sum(axis=1)
            grad = n * (s - 1.0)
            hess = np.diag(n * s) - (n[:, None] * w) @ (n[:, None] * w).T
            step = np.zeros(r)
            try:
                step[1:] = -np.linalg.solve(hess[1:, 1:], grad[1:])
            except np.linalg.LinAlgError:
                step[:] = np.nan
            slope = float(np.dot(grad, step))
            trial = f_new                                               # fallback: self-consistent update
            if np.isfinite(slope) and slope < 0:
                phi0, t = phi(f, d), 1.0
                slack = 1e3 * np.finfo(float).eps * (np.sum(np.abs(d)) + abs(np.dot(n, f)))   # rounding of Phi
                for _ in range(40):                                     # backtracking (Armijo) line search
                    cand = f + t * step
                    if phi(cand, _lse(log_n[:, None] + cand[:, None] + u, axis=0)) <= phi0 + 1e-4 * t * slope + slack:
                        trial = cand
                        break
                    t *= 0.5
            f = trial
        d, lw, f_new = update(f)
    raise RuntimeError(f"Ferrenberg-Swendsen equations not converged to {tol} in {max_iter} iterations "
                       f"(last change {np.max(np.abs(f_new - f)):.3g}); poor overlap between ensembles?")


def solve_free_energies(E_list, betas, tol: float = 1e-10, max_iter: int = 1000, method: str = "newton",
                        f0=None):
    """Self-consistent f_i = -ln Z_i (gauge f_0 = 0) from per-configuration energies: array (R,).

    E_list: one 1D series of E per ensemble (lengths may differ); betas: the R couplings.
    method "newton" (default) or "iterate" (the plain self-consistent iteration; slow for poor
    overlap). f0: starting point (default: thermodynamic integration). Raises RuntimeError if not
    converged."""
    if method not in ("newton", "iterate"):
        raise ValueError(f"method must be 'newton' or 'iterate', got {method!r}")
    e_all, b, n = _prepare(E_list, betas)
    if f0 is None:
        f0 = _initial_guess(np.array([np.mean(e) for e in E_list], dtype=np.float64), b)
    f, _ = _solve(e_all, b, n, np.asarray(f0, dtype=np.float64), tol, max_iter, method)
    return f


def _log_weights(e_all, b, n, f, beta_new):
    d = _log_denominator(e_all, b, np.log(n), np.asarray(f, dtype=np.float64))
    return -float(beta_new) * e_all - d


def _expect(o_all, lw):
    w = np.exp(lw - lw.max())
    return np.tensordot(w, o_all, axes=(0, 0)) / w.sum()


def _stack_observable(O_list, E_list):
    os_ = [np.asarray(o, dtype=np.float64) for o in O_list]
    if len(os_) != len(E_list) or any(o.shape[:1] != np.shape(e)[:1] for o, e in zip(os_, E_list)):
        raise ValueError("O_list must hold one series per ensemble, of the same length as its energies")
    return np.concatenate(os_, axis=0)


def expectation(O_list, E_list, betas, f, beta_new):
    """<O> at beta_new (scalar or 1D array of betas) from all ensembles.

    O_list: one series per ensemble, shape (N_i,) or (N_i, k) for k observables at once.
    Returns a float / array (k,) for a scalar beta_new, and an array (n_beta, ...) otherwise."""
    e_all, b, n = _prepare(E_list, betas)
    o_all = _stack_observable(O_list, E_list)
    bn = np.asarray(beta_new, dtype=np.float64)
    vals = [_expect(o_all, _log_weights(e_all, b, n, f, x)) for x in bn.ravel()]
    if bn.ndim == 0:
        v = vals[0]
        return float(v) if np.ndim(v) == 0 else v
    return np.array(vals)


def free_energy(E_list, betas, f, beta_new):
    """f(beta_new) = -ln Z(beta_new) in the gauge of f (f_0 = 0): -ln(Z(beta_new) / Z(beta_0))."""
    e_all, b, n = _prepare(E_list, betas)
    bn = np.asarray(beta_new, dtype=np.float64)
    out = np.array([-_lse(_log_weights(e_all, b, n, f, x)) for x in bn.ravel()])
    return float(out[0]) if bn.ndim == 0 else out


def effective_sample_size(E_list, betas, f, beta_new) -> float:
    """(sum w)^2 / sum w^2 of the combined weights at beta_new: how many configurations effectively
    contribute (small compared with N_total: beta_new is outside the sampled range)."""
    e_all, b, n = _prepare(E_list, betas)
    lw = _log_weights(e_all, b, n, f, beta_new)
    w = np.exp(lw - lw.max())
    return float(w.sum() ** 2 / np.sum(w ** 2))


def overlap_matrix(E_list, betas, f):
    """MBAR overlap matrix O_ij = N_j sum_{all samples} W_i W_j, W_i = exp(f_i - beta_i E - D) (Shirts,
    Chodera 2008): rows sum to 1; O_ij is the probability that a configuration drawn from ensemble i
    is attributed to ensemble j. Its eigenvalues are 1 = l_0 >= l_1 >= ...; a spectral gap 1 - l_1
    near 0 means the ensembles split into groups that do not overlap, and then the free-energy
    differences between the groups are not determined by the data (whatever the solver returns)."""
    e_all, b, n = _prepare(E_list, betas)
    f = np.asarray(f, dtype=np.float64)
    d = _log_denominator(e_all, b, np.log(n), f)
    w = np.exp(f[:, None] - b[:, None] * e_all[None, :] - d[None, :])
    return (w @ w.T) * n[None, :]


def _jackknife_sets(E_list, O_list, n_bins):
    """Per ensemble: the kept (binned) range, and for every k the index arrays without bin k."""
    n_bins = int(n_bins)
    if n_bins < 2:
        raise ValueError(f"n_bins must be >= 2, got {n_bins}")
    kept_e, kept_o, sizes = [], [], []
    for i, e in enumerate(E_list):
        e = np.asarray(e, dtype=np.float64).ravel()
        size = e.size // n_bins
        if size < 1:
            raise ValueError(f"ensemble {i} has {e.size} configurations, fewer than n_bins = {n_bins}")
        start = e.size - size * n_bins
        kept_e.append(e[start:])
        kept_o.append(None if O_list is None else np.asarray(O_list[i], dtype=np.float64)[start:])
        sizes.append(size)
    return kept_e, kept_o, sizes


def _leave_out(series, size, k):
    return np.concatenate([series[: k * size], series[(k + 1) * size:]], axis=0)


def _jk_err(samples):
    n = samples.shape[0]
    return np.sqrt((n - 1) / n * np.sum((samples - samples.mean(axis=0)) ** 2, axis=0))


def _jk_text(sizes, n_bins, what):
    return (f"{what}: jackknife over {n_bins} bins per ensemble (bin lengths {sorted(set(sizes))}), "
            f"free energies re-solved per sample")


def free_energies_jackknife(E_list, betas, n_bins: int = 20, tol: float = 1e-10, max_iter: int = 1000):
    """f_i - f_0 and their jackknife errors: Estimate (f, df), arrays (R,)."""
    kept_e, _, sizes = _jackknife_sets(E_list, None, n_bins)
    f = solve_free_energies(kept_e, betas, tol, max_iter)
    samples = np.array([solve_free_energies([_leave_out(e, s, k) for e, s in zip(kept_e, sizes)], betas, tol,
                                            max_iter, f0=f) for k in range(int(n_bins))])
    return Estimate((f, _jk_err(samples)), _jk_text(sizes, int(n_bins), "multi-histogram free energies"))


def expectation_jackknife(O_list, E_list, betas, beta_new, n_bins: int = 20, tol: float = 1e-10,
                          max_iter: int = 1000):
    """<O> at beta_new with its jackknife error: Estimate (value, err); shapes as `expectation`.

    The leading N_i mod n_bins configurations of each ensemble are dropped for value and error alike.
    The method string also gives the effective sample size (effective_sample_size) at each beta_new."""
    kept_e, kept_o, sizes = _jackknife_sets(E_list, O_list, n_bins)
    f = solve_free_energies(kept_e, betas, tol, max_iter)
    value = expectation(kept_o, kept_e, betas, f, beta_new)
    samples = []
    for k in range(int(n_bins)):
        ek = [_leave_out(e, s, k) for e, s in zip(kept_e, sizes)]
        ok = [_leave_out(o, s, k) for o, s in zip(kept_o, sizes)]
        fk = solve_free_energies(ek, betas, tol, max_iter, f0=f)
        samples.append(np.asarray(expectation(ok, ek, betas, fk, beta_new), dtype=np.float64))
    err = _jk_err(np.array(samples))
    ess = [effective_sample_size(kept_e, betas, f, x) for x in np.atleast_1d(beta_new)]
    n_tot = sum(e.size for e in kept_e)
    text = _jk_text(sizes, int(n_bins), "Ferrenberg-Swendsen reweighting") + \
        f"; ESS {', '.join(f'{x:.0f}' for x in ess)} of {n_tot}"
    if np.ndim(value) == 0:
        return Estimate((float(value), float(err)), text)
    return Estimate((value, err), text)
