"""parallel_qftml: MPI-parallel Monte Carlo sampling of phi^4 lattice field theory."""

__version__ = "0.1.0"
