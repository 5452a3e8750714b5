#!/usr/bin/env python3
"""Reweighting along one coupling of a target action, real or complex: Figs. 4 and 5 of Bachtis, Aarts,
Lucini (PRD 103, 074510), from any sampled ensemble (e.g. the learned MRF S).

    python analysis/reweight_scan.py SAMPLE.h5 --target nn=-1,phi2=1.52425,phi4=0.175,nnn=-1,i_phi2=0.15 \
        --scan nnn=-1.15:-0.85:31 [--mc A4_g1.h5 A4_g2.h5 ...] --out out/reweight

For every value g' of the scanned coupling, A' = g' A^(j) + sum_{k != j} g_k A^(k) (eq. 20) and
<O>_{A'} = sum_l O_l e^{S_l - A'_l} / sum_l e^{S_l - A'_l} over the configurations of SAMPLE.h5 (the
action S it was sampled with is its /observables/action), for O = A' (complex, Fig. 4), m (Fig. 5) and
|m| (a symmetric S has <m> = 0 exactly, while a direct simulation in the ordered phase stays in one
sector: |m| compares the two without that ergodicity issue).
Errors: jackknife over bins; each g' gets a verdict (ESS and average phase, pqml_analysis.reweighting).
--mc: direct simulations of the real part of the target at other values of g' (files of pqml sample with
[action] kind = "target"); each is reweighted by the imaginary term only, as in the paper. Writes
OUT_action.png, OUT_m.png, OUT_abs_m.png and OUT.txt (the table).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pqml_analysis import load_run, reweight  # noqa: E402
from pqml_analysis.overlap import PIECE, parse_couplings, parse_scan, target_action as action  # noqa: E402
from pqml_analysis.files import AnalysisError, check_outputs, fail, finite_series, warn_line  # noqa: E402

SCRIPT = "reweight_scan.py"
USED = ("action", "m", "abs_m", *dict.fromkeys(PIECE.values()))   # every series the scan reads


def series(path) -> dict:
    """The observables USED (NaN/inf refused: files.finite_series), replica after replica; the attrs."""
    run = load_run(path, warn_line(SCRIPT))
    o = finite_series(run, USED)
    return {k: np.asarray(v).T.ravel() for k, v in o.items()}, run["attrs"]


def mc_coupling(attrs, name: str) -> dict:
    """The g of a pqml sample file made with [action] kind = "target" (from its stored config)."""
    import tomllib
    cfg = tomllib.loads(str(attrs["config_text"]))
    over = str(attrs.get("config_overrides", ""))
    g = dict(cfg["action"]["g"]) if cfg.get("action", {}).get("kind") == "target" else None
    if g is None:
        raise AnalysisError(f"{name}: --mc file was not sampled from a target action")
    for line in filter(None, over.splitlines()):
        k, _, v = line.partition("=")
        if k.strip().startswith("action.g."):
            g[k.strip()[len("action.g."):]] = float(v)
    return g


def main(argv=None) -> int:
    try:
        return _main(argv)
    except (AnalysisError, OSError) as e:
        return fail(SCRIPT, e)


def _main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("sample", help="HDF5 file of pqml sample (the ensemble to reweight)")
    ap.add_argument("--target", required=True, help="target couplings g, e.g. nn=-1,phi2=1.52425,...,i_phi2=0.15")
    ap.add_argument("--scan", required=True, help="TERM=start:stop:n, e.g. nnn=-1.15:-0.85:31")
    ap.add_argument("--mc", nargs="*", default=[], help="direct simulations of the real target at other g'")
    ap.add_argument("--bins", type=int, default=20)
    ap.add_argument("--out", required=True, help="output prefix (OUT_action.png, OUT_m.png, OUT_abs_m.png, OUT.txt)")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs")
    args = ap.parse_args(argv)
    try:
        g = parse_couplings(args.target)
        term, grid = parse_scan(args.scan)
    except ValueError as e:
        raise AnalysisError(f"--target/--scan: {e}") from None
    outs = [Path(f"{args.out}{s}") for s in ("_action.png", "_m.png", "_abs_m.png", ".txt")]
    check_outputs(outs, args.force)
    obs, _ = series(args.sample)
    S = obs["action"]
    rows = []
    for gp in grid:
        gg = {**g, term: gp}
        A = action(gg, obs)
        ra = reweight(A - S, A, args.bins)
        rows.append((gp, ra, reweight(A - S, obs["m"], args.bins), reweight(A - S, obs["abs_m"], args.bins)))
    mc = []
    for path in args.mc:
        o, attrs = series(path)
        gm = {**g, **{k: v for k, v in mc_coupling(attrs, path).items()}}
        gm["i_phi2"] = g.get("i_phi2", 0.0)
        A = action(gm, o)
        dA = 1j * gm["i_phi2"] * o["phi2"]        # the imaginary term only: the file sampled Re A
        mc.append((gm[term], reweight(dA, A, args.bins), reweight(dA, o["m"], args.bins),
                   reweight(dA, o["abs_m"], args.bins)))
    lines = [f"# reweighting of {args.sample} along {term}, target {g}",
             f"# {term}  Re<A> err  Im<A> err  Re<m> err  Re<|m|> err  ESS  |phase|  verdict"]
    for gp, ra, rm, rb in rows:
        lines.append(f"{gp:+.5f} {ra.value.real:.6g} {ra.err_re:.2g} {ra.value.imag:.6g} {ra.err_im:.2g} "
                     f"{rm.value.real:.6g} {rm.err_re:.2g} {rb.value.real:.6g} {rb.err_re:.2g} {ra.ess:.0f} "
                     f"{ra.phase:.3g} {'reliable' if ra.reliable else 'UNRELIABLE: ' + ra.reason}")
    lines.append(f"# direct MC of Re A reweighted by the imaginary term: {term}  Re<A> err  Re<m> err  Re<|m|> err")
    for gp, ra, rm, rb in mc:
        lines.append(f"# MC {gp:+.5f} {ra.value.real:.6g} {ra.err_re:.2g} {rm.value.real:.6g} {rm.err_re:.2g} "
                     f"{rb.value.real:.6g} {rb.err_re:.2g}")
    outs[3].parent.mkdir(parents=True, exist_ok=True)
    outs[3].write_text("\n".join(lines) + "\n")
    bad = [f"{r[0]:+.4f}" for r in rows if not r[1].reliable]
    if bad:
        print(f"warning: reweighting unreliable at {term} = {', '.join(bad)} (see {outs[3]})", file=sys.stderr)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    for k, (label, pick) in enumerate((("Re <A>", 1), ("Re <m>", 2), ("Re <|m|>", 3))):
        fig, ax = plt.subplots(figsize=(6, 4), constrained_layout=True)
        val = np.array([r[pick].value.real for r in rows])
        err = np.array([r[pick].err_re for r in rows])
        ok = np.array([r[1].reliable for r in rows])
        ax.plot(grid, val, color="C0", label=f"reweighted from {Path(args.sample).name}")
        ax.fill_between(grid, val - err, val + err, color="C0", alpha=0.3)
        if (~ok).any():
            ax.fill_between(grid, val.min(), val.max(), where=~ok, color="grey", alpha=0.2, label="unreliable")
        if mc:
            ax.errorbar([m[0] for m in mc], [m[pick].value.real for m in mc], [m[pick].err_re for m in mc],
                        fmt="o", color="C3", label="MC of Re A, reweighted by i g5 A(5)")
        ax.set_xlabel(f"g'({term})")
        ax.set_ylabel(label)
        ax.legend(fontsize="small")
        fig.savefig(outs[k], dpi=120)
        plt.close(fig)
    for p in outs:
        print(f"wrote {p}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
