"""Derived observables with jackknife errors (errors.jackknife), from series of m = sum(phi)/V.

    susceptibility chi_|m| = V (<m^2> - <|m|>^2)    (with |m|: the finite-volume order parameter)
    chi_2 = V (<m^2> - <m>^2)  (absolute=False)      (the papers' chi_2, connected; = G~(0) of
                                                     correlation.py; meaningful in the symmetric phase)
(m is per site, so both are V times a variance of the per-site magnetisation.)
    Binder cumulant U = 1 - <m^4> / (3 <m^2>^2)
"""
from __future__ import annotations

import numpy as np

from .errors import jackknife


def susceptibility(m, volume: int, n_bins: int = 20, absolute: bool = True):
    m = np.asarray(m, dtype=np.float64)
    first = np.abs(m) if absolute else m
    return jackknife([m ** 2, first], lambda m2, m1: volume * (m2 - m1 ** 2), n_bins)


def binder(m, n_bins: int = 20):
    m = np.asarray(m, dtype=np.float64)
    return jackknife([m ** 4, m ** 2], lambda m4, m2: 1.0 - m4 / (3.0 * m2 ** 2), n_bins)
