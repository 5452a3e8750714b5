"""Checkpoints: everything for an exact continuation, as global arrays (restart on any rank count).

A checkpoint `<dir>/ckpt-<sweep>.h5` holds the fields of all replicas, the couplings, the tuned step
sizes, the sweep counter and how many measurements and configurations the measurement file had
(docs/schema.md). It is written to `<name>.<run_id>.tmp` by all ranks, renamed atomically by rank 0 after every
rank has closed it (file and directory fsync'ed), and carries a layout-independent checksum per
dataset that is verified on load: XOR over elements i of mix64(bits(x_i) + 0x9E3779B97F4A7C15 * i),
i the element's index in the global array (the yardstick's checksum). The newest `keep` of the run
(same run_id) are kept; files of other runs are never deleted.
"""
from __future__ import annotations

import glob
import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .. import __version__
from ..errors import OutputError, UserError, WriteError
from ..parallel.reductions import bcast, first_message, xor_reduce
from . import schema as S
from .. import debughooks
from .h5file import SharedH5

def block_checksum(block: np.ndarray, global_shape: tuple, offset: tuple) -> int:
    """XOR-mix checksum of a block of a global float64 array at `offset` (combine blocks with XOR)."""
    from ..kernels.checksum import xor_mix
    block = np.ascontiguousarray(block, dtype=np.float64)
    block = block.reshape((1,) * (len(global_shape) - block.ndim) + block.shape)   # leading unit axes
    if not block.size:
        return 0
    gstrides = np.array([int(np.prod(global_shape[ax + 1:])) for ax in range(len(global_shape))], np.int64)
    return int(xor_mix(block.reshape(-1, block.shape[-1]), np.array(block.shape, np.int64),
                       np.array(offset, np.int64), gstrides))


class CheckpointError(UserError):
    """No usable checkpoint (names the files tried and why)."""


@dataclass
class State:
    path: str
    sweep_count: int
    delta: np.ndarray
    n_meas: int
    n_saved: int
    physics_sha256: str
    run_id: str
    w_nnn: float = float("nan")


def checkpoint_path(directory: str, sweep: int) -> str:
    return os.path.join(directory, f"{S.CKPT_PREFIX}{sweep:012d}{S.CKPT_SUFFIX}")


def tmp_path(path: str, run_id: str) -> str:
    """The temporary name of checkpoint `path` while run `run_id` writes it: `<path>.<run_id>.tmp`, so
    that a leftover temporary names its run (only that run's --resume or successor deletes it)."""
    return f"{path}.{run_id}.tmp" if run_id else f"{path}.tmp"


