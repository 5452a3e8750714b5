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
from .errors import EXIT_CHECKPOINTED, OutputError, UserError
from .io.output import check_output_path
from .io.schema import ATTR_DELTA, ATTR_N_COLOURS
from .parallel.reductions import bcast, replica_values
from .signals import StopRequest
from .log import Progress, get_logger

# Test hook: raise RuntimeError on this world rank right after the topology is built
# (tests/unit/test_abort.py checks that the job aborts instead of hanging).
TEST_RAISE_ENV = "PQML_TEST_RAISE_ON_RANK"


def plot_path(cfg) -> Path:
    """The PNG written next to the .h5 when ``output.plot`` is true."""
    return Path(cfg.output.path).with_suffix(".png")


def _refuse_if(check, comm) -> None:
    """Run `check()` (returns an error message or None) on world rank 0 only, and raise the same
    OutputError on every rank if it found a problem (file-system checks must not diverge)."""
    msg = None
    if comm.Get_rank() == 0:
        try:
            msg = check()
        except OutputError as e:
            msg = str(e)
    msg = bcast(msg, comm)
    if msg:
        raise OutputError(msg)


def check_outputs(cfg, comm) -> None:
    """The output path(s) can be written (nothing is created)."""
    def check():
        check_output_path(cfg.output.path, cfg.output.overwrite)
        if cfg.output.plot:
            check_output_path(plot_path(cfg), cfg.output.overwrite)
    _refuse_if(check, comm)


