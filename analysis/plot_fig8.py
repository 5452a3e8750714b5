#!/usr/bin/env python3
"""Fig. 8 of Bachtis, Aarts, Lucini (PRD 103, 074510): probability density of the lattice values phi_i of the
training data versus those sampled from the learned Z2-symmetric action S and (optionally) from S_b, which
includes the symmetry-breaking term sum_i r_i phi_i.

    python analysis/plot_fig8.py --data out/fig8_data.npy --samples out/fig8_samples/S_*.h5 \
        --samples-r out/fig8_samples/Sb_*.h5 --out out/fig8.png

--samples / --samples-r take one or more `pqml sample` files; their configurations /configs/phi (all saved
sweeps and replicas) are pooled. Pooling independent chains matters for S: a chain of the learned
(ferromagnetic) S stays in the basin of +0.5 or of -0.5 it fell into, so the Z2-symmetric equilibrium
distribution is only seen over several chains. The legend gives the number of chains and the fraction of
values phi_i > 0. Serial: h5py and NumPy, never imports mpi4py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def load_data(path) -> np.ndarray:
    return np.asarray(np.load(path, allow_pickle=False), dtype=np.float64).ravel()


def load_samples(paths) -> tuple:
    """(pooled phi values, [(file, replica, mean phi of that chain)])."""
    import h5py
    vals, chains = [], []
    for p in paths:
        with h5py.File(p, "r") as f:
            if "configs/phi" not in f:
                raise ValueError(f"{p}: no /configs/phi (run pqml sample with output.save_every > 0)")
            x = f["configs/phi"][()]
        if x.shape[0] == 0:
            raise ValueError(f"{p}: /configs/phi holds no configurations")
        for rep in range(x.shape[1]):
            chains.append((str(p), rep, float(x[:, rep].mean())))
        vals.append(x.ravel())
    return np.concatenate(vals), chains


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Fig. 8: density of phi_i in the data and in samples of the learned "
                                            "actions S (Z2-symmetric) and S_b (with r_i phi_i).")
    p.add_argument("--data", required=True, metavar="DATA.npy", help="training data (.npy)")
    p.add_argument("--samples", required=True, nargs="+", metavar="SAMPLE.h5",
                   help="pqml sample file(s) of the learned S (pooled)")
    p.add_argument("--samples-r", nargs="+", default=None, metavar="SAMPLE_R.h5",
                   help="pqml sample file(s) of the learned S_b with the symmetry-breaking term (pooled)")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    p.add_argument("--bins", type=int, default=80, help="histogram bins over the common range (default 80)")
    p.add_argument("--range", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="histogram range (default: symmetric, covering all values)")
    args = p.parse_args(argv)
    try:
        data = load_data(args.data)
        sets = [("S (Z$_2$-symmetric)", *load_samples(args.samples), "S")]
        if args.samples_r:
            sets.append((r"S$_b$ (with the $r_i\,\phi_i$ term)", *load_samples(args.samples_r), "S_b"))
    except (ValueError, OSError) as e:
        print(f"plot_fig8.py: error: {e}", file=sys.stderr)
        return 2
    if args.range:
        lo, hi = args.range
    else:
        m = max(np.abs(data).max(), *(np.abs(v).max() for _, v, _, _ in sets)) * 1.05
        lo, hi = -m, m
    edges = np.linspace(lo, hi, args.bins + 1)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), sharey=True, constrained_layout=True,
                             squeeze=False)
    for ax, (label, vals, chains, _), colour in zip(axes[0], sets, ("C0", "C3")):
        ax.hist(data, bins=edges, density=True, color="0.6", alpha=0.6,
                label=f"data ({data.size} values, Gaussian)")
        n_pos = sum(c[2] > 0 for c in chains)
        ax.hist(vals, bins=edges, density=True, histtype="step", lw=1.6, color=colour,
                label=f"{label}\n{len(chains)} chain(s) ({n_pos} at +, {len(chains) - n_pos} at −); "
                      f"P($\\phi_i$>0) = {np.mean(vals > 0):.2f}")
        ax.set_xlabel(r"lattice value $\phi_i$")
        ax.legend(fontsize="small", loc="upper center")
        ax.set_xlim(lo, hi)
    axes[0, 0].set_ylabel("probability density")
    ymax = axes[0, 0].get_ylim()[1]
    axes[0, 0].set_ylim(0, ymax * 1.3)         # room for the legend
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    for _, vals, chains, name in sets:
        print(f"{name}: {len(chains)} chain(s), mean {vals.mean():+.4f}, P(phi>0) = {np.mean(vals > 0):.3f}, "
              f"std of |phi| {np.abs(vals).std():.4f} (data: mean {data.mean():+.4f}, std {data.std():.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
