"""Reading the package's HDF5 run files (docs/schema.md) with plain h5py: no mpi4py, no package import.

Series are named `ensemble|replica` as in pyerrors: the ensemble is the file's stem (or a name given),
the replica the column of the file's (n_meas, n_replicas) datasets. Bad files raise
files.AnalysisError (a ValueError) with one line naming the file (files.py).
"""
from __future__ import annotations

from pathlib import Path

from .files import open_measurement, run_series


def load_run(path, warn=None) -> dict:
    """{"attrs": root attributes, "sweep": (n_meas,), "observables": {name: (n_meas, n_replicas)},
    "complete": bool, ...} (files.open_measurement); an incomplete run is reported through `warn`."""
    return open_measurement(path, warn)


def load_series(paths, name: str, ensemble: str | None = None) -> dict:
    """{"ensemble|replica": 1D series of observable `name`} over one or several files."""
    out = {}
    for p in [paths] if isinstance(paths, (str, Path)) else paths:
        for key, series in run_series(load_run(p), name, ensemble or Path(p).stem).items():
            if key in out:
                raise ValueError(f"{p}: series {key!r} is already loaded from another file (same file stem or "
                                 f"ensemble name; pass distinct ensemble names)")
            out[key] = series
    return out