def run_metadata(cfg, topo, seed: int) -> dict:
    """Root attributes saying how the output was made (cfg: a RunConfig or a LearnConfig)."""
    import h5py
    import mpi4py
    import numba
    from mpi4py import MPI

    vendor, ver = MPI.get_vendor()
    import uuid
    return {
        "run_id": uuid.uuid4().hex, "config_text": cfg.text, "config_sha256": cfg.sha256,
        "config_overrides": "\n".join(cfg.overrides),
        "package_version": __version__, "seed": np.uint64(seed),
        "global_shape": np.asarray(topo.shape, dtype=np.int64),
        "proc_grid": np.asarray(topo.proc_grid, dtype=np.int64),
        "n_replicas": topo.n_replicas, "n_ranks": topo.world.Get_size(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python_version": platform.python_version(), "numpy_version": np.__version__,
        "numba_version": numba.__version__, "h5py_version": h5py.__version__,
        "mpi_vendor": f"{vendor} {'.'.join(map(str, ver))}", "mpi4py_version": mpi4py.__version__,
    }


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


def clear_checkpoints(cfg, comm, allowed: bool) -> None:
    """A fresh start must not leave an earlier run's checkpoints beside its own (a later --resume would
    pick them up): delete them if the output may be overwritten, else refuse."""
    from .io.checkpoint import list_checkpoints, remove_checkpoints

    def check():
        if list_checkpoints(cfg.checkpoint_dir):
            if not allowed:
                return (f"{cfg.checkpoint_dir!r} holds checkpoints of an earlier run: resume it with "
                        f"--resume, set output.overwrite = true, or delete them")
            remove_checkpoints(cfg.checkpoint_dir)
    _refuse_if(check, comm)


def restart_check(cfg, comm) -> None:
    """--resume without a checkpoint: start afresh, overwriting an output file only if it is an
    incomplete file of the same physics (a run killed before its first checkpoint)."""
    def check():
        if not Path(cfg.output.path).exists():
            return None
        import h5py
        try:
            with h5py.File(cfg.output.path, "r") as f:
                if not bool(f.attrs.get("complete", True)) and \
                        f.attrs.get("physics_sha256", "") == cfg.physics_sha256:
                    return None
        except OSError as e:
            return f"cannot resume: {cfg.output.path!r} is not readable ({e})"
        return (f"cannot resume: {cfg.output.path!r} exists but {cfg.checkpoint_dir!r} has no checkpoint "
                f"(and the file is complete or of another config)")
    _refuse_if(check, comm)


def sample_bytes(cfg: RunConfig) -> int:
    """Disk space a sampling run writes: configurations and checkpoints."""
    V, R = math.prod(cfg.lattice.shape), cfg.parallel.n_replicas
    n_save = cfg.sampler.n_sweeps // cfg.output.save_every if cfg.output.save_every else 0
    return 8 * V * R * n_save + 8 * V * (R + len(cfg.lattice.shape) + 3) * (cfg.checkpoint.keep + 2)


def check_space(path: str, need: int, comm) -> None:
    """Refuse to start when the disk holding `path` has less than `need` bytes free."""
    import shutil

    def check():
        d = Path(path).absolute().parent
        while not d.exists():
            d = d.parent
        free = shutil.disk_usage(d).free
        if free < need:
            return (f"not enough disk space for {path!r}: the run writes about {need / 2**20:.0f} MiB "
                    f"(configurations and checkpoints), {free / 2**20:.0f} MiB free")
    _refuse_if(check, comm)


def run_sample(cfg: RunConfig, comm, resume: bool = False, force: bool = False) -> int:
    """Run ``pqml sample``: every rank of ``comm`` calls this; returns the exit code (0, or
    EXIT_CHECKPOINTED after a stop signal). With ``resume``, continue from the newest valid checkpoint
    (or start afresh if there is none and no output file)."""
    log = get_logger(comm)
    if not resume:
        check_outputs(cfg, comm)  # first: cheap, and nothing is created if it fails
    check_space(cfg.output.path, sample_bytes(cfg), comm)

    from .io.checkpoint import load_latest, write_checkpoint
    from .io.output import RunFile
    from .parallel.topology import Topology
    from .sampler import TUNE_BLOCK, Sampler

    topo = Topology(comm, cfg.lattice.shape, n_replicas=cfg.parallel.n_replicas,
                    proc_grid=cfg.lattice.proc_grid)
    if os.environ.get(TEST_RAISE_ENV, "") == str(comm.Get_rank()):
        raise RuntimeError(f"{TEST_RAISE_ENV}={comm.Get_rank()}: test exception on rank {comm.Get_rank()}")
    action = cfg.to_action()
    sc, oc, cc = cfg.sampler, cfg.output, cfg.checkpoint
    sampler = Sampler(topo, action, seed=sc.seed, delta=sc.delta, n_hits=sc.n_hits, init=sc.init)
    total = sc.n_therm + sc.n_sweeps
    save_configs = oc.save_every > 0

    state = load_latest(cfg.checkpoint_dir, sampler, log.warning) if resume else None
    if resume and state is None:
        restart_check(cfg, comm)
    if state is not None and state.physics_sha256 != cfg.physics_sha256 and not force:
        raise UserError(f"cannot resume from {state.path}: the config's lattice, action, sampler or "
                        f"output.save_every differ from the checkpointed run (use --force to resume anyway)")
    if state is not None and state.sweep_count > total:
        raise UserError(f"cannot resume from {state.path}: it is at sweep {state.sweep_count}, beyond "
                        f"n_therm + n_sweeps = {total}")
    if state is None:
        clear_checkpoints(cfg, comm, allowed=oc.overwrite or resume)
    log.info(f"{topo.describe()}, {sampler.n_colours} colours, action kind {cfg.action.kind!r}"
             + (f"; resuming from {state.path} at sweep {state.sweep_count}" if state else ""))

    if state is not None:
        run_id = state.run_id
        out = RunFile.reopen(oc.path, topo, state.n_meas, state.n_saved, save_configs, run_id)
    else:
        meta = bcast(run_metadata(cfg, topo, cfg.sampler.seed) if topo.is_root else None, comm)
        meta["physics_sha256"] = cfg.physics_sha256
        run_id = meta["run_id"]
        out = RunFile.create(oc.path, topo, meta, True, save_configs, sampler)   # path checked above

    last = [state.sweep_count if state else -1]

    def checkpoint():
        if last[0] == sampler.sweep_count:
            return
        out.flush()
        path = write_checkpoint(cfg.checkpoint_dir, sampler, replica_values(topo, sampler.delta, False),
                                out.n_meas, out.n_saved, cfg.physics_sha256, cfg.text, cc.keep, run_id)
        last[0] = sampler.sweep_count
        log.info(f"checkpoint {path} (sweep {sampler.sweep_count})")

    def stop_here() -> int:
        checkpoint()
        out.close(complete=False)
        progress.close()
        log.warning(f"stopped by signal at sweep {sampler.sweep_count}; resume with --resume")
        return EXIT_CHECKPOINTED

    progress = Progress(total, enabled=topo.is_root and oc.progress)
    progress.update(sampler.sweep_count)
    acc_sum, n_acc = 0.0, 0
    with StopRequest() as stop:
        try:
            while sampler.sweep_count < sc.n_therm:              # safe points every 10 sweeps
                before = sampler.sweep_count
                if sc.tune:
                    sampler.thermalise_block(sc.n_therm, sc.target_acceptance)
                else:
                    sampler.sweep(min(sc.n_therm, (before // TUNE_BLOCK + 1) * TUNE_BLOCK) - before)
                progress.update(sampler.sweep_count - before)
                if stop.requested(comm):
                    return stop_here()
            deltas = replica_values(topo, float(sampler.delta), False)
            out.set_attrs(**{ATTR_DELTA: deltas, ATTR_N_COLOURS: int(sampler.n_colours)})
            while sampler.sweep_count < total:
                n = min(sc.measure_every, total - sampler.sweep_count)
                acc_sum += sampler.sweep(n) * n
                n_acc += n
                progress.update(n)
                k = sampler.sweep_count - sc.n_therm
                if n == sc.measure_every:
                    out.append_observables(sampler.sweep_count, replica_values(topo, sampler.measure()))
                    if save_configs and k % oc.save_every == 0:
                        out.save_config(sampler.sweep_count, sampler)
                    if cc.every and k % cc.every == 0:
                        checkpoint()
                if stop.requested(comm):
                    return stop_here()
            checkpoint()                  # the end state: --resume is a no-op, a longer n_sweeps extends
        except UserError:
            out.close(complete=False)
            raise
    progress.close()
    out.close(complete=True)
    acc = replica_values(topo, acc_sum / n_acc if n_acc else float("nan"))
    if not topo.is_root:
        return 0
    print(f"wrote {oc.path}")
    _summary(cfg, topo, deltas, acc)
    sys.stdout.flush()
    return 0


def _summary(cfg: RunConfig, topo, deltas, acc) -> None:
    """Plot and one-line summary from the file (rank 0)."""
    import h5py
    from .io import schema as S
    with h5py.File(cfg.output.path, "r") as f:
        g = f[S.OBSERVABLES]
        sweeps, s, m = g[S.SWEEP][:], g["action"][:] / math.prod(cfg.lattice.shape), g["m"][:]
    if not len(sweeps):
        return
    if cfg.output.plot:
        write_plot(plot_path(cfg), sweeps, s, m)
        print(f"wrote {plot_path(cfg)}")
    print(f"{len(sweeps)} measurements x {topo.n_replicas} replica(s): <S>/V = {s.mean():.6g}, "
          f"<m^2> = {np.mean(m ** 2):.6g}, acceptance = {np.mean(acc):.4f}, delta = {np.mean(deltas):.6g}")
