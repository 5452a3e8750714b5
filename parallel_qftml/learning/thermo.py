"""KL(p_S || q_A) by thermodynamic integration: holds where the exponential average fails (large KL).

With S_t = S + t (A - S), t in [0, 1] (a phi^4 MRF again: the couplings g_t = (1 - t) g_S + t g_A of
eq. 14 interpolate linearly), d ln Z_t / dt = -<A - S>_t, so

    KL(p_S || q_A) = <A - S>_S + ln Z_A - ln Z_S = <A - S>_0 - int_0^1 <A - S>_t dt     (= F + ln Z_A, eq. 11)

(>= 0: <A - S>_t decreases in t, its derivative is -Var_t(A - S)). Quadrature: the (2n + 1)-point
Gauss-Kronrod rule, whose nodes contain those of the n-point Gauss-Legendre rule; the value is the
Kronrod sum, the quadrature error is |Kronrod - Gauss| (the error estimate of the Gauss rule, so
conservative for the Kronrod value: QUADPACK's), and the statistical error comes from the per-node
errors (binning, estimators.binned_mean), independent chains per node plus one at t = 0. The estimate
states both; `err` = their quadrature sum. ti_kl: two actions given by couplings g (eq. 14);
ti_path_kl: any path (learning/trainer.Trainer.model_ti: a learned inhomogeneous S to the target).

Every node's chain has its own random stream (chain TI_CHAIN0 + j) and is run by replica group
j mod n_replicas; the per-node results are gathered in node order (parallel/ensemble.py), so the
estimate is bit-identical on every rank layout.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .estimators import binned_mean

TI_CHAIN0 = 1 << 28       # random streams of the TI chains: chains TI_CHAIN0 + j (learning chains are far below)


def gauss_kronrod(n: int):
    """(x, w_kronrod, w_gauss) of the (2n + 1)-point Gauss-Kronrod rule on [-1, 1] (x ascending; w_gauss
    is 0 at the n + 1 Kronrod-only nodes). The Kronrod nodes are the zeros of the Stieltjes polynomial
    E_{n+1} (orthogonal to all polynomials of degree <= n with the weight P_n), the weights make the rule
    exact to degree 3n + 1 (Gauss: 2n - 1). Computed in the Legendre basis; accurate for n <= ~15."""
    from numpy.polynomial import legendre as leg
    if not 1 <= n <= 15:
        raise ValueError(f"Gauss-Kronrod rule needs 1 <= n <= 15, got {n}")
    xg, wg = leg.leggauss(n)
    xq, wq = leg.leggauss(3 * n + 3)                 # exact for the products below (degree <= 3n + 1)
    P = np.array([leg.legval(xq, np.eye(n + 2)[k]) for k in range(n + 2)])      # P_k at xq
    ks = [k for k in range(n + 1) if (k - (n + 1)) % 2 == 0]                   # parity of E_{n+1}
    js = [j for j in range(n + 1) if (j + n + 1 + n) % 2 == 0]
    M = np.array([[np.sum(wq * P[k] * P[n] * P[j]) for k in ks] for j in js])
    rhs = -np.array([np.sum(wq * P[n + 1] * P[n] * P[j]) for j in js])
    c = np.zeros(n + 2)
    c[n + 1] = 1.0
    if ks:
        c[ks] = np.linalg.solve(M, rhs)
    xk = np.sort(leg.legroots(c).real)
    x = np.sort(np.concatenate([xg, xk]))
    V = np.array([leg.legval(x, np.eye(2 * n + 1)[m]) for m in range(2 * n + 1)])
    mom = np.zeros(2 * n + 1)
    mom[0] = 2.0
    wk = np.linalg.solve(V, mom)
    w_g = np.zeros_like(x)
    for xi, wi in zip(xg, wg):
        w_g[np.argmin(np.abs(x - xi))] = wi
    return x, wk, w_g


def ti_rule(n: int):
    """(t, w_kronrod, w_gauss) on [0, 1]."""
    x, wk, wg = gauss_kronrod(n)
    return 0.5 * (x + 1.0), 0.5 * wk, 0.5 * wg


@dataclass(frozen=True)
class TIEstimate:
    value: float              # Kronrod value of <A - S>_0 - int_0^1 <A - S>_t dt
    stat_err: float           # from the per-node binning errors
    quad_err: float           # |Kronrod - Gauss|
    gauss_value: float        # the n-point Gauss-Legendre value (same chains)
    t: np.ndarray             # nodes (t = 0 first, then the 2n + 1 Kronrod nodes)
    mean: np.ndarray          # <A - S>_t per node
    mean_err: np.ndarray      # its binning error
    tau: np.ndarray           # tau_int of A - S per node (in samples)
    acceptance: np.ndarray    # Metropolis acceptance per node (after thermalisation)
    n_samples: int            # per node

    @property
    def err(self) -> float:
        return math.hypot(self.stat_err, self.quad_err)

    def describe(self) -> str:
        return (f"{self.value:.4g} ± {self.stat_err:.2g} (stat) ± {self.quad_err:.2g} (quadrature) by thermodynamic "
                f"integration, {self.t.size - 1} nodes x {self.n_samples} samples")


def ti_combine(mean, err, n_gauss: int):
    """(value, stat_err, gauss_value, quad_err) from <A - S> and its error at t = 0 (index 0) and at the
    2 n_gauss + 1 Kronrod nodes of ti_rule (indices 1...)."""
    _, wk, wg = ti_rule(n_gauss)
    mean, err = np.asarray(mean, dtype=np.float64), np.asarray(err, dtype=np.float64)
    value = float(mean[0] - np.dot(wk, mean[1:]))
    gauss = float(mean[0] - np.dot(wg, mean[1:]))
    stat = float(math.sqrt(err[0] ** 2 + np.sum((wk * err[1:]) ** 2)))
    return value, stat, gauss, abs(value - gauss)


def g_along(g_from: dict, g_to: dict, t: float) -> dict:
    """Couplings of S_t = S + t (A - S): (1 - t) g_from + t g_to per term (eq. 14)."""
    keys = sorted(set(g_from) | set(g_to))
    return {k: (1.0 - t) * g_from.get(k, 0.0) + t * g_to.get(k, 0.0) for k in keys}


def ti_kl(topo, g_from: dict, g_to: dict, seed: int, n_gauss: int = 7, n_samples: int = 5000,
          sweeps_per_sample: int = 1, n_therm: int = 500, n_bins: int = 20, delta: float = 1.0, n_hits: int = 1,
          init: str = "random", target_acceptance: float = 0.5, tune: bool = True) -> TIEstimate:
    """KL(p_from || q_to) of two phi^4 actions given by their couplings g (eq. 14, real) by thermodynamic
    integration along g_t (g_along); every rank of topo.world calls this. Per node: a chain of S_t
    (stream TI_CHAIN0 + j), n_therm sweeps with step-size tuning, then n_samples measurements of
    A - S = to(pieces) - from(pieces), sweeps_per_sample apart."""
    from ..models.action import PhiFourAction, TargetAction
    from ..sampler import Sampler
    a_from, a_to = TargetAction(dict(g_from)), TargetAction(dict(g_to))
    d = topo.geometry.ndim

    def sampler(t, chain):
        return Sampler(topo, PhiFourAction.from_target(d, g_along(g_from, g_to, t)), seed, delta, n_hits, init,
                       chain=chain)

    return ti_path_kl(topo, sampler, lambda m, t: a_to.evaluate(m) - a_from.evaluate(m), n_gauss, n_samples,
                      sweeps_per_sample, n_therm, n_bins, target_acceptance, tune)


def ti_path_kl(topo, sampler, a_minus_s, n_gauss: int, n_samples: int, sweeps_per_sample: int, n_therm: int,
               n_bins: int = 20, target_acceptance: float = 0.5, tune: bool = True) -> TIEstimate:
    """The integration for any path: sampler(t, chain) -> a Sampler of S_t on this rank's block (replica
    group), a_minus_s(measurement, t) -> A - S of that configuration. Node j (t = 0 first) runs on
    replica group j mod n_replicas with chain TI_CHAIN0 + j; results gathered in node order."""
    from ..parallel.ensemble import gather_chain_values
    t_nodes, _, _ = ti_rule(n_gauss)
    t_all = np.concatenate([[0.0], t_nodes])
    mine = []
    for j, t in enumerate(t_all):
        if j % topo.n_replicas != topo.replica:
            continue
        s = sampler(float(t), TI_CHAIN0 + j)
        while s.sweep_count < n_therm:
            s.thermalise_block(n_therm, target_acceptance, tune)
        x = np.empty(n_samples)
        acc = 0.0
        for k in range(n_samples):
            acc += s.sweep(sweeps_per_sample)
            x[k] = a_minus_s(s.measure(), float(t))
        if not np.all(np.isfinite(x)):
            raise RuntimeError(f"thermodynamic integration: non-finite action at t = {t}")
        mean, err, tau = binned_mean(x, n_bins)
        mine.append((j, mean, err, tau, acc / n_samples))
    rows = sorted(gather_chain_values(topo, mine))
    mean, err, tau, acc = (np.array([r[i] for r in rows]) for i in range(1, 5))
    value, stat, gauss, quad = ti_combine(mean, err, n_gauss)
    return TIEstimate(value, stat, quad, gauss, t_all, mean, err, tau, acc, int(n_samples))
