"""parallel_qftml: MPI-parallel Monte Carlo sampling of phi^4 lattice field theory."""

from .kernels.target import configure as _configure_numba_target, isolate_cache as _isolate_cache

_configure_numba_target()          # before any kernel is compiled or loaded (kernels/target.py)
_isolate_cache()

__version__ = "0.1.0"
