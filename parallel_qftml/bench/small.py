"""Small lattices through `pqml sample` on one rank, beside the C reference (issue 12; `make bench-small`).

For each L, `pqml sample` runs a 2D L x L lattice (the yardstick's homogeneous couplings, delta = 1,
no tuning, no thermalisation, checkpoint at the end only, no plot) twice, with N and 2N sweeps, and the
rate is N / (t(2N) - t(N)) of the wall times of the two processes: start-up, compilation loading,
file creation and the end checkpoint cancel, and what remains is the production loop as a user runs
it (sweeps, measurements, row blocks written to HDF5, stop checks). Measured with a measurement every
sweep (`meas`) and with one measurement in the whole run (`sweeps`, measure_every = n_sweeps). The C
reference (../shared/yardstick, c-vexp, no measurements) runs ~2 s at the same L. N is calibrated so
that the N extra sweeps take about `--seconds` (estimated in-process first). Prints the CPU and one table, ratios of this run.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from .metropolis import YARDSTICK_CFLAGS, _parse

CONFIG = """\
[lattice]
shape = [{L}, {L}]
[action]
kind = "mrf"
a = 1.52425
b = 0.175
[sampler]
seed = 12345
delta = 1.0
tune = false
n_therm = 0
n_sweeps = {n}
measure_every = {every}
[output]
path = "{path}"
overwrite = true
progress = false
plot = false
"""


def _pqml_seconds(tmp: str, L: int, n: int, every_sweep: bool) -> float:
    cfg = os.path.join(tmp, f"L{L}.toml")
    with open(cfg, "w") as f:
        f.write(CONFIG.format(L=L, n=n, every=1 if every_sweep else n, path=os.path.join(tmp, f"L{L}.h5")))
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "parallel_qftml", "sample", cfg], capture_output=True, text=True,
                       env=env)
    dt = time.perf_counter() - t0
    if r.returncode:
        raise RuntimeError(f"pqml sample failed ({r.returncode}): {r.stderr.strip()}")
    return dt


def _estimate(L: int, every_sweep: bool) -> float:
    """Rough sweeps/s in this process (the sampler's own loop, ~0.3 s), to choose N."""
    from mpi4py import MPI
    from ..models.action import PhiFourAction
    from ..parallel.topology import Topology
    from ..sampler import Sampler
    topo = Topology(MPI.COMM_SELF, (L, L))
    s = Sampler(topo, PhiFourAction.homogeneous(2), seed=12345)
    n, t = 1, 0.0
    while t < 0.3:
        n *= 2
        t0 = time.perf_counter()
        s.measured(n, 1) if every_sweep else s.sweep(n)
        t = time.perf_counter() - t0
    topo.free()
    return n / t


def pqml_rate(tmp: str, L: int, every_sweep: bool, seconds: float) -> float:
    """Sweeps per second of the production loop (difference of an N and a 2N run)."""
    n = max(100, int(_estimate(L, every_sweep) * seconds))
    t1 = _pqml_seconds(tmp, L, n, every_sweep)
    t2 = _pqml_seconds(tmp, L, 2 * n, every_sweep)
    return n / (t2 - t1)


def c_rate(ref: str, L: int, seconds: float) -> float:
    out = subprocess.run([ref, "-L", str(L), "-k", "vexp", "-t", str(seconds)], capture_output=True, text=True,
                         check=True).stdout
    return float(_parse(out.strip().splitlines()[-1])["Msites_per_s"]) * 1e6 / (L * L)


TARGETS = {4: 0.1, 16: 0.3}        # meas / C (issue 12); L >= 256: meas / sweeps >= 0.8


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench.small", description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="4,8,16,64,256")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--yardstick", default=os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared",
                                                        "yardstick"))
    o = ap.parse_args(argv)
    src = os.path.join(os.path.abspath(o.yardstick), "metropolis_ref.c")
    if not os.path.exists(src):
        print(f"pqml: error: C reference not found at {src}", file=sys.stderr)
        return 2
    tmp = tempfile.mkdtemp(prefix="pqml-bench-small-")
    ref = os.path.join(tmp, "metropolis_ref")
    subprocess.run(["gcc", *YARDSTICK_CFLAGS, "-o", ref, src, "-lm"], check=True)
    cpu = re.search(r"model name\s*:\s*(.*)", open("/proc/cpuinfo").read())
    print(f"# {cpu.group(1) if cpu else platform.processor()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}; one rank; C: gcc {' '.join(YARDSTICK_CFLAGS)} (c-vexp, no measurements)")
    print(f"{'L':>5} {'C sweeps/s':>12} {'meas sweeps/s':>14} {'meas/C':>7} {'sweeps/s':>10} {'sweeps/C':>9} "
          f"{'meas/sweeps':>12}  target")
    ok = True
    for L in (int(x) for x in o.sizes.split(",")):
        c = c_rate(ref, L, o.seconds)
        meas = pqml_rate(tmp, L, True, o.seconds)
        plain = pqml_rate(tmp, L, False, o.seconds)
        if L in TARGETS:
            target, met = f"meas/C >= {TARGETS[L]}", meas / c >= TARGETS[L]
        elif L >= 256:
            target, met = "meas/sweeps >= 0.8", meas / plain >= 0.8
        else:
            target, met = "", True
        ok &= met
        print(f"{L:>5} {c:>12.0f} {meas:>14.0f} {meas / c:>7.3f} {plain:>10.0f} {plain / c:>9.3f} "
              f"{meas / plain:>12.3f}  {target}{'' if not target else (' met' if met else ' NOT met')}", flush=True)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
