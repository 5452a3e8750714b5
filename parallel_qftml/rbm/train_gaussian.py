"""Serial training of the scalar-field RBM (Aarts, Lucini, Park, PRD 109, 034521; Sec. III, appendix A).

One epoch n (0-based):
  1. C_target: the given target correlation matrix <phi phi^T> (eq. 21), the correlation of all data,
     or of a mini-batch of data drawn for this epoch;
  2. C_model: exact (K^-1, `gradient="exact"`) or from the persistent chains after k more block-Gibbs
     steps phi -> h -> phi each (`gradient="pcd"`, appendix A; the chains are never reset);
  3. the descent gradient {"W": -dL/dW, "mu2": -dL/dmu2} of eqs. 20-22 (mu2 only if learn_mu2);
  4. one Optimizer step (learning/optimizers.py) with lr = learning_rate(lr0, schedule, n, decay,
     decay_every); the paper's "multiply by r every N epochs" (eq. A2) is schedule="step", decay=r,
     decay_every=N;
  5. the positive-definiteness check of K (eq. 33) and the record of lambda_alpha, xi_alpha, mu2 and the
     closed-form KL (appendix B) of the updated model.

A non-positive-definite model after an update is never passed on: with on_nonpd="raise" (default)
NotPositiveDefinite is raised naming the epoch and the learning rate; with on_nonpd="backtrack" the update
is undone (parameters and optimiser state restored), the learning rate is halved for the rest of the run,
and the epoch is repeated (at most max_backtracks times in a run, then NotPositiveDefinite). The PCD chains
are advanced only with positive-definite models, so they never diverge.

All functions are pure apart from the documented in-place update of the model and the chains; random
numbers come from numpy Generators made from an integer seed (`np.random.default_rng(seed)`), so a run is
reproducible. No files, no MPI: a distributed driver can reuse `init_chains`, `gibbs_chains`,
`compute_gradient` and `observe`.
"""
from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ..learning.optimizers import Optimizer, learning_rate
from .gaussian import GaussianRBM, NotPositiveDefinite, correlation_from_data

GRADIENTS = ("pcd", "exact")


# ============================================================================================ pieces
def init_chains(rbm: GaussianRBM, n_chains: int, rng: np.random.Generator) -> np.ndarray:
    """n_chains exact draws of the (positive-definite) model p(phi): thermalised PCD chains (n_chains, N_v)."""
    return rbm.sample(n_chains, rng)


