"""Couplings files: the group /couplings of an output file (pqml learn or pqml sample) or a file a user
writes with `write_couplings_file`, read for [action] kind = "file" (format: docs/schema.md,
"Couplings file")."""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import UserError
from . import schema as S

OPTIONAL_SITE = ("r",)      # missing -> 0 at every site


def _real_array(path, g, name: str, shape: tuple) -> np.ndarray:
    """Dataset /couplings/<name> as float64, UserError unless it is a real (float or integer) array
    of `shape` with finite values."""
    where = f"{path!r}: /{S.COUPLINGS}/{name}"
    obj = g[name]
    import h5py
    if not isinstance(obj, h5py.Dataset):
        raise UserError(f"{where} is not a dataset")
    dt = obj.dtype
    if dt.kind not in "fiu" or dt.names is not None or dt.subdtype is not None:
        raise UserError(f"{where} has dtype {dt} (a string, object or compound type); it must be a real "
                        f"floating-point array")
    if obj.shape != shape:
        raise UserError(f"{where} has shape {obj.shape}, the lattice needs {shape}")
    x = np.asarray(obj[...], dtype=np.float64)
    if not np.all(np.isfinite(x)):
        i = int(np.flatnonzero(~np.isfinite(x))[0])
        raise UserError(f"{where} contains NaN or infinite values (first at index "
                        f"{tuple(int(v) for v in np.unravel_index(i, shape))})")
    return x


def _w_nnn(path, g) -> float:
    v = g.attrs.get(S.ATTR_W_NNN, 0.0)
    where = f"{path!r}: attribute /{S.COUPLINGS}.{S.ATTR_W_NNN}"
    a = np.asarray(v)
    if a.dtype.kind not in "fiu" or a.size != 1 or a.dtype.kind == "b":
        raise UserError(f"{where} must be a real number, got {v!r}")
    x = float(a.reshape(()))
    if not math.isfinite(x):
        raise UserError(f"{where} must be finite, got {x}")
    return x


def read_couplings(path: str, shape) -> tuple:
    """(w (d, *shape), {a, b, r}, w_nnn) as global float64 arrays; UserError naming the file and the
    dataset if it is missing, unreadable, incomplete, of another lattice, not a real array, or has
    non-finite values (boundedness is checked by PhiFourAction.check_bounded)."""
    import h5py
    shape = tuple(shape)
    try:
        with h5py.File(path, "r") as f:
            if S.COUPLINGS not in f or not isinstance(f[S.COUPLINGS], h5py.Group):
                raise UserError(f"{path!r} has no /{S.COUPLINGS} group (not a pqml output or couplings file)")
            g = f[S.COUPLINGS]
            missing = [n for n in ("w", *S.SITE_COUPLINGS) if n not in g and n not in OPTIONAL_SITE]
            if missing:
                raise UserError(f"{path!r}: /{S.COUPLINGS} has no dataset(s) {', '.join(missing)} "
                                f"(needs w, a, b; r is optional)")
            w = _real_array(path, g, "w", (len(shape), *shape))
            site = {n: (_real_array(path, g, n, shape) if n in g else np.zeros(shape)) for n in S.SITE_COUPLINGS}
            w_nnn = _w_nnn(path, g)
    except UserError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as e:
        raise UserError(f"cannot read couplings from {path!r}: {e}") from None
    return w, site, w_nnn


def write_couplings_file(path, w, a, b, r=None, w_nnn: float = 0.0, overwrite: bool = False) -> None:
    """Write a couplings file for [action] kind = "file" from numpy arrays (serial h5py, one process):
    w of shape (d, *shape) (w[mu][x] couples x and x + e_mu), a, b (and r, default 0) of `shape`, the
    homogeneous diagonal coupling w_nnn (docs/conventions.md). The arrays are validated as
    `read_couplings` does (real, finite, shapes; the action bounded below); the file is written to a
    temporary name and renamed, so it is complete or absent. An existing file is refused (UserError)
    unless `overwrite`."""
    import h5py
    from ..models.action import PhiFourAction
    path = os.fspath(path)
    arrays = {"w": w, "a": a, "b": b, "r": np.zeros(np.shape(a)) if r is None else r}
    for n, v in arrays.items():
        v = np.asarray(v)
        if v.dtype.kind not in "fiu":
            raise UserError(f"couplings {n} has dtype {v.dtype}; it must be a real array")
        arrays[n] = v.astype(np.float64)
        if not np.all(np.isfinite(arrays[n])):
            raise UserError(f"couplings {n} contains NaN or infinite values")
    shape = arrays["a"].shape
    if arrays["w"].shape != (len(shape), *shape) or not 1 <= len(shape) <= 4:
        raise UserError(f"couplings w has shape {arrays['w'].shape}, a has {shape}: w must be (d, *a.shape), d = 1..4")
    for n in ("b", "r"):
        if arrays[n].shape != shape:
            raise UserError(f"couplings {n} has shape {arrays[n].shape}, a has {shape}")
    if isinstance(w_nnn, bool) or np.asarray(w_nnn).dtype.kind not in "fiu" or np.size(w_nnn) != 1 \
            or not math.isfinite(float(w_nnn)):
        raise UserError(f"couplings w_nnn must be a finite real number, got {w_nnn!r}")
    PhiFourAction.inhomogeneous(arrays["w"], arrays["a"], arrays["b"], arrays["r"], float(w_nnn)).check_bounded(shape)
    if os.path.exists(path) and not overwrite:
        raise UserError(f"{path!r} exists (pass overwrite=True to replace it)")
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            f.attrs[S.ATTR_SCHEMA_VERSION] = S.SCHEMA_VERSION
            g = f.create_group(S.COUPLINGS)
            for n, v in arrays.items():
                g.create_dataset(n, data=v)
            g.attrs[S.ATTR_W_NNN] = float(w_nnn)
            f.flush()
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
