"""Data-parallel training of the scalar-field RBM (docs/rbm.md; Aarts, Lucini, Park, PRD 109, 034521).

One epoch: the gradient of eqs. 20–22 with C_target from the target's exact correlation matrix or from
a mini-batch of data, and C_model either exact (K⁻¹, `train.gradient = "exact"`) or from the
persistent chains (PCD: every chain takes k Gibbs steps h|φ, φ|h per epoch, kernels/gibbs.py). The chains
are spread over the ranks (parallel/rows.py); chain c's random numbers come from Philox words keyed on
(seed, c, epoch) (docs/rbm.md, "Random numbers of pqml rbm"), so its samples do not depend on which rank
runs it; after one Allgatherv every rank holds all chains in order and computes the same gradient and
update: bit-identical weights on any number of ranks. Optimisers and schedules: learning/optimizers.py (the RBM paper's decay "factor r
every N epochs" is schedule = "step").
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import UserError
from ..kernels.gibbs import ZIG_F, ZIG_K, ZIG_W, gibbs_chains
from ..learning.optimizers import Optimizer, learning_rate
from ..parallel.rows import allgather_rows, row_range
from ..rng import key_of
from . import gaussian as G

PURPOSE_INIT, PURPOSE_CHAIN_INIT, PURPOSE_GIBBS, PURPOSE_BATCH = 1, 2, 3, 4
MAX_BACKTRACK = 20


class NotPositiveDefiniteError(UserError):
    """Training made the model kernel K = mu2 - sigma_h2 W W^T non-positive (exit code 4)."""
    exit_code = 4


def stream(seed: int, purpose: int, a: int = 0, b: int = 0) -> np.random.Generator:
    """A Philox stream keyed on the seed, counter (a, b, purpose, 0): the same on every rank."""
    return np.random.Generator(np.random.Philox(key=int(seed), counter=[int(a), int(b), int(purpose), 0]))


class RBMTrainer:
    def __init__(self, cfg, comm, data_rows: np.ndarray | None = None):
        self.cfg, self.comm = cfg, comm
        rc, tc = cfg.rbm, cfg.target
        self.data = data_rows
        if data_rows is None:
            self.K_target = G.free_field_kernel(tuple(tc.shape), tc.m2)
            self.C_target = np.linalg.inv(self.K_target)
            self._logdet_target = 2.0 * float(np.sum(np.log(np.diag(np.linalg.cholesky(self.K_target)))))
            n_v = self.K_target.shape[0]
        else:
            self.K_target, self.C_target = None, None
            n_v = data_rows.shape[1]
        n_h = rc.n_hidden
        if rc.init == "random":
            W = rc.init_std * stream(cfg.seed, PURPOSE_INIT).standard_normal((n_v, n_h))
        else:
            if n_h != n_v:
                raise UserError(f"rbm.init = {rc.init!r} needs n_hidden = n_visible = {n_v}")
            solve = G.exact_cholesky if rc.init == "cholesky" else G.exact_symmetric
            try:
                W = solve(self.K_target, rc.mu2, rc.sigma_h2)
            except ValueError as e:
                raise UserError(f"rbm.init = {rc.init!r}: {e}") from None
        self.model = G.GaussianRBM(n_v, n_h, np.ascontiguousarray(W, dtype=np.float64), float(rc.mu2),
                                   float(rc.sigma_h2), np.zeros(n_h))
        self.n_chains = cfg.train.n_chains
        self.rows = row_range(comm, self.n_chains)
        self._key = key_of(cfg.seed)
        self.chains = np.concatenate([stream(cfg.seed, PURPOSE_CHAIN_INIT, c).standard_normal((1, n_v))
                                      for c in range(self.n_chains)]) / math.sqrt(rc.mu2)
        self.mu2 = np.array([float(rc.mu2)])
        self.params = {"W": self.model.W}
        if rc.learn_mu2:
            self.params["mu2"] = self.mu2
        oc = cfg.optimizer
        self.opt = Optimizer(oc.kind, self.params, oc.momentum, oc.beta1, oc.beta2, oc.eps)
        self.epoch = 0
        self.pending_backtracks = 0

    def _sync_model(self) -> None:
        self.model.W = self.params["W"]
        self.model.mu2 = float(self.mu2[0])

    def gibbs(self) -> None:
        """k Gibbs steps of every chain of this rank (one numba kernel, kernels/gibbs.py), then the
        Allgatherv of all chains."""
        m = self.model
        local = np.array(self.chains[self.rows.start:self.rows.stop], dtype=np.float64, order="C")
        gibbs_chains(local, self.rows.start, m.W, np.ascontiguousarray(m.W.T),
                     np.ascontiguousarray(m.eta, dtype=np.float64), float(m.mu2), float(m.sigma_h2),
                     int(self.cfg.train.k), int(self.epoch), *self._key, np.uint32(PURPOSE_GIBBS), ZIG_K, ZIG_W, ZIG_F)
        self.chains = allgather_rows(self.comm, local, self.n_chains)

    def target_correlation(self) -> np.ndarray:
        if self.data is None:
            return self.C_target
        n, B = self.data.shape[0], self.cfg.data.batch_size
        idx = stream(self.cfg.seed, PURPOSE_BATCH, self.epoch).choice(n, size=min(B, n), replace=False)
        x = self.data[np.sort(idx)]
        return x.T @ x / x.shape[0]

    def run_epoch(self, record: bool = True) -> tuple:
        """One epoch; returns (row, eigenvalues, singular values) of the updated model. The KL is computed
        only if `record` (a row of the output, docs/rbm.md); row["backtracks"] counts the halvings of the
        epochs since the previous recorded one (self.pending_backtracks, kept in the checkpoint)."""
        oc = self.cfg.optimizer
        lr = learning_rate(oc.lr, oc.schedule, self.epoch, oc.decay, oc.decay_every)
        C_t = self.target_correlation()
        try:
            if self.cfg.train.gradient == "exact":
                g = self.model.gradient_exact(C_t)
            else:
                self.gibbs()
                g = self.model.gradient_from_samples(C_t, self.chains)
        except G.NotPositiveDefinite as e:
            raise NotPositiveDefiniteError(f"epoch {self.epoch}: {e}") from None
        grads = {"W": np.ascontiguousarray(g["W"])}
        if "mu2" in self.params:
            grads["mu2"] = np.array([float(g["mu2"])])
        norm = math.sqrt(sum(float(np.sum(v * v)) for v in grads.values()))
        if not math.isfinite(norm):
            raise NotPositiveDefiniteError(f"epoch {self.epoch}: the gradient is not finite (lower optimizer.lr)")
        if oc.clip_norm and norm > oc.clip_norm:
            for v in grads.values():
                v *= oc.clip_norm / norm
        # A step that makes K lose positive definiteness is an error, or (train.on_nonpd = "backtrack") is
        # undone and retried with half the learning rate, at most MAX_BACKTRACK times (deterministic, so
        # still the same on every layout); row["backtracks"] counts the halvings.
        backtrack = self.cfg.train.on_nonpd == "backtrack"
        saved = ({k: v.copy() for k, v in self.params.items()}, {k: v.copy() for k, v in self.opt.slots.items()},
                 self.opt.t) if backtrack else None
        step_lr, backtracks = lr, 0
        while True:
            self.opt.step(self.params, grads, step_lr)
            self._sync_model()
            sv = self.model.singular_values()           # one SVD per epoch: spectrum, PD check and KL
            eig = self.model.eigenvalues(sv)
            if eig[0] > 0 or not backtrack or backtracks == MAX_BACKTRACK:
                break
            for k, v in saved[0].items():
                self.params[k][...] = v
            for k, v in saved[1].items():
                self.opt.slots[k][...] = v
            self.opt.t = saved[2]
            step_lr, backtracks = step_lr / 2, backtracks + 1
        self.epoch += 1
        if not eig[0] > 0:           # also NaN (a non-finite W)
            raise NotPositiveDefiniteError(
                f"epoch {self.epoch}: the model kernel lost positive definiteness (lowest eigenvalue {eig[0]:.4g}: "
                f"mu2 = {self.model.mu2:.6g} <= sigma_h2 xi_1^2"
                + (f", after {backtracks} halvings of the step" if backtracks else "")
                + "); lower optimizer.lr, raise rbm.mu2 or set train.on_nonpd = \"backtrack\"")
        self.pending_backtracks += backtracks
        row = {"lr": lr, "mu2": self.model.mu2, "grad_norm": norm, "backtracks": self.pending_backtracks}
        if not record:
            return row, eig, sv
        self.pending_backtracks = 0
        if self.K_target is not None:           # = model.kl_to(K_target), the target's pieces computed once
            row["kl"] = float(self.model._kl(self.C_target, self._logdet_target, None, sv))
        return row, eig, sv


class Phi4NNTrainer:
    """Data-parallel CD-k / PCD training of a φ⁴ neural network (rbm/phi4nn.py; paper appendix A.2) from
    data: one update per mini-batch (drawn by a permutation keyed on (seed, epoch)). The persistent
    chains (PCD) or the batch rows (CD-k) are spread over the ranks; row c's uniforms come from a Philox
    stream keyed on (seed, c, step), so the sampled rows do not depend on the layout; after one
    Allgatherv every rank evaluates the (Rao-Blackwellised) statistics of the full batch and all chains
    in the same order, so the weights are bit-identical on any number of ranks."""

    def __init__(self, cfg, comm, data_rows: np.ndarray):
        from .phi4nn import Phi4NN
        self.cfg, self.comm, self.data = cfg, comm, data_rows
        n_v = data_rows.shape[1]
        self.model = Phi4NN.preset(cfg.rbm.model, n_v, cfg.rbm.n_hidden, stream(cfg.seed, PURPOSE_INIT),
                                   weight_scale=cfg.rbm.init_std)
        self.params = self.model.learnable_params()
        oc = cfg.optimizer
        self.opt = Optimizer(oc.kind, self.params, oc.momentum, oc.beta1, oc.beta2, oc.eps)
        self.pcd = cfg.train.method == "pcd"
        self.n_chains = cfg.train.n_chains if self.pcd else cfg.data.batch_size
        idx = stream(cfg.seed, PURPOSE_CHAIN_INIT).choice(data_rows.shape[0], self.n_chains)
        self.chains = data_rows[idx].copy()               # PCD chains start at data rows
        self.epoch, self.step = 0, 0

    def _sample_rows(self, start: np.ndarray) -> np.ndarray:
        """k Gibbs steps of this rank's rows of `start` (all rows given), then all rows on every rank."""
        n = start.shape[0]
        rows = row_range(self.comm, n)
        local = np.empty((len(rows), start.shape[1]))
        for j, c in enumerate(rows):
            rng = stream(self.cfg.seed, PURPOSE_GIBBS, c, self.step)
            fn = lambda shape, layer, t, rng=rng: rng.random(shape)  # noqa: E731  (drawn in call order)
            local[j] = self.model.gibbs(start[c:c + 1], self.cfg.train.k, fn)[0][0]
        return allgather_rows(self.comm, local, n)

    def run_epoch(self, record: bool = True):
        """One epoch (N // batch_size updates); the free energy of the row only if `record`."""
        oc = self.cfg.optimizer
        lr = learning_rate(oc.lr, oc.schedule, self.epoch, oc.decay, oc.decay_every)
        N, B = self.data.shape[0], self.cfg.data.batch_size
        perm = stream(self.cfg.seed, PURPOSE_BATCH, self.epoch).permutation(N)
        norms = []
        for b in range(N // B):
            batch = self.data[perm[b * B:(b + 1) * B]]
            vk = self._sample_rows(self.chains if self.pcd else batch)
            if self.pcd:
                self.chains = vk
            sd, sm = self.model.expected_stats(batch), self.model.expected_stats(vk)
            grads = {k: np.ascontiguousarray(sm[k] / vk.shape[0] - sd[k] / B) for k in self.params}
            norm = math.sqrt(sum(float(np.sum(v * v)) for v in grads.values()))
            if not math.isfinite(norm):
                raise NotPositiveDefiniteError(f"epoch {self.epoch}: the gradient is not finite (lower optimizer.lr)")
            if oc.clip_norm and norm > oc.clip_norm:
                for v in grads.values():
                    v *= oc.clip_norm / norm
            self.opt.step(self.params, grads, lr)
            self._project()
            norms.append(norm)
            self.step += 1
        self.epoch += 1
        fe = float(np.mean(self.model.free_energy(self.data[perm[:min(N, 256)]]))) if record else np.nan
        return {"lr": lr, "grad_norm": float(np.mean(norms)), "free_energy": fe}, None, None

    def _project(self) -> None:
        """Keep the unit densities normalisable: quartic coefficients >= 0, Gaussian quadratic > 0."""
        m = self.model
        for layer, (lin, quad, quart) in (("visible", ("r", "a", "b")), ("hidden", ("s", "m", "n"))):
            kind = m.visible if layer == "visible" else m.hidden
            if kind == "phi4" and quart in self.params:
                np.maximum(self.params[quart], 0.0, out=self.params[quart])
            if kind == "gaussian" and quad in self.params:
                np.maximum(self.params[quad], 1e-3, out=self.params[quad])
