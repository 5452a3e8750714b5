#!/usr/bin/env python3
"""One Markdown page (and PNGs) summarising a measurement file: means, errors, autocorrelations,
susceptibility, Binder cumulant and, optionally, a reweighting scan with verdicts.

    python analysis/report.py RUN.h5 [--out DIR] [--force] [--bins N] [--obs m,abs_m,...]
                              [--target nn=-1,...,i_phi2=0.15 --scan nnn=-1.05:-0.8:6]

Writes DIR/report.md (default DIR: RUN without .h5, plus _report) and per observable DIR/<obs>.png
(history, histogram, Gamma(t)/Gamma(0), tau_int(W): analysis/plot.py), plus DIR/overlap.png (W(S),
analysis/plot_overlap.py) with --target/--scan. Methods, stated in the report:
  * mean +- error by binning (paper eq. D1): each replica cut into N bins (--bins, default 20; the
    leading N_r mod N measurements dropped), the R * N bin averages pooled;
  * tau_int +- d_tau per replica by the Gamma method with automatic window (Wolff 2004,
    pqml_analysis.errors.tau_int_gamma), and the error of the mean it implies, sqrt(2 tau_int Gamma(0)/N);
    a warning when a replica is shorter than 100 tau_int or a bin shorter than 10 tau_int;
  * every observable with its formula (docs/schema.md); the lattice sums (action, nn, nnn, phi1, phi2,
    phi4) also per site (divided by V); m and abs_m are per site already;
  * chi_2 = V (<m^2> - <m>^2) (the papers' chi_2, m = sum_x phi_x / V), chi_|m| = V (<m^2> - <|m|>^2),
    Binder U = 1 - <m^4>/(3 <m^2>^2) with jackknife errors over the same pooled bins
    (pqml_analysis.observables);
  * reweighting (pqml_analysis.reweighting.reweight, jackknife over the same bins, replicas one after
    another) of A', m and |m| to A' = g' A^(j) + sum_k g_k A^(k) (+ i g5 sum phi^2) at each g' of the scan,
    with ESS, average phase, the share of W(S) in the tails of the sampled S and the verdicts.
Outputs are not overwritten without --force. Errors (missing, empty, truncated, wrong-schema or
non-measurement files, bad options): `report.py: error: ...` and exit code 2; an incomplete run is
reported (warning, and in the report) and analysed.
"""
from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import plot as plot_mod  # noqa: E402
import plot_overlap  # noqa: E402
from pqml_analysis.errors import binned_error  # noqa: E402
from pqml_analysis.files import (AnalysisError, check_outputs, fail, finite_series, open_measurement,  # noqa: E402
                                 pooled, run_series, warn_line)
from pqml_analysis.observables import binder, susceptibility  # noqa: E402
from pqml_analysis.overlap import parse_couplings, parse_scan, target_action, weight_function  # noqa: E402
from pqml_analysis.reweighting import reweight  # noqa: E402

MIN_TAU_SERIES = 100      # a replica should be >= 100 tau_int long
MIN_TAU_BIN = 10          # a bin should be >= 10 tau_int long


def fmt(value: float, err: float) -> str:
    """value(err) with the error to two significant digits, e.g. 1.2345(67)."""
    if not (math.isfinite(value) and math.isfinite(err)) or err <= 0:
        return f"{value:.6g}" + ("" if err == 0 else f" ± {err:.2g}")
    digits = max(0, 1 - int(math.floor(math.log10(err))))
    return f"{value:.{digits}f} ± {err:.{digits}f}"


# what each series of /observables is (docs/schema.md): (formula, a lattice sum?); the lattice sums are
# also shown per site (divided by V)
DEFINITIONS = {
    "action": ("S = Σ_x (aφ² + bφ⁴ + rφ) − Σ_x Σ_μ w φ_x φ_x+μ − w_nnn nnn", True),
    "nn": ("Σ_x Σ_μ φ_x φ_x+μ", True),
    "nnn": ("Σ_x Σ_μ<ν φ_x (φ_x+μ+ν + φ_x+μ−ν)", True),
    "phi1": ("Σ_x φ_x", True),
    "phi2": ("Σ_x φ_x²", True),
    "phi4": ("Σ_x φ_x⁴", True),
    "m": ("m = Σ_x φ_x / V", False),
    "abs_m": ("\\|m\\| = \\|Σ_x φ_x\\| / V", False),
    "acceptance": ("accepted / proposed updates (last measure_every sweeps)", False),
}


