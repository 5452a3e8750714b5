"""Checkpoints of a learning run: chains, couplings and optimiser state as global arrays.

`<dir>/ckpt-<epoch>.h5` (schema.py, "Learning checkpoint") is written and verified exactly like a
sampling checkpoint (io/checkpoint.py: temporary file, atomic rename, layout-independent checksums),
so a run can resume on any number of ranks and continues bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..parallel.ensemble import gather_chain_values
from . import schema as S
from .checkpoint import Block, checkpoint_path, coupling_datasets, find_latest, read_state, write_state


@dataclass
class LearnState:
    path: str
    epoch: int
    n_rows: int
    n_snap: int
    physics_sha256: str
    run_id: str


def _layout(tr):
    g, topo = tr.geom, tr.topo
    shape, d = tuple(g.shape), g.ndim
    n, first = tr.cfg.learn.n_chains, topo.replica == 0
    datasets = {S.CHAINS_PHI: (n, *shape), **coupling_datasets(shape)}
    blocks = [Block(S.CHAINS_PHI, (c,), s.interior()) for c, s in zip(tr.chain_ids, tr.chains)]
    if tr.ref_chains:
        datasets[S.REFERENCE_PHI] = (n, *shape)
        blocks += [Block(S.REFERENCE_PHI, (c,), s.interior()) for c, s in zip(tr.chain_ids, tr.ref_chains)]
    blocks.append(Block(f"{S.COUPLINGS}/w", (slice(None),), tr.params["w"], first))
    blocks += [Block(f"{S.COUPLINGS}/{p}", (), tr.params[p], first) for p in S.SITE_COUPLINGS]
    for slot, arr in sorted(tr.opt.slots.items()):
        name = f"{S.OPTIMIZER}/{slot}"
        w = slot.endswith("_w")
        datasets[name] = (d, *shape) if w else shape
        blocks.append(Block(name, (slice(None),) if w else (), arr, first))
    return datasets, blocks


def write_learn_checkpoint(directory: str, tr, n_rows: int, n_snap: int, physics_sha256: str,
                           config_text: str, keep: int, run_id: str) -> str:
    topo = tr.topo
    per_chain = lambda chains, f: np.asarray(gather_chain_values(topo, [f(s) for s in chains]))  # noqa: E731
    attrs = {"epoch": tr.epoch, "optimizer_t": tr.opt.t,
             "sweep_count": per_chain(tr.chains, lambda s: s.sweep_count).astype(np.int64),
             "delta": per_chain(tr.chains, lambda s: s.delta).astype(np.float64),
             "n_rows": int(n_rows), "n_snap": int(n_snap), "physics_sha256": physics_sha256,
             "config_text": config_text, "run_id": run_id}
    if tr.ref_chains:
        attrs["ref_sweep_count"] = per_chain(tr.ref_chains, lambda s: s.sweep_count).astype(np.int64)
        attrs["ref_delta"] = per_chain(tr.ref_chains, lambda s: s.delta).astype(np.float64)
    datasets, blocks = _layout(tr)
    return write_state(checkpoint_path(directory, tr.epoch), topo.world, tr.geom, datasets, blocks, attrs, keep)


def _try_load(path: str, tr):
    datasets, blocks = _layout(tr)
    attrs, data = read_state(path, tr.topo.world, tr.geom, datasets, blocks)
    if attrs is None:
        return None, data
    for b, arr in zip(blocks, data):
        b.data[...] = arr            # the blocks are views of the chains', couplings' and slots' arrays
    for chains, sk, dk in ((tr.chains, "sweep_count", "delta"), (tr.ref_chains, "ref_sweep_count", "ref_delta")):
        for c, s in zip(tr.chain_ids, chains):
            s.halo.exchange(s.phi)
            s.sweep_count = int(attrs[sk][c])
            s.delta = float(attrs[dk][c])
    tr.epoch = int(attrs["epoch"])
    tr.opt.t = int(attrs["optimizer_t"])
    tr.push()
    return LearnState(path, tr.epoch, int(attrs["n_rows"]), int(attrs["n_snap"]), str(attrs["physics_sha256"]),
                      str(attrs["run_id"])), None


def load_latest_learn(directory: str, tr, warn, run_id: str | None = None) -> LearnState | None:
    """Install the newest valid learning checkpoint (of run `run_id`, if given) into the trainer; None if
    there is none."""
    return find_latest(directory, tr.topo.world, lambda p: _try_load(p, tr), warn, run_id)
