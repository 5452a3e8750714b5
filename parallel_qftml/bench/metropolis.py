"""Benchmark of the checkerboard Metropolis sweep against the C reference (../shared/yardstick).

  python -m parallel_qftml.bench --L 1024 --seconds 2        timed run (any number of MPI ranks):
        prints one line of key=value words with Msites_per_s=, as yardstick/measure expects
  python -m parallel_qftml.bench --L 64 --sweeps 50 --seed 12345 --delta 0.7 --inhom 1
        prints checksum=HEX of the final field (the yardstick spec), for `measure --candidate-check`
  python -m parallel_qftml.bench --table [--sizes 256,1024,4096] [--ranks 1,2]
        builds the C reference, runs c-vexp and this package (1 and 2 ranks, each in a fresh process)
        for every L in one invocation, and prints Msite/s, the ratios and the memory per site.
Timing excludes compilation and warm-up, one thread per rank, one attempted update per site per sweep.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import time

import numpy as np

YARDSTICK_CFLAGS = ["-O3", "-march=native", "-ffp-contract=off", "-fno-trapping-math"]


def _mix64(z: int) -> int:
    M = (1 << 64) - 1
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9 & M
    z = (z ^ (z >> 27)) * 0x94D049BB133111EB & M
    return z ^ (z >> 31)


def checksum(field: np.ndarray) -> str:
    """XOR over i of mix64(bits(phi_i) + 0x9E3779B97F4A7C15 * i) (yardstick spec)."""
    bits = np.ascontiguousarray(field, dtype=np.float64).ravel().view(np.uint64).astype(object)
    out = 0
    for i, b in enumerate(bits):
        out ^= _mix64((int(b) + 0x9E3779B97F4A7C15 * i) & ((1 << 64) - 1))
    return f"{out:016x}"


def _sampler(comm, L, seed, delta, inhom):
    from ..models.action import PhiFourAction
    from ..parallel.topology import Topology
    from ..sampler import Sampler
    topo = Topology(comm, (L, L))
    act = (PhiFourAction.perturbed(2, seed, 0.1) if inhom else PhiFourAction.homogeneous(2))
    return topo, Sampler(topo, act, seed=seed, delta=delta)


def _rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_timed(comm, L: int, seconds: float) -> str:
    from ..parallel.reductions import global_int_sum, global_max
    from ..warmup import warm_up
    warm_up()                        # compile first, so that rss0 includes numba's compiler
    rss0 = _rss_bytes()
    topo, s = _sampler(comm, L, 12345, 1.0, False)
    t0 = time.perf_counter()
    n = 0
    while True:                      # warm-up / calibration (compiles on the first call)
        s.sweep(1)
        n += 1
        el = global_max(time.perf_counter() - t0, comm)
        if el >= 0.2 and n >= 2:
            break
    n_timed = max(2, int(seconds * n / el))
    s.timers = {k: 0.0 for k in s.timers}
    comm.Barrier()
    t0 = time.perf_counter()
    acc = s.sweep(n_timed)
    comm.Barrier()
    dt = time.perf_counter() - t0
    halo = global_max(s.timers["halo"], comm)
    rss = global_int_sum(_rss_bytes(), comm)
    rss0 = global_int_sum(rss0, comm)
    V = L * L
    return (f"variant=numba-{comm.Get_size()}rank L={L} sweeps={n_timed} seconds={dt:.3f} "
            f"Msites_per_s={n_timed * V / dt / 1e6:.3f} acc={acc:.4f} halo_frac={halo / dt:.3f} "
            f"grid={'x'.join(map(str, topo.proc_grid))} peak_rss_bytes={rss} "
            f"bytes_per_site={rss / V:.1f} bytes_per_site_lattice={(rss - rss0) / V:.1f}")


def run_check(comm, L, sweeps, seed, delta, inhom) -> str | None:
    _, s = _sampler(comm, L, seed, delta, inhom)
    s.sweep(sweeps)
    f = s.gather()
    return None if f is None else f"L={L} sweeps={sweeps} checksum={checksum(f)}"


def _parse(line: str) -> dict:
    return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)


def _mpirun(n: int) -> list:
    if n == 1:
        return []
    root = ["--allow-run-as-root", "--oversubscribe"] if os.geteuid() == 0 else []
    return ["mpirun", "-n", str(n), *root]


def table(sizes, ranks, seconds, yardstick) -> int:
    src = os.path.join(yardstick, "metropolis_ref.c")
    have_c = os.path.exists(src)
    ref = os.path.join("/tmp", f"pqml-yardstick-{os.getuid()}", "metropolis_ref")
    if have_c:
        os.makedirs(os.path.dirname(ref), exist_ok=True)
        subprocess.run(["gcc", *YARDSTICK_CFLAGS, "-o", ref, src, "-lm"], check=True)
    else:
        print(f"# C reference not found at {src}: ratios to C are not shown", flush=True)
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"# {cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}, NumPy {np.__version__}; C: gcc {' '.join(YARDSTICK_CFLAGS)}")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    rows = []
    for L in sizes:
        c_rate = None
        if have_c:
            out = subprocess.run([ref, "-L", str(L), "-k", "vexp", "-t", str(seconds)], capture_output=True,
                                 text=True, check=True).stdout
            c_rate = float(_parse(out.strip().splitlines()[-1])["Msites_per_s"])
            rows.append((L, "c-vexp", c_rate, 1.0, "", "", "", ""))
        one = None
        for n in ranks:
            cmd = [*_mpirun(n), sys.executable, "-m", "mpi4py", "-m", "parallel_qftml.bench", "--L", str(L),
                   "--seconds", str(seconds)]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode:
                print(r.stdout + r.stderr, file=sys.stderr)
                return 1
            d = _parse([ln for ln in r.stdout.splitlines() if "Msites_per_s=" in ln][-1])
            rate = float(d["Msites_per_s"])
            one = rate if n == 1 else one
            rows.append((L, d["variant"], rate, rate / c_rate if c_rate else float("nan"),
                         f"{rate / one:.2f}" if one else "", d["halo_frac"], d["bytes_per_site"],
                         d["bytes_per_site_lattice"]))
    print(f"{'L':>6} {'variant':<14} {'Msite/s':>9} {'/c-vexp':>8} {'/1rank':>7} {'halo':>6} {'B/site':>7} "
          f"{'B/site(lattice)':>15}")
    for L, v, rate, ratio, sp, halo, bps, bpl in rows:
        print(f"{L:>6} {v:<14} {rate:>9.1f} {ratio:>8.2f} {sp:>7} {halo:>6} {bps:>7} {bpl:>15}")
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench", description=__doc__.splitlines()[0])
    ap.add_argument("--L", type=int, default=256)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--sweeps", type=int, help="check mode: run this many sweeps and print the checksum")
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--delta", type=float, default=1.0)
    ap.add_argument("--inhom", type=int, default=0)
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--sizes", default="256,1024,4096")
    ap.add_argument("--ranks", default="1,2")
    ap.add_argument("--yardstick", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                        "yardstick"))
    o = ap.parse_args(argv)
    if o.table:
        return table([int(x) for x in o.sizes.split(",")], [int(x) for x in o.ranks.split(",")], o.seconds,
                     os.path.abspath(o.yardstick))
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    line = (run_check(comm, o.L, o.sweeps, o.seed, o.delta, o.inhom) if o.sweeps is not None
            else run_timed(comm, o.L, o.seconds))
    if comm.Get_rank() == 0 and line:
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
