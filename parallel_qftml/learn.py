"""The learning driver (``pqml learn CONFIG``): config -> topology -> (data) -> trainer -> HDF5 output.

Mirrors run.py: outputs checked before anything is created, checkpoints every `checkpoint.every` epochs
and at the end, SIGTERM/SIGUSR1 -> checkpoint + exit 3, `--resume` continues bit for bit on any rank
count. A non-finite action or gradient stops the run (exit 4) and leaves the last good checkpoint.
"""
from __future__ import annotations

import math
import sys

import numpy as np

from .errors import EXIT_CHECKPOINTED, UserError
from .log import Progress, get_logger
from .parallel.reductions import bcast
from .lifecycle import (check_outputs, check_resume, clear_checkpoints, output_run_id, owned_paths, plot_path,
                        restart_check)
from .memory import check_memory, learn_memory
from .run import check_space, run_metadata
from .signals import StopRequest


def learn_bytes(cfg) -> int:
    """Disk space a learning run writes: coupling snapshots and checkpoints."""
    V, d = math.prod(cfg.lattice.shape), len(cfg.lattice.shape)
    per = 8 * V * (d + 3)
    n_snap = cfg.learn.epochs // cfg.output.save_every if cfg.output.save_every else 0
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[cfg.optimizer.kind]
    ckpt = 8 * V * cfg.learn.n_chains * (2 if cfg.reference is not None else 1) + per * (1 + slots)
    return per * (2 * n_snap + 1) + ckpt * (cfg.checkpoint.keep + 2)


