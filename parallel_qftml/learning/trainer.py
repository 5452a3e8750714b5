"""The learning engine: chains of the MRF on this rank's block, couplings, gradients, updates.

Couplings theta = {w (d, *local), a, b, r (local)} live on the ranks that own their sites; the chains
of this rank's replica group share one padded copy of them. One epoch (docs/learning.md):
* target mode, KL(p||q) (section III A, eq. 12): every chain takes `samples_per_epoch` measurements,
  `sweeps_per_sample` sweeps apart; per sample D = S - A (exact global sums) and the per-site
  O = dS/dtheta (kernels/gradient.py) are accumulated; L = Cov(D, O) over all chains.
* data mode, KL(q||p) (section III B, eq. 25): one update per mini-batch of the data (an epoch is one
  pass, batches drawn by a permutation keyed on (seed, epoch)); L = <O>_batch - <O>_model with the
  model term from the chains after `sweeps_per_sample` sweeps (PCD: persistent chains; CD-k: chain j
  restarts from batch element j).
The chains' sums are combined in chain order (parallel/ensemble.py) and every update is elementwise,
so the couplings are bit-identical on every rank layout with the same total number of chains.
"""
from __future__ import annotations

import math
import time

import numpy as np

from ..errors import UserError
from ..kernels.gradient import accumulate, n_features
from ..models.action import PhiFourAction, TargetAction
from ..parallel.ensemble import chain_range, gather_chain_sums, gather_chain_values, wait_for_groups
from ..parallel.halo import HaloExchange
from ..parallel.reductions import exact_array_sums, first_message, gather_to_root, global_max
from ..rng import COUPLING_INIT, c3_of, fill_normal, key_of
from ..kernels.chain import target_samples
from ..sampler import Sampler, stack_fields
from .estimators import ChainSums, kl_exp_average, pooled_covariance, pooled_mean
from .optimizers import Optimizer, learning_rate
from .thermo import ti_kl, ti_path_kl

PARAM_NAMES = ("w", "a", "b", "r")
ADAPT_CLIP = (0.8, 1.25)      # per-epoch step-size adaptation factor bounds (sampler.tune)


def _kl_row(name: str, est) -> dict:
    """The per-epoch series of one exponential-average KL estimate (docs/schema.md, "Learning file")."""
    return {name: est.value, f"{name}_err": est.err, f"{name}_ess": est.ess, f"{name}_lsw": est.lsw}


class DivergenceError(UserError):
    """Training produced a non-finite action or gradient."""
    exit_code = 4


