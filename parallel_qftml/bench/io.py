"""I/O benchmark: configuration writes, checkpoint and restart against the raw disk and the sweep.

    mpirun -n 2 python -m mpi4py -m parallel_qftml.bench.io [--L 4096] [--n 8] [--dir out/bench_io] [--repeat 3]

On a 2D L x L lattice (Topology(comm, (L, L)), Sampler with PhiFourAction.homogeneous(2)), after one
warm-up sweep, it times the steps below, each as: Barrier, the step, a barrier that waits without
spinning (so that an idle rank does not take CPU from a working one); the time is the maximum over ranks.

1. configs   `n` calls of RunFile.save_config(sweep, sampler), then flush(), close(True), then rank 0
             opens the file and os.fsync's it, so the bytes are on the disk (not only in the page cache).
             RunFile.create (the empty file with the observable datasets) is not timed.
             MB/s = n * n_replicas * L^2 * 8 bytes / seconds  (MB = 10^6 bytes).
2. raw       rank 0 alone writes the same number of bytes with plain numpy (`arr.tofile` of one L x L
             float64 array, n times, to one file in the same directory), then os.fsync. ratio = configs
             MB/s / raw MB/s (issue target >= 0.5). Both numbers include the fsync; the raw write uses one
             process, the HDF5 write all ranks.
3. checkpoint  one io.checkpoint.write_checkpoint(...) (written to <name>.tmp, checksums, fsync of the
             file and of the directory, atomic rename; as in a run).
4. restart   a fresh Sampler(...) (what a resumed run builds first: couplings and the random initial
             field) plus io.checkpoint.load_latest(...) (read, checksum check, halo exchange). Before
             it, rank 0 drops the checkpoint from the page cache (posix_fadvise DONTNEED after the fsync),
             so the read comes from the disk, not from memory (a virtual disk may still be cached by the
             host). The restored field is compared with the original ("restart ok").
             Process start, imports and numba compilation/cache loading are not included.
5. 20 sweeps sampler.sweep(20); ratio = (checkpoint + restart) / 20 sweeps (issue target < 1).

Steps 1-5 are repeated `--repeat` times (default 3). The table gives the best (shortest) and the worst
time of each step; MB/s and the ratios use the best times. The spread is real and large on a shared or
virtual machine (the first large write of a process was up to 5 x slower than the next on the machine
of docs/performance.md), so read the ratios of one invocation and look at the worst column.

All files (and the directory if this run created it) are removed at the end.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import time
import traceback

import numpy as np

N_SWEEPS_REF = 20


def _quiet_barrier(comm) -> None:
    """A barrier that waits without spinning: Open MPI's Barrier busy-polls, and an idle rank spinning
    on a shared core slows down the rank that is still working (rank 0's raw write ran 5-10 x slower)."""
    req = comm.Ibarrier()
    while not req.Test():
        time.sleep(0.001)


def _timed(comm, fn):
    """(result, seconds): Barrier, fn(), barrier (without spinning); the maximum over ranks."""
    from ..parallel.reductions import global_max
    comm.Barrier()
    t0 = time.perf_counter()
    out = fn()
    _quiet_barrier(comm)
    return out, global_max(time.perf_counter() - t0, comm)


def _fsync_path(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _drop_cache(path: str) -> None:
    """Evict a file's (clean, fsync'ed) pages from the page cache; best effort."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        if hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def _filesystem(path: str) -> str:
    """'<device> (<fstype>, mounted on <dir>)' of the mount holding path (longest prefix in /proc/mounts)."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                dev, mnt, fs = line.split()[:3]
                if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best[0]):
                    best = (mnt, dev, fs)
    except OSError:
        pass
    return f"{best[1]} ({best[2]}, mounted on {best[0] or '?'})"


def run(comm, L: int, n: int, directory: str, repeat: int) -> list | None:
    """The benchmark (every rank); returns the printed lines on world rank 0, None elsewhere."""
    import h5py

    from ..io.checkpoint import load_latest, write_checkpoint
    from ..io.output import RunFile
    from ..models.action import PhiFourAction
    from ..parallel.topology import Topology
    from ..parallel.reductions import bcast, global_int_sum, replica_values
    from ..sampler import Sampler
    from ..warmup import warm_up

    rank0 = comm.Get_rank() == 0
    warm_up()
    topo = Topology(comm, (L, L))
    act = PhiFourAction.homogeneous(2)
    sampler = Sampler(topo, act, seed=12345)
    sampler.sweep(1)                       # a non-trivial field; loads the compiled kernels

    directory = os.path.abspath(directory)
    created_dir = bcast(not os.path.exists(directory) if rank0 else None, comm)
    if rank0:
        os.makedirs(directory, exist_ok=True)
    comm.Barrier()
    h5_path = os.path.join(directory, "bench_configs.h5")
    raw_path = os.path.join(directory, "bench_raw.bin")
    ckpt_dir = os.path.join(directory, "bench_ckpt")
    nbytes = n * topo.n_replicas * L * L * 8
    arr = np.random.default_rng(0).random(L * L) if rank0 else None
    deltas = replica_values(topo, sampler.delta, False)

    def cleanup():
        for p in (h5_path, raw_path):
            if os.path.exists(p):
                os.remove(p)
        shutil.rmtree(ckpt_dir, ignore_errors=True)
        if created_dir:
            try:
                os.rmdir(directory)
            except OSError:
                pass

    # 1. configurations through RunFile (MPI-IO collective or gather, see io/h5file.py)
    def write_configs(out):
        for i in range(n):
            out.save_config(sampler.sweep_count + i, sampler)
        out.flush()
        out.close(True)
        if rank0:
            _fsync_path(h5_path)

    # 2. raw sequential write of the same number of bytes, rank 0 alone
    def write_raw():
        if rank0:
            with open(raw_path, "wb") as fh:
                for _ in range(n * topo.n_replicas):
                    arr.tofile(fh)
                fh.flush()
                os.fsync(fh.fileno())

    # 4. restart into a fresh sampler
    def restart():
        fresh = Sampler(topo, act, seed=12345)
        state = load_latest(ckpt_dir, fresh, lambda msg: print(msg, file=sys.stderr))
        return fresh, state

    times = {k: [] for k in ("h5", "raw", "ckpt", "restart", "sweeps")}
    restart_ok = True
    try:
        for _ in range(repeat):
            out = RunFile.create(h5_path, topo, {"benchmark": "bench_io", "L": L}, overwrite=True,
                                 save_configs=True)
            backend = out.h5.backend
            times["h5"].append(_timed(comm, lambda: write_configs(out))[1])
            if rank0:
                with h5py.File(h5_path, "r") as f:
                    assert f["configs/phi"].shape == (n, topo.n_replicas, L, L), f["configs/phi"].shape
            times["raw"].append(_timed(comm, write_raw)[1])
            if rank0:
                os.remove(raw_path)
                os.remove(h5_path)

            # 3. checkpoint (keep=1: the previous repetition's file is replaced)
            ckpt, t = _timed(comm, lambda: write_checkpoint(ckpt_dir, sampler, deltas, 0, n, "bench_io", "",
                                                            keep=1))
            times["ckpt"].append(t)
            ckpt_bytes = bcast(os.path.getsize(ckpt) if rank0 else None, comm)
            if rank0:
                _drop_cache(ckpt)
            comm.Barrier()

            (fresh, state), t = _timed(comm, restart)
            times["restart"].append(t)
            same = (state is not None and fresh.sweep_count == sampler.sweep_count
                    and np.array_equal(fresh.interior(), sampler.interior()))
            restart_ok &= global_int_sum(int(not same), comm) == 0
            del fresh

            # 5. the yardstick: 20 sweeps
            times["sweeps"].append(_timed(comm, lambda: sampler.sweep(N_SWEEPS_REF))[1])
    except BaseException:
        if rank0:                          # best effort; main() then aborts the job
            cleanup()
        raise
    comm.Barrier()
    if rank0:
        cleanup()
    comm.Barrier()

    if not rank0:
        return None
    t = {k: min(v) for k, v in times.items()}
    worst = {k: max(v) for k, v in times.items()}
    mbs_h5, mbs_raw = nbytes / t["h5"] / 1e6, nbytes / t["raw"] / 1e6
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())

    def row(name, k, mbs="", ratio="", target=""):
        return f"{name:<34} {t[k]:>7.3f} {worst[k]:>7.3f} {mbs:>8} {ratio:>7}  {target}".rstrip()
    return [
        f"# {cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cpus, {comm.Get_size()} rank(s), "
        f"Python {platform.python_version()}, h5py {h5py.__version__} (HDF5 {h5py.version.hdf5_version}), "
        f"back-end {backend}",
        f"# disk: {_filesystem(directory)}; L = {L}, {n} configurations x {topo.n_replicas} replica(s) = "
        f"{nbytes / 1e6:.0f} MB; checkpoint file {ckpt_bytes / 1e6:.0f} MB; best and worst of {repeat}",
        f"{'step':<34} {'best s':>7} {'worst s':>7} {'MB/s':>8} {'ratio':>7}  target",
        row("configs: save_config+close+fsync", "h5", f"{mbs_h5:.0f}", f"{mbs_h5 / mbs_raw:.2f}", ">= 0.5 x raw"),
        row("raw: numpy tofile+fsync (rank 0)", "raw", f"{mbs_raw:.0f}", "1.00"),
        row("checkpoint: write_checkpoint", "ckpt", f"{ckpt_bytes / t['ckpt'] / 1e6:.0f}"),
        row("restart: Sampler+load_latest", "restart", f"{ckpt_bytes / t['restart'] / 1e6:.0f}", "",
            "restart ok" if restart_ok else "RESTART MISMATCH"),
        row(f"{N_SWEEPS_REF} sweeps", "sweeps", "", "1.00",
            f"({N_SWEEPS_REF * L * L / t['sweeps'] / 1e6:.0f} Msite/s)"),
        f"{'checkpoint + restart':<34} {t['ckpt'] + t['restart']:>7.3f} {'':>7} {'':>8} "
        f"{(t['ckpt'] + t['restart']) / t['sweeps']:>7.2f}  < 1 x {N_SWEEPS_REF} sweeps",
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench.io", description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=4096, help="lattice extent (L x L), default 4096")
    ap.add_argument("--n", type=int, default=8, help="configurations written, default 8")
    ap.add_argument("--dir", default=os.path.join("out", "bench_io"),
                    help="directory on the disk to measure (default out/bench_io)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions; best and worst are printed (default 3)")
    o = ap.parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    try:
        lines = run(comm, o.L, o.n, o.dir, o.repeat)
    except Exception:
        if comm.Get_size() > 1:            # never leave the other ranks waiting in a collective
            traceback.print_exc()
            sys.stderr.flush()
            comm.Abort(1)
        raise
    if lines:
        print("\n".join(lines), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