def write_learning_plot(path, epoch, f) -> None:
    """PNG: KL estimate (target mode) or gradient norm (data mode), and mean +- std of each coupling."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from .io import schema as S
    fig, axes = plt.subplots(2, 1, sharex=True, figsize=(7, 6), constrained_layout=True)
    g = f[S.LEARNING]
    if np.isfinite(g["kl"][:]).any():
        axes[0].errorbar(epoch, g["kl"][:], g["kl_err"][:], lw=0.8, label="KL(p_S || q_A)")
        if np.isfinite(g["kl_ref"][:]).any():
            axes[0].errorbar(epoch, g["kl_ref"][:], g["kl_ref_err"][:], lw=0.8, label="KL(reference || q_A)")
        axes[0].set_ylabel("KL estimate")
        axes[0].legend(fontsize="small")
    else:
        axes[0].plot(epoch, g["grad_norm"][:], lw=0.8)
        axes[0].set_ylabel("|gradient|")
        axes[0].set_yscale("log")
    for n in ("w", "a", "b", "r"):
        m, s = g[f"mean_{n}"][:], g[f"std_{n}"][:]
        if np.any(m != 0) or np.any(s != 0):
            axes[1].plot(epoch, m, label=n)
            axes[1].fill_between(epoch, m - s, m + s, alpha=0.3)
    axes[1].set_ylabel("coupling mean ± std over sites")
    axes[1].set_xlabel("epoch")
    axes[1].set_xscale("log")
    axes[1].legend(fontsize="small")
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run_learn(cfg, comm, resume: bool = False, force: bool = False, hooks=()) -> int:
    """Run ``pqml learn``; every rank of ``comm`` calls this; returns the exit code.

    `hooks`: callables ``hook(trainer, row)`` run after every epoch on every rank (row = the epoch's
    statistics, identical on all ranks; the trainer gives the couplings, chains and timers). A hook that
    returns True ends the training there (e.g. early stopping on the KL estimate), with a checkpoint and
    a complete output file; it must decide the same on every rank (decide from `row`). The job holds the
    locks of its output and checkpoint directory throughout (lifecycle.owned_paths)."""
    with owned_paths(cfg, comm):
        return _run_learn(cfg, comm, resume, force, hooks)


def _run_learn(cfg, comm, resume: bool, force: bool, hooks) -> int:
    log = get_logger(comm)
    if not resume:
        check_outputs(cfg, comm)
    check_memory(learn_memory(cfg, comm.Get_size(), comm.Get_rank()), comm, "this learning run")
    check_space(cfg.output.path, learn_bytes(cfg), comm)

    from .io.dataset import load_blocks
    from .io.learn_checkpoint import load_latest_learn, write_learn_checkpoint
    from .io.checkpoint import pending_checkpoint
    from .io import schema as S
    from .io.learn_output import LearnFile
    from .learning.trainer import DivergenceError, Trainer
    from .parallel.topology import Topology

    lc, oc, cc = cfg.learn, cfg.output, cfg.checkpoint
    topo = Topology(comm, cfg.lattice.shape, n_replicas=cfg.parallel.n_replicas, proc_grid=cfg.lattice.proc_grid)
    data = load_blocks(cfg.data.path, cfg.data.dataset, topo) if lc.mode == "data" else None
    if data is not None and data[0].shape[0] < cfg.data.batch_size:
        raise UserError(f"data.batch_size = {cfg.data.batch_size} exceeds the {data[0].shape[0]} configurations "
                        f"of {cfg.data.path!r}")
    tr = Trainer(cfg, topo, data)
    state = load_latest_learn(cfg.checkpoint_dir, tr, log.warning, output_run_id(cfg, comm)) if resume else None
    if resume and state is None:
        restart_check(cfg, comm, log)
    if state is not None:     # --force: the changed settings apply from the checkpoint on (recorded)
        check_resume(cfg, comm, state.path, state.physics_sha256, force, f"epoch {state.epoch}",
                     "lattice, learning, sampler, optimizer, init, target or data settings", log=log)
    if state is not None and state.epoch > lc.epochs:
        raise UserError(f"cannot resume from {state.path}: it is at epoch {state.epoch}, beyond learn.epochs = "
                        f"{lc.epochs}")
    if state is None:
        clear_checkpoints(cfg, comm, allowed=oc.overwrite or resume)
    log.info(f"{topo.describe()}; learning ({lc.mode} mode) {lc.n_chains} chain(s) in {topo.n_replicas} "
             f"group(s), parameters {', '.join(lc.params)}"
             + (f"; resuming from {state.path} at epoch {state.epoch}" if state else ""))
    if state is not None:
        run_id = state.run_id
        out = LearnFile.reopen(oc.path, topo, state.n_rows, state.n_snap, run_id)
    else:
        meta = bcast(run_metadata(cfg, topo, cfg.chains.seed) if topo.is_root else None, comm)
        meta["physics_sha256"] = cfg.physics_sha256
        meta["learn_mode"] = lc.mode
        run_id = meta["run_id"]
        out = LearnFile.create(oc.path, topo, meta, True)
        tr.thermalise()
        if cfg.reference is not None and cfg.reference_estimator == "ti":   # once, before training: docs/learning.md
            log.info(f"reference KL by thermodynamic integration: {2 * cfg.ti.nodes + 2} chains x {cfg.ti.samples} "
                     f"samples")
            ti = tr.reference_ti()
            out.write_ti(S.REFERENCE_TI, ti, cfg.ti.nodes)
            log.info(f"reference KL(reference || target) = {ti.describe()}")
    site = lambda: {n: tr.params[n] for n in ("a", "b", "r")}  # noqa: E731
    last = [state.path if state else None, state.epoch if state else -1]

    def checkpoint():
        if last[1] == tr.epoch:
            return
        with pending_checkpoint(cfg.checkpoint_dir, tr.epoch, run_id, comm):
            out.write_couplings(tr.geom, tr.params["w"], site())
            out.flush()
            last[0] = write_learn_checkpoint(cfg.checkpoint_dir, tr, out.n_rows, out.n_snap, cfg.physics_sha256,
                                             cfg.text, cc.keep, run_id)
        last[1] = tr.epoch
        log.info(f"checkpoint {last[0]} (epoch {tr.epoch})")

    progress = Progress(lc.epochs, label="learning", enabled=topo.is_root and oc.progress, start=tr.epoch)
    with StopRequest() as stop:
        try:
            while tr.epoch < lc.epochs:
                row = tr.run_epoch()
                out.append(tr.epoch, row if topo.is_root else None)
                status = (f"KL {row['kl']:.4g}" if lc.mode == "target" else f"|grad| {row['grad_norm']:.3g}")
                progress.update(1, f"{status} lr {row['lr']:.3g}")
                if oc.save_every and tr.epoch % oc.save_every == 0:
                    out.snapshot(tr.epoch, tr.geom, tr.params, tr.last_grad)
                if cc.every and tr.epoch % cc.every == 0:
                    checkpoint()
                if any([bool(h(tr, row)) for h in hooks]):
                    log.info(f"a hook ended the training at epoch {tr.epoch}")
                    break
                if stop.requested(comm):
                    checkpoint()
                    out.close(complete=False)
                    progress.close()
                    log.warning(f"stopped by signal at epoch {tr.epoch}; resume with --resume")
                    return EXIT_CHECKPOINTED
            checkpoint()
            if lc.final_kl == "ti":            # the final couplings (independent chains): docs/learning.md
                log.info(f"final KL by thermodynamic integration: {2 * cfg.ti.nodes + 2} chains x {cfg.ti.samples} "
                         f"samples")
                ti = tr.model_ti()
                out.write_ti(S.FINAL_TI, ti, cfg.ti.nodes, epoch=tr.epoch)
                log.info(f"final KL(p_S || q_A) = {ti.describe()}")
        except DivergenceError as e:
            out.close(complete=False)
            progress.close()
            where = f"; the last good checkpoint is {last[0]}" if last[0] else "; no checkpoint was written"
            raise DivergenceError(f"{e}{where}") from None
        except UserError:
            out.close(complete=False)
            raise
    progress.close()
    out.close(complete=True)
    if topo.is_root:
        _summary(cfg, tr)
    return 0


def _summary(cfg, tr) -> None:
    """Rank 0, after a complete run: what was written, then one line with the KL estimate (the mean over
    the last learning.estimators.summary_window(epochs) epochs with a binned error and the verdict of the
    per-epoch ESS; the final and the reference KL by thermodynamic integration if they were computed) and
    the couplings."""
    import h5py
    from .io import schema as S
    from .learning.estimators import kl_window, summary_window
    ser = {}
    with h5py.File(cfg.output.path, "r") as f:
        epoch = f[f"{S.LEARNING}/{S.EPOCH}"][:]
        if len(epoch):
            ser = {k: f[f"{S.LEARNING}/{k}"][:] for k in S.learn_series_names()}
        ti = dict(f[S.REFERENCE_TI].attrs) if S.REFERENCE_TI in f else None
        final = dict(f[S.FINAL_TI].attrs) if S.FINAL_TI in f else None
        if cfg.output.plot and len(epoch):
            write_learning_plot(plot_path(cfg), epoch, f)
    print(f"wrote {cfg.output.path}")
    if cfg.output.plot and len(epoch):
        print(f"wrote {plot_path(cfg)}")
    if ser:
        last = {k: v[-1] for k, v in ser.items()}
        means = ", ".join(f"{n} {last[f'mean_{n}']:.6g} ± {last[f'std_{n}']:.2g}" for n in ("w", "a", "b", "r"))
        n_last, n = summary_window(len(epoch)), cfg.learn.n_chains * cfg.learn.samples_per_epoch
        if cfg.learn.mode == "target":
            kl = "KL " + kl_window(ser["kl"], ser["kl_ess"], ser["kl_lsw"], n, n_last).describe()
            if final is not None and int(final["epoch"]) == tr.epoch:
                kl += (f"; final KL {final['value']:.4g} ± {final['stat_err']:.2g} (stat) ± {final['quad_err']:.2g} "
                       f"(quadrature) by thermodynamic integration")
        else:
            kl = f"|grad| {last['grad_norm']:.3g}"
        ref = ""
        if cfg.reference is not None:
            exp = kl_window(ser["kl_ref"], ser["kl_ref_ess"], ser["kl_ref_lsw"], n, n_last).describe(pooled=True)
            if ti is not None:
                ref = (f"; reference KL {ti['value']:.4g} ± {ti['stat_err']:.2g} (stat) ± {ti['quad_err']:.2g} "
                       f"(quadrature) by thermodynamic integration (per-epoch exponential average {exp})")
            else:
                ref = f"; reference KL {exp}"
        print(f"epoch {tr.epoch}: {kl}{ref}; couplings (mean ± std over sites): {means}")
    sys.stdout.flush()
