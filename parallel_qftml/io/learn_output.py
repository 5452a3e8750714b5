"""The output file of a learning run (docs/schema.md, "Learning file").

Per-epoch rows are buffered on world rank 0 and written at flush points (checkpoints, snapshots of the
couplings, the end), so an epoch costs no collective HDF5 call; after a kill the file is truncated
back to its last checkpoint on --resume, exactly as a sampling run's (io/output.py).
"""
from __future__ import annotations

from typing import Mapping

import numpy as np

from ..errors import OutputError
from . import schema as S
from .h5file import SharedH5
from .output import _coordinate, _no_evictions, create_atomically, create_coupling_scales, write_coupling_blocks

CHUNK = 1024


def _field_group(h5, group: str, shape: tuple) -> None:
    """group/{epoch, w, a, b, r} growing along axis 0, with dimension scales on every axis."""
    d = len(shape)
    h5.require_group(group)
    h5.create_dataset(f"{group}/{S.EPOCH}", shape=(0,), maxshape=(None,), dtype=np.int64, chunks=(CHUNK,))
    h5.create_dataset(f"{group}/w", shape=(0, d, *shape), maxshape=(None, d, *shape), dtype=np.float64,
                      chunks=S.field_chunks((1, d, *shape), 2), fill_time="never")
    for n in S.SITE_COUPLINGS:
        h5.create_dataset(f"{group}/{n}", shape=(0, *shape), maxshape=(None, *shape), dtype=np.float64,
                          chunks=S.field_chunks((1, *shape), 1), fill_time="never")
    for n in ("w", *S.SITE_COUPLINGS):
        h5.make_scale(f"{group}/{S.EPOCH}", f"{group}/{n}")
    _coordinate(h5, group, "axis", d)
    h5.make_scale(f"{group}/axis", f"{group}/w", 1)
    for mu, n in enumerate(shape):
        _coordinate(h5, group, f"x{mu}", n)
        h5.make_scale(f"{group}/x{mu}", f"{group}/w", 2 + mu)
        for name in S.SITE_COUPLINGS:
            h5.make_scale(f"{group}/x{mu}", f"{group}/{name}", 1 + mu)


SNAP_BLOCK_BYTES = 8 << 20     # coupling + gradient snapshots buffered before a block write


