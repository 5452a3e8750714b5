"""HDF5 output of a sampling run, written by world rank 0 with plain (serial) h5py.

Layout (``SCHEMA_VERSION`` 1):
    /observables/<name>   float64 (n_meas, n_replicas), resizable along axis 0, chunked
    /observables/sweep    int64 (n_meas,), sweep count at each measurement
    root attributes       ROOT_ATTRS (how the file was made), ``complete`` (True only after close)
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..errors import OutputError

SCHEMA_VERSION = 1
OBSERVABLES_GROUP = "observables"
SWEEP_DATASET = "sweep"
ATTR_COMPLETE = "complete"
ATTR_SCHEMA_VERSION = "schema_version"
ATTR_DELTA = "delta"
ATTR_N_COLOURS = "n_colours"
# metadata keys expected at create (plus ATTR_DELTA / ATTR_N_COLOURS, set once known)
ROOT_ATTRS = ("config_text", "config_sha256", "package_version", "seed", "global_shape", "proc_grid",
              "n_replicas", "n_ranks", "created", "python_version", "numpy_version", "numba_version",
              "h5py_version", "mpi_vendor", "mpi4py_version")
# the keys of Sampler.measure(), in file order
OBSERVABLE_NAMES = ("action", "nn", "nnn", "phi2", "phi4", "phi1", "m", "abs_m", "acceptance")
CHUNK_BYTES = 8 * 1024


def check_output_path(path: str | os.PathLike, overwrite: bool) -> None:
    """Raise ``OutputError`` if ``path`` cannot be (over)written; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output.path {str(path)!r} is a directory")
    if p.exists() and not overwrite:
        raise OutputError(f"output.path {str(path)!r} exists; set output.overwrite = true "
                          f"or choose another path")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output.path {str(path)!r}: directory {str(parent)!r} is not writable")


class RunOutput:
    """Observable time series of one run (open on world rank 0 only)."""

    def __init__(self, f, n_replicas: int):
        self.f, self.n_replicas = f, n_replicas
        self.group = f[OBSERVABLES_GROUP]
        self.n_meas = 0

    @classmethod
    def create(cls, path: str | os.PathLike, overwrite: bool, metadata: Mapping, n_replicas: int,
               names: Sequence[str] = OBSERVABLE_NAMES) -> "RunOutput":
        import h5py

        check_output_path(path, overwrite)
        Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
        f = h5py.File(path, "w")
        for k, v in metadata.items():
            if v is not None:
                f.attrs[k] = v
        f.attrs[ATTR_SCHEMA_VERSION] = SCHEMA_VERSION
        f.attrs[ATTR_COMPLETE] = False
        f.create_group(OBSERVABLES_GROUP)
        out = cls(f, n_replicas)
        out.group.create_dataset(SWEEP_DATASET, shape=(0,), maxshape=(None,), dtype=np.int64,
                                 chunks=(CHUNK_BYTES // 8,))
        for name in names:
            out._create(name)
        f.flush()
        return out

    def _create(self, name: str) -> None:
        rows = max(1, CHUNK_BYTES // (8 * self.n_replicas))
        ds = self.group.create_dataset(name, shape=(self.n_meas, self.n_replicas),
                                       maxshape=(None, self.n_replicas), dtype=np.float64,
                                       chunks=(rows, self.n_replicas), fillvalue=np.nan)
        ds.attrs["shape_meaning"] = "(measurement, replica)"

    def set_attrs(self, **attrs) -> None:
        """Set root attributes (e.g. the tuned ``delta``, ``n_colours``)."""
        for k, v in attrs.items():
            self.f.attrs[k] = v
        self.f.flush()

    def append(self, sweep: int, values: Mapping[str, np.ndarray]) -> None:
        """Add one measurement: ``values[name]`` has one entry per replica. A name not seen before
        gets a new dataset (earlier rows NaN); a registered name missing here is written as NaN."""
        for name in values:
            if name not in self.group:
                self._create(name)
        n = self.n_meas + 1
        sw = self.group[SWEEP_DATASET]
        sw.resize((n,))
        sw[n - 1] = sweep
        for name, ds in self.group.items():
            if name == SWEEP_DATASET:
                continue
            ds.resize((n, self.n_replicas))
            if name in values:
                ds[n - 1, :] = np.asarray(values[name], dtype=np.float64).reshape(self.n_replicas)
        self.n_meas = n
        self.f.flush()

    def close(self, complete: bool = True) -> None:
        if self.f:
            self.f.attrs[ATTR_COMPLETE] = bool(complete)
            self.f.close()

    def __enter__(self) -> "RunOutput":
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(complete=exc_type is None)
