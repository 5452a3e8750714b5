"""Training data for KL(q||p) learning: configurations from a NumPy .npy or an HDF5 file.

The array must have shape (*lead, *lattice.shape) with any number of leading axes (none: one
configuration, e.g. an image); its configurations are taken in C order of the leading axes. An HDF5
file of `pqml sample` is read from /configs/phi (n_saved, n_replicas, *shape) unless data.dataset names
another dataset. NumPy files are opened with allow_pickle=False (never unpickled). Every rank reads
only its block. Bad input -> DataError (exit 2) on every rank before anything is written.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import UserError
from ..parallel.reductions import any_rank, bcast, global_max
from . import schema as S


class DataError(UserError):
    """Unusable training data (names the file and what is wrong)."""


def _open(path: str, dataset: str):
    """(array-like with .shape/.dtype and slicing, closer)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"data file {path!r} not found")
    with open(p, "rb") as fh:
        magic = fh.read(8)
    if magic.startswith(b"\x93NUMPY"):
        try:
            arr = np.load(p, mmap_mode="r", allow_pickle=False)
        except ValueError as e:
            raise DataError(f"data file {path!r}: cannot read ({e})") from None
        return arr, lambda: None
    if magic == b"\x89HDF\r\n\x1a\n":
        import h5py
        f = h5py.File(p, "r")
        name = dataset or f"{S.CONFIGS}/{S.PHI}"
        if name not in f or not isinstance(f[name], h5py.Dataset):
            f.close()
            raise DataError(f"data file {path!r} has no dataset {name!r} (set data.dataset)")
        return f[name], f.close
    raise DataError(f"data file {path!r} is neither a NumPy .npy nor an HDF5 file")


def _check(arr, path: str, shape: tuple) -> int:
    """Number of configurations, or DataError."""
    d = len(shape)
    if arr.dtype.kind not in "fiu":
        raise DataError(f"data file {path!r}: dtype {arr.dtype} is not numeric")
    if arr.ndim < d or tuple(arr.shape[arr.ndim - d:]) != tuple(shape):
        raise DataError(f"data file {path!r}: shape {tuple(arr.shape)} does not end with the lattice shape "
                        f"{tuple(shape)}")
    n = int(np.prod(arr.shape[:arr.ndim - d]))
    if n == 0:
        raise DataError(f"data file {path!r} holds no configurations")
    return n


def load_blocks(path: str, dataset: str, topo) -> tuple:
    """(blocks (N, *local_shape) float64 of this rank, global min, global max)."""
    g = topo.geometry
    comm = topo.world
    msg, n = None, 0
    if comm.Get_rank() == 0:
        try:
            arr, close = _open(path, dataset)
            try:
                n = _check(arr, path, g.shape)
            finally:
                close()
        except DataError as e:
            msg = str(e)
        except OSError as e:
            msg = f"data file {path!r}: cannot read ({e})"
    msg, n = bcast((msg, n), comm)
    if msg:
        raise DataError(msg)
    arr, close = _open(path, dataset)
    try:
        lead = arr.ndim - g.ndim
        block = np.asarray(arr[(slice(None),) * lead + tuple(g.global_slices)], dtype=np.float64)
    finally:
        close()
    block = block.reshape((n, *g.local_shape))
    if any_rank(not np.all(np.isfinite(block)), comm):
        raise DataError(f"data file {path!r} contains NaN or infinite values")
    lo = -global_max(-float(block.min()), comm)
    hi = global_max(float(block.max()), comm)
    return block, lo, hi


def load_rows(path: str, dataset: str, comm) -> np.ndarray:
    """All configurations of a data file as rows (N, n_visible) on every rank (RBM training): leading
    axis = configurations, the rest flattened (an HDF5 file of pqml sample: (n_saved * R, V)). Errors as
    load_blocks (DataError on every rank, nothing written)."""
    msg, rows = None, None
    if comm.Get_rank() == 0:
        try:
            arr, close = _open(path, dataset)
            try:
                if arr.dtype.kind not in "fiu":
                    raise DataError(f"data file {path!r}: dtype {arr.dtype} is not numeric")
                if arr.ndim < 2 or arr.shape[0] == 0:
                    raise DataError(f"data file {path!r}: shape {tuple(arr.shape)}; need (n_configurations, ...)")
                sampler_configs = getattr(arr, "name", "") == f"/{S.CONFIGS}/{S.PHI}"
                rows = np.asarray(arr[()], dtype=np.float64)
            finally:
                close()
            if sampler_configs:
                rows = rows.reshape(rows.shape[0] * rows.shape[1], -1)     # (n_saved, R, *shape)
            rows = rows.reshape(rows.shape[0], -1)
            if not np.all(np.isfinite(rows)):
                raise DataError(f"data file {path!r} contains NaN or infinite values")
        except DataError as e:
            msg, rows = str(e), None
        except OSError as e:
            msg, rows = f"data file {path!r}: cannot read ({e})", None
    msg, rows = bcast((msg, rows), comm)
    if msg:
        raise DataError(msg)
    return rows
