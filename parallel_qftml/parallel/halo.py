"""Halo exchange of a padded local block: faces, edges and corners, one colour at a time.

Axes are exchanged one after another (0, 1, ..., d-1). The slab sent along axis mu spans the full
padded range of the axes already exchanged and the interior of the others, so edge and corner ghosts
arrive in d steps of two messages (2d messages instead of 3**d - 1). After colour c is updated only the
boundary sites of colour c changed, and only they are sent (half of a face with 2 colours, 1/2**(d-1)
with 2**d colours; docs/parallel.md). Along an axis with one rank the ghosts are filled by a local copy.
Index lists are precomputed; sender and receiver enumerate the same global sites in the same order.
"""
from __future__ import annotations

import numpy as np


def _slab(geom, axis: int, layer: int, colour, nnn: bool) -> np.ndarray:
    P = geom.padded_shape
    ranges = []
    for nu in range(geom.ndim):
        if nu == axis:
            ranges.append(np.array([layer]))
        elif nu < axis:
            ranges.append(np.arange(P[nu]))
        else:
            ranges.append(np.arange(1, P[nu] - 1))
    mesh = np.broadcast_arrays(*np.ix_(*ranges))
    flat = np.ravel_multi_index(tuple(mesh), P).ravel()
    if colour is None:
        return flat.astype(np.int64)
    gc = geom.padded_global_coords()
    cols = geom.colour_of([gc[nu][m] for nu, m in enumerate(mesh)], nnn).ravel()
    return flat[cols == colour].astype(np.int64)


class HaloExchange:
    """Fills the ghost layer of flattened padded arrays of one rank's block."""

    def __init__(self, topology, nnn: bool):
        self.topo = topology
        g = topology.geometry
        self.geom = g
        self.nnn = nnn
        self.comm = topology.grid_comm
        self.neigh = [topology.neighbours(mu) for mu in range(g.ndim)]
        self.plans = {}
        for colour in [None, *range(g.n_colours(nnn))]:
            plan = []
            for mu in range(g.ndim):
                n = g.local_shape[mu]
                lists = [_slab(g, mu, layer, colour, nnn) for layer in (1, n, 0, n + 1)]
                plan.append((*lists, *[np.empty(len(x)) for x in lists]))
            self.plans[colour] = plan

    def exchange(self, field: np.ndarray, colour=None, axes=None):
        """Update the ghosts of `field` (flat padded) with the neighbours' sites of `colour` (None = all),
        along all axes (faces, edges, corners) or only along `axes` (faces)."""
        for mu, (face_lo, face_hi, ghost_lo, ghost_hi, b_flo, b_fhi, b_glo, b_ghi) in enumerate(
                self.plans[colour]):
            if axes is not None and mu not in axes:
                continue
            if self.geom.proc_grid[mu] == 1:
                field[ghost_lo] = field[face_hi]
                field[ghost_hi] = field[face_lo]
                continue
            lower, upper = self.neigh[mu]
            np.take(field, face_hi, out=b_fhi)
            self.comm.Sendrecv(b_fhi, dest=upper, sendtag=2 * mu, recvbuf=b_glo, source=lower, recvtag=2 * mu)
            field[ghost_lo] = b_glo
            np.take(field, face_lo, out=b_flo)
            self.comm.Sendrecv(b_flo, dest=lower, sendtag=2 * mu + 1, recvbuf=b_ghi, source=upper,
                               recvtag=2 * mu + 1)
            field[ghost_hi] = b_ghi

    def local_pairs(self, colour=None, axes=None):
        """(dst, src) index arrays such that ``for i: field[dst[i]] = field[src[i]]`` in order fills the
        ghosts exactly as exchange(field, colour, axes) does; only for a grid of one rank (every axis
        local), where the fused kernels (kernels/chain.py) copy the ghosts themselves."""
        assert all(p == 1 for p in self.geom.proc_grid), "local_pairs needs a one-rank grid"
        dst, src = [], []
        for mu, (face_lo, face_hi, ghost_lo, ghost_hi, *_) in enumerate(self.plans[colour]):
            if axes is None or mu in axes:
                dst += [ghost_lo, ghost_hi]
                src += [face_hi, face_lo]
        cat = lambda x: np.concatenate(x).astype(np.int64) if x else np.empty(0, np.int64)  # noqa: E731
        return cat(dst), cat(src)