def checkpoint_files(directory: str) -> list:
    """Every file of `directory` named like a checkpoint or a checkpoint's temporary, sorted."""
    return sorted(glob.glob(os.path.join(directory, f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}*")))


@contextmanager
def pending_checkpoint(directory: str, step: int, run_id: str, comm):
    """Wrap a driver's flush of its output and the write of the checkpoint at `step` (every rank): rank 0
    first creates that checkpoint's empty temporary, so that from the moment the output file holds rows
    beyond the last complete checkpoint a leftover of this run says so (lifecycle.restart_check: a run
    killed between the flush and the rename restarts afresh instead of being refused). The checkpoint
    writer overwrites the temporary and renames it into place; if a write fails (WriteError), the
    rank that saw it deletes the temporary, so none is left behind."""
    tmp = tmp_path(checkpoint_path(directory, step), run_id)
    if comm.Get_rank() == 0:
        try:
            os.makedirs(directory, exist_ok=True)
            open(tmp, "ab").close()
        except OSError as e:
            raise WriteError(tmp, e) from e
    try:
        yield
    except WriteError:
        # only a failed write (the CLI then ends the job): any other exception, e.g. an MPI error because
        # a peer rank was killed while this one waited in a collective, must leave the temporary, which
        # is what tells --resume that the flushed rows belong to an unfinished checkpoint
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


def own_temporaries(directory: str, run_id: str) -> list:
    """Leftover temporaries of run `run_id` in `directory` (a checkpoint being written when it was killed)."""
    return glob.glob(os.path.join(glob.escape(directory), f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}.{run_id}.tmp"))


def checkpoint_owner(path: str) -> str | None:
    """The run_id a checkpoint (attribute) or temporary (its name) belongs to; None if unknown
    (unreadable, no run_id: a stray file or another program's)."""
    if path.endswith(".tmp"):
        parts = os.path.basename(path).split(".")
        return parts[-2] if len(parts) == 4 and parts[-3] == S.CKPT_SUFFIX.lstrip(".") else None
    import h5py
    try:
        with h5py.File(path, "r") as f:
            v = f.attrs.get(S.ATTR_RUN_ID)
    except Exception:
        return None
    return None if v is None else str(v)


def read_run_file(path: str) -> dict:
    """run_id, complete, physics_sha256, forced_resumes and the number of rows (measurements, epochs)
    of an output file of any of the three drivers; OSError if it is not a readable HDF5 file."""
    import h5py
    with h5py.File(path, "r") as f:
        rows = next((f[k].shape[0] for k in (f"{S.OBSERVABLES}/{S.SWEEP}", f"{S.LEARNING}/{S.EPOCH}", "rbm/epoch")
                     if k in f), 0)
        return {"run_id": str(f.attrs.get(S.ATTR_RUN_ID, "")), "complete": bool(f.attrs.get(S.ATTR_COMPLETE, True)),
                "physics_sha256": str(f.attrs.get("physics_sha256", "")), "n_rows": int(rows)}


def append_root_line(path: str, attr: str, line: str) -> None:
    """Append `line` to the newline-separated string attribute `attr` of the file (rank 0, file closed
    by everyone else)."""
    import h5py
    with h5py.File(path, "r+") as f:
        old = str(f.attrs.get(attr, ""))
        f.attrs[attr] = (old + "\n" if old else "") + line


def list_checkpoints(directory: str) -> list:
    """Checkpoint files in `directory`, newest (highest sweep) first; temporary files excluded."""
    return sorted(glob.glob(os.path.join(directory, f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}")), reverse=True)


@dataclass
class Block:
    """One rank's block of a global dataset: dataset[prefix + global_slices] = data. `counted`: this
    block enters the checksum (False for copies held by several replica groups)."""
    name: str
    prefix: tuple
    data: np.ndarray
    counted: bool = True


def _offset(prefix: tuple, geom) -> tuple:
    return tuple(p if isinstance(p, (int, np.integer)) else 0 for p in prefix) + tuple(geom.offset)


def write_state(path: str, world, geom, datasets: dict, blocks: list, attrs: dict, keep: int) -> str:
    """_write_state; if a write fails (WriteError, or an OSError of the fsync/rename: disk full), the
    temporary it leaves is deleted by the rank that saw the failure and WriteError is raised there (the
    CLI ends the job, exit 4): a half-written checkpoint is never renamed into place, and the newest
    complete one stays the last good checkpoint."""
    tmp = tmp_path(path, str(attrs.get(S.ATTR_RUN_ID, "")))
    try:
        return _write_state(path, world, geom, datasets, blocks, attrs, keep)
    except (WriteError, OutputError, OSError) as e:    # OutputError: the temporary cannot be created
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, WriteError):
            raise
        raise WriteError(tmp, e) from e


def _write_state(path: str, world, geom, datasets: dict, blocks: list, attrs: dict, keep: int) -> str:
    """Write a checkpoint-style file atomically (every rank calls this): create `datasets`
    (name -> global shape; the trailing d axes are the lattice), write every rank's `blocks`, store
    `attrs` and a layout-independent checksum per dataset, then rename `<path>.tmp` to `path` (file and
    directory fsync'ed) and keep the newest `keep` files of its directory. Returns `path`."""
    directory = os.path.dirname(path)
    run_id = str(attrs.get(S.ATTR_RUN_ID, ""))
    tmp = tmp_path(path, run_id)
    if world.Get_rank() == 0:
        os.makedirs(directory, exist_ok=True)
    world.Barrier()
    h5 = SharedH5(tmp, "w", world)
    for name, gshape in datasets.items():
        lead = len(gshape) - geom.ndim
        if name.startswith(f"{S.COUPLINGS}/"):
            h5.require_group(S.COUPLINGS)
        h5.create_dataset(name, shape=gshape, dtype=np.float64, chunks=S.field_chunks(gshape, lead),
                          fill_time="never")
    local = dict.fromkeys(datasets, 0)
    for blk in blocks:
        h5.write_blocks(blk.name, blk.prefix, blk.data, geom.global_slices)
        if blk.counted:
            local[blk.name] ^= block_checksum(blk.data, datasets[blk.name], _offset(blk.prefix, geom))
        debughooks.pause("checkpoint")
    sums = {name: xor_reduce(v, world) for name, v in local.items()}
    h5.set_attrs(**{**attrs, "package_version": __version__,
                    "created": bcast(datetime.now(timezone.utc).isoformat(timespec="seconds"), world),
                    "n_ranks_written": world.Get_size(), S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION,
                    **{S.CHECKSUM_PREFIX + k: np.uint64(v) for k, v in sums.items()}})
    h5.close()      # includes a barrier: every rank has finished writing
    if world.Get_rank() == 0:
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(directory, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        for old in [p for p in list_checkpoints(directory) if checkpoint_owner(p) == run_id][keep:]:
            os.remove(old)        # only this run's: never another run's checkpoints or a stray file
    world.Barrier()
    return path


def read_state(path: str, world, geom, datasets: dict, blocks: list):
    """Read the blocks named by `blocks` (their data is ignored) from a file of write_state, checking
    shapes and checksums: (attrs, [array per block]) or (None, reason) — the same on every rank."""
    import h5py
    reason, attrs, out = None, {}, []
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            if attrs.get(S.ATTR_SCHEMA_VERSION) != S.SCHEMA_VERSION:
                raise ValueError(f"schema_version {attrs.get(S.ATTR_SCHEMA_VERSION)} != {S.SCHEMA_VERSION}")
            for name, gshape in datasets.items():
                if f[name].shape != tuple(gshape):
                    raise ValueError(f"/{name} has shape {f[name].shape}, this run needs {tuple(gshape)}")
            out = [f[b.name][b.prefix + tuple(geom.global_slices)] for b in blocks]
    except Exception as e:   # unreadable, truncated, wrong layout: the caller tries an older one
        reason = f"{type(e).__name__}: {e}"
    reason = first_message(reason, world)
    if reason is not None:
        return None, reason
    local = dict.fromkeys(datasets, 0)
    for b, data in zip(blocks, out):
        if b.counted:
            local[b.name] ^= block_checksum(data, datasets[b.name], _offset(b.prefix, geom))
    for name, v in local.items():
        if xor_reduce(v, world) != int(attrs[S.CHECKSUM_PREFIX + name]):
            return None, f"checksum mismatch in /{name}"
    return attrs, out


def coupling_datasets(shape) -> dict:
    d = len(shape)
    return {f"{S.COUPLINGS}/w": (d, *shape), **{f"{S.COUPLINGS}/{n}": tuple(shape) for n in S.SITE_COUPLINGS}}


def _layout(sampler):
    """(datasets, blocks) of a sampling checkpoint."""
    g, topo = sampler.geom, sampler.topo
    interior = lambda x: x.reshape(g.padded_shape)[g.interior]
    shape = tuple(g.shape)
    datasets = {S.PHI: (topo.n_replicas, *shape), **coupling_datasets(shape)}
    # couplings are identical in every replica: count them once (replica 0)
    blocks = [Block(S.PHI, (topo.replica,), sampler.interior()),
              Block(f"{S.COUPLINGS}/w", (slice(None),), np.stack([interior(sampler.w[mu]) for mu in range(g.ndim)]),
                    topo.replica == 0)]
    blocks += [Block(f"{S.COUPLINGS}/{n}", (), interior(getattr(sampler, n)), topo.replica == 0)
               for n in S.SITE_COUPLINGS]
    return datasets, blocks


def write_checkpoint(directory: str, sampler, deltas: np.ndarray, n_meas: int, n_saved: int,
                     physics_sha256: str, config_text: str, keep: int, run_id: str = "") -> str:
    """Write the checkpoint of the current state (every rank calls this); returns its path."""
    datasets, blocks = _layout(sampler)
    attrs = {"sweep_count": int(sampler.sweep_count), "delta": np.asarray(deltas, dtype=np.float64),
             "n_meas": int(n_meas), "n_saved": int(n_saved), "physics_sha256": physics_sha256,
             "config_text": config_text, "run_id": run_id, S.ATTR_W_NNN: float(sampler.action.w_nnn)}
    return write_state(checkpoint_path(directory, sampler.sweep_count), sampler.topo.world, sampler.geom,
                       datasets, blocks, attrs, keep)


def _try_load(path: str, sampler):
    """Load `path` into the sampler if valid: (State, None), or (None, reason) on every rank."""
    topo, g = sampler.topo, sampler.geom
    datasets, blocks = _layout(sampler)
    attrs, data = read_state(path, topo.world, g, datasets, blocks)
    if attrs is None:
        return None, data
    phi, w, *site = data
    sampler.interior()[...] = phi
    interior = lambda x: x.reshape(g.padded_shape)[g.interior]
    for mu in range(g.ndim):
        interior(sampler.w[mu])[...] = w[mu]
        sampler.halo.exchange(sampler.w[mu])
    for name, v in zip(S.SITE_COUPLINGS, site):
        interior(getattr(sampler, name))[...] = v
    sampler.halo.exchange(sampler.phi)
    deltas = np.asarray(attrs["delta"], dtype=np.float64)
    sampler.sweep_count = int(attrs["sweep_count"])
    sampler.delta = float(deltas[topo.replica])
    return State(path, int(attrs["sweep_count"]), deltas, int(attrs["n_meas"]), int(attrs["n_saved"]),
                 str(attrs["physics_sha256"]), str(attrs.get("run_id", "")),
                 float(attrs.get(S.ATTR_W_NNN, np.nan))), None


def find_latest(directory: str, world, try_load, warn, run_id: str | None = None):
    """The result of `try_load(path)` -> (result, None) | (None, reason) for the newest checkpoint of
    `directory` that loads; None if there is none; CheckpointError if every one fails (each failure is
    reported through `warn`, one line naming the file). With `run_id` (that of the output file being
    resumed), checkpoints of other runs are ignored (one warning), and once a checkpoint has loaded that
    run's leftover temporaries (of a checkpoint being written when it was killed) are deleted; without
    a checkpoint they stay for lifecycle.restart_check to see."""
    paths, foreign = None, None
    if world.Get_rank() == 0:
        paths, foreign = [], []
        for p in list_checkpoints(directory):
            owner = checkpoint_owner(p) if run_id else None
            (foreign if owner is not None and owner != run_id else paths).append(p)
    paths, foreign = bcast((paths, foreign), world)
    if foreign:
        warn(f"ignoring {len(foreign)} checkpoint(s) of another run in {directory} "
             f"({', '.join(os.path.basename(p) for p in foreign[:3])}{', ...' if len(foreign) > 3 else ''})")
    tried = []
    for path in paths:
        result, reason = try_load(path)
        if result is not None:
            if run_id and world.Get_rank() == 0:
                for tmp in own_temporaries(directory, run_id):
                    os.remove(tmp)
            return result
        tried.append(f"{path}: {reason}")
        warn(f"checkpoint {path} is not usable ({reason}); trying an older one")
    if tried:
        raise CheckpointError("no valid checkpoint in " + directory + ": " + "; ".join(tried))
    return None


def load_latest(directory: str, sampler, warn, run_id: str | None = None) -> State | None:
    """Install the newest valid checkpoint of `directory` (of run `run_id`, if given) into the sampler;
    None if there is none. Invalid ones are reported through `warn` (one line naming the file) and
    skipped; if every one is invalid, CheckpointError."""
    return find_latest(directory, sampler.topo.world, lambda p: _try_load(p, sampler), warn, run_id)