def observable_row(name: str, series: dict, n_bins: int, volume=None) -> tuple[list, list, dict]:
    """Table cells, warnings and the autocorrelation infos of one observable: name, definition, mean ±
    error (binning), the same per site for a lattice sum (÷ volume; "—" otherwise), Γ error, τ_int..."""
    reps = list(series.values())
    r = len(reps)
    n_r = reps[0].size
    x = pooled(reps, n_bins)
    mean, err = binned_error(x, n_bins * r)
    formula, extensive = DEFINITIONS.get(name, ("?", False))
    per_site = fmt(mean / volume, err / volume) if extensive and volume else "—"
    head = [name, formula, fmt(mean, err), per_site]
    infos = {lab: plot_mod.autocorr_info(s) for lab, s in series.items()}
    warns = []
    if r > 1:                      # replicas are independent chains of the same action: do they agree?
        rm = [binned_error(s, n_bins) for s in reps]
        dev = 0.0                  # largest deviation of a replica from the mean of the others, in sigma
        for k, (mu, e) in enumerate(rm):
            others = [rm[j] for j in range(r) if j != k]
            mo = sum(o[0] for o in others) / len(others)
            eo = math.sqrt(sum(o[1] ** 2 for o in others)) / len(others)
            if math.hypot(e, eo) > 0:
                dev = max(dev, abs(mu - mo) / math.hypot(e, eo))
        if dev > 4:
            warns.append(f"`{name}`: the replicas disagree (means " + ", ".join(fmt(mu, e) for mu, e in rm) +
                         f"; a replica {dev:.0f}σ from the mean of the others)" +
                         (": expected, every replica tunes its own proposal width" if name == "acceptance" else
                          ": the chains do not mix between the regions they sample (e.g. m stuck in opposite "
                          "sectors); the pooled mean averages over them, the Γ error of one chain does not see it"))
    if any(i["constant"] for i in infos.values()):
        return (head + ["—", "—", "— (constant)", "—", "—"], warns, infos)
    taus = [i["tau"] for i in infos.values()]
    var_mean = sum(2 * i["tau"] * np.var(s) / s.size for i, s in zip(infos.values(), reps)) / r ** 2
    tau_txt = ", ".join(f"{i['tau']:.3g} ± {i['dtau']:.2g}" for i in infos.values())
    ws = ", ".join(str(i["W"]) for i in infos.values())
    tmax = max(taus)
    bin_len = n_r // n_bins
    if n_r < MIN_TAU_SERIES * tmax:
        warns.append(f"`{name}`: a replica has only {n_r / tmax:.0f} τ_int (< {MIN_TAU_SERIES}): τ_int and the "
                     f"errors are uncertain")
    if bin_len < MIN_TAU_BIN * tmax:
        warns.append(f"`{name}`: bins of {bin_len} measurements are only {bin_len / tmax:.1f} τ_int long "
                     f"(< {MIN_TAU_BIN}): the binned error is underestimated; use fewer bins (--bins)")
    if any(i["no_window"] for i in infos.values()):
        warns.append(f"`{name}`: the Gamma method found no window below N/2: the series is too short")
    return (head + [fmt(mean, math.sqrt(var_mean)), tau_txt, ws, f"{n_r / tmax:.0f}", f"{bin_len / tmax:.1f}"],
            warns, infos)


def md_table(header: list, rows: list) -> list:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + \
           ["| " + " | ".join(map(str, row)) + " |" for row in rows]


