#!/usr/bin/env python3
"""Learning curves of a `pqml learn` run (Figs. 2 and 3 of Bachtis, Aarts, Lucini, PRD 103, 074510).

    python analysis/plot_learning.py out/fig2.h5 --targets w=1,a=1.52425,b=0.175 --out out/fig2.png   # Fig. 2
    python analysis/plot_learning.py out/fig3.h5 --panels kl --log-bins 60 --out out/fig3.png        # Fig. 3

Panels (--panels, default auto):
* couplings (Fig. 2): one panel per learned kind of coupling (w, a, b, r): the trajectory of every
  link/site coupling from /learning/snapshots versus epoch (log x), drawn as thin lines, under the band
  mean +- std over sites of every epoch (/learning/mean_*, std_*; it also covers the epochs before the first
  snapshot). --targets draws dashed horizontal lines at the expected values.
* kl (Fig. 3): the KL(p_S || q_A) estimate and, if the run had a [reference], KL(q_ref || q_A), each with its
  jackknife error band, versus epoch (log x). --bin B averages B consecutive epochs, --log-bins N averages
  over N bins evenly spaced on the log axis (error of a mean of n estimates: sqrt(sum err^2) / n).
  These per-epoch estimates are exponential averages: a curve whose median per-epoch ESS (/learning/kl_ess,
  kl_ref_ess) fails the reweighting rule is dashed and labelled "ESS ...: unreliable". With
  [reference] estimator = "ti" the reference curve of Fig. 3 is the thermodynamic-integration value
  (/learning/reference_ti, constant in epochs): a black line with its band (statistical and quadrature
  errors added in quadrature); with learn.final_kl = "ti" the final S's TI value (/learning/final_ti) is a
  point with its error bar at its epoch.
auto = couplings, plus kl when the run has finite KL values (target mode).

Serial: reads the HDF5 file with h5py (docs/schema.md, "Learning file"), never imports mpi4py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis.reweighting import MIN_ESS, MIN_ESS_FRACTION  # noqa: E402  (the verdict rule, one place)

KINDS = ("w", "a", "b", "r")
LABELS = {"w": r"$w_{ij}$", "a": r"$a_i$", "b": r"$b_i$", "r": r"$r_i$"}


def parse_targets(text: str) -> dict:
    """'w=1,a=1.52425,b=0.175' -> {'w': 1.0, 'a': 1.52425, 'b': 0.175}."""
    out = {}
    for item in filter(None, (s.strip() for s in (text or "").split(","))):
        k, sep, v = item.partition("=")
        k = k.strip()
        if not sep or k not in KINDS:
            raise ValueError(f"--targets: expected NAME=VALUE with NAME in {', '.join(KINDS)}, got {item!r}")
        try:
            out[k] = float(v)
        except ValueError:
            raise ValueError(f"--targets: {item!r}: {v!r} is not a number") from None
    return out


def load(path) -> dict:
    """Series, snapshots and attributes of a learning file."""
    import h5py
    with h5py.File(path, "r") as f:
        if "learning" not in f:
            raise ValueError(f"{path}: no /learning group (not a pqml learn output file)")
        g = f["learning"]
        series = {k: g[k][()] for k in g if isinstance(g[k], h5py.Dataset)}
        snaps = {}
        if "learning/snapshots" in f:
            s = f["learning/snapshots"]
            snaps = {k: s[k][()] for k in ("epoch", *KINDS) if k in s}
        attrs = {k: f.attrs[k] for k in f.attrs}
        ti = dict(f["learning/reference_ti"].attrs) if "learning/reference_ti" in f else None
        final = dict(f["learning/final_ti"].attrs) if "learning/final_ti" in f else None
    return {"series": series, "snapshots": snaps, "attrs": attrs, "reference_ti": ti, "final_ti": final}


def n_per_epoch(run: dict) -> int:
    """Samples behind each per-epoch KL estimate (n_chains * samples_per_epoch from the config text), 0 if
    unknown."""
    import tomllib
    try:
        learn = tomllib.loads(str(run["attrs"].get("config_text", ""))).get("learn", {})
        return int(learn.get("n_chains", 1)) * int(learn.get("samples_per_epoch", 50))
    except (tomllib.TOMLDecodeError, TypeError, ValueError):
        return 0


def learned_kinds(run: dict) -> list:
    """Kinds of coupling that vary (or are nonzero) during the run."""
    s = run["series"]
    out = []
    for k in KINDS:
        m, sd = s.get(f"mean_{k}"), s.get(f"std_{k}")
        if m is None:
            continue
        snap = run["snapshots"].get(k)
        if np.any(m != 0) or np.any(sd != 0) or (snap is not None and snap.size and np.any(snap != 0)):
            out.append(k)
    return out


def binned(epoch, val, err, b: int = 1, log_bins: int = 0):
    """Average consecutive epochs: blocks of b epochs, or log_bins blocks of geometrically growing length
    (even spacing on the log axis); the error of a block is sqrt(sum err^2) / n (independent estimates)."""
    if log_bins > 0:     # row indices (0-based, half-open) of blocks evenly spaced in log(epoch number)
        edges = np.unique(np.rint(np.geomspace(1, len(epoch) + 1, log_bins + 1)).astype(int)) - 1
    elif b > 1:
        edges = np.arange(0, len(epoch) + 1, b)
    else:
        return epoch, val, err
    e, v, s = [], [], []
    for lo, hi in zip(edges[:-1], edges[1:]):
        e.append(np.exp(np.mean(np.log(epoch[lo:hi]))))
        v.append(np.mean(val[lo:hi]))
        s.append(np.sqrt(np.nansum(err[lo:hi] ** 2)) / (hi - lo))
    return np.array(e), np.array(v), np.array(s)


def plot_couplings(ax, run, kind, target, max_lines: int = 256):
    s, snaps = run["series"], run["snapshots"]
    epoch = s["epoch"]
    m, sd = s[f"mean_{kind}"], s[f"std_{kind}"]
    ax.fill_between(epoch, m - sd, m + sd, color="0.8", lw=0, label="mean ± std over sites")
    if kind in snaps and len(snaps.get("epoch", [])):
        se = snaps["epoch"]
        traj = snaps[kind].reshape(len(se), -1)
        n = traj.shape[1]
        if max_lines and n > max_lines:      # an evenly spaced subset keeps big lattices readable
            traj = traj[:, np.linspace(0, n - 1, max_lines).astype(int)]
        ax.plot(se, traj, lw=0.5, alpha=0.6)
        ax.plot([], [], lw=0.5, color="C0", label=f"{traj.shape[1]} of {n} couplings (snapshots)")
    if target is not None:
        ax.axhline(target, color="k", ls="--", lw=1.2, label=f"target {target:g}")
    ax.set_xscale("log")
    ax.set_ylabel(LABELS[kind])
    ax.legend(fontsize="small", loc="best")


def plot_kl(ax, run, b: int = 1, scale: str = "log", log_bins: int = 0):
    s = run["series"]
    epoch = s["epoch"]
    drawn = False
    for name, err, label, colour in (("kl", "kl_err", r"KL($p_S\,\|\,q_A$)  (learned $S$)", "C0"),
                                     ("kl_ref", "kl_ref_err", r"KL($q_{\rm ref}\,\|\,q_A$)  (reference)", "C1")):
        v = s.get(name)
        if v is None or not np.isfinite(v).any():
            continue
        e, y, dy = binned(epoch, v, s[err], b, log_bins)
        ess = s.get(f"{name}_ess")
        ls = "-"
        if ess is not None and np.isfinite(ess).any():
            med = float(np.nanmedian(ess))
            ok = med >= max(MIN_ESS, MIN_ESS_FRACTION * n_per_epoch(run)) if n_per_epoch(run) else True
            label += f", ESS {med:.0f}" + ("" if ok else ": unreliable")
            ls = "-" if ok else "--"
        if name == "kl_ref" and run.get("reference_ti") is not None:
            label = label.replace("(reference)", "(reference, per-epoch exp. average)")
        ax.plot(e, y, color=colour, lw=0.8, ls=ls, label=label)
        ax.fill_between(e, y - dy, y + dy, color=colour, alpha=0.3, lw=0)
        drawn = True
    ti = run.get("reference_ti")
    if ti is not None and len(epoch):
        v, dv = float(ti["value"]), float(np.hypot(ti["stat_err"], ti["quad_err"]))
        ax.axhline(v, color="k", lw=1.2, label=rf"KL($q_{{\rm ref}}\,\|\,q_A$) = {v:.4g} ± {dv:.2g}  (TI)")
        ax.axhspan(v - dv, v + dv, color="k", alpha=0.15, lw=0)
        drawn = True
    fin = run.get("final_ti")
    if fin is not None:
        v, dv = float(fin["value"]), float(np.hypot(fin["stat_err"], fin["quad_err"]))
        ax.errorbar([float(fin["epoch"])], [v], [dv], fmt="o", color="C0", ms=4, capsize=3,
                    label=rf"KL($p_S\,\|\,q_A$) of the final $S$ = {v:.3g} ± {dv:.2g}  (TI)")
    if not drawn:
        ax.text(0.5, 0.5, "no KL estimates (data-mode run)", transform=ax.transAxes, ha="center")
    ax.set_xscale("log")
    ax.set_yscale(scale)
    how = (f"averaged in {log_bins} log-spaced bins of epochs" if log_bins > 0
           else f"averaged over {b} epochs" if b > 1 else "")
    if how:
        ax.text(0.01, 0.03, how, transform=ax.transAxes, fontsize="x-small", color="0.3")
    ax.set_ylabel("KL estimate")
    ax.legend(fontsize="small", loc="best")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Plot the couplings (Fig. 2) and KL estimates (Fig. 3) of a pqml learn "
                                            "run versus epoch on a log axis.")
    p.add_argument("run", metavar="RUN.h5", help="output file of pqml learn")
    p.add_argument("--out", metavar="PNG", help="output PNG (default: RUN_learning.png next to RUN.h5)")
    p.add_argument("--targets", default="", metavar="w=1,a=1.52425,b=0.175",
                   help="expected coupling values, drawn as dashed horizontal lines")
    p.add_argument("--panels", choices=("auto", "couplings", "kl", "all"), default="auto",
                   help="what to draw (auto: couplings, plus KL if the run has KL estimates)")
    p.add_argument("--max-lines", type=int, default=256, metavar="N",
                   help="draw at most N coupling trajectories per panel (0: all; default 256)")
    p.add_argument("--bin", type=int, default=1, metavar="B", help="average the KL over B consecutive epochs")
    p.add_argument("--log-bins", type=int, default=0, metavar="N",
                   help="average the KL over N bins evenly spaced on the log epoch axis (overrides --bin)")
    p.add_argument("--kl-scale", choices=("log", "linear"), default="log", help="y axis of the KL panel")
    p.add_argument("--title", default=None, help="figure title")
    args = p.parse_args(argv)
    try:
        targets = parse_targets(args.targets)
        run = load(args.run)
    except (ValueError, OSError) as e:
        print(f"plot_learning.py: error: {e}", file=sys.stderr)
        return 2
    if not len(run["series"].get("epoch", [])):
        print(f"plot_learning.py: error: {args.run} has no epochs", file=sys.stderr)
        return 2
    has_kl = np.isfinite(run["series"].get("kl", np.array([np.nan]))).any()
    kinds = learned_kinds(run) if args.panels in ("auto", "couplings", "all") else []
    show_kl = args.panels in ("kl", "all") or (args.panels == "auto" and has_kl)
    n = len(kinds) + int(show_kl)
    if n == 0:
        print("plot_learning.py: error: nothing to plot", file=sys.stderr)
        return 2

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(n, 1, sharex=True, figsize=(7, 2.4 * n + 0.8), constrained_layout=True, squeeze=False)
    axes = axes[:, 0]
    for ax, k in zip(axes, kinds):
        plot_couplings(ax, run, k, targets.get(k), args.max_lines)
    if show_kl:
        plot_kl(axes[-1], run, args.bin, args.kl_scale, args.log_bins)
    axes[-1].set_xlabel("epoch $t$")
    fig.suptitle(args.title or Path(args.run).name)
    out = Path(args.out) if args.out else Path(args.run).with_name(Path(args.run).stem + "_learning.png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
