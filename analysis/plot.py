#!/usr/bin/env python3
"""Plot one observable of a measurement file: Monte Carlo history, histogram, autocorrelation, tau_int.

    python analysis/plot.py RUN.h5 OBS [--what history|histogram|autocorr|tauint|all] [--out PNG] [--force]

OBS is any /observables/<name> of a file of `pqml sample` (action, nn, nnn, phi2, phi4, phi1, m, abs_m,
acceptance; docs/schema.md). Every replica is drawn, labelled `ensemble|replica` (ensemble = the file's
stem). Panels:
  history    O against the sweep counter (at most 20000 points per replica drawn: every k-th
             measurement of longer series, said in the title)
  histogram  normalised histogram of O per replica on common bins over the pooled range (the width of
             numpy's automatic "auto" bins of the finest replica; 10 to 200 bins; one bin per value for
             data with few distinct values on a regular grid, such as the acceptance)
  autocorr   the normalised autocorrelation function rho(t) = Gamma(t)/Gamma(0), t in measurements, with
             the automatic window W of the Gamma method (pqml_analysis.errors.tau_int_gamma, Wolff 2004)
             marked by a dashed line
  tauint     tau_int(W') = 1/2 + sum_{t=1}^{W'} rho(t) against the window W', and the chosen W with
             tau_int +- d_tau of tau_int_gamma (which adds the bias correction of Gamma; the curve does not)
  all        the four in a 2x2 figure (default)
Gamma(t) itself is not returned by errors.tau_int_gamma, so it is recomputed here (autocovariance via
FFT, normalised by N - t, as in errors.py). The default output is RUN_OBS_WHAT.png next to RUN.h5; an
existing output is not overwritten without --force. Errors (missing, empty, truncated, wrong-schema,
non-measurement files): `plot.py: error: FILE: ...` and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis.errors import tau_int_gamma  # noqa: E402
from pqml_analysis.files import (AnalysisError, check_outputs, fail, open_measurement, run_series,  # noqa: E402
                                 warn_line)

WHAT = ("history", "histogram", "autocorr", "tauint")
MAX_POINTS = 20000


def rho_function(x, t_max: int) -> np.ndarray:
    """rho(t) = Gamma(t)/Gamma(0), t = 0..t_max, Gamma(t) = 1/(N - t) sum_i (x_i - xbar)(x_{i+t} - xbar)
    (FFT; the definition of errors._autocovariance, which tau_int_gamma does not expose)."""
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    t_max = int(min(t_max, n - 1))
    d = x - x.mean()
    size = 1 << (2 * n - 1).bit_length()
    f = np.fft.rfft(d, size)
    acf = np.fft.irfft(f * np.conj(f), size)[: t_max + 1] / (n - np.arange(t_max + 1))
    return acf / acf[0]


def autocorr_info(x) -> dict:
    """tau_int, d_tau, W of tau_int_gamma and rho(t), tau_int(W') for t, W' up to max(4 W, 20) (< N/2);
    {"constant": True} for a constant series."""
    x = np.asarray(x, dtype=np.float64)
    if x.size < 4 or not np.ptp(x) > 0:
        return {"constant": True}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tau, dtau, w = tau_int_gamma(x)
    t_max = int(min(max(4 * w, 20), x.size // 2))
    rho = rho_function(x, t_max)
    return {"constant": False, "tau": tau, "dtau": dtau, "W": w, "rho": rho,
            "tau_curve": 0.5 + np.concatenate([[0.0], np.cumsum(rho[1:])]),
            "no_window": any(issubclass(c.category, RuntimeWarning) for c in caught)}


def draw(axes: dict, series: dict, sweep, name: str, infos: dict | None = None) -> dict:
    """Draw the panels named in `axes` ({what: matplotlib Axes}) for {label: series}; returns the
    autocorrelation infos per label (computed if not given)."""
    infos = infos if infos is not None else {}
    labels = list(series)
    colours = {lab: f"C{k % 10}" for k, lab in enumerate(labels)}
    if "history" in axes:
        ax = axes["history"]
        step = 1
        for lab, s in series.items():
            step = max(1, -(-s.size // MAX_POINTS))
            t = np.asarray(sweep) if sweep is not None and len(sweep) == s.size else np.arange(s.size)
            ax.plot(t[::step], s[::step], lw=0.5, color=colours[lab], label=lab)
        ax.set_xlabel("sweep" if sweep is not None else "measurement")
        ax.set_ylabel(name)
        ax.set_title(f"history of {name}" + (f" (every {step}th measurement drawn)" if step > 1 else ""),
                     fontsize="medium")
    if "histogram" in axes:
        ax = axes["histogram"]
        allv = np.concatenate(list(series.values()))
        widths = [np.diff(np.histogram_bin_edges(s, bins="auto")[:2])[0] for s in series.values() if np.ptp(s) > 0]
        uniq = np.unique(allv) if allv.size <= 10 ** 7 else allv[:0]
        gap = np.diff(uniq).min() if 2 <= uniq.size <= 400 else 0.0
        if gap > 0 and np.ptp(allv) / gap <= 400:   # few distinct values (e.g. acceptance): one bin per value
            edges = np.arange(allv.min() - 0.5 * gap, allv.max() + gap, gap)
        elif widths and np.ptp(allv) > 0:          # the finest replica's automatic width, at most 200 bins
            edges = np.linspace(allv.min(), allv.max(), 1 + int(min(200, max(10, np.ptp(allv) / min(widths)))))
        else:
            edges = 10
        for lab, s in series.items():
            ax.hist(s, bins=edges, density=True, histtype="step", color=colours[lab], label=lab)
        ax.set_xlabel(name)
        ax.set_ylabel("probability density")
        ax.set_title(f"histogram of {name}", fontsize="medium")
    if "autocorr" in axes or "tauint" in axes:
        for lab, s in series.items():
            if lab not in infos:
                infos[lab] = autocorr_info(s)
    if "autocorr" in axes:
        ax = axes["autocorr"]
        for lab, info in infos.items():
            if info["constant"]:
                ax.plot([], [], color=colours[lab], label=f"{lab}: constant series")
                continue
            ax.plot(np.arange(info["rho"].size), info["rho"], color=colours[lab], marker=".", ms=3, lw=0.8,
                    label=f"{lab}: W = {info['W']}")
            ax.axvline(info["W"], color=colours[lab], ls="--", lw=0.8)
        ax.axhline(0.0, color="k", lw=0.5)
        ax.set_xlabel("t (measurements)")
        ax.set_ylabel(r"$\Gamma(t)/\Gamma(0)$")
        ax.set_title(f"autocorrelation of {name}; dashed: automatic window W", fontsize="medium")
    if "tauint" in axes:
        ax = axes["tauint"]
        for lab, info in infos.items():
            if info["constant"]:
                ax.plot([], [], color=colours[lab], label=f"{lab}: constant series")
                continue
            c = info["tau_curve"]
            ax.plot(np.arange(c.size), c, color=colours[lab], lw=0.8)
            ax.errorbar([info["W"]], [info["tau"]], [info["dtau"]], fmt="o", color=colours[lab], capsize=3,
                        label=f"{lab}: " + r"$\tau_{int}$" + f" = {info['tau']:.3g} ± {info['dtau']:.2g} at W = "
                              f"{info['W']}" + (" (no window found)" if info["no_window"] else ""))
        ax.set_xlabel("window W' (measurements)")
        ax.set_ylabel(r"$\tau_{int}(W')$")
        ax.set_title(r"$\tau_{int}$ vs window; point: chosen W (bias-corrected)", fontsize="medium")
    for ax in axes.values():
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize="x-small")
    return infos


def figure(series: dict, sweep, name: str, what: str = "all", title: str = "", infos=None):
    """A matplotlib figure of the panels `what` (one of WHAT or "all")."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    if what == "all":
        fig, grid = plt.subplots(2, 2, figsize=(11, 7.5), constrained_layout=True)
        axes = dict(zip(WHAT, grid.ravel()))
    else:
        fig, ax = plt.subplots(figsize=(6.5, 4.2), constrained_layout=True)
        axes = {what: ax}
    infos = draw(axes, series, sweep, name, infos)
    if title:
        fig.suptitle(title, fontsize="medium")
    return fig, infos


def main(argv=None) -> int:
    prog = "plot.py"
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("run", help="measurement file of pqml sample (HDF5, schema 2)")
    ap.add_argument("obs", help="observable, e.g. m, abs_m, action, phi2, acceptance")
    ap.add_argument("--what", choices=(*WHAT, "all"), default="all", help="panel(s) to draw (default all)")
    ap.add_argument("--out", help="output PNG (default RUN_OBS_WHAT.png next to RUN.h5)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing output")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.run).with_name(f"{Path(args.run).stem}_{args.obs}_{args.what}.png")
    try:
        check_outputs([out], args.force)
        run = open_measurement(args.run, warn=warn_line(prog))
        series = run_series(run, args.obs)
        fig, infos = figure(series, run["sweep"], args.obs, args.what,
                            title=f"{run['path'].name}: {args.obs}, lattice {'x'.join(map(str, run['shape']))}, "
                                  f"{run['n_meas']} measurements x {run['n_replicas']} replica(s)"
                                  + ("" if run["complete"] else " (run not complete)"))
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=110)
    except AnalysisError as e:
        return fail(prog, e)
    except OSError as e:
        return fail(prog, f"{out}: cannot write ({e.strerror or e})")
    for lab, info in infos.items():
        if not info["constant"]:
            print(f"{lab}: tau_int = {info['tau']:.4g} +- {info['dtau']:.2g} (W = {info['W']})")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
