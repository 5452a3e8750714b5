"""Checkpoints: everything for an exact continuation, as global arrays (restart on any rank count).

A checkpoint `<dir>/ckpt-<sweep>.h5` holds the fields of all replicas, the couplings, the tuned step
sizes, the sweep counter and how many measurements and configurations the measurement file had
(docs/schema.md). It is written to `<name>.tmp` by all ranks, renamed atomically by rank 0 after every
rank has closed it (file and directory fsync'ed), and carries a layout-independent checksum per
dataset that is verified on load: XOR over elements i of mix64(bits(x_i) + 0x9E3779B97F4A7C15 * i),
i the element's index in the global array (the yardstick's checksum). The newest `keep` are kept.
"""
from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np

from .. import __version__
from ..errors import UserError
from ..parallel.reductions import bcast, first_message, xor_reduce
from . import schema as S
from .h5file import SharedH5, test_pause

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


def checkpoint_path(directory: str, sweep: int) -> str:
    return os.path.join(directory, f"{S.CKPT_PREFIX}{sweep:012d}{S.CKPT_SUFFIX}")


def remove_checkpoints(directory: str) -> None:
    """Delete every checkpoint (and temporary) of `directory` (rank 0 only)."""
    for p in glob.glob(os.path.join(directory, f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}*")):
        os.remove(p)


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
    """Write a checkpoint-style file atomically (every rank calls this): create `datasets`
    (name -> global shape; the trailing d axes are the lattice), write every rank's `blocks`, store
    `attrs` and a layout-independent checksum per dataset, then rename `<path>.tmp` to `path` (file and
    directory fsync'ed) and keep the newest `keep` files of its directory. Returns `path`."""
    directory = os.path.dirname(path)
    tmp = path + ".tmp"
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
        test_pause("checkpoint")
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
        for old in list_checkpoints(directory)[keep:]:
            os.remove(old)
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
                 str(attrs["physics_sha256"]), str(attrs.get("run_id", ""))), None


def find_latest(directory: str, world, try_load, warn):
    """The result of `try_load(path)` -> (result, None) | (None, reason) for the newest checkpoint of
    `directory` that loads; None if there is none; CheckpointError if every one fails (each failure is
    reported through `warn`, one line naming the file). Leftover temporaries are deleted first."""
    if world.Get_rank() == 0:       # leftovers of a checkpoint that was being written when killed
        for tmp in glob.glob(os.path.join(directory, f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}.tmp")):
            os.remove(tmp)
    paths = bcast(list_checkpoints(directory) if world.Get_rank() == 0 else None, world)
    tried = []
    for path in paths:
        result, reason = try_load(path)
        if result is not None:
            return result
        tried.append(f"{path}: {reason}")
        warn(f"checkpoint {path} is not usable ({reason}); trying an older one")
    if tried:
        raise CheckpointError("no valid checkpoint in " + directory + ": " + "; ".join(tried))
    return None


def load_latest(directory: str, sampler, warn) -> State | None:
    """Install the newest valid checkpoint of `directory` into the sampler; None if there is none.
    Invalid ones are reported through `warn` (one line naming the file) and skipped; if every one is
    invalid, CheckpointError."""
    return find_latest(directory, sampler.topo.world, lambda p: _try_load(p, sampler), warn)
