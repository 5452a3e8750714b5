"""An HDF5 file shared by all ranks of a communicator, with two back-ends and one behaviour.

* ``mpio`` (h5py built against parallel HDF5): every rank opens the file with the MPI-IO driver;
  metadata operations (create, resize, attributes) are called by every rank with the same arguments;
  each rank writes its own block of a distributed array in one collective write; values known on
  rank 0 (observables) are written by rank 0 alone (independent I/O).
* ``gather`` (pip's h5py, no MPI): world rank 0 opens the file; blocks are gathered to it.
The datasets hold the same bytes either way. ``PQML_H5_BACKEND=gather`` forces the fallback.
Every method must be called by every rank of the communicator.
A failed write (h5py raises OSError "Can't write data", or RuntimeError "file write failed" from a resize
or flush, when the disk is full) becomes ``errors.WriteError`` naming the file, on the rank that saw it;
the CLI ends the job from there (exit 4, docs/config.md).
"""
from __future__ import annotations

import os
import warnings
from contextlib import contextmanager

import numpy as np

from .. import debughooks
from ..errors import OutputError, WriteError
from ..parallel.reductions import bcast, gather_to_root

BACKEND_ENV = "PQML_H5_BACKEND"


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
        self.path = str(path)
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

    @contextmanager
    def writing(self):
        """Turn h5py's write failures (OSError, RuntimeError) into WriteError naming this file."""
        try:
            yield
        except (OSError, RuntimeError) as e:
            raise WriteError(self.path, e) from e

    def _fault(self, point: str) -> None:
        """Test hook (PQML_DEBUG_HOOKS=1, PQML_TEST_WRITE_ERROR=checkpoint|configs|observables)."""
        debughooks.write_error("checkpoint" if self.path.endswith(".tmp") else point, self.comm.Get_rank())

    # -- metadata (every rank, same arguments) --------------------------------------------------------
    def create_dataset(self, name, **kw):
        if self.f is not None:
            with self.writing():
                return self.f.create_dataset(name, **kw)

    def require_group(self, name):
        if self.f is not None:
            with self.writing():
                return self.f.require_group(name)

    def set_attrs(self, name: str = "/", **attrs):
        if self.f is not None:
            with self.writing():
                obj = self.f[name]
                for k, v in attrs.items():
                    obj.attrs[k] = v

    def resize(self, name: str, n: int, axis: int = 0):
        if self.f is not None:
            with self.writing():
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
            with self.writing():
                self._fault(name.split("/")[0])
                self.f[name][index] = value

    def write_blocks(self, name: str, prefix: tuple, block: np.ndarray, slices: tuple):
        """Write each rank's `block` at dataset[prefix + slices] (every rank has a block)."""
        with self.writing():
            self._fault(name.split("/")[0])
            if self.backend == "mpio":
                ds = self.f[name]
                with ds.collective:
                    ds[prefix + tuple(slices)] = np.ascontiguousarray(block)
                return
        parts = gather_to_root((prefix, tuple(slices), np.ascontiguousarray(block)), self.comm)
        if self.root:
            with self.writing():
                ds = self.f[name]
                for p, sl, blk in parts:
                    ds[p + sl] = blk

    def flush(self):
        if self.f is not None:
            with self.writing():
                self.f.flush()

    def close(self):
        if self.f is not None:
            f, self.f = self.f, None
            with self.writing():
                f.close()
        self.comm.Barrier()
