"""Many sweeps and measurements of one replica in one call, for a block that is the whole lattice
(a grid of one rank): pure numba, no Python between sweeps (docs/performance.md, "Small lattices").

A sweep is a list of phases; phase p runs the update steps ``steps[step_ptr[p]:step_ptr[p+1]]`` with
kernels/metropolis.update_schedule and then copies the ghosts ``phi[gdst[i]] = phi[gsrc[i]]`` for i in
``gptr[p]:gptr[p+1]`` (parallel/halo.HaloExchange.local_pairs: the same copies, in the same order, as
the halo exchange of a one-rank grid). The sampler builds the phases from the same schedules as its
Python path, so the configurations, the accepted counts and every measured bit are identical to
``Sampler.sweep`` / ``Sampler.measure`` called one at a time (tests/unit/test_chain.py).

A measurement first copies the ghosts ``mdst``/``msrc`` (all ghosts after a pipelined sweep, none
otherwise), then adds the action pieces exactly (kernels/measure.local_pieces) and rounds each once
(kernels/exactsum.round_rows): the values of Sampler.measure() on one rank. Columns of a measurement
row: OBS_COLUMNS.
"""
import numpy as np
from numba import njit

from .exactsum import round_rows
from .gradient import accumulate
from .measure import NN, NNN, PHI1, PHI2, PHI4, ACTION, local_pieces
from .metropolis import update_schedule

# the order of io/schema.OBSERVABLE_NAMES (tests/unit/test_chain.py checks that they agree)
OBS_COLUMNS = ("action", "nn", "nnn", "phi2", "phi4", "phi1", "m", "abs_m", "acceptance")


@njit(cache=True, boundscheck=False, nogil=True)
def sweeps(phi, w, a, b, r, w_nnn, strides, nnn_off, rows, n_last, t0, n_sweeps, k0, k1, c3, delta, n_hits,
           fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width, steps, step_ptr, gdst, gsrc, gptr, accepted):
    """Sweeps t0 .. t0 + n_sweeps - 1; accepted[s] = accepted updates of sweep t0 + s."""
    for s in range(n_sweeps):
        acc = 0
        for p in range(step_ptr.shape[0] - 1):
            acc += update_schedule(phi, w, a, b, r, w_nnn, strides, nnn_off, rows,
                                   steps[step_ptr[p]:step_ptr[p + 1]], n_last, t0 + s, k0, k1, c3, delta,
                                   n_hits, fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width)
            for i in range(gptr[p], gptr[p + 1]):
                phi[gdst[i]] = phi[gsrc[i]]
        accepted[s] = acc
    return 0


@njit(cache=True, boundscheck=False, nogil=True)
def measure(phi, w, a, b, r, w_nnn, strides, nnn_fwd, tiles, n_last, mdst, msrc, acc, R, S, sums, volume,
            out):
    """One measurement into out[0:6] (action, nn, nnn, phi2, phi4, phi1) and out[6:8] (m, |m|); acc is
    scratch of shape (N_PIECES, WIDTH), sums of length N_PIECES."""
    for i in range(mdst.shape[0]):
        phi[mdst[i]] = phi[msrc[i]]
    acc[:, :] = 0
    local_pieces(phi, w, a, b, r, w_nnn, strides, nnn_fwd, tiles, n_last, acc, R, S)
    round_rows(acc, sums)
    out[0] = sums[ACTION]
    out[1] = sums[NN]
    out[2] = sums[NNN]
    out[3] = sums[PHI2]
    out[4] = sums[PHI4]
    out[5] = sums[PHI1]
    out[6] = sums[PHI1] / volume
    out[7] = abs(sums[PHI1]) / volume
    return 0


@njit(cache=True, boundscheck=False, nogil=True)
def measured_sweeps(phi, w, a, b, r, w_nnn, strides, nnn_off, rows, n_last, t0, n_meas, every, k0, k1, c3,
                    delta, n_hits, fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width, steps, step_ptr, gdst, gsrc,
                    gptr, nnn_fwd, tiles, mdst, msrc, macc, R, S, sums, volume, accepted, out):
    """n_meas times: `every` sweeps, then one measurement into out[k, 0:8] and the acceptance of those
    sweeps into out[k, 8] (accepted / (every * n_hits * volume), as Sampler.sweep computes it)."""
    denom = float(every * n_hits * volume)
    for k in range(n_meas):
        sweeps(phi, w, a, b, r, w_nnn, strides, nnn_off, rows, n_last, t0 + k * every, every, k0, k1, c3, delta,
               n_hits, fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width, steps, step_ptr, gdst, gsrc, gptr,
               accepted)
        total = 0
        for s in range(every):
            total += accepted[s]
        measure(phi, w, a, b, r, w_nnn, strides, nnn_fwd, tiles, n_last, mdst, msrc, macc, R, S, sums, volume,
                out[k])
        out[k, 8] = float(total) / denom
    return 0


@njit(cache=True, boundscheck=False, nogil=True)
def target_samples(phis, w, a, b, r, w_nnn, strides, nnn_off, rows, n_last, t0, n_samples, every, k0, k1, c3s,
                   deltas, n_hits, fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width, steps, step_ptr, gdst, gsrc,
                   gptr, nnn_fwd, tiles, mdst, msrc, macc, R, S, sums, volume, accepted, g, with_features,
                   row_base, so, sdo, ds, stats):
    """The learning trainer's target-mode sampling of every chain of this rank in one call (learning/
    trainer.py, Trainer._sample_chain, whose arithmetic this repeats in the same order): chain c (its
    field phis[c], stream c3s[c], step size deltas[c]) takes n_samples times `every` sweeps from sweep t0
    and a measurement; D = action - A with A = (((g0 nn + g1 phi2) + g2 phi4) + g3 nnn) + g4 phi1 (the
    order of TargetAction.evaluate) goes to ds[c, k]; with_features adds the features of the field
    weighted by D - D_0 (kernels/gradient.accumulate) into so[c], sdo[c]. stats[c] = (sum of D - D_0,
    sum of the samples' acceptances, the last sample's acceptance)."""
    denom = float(every * n_hits * volume)
    out = np.empty(9)
    for c in range(phis.shape[0]):
        phi = phis[c]
        c0 = 0.0
        sd = 0.0
        acc = 0.0
        last = 0.0
        for k in range(n_samples):
            sweeps(phi, w, a, b, r, w_nnn, strides, nnn_off, rows, n_last, t0 + k * every, every, k0, k1, c3s[c],
                   deltas[c], n_hits, fbuf, abuf, sgdst, sgsrc, prop_lo, prop_width, steps, step_ptr, gdst, gsrc,
                   gptr, accepted)
            total = 0
            for s in range(every):
                total += accepted[s]
            last = float(total) / denom
            acc += last
            measure(phi, w, a, b, r, w_nnn, strides, nnn_fwd, tiles, n_last, mdst, msrc, macc, R, S, sums, volume,
                    out)
            A = (((g[0] * out[1] + g[1] * out[3]) + g[2] * out[4]) + g[3] * out[2]) + g[4] * out[5]
            D = out[0] - A
            if k == 0:
                c0 = D
            sd += D - c0
            ds[c, k] = D
            if with_features:
                accumulate(phi, strides, row_base, n_last, D - c0, True, so[c], sdo[c])
        stats[c, 0] = sd
        stats[c, 1] = acc
        stats[c, 2] = last
    return 0
