"""Geometry of a d-dimensional periodic lattice split into equal blocks (no MPI here).

Conventions (docs/conventions.md): arrays are C-ordered with axis 0 slowest; the global site index is
i = ravel_multi_index(x, shape) (for 2D shape (Ly, Lx), i = y*Lx + x as in the yardstick). Each rank
holds a block of `local_shape` sites stored in a padded array of `local_shape + 2` with a one-site
ghost layer (faces, edges and corners). Every local extent is even, so block offsets are even and a
site's colour is the same whether computed from local or global coordinates.

Colours: with nearest neighbours only, 2 colours, c = (sum_mu x_mu) mod 2 (global parity). With
next-nearest (diagonal) neighbours, 2**d colours, c = sum_mu (x_mu mod 2) << mu. Sites of one colour
never couple to each other, so each colour is updated in parallel; colours go in order 0, 1, ...
"""
from dataclasses import dataclass
from functools import cached_property
import itertools

import numpy as np

from ..errors import LatticeError

MAX_DIM = 4


def validate_shape(shape) -> tuple:
    shape = tuple(int(n) for n in shape)
    if not 1 <= len(shape) <= MAX_DIM:
        raise LatticeError(f"lattice.shape must have 1 to {MAX_DIM} extents, got {list(shape)}")
    for n in shape:
        if n < 2 or n % 2:
            raise LatticeError(f"lattice.shape extents must be even and >= 2, got {list(shape)}")
    return shape


