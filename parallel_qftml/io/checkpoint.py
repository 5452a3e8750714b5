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
from .output import create_couplings

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


def _blocks(sampler):
    """(dataset name, prefix, local block, global shape, offset) of everything distributed."""
    g = sampler.geom
    topo = sampler.topo
    interior = lambda x: x.reshape(g.padded_shape)[g.interior]
    R, shape, d = topo.n_replicas, tuple(g.shape), g.ndim
    out = [(S.PHI, (topo.replica,), sampler.interior(), (R, *shape), (topo.replica, *g.offset))]
    out.append((f"{S.COUPLINGS}/w", (slice(None),), np.stack([interior(sampler.w[mu]) for mu in range(d)]),
                (d, *shape), (0, *g.offset)))
    for name in S.SITE_COUPLINGS:
        out.append((f"{S.COUPLINGS}/{name}", (), interior(getattr(sampler, name)), shape, g.offset))
    return out


def write_checkpoint(directory: str, sampler, deltas: np.ndarray, n_meas: int, n_saved: int,
                     physics_sha256: str, config_text: str, keep: int, run_id: str = "") -> str:
    """Write the checkpoint of the current state (every rank calls this); returns its path."""
    topo = sampler.topo
    world = topo.world
    final = checkpoint_path(directory, sampler.sweep_count)
    tmp = final + ".tmp"
    if world.Get_rank() == 0:
        os.makedirs(directory, exist_ok=True)
    world.Barrier()
    h5 = SharedH5(tmp, "w", world)
    shape, R = tuple(topo.shape), topo.n_replicas
    h5.create_dataset(S.PHI, shape=(R, *shape), dtype=np.float64, chunks=S.field_chunks((R, *shape), 1),
                      fill_time="never")
    create_couplings(h5, shape, sampler.action.w_nnn)
    sums = {}
    for name, prefix, block, gshape, offset in _blocks(sampler):
        h5.write_blocks(name, prefix, block, topo.geometry.global_slices)
        # couplings are identical in every replica: count them once (replica 0)
        c = block_checksum(block, gshape, offset) if (name == S.PHI or topo.replica == 0) else 0
        sums[name] = xor_reduce(c, world)
        test_pause("checkpoint")
    h5.set_attrs(**{
        "sweep_count": int(sampler.sweep_count), "delta": np.asarray(deltas, dtype=np.float64),
        "n_meas": int(n_meas), "n_saved": int(n_saved), "physics_sha256": physics_sha256,
        "config_text": config_text, "package_version": __version__, "run_id": run_id,
        "created": bcast(datetime.now(timezone.utc).isoformat(timespec="seconds"), world),
        "n_ranks_written": world.Get_size(), S.ATTR_SCHEMA_VERSION: S.SCHEMA_VERSION,
        **{S.CHECKSUM_PREFIX + k: np.uint64(v) for k, v in sums.items()}})
    h5.close()      # includes a barrier: every rank has finished writing
    if world.Get_rank() == 0:
        fd = os.open(tmp, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
        os.replace(tmp, final)
        dfd = os.open(directory, os.O_RDONLY)
        os.fsync(dfd)
        os.close(dfd)
        for old in list_checkpoints(directory)[keep:]:
            os.remove(old)
    world.Barrier()
    return final


def _try_load(path: str, sampler):
    """Load `path` into the sampler if valid: (State, None), or (None, reason) on every rank."""
    import h5py
    topo = sampler.topo
    world = topo.world
    g = sampler.geom
    reason = None
    attrs, blocks = {}, {}
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: f.attrs[k] for k in f.attrs}
            if attrs.get(S.ATTR_SCHEMA_VERSION) != S.SCHEMA_VERSION:
                raise ValueError(f"schema_version {attrs.get(S.ATTR_SCHEMA_VERSION)} != {S.SCHEMA_VERSION}")
            if f[S.PHI].shape != (topo.n_replicas, *topo.shape):
                raise ValueError(f"fields have shape {f[S.PHI].shape}, this run needs "
                                 f"{(topo.n_replicas, *topo.shape)}")
            for name, prefix, _, _, _ in _blocks(sampler):
                blocks[name] = f[name][prefix + tuple(g.global_slices)]
    except Exception as e:   # unreadable, truncated, wrong layout: the caller tries an older one
        reason = f"{type(e).__name__}: {e}"
    reason = first_message(reason, world)
    if reason is not None:
        return None, reason
    for name, _, _, gshape, offset in _blocks(sampler):
        c = block_checksum(blocks[name], gshape, offset) if (name == S.PHI or topo.replica == 0) else 0
        if xor_reduce(c, world) != int(attrs[S.CHECKSUM_PREFIX + name]):
            return None, f"checksum mismatch in /{name}"
    sampler.interior()[...] = blocks[S.PHI]
    interior = lambda x: x.reshape(g.padded_shape)[g.interior]
    for mu in range(g.ndim):
        interior(sampler.w[mu])[...] = blocks[f"{S.COUPLINGS}/w"][mu]
        sampler.halo.exchange(sampler.w[mu])
    for name in S.SITE_COUPLINGS:
        interior(getattr(sampler, name))[...] = blocks[f"{S.COUPLINGS}/{name}"]
    sampler.halo.exchange(sampler.phi)
    deltas = np.asarray(attrs["delta"], dtype=np.float64)
    sampler.sweep_count = int(attrs["sweep_count"])
    sampler.delta = float(deltas[topo.replica])
    return State(path, int(attrs["sweep_count"]), deltas, int(attrs["n_meas"]), int(attrs["n_saved"]),
                 str(attrs["physics_sha256"]), str(attrs.get("run_id", ""))), None


def load_latest(directory: str, sampler, warn) -> State | None:
    """Install the newest valid checkpoint of `directory` into the sampler; None if there is none.
    Invalid ones are reported through `warn` (one line naming the file) and skipped; if every one is
    invalid, CheckpointError."""
    world = sampler.topo.world
    if world.Get_rank() == 0:       # leftovers of a checkpoint that was being written when killed
        for tmp in glob.glob(os.path.join(directory, f"{S.CKPT_PREFIX}*{S.CKPT_SUFFIX}.tmp")):
            os.remove(tmp)
    paths = bcast(list_checkpoints(directory) if world.Get_rank() == 0 else None, world)
    tried = []
    for path in paths:
        state, reason = _try_load(path, sampler)
        if state is not None:
            return state
        tried.append(f"{path}: {reason}")
        warn(f"checkpoint {path} is not usable ({reason}); trying an older one")
    if tried:
        raise CheckpointError("no valid checkpoint in " + directory + ": " + "; ".join(tried))
    return None
