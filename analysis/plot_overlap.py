#!/usr/bin/env python3
"""Weight functions W(S) of reweighting a sample to a target action: Figs. 6 and 7 of Bachtis, Aarts,
Lucini (PRD 103, 074510), from any sampled ensemble.

    python analysis/plot_overlap.py SAMPLE.h5 --target nn=-1,phi2=1.52425,phi4=0.175,nnn=-1,i_phi2=0.15 \
        --scan nnn=-1.05:-0.8:6 [--scan nnn=-0.25:0:6 ...] --out out/fig6.png [--force]

SAMPLE.h5 is a measurement file of `pqml sample`; its /observables/action is the action S the
configurations were sampled with (the learned MRF S for Fig. 6, A{3} for Fig. 7), the pieces nn, nnn,
phi2, phi4, phi1 give the target A' = g' A^(j) + sum_{k != j} g_k A^(k) + i g5 sum phi^2 at every value
g' of the scanned coupling (as in analysis/reweight_scan.py). For every g' the figure shows Re W(S)
(eq. 22, pqml_analysis.overlap.weight_function: the distribution of S the sample predicts for the target)
against S, and W0(S), the histogram actually sampled (black, dashed). Each curve's legend carries the
verdict of pqml_analysis.reweighting.reweight (effective sample size and average phase): `reliable`
(solid line) or `UNRELIABLE` (dotted), and `W at edge` when more than 20 % of |W| lies in the 1 % tails
of the sampled S (overlap.EDGE_MAX). One panel per --scan. Replicas are used one after another.
The histogram has bins of width --width (default 0.05, overlap.DELTA) in S, Re A' and Im A'; the curves
are drawn on S bins k times wider (--rebin k; default: about the Freedman-Diaconis width of S).
Also written: OUT with suffix .txt, the table (g', sum S W(S) against <S> reweighted directly, ESS,
|phase|, edge fraction, verdicts). Outputs are not overwritten without --force. Errors: `plot_overlap.py:
error: ...` and exit code 2.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis.files import (AnalysisError, check_outputs, fail, open_measurement, run_series,  # noqa: E402
                                 warn_line)
from pqml_analysis.overlap import (DELTA, check_mean, parse_couplings, parse_scan, target_action,  # noqa: E402
                                   weight_function)

PIECES = ("action", "nn", "nnn", "phi2", "phi4", "phi1")


def load_pieces(run: dict) -> dict:
    """{piece: 1D series, replicas one after another} for the action pieces of a measurement file."""
    return {k: np.concatenate(list(run_series(run, k).values())) for k in PIECES}


def scan_weight_functions(obs: dict, g: dict, term: str, grid, width=None, n_bins: int = 20) -> list:
    """[(g', WeightFunction)] along the scan."""
    return [(float(gp), weight_function(obs["action"], target_action({**g, term: float(gp)}, obs), width, n_bins))
            for gp in grid]


def table_lines(term: str, rows: list) -> list:
    lines = [f"# {term}'  sum_S S W(S)  <S> reweighted  err  |diff|  tolerance  check  ESS  N  |phase|  edge  "
             f"verdict(reweight)  verdict(overlap)"]
    for gp, wf in rows:
        fw, direct, tol, ok = check_mean(wf)
        v = wf.verdict
        lines.append(f"{gp:+.5f} {fw.real:.6g} {direct.real:.6g} {v.err_re:.2g} {abs(fw - direct):.2g} {tol:.2g} "
                     f"{'ok' if ok else 'FAILED'} {v.ess:.0f} {v.n} {v.phase:.3g} {wf.edge_fraction:.3f} "
                     f"{'reliable' if v.reliable else 'UNRELIABLE'} "
                     f"{'reliable' if wf.reliable else 'UNRELIABLE: ' + wf.reason}")
    return lines


def draw_panel(ax, rows: list, term: str, s_values, rebin=None, title: str = "", xlabel: str = "S (sampled action)"):
    import matplotlib.pyplot as plt
    cmap = plt.get_cmap("viridis")
    w0_drawn = False
    for k, (gp, wf) in enumerate(rows):
        d = wf.rebin(rebin) if rebin else wf.display_rebin(s_values)
        if not w0_drawn:
            ax.stairs(d.W0, d.edges, color="k", ls="--", lw=1.0, label=r"$W_0(S)$ (sampled histogram)")
            w0_drawn = True
        ok = wf.verdict.reliable
        lab = f"{term}' = {gp:+.3f}: " + ("reliable" if ok else f"UNRELIABLE (ESS {wf.verdict.ess:.0f})")
        if wf.edge_fraction > 0.2:
            lab += ", W at edge"
        colour = cmap(k / max(len(rows) - 1, 1) * 0.9)
        ax.stairs(d.W.real, d.edges, color=colour, lw=1.6 if ok else 1.2, ls="-" if ok else ":", label=lab)
    ax.axhline(0.0, color="grey", lw=0.5)
    ax.set_xlabel(xlabel)
    width = np.diff(d.edges[:2])[0]
    ax.set_ylabel(f"Re W(S) per bin of width {width:.2g}")
    ax.legend(fontsize="x-small")
    if title:
        ax.set_title(title, fontsize="medium")


def main(argv=None) -> int:
    prog = "plot_overlap.py"
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("sample", help="measurement file of pqml sample (the ensemble to reweight)")
    ap.add_argument("--target", required=True, help="target couplings, e.g. nn=-1,phi2=1.52425,phi4=0.175,"
                                                     "nnn=-1,i_phi2=0.15")
    ap.add_argument("--scan", required=True, action="append", help="TERM=start:stop:n, e.g. nnn=-1.05:-0.8:6 "
                                                                   "(repeatable: one panel each)")
    ap.add_argument("--width", type=float, default=DELTA, help=f"histogram bin width in S, Re A', Im A' "
                                                               f"(default {DELTA})")
    ap.add_argument("--rebin", type=int, help="draw W on S bins this many times wider (default: automatic)")
    ap.add_argument("--bins", type=int, default=20, help="jackknife bins of the verdict (default 20)")
    ap.add_argument("--title", default="", help="figure title")
    ap.add_argument("--xlabel", default="S (sampled action)", help="label of the S axis, e.g. 'A{3}'")
    ap.add_argument("--out", required=True, help="output PNG (the table goes to OUT with suffix .txt)")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = ap.parse_args(argv)
    out = Path(args.out)
    txt = out.with_suffix(".txt")
    try:
        try:
            g = parse_couplings(args.target)
            scans = [parse_scan(s) for s in args.scan]
        except ValueError as e:
            raise AnalysisError(str(e)) from None
        if args.width <= 0:
            raise AnalysisError(f"--width must be positive, got {args.width}")
        check_outputs([out, txt], args.force)
        run = open_measurement(args.sample, warn=warn_line(prog))
        obs = load_pieces(run)
        if obs["action"].size < 2 * args.bins:
            raise AnalysisError(f"{run['path']}: {obs['action'].size} measurements are too few for {args.bins} "
                                f"jackknife bins")
        panels = [(term, scan_weight_functions(obs, g, term, grid, args.width, args.bins)) for term, grid in scans]
    except AnalysisError as e:
        return fail(prog, e)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(panels), figsize=(6.8 * len(panels), 4.8), constrained_layout=True,
                             squeeze=False)
    lines = [f"# weight functions W(S) (eq. 22) of {args.sample} for the target {g}"]
    bad = []
    for ax, (term, rows) in zip(axes[0], panels):
        lo, hi = rows[0][0], rows[-1][0]
        draw_panel(ax, rows, term, obs["action"], args.rebin, f"{run['path'].name} reweighted along {term}' "
                   f"in [{min(lo, hi):g}, {max(lo, hi):g}]", args.xlabel)
        lines += table_lines(term, rows)
        bad += [f"{term}' = {gp:+.4f}" for gp, wf in rows if not wf.reliable]
    if args.title:
        fig.suptitle(args.title, fontsize="medium")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(out, dpi=120)
        txt.write_text("\n".join(lines) + "\n")
    except OSError as e:
        return fail(prog, f"{out}: cannot write ({e.strerror or e})")
    print("\n".join(lines))
    if bad:
        print(f"{prog}: warning: reweighting unreliable at {', '.join(bad)}", file=sys.stderr)
    print(f"wrote {out}\nwrote {txt}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