def split_grid(shape, n_ranks: int) -> tuple:
    """Automatic process grid: factor n_ranks over the axes, largest primes first, each factor to
    the axis with the largest local extent that it divides into an even local extent; ties go to
    the slowest (first) axis, which keeps halo messages contiguous in memory."""
    shape = validate_shape(shape)
    grid = [1] * len(shape)
    factors = []
    n, p = n_ranks, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    for f in sorted(factors, reverse=True):
        best = None
        for mu in range(len(shape)):
            local = shape[mu] // grid[mu]
            if local % f == 0 and (local // f) % 2 == 0:
                if best is None or local > shape[best] // grid[best]:
                    best = mu
        if best is None:
            raise LatticeError(f"cannot split lattice {list(shape)} over {n_ranks} ranks into blocks with "
                               f"even extents; give parallel.n_replicas or lattice.proc_grid")
        grid[best] *= f
    return tuple(grid)


@dataclass(frozen=True)
class Geometry:
    """Global lattice, process grid and this rank's block."""
    shape: tuple
    proc_grid: tuple
    coords: tuple

    def __post_init__(self):
        shape = validate_shape(self.shape)
        grid = tuple(int(g) for g in self.proc_grid)
        if len(grid) != len(shape) or any(g < 1 for g in grid):
            raise LatticeError(f"lattice.proc_grid {list(grid)} must have {len(shape)} positive entries")
        for mu, (n, g) in enumerate(zip(shape, grid)):
            if n % g:
                raise LatticeError(f"lattice.proc_grid {list(grid)} does not divide lattice.shape "
                                   f"{list(shape)} (axis {mu}: {n} sites over {g} ranks)")
            if (n // g) % 2:
                raise LatticeError(f"local extent {n // g} on axis {mu} is odd (lattice.shape {list(shape)}, "
                                   f"proc_grid {list(grid)}); checkerboard updates need even local extents")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "proc_grid", grid)
        object.__setattr__(self, "coords", tuple(int(c) for c in self.coords))

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def volume(self) -> int:
        return int(np.prod(self.shape))

    @cached_property
    def local_shape(self) -> tuple:
        return tuple(n // g for n, g in zip(self.shape, self.proc_grid))

    @cached_property
    def offset(self) -> tuple:
        return tuple(c * n for c, n in zip(self.coords, self.local_shape))

    @cached_property
    def padded_shape(self) -> tuple:
        return tuple(n + 2 for n in self.local_shape)

    @cached_property
    def strides(self) -> np.ndarray:
        """Element strides of the padded C-ordered array."""
        s = np.ones(self.ndim, dtype=np.int64)
        for mu in range(self.ndim - 2, -1, -1):
            s[mu] = s[mu + 1] * self.padded_shape[mu + 1]
        return s

    @cached_property
    def interior(self) -> tuple:
        return tuple(slice(1, n + 1) for n in self.local_shape)

    @cached_property
    def global_slices(self) -> tuple:
        return tuple(slice(o, o + n) for o, n in zip(self.offset, self.local_shape))

    def n_colours(self, nnn: bool) -> int:
        return 2 ** self.ndim if nnn else 2

    def colour_of(self, gcoords, nnn: bool):
        """Colour of global coordinates (sequence of arrays or ints, one per axis)."""
        if nnn:
            return sum((np.asarray(g) % 2) << mu for mu, g in enumerate(gcoords))
        return sum(np.asarray(g) for g in gcoords) % 2

    def padded_global_coords(self):
        """Global coordinates (one int64 array per axis, broadcastable) of every padded position."""
        return [((np.arange(n + 2) - 1 + o) % L).astype(np.int64)
                for n, o, L in zip(self.local_shape, self.offset, self.shape)]

    def rows(self, colour: int, nnn: bool):
        """Rows (lines along the last axis) holding sites of `colour`, for the kernels.

        Returns (base, gbase, x0): flat padded index of local x = 0 of the row, global index of global
        x = 0 of the row, and the first local x of that colour; one int64 entry per row.
        """
        d = self.ndim
        bases, gbases, x0s = [], [], []
        gstr = [int(np.prod(self.shape[mu + 1:])) for mu in range(d)]
        for lead in itertools.product(*[range(n) for n in self.local_shape[:-1]]):
            g = [o + l for o, l in zip(self.offset, lead)]
            if nnn:
                if any((g[mu] % 2) != ((colour >> mu) & 1) for mu in range(d - 1)):
                    continue
                x0 = (colour >> (d - 1)) & 1
            else:
                x0 = (colour - sum(g) - self.offset[-1]) % 2
            bases.append(sum((l + 1) * int(self.strides[mu]) for mu, l in enumerate(lead)) + 1)
            gbases.append(sum(gi * gstr[mu] for mu, gi in enumerate(g)) + self.offset[-1])
            x0s.append(x0)
        return (np.array(bases, dtype=np.int64), np.array(gbases, dtype=np.int64),
                np.array(x0s, dtype=np.int64))

    def slab_ghost_pairs(self):
        """(dst, src) flat padded indices that fill, by periodic copy, the ghosts along axes 1..d-1 of
        the slab at local axis-0 index 0 (add k * strides[0] for slab k). Only valid when axes 1..d-1
        are not split over ranks; used by the pipelined sweep (sampler.py)."""
        P = self.padded_shape
        ranges = [np.array([1])] + [np.arange(n) for n in P[1:]]
        mesh = [m.ravel() for m in np.meshgrid(*ranges, indexing="ij")]
        ghost = np.zeros(mesh[0].shape, dtype=bool)
        src = [m.copy() for m in mesh]
        for mu in range(1, self.ndim):
            n = self.local_shape[mu]
            ghost |= (mesh[mu] == 0) | (mesh[mu] == n + 1)
            src[mu] = (mesh[mu] - 1) % n + 1
        flat = lambda c: np.ravel_multi_index(tuple(x[ghost] for x in c), P).astype(np.int64)
        return flat(mesh), flat(src)

    def tile_rows(self) -> np.ndarray:
        """Row bases (as in `rows`) grouped into tiles of 2**d sites with even global corner, which
        never straddle two blocks: shape (n_tiles, 2**(d-1)), members in lexicographic order of
        their offsets from the corner. Measurements pre-sum each tile in a fixed order."""
        members = list(itertools.product((0, 1), repeat=self.ndim - 1))
        out = []
        for corner in itertools.product(*[range(0, n, 2) for n in self.local_shape[:-1]]):
            out.append([sum((c + m + 1) * int(self.strides[mu]) for mu, (c, m) in enumerate(zip(corner, mem))) + 1
                        for mem in members])
        return np.array(out, dtype=np.int64).reshape(-1, len(members))

    def nnn_offsets(self) -> np.ndarray:
        """Diagonal neighbour offsets, for mu < nu: +mu+nu, -mu-nu, +mu-nu, -mu+nu."""
        s = self.strides
        out = []
        for mu in range(self.ndim):
            for nu in range(mu + 1, self.ndim):
                out += [s[mu] + s[nu], -s[mu] - s[nu], s[mu] - s[nu], -s[mu] + s[nu]]
        return np.array(out, dtype=np.int64)