class Trainer:
    def __init__(self, cfg, topo, data=None):
        """`data` = (blocks (N, *local_shape), min, max) for data mode (io/dataset.py)."""
        self.cfg, self.topo = cfg, topo
        g = self.geom = topo.geometry
        d = g.ndim
        self.K = n_features(d)
        self.V = int(np.prod(g.local_shape))
        self.interior = lambda x: x.reshape(g.padded_shape)[g.interior]
        P = int(np.prod(g.padded_shape))
        self.w, self.a, self.b, self.r = np.zeros((d, P)), np.zeros(P), np.zeros(P), np.zeros(P)
        self.halo = HaloExchange(topo, False)
        self.params = self._initial_couplings()
        self.check_bounded(initial=True)
        for sec, gs in (("target", cfg.target), ("reference", cfg.reference)):   # no KL if e^-A is not normalisable
            if gs and not dict(gs).get("i_phi2", 0.0):
                try:
                    PhiFourAction.from_target(d, dict(gs)).check_bounded(g.shape)
                except UserError as e:
                    raise UserError(f"config error: [{sec}] {e}") from None
        self.learned = cfg.learn.params
        self.push()
        lc, sc = cfg.learn, cfg.chains
        self.data = data
        proposal = (data[1], data[2]) if data is not None and cfg.data.proposal == "uniform" else None
        shell = PhiFourAction.homogeneous(d, 0.0, 0.0, 0.0)
        self.chain_ids = chain_range(topo, lc.n_chains)
        self.chains = [Sampler(topo, shell, sc.seed, sc.delta, sc.n_hits, sc.init, chain=c,
                               couplings=(self.w, self.a, self.b, self.r), proposal=proposal)
                       for c in self.chain_ids]
        self.target = TargetAction(dict(cfg.target)) if cfg.learn.mode == "target" else None
        self.ref_chains = []
        if cfg.reference is not None:
            ref = PhiFourAction.from_target(d, dict(cfg.reference))
            self.ref_chains = [Sampler(topo, ref, sc.seed, sc.delta, sc.n_hits, sc.init, chain=lc.n_chains + c)
                               for c in self.chain_ids]
        self.batched = True                                # False: one Python call per chain and sample (tests)
        self.fields = stack_fields(self.chains)           # the chains' fields as rows of one array
        self.ref_fields = stack_fields(self.ref_chains) if self.ref_chains else None
        oc = cfg.optimizer
        self.opt = Optimizer(oc.kind, {n: self.params[n] for n in self.learned}, oc.momentum, oc.beta1,
                             oc.beta2, oc.eps)
        self.epoch = 0
        self.last_grad = {n: np.zeros_like(p) for n, p in self.params.items()}   # of the last update
        self.row_base = g.rows(0, False)[0]
        self.timers = dict.fromkeys(("sampling", "measuring", "gradient", "wait", "allreduce", "update"), 0.0)

    # -- couplings --------------------------------------------------------------------------------
    def _initial_couplings(self) -> dict:
        """Gaussian couplings keyed on the global site (rng.COUPLING_INIT, draw = coupling index)."""
        g, ic = self.geom, self.cfg.init
        d = g.ndim
        k0, k1 = key_of(self.cfg.chains.seed)
        base, gbase, _ = g.rows(0, False)
        P = int(np.prod(g.padded_shape))
        out = {}
        specs = [("w", mu, ic.w_mean, ic.w_std) for mu in range(d)] + [
            ("a", d, ic.a_mean, ic.a_std), ("b", d + 1, ic.b_mean, ic.b_std), ("r", d + 2, ic.r_mean, ic.r_std)]
        for name, blk, mean, std in specs:
            buf = np.zeros(P)
            fill_normal(buf, base, gbase, g.local_shape[-1], blk, k0, k1, c3_of(COUPLING_INIT, 0), mean, std)
            out.setdefault(name, []).append(self.interior(buf).copy())
        out = {n: (np.stack(v) if n == "w" else v[0]) for n, v in out.items()}
        out["b"] = np.maximum(out["b"], self.cfg.learn.b_min)
        return out

    def check_bounded(self, initial: bool = False) -> None:
        """PhiFourAction.check_bounded of the current couplings, decided identically on every rank: a
        global min of b (one all-reduce); only if it is <= 0 the grid root gathers the global arrays and
        checks them, and its verdict goes to every rank. UserError for the initial couplings (exit 2),
        DivergenceError after an update (exit 4)."""
        if -global_max(-float(self.params["b"].min()), self.topo.world) > 0:
            return
        msg = None
        blocks = gather_to_root((self.geom.global_slices, self.params), self.topo.grid_comm)
        if blocks is not None:
            shape, d = self.geom.shape, self.geom.ndim
            full = {n: np.zeros((d, *shape) if n == "w" else shape) for n in PARAM_NAMES}
            for sl, p in blocks:
                for n in PARAM_NAMES:
                    full[n][(slice(None), *sl) if n == "w" else sl] = p[n]
            msg = PhiFourAction.inhomogeneous(full["w"], full["a"], full["b"], full["r"]).unbounded_reason(shape)
        msg = first_message(msg, self.topo.world)
        if msg and initial:
            raise UserError(f"the initial couplings ([init]) are unbounded below (e^-S is not normalisable): {msg}")
        if msg:
            raise DivergenceError(f"training diverged at epoch {self.epoch}: the update left the bounded region "
                                  f"(e^-S is not normalisable): {msg} (lower optimizer.lr or raise learn.b_min)")

    def push(self) -> None:
        """Copy the couplings into the chains' padded arrays (and the ghosts of w)."""
        for mu in range(self.geom.ndim):
            self.interior(self.w[mu])[...] = self.params["w"][mu]
            self.halo.exchange(self.w[mu])
        for n in ("a", "b", "r"):
            self.interior(getattr(self, n))[...] = self.params[n]

    def _split(self, flat: np.ndarray) -> dict:
        """Feature rows (K, V) -> {name: array shaped like the parameter}."""
        d, ls = self.geom.ndim, self.geom.local_shape
        return {"w": flat[:d].reshape((d, *ls)), "a": flat[d].reshape(ls), "b": flat[d + 1].reshape(ls),
                "r": flat[d + 2].reshape(ls)}

    # -- sampling ---------------------------------------------------------------------------------
    def thermalise(self) -> None:
        """n_therm sweeps of every chain (tuning the step size if sampler.tune)."""
        sc = self.cfg.chains
        for s in self.chains + self.ref_chains:
            while s.sweep_count < sc.n_therm:
                s.thermalise_block(sc.n_therm, sc.target_acceptance, sc.tune)

    def _features(self, phi, c: float, with_c: bool, so, sdo) -> None:
        t0 = time.perf_counter()
        accumulate(phi, self.geom.strides, self.row_base, self.geom.local_shape[-1], c, with_c, so, sdo)
        self.timers["gradient"] += time.perf_counter() - t0

    def _sample_chains(self, chains, fields, n: int, with_features: bool) -> tuple:
        """n measurements of every chain in `chains` (their fields: the rows of `fields`) against the
        target; returns (D values per chain, ChainSums per chain or None). All chains in one kernel call when they can (kernels/chain.py,
        target_samples, bit-identical to _sample_chain: tests/unit/test_learning_batched.py)."""
        sps = self.cfg.learn.sweeps_per_sample
        if not chains:
            return [], []
        s0 = chains[0]
        if not (self.batched and s0.local and not self.target.is_complex and sps <= s0.accepted.shape[0]
                and len({s.sweep_count for s in chains}) == 1 and s0._check_counter(n * sps) == n * sps):
            res = [self._sample_chain(s, self.target.evaluate, n, with_features) for s in chains]
            return [r[0] for r in res], [r[1] for r in res]
        C, t0 = len(chains), time.perf_counter()
        shape = (C, self.K, self.V) if with_features else (C, 1, 1)
        so, sdo = np.zeros(shape), np.zeros(shape)
        ds, stats = np.empty((C, n)), np.empty((C, 3))
        gt = self.target.g
        g = np.array([gt.get(k, 0.0) for k in ("nn", "phi2", "phi4", "nnn", "phi")], dtype=np.float64)
        geo = self.geom
        target_samples(fields, s0.w, s0.a, s0.b, s0.r, s0.action.w_nnn, geo.strides, s0.nnn_off,
                       s0.rows, geo.local_shape[-1], s0.sweep_count, n, sps, s0.k0, s0.k1,
                       np.array([s.c3 for s in chains], dtype=np.uint32), np.array([s.delta for s in chains]),
                       s0.n_hits, *s0.bufs, *s0.slab_ghosts, s0.lo, s0.width, s0.steps, s0.step_ptr, s0.gdst,
                       s0.gsrc, s0.gptr, s0.nnn_fwd, s0.tiles, *s0.mghost, s0.macc, *s0.mbufs, s0.msums, geo.volume,
                       s0.accepted, g, with_features, self.row_base, so, sdo, ds, stats)
        self.timers["sampling"] += time.perf_counter() - t0
        sums = []
        for i, s in enumerate(chains):
            s.sweep_count += n * sps
            s.last_acceptance = float(stats[i, 2])
            self._adapt(s, float(stats[i, 1]) / n)
            sums.append(ChainSums(n, float(ds[i, 0]), float(stats[i, 0]), so[i], sdo[i]) if with_features
                        else None)
        return [ds[i] for i in range(C)], sums

    def _sample_chain(self, s, action_of, n: int, with_features: bool):
        """n measurements of chain s; returns (D values, ChainSums or None)."""
        so = np.zeros((self.K, self.V)) if with_features else None
        sdo = np.zeros((self.K, self.V)) if with_features else None
        ds, c, sd, acc = [], 0.0, 0.0, 0.0
        for k in range(n):
            t0 = time.perf_counter()
            acc += s.sweep(self.cfg.learn.sweeps_per_sample)
            t1 = time.perf_counter()
            m = s.measure()
            D = m["action"] - action_of(m)
            self.timers["sampling"] += t1 - t0
            self.timers["measuring"] += time.perf_counter() - t1
            if k == 0:
                c = D
            sd += D - c
            ds.append(D)
            if with_features:
                self._features(s.phi, D - c, True, so, sdo)
        self._adapt(s, acc / n)
        return ds, (ChainSums(n, c, sd, so, sdo) if with_features else None)

    def _check_finite(self, all_d) -> None:
        """DivergenceError on every rank if any chain's S - A is not finite (all_d is the same on every
        rank: the decision is collective, so no rank is left waiting in a later exchange)."""
        bad = ~np.isfinite(np.asarray(all_d))
        if bad.any():
            raise DivergenceError(f"training diverged at epoch {self.epoch}: the action of {int(bad.sum())} "
                                  f"sample(s) is not finite (lower optimizer.lr, set optimizer.clip_norm, or raise "
                                  f"learn.b_min)")

    def _adapt(self, s, acceptance: float) -> None:
        sc = self.cfg.chains
        if sc.tune and s.width == 0.0:           # the uniform proposal has no step size
            f = (max(acceptance, 1e-3) / sc.target_acceptance) ** 0.5
            s.delta *= min(ADAPT_CLIP[1], max(ADAPT_CLIP[0], f))

    # -- epochs -----------------------------------------------------------------------------------
    def run_epoch(self) -> dict:
        """One epoch; returns its row of statistics (identical on every rank)."""
        lr = learning_rate(self.cfg.optimizer.lr, self.cfg.optimizer.schedule, self.epoch,
                           self.cfg.optimizer.decay, self.cfg.optimizer.decay_every)
        row = self._epoch_target(lr) if self.cfg.learn.mode == "target" else self._epoch_data(lr)
        self.epoch += 1
        row["lr"] = lr
        deltas = gather_chain_values(self.topo, [s.delta for s in self.chains])
        row["delta"] = float(np.mean(deltas))
        return row

    def target_gradient(self) -> tuple:
        """Sample every chain for one epoch and return (L (K, V_local) = Cov(D, O), D values of all chains
        in chain order, per-chain ChainSums of all chains); nothing is updated. L's rows are
        w_0..w_{d-1}, a, b, r (kernels/gradient.py)."""
        lc = self.cfg.learn
        ds, sums = self._sample_chains(self.chains, self.fields, lc.samples_per_epoch, True)
        t0 = time.perf_counter()
        wait_for_groups(self.topo)
        t1 = time.perf_counter()
        self.timers["wait"] += t1 - t0
        t0 = t1
        all_d = np.concatenate(gather_chain_values(self.topo, ds))
        self._check_finite(all_d)
        all_sums = gather_chain_sums(self.topo, sums, (self.K, self.V), True)
        self.timers["allreduce"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        _, cov = pooled_covariance(all_sums)
        self.timers["gradient"] += time.perf_counter() - t0
        return cov, all_d, all_sums

    def _epoch_target(self, lr: float) -> dict:
        lc = self.cfg.learn
        cov, all_d, _ = self.target_gradient()
        row = {"acceptance": float(np.mean(gather_chain_values(self.topo, [s.last_acceptance for s in self.chains])))}
        row.update(_kl_row("kl", kl_exp_average(all_d, lc.n_bins)))
        if self.ref_chains:
            rd = self._sample_chains(self.ref_chains, self.ref_fields, lc.samples_per_epoch, False)[0]
            ref_d = np.concatenate(gather_chain_values(self.topo, rd))
            if not np.all(np.isfinite(ref_d)):      # the reference action is fixed: a bug, not divergence
                raise RuntimeError("the reference chains produced a non-finite action")
            row.update(_kl_row("kl_ref", kl_exp_average(ref_d, lc.n_bins)))
        row.update(self._update(cov, lr))
        return row

    def reference_ti(self):
        """KL(reference || target) by thermodynamic integration (learning/thermo.py) with the [ti] settings
        and the [sampler] seed and step-size settings; every rank calls this; the chains are independent of
        the learning chains (own random streams), so the training is not changed."""
        ti, sc = self.cfg.ti, self.cfg.chains
        return ti_kl(self.topo, dict(self.cfg.reference), dict(self.cfg.target), sc.seed, ti.nodes, ti.samples,
                     ti.sweeps_per_sample, ti.n_therm, self.cfg.learn.n_bins, sc.delta, sc.n_hits, sc.init,
                     sc.target_acceptance, sc.tune)

    def model_ti(self, n_gauss: int | None = None, n_samples: int | None = None, sweeps_per_sample: int | None = None,
                 n_therm: int | None = None):
        """KL(p_S || q_A) of the current couplings S against the target by thermodynamic integration along
        S_t = S + t (A - S) (learning/thermo.py): per link w_t = (1 - t) w + t (-g_nn), per site a_t, b_t, r_t
        likewise, nnn coupling t (-g_nnn); A - S = (A - S_t) / (1 - t) from the measured S_t and the target's
        pieces. Own random streams (the learning chains are not touched); every rank calls this. Settings
        not given come from [ti]."""
        g, sc, geom, ti = self.cfg.target, self.cfg.chains, self.geom, self.cfg.ti
        pick = lambda v, default: default if v is None else v  # noqa: E731
        n_gauss, n_samples = pick(n_gauss, ti.nodes), pick(n_samples, ti.samples)
        sweeps_per_sample, n_therm = pick(sweeps_per_sample, ti.sweeps_per_sample), pick(n_therm, ti.n_therm)
        d, P = geom.ndim, int(np.prod(geom.padded_shape))
        ends = {"w": -g.get("nn", 0.0), "a": g.get("phi2", 0.0), "b": g.get("phi4", 0.0), "r": g.get("phi", 0.0)}

        def sampler(t, chain):
            w, site = np.zeros((d, P)), {n: np.zeros(P) for n in ("a", "b", "r")}
            for mu in range(d):
                self.interior(w[mu])[...] = (1.0 - t) * self.params["w"][mu] + t * ends["w"]
                self.halo.exchange(w[mu])
            for n, arr in site.items():
                self.interior(arr)[...] = (1.0 - t) * self.params[n] + t * ends[n]
            shell = PhiFourAction.homogeneous(d, 0.0, 0.0, 0.0, w_nnn=-t * g.get("nnn", 0.0))
            return Sampler(self.topo, shell, sc.seed, sc.delta, sc.n_hits, sc.init, chain=chain,
                           couplings=(w, site["a"], site["b"], site["r"]))

        return ti_path_kl(self.topo, sampler, lambda m, t: (self.target.evaluate(m) - m["action"]) / (1.0 - t),
                          n_gauss, n_samples, sweeps_per_sample, n_therm, self.cfg.learn.n_bins,
                          sc.target_acceptance, sc.tune)

    def _epoch_data(self, lr: float) -> dict:
        blocks = self.data[0]
        N, B = blocks.shape[0], self.cfg.data.batch_size
        k0, k1 = key_of(self.cfg.chains.seed)
        perm = np.random.default_rng([int(k0), int(k1), self.epoch]).permutation(N)
        buf = np.zeros_like(self.chains[0].phi)
        cd = self.cfg.data.method == "cd"
        row, steps, accs = {}, [], [[] for _ in self.chains]
        for step in range(N // B):
            batch = perm[step * B:(step + 1) * B]
            so_data = np.zeros((self.K, self.V))
            for i in batch:                      # every group computes the whole data term (cheap)
                self.interior(buf)[...] = blocks[i]
                self.halo.exchange(buf)
                self._features(buf, 0.0, False, so_data, so_data)
            sums = []
            for k, (s, c) in enumerate(zip(self.chains, self.chain_ids)):
                if cd:
                    s.interior()[...] = blocks[batch[c]]
                    s.halo.exchange(s.phi)
                t0 = time.perf_counter()
                accs[k].append(s.sweep(self.cfg.learn.sweeps_per_sample))
                self.timers["sampling"] += time.perf_counter() - t0
                if s.pipelined:
                    s.halo.exchange(s.phi)
                so = np.zeros((self.K, self.V))
                self._features(s.phi, 0.0, False, so, so)
                sums.append(ChainSums(1, 0.0, 0.0, so, None))
                self._adapt(s, s.last_acceptance)
            t0 = time.perf_counter()
            wait_for_groups(self.topo)
            t1 = time.perf_counter()
            self.timers["wait"] += t1 - t0
            t0 = t1
            all_sums = gather_chain_sums(self.topo, sums, (self.K, self.V), False)
            self.timers["allreduce"] += time.perf_counter() - t0
            grad = so_data / B - pooled_mean(all_sums)
            steps.append(self._update(grad, lr))
        row.update(steps[-1])                   # couplings at the end of the epoch
        for k in steps[-1]:                     # gradient norms: mean over the epoch's steps
            if k.startswith("grad_norm"):
                row[k] = float(np.mean([st[k] for st in steps]))
        row["acceptance"] = float(np.mean(gather_chain_values(self.topo, [float(np.mean(a)) for a in accs])))
        return row

    def _update(self, grad: np.ndarray, lr: float) -> dict:
        """Clip, check, step the optimiser, project b >= b_min, push; returns gradient statistics."""
        t0 = time.perf_counter()
        oc = self.cfg.optimizer
        g = self._split(grad)
        for n, v in g.items():
            self.last_grad[n][...] = v
        grads = {n: g[n] for n in self.learned}
        if oc.clip_value:
            for v in grads.values():
                np.clip(v, -oc.clip_value, oc.clip_value, out=v)
        with np.errstate(over="ignore", invalid="ignore"):        # non-finite -> DivergenceError below
            sq = exact_array_sums([v * v for v in grads.values()], self.topo.grid_comm, self.geom.ndim)
        norms = dict(zip(grads, (math.sqrt(x) if x >= 0 else float("nan") for x in sq)))
        total = math.sqrt(sum(sq)) if all(math.isfinite(x) for x in sq) else float("nan")
        if not math.isfinite(total):
            raise DivergenceError(f"training diverged at epoch {self.epoch}: the gradient is not finite "
                                  f"(lower optimizer.lr, set optimizer.clip_norm, or raise learn.b_min)")
        if oc.clip_norm and total > oc.clip_norm:
            for v in grads.values():
                v *= oc.clip_norm / total
        self.opt.step(self.params, grads, lr)
        if "b" in grads:
            np.maximum(self.params["b"], self.cfg.learn.b_min, out=self.params["b"])
        self.check_bounded()
        self.push()
        row = {f"grad_norm_{n}": v for n, v in norms.items()}
        row["grad_norm"] = total
        row.update(self.coupling_stats())
        self.timers["update"] += time.perf_counter() - t0
        return row

    def coupling_stats(self) -> dict:
        """Global mean and standard deviation of each kind of coupling (exact sums)."""
        arrays = []
        for n in PARAM_NAMES:
            arrays += [self.params[n], self.params[n] * self.params[n]]
        s = exact_array_sums(arrays, self.topo.grid_comm, self.geom.ndim)
        out = {}
        for i, n in enumerate(PARAM_NAMES):
            cnt = self.geom.volume * (self.geom.ndim if n == "w" else 1)
            mean = s[2 * i] / cnt
            out[f"mean_{n}"] = mean
            out[f"std_{n}"] = math.sqrt(max(s[2 * i + 1] / cnt - mean * mean, 0.0))
        return out
