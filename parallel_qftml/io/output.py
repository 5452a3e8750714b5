"""The measurement file of a run (docs/schema.md): observables, saved configurations, couplings.

Every rank of the world calls every method (io/h5file.py). Observables arrive gathered on world rank 0;
configurations and couplings are written block by block (collectively with MPI-IO). Crash safety: the
metadata cache does not evict, and the file is flushed only when a checkpoint is about to be written,
so after a kill the file on disk is the one of the last checkpoint (plus raw data beyond its extent,
which readers do not see); `--resume` truncates it back to exactly that state.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import numpy as np

from ..errors import OutputError, WriteError
from . import schema as S
from .. import debughooks
from .h5file import SharedH5


ROW_BLOCK = 4096   # measurement rows buffered before a block write (RunFile.append_observables)
CONFIG_BLOCK_BYTES = 8 << 20   # configurations (all replicas) buffered before a block write (RunFile.save_config)


def check_output_path(path: str | os.PathLike, overwrite: bool) -> None:
    """Raise ``OutputError`` if ``path`` cannot be (over)written; creates nothing."""
    p = Path(path)
    if p.is_dir():
        raise OutputError(f"output.path {str(path)!r} is a directory")
    if p.exists() and not overwrite:
        raise OutputError(f"output.path {str(path)!r} exists; set output.overwrite = true, resume with "
                          f"--resume, or choose another path")
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"output.path {str(path)!r}: directory {str(parent)!r} is not writable")


def _no_evictions(f) -> None:
    """Keep dirty metadata in memory until an explicit flush (see the module docstring)."""
    try:
        c = f.id.get_mdc_config()
        c.evictions_enabled = False
        c.incr_mode = 0          # H5C_incr__off
        c.flash_incr_mode = 0    # H5C_flash_incr__off
        c.decr_mode = 0          # H5C_decr__off
        f.id.set_mdc_config(c)
    except Exception:            # not supported by this HDF5 build: flushes still bound the damage
        pass


def create_atomically(path, comm, overwrite: bool, build) -> SharedH5:
    """Check `path`, create `<path>.part`, call `build(h5)` (every rank), rename it to `path` and return
    it reopened read-write: `path` is never a half-made file."""
    from ..parallel.reductions import bcast
    msg = None
    if comm.Get_rank() == 0:
        try:
            check_output_path(path, overwrite)
            Path(path).absolute().parent.mkdir(parents=True, exist_ok=True)
        except (OutputError, OSError) as e:
            msg = str(e)
    msg = bcast(msg, comm)
    if msg:
        raise OutputError(msg)
    tmp = f"{path}.part"
    try:
        h5 = SharedH5(tmp, "w", comm)
        build(h5)
        h5.close()
        if comm.Get_rank() == 0:
            os.replace(tmp, path)
    except (WriteError, OSError) as e:          # disk full while creating: no half-made .part left
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, WriteError):
            raise
        raise WriteError(tmp, e) from e
    comm.Barrier()
    return SharedH5(path, "r+", comm)


class RunFile:
    """Open on every rank of topo.world. Use create() or reopen()."""

    def __init__(self, h5: SharedH5, topo, n_meas: int, n_saved: int):
        self.h5, self.topo = h5, topo
        self.n_meas, self.n_saved = n_meas, n_saved
        self._rows, self._n_written = [], n_meas     # buffered measurement rows (world rank 0 holds them)
        self._configs, self._n_saved_written = [], n_saved   # buffered (sweep, this rank's block)
        self.R = topo.n_replicas
        self.shape = tuple(topo.shape)
        self._config_bytes = 8 * self.R * int(np.prod(self.shape))     # one configuration, all replicas
        if h5.f is not None:
            _no_evictions(h5.f)

    @classmethod
    def create(cls, path, topo, metadata: Mapping, overwrite: bool, save_configs: bool,
               sampler=None) -> "RunFile":
        """New file with its datasets (and the sampler's couplings), created under a temporary name and
        renamed when complete, so that `path` is never a half-made file; metadata values must be the
        same on every rank (broadcast them first)."""
        h5 = create_atomically(path, topo.world, overwrite, lambda h5: cls._layout(h5, topo, metadata,
                                                                                  save_configs, sampler))
        return cls(h5, topo, 0, 0)

    @staticmethod
    def _layout(h5, topo, metadata, save_configs, sampler):
        R, shape = topo.n_replicas, tuple(topo.shape)
        h5.set_attrs(**{k: v for k, v in metadata.items() if v is not None})
        h5.set_attrs(**{S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION, S.ATTR_COMPLETE: False,
                        S.ATTR_BACKEND: h5.backend})
        h5.require_group(S.OBSERVABLES)
        h5.create_dataset(f"{S.OBSERVABLES}/{S.SWEEP}", shape=(0,), maxshape=(None,), dtype=np.int64,
                          chunks=(S.OBS_CHUNK_ROWS,))
        _coordinate(h5, S.OBSERVABLES, S.REPLICA, R)
        for name in S.OBSERVABLE_NAMES:
            h5.create_dataset(f"{S.OBSERVABLES}/{name}", shape=(0, R), maxshape=(None, R), dtype=np.float64,
                              chunks=(S.OBS_CHUNK_ROWS, R), fillvalue=np.nan)
            h5.make_scale(f"{S.OBSERVABLES}/{S.SWEEP}", f"{S.OBSERVABLES}/{name}")
            h5.make_scale(f"{S.OBSERVABLES}/{S.REPLICA}", f"{S.OBSERVABLES}/{name}", 1)
        if save_configs:
            h5.require_group(S.CONFIGS)
            h5.create_dataset(f"{S.CONFIGS}/{S.SWEEP}", shape=(0,), maxshape=(None,), dtype=np.int64,
                              chunks=(S.OBS_CHUNK_ROWS,))
            h5.create_dataset(f"{S.CONFIGS}/{S.PHI}", shape=(0, R, *shape), maxshape=(None, R, *shape),
                              dtype=np.float64, chunks=S.field_chunks((1, R, *shape), 2), fill_time="never")
            h5.make_scale(f"{S.CONFIGS}/{S.SWEEP}", f"{S.CONFIGS}/{S.PHI}")
            _coordinate(h5, S.CONFIGS, S.REPLICA, R)
            h5.make_scale(f"{S.CONFIGS}/{S.REPLICA}", f"{S.CONFIGS}/{S.PHI}", 1)
            for mu, n in enumerate(shape):
                _coordinate(h5, S.CONFIGS, f"x{mu}", n)
                h5.make_scale(f"{S.CONFIGS}/x{mu}", f"{S.CONFIGS}/{S.PHI}", 2 + mu)
        if sampler is not None:
            write_couplings(h5, sampler, shape)

    @classmethod
    def reopen(cls, path, topo, n_meas: int, n_saved: int, save_configs: bool, run_id: str) -> "RunFile":
        """Open an existing file for appending, truncated to n_meas measurements and n_saved
        configurations (the state of the checkpoint being resumed, which must belong to this file)."""
        from ..parallel.reductions import bcast
        h5 = SharedH5(path, "r+", topo.world)
        msg = None
        if h5.f is not None and topo.world.Get_rank() == 0:
            f = h5.f
            if str(f.attrs.get(S.ATTR_RUN_ID, "")) != run_id:
                msg = f"cannot resume: the checkpoint belongs to another run than {str(path)!r} (run_id differs)"
            elif f[f"{S.OBSERVABLES}/{S.SWEEP}"].shape[0] < n_meas or (
                    save_configs and f[f"{S.CONFIGS}/{S.SWEEP}"].shape[0] < n_saved):
                msg = f"cannot resume: {str(path)!r} has fewer measurements than the checkpoint records"
        msg = bcast(msg, topo.world)
        if msg:
            h5.close()
            raise OutputError(msg)
        self = cls(h5, topo, n_meas, n_saved)
        for name in S.OBSERVABLE_NAMES + (S.SWEEP,):
            h5.resize(f"{S.OBSERVABLES}/{name}", n_meas)
        if save_configs:
            h5.resize(f"{S.CONFIGS}/{S.SWEEP}", n_saved)
            h5.resize(f"{S.CONFIGS}/{S.PHI}", n_saved)
        h5.set_attrs(**{S.ATTR_COMPLETE: False})
        h5.flush()
        return self

    def set_attrs(self, **attrs):
        self.h5.set_attrs(**attrs)

    def append_observables(self, sweep: int, values: Mapping[str, np.ndarray] | None):
        """One measurement; `values` (name -> array(n_replicas)) is needed on world rank 0 only."""
        self.append_block(np.array([sweep], dtype=np.int64),
                          None if values is None else {k: np.asarray(v).reshape(1, self.R) for k, v in values.items()})

    def append_block(self, sweeps: np.ndarray, values: Mapping[str, np.ndarray] | None):
        """len(sweeps) measurements; `values` (name -> array(len(sweeps), n_replicas)) is needed on world
        rank 0 only. Rows are buffered in memory and written as one block every ROW_BLOCK rows and at
        flush() / close(): the same bytes as row by row, and the same crash safety (the file is flushed
        only before a checkpoint, so a killed run's file is that of its last checkpoint either way)."""
        m = len(sweeps)
        if self.h5.root:
            self._rows.append((np.asarray(sweeps, dtype=np.int64).reshape(m),
                               [np.asarray(values[name], dtype=np.float64).reshape(m, self.R)
                                for name in S.OBSERVABLE_NAMES]))
        self.n_meas += m
        if self.n_meas - self._n_written >= ROW_BLOCK:
            self._write_rows()

    def _write_rows(self):
        """Write the buffered rows (every rank: the resizes are collective metadata operations)."""
        n0, n = self._n_written, self.n_meas
        if n == n0:
            return
        for name in S.OBSERVABLE_NAMES + (S.SWEEP,):
            self.h5.resize(f"{S.OBSERVABLES}/{name}", n)
        if self.h5.root:
            rows = self._rows
            self.h5.write_root(f"{S.OBSERVABLES}/{S.SWEEP}", slice(n0, n), np.concatenate([r[0] for r in rows]))
            for k, name in enumerate(S.OBSERVABLE_NAMES):
                self.h5.write_root(f"{S.OBSERVABLES}/{name}", slice(n0, n),
                                   np.concatenate([r[1][k] for r in rows]))
        self._rows = []
        self._n_written = n

    def save_config(self, sweep: int, sampler):
        """Append the current configuration of every replica. Buffered like the rows: each rank keeps a
        copy of its block, and the buffer is written as one collective hyperslab per rank when it
        holds CONFIG_BLOCK_BYTES of configurations (over all replicas, the same count on every rank)
        and at flush() / close(), i.e. before every checkpoint: a lattice of 8 MiB or more is written
        at once, a 4-site ring every ~260000 saves."""
        self._configs.append((int(sweep), sampler.interior().copy()))
        self.n_saved += 1
        self._geom = sampler.geom
        if (self.n_saved - self._n_saved_written) * self._config_bytes >= CONFIG_BLOCK_BYTES:
            self._write_configs()

    def _write_configs(self):
        n0, n = self._n_saved_written, self.n_saved
        if n == n0:
            return
        self.h5.resize(f"{S.CONFIGS}/{S.SWEEP}", n)
        self.h5.resize(f"{S.CONFIGS}/{S.PHI}", n)
        self.h5.write_root(f"{S.CONFIGS}/{S.SWEEP}", slice(n0, n), np.array([c[0] for c in self._configs],
                                                                            dtype=np.int64))
        debughooks.pause("config")
        self.h5.write_blocks(f"{S.CONFIGS}/{S.PHI}", (slice(n0, n), self.topo.replica),
                             np.stack([c[1] for c in self._configs]), self._geom.global_slices)
        self._configs = []
        self._n_saved_written = n

    def flush(self):
        self._write_rows()
        self._write_configs()
        self.h5.flush()

    def close(self, complete: bool):
        self._write_rows()
        self._write_configs()
        self.h5.set_attrs(**{S.ATTR_COMPLETE: bool(complete)})
        self.h5.close()


def _coordinate(h5: SharedH5, group: str, name: str, n: int) -> None:
    """A coordinate dataset arange(n) used as a dimension scale (so that every axis of a dataset has one:
    netCDF readers such as xarray need that)."""
    h5.create_dataset(f"{group}/{name}", shape=(n,), dtype=np.int64)
    h5.write_root(f"{group}/{name}", slice(None), np.arange(n, dtype=np.int64))


def create_couplings(h5: SharedH5, shape, w_nnn: float) -> None:
    """The datasets /couplings/{w, a, b, r} (not yet written) and the attribute w_nnn."""
    d = len(shape)
    h5.require_group(S.COUPLINGS)
    h5.create_dataset(f"{S.COUPLINGS}/w", shape=(d, *shape), dtype=np.float64,
                      chunks=S.field_chunks((d, *shape), 1), fill_time="never")
    for name in S.SITE_COUPLINGS:
        h5.create_dataset(f"{S.COUPLINGS}/{name}", shape=shape, dtype=np.float64,
                          chunks=S.field_chunks(shape, 0), fill_time="never")
    h5.set_attrs(S.COUPLINGS, **{S.ATTR_W_NNN: float(w_nnn)})


def write_couplings(h5: SharedH5, sampler, shape):
    """/couplings/{w, a, b, r} from the sampler's blocks (replica 0's ranks write; all hold the same)."""
    g = sampler.geom
    interior = lambda x: x.reshape(g.padded_shape)[g.interior]
    create_coupling_scales(h5, shape, sampler.action.w_nnn)
    write_coupling_blocks(h5, g, np.stack([interior(sampler.w[mu]) for mu in range(len(shape))]),
                          {n: interior(getattr(sampler, n)) for n in S.SITE_COUPLINGS})


def create_coupling_scales(h5: SharedH5, shape, w_nnn: float) -> None:
    """create_couplings plus the coordinate datasets of every axis (dimension scales)."""
    d = len(shape)
    create_couplings(h5, shape, w_nnn)
    _coordinate(h5, S.COUPLINGS, "axis", d)
    h5.make_scale(f"{S.COUPLINGS}/axis", f"{S.COUPLINGS}/w", 0)
    for mu, n in enumerate(shape):
        _coordinate(h5, S.COUPLINGS, f"x{mu}", n)
        h5.make_scale(f"{S.COUPLINGS}/x{mu}", f"{S.COUPLINGS}/w", 1 + mu)
        for name in S.SITE_COUPLINGS:
            h5.make_scale(f"{S.COUPLINGS}/x{mu}", f"{S.COUPLINGS}/{name}", mu)


def write_coupling_blocks(h5: SharedH5, geom, w: np.ndarray, site: Mapping[str, np.ndarray],
                          group: str = S.COUPLINGS, prefix: tuple = ()) -> None:
    """Write this rank's blocks w (d, *local_shape) and site[name] (local_shape) of the couplings."""
    h5.write_blocks(f"{group}/w", prefix + (slice(None),), w, geom.global_slices)
    for name in S.SITE_COUPLINGS:
        h5.write_blocks(f"{group}/{name}", prefix, site[name], geom.global_slices)
