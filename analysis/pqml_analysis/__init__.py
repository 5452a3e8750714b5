"""Serial analysis of parallel_qftml output (never imports mpi4py). See docs/analysis.md and
docs/analysis_methods.md."""
from .correlation import SecondMoment, second_moment, timeslice_correlator, two_point
from .errors import Estimate, bin_averages, binned_error, bootstrap, gamma_error, jackknife, tau_int_gamma
from .files import AnalysisError, check_outputs, finite_series, open_measurement, pooled, run_series
from .load import load_run, load_series
from .multihist import (effective_sample_size, expectation, expectation_jackknife, free_energies_jackknife,
                        free_energy, overlap_matrix, solve_free_energies)
from .observables import binder, susceptibility
from .overlap import WeightFunction, check_mean, parse_couplings, parse_scan, target_action, weight_function
from .reweighting import Reweighted, reweight, weights

__all__ = ["SecondMoment", "second_moment", "timeslice_correlator", "two_point",
           "Estimate", "bin_averages", "binned_error", "bootstrap", "gamma_error", "jackknife", "tau_int_gamma",
           "AnalysisError", "check_outputs", "finite_series", "open_measurement", "pooled", "run_series",
           "load_run", "load_series",
           "effective_sample_size", "expectation", "expectation_jackknife", "free_energies_jackknife",
           "free_energy", "overlap_matrix", "solve_free_energies",
           "binder", "susceptibility",
           "WeightFunction", "check_mean", "parse_couplings", "parse_scan", "target_action", "weight_function",
           "Reweighted", "reweight", "weights"]
