#!/usr/bin/env python3
"""Timing of the serial analysis on long series: 10^6 measurements x 5 observables (synthetic AR(1)).

    python analysis/bench_analysis.py [--n 1000000] [--n-gprime 100] [--bins 20] [--repeat 3] [--markdown]

The five series are AR(1) chains x_t = rho x_{t-1} + sqrt(1 - rho^2) e_t (tau_int = (1 + rho)/(2(1 - rho)),
rho = 0.5, 0.8, 0.9, 0.95, 0.98), shifted and scaled to look like m, |m|, an action, phi^2, phi^4.
Timed (best of --repeat; the reweighting scan once):
  binned     errors.binned_error of all 5 series (--bins bins)
  tau_int    errors.tau_int_gamma (Gamma method, automatic window) of all 5 series
  jackknife  observables.susceptibility and observables.binder of m (jackknife, --bins bins)
  reweight   reweighting.reweight of m at --n-gprime values of a coupling g' (dA = (g' - g) (action -
             <action>), |g' - g| std(action) <= 2.5: the ESS falls to ~N e^-6 at the ends)
Each timing is printed beside the floor, a plain numpy mean over the same data (the 5 x N array for
binned and tau_int; m for jackknife; (dA, m) once per g' for reweight), and their ratio.
Never imports mpi4py or parallel_qftml.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis.errors import binned_error, tau_int_gamma  # noqa: E402
from pqml_analysis.observables import binder, susceptibility  # noqa: E402
from pqml_analysis.reweighting import reweight  # noqa: E402

RHOS = (0.5, 0.8, 0.9, 0.95, 0.98)
NAMES = ("m", "abs_m", "action", "phi2", "phi4")


def ar1(n: int, rho: float, rng) -> np.ndarray:
    """AR(1) with unit variance (scipy.signal.lfilter if available, else a numpy loop in blocks)."""
    e = rng.standard_normal(n) * np.sqrt(1.0 - rho ** 2)
    e[0] = rng.standard_normal()
    try:
        from scipy.signal import lfilter
        return lfilter([1.0], [1.0, -rho], e)
    except ImportError:                                   # pragma: no cover (scipy is optional)
        x = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = rho * acc + e[i]
            x[i] = acc
        return x


def best(f, repeat: int) -> float:
    t = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        f()
        t.append(time.perf_counter() - t0)
    return min(t)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bench_analysis.py", description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("--n", type=int, default=10 ** 6, help="measurements per series (default 10^6)")
    ap.add_argument("--n-gprime", type=int, default=100, help="values of g' for reweighting (default 100)")
    ap.add_argument("--bins", type=int, default=20, help="bins for binning and jackknife (default 20)")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions, best taken (default 3)")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    args = ap.parse_args(argv)
    if args.n < 100 * args.bins or args.n_gprime < 1 or args.repeat < 1:
        print("bench_analysis.py: error: need --n >= 100 * --bins, --n-gprime >= 1, --repeat >= 1", file=sys.stderr)
        return 2
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    base = np.array([ar1(args.n, r, rng) for r in RHOS])
    data = np.array([2.6 + 0.1 * base[0], np.abs(2.6 + 0.1 * base[1]), -140 + 3 * base[2], 111 + 2 * base[3],
                     800 + 20 * base[4]])
    t_gen = time.perf_counter() - t0
    m, act = data[0], data[2]
    vol = 16

    floor_all = best(lambda: data.mean(axis=1), args.repeat)
    floor_m = best(lambda: m.mean(), args.repeat)
    rows = []

    out = {}
    t = best(lambda: out.__setitem__("binned", [binned_error(x, args.bins) for x in data]), args.repeat)
    rows.append(("binned errors, 5 series", t, floor_all))
    t = best(lambda: out.__setitem__("tau", [tau_int_gamma(x) for x in data]), args.repeat)
    rows.append(("tau_int (Gamma method), 5 series", t, floor_all))
    t = best(lambda: out.__setitem__("jk", (susceptibility(m, vol, args.bins), binder(m, args.bins))), args.repeat)
    rows.append(("jackknife chi and Binder of m", t, floor_m))
    # reweighting along g': dA = (g' - g) (action - <action>), |g' - g| sigma_action <= 2.5: the ESS falls
    # from N to ~N e^{-6} at the ends (Gaussian action), where the verdict turns unreliable
    grid = np.linspace(-2.5, 2.5, args.n_gprime) / act.std()
    dact = act - act.mean()
    t1 = time.perf_counter()
    rw = [reweight(dg * dact, m, args.bins) for dg in grid]
    t_rw = time.perf_counter() - t1
    t1 = time.perf_counter()
    for dg in grid:
        (dg * dact).mean()
        m.mean()
    floor_rw = time.perf_counter() - t1
    rows.append((f"reweight at {args.n_gprime} g' values", t_rw, floor_rw))

    n_rel = sum(r.reliable for r in rw)
    total = sum(r[1] for r in rows)
    print(f"# {args.n} measurements x 5 observables (AR(1), tau_int = "
          f"{', '.join(f'{(1 + r) / (2 * (1 - r)):.3g}' for r in RHOS)}); data generated in {t_gen:.2f} s")
    print("# tau_int measured: " + ", ".join(f"{n} {t:.3g}±{d:.2g} (W={w})"
                                             for n, (t, d, w) in zip(NAMES, out["tau"])))
    ess = [r.ess for r in rw]
    print(f"# reweighting: {n_rel} of {len(rw)} g' reliable (ESS {min(ess):.0f}..{max(ess):.0f})")
    if args.markdown:
        print("| task | time | numpy mean over the same data (floor) | ratio |")
        print("|---|---|---|---|")
        for name, t, f in rows:
            print(f"| {name} | {t * 1e3:.1f} ms | {f * 1e3:.2f} ms | {t / f:.0f} |")
        print(f"| **total** | **{total:.2f} s** | | |")
    else:
        print(f"{'task':40s} {'time':>10s} {'floor':>10s} {'ratio':>8s}")
        for name, t, f in rows:
            print(f"{name:40s} {t * 1e3:8.1f}ms {f * 1e3:8.2f}ms {t / f:8.0f}")
        print(f"{'total':40s} {total:9.2f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