class LearnFile:
    def __init__(self, h5: SharedH5, topo, n_rows: int, n_snap: int):
        self.h5, self.topo, self.n_rows, self.n_snap = h5, topo, n_rows, n_snap
        self.rows: list = []          # buffered (epoch, {name: value}) on world rank 0
        self.n_buffered = 0           # known on every rank
        self.snaps: list = []         # buffered (epoch, couplings, gradients): this rank's blocks
        self.n_snap_written = n_snap
        if h5.f is not None:
            _no_evictions(h5.f)

    @classmethod
    def create(cls, path, topo, metadata: Mapping, overwrite: bool) -> "LearnFile":
        shape = tuple(topo.shape)

        def build(h5):
            h5.set_attrs(**{k: v for k, v in metadata.items() if v is not None})
            h5.set_attrs(**{S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION, S.ATTR_COMPLETE: False,
                            S.ATTR_BACKEND: h5.backend})
            h5.require_group(S.LEARNING)
            h5.create_dataset(f"{S.LEARNING}/{S.EPOCH}", shape=(0,), maxshape=(None,), dtype=np.int64,
                              chunks=(CHUNK,))
            for name in S.learn_series_names():
                h5.create_dataset(f"{S.LEARNING}/{name}", shape=(0,), maxshape=(None,), dtype=np.float64,
                                  chunks=(CHUNK,), fillvalue=np.nan)
                h5.make_scale(f"{S.LEARNING}/{S.EPOCH}", f"{S.LEARNING}/{name}")
            for group in (S.SNAPSHOTS, S.GRADIENTS):
                _field_group(h5, group, shape)
            create_coupling_scales(h5, shape, 0.0)

        return cls(create_atomically(path, topo.world, overwrite, build), topo, 0, 0)

    @classmethod
    def reopen(cls, path, topo, n_rows: int, n_snap: int, run_id: str) -> "LearnFile":
        """Open for appending, truncated to the state of the checkpoint being resumed."""
        from ..parallel.reductions import bcast
        h5 = SharedH5(path, "r+", topo.world)
        msg = None
        if h5.f is not None and topo.world.Get_rank() == 0:
            f = h5.f
            if str(f.attrs.get(S.ATTR_RUN_ID, "")) != run_id:
                msg = f"cannot resume: the checkpoint belongs to another run than {str(path)!r} (run_id differs)"
            elif (f[f"{S.LEARNING}/{S.EPOCH}"].shape[0] < n_rows
                  or f[f"{S.SNAPSHOTS}/{S.EPOCH}"].shape[0] < n_snap):
                msg = f"cannot resume: {str(path)!r} has fewer epochs than the checkpoint records"
            elif any(f"{S.LEARNING}/{k}" not in f for k in S.learn_series_names()):
                missing = next(k for k in S.learn_series_names() if f"{S.LEARNING}/{k}" not in f)
                msg = (f"cannot resume: {str(path)!r} was written by an older version (no /{S.LEARNING}/{missing}); "
                       f"start the run again")
        msg = bcast(msg, topo.world)
        if msg:
            h5.close()
            raise OutputError(msg)
        for name in S.learn_series_names() + (S.EPOCH,):
            h5.resize(f"{S.LEARNING}/{name}", n_rows)
        for group in (S.SNAPSHOTS, S.GRADIENTS):
            for name in ("w", *S.SITE_COUPLINGS, S.EPOCH):
                h5.resize(f"{group}/{name}", n_snap)
        h5.set_attrs(**{S.ATTR_COMPLETE: False})
        h5.flush()
        return cls(h5, topo, n_rows, n_snap)

    def append(self, epoch: int, row: Mapping[str, float] | None) -> None:
        """Buffer one epoch's row (`row` needed on world rank 0 only)."""
        if self.h5.root:
            self.rows.append((epoch, row))
        self.n_buffered += 1

    def flush_rows(self) -> None:
        """Write the buffered rows (every rank calls this)."""
        if not self.n_buffered:
            return
        n0, n = self.n_rows, self.n_rows + self.n_buffered
        for name in S.learn_series_names() + (S.EPOCH,):
            self.h5.resize(f"{S.LEARNING}/{name}", n)
        if self.h5.root:
            self.h5.write_root(f"{S.LEARNING}/{S.EPOCH}", slice(n0, n), np.array([e for e, _ in self.rows]))
            for name in S.learn_series_names():
                vals = np.array([r.get(name, np.nan) for _, r in self.rows], dtype=np.float64)
                self.h5.write_root(f"{S.LEARNING}/{name}", slice(n0, n), vals)
        self.rows, self.n_buffered, self.n_rows = [], 0, n

    def snapshot(self, epoch: int, geom, couplings: Mapping[str, np.ndarray], grads: Mapping[str, np.ndarray]) -> None:
        """Append the couplings and the last gradient ({w, a, b, r}: this rank's blocks; replica groups
        hold identical copies and all write the same values). Buffered (copies) and written as one
        block per dataset when SNAP_BLOCK_BYTES of snapshots are held and at flush() / close(), i.e.
        before every checkpoint, like the per-epoch rows."""
        copy = lambda m: {k: np.array(m[k]) for k in ("w", *S.SITE_COUPLINGS)}     # noqa: E731
        self.snaps.append((int(epoch), copy(couplings), copy(grads)))
        self.n_snap += 1
        self._geom = geom
        per = 2 * 8 * (geom.ndim + len(S.SITE_COUPLINGS)) * int(np.prod(geom.shape))
        if (self.n_snap - self.n_snap_written) * per >= SNAP_BLOCK_BYTES:
            self.flush_snapshots()

    def flush_snapshots(self) -> None:
        """Write the buffered snapshots (every rank calls this)."""
        n0, n = self.n_snap_written, self.n_snap
        if n == n0:
            return
        epochs = np.array([e for e, _, _ in self.snaps], dtype=np.int64)
        for group, k in ((S.SNAPSHOTS, 1), (S.GRADIENTS, 2)):
            for name in ("w", *S.SITE_COUPLINGS, S.EPOCH):
                self.h5.resize(f"{group}/{name}", n)
            self.h5.write_root(f"{group}/{S.EPOCH}", slice(n0, n), epochs)
            stack = {name: np.stack([sn[k][name] for sn in self.snaps]) for name in ("w", *S.SITE_COUPLINGS)}
            write_coupling_blocks(self.h5, self._geom, stack["w"], {m: stack[m] for m in S.SITE_COUPLINGS},
                                  group, (slice(n0, n),))
        self.snaps, self.n_snap_written = [], n

    def write_ti(self, group: str, est, n_gauss: int, **attrs) -> None:
        """group (S.REFERENCE_TI, S.FINAL_TI) <- a learning/thermo.TIEstimate, replacing an earlier one
        (identical on every rank; every rank calls)."""
        n = est.t.size
        exists = self.h5.f is not None and group in self.h5.f      # the same on every rank that has the file
        self.h5.require_group(group)
        for name in S.TI_SERIES:
            if exists:
                self.h5.resize(f"{group}/{name}", n)
            else:
                self.h5.create_dataset(f"{group}/{name}", shape=(n,), maxshape=(None,), dtype=np.float64)
        for name, v in zip(S.TI_SERIES, (est.t, est.mean, est.mean_err, est.tau, est.acceptance)):
            self.h5.write_root(f"{group}/{name}", slice(None), v)
        self.h5.set_attrs(group, value=est.value, stat_err=est.stat_err, quad_err=est.quad_err,
                          gauss_value=est.gauss_value, n_gauss=int(n_gauss), n_samples=int(est.n_samples), **attrs)
        self.h5.flush()

    def write_couplings(self, geom, w: np.ndarray, site: Mapping[str, np.ndarray]) -> None:
        write_coupling_blocks(self.h5, geom, w, site)

    def set_attrs(self, **attrs):
        self.h5.set_attrs(**attrs)

    def flush(self):
        self.flush_rows()
        self.flush_snapshots()
        self.h5.flush()

    def close(self, complete: bool):
        self.flush_rows()
        self.flush_snapshots()
        self.h5.set_attrs(**{S.ATTR_COMPLETE: bool(complete)})
        self.h5.close()