def gibbs_chains(rbm: GaussianRBM, chains: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k block-Gibbs steps phi -> h -> phi of every chain (rows); returns the new chains."""
    return rbm.gibbs(chains, k, rng)


def compute_gradient(rbm: GaussianRBM, C_target: np.ndarray, chains: np.ndarray | None = None) -> dict:
    """{"W": -dL/dW, "mu2": -dL/dmu2} (eqs. 20-22): exact C_model if chains is None, else from the chains."""
    if chains is None:
        return rbm.gradient_exact(C_target)
    return rbm.gradient_from_samples(C_target, chains)


def observe(rbm: GaussianRBM, K_target: np.ndarray | None = None, C_target: np.ndarray | None = None) -> dict:
    """lambda_alpha (ascending), xi_alpha (descending), mu2 and KL(p_target || p_model) (appendix B; NaN if
    there is no positive-definite target or the model is not positive definite)."""
    out = {"lambda": rbm.eigenvalues(), "xi": rbm.singular_values(), "mu2": rbm.mu2, "kl": np.nan}
    try:
        if K_target is not None:
            out["kl"] = rbm.kl_to(K_target)
        elif C_target is not None:
            out["kl"] = rbm.kl_from_covariance(C_target)
    except ValueError:          # NotPositiveDefinite, or a singular target correlation matrix
        pass
    return out


# ========================================================================================= the loop
def train(rbm: GaussianRBM, C_target: np.ndarray | None = None, *, data: np.ndarray | None = None,
          K_target: np.ndarray | None = None, epochs: int, lr: float, gradient: str = "pcd",
          n_chains: int = 128, k: int = 10, learn_mu2: bool = False, optimizer: str = "sgd",
          schedule: str = "constant", decay: float = 1.0, decay_every: int = 1, batch_size: int | None = None,
          seed: int = 0, record_every: int = 1, on_nonpd: str = "raise", max_backtracks: int = 20,
          observers: Mapping[str, Callable[[GaussianRBM], object]] | None = None,
          optimizer_options: Mapping | None = None) -> dict:
    """Train `rbm` in place and return the history.

    Target: exactly one of C_target (<phi phi^T>_target, e.g. inv(K_target)), data (N_conf, N_v) or K_target
    alone (then C_target = K_target^-1). With data, batch_size=None uses the correlation of all data
    (eq. 21), an integer draws a mini-batch (without replacement) every epoch. The KL is measured against
    K_target if given, else against N(0, C_target) when C_target is fixed and positive definite (NaN for
    mini-batches).

    gradient: "exact" (C_model = K^-1) or "pcd" (n_chains persistent chains, k Gibbs steps per epoch,
    started from exact draws of the initial model). learn_mu2: also train mu2 (eq. 22).
    optimizer/schedule/decay/decay_every/lr: learning/optimizers.py (the paper: plain SGD, eq. 25).

    History (records after epochs 0 (initial model), record_every, 2 record_every, ..., and the last):
      epoch (n_rec,), lambda (n_rec, N_v) ascending, xi (n_rec, min(N_v, N_h)) descending, mu2 (n_rec,),
      kl (n_rec,), one array per observer (n_rec, ...); per epoch: lr (epochs,); scalars: n_backtracks,
      seconds.
    """
    import time

    t0 = time.perf_counter()
    if gradient not in GRADIENTS:
        raise ValueError(f"gradient must be one of {GRADIENTS}, got {gradient!r}")
    if on_nonpd not in ("raise", "backtrack"):
        raise ValueError(f"on_nonpd must be 'raise' or 'backtrack', got {on_nonpd!r}")
    if sum(x is not None for x in (C_target, data)) > 1:
        raise ValueError("give at most one of C_target and data")
    epochs, record_every = int(epochs), max(1, int(record_every))
    rng = np.random.default_rng(seed)
    N_v = rbm.n_visible

    # ---- the target
    C_fixed = None
    if data is not None:
        data = np.atleast_2d(np.asarray(data, dtype=np.float64))
        if data.shape[1] != N_v:
            raise ValueError(f"data of shape {data.shape}, expected (N_conf, {N_v})")
        if batch_size is None:
            C_fixed = correlation_from_data(data)
    elif C_target is not None:
        C_fixed = np.asarray(C_target, dtype=np.float64)
    elif K_target is not None:
        C_fixed = np.linalg.inv(np.asarray(K_target, dtype=np.float64))
    else:
        raise ValueError("give C_target, data or K_target")
    if C_fixed is not None and C_fixed.shape != (N_v, N_v):
        raise ValueError(f"C_target of shape {C_fixed.shape}, expected {(N_v, N_v)}")
    kl_C = C_fixed if K_target is None else None

    def target_correlation() -> np.ndarray:
        if C_fixed is not None:
            return C_fixed
        idx = rng.choice(data.shape[0], size=min(int(batch_size), data.shape[0]), replace=False)
        return correlation_from_data(data[np.sort(idx)])

    # ---- model, optimiser, chains
    rbm.check_positive_definite()
    mu2_arr = np.array([rbm.mu2])
    params = {"W": rbm.W, "mu2": mu2_arr}
    opt = Optimizer(optimizer, params, **dict(optimizer_options or {}))
    chains = init_chains(rbm, n_chains, rng) if gradient == "pcd" else None

    # ---- history
    rec_epochs = sorted(set(range(0, epochs + 1, record_every)) | {epochs})
    n_rec = len(rec_epochs)
    n_sv = min(N_v, rbm.n_hidden)
    hist = {"epoch": np.array(rec_epochs), "lambda": np.empty((n_rec, N_v)), "xi": np.empty((n_rec, n_sv)),
            "mu2": np.empty(n_rec), "kl": np.empty(n_rec), "lr": np.empty(epochs)}
    obs_rows = {name: [] for name in (observers or {})}
    row = 0

    def record() -> None:
        nonlocal row
        o = observe(rbm, K_target, kl_C)
        for key in ("lambda", "xi", "mu2", "kl"):
            hist[key][row] = o[key]
        for name, f in (observers or {}).items():
            obs_rows[name].append(np.asarray(f(rbm)))
        row += 1

    record()
    lr_factor, n_back, epoch = 1.0, 0, 0
    while epoch < epochs:
        eta = lr_factor * learning_rate(lr, schedule, epoch, decay, decay_every)
        saved = (rbm.W.copy(), mu2_arr.copy(), {k_: v.copy() for k_, v in opt.slots.items()}, opt.t)
        C_t = target_correlation()
        if chains is not None:
            new_chains = gibbs_chains(rbm, chains, k, rng)
            g = compute_gradient(rbm, C_t, new_chains)
        else:
            g = compute_gradient(rbm, C_t)
        grads = {"W": np.ascontiguousarray(g["W"])}
        if learn_mu2:
            grads["mu2"] = np.array([g["mu2"]])
        opt.step(params, grads, eta)
        rbm.mu2 = float(mu2_arr[0])
        try:
            rbm.check_positive_definite()
        except NotPositiveDefinite as e:
            if on_nonpd == "raise" or n_back >= max_backtracks:
                raise NotPositiveDefinite(f"epoch {epoch} (learning rate {eta:.4g}): {e}") from None
            rbm.W[...] = saved[0]                       # undo the update, halve the learning rate, repeat
            mu2_arr[...] = saved[1]
            rbm.mu2 = float(mu2_arr[0])
            for k_, v in saved[2].items():
                opt.slots[k_][...] = v
            opt.t = saved[3]
            lr_factor *= 0.5
            n_back += 1
            continue
        if chains is not None:
            chains = new_chains
        hist["lr"][epoch] = eta
        epoch += 1
        if epoch in rec_epochs[row:row + 1]:
            record()
    for name, rows in obs_rows.items():
        hist[name] = np.array(rows)
    hist["n_backtracks"] = n_back
    hist["seconds"] = time.perf_counter() - t0
    return hist
