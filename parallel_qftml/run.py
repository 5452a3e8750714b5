"""The sampling driver: config -> topology -> action -> sampler -> HDF5 output (+ plot)."""
from __future__ import annotations

import math
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import __version__, debughooks
from .config import RunConfig
from .errors import EXIT_CHECKPOINTED, UserError
from .io.schema import ATTR_DELTA, ATTR_N_COLOURS
from .lifecycle import (_refuse_if, check_outputs, check_resume, clear_checkpoints,  # noqa: F401 (re-exported)
                        output_run_id, owned_paths, plot_path, restart_check)
from .parallel.reductions import any_rank, bcast, replica_rows, replica_values
from .signals import StopRequest
from .log import Progress, get_logger
from .memory import check_memory, sample_memory

MEASURE_BLOCK_SITES = 1 << 22    # site updates per block of measurements at most (between stop checks)


def _next_event(k: int, every: int, m: int, periods) -> int:
    """The number of measurements, at most m, from sweep k (since thermalisation) to the first one at
    which k + j * every is a multiple of a non-zero period (a configuration save or a checkpoint):
    the smallest j >= 1 with j * every = -k (mod p), if there is one."""
    for p in periods:
        if p:
            g = math.gcd(every, p)
            if k % g:
                continue                  # k + j * every never hits a multiple of p
            q = p // g
            j = (-(k // g) * pow(every // g, -1, q)) % q if q > 1 else 0
            m = min(m, j or q)
    return m


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
    of the output file's run (or start afresh if nothing would be lost, lifecycle.restart_check). The
    job holds the locks of its output and checkpoint directory throughout (lifecycle.owned_paths)."""
    with owned_paths(cfg, comm):
        return _run_sample(cfg, comm, resume, force)


def _couplings(sampler) -> list:
    """Copies of this rank's blocks of w, a, b, r (to see whether a checkpoint replaced them)."""
    g = sampler.geom
    interior = lambda x: x.reshape(g.padded_shape)[g.interior].copy()  # noqa: E731
    return [interior(sampler.w[mu]) for mu in range(g.ndim)] + [interior(getattr(sampler, n))
                                                                 for n in ("a", "b", "r")]


def _run_sample(cfg: RunConfig, comm, resume: bool, force: bool) -> int:
    log = get_logger(comm)
    if not resume:
        check_outputs(cfg, comm)  # first: cheap, and nothing is created if it fails
    check_memory(sample_memory(cfg, comm.Get_size(), comm.Get_rank()), comm, "this sampling run")
    check_space(cfg.output.path, sample_bytes(cfg), comm)

    from .io.checkpoint import load_latest, pending_checkpoint, write_checkpoint
    from .io.output import ROW_BLOCK, RunFile
    from .kernels.chain import OBS_COLUMNS
    from .parallel.topology import Topology
    from .sampler import TUNE_BLOCK, Sampler

    topo = Topology(comm, cfg.lattice.shape, n_replicas=cfg.parallel.n_replicas,
                    proc_grid=cfg.lattice.proc_grid)
    debughooks.raise_on_rank(comm.Get_rank())     # test hook (PQML_DEBUG_HOOKS=1 only): tests/unit/test_abort.py
    action = cfg.to_action()
    sc, oc, cc = cfg.sampler, cfg.output, cfg.checkpoint
    sampler = Sampler(topo, action, seed=sc.seed, delta=sc.delta, n_hits=sc.n_hits, init=sc.init)
    total = sc.n_therm + sc.n_sweeps
    save_configs = oc.save_every > 0

    configured = _couplings(sampler) if resume else None
    state = load_latest(cfg.checkpoint_dir, sampler, log.warning, output_run_id(cfg, comm)) if resume else None
    if resume and state is None:
        restart_check(cfg, comm, log)
    if state is not None:
        # the checkpoint holds the couplings and delta: a changed [action] (or delta without tuning) would be
        # silently replaced by the checkpoint's, so --force refuses it (docs/config.md)
        changed = any_rank(any(not np.array_equal(x, y) for x, y in zip(configured, _couplings(sampler)))
                           or float(action.w_nnn) != state.w_nnn, comm)
        if not sc.tune and np.any(state.delta != sc.delta):
            kept = "sampler.delta (tune = false) differs from the checkpoint's step sizes, which it keeps"
        else:
            kept = "the config's [action] differs from the couplings in the checkpoint, which it keeps" if changed else None
        check_resume(cfg, comm, state.path, state.physics_sha256, force, f"sweep {state.sweep_count}",
                     "lattice, action, sampler or output.save_every", kept, log)
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
        with pending_checkpoint(cfg.checkpoint_dir, sampler.sweep_count, run_id, comm):
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

    progress = Progress(total, enabled=topo.is_root and oc.progress, start=sampler.sweep_count)
    checked_acceptance = False
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
            me, block = sc.measure_every, 1
            cap = max(1, min(ROW_BLOCK, MEASURE_BLOCK_SITES // (math.prod(cfg.lattice.shape) * me * sc.n_hits)))
            while sampler.sweep_count < total:
                k = sampler.sweep_count - sc.n_therm          # blocks end at measurements
                m = min((total - sampler.sweep_count) // me, block)
                if m == 0:                                    # the tail shorter than me: not measured
                    n = total - sampler.sweep_count
                    acc = sampler.sweep(n)
                else:
                    m = _next_event(k, me, m, [oc.save_every if save_configs else 0, cc.every])
                    n = m * me
                    rows = sampler.measured(m, me)
                    acc = float(rows[0, -1])
                    block = min(2 * block, cap)
                progress.update(n)
                if not checked_acceptance:       # the first block after tuning: warn if it is useless
                    checked_acceptance = True
                    low = replica_values(topo, acc, False)
                    if np.nanmin(low) < 0.01:
                        log.warning(f"acceptance {np.nanmin(low):.3g} is below 1 % after thermalisation "
                                    f"(delta = {np.min(deltas):.3g}): the chain hardly moves; choose another "
                                    f"sampler.delta or sampler.tune = true")
                if m:
                    k = sampler.sweep_count - sc.n_therm
                    table = replica_rows(topo, rows)
                    out.append_block(sc.n_therm + k - me * np.arange(m - 1, -1, -1, dtype=np.int64),
                                     None if table is None else {c: table[:, j, :] for j, c in enumerate(OBS_COLUMNS)})
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
    if not topo.is_root:
        return 0
    print(f"wrote {oc.path}")
    _summary(cfg, topo, deltas)
    sys.stdout.flush()
    return 0


def _summary(cfg: RunConfig, topo, deltas) -> None:
    """Plot and one-line summary from the file (rank 0); the acceptance is the mean of the measured
    acceptances in the file (the whole run, also after a resume, even one that had nothing to do)."""
    import h5py
    from .io import schema as S
    with h5py.File(cfg.output.path, "r") as f:
        g = f[S.OBSERVABLES]
        sweeps, s, m = g[S.SWEEP][:], g["action"][:] / math.prod(cfg.lattice.shape), g["m"][:]
        acc = g["acceptance"][:]
    if not len(sweeps):
        return
    if cfg.output.plot:
        write_plot(plot_path(cfg), sweeps, s, m)
        print(f"wrote {plot_path(cfg)}")
    print(f"{len(sweeps)} measurements x {topo.n_replicas} replica(s): <S>/V = {s.mean():.6g}, "
          f"<m^2> = {np.mean(m ** 2):.6g}, acceptance = {np.mean(acc):.4f}, delta = {np.mean(deltas):.6g}")
