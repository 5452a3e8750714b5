"""An HDF5 file shared by all ranks of a communicator, with two back-ends and one behaviour.

* ``mpio`` (h5py built against parallel HDF5): every rank opens the file with the MPI-IO driver;
  metadata operations (create, resize, attributes) are called by every rank with the same arguments;
  each rank writes its own block of a distributed array in one collective write; values known on
  rank 0 (observables) are written by rank 0 alone (independent I/O).
* ``gather`` (pip's h5py, no MPI): world rank 0 opens the file; blocks are gathered to it.
The datasets hold the same bytes either way. ``PQML_H5_BACKEND=gather`` forces the fallback.
Every method must be called by every rank of the communicator.
"""
from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import OutputError
from ..parallel.reductions import bcast, gather_to_root

BACKEND_ENV = "PQML_H5_BACKEND"
# Test hook (tests/unit/test_crash.py): pause at a named point of a write so that a test can kill the
# job exactly there. PQML_TEST_PAUSE_AT=checkpoint|config, PQML_TEST_PAUSE_SECONDS (default 30).
PAUSE_ENV = "PQML_TEST_PAUSE_AT"


def test_pause(point: str) -> None:
    if os.environ.get(PAUSE_ENV) == point:
        import sys
        import time
        print(f"PQML_TEST_PAUSE {point}", file=sys.stderr, flush=True)
        time.sleep(float(os.environ.get("PQML_TEST_PAUSE_SECONDS", "30")))


def backend_name() -> str:
    import h5py
    forced = os.environ.get(BACKEND_ENV, "")
    if forced in ("gather", "mpio"):
        return "gather" if forced == "gather" or not h5py.get_config().mpi else "mpio"
    return "mpio" if h5py.get_config().mpi else "gather"


def describe_backend() -> str:
    return {"mpio": "mpio (parallel HDF5, collective writes)",
            "gather": "gather to rank 0 (h5py without MPI)"}[backend_name()]


class SharedH5:
    def __init__(self, path, mode: str, comm):
        import h5py
        self.comm = comm
        self.backend = backend_name()
        self.root = comm.Get_rank() == 0
        if self.backend == "gather" and comm.Get_size() > 1 and self.root:
            why = "PQML_H5_BACKEND=gather" if h5py.get_config().mpi else "h5py has no MPI support"
            warnings.warn(f"{why}: HDF5 output is gathered to rank 0 and written serially (same file, "
                          f"slower)", RuntimeWarning, stacklevel=2)
        self.f = None
        err = None
        try:
            if self.backend == "mpio":
                self.f = h5py.File(path, mode, driver="mpio", comm=comm)
            elif self.root:
                self.f = h5py.File(path, mode)
        except OSError as e:
            err = f"cannot open {str(path)!r} ({mode}): {e}"
        if self.backend == "gather":
            err = bcast(err, comm)
        if err:
            raise OutputError(err)

    # -- metadata (every rank, same arguments) --------------------------------------------------------
    def create_dataset(self, name, **kw):
        if self.f is not None:
            return self.f.create_dataset(name, **kw)

    def require_group(self, name):
        if self.f is not None:
            return self.f.require_group(name)

    def set_attrs(self, name: str = "/", **attrs):
        if self.f is not None:
            obj = self.f[name]
            for k, v in attrs.items():
                obj.attrs[k] = v

    def resize(self, name: str, n: int, axis: int = 0):
        if self.f is not None:
            self.f[name].resize(n, axis=axis)

    def make_scale(self, scale: str, dataset: str, dim: int = 0):
        if self.f is not None:
            s = self.f[scale]
            if not s.is_scale:
                s.make_scale(os.path.basename(scale))
            self.f[dataset].dims[dim].attach_scale(s)

    # -- data ---------------------------------------------------------------------------------------
    def write_root(self, name: str, index, value):
        """Write a value that rank 0 holds (other ranks pass anything)."""
        if self.root:
            self.f[name][index] = value

    def write_blocks(self, name: str, prefix: tuple, block: np.ndarray, slices: tuple):
        """Write each rank's `block` at dataset[prefix + slices] (every rank has a block)."""
        if self.backend == "mpio":
            ds = self.f[name]
            with ds.collective:
                ds[prefix + tuple(slices)] = np.ascontiguousarray(block)
            return
        parts = gather_to_root((prefix, tuple(slices), np.ascontiguousarray(block)), self.comm)
        if self.root:
            ds = self.f[name]
            for p, sl, blk in parts:
                ds[p + sl] = blk

    def flush(self):
        if self.f is not None:
            self.f.flush()

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None
        self.comm.Barrier()
