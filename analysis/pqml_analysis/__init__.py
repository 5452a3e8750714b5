"""Serial analysis of parallel_qftml output (never imports mpi4py)."""
from .errors import bin_averages, binned_error, jackknife, tau_int_gamma
from .reweighting import Reweighted, reweight, weights

__all__ = ["bin_averages", "binned_error", "jackknife", "tau_int_gamma", "Reweighted", "reweight", "weights"]
