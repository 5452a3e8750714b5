"""`pqml rbm` against the serial training API for the same model, target and recipe (issue 12, item 5).

  python -m parallel_qftml.bench.rbm_cli [--config jobs/configs/rbm_free_1d.toml] [--ranks 1 2] [--epochs N]
                                         [--repeat R]

Times, in one invocation: (1) `rbm.train_gaussian.train` in this process with the config's model, target
and recipe (the history recorded every 100 epochs, as in docs/rbm.md), and the same as a fresh Python
process (start-up and imports included: what a user's script pays); (2) `pqml rbm CONFIG` in a
subprocess on each number of ranks (`mpirun -n R python -m mpi4py -m parallel_qftml rbm`), wall time of the
whole command including start-up, the training loop's own time (the driver's "trained" log line) and the
CPU time of all its processes (user + system, all ranks: less sensitive to a shared machine's load).
Prints the CPU (from /proc/cpuinfo), the load average before and after, both times and the ratios, and
the largest relative eigenvalue error of each run against the free-field target; with --repeat R the
serial and CLI runs alternate R times and the best of each is printed too (a shared machine's load varies).
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() + f", {os.cpu_count()} cpus"
    except OSError:
        pass
    return "unknown CPU"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def serial(cfg) -> tuple[float, float, float]:
    """Wall and CPU seconds of train_gaussian.train for the config's recipe, and the final
    max |lambda/kappa - 1|."""
    from ..rbm import gaussian as G
    from ..rbm.train_gaussian import train
    shape, m2 = tuple(cfg.target.shape), cfg.target.m2
    K = G.free_field_kernel(shape, m2)
    rbm = G.GaussianRBM.random(K.shape[0], cfg.rbm.n_hidden, cfg.rbm.mu2, cfg.rbm.sigma_h2, cfg.rbm.init_std,
                               np.random.default_rng(cfg.seed))
    oc, tc = cfg.optimizer, cfg.train
    cpu = time.process_time()
    hist = train(rbm, K_target=K, epochs=tc.epochs, gradient=tc.gradient, n_chains=tc.n_chains, k=tc.k,
                 learn_mu2=cfg.rbm.learn_mu2, optimizer=oc.kind, lr=oc.lr, schedule=oc.schedule, decay=oc.decay,
                 decay_every=oc.decay_every, seed=cfg.seed, record_every=100)
    cpu = time.process_time() - cpu
    return hist["seconds"], cpu, float(np.max(np.abs(hist["lambda"][-1] / G.free_field_eigenvalues(shape, m2) - 1)))


def serial_cold(config: Path, epochs: int) -> float:
    """Wall seconds of a fresh Python process that imports the package and runs `serial` (a user's script
    of the serial API: start-up and imports included, as for the CLI)."""
    over = [f"train.epochs={epochs}"] if epochs else []
    code = ("from parallel_qftml.bench.rbm_cli import serial; from parallel_qftml.rbm.config import load_rbm_config; "
            f"serial(load_rbm_config({str(config)!r}, {over!r}))")
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - t0


def cli(config: Path, ranks: int, epochs: int, workdir: str) -> tuple[float, float, float, float]:
    """(wall seconds, training-loop seconds, CPU seconds of all processes, max relative eigenvalue error) of
    `pqml rbm` on `ranks` ranks."""
    import resource

    import h5py

    from ..rbm import gaussian as G
    from ..rbm.config import load_rbm_config
    out = os.path.join(workdir, f"bench_{ranks}.h5")
    args = [sys.executable, "-m", "mpi4py", "-m", "parallel_qftml", "rbm", str(config), "--set",
            f'output.path="{out}"', "--set", "output.progress=false", "--set", "output.overwrite=true"]
    if epochs:
        args += ["--set", f"train.epochs={epochs}"]
    if ranks > 1:
        args = ["mpirun", "-n", str(ranks), "--oversubscribe"] + (["--allow-run-as-root"] if os.geteuid() == 0
                                                                  else []) + args
    env = dict(os.environ, OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    t0, u0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run(args, capture_output=True, text=True, env=env)
    wall, u1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (u1.ru_utime - u0.ru_utime) + (u1.ru_stime - u0.ru_stime)
    if r.returncode:
        raise SystemExit(f"pqml rbm failed ({r.returncode}):\n{r.stderr}")
    m = re.search(r"trained \d+ epochs in ([0-9.]+) s", r.stderr + r.stdout)
    cfg = load_rbm_config(config)
    with h5py.File(out) as f:
        lam = f["rbm/eigenvalues"][-1]
    kappa = G.free_field_eigenvalues(tuple(cfg.target.shape), cfg.target.m2)
    return wall, float(m.group(1)) if m else float("nan"), cpu, float(np.max(np.abs(lam / kappa - 1)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m parallel_qftml.bench.rbm_cli", description=__doc__.split("\n")[0])
    ap.add_argument("--config", default=str(REPO / "jobs" / "configs" / "rbm_free_1d.toml"))
    ap.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--epochs", type=int, default=0, help="override train.epochs (0: the config's)")
    ap.add_argument("--repeat", type=int, default=1, help="alternate serial and CLI runs this many times")
    a = ap.parse_args(argv)
    from ..rbm.config import load_rbm_config
    cfg = load_rbm_config(a.config, [f"train.epochs={a.epochs}"] if a.epochs else [])
    print(f"# {cpu_name()}; load average before: {load()}")
    print(f"# {a.config}: N_v = {int(np.prod(cfg.target.shape))}, N_h = {cfg.rbm.n_hidden}, {cfg.train.epochs} epochs, "
          f"{cfg.train.gradient}, {cfg.train.n_chains} chains, k = {cfg.train.k}, {cfg.optimizer.kind} lr "
          f"{cfg.optimizer.lr} {cfg.optimizer.schedule}")
    serial(load_rbm_config(a.config, ["train.epochs=50"]))          # imports, BLAS warm-up
    best = {}
    with tempfile.TemporaryDirectory(prefix="bench_rbm_cli_") as d:
        cli(Path(a.config), 1, 20, d)                                  # numba cache warm
        for rep in range(a.repeat):                                    # serial and CLI alternate
            t_ser, c_ser, err = serial(cfg)
            best["serial"] = min(best.get("serial", t_ser), t_ser)
            cold = serial_cold(Path(a.config), a.epochs)
            best["script"] = min(best.get("script", cold), cold)
            print(f"serial API (train_gaussian.train)   {t_ser:7.2f} s (CPU {c_ser:6.2f} s; as a script {cold:6.2f} s "
                  f"wall){'':15s}max |lambda/kappa - 1| {err:.2e}")
            for n in a.ranks:
                wall, loop, cpu, err = cli(Path(a.config), n, a.epochs, d)
                best[n] = min(best.get(n, (wall, loop)), (wall, loop))
                print(f"pqml rbm, {n} rank(s)                {wall:7.2f} s wall ({wall / cold:4.2f} x script), "
                      f"loop {loop:6.2f} s ({loop / t_ser:4.2f} x), CPU {cpu:6.2f} s ({cpu / c_ser:4.2f} x)   "
                      f"max |lambda/kappa - 1| {err:.2e}")
    if a.repeat > 1:
        t, c = best["serial"], best["script"]
        print(f"best of {a.repeat}: serial {t:.2f} s (as a script {c:.2f} s wall); " + "; ".join(
            f"{n} rank(s) {w:.2f} s wall ({w / c:.2f} x script), loop {lp:.2f} s ({lp / t:.2f} x)"
            for n, (w, lp) in ((n, v) for n, v in best.items() if n not in ("serial", "script"))))
    print(f"# load average after: {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
