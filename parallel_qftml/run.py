"""The sampling driver: config -> topology -> action -> sampler -> HDF5 output (+ plot)."""
from __future__ import annotations

import math
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__
from .config import RunConfig
from .errors import OutputError
from .io.output import ATTR_DELTA, ATTR_N_COLOURS, RunOutput, check_output_path
from .log import Progress, get_logger

# Test hook: raise RuntimeError on this world rank right after the topology is built
# (tests/unit/test_abort.py checks that the job aborts instead of hanging).
TEST_RAISE_ENV = "PQML_TEST_RAISE_ON_RANK"


def plot_path(cfg: RunConfig) -> Path:
    """The PNG written next to the .h5 when ``output.plot`` is true."""
    return Path(cfg.output.path).with_suffix(".png")


def _check_outputs(cfg: RunConfig, comm) -> None:
    """Check the output path(s) on world rank 0 and raise the same ``OutputError`` on every rank."""
    msg = None
    if comm.Get_rank() == 0:
        try:
            check_output_path(cfg.output.path, cfg.output.overwrite)
            if cfg.output.plot:
                check_output_path(plot_path(cfg), cfg.output.overwrite)
        except OutputError as e:
            msg = str(e)
    msg = comm.bcast(msg, root=0)
    if msg is not None:
        raise OutputError(msg)


def run_metadata(cfg: RunConfig, topo) -> dict:
    """Root attributes saying how the output was made."""
    import h5py
    import mpi4py
    import numba
    from mpi4py import MPI

    vendor, ver = MPI.get_vendor()
    return {
        "config_text": cfg.text, "config_sha256": cfg.sha256,
        "config_overrides": "\n".join(cfg.overrides),
        "package_version": __version__, "seed": np.uint64(cfg.sampler.seed),
        "global_shape": np.asarray(cfg.lattice.shape, dtype=np.int64),
        "proc_grid": np.asarray(topo.proc_grid, dtype=np.int64),
        "n_replicas": topo.n_replicas, "n_ranks": topo.world.Get_size(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python_version": platform.python_version(), "numpy_version": np.__version__,
        "numba_version": numba.__version__, "h5py_version": h5py.__version__,
        "mpi_vendor": f"{vendor} {'.'.join(map(str, ver))}", "mpi4py_version": mpi4py.__version__,
    }


def gather_replicas(topo, value):
    """Collect one value per replica (taken from each grid root) on world rank 0.

    ``value`` is a dict name -> float (returns dict name -> array(n_replicas)) or a float
    (returns array(n_replicas)); ``None`` on other ranks."""
    items = topo.world.gather((topo.replica, value) if topo.is_grid_root else None, root=0)
    if not topo.is_root:
        return None
    n = topo.n_replicas
    if not isinstance(value, dict):
        out = np.full(n, np.nan)
        for it in filter(None, items):
            out[it[0]] = it[1]
        return out
    res: dict = {}
    for it in filter(None, items):
        for k, v in it[1].items():
            res.setdefault(k, np.full(n, np.nan))[it[0]] = v
    return res


def write_plot(path: Path, sweeps: np.ndarray, action_density: np.ndarray, m: np.ndarray) -> None:
    """PNG of the histories of the action density and m (one line per replica)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(7, 5), constrained_layout=True)
    for ax, y, label in ((axes[0], action_density, "action density S/V"), (axes[1], m, "m")):
        for r in range(y.shape[1]):
            ax.plot(sweeps, y[:, r], lw=0.8, label=f"replica {r}" if y.shape[1] > 1 else None)
        ax.set_ylabel(label)
    axes[1].set_xlabel("sweep")
    if action_density.shape[1] > 1:
        axes[0].legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_sample(cfg: RunConfig, comm) -> int:
    """Run ``pqml sample``: every rank of ``comm`` calls this; returns the exit code (0)."""
    log = get_logger(comm)
    _check_outputs(cfg, comm)  # first: cheap, and nothing is created if it fails

    from .parallel.topology import Topology
    from .sampler import Sampler

    topo = Topology(comm, cfg.lattice.shape, n_replicas=cfg.parallel.n_replicas,
                    proc_grid=cfg.lattice.proc_grid)
    if os.environ.get(TEST_RAISE_ENV, "") == str(comm.Get_rank()):
        raise RuntimeError(f"{TEST_RAISE_ENV}={comm.Get_rank()}: test exception on rank {comm.Get_rank()}")
    action = cfg.to_action()

    sc = cfg.sampler
    sampler = Sampler(topo, action, seed=sc.seed, delta=sc.delta, n_hits=sc.n_hits, init=sc.init)
    shape = "x".join(map(str, cfg.lattice.shape))
    log.info(f"lattice {shape}, {topo.n_replicas} replica(s) x process grid "
             f"{'x'.join(map(str, topo.proc_grid))} on {comm.Get_size()} rank(s), "
             f"{sampler.n_colours} colours, action kind {cfg.action.kind!r}")

    out = None
    if topo.is_root:
        out = RunOutput.create(cfg.output.path, cfg.output.overwrite, run_metadata(cfg, topo),
                               topo.n_replicas)
    try:
        if sc.tune and sc.n_therm > 0:
            log.info(f"thermalising {sc.n_therm} sweeps, tuning delta to acceptance {sc.target_acceptance}")
            sampler.tune(sc.n_therm, sc.target_acceptance)
        elif sc.n_therm > 0:
            log.info(f"thermalising {sc.n_therm} sweeps at delta {sc.delta}")
            sampler.sweep(sc.n_therm)
        deltas = gather_replicas(topo, float(sampler.delta))
        if out is not None:
            out.set_attrs(**{ATTR_DELTA: deltas, ATTR_N_COLOURS: int(sampler.n_colours)})
            log.info("delta = " + ", ".join(f"{d:.6g}" for d in deltas))

        n_meas, rest = divmod(sc.n_sweeps, sc.measure_every)
        acc_sum = 0.0
        sweeps, hist_s, hist_m = [], [], []
        volume = math.prod(cfg.lattice.shape)
        progress = Progress(sc.n_sweeps, enabled=topo.is_root and cfg.output.progress)
        for _ in range(n_meas):
            acc_sum += sampler.sweep(sc.measure_every) * sc.measure_every
            values = gather_replicas(topo, sampler.measure())
            if out is not None:
                out.append(sampler.sweep_count, values)
                sweeps.append(sampler.sweep_count)
                hist_s.append(values["action"] / volume)
                hist_m.append(values["m"])
            progress.update(sc.measure_every)
        if rest:
            acc_sum += sampler.sweep(rest) * rest
            progress.update(rest)
        progress.close()
        acc = gather_replicas(topo, acc_sum / sc.n_sweeps)
    except BaseException:
        if out is not None:
            out.close(complete=False)
        raise
    if out is None:
        return 0
    out.close(complete=True)
    print(f"wrote {cfg.output.path}")
    if n_meas:
        s, m = np.asarray(hist_s), np.asarray(hist_m)
        if cfg.output.plot:
            write_plot(plot_path(cfg), np.asarray(sweeps), s, m)
            print(f"wrote {plot_path(cfg)}")
        print(f"{n_meas} measurements x {topo.n_replicas} replica(s): <S>/V = {s.mean():.6g}, "
              f"<m^2> = {np.mean(m ** 2):.6g}, acceptance = {np.mean(acc):.4f}, "
              f"delta = {np.mean(deltas):.6g}")
    sys.stdout.flush()
    return 0
