"""Serial analysis of parallel_qftml output (never imports mpi4py). See docs/analysis.md."""
from .errors import bin_averages, binned_error, jackknife, tau_int_gamma
from .load import load_run, load_series
from .observables import binder, susceptibility
from .reweighting import Reweighted, reweight, weights

__all__ = ["bin_averages", "binned_error", "jackknife", "tau_int_gamma", "load_run", "load_series", "binder",
           "susceptibility", "Reweighted", "reweight", "weights"]