def main(argv=None) -> int:
    prog = "report.py"
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 2)[2])
    ap.add_argument("run", help="measurement file of pqml sample (HDF5, schema 2)")
    ap.add_argument("--out", help="output directory (default RUN_report next to RUN.h5)")
    ap.add_argument("--force", action="store_true", help="overwrite existing outputs")
    ap.add_argument("--bins", type=int, default=20, help="bins per replica for errors (default 20)")
    ap.add_argument("--obs", help="comma-separated observables (default: all in the file)")
    ap.add_argument("--target", help="target couplings for reweighting, e.g. nn=-1,phi2=1.52425,phi4=0.175,"
                                     "nnn=-1,i_phi2=0.15")
    ap.add_argument("--scan", help="TERM=start:stop:n, e.g. nnn=-1.05:-0.8:6 (with --target)")
    args = ap.parse_args(argv)
    run_path = Path(args.run)
    out = Path(args.out) if args.out else run_path.with_name(run_path.stem + "_report")
    warn = warn_line(prog)
    notes = []
    try:
        if (args.target is None) != (args.scan is None):
            raise AnalysisError("--target and --scan go together")
        if args.bins < 2:
            raise AnalysisError(f"--bins must be >= 2, got {args.bins}")
        try:
            g = parse_couplings(args.target) if args.target else None
            term, grid = parse_scan(args.scan) if args.scan else (None, None)
        except ValueError as e:
            raise AnalysisError(str(e)) from None
        run = open_measurement(run_path, warn=lambda m: (warn(m), notes.append(m)))
        names = [n.strip() for n in args.obs.split(",") if n.strip()] if args.obs else list(run["observables"])
        # every series read below, checked now (unknown or NaN/inf: error before anything is written)
        finite_series(run, dict.fromkeys(names + (["m"] if "m" in run["observables"] else []) +
                                         (["action", "m", "abs_m", *plot_overlap.PIECES] if g else [])))
        pngs = [out / f"{n}.png" for n in names] + ([out / "overlap.png"] if g else [])
        check_outputs([out / "report.md", *pngs], args.force)
        if run["n_meas"] < 2 * args.bins:
            raise AnalysisError(f"{run_path}: {run['n_meas']} measurements per replica are too few for "
                                f"{args.bins} bins")
    except AnalysisError as e:
        return fail(prog, e)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    attrs = run["attrs"]
    r, n_r, vol = run["n_replicas"], run["n_meas"], run["volume"]
    kind = "?"
    try:
        import tomllib
        cfg = tomllib.loads(str(attrs.get("config_text", "")))
        act = cfg.get("action", {})
        kind = act.get("kind", "?") + (f", g = {act['g']}" if "g" in act else "") + \
            (f", path = {act['path']}" if "path" in act else "")
        me = cfg.get("sampler", {}).get("measure_every", "?")
    except Exception:                                               # noqa: BLE001 (a report, not a parser)
        me = "?"
    sweep = run["sweep"]
    lines = [f"# Report: `{run_path}`", "",
             f"* lattice {'×'.join(map(str, run['shape']))} (V = {vol}), {r} replica(s) × {n_r} measurements "
             f"(every {me} sweeps" + (f", sweeps {int(sweep[0])}–{int(sweep[-1])}" if sweep is not None and
                                      len(sweep) else "") + ")",
             f"* action: {kind}; overrides: {str(attrs.get('config_overrides', '')).replace(chr(10), ', ') or '—'}",
             f"* created {attrs.get('created', '?')}, package {attrs.get('package_version', '?')}, seed "
             f"{attrs.get('seed', '?')}, complete = {run['complete']}", ""]
    if not run["complete"]:
        lines += ["> **Warning:** the run is not complete (`complete = false`): still running, crashed or stopped. "
                  "The file holds the measurements of its last checkpoint.", ""]
    lines += ["## Observables", "",
              f"Mean ± error by **binning** (eq. D1): each replica cut into n = {args.bins} bins of "
              f"{n_r // args.bins} measurements (leading {n_r % args.bins} dropped), the {r * args.bins} bin "
              f"averages pooled. **τ_int** per replica (in measurements) by the **Γ-method** with automatic "
              f"window W (Wolff 2004, S = 1.5) ± its error; \"err (Γ)\" is the error of the mean it implies, "
              f"√(2 τ_int Γ(0)/N). N/τ and bin/τ: replica and bin length in units of the largest τ_int "
              f"(want ≥ {MIN_TAU_SERIES} and ≥ {MIN_TAU_BIN}).", ""]
    rows, warns = [], []
    for n in names:
        series = run_series(run, n)
        row, w, infos = observable_row(n, series, args.bins, vol)
        rows.append(row)
        warns += w
        fig, _ = plot_mod.figure(series, sweep, n, "all", title=f"{run_path.name}: {n}", infos=infos)
        out.mkdir(parents=True, exist_ok=True)
        fig.savefig(out / f"{n}.png", dpi=90)
        plt.close(fig)
    lines += md_table(["observable", "definition", "mean ± err (binning)", "per site (÷ V)", "mean ± err (Γ)",
                       "τ_int per replica", "W", "N/τ", "bin/τ"], rows)
    lines.append("")
    if warns:
        lines += ["**Warnings**", ""] + [f"* {w}" for w in warns] + [""]
    obs = run["observables"]
    if "m" in obs and vol:
        m = pooled([obs["m"][:, k] for k in range(r)], args.bins)
        nb = args.bins * r
        chi = susceptibility(m, vol, nb)
        chi_m = susceptibility(m, vol, nb, absolute=False)
        u = binder(m, nb)
        lines += ["## Derived quantities (jackknife over the same bins)", "",
                  *md_table(["quantity", "value"], [
                      ["χ₂ = V(⟨m²⟩ − ⟨m⟩²) (the papers' χ₂: connected, = G̃(0))", fmt(*chi_m)],
                      ["χ_\\|m\\| = V(⟨m²⟩ − ⟨\\|m\\|⟩²) (finite-volume order parameter)", fmt(*chi)],
                      ["Binder U = 1 − ⟨m⁴⟩/(3⟨m²⟩²)", fmt(*u)]]),
                  f"m = Σ_x φ_x / V per configuration (V = {vol}); per-site quantities: the lattice sums of the "
                  f"table above divided by V.", ""]
    if g:
        pieces = plot_overlap.load_pieces(run)
        s = pieces["action"]
        mser = np.concatenate(list(run_series(run, "m").values()))
        amser = np.concatenate(list(run_series(run, "abs_m").values()))
        nb = args.bins
        rrows, wfs = [], []
        for gp in grid:
            a = target_action({**g, term: float(gp)}, pieces)
            ra, rm, rb = (reweight(a - s, o, nb) for o in (a, mser, amser))
            wf = weight_function(s, a, None, nb)
            wfs.append((float(gp), wf))
            rrows.append([f"{gp:+.4f}", fmt(ra.value.real, ra.err_re), fmt(ra.value.imag, ra.err_im),
                          fmt(rm.value.real, rm.err_re), fmt(rb.value.real, rb.err_re), f"{ra.ess:.0f}",
                          f"{ra.phase:.3g} ± {ra.phase_err:.2g}", f"{wf.edge_fraction:.3f}",
                          "reliable" if ra.reliable else f"**unreliable**: {ra.reason}",
                          "reliable" if wf.reliable else "**unreliable**"])
        fig, ax = plt.subplots(figsize=(7, 4.8), constrained_layout=True)
        plot_overlap.draw_panel(ax, wfs, term, s, None, f"W(S) along {term}'")
        fig.savefig(out / "overlap.png", dpi=100)
        plt.close(fig)
        lines += ["## Reweighting", "",
                  f"Target A′ = {g} with {term} = g′ (eq. 20), from the sampled action S = `/observables/action`; "
                  f"jackknife over {nb} bins of the {r * n_r} configurations (replicas one after another). "
                  f"Verdict (reweight): ESS ≥ max(100, 1 % of N) and |average phase| ≥ 3σ. Edge: share of |W(S)| "
                  f"in the 1 % tails of the sampled S (overlap verdict: also edge ≤ 0.2).", "",
                  *md_table([f"{term}′", "Re⟨A′⟩", "Im⟨A′⟩", "Re⟨m⟩", "Re⟨\\|m\\|⟩", "ESS", "\\|phase\\|",
                             "edge", "verdict (reweight)", "verdict (overlap)"], rrows), "",
                  "![W(S)](overlap.png)", ""]
    lines += ["## Plots", ""] + [f"### {n}\n\n![{n}]({n}.png)\n" for n in names]
    if notes:
        lines += ["## Notes", ""] + [f"* {n}" for n in notes]
    try:
        (out / "report.md").write_text("\n".join(lines) + "\n")
    except OSError as e:
        return fail(prog, f"{out / 'report.md'}: cannot write ({e.strerror or e})")
    for w in warns:
        warn(w.replace("`", ""))
    print(f"wrote {out / 'report.md'} and {len(names) + (1 if g else 0)} PNGs in {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
