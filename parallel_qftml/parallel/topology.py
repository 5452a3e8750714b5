"""Topology: the world communicator split into replica groups x a periodic Cartesian process grid.

World ranks [k * P, (k + 1) * P) form replica k (P = prod(proc_grid) ranks); each replica is one
independent Markov chain spread over its own periodic Cartesian communicator. Ranks with the same grid
position in different replicas share `across_comm` (used for cross-replica reductions). One rank
(COMM_SELF) runs the same code path. Nothing here uses a hidden global communicator.
"""
from __future__ import annotations

from ..errors import LatticeError
from ..lattice.geometry import Geometry, split_grid, validate_shape


class Topology:
    def __init__(self, comm, shape, n_replicas: int = 1, proc_grid=None):
        shape = validate_shape(shape)
        size = comm.Get_size()
        if n_replicas < 1 or size % n_replicas:
            raise LatticeError(f"parallel.n_replicas = {n_replicas} does not divide the {size} ranks")
        per = size // n_replicas
        if proc_grid is None:
            proc_grid = split_grid(shape, per)
        proc_grid = tuple(int(g) for g in proc_grid)
        n = 1
        for g in proc_grid:
            n *= g
        if len(proc_grid) != len(shape) or n != per:
            raise LatticeError(f"lattice.proc_grid {list(proc_grid)} needs {n} ranks per replica but "
                               f"{size} ranks / {n_replicas} replicas = {per}")
        # Validate the geometry (all ranks identically) before creating any communicator.
        Geometry(shape, proc_grid, (0,) * len(shape))
        self.world = comm
        self.shape = shape
        self.n_replicas = n_replicas
        self.proc_grid = proc_grid
        self.replica = comm.Get_rank() // per
        group = comm.Split(self.replica, comm.Get_rank())
        self.grid_comm = group.Create_cart(list(proc_grid), periods=[True] * len(shape), reorder=False)
        group.Free()
        self.across_comm = comm.Split(self.grid_comm.Get_rank(), self.replica)
        self.coords = tuple(self.grid_comm.Get_coords(self.grid_comm.Get_rank()))
        self.geometry = Geometry(shape, proc_grid, self.coords)

    @property
    def is_root(self) -> bool:
        return self.world.Get_rank() == 0

    @property
    def is_grid_root(self) -> bool:
        return self.grid_comm.Get_rank() == 0

    def neighbours(self, axis: int):
        """(lower, upper) grid ranks along `axis` (periodic)."""
        return self.grid_comm.Shift(axis, 1)

    def describe(self) -> str:
        return (f"{self.world.Get_size()} ranks = {self.n_replicas} replicas x grid "
                f"{'x'.join(map(str, self.proc_grid))}, lattice {'x'.join(map(str, self.shape))}, "
                f"local block {'x'.join(map(str, self.geometry.local_shape))}")

    def free(self):
        self.grid_comm.Free()
        self.across_comm.Free()
