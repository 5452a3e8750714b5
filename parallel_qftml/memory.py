"""Memory: what a run needs per rank, what the node offers, and the refusal before anything is created
(docs/config.md, "Memory and disk checks"). Estimates are upper-end approximations (no MPI here; the
sum over the ranks of a node is parallel/node.py):

* per rank, BASE for the interpreter with numpy, numba, h5py and MPI (measured: 189 MiB maximum RSS of a
  small `pqml sample` with cached kernels);
* a Sampler (one chain of one block): 8 (8 + 2 d^2) bytes per site of the block with its ghost layer
  (fields phi, w, a, b, r, colour rows, tiles; measured with tracemalloc: 131 B/site for 512^2 on one
  rank, 152 for 64^3, 480 for 16^4, the formula gives 128, 208, 640);
* write copies of the blocks (checkpoints, configurations) and, with the `gather` HDF5 back-end on
  several ranks, a whole global dataset (twice: the pieces and their pickles) on rank 0;
* learning: every chain of the rank's replica group, couplings with gradients and optimiser moments,
  the per-chain feature sums gathered on every rank; RBM: weights and their updates, chains, spectra.
"""
from __future__ import annotations

import math
import os

from .errors import UserError

BASE = 200 * 2**20


def sampler_bytes(local_sites: float, ndim: int) -> int:
    """One Sampler on a block of `local_sites` sites (ghost layer of width 1 added on a cube)."""
    padded = (max(local_sites, 1.0) ** (1.0 / ndim) + 2) ** ndim
    return int(8 * (8 + 2 * ndim * ndim) * padded)


def _gather_root(global_values: int, size: int) -> int:
    from .io.h5file import backend_name
    return 16 * global_values if size > 1 and backend_name() == "gather" else 0


def sample_memory(cfg, size: int, rank: int) -> int:
    """Bytes that rank `rank` of a `pqml sample` job on `size` ranks needs."""
    shape, R = cfg.lattice.shape, cfg.parallel.n_replicas
    V, d = math.prod(shape), len(shape)
    local = V * R / size                           # every rank holds one block of one replica
    need = BASE + sampler_bytes(local, d) + 8 * local * (2 * d + 4)
    return int(need + (_gather_root(V * max(R, d), size) if rank == 0 else 0))


def learn_memory(cfg, size: int, rank: int) -> int:
    """Bytes that rank `rank` of a `pqml learn` job on `size` ranks needs."""
    from .kernels.gradient import n_features
    shape, groups = cfg.lattice.shape, cfg.parallel.n_replicas
    V, d = math.prod(shape), len(shape)
    local = V * groups / size                      # the block of this rank in its replica group
    chains = -(-cfg.learn.n_chains // groups) * (2 if cfg.reference is not None else 1)
    K = n_features(d)
    need = (BASE + chains * sampler_bytes(local, d) + 8 * local * (d + 3) * 8
            + 8 * K * local * (cfg.learn.n_chains + 4))
    return int(need + (_gather_root(V * (d + 3), size) if rank == 0 else 0))


def rbm_memory(cfg, size: int, rank: int) -> int:
    """Bytes that rank `rank` of a `pqml rbm` job needs (visible size from [target] shape; 0 in data mode,
    where the data set's reader checks its own size)."""
    nv = math.prod(cfg.target.shape) if cfg.target.shape else 0
    nh = cfg.rbm.n_hidden
    chains = -(-cfg.train.n_chains // size)
    return int(BASE + 8 * (6 * nv * nh + 4 * nv * nv + 3 * chains * (nv + nh)))


def _read_int(path: str):
    try:
        with open(path) as f:
            v = f.read().strip()
    except OSError:
        return None
    return int(v) if v.isdigit() else None


def _cgroup_free():
    """Bytes left under this process's cgroup memory limit (v2 memory.max or v1 limit_in_bytes, minus
    the usage other than reclaimable file cache); None without a limit."""
    dirs = []
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                parts = line.strip().split(":", 2)
                if len(parts) == 3 and parts[0] == "0" and parts[1] == "":
                    dirs.append(("v2", "/sys/fs/cgroup" + parts[2].rstrip("/")))
    except OSError:
        pass
    dirs += [("v2", "/sys/fs/cgroup"), ("v1", "/sys/fs/cgroup/memory")]
    for kind, d in dirs:
        limit = _read_int(f"{d}/memory.max" if kind == "v2" else f"{d}/memory.limit_in_bytes")
        used = _read_int(f"{d}/memory.current" if kind == "v2" else f"{d}/memory.usage_in_bytes")
        if limit is None or used is None or limit >= 2**60:
            continue
        cache = 0
        try:
            with open(f"{d}/memory.stat") as f:
                for line in f:
                    k, _, v = line.partition(" ")
                    if k in ("inactive_file", "total_inactive_file"):
                        cache = max(cache, int(v))
        except (OSError, ValueError):
            pass
        return max(limit - used + cache, 0)
    return None


def available_memory() -> tuple:
    """(bytes this node can still give, where the figure comes from): the smallest of MemAvailable
    (/proc/meminfo), the cgroup limit minus usage, and the physical memory."""
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append((int(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
    except (OSError, ValueError, IndexError):
        pass
    cg = _cgroup_free()
    if cg is not None:
        found.append((cg, "cgroup memory limit"))
    try:
        found.append((os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "physical memory"))
    except (ValueError, OSError):
        pass
    return min(found) if found else (None, "unknown")


def check_memory(need: int, comm, what: str = "the run") -> None:
    """Refuse (UserError, exit 2, on every rank) when the ranks of some node need together more than
    that node has available. `need`: this rank's bytes. Collective over `comm`."""
    import socket

    from .parallel.node import node_sums
    from .parallel.reductions import first_message
    (total, n), leader = node_sums((need, 1), comm)
    msg = None
    if leader:
        avail, source = available_memory()
        if avail is not None and total > avail:
            msg = (f"not enough memory for {what}: its {n} rank(s) on node {socket.gethostname()} need about "
                   f"{_size(total)}, {_size(avail)} available ({source}); use more nodes (fewer ranks per "
                   f"node) or a smaller lattice")
    msg = first_message(msg, comm)
    if msg:
        raise UserError(msg)


def _size(b: float) -> str:
    for unit, s in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if b >= s:
            return f"{b / s:.3g} {unit}"
    return f"{b / 2**20:.2g} MiB"
