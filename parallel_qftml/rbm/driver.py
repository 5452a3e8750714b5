"""`pqml rbm CONFIG`: train a scalar-field RBM (rbm/trainer.py) with checkpoints, stop signals and HDF5
output (io/rbm_output.py), like `pqml learn`."""
from __future__ import annotations

import time

import numpy as np

from ..errors import EXIT_CHECKPOINTED, UserError
from ..log import Progress, get_logger
from ..memory import check_memory, rbm_memory
from ..parallel.reductions import bcast
from ..signals import StopRequest

STOP_EVERY = 10      # epochs between the (collective) checks for a stop signal


def run_rbm(cfg, comm, resume: bool = False, force: bool = False) -> int:
    """Run ``pqml rbm`` on every rank of ``comm``, holding the locks of its output and checkpoint
    directory (lifecycle.owned_paths); returns the exit code."""
    from ..lifecycle import owned_paths
    with owned_paths(cfg, comm):
        return _run_rbm(cfg, comm, resume, force)


def _run_rbm(cfg, comm, resume: bool, force: bool) -> int:
    from ..io.dataset import load_rows
    from ..io.rbm_output import RBMFile, load_rbm_checkpoint, write_rbm_checkpoint
    from ..io.checkpoint import pending_checkpoint
    from ..lifecycle import check_outputs, check_resume, clear_checkpoints, output_run_id, restart_check
    from ..run import run_metadata
    from .trainer import Phi4NNTrainer, RBMTrainer

    log = get_logger(comm)
    if not resume:
        check_outputs(cfg, comm)
    check_memory(rbm_memory(cfg, comm.Get_size(), comm.Get_rank()), comm, "this RBM run")
    data = load_rows(cfg.data.path, cfg.data.dataset, comm) if cfg.data.path else None
    scalar = cfg.rbm.model == "scalar"
    tr = RBMTrainer(cfg, comm, data) if scalar else Phi4NNTrainer(cfg, comm, data)

    def params_and_attrs():
        if scalar:
            return ({"W": tr.model.W, "eta": tr.model.eta, "mu2": np.array(tr.model.mu2)},
                    {"model": "scalar", "mu2": tr.model.mu2, "sigma_h2": tr.model.sigma_h2})
        return dict(tr.model.params), {"model": cfg.rbm.model, "visible": tr.model.visible,
                                       "hidden": tr.model.hidden}

    def state_arrays():
        base = {"W": tr.params["W"], "mu2": tr.mu2} if scalar else dict(tr.params)
        return {**base, "chains": tr.chains, **{f"opt_{k}": v for k, v in tr.opt.slots.items()}}
    state = load_rbm_checkpoint(cfg.checkpoint_dir, comm, log.warning, output_run_id(cfg, comm)) if resume else None
    if resume and state is None:
        restart_check(cfg, comm, log)
    n_v, n_h = tr.model.n_visible, tr.model.n_hidden
    if state is not None:
        arrays, attrs, path = state
        check_resume(cfg, comm, path, str(attrs["physics_sha256"]), force, f"epoch {int(attrs['epoch'])}",
                     "model, target, data, training or optimizer settings", log=log)   # --force: applied, recorded
        for k, v in state_arrays().items():
            if k == "chains":
                tr.chains = arrays["chains"]
            else:
                v[...] = arrays[k]
        tr.opt.t, tr.epoch = int(attrs["optimizer_t"]), int(attrs["epoch"])
        if scalar:
            tr._sync_model()
        else:
            tr.step = int(attrs["step"])
        tr.pending_backtracks = int(attrs.get("pending_backtracks", 0))
        run_id = str(attrs.get("run_id", ""))
        out = RBMFile(cfg.output.path, comm, n_v, n_h, reopen_rows=int(attrs["n_rows"]), spectra=scalar)
        log.info(f"resuming from {path} at epoch {tr.epoch}")
    else:
        clear_checkpoints(cfg, comm, allowed=cfg.output.overwrite or resume)
        meta = bcast(run_metadata(cfg, _Topo(comm), cfg.seed) if comm.Get_rank() == 0 else None, comm)
        meta["physics_sha256"] = cfg.physics_sha256
        run_id = meta["run_id"]
        out = RBMFile(cfg.output.path, comm, n_v, n_h, metadata=meta, spectra=scalar)
    what = (f"scalar-field RBM, mu2 = {tr.model.mu2}{' (learned)' if cfg.rbm.learn_mu2 else ''}, "
            f"{cfg.train.gradient} gradient" if scalar else f"phi^4 network {cfg.rbm.model}, {cfg.train.method}")
    log.info(f"{comm.Get_size()} rank(s); {what}; N_v = {n_v}, N_h = {n_h}, {tr.n_chains} chains")
    last = [state[1]["epoch"] if state else -1]

    def checkpoint():
        if last[0] == tr.epoch:
            return
        with pending_checkpoint(cfg.checkpoint_dir, tr.epoch, run_id, comm):
            n_rows = out.flush(*params_and_attrs())
            p = write_rbm_checkpoint(cfg.checkpoint_dir, comm, tr.epoch, state_arrays(),
                                     {"optimizer_t": tr.opt.t, "n_rows": bcast(n_rows, comm),
                                      "step": getattr(tr, "step", 0),
                                      "pending_backtracks": getattr(tr, "pending_backtracks", 0),
                                      "physics_sha256": cfg.physics_sha256, "run_id": run_id}, cfg.checkpoint.keep)
        last[0] = tr.epoch
        log.info(f"checkpoint {p} (epoch {tr.epoch})")

    progress = Progress(cfg.train.epochs, label="rbm", enabled=comm.Get_rank() == 0 and cfg.output.progress,
                        start=tr.epoch)
    every = cfg.checkpoint.every
    t_loop, epoch0, save = time.perf_counter(), tr.epoch, max(1, cfg.output.save_every)
    with StopRequest() as stop:
        try:
            while tr.epoch < cfg.train.epochs:
                record = (tr.epoch + 1) % save == 0          # a row every output.save_every epochs
                row, eig, sv = tr.run_epoch(record)
                if record:
                    out.append(tr.epoch, row, eig, sv)
                if progress.enabled:
                    progress.update(1, (f"lambda_min {eig[0]:.4g} mu2 {row['mu2']:.4g}" if scalar else
                                        f"|grad| {row['grad_norm']:.3g}"
                                        + (f" F {row['free_energy']:.4g}" if record else ""))
                                    + (f" KL {row['kl']:.3g}" if "kl" in row else ""))
                if every and tr.epoch % every == 0:
                    checkpoint()
                if tr.epoch % STOP_EVERY == 0 and stop.requested(comm):   # one collective per STOP_EVERY epochs
                    checkpoint()
                    out.flush(*params_and_attrs(), complete=False)
                    progress.close()
                    log.warning(f"stopped by signal at epoch {tr.epoch}; resume with --resume")
                    return EXIT_CHECKPOINTED
            checkpoint()
        except UserError:
            out.flush(*params_and_attrs(), complete=False)
            progress.close()
            raise
    progress.close()
    out.flush(*params_and_attrs(), complete=True)
    log.info(f"trained {tr.epoch - epoch0} epochs in {time.perf_counter() - t_loop:.2f} s")
    if comm.Get_rank() == 0:
        print(f"wrote {cfg.output.path}")
        if scalar:
            eig = tr.model.eigenvalues()
            print(f"epoch {tr.epoch}: mu2 {tr.model.mu2:.6g}, RBM eigenvalues {np.array2string(eig, precision=4)}"
                  + (f", KL {tr.model.kl_to(tr.K_target):.4g}" if tr.K_target is not None else ""))
        else:
            print(f"epoch {tr.epoch}: mean free energy of the data {float(np.mean(tr.model.free_energy(tr.data))):.6g}")
    return 0


class _Topo:
    """What run_metadata needs of a topology, for the data-parallel RBM (no lattice grid)."""

    def __init__(self, comm):
        self.world, self.proc_grid, self.n_replicas, self.shape = comm, (comm.Get_size(),), 1, ()

    @property
    def is_root(self):
        return self.world.Get_rank() == 0
