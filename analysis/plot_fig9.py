#!/usr/bin/env python3
"""Fig. 9 of Bachtis, Aarts, Lucini (PRD 103, 074510): the original image and the configurations of a Markov
chain of the learned action after a few Metropolis sweeps, in greyscale on one colour scale.

    python analysis/plot_fig9.py --image out/fig9_image.npy --samples out/fig9_sample.h5 --sweeps 1 10 50 \
        --out out/fig9.png

SAMPLE.h5 is a `pqml sample` file of the learned couplings with n_therm = 0 and output.save_every = 1, so
/configs/phi holds the configuration after sweep 1, 2, ... (/configs/sweep). The colour scale is the
image's [min, max] for every panel (sampled values outside it saturate). Each panel's title gives the
sweep and the correlation coefficient with the image. Serial: h5py and NumPy, never imports mpi4py.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def load_sweeps(path, sweeps, replica: int = 0) -> list:
    import h5py
    with h5py.File(path, "r") as f:
        if "configs/phi" not in f:
            raise ValueError(f"{path}: no /configs/phi (run pqml sample with output.save_every > 0)")
        have = f["configs/sweep"][()]
        phi = f["configs/phi"]
        if not 0 <= replica < phi.shape[1]:
            raise ValueError(f"{path}: replica {replica} out of range (file has {phi.shape[1]})")
        out = []
        for s in sweeps:
            idx = np.flatnonzero(have == s)
            if not idx.size:
                raise ValueError(f"{path}: no configuration saved after sweep {s} (saved: {have[:5].tolist()}"
                                 f"{' ...' if have.size > 5 else ''}; use n_therm = 0, save_every = 1)")
            out.append(np.asarray(phi[idx[0], replica]))
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Fig. 9: original image and configurations of the learned MRF after "
                                            "the given numbers of sweeps.")
    p.add_argument("--image", required=True, metavar="DATA.npy", help="the training image (.npy, 2D)")
    p.add_argument("--samples", required=True, metavar="SAMPLE.h5", help="pqml sample file (save_every = 1)")
    p.add_argument("--sweeps", type=int, nargs="+", default=[1, 10, 50], help="sweeps to show (default 1 10 50)")
    p.add_argument("--replica", type=int, default=0, help="replica of the sample file (default 0)")
    p.add_argument("--out", required=True, metavar="PNG", help="output PNG")
    args = p.parse_args(argv)
    try:
        img = np.asarray(np.load(args.image, allow_pickle=False), dtype=np.float64)
        img = img.reshape(img.shape[-2:]) if img.ndim > 2 and np.prod(img.shape[:-2]) == 1 else img
        if img.ndim != 2:
            raise ValueError(f"{args.image}: expected one 2D image, got shape {img.shape}")
        confs = load_sweeps(args.samples, args.sweeps, args.replica)
        if confs[0].shape != img.shape:
            raise ValueError(f"{args.samples}: configurations of shape {confs[0].shape}, image {img.shape}")
    except (ValueError, OSError) as e:
        print(f"plot_fig9.py: error: {e}", file=sys.stderr)
        return 2

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    vmin, vmax = float(img.min()), float(img.max())
    n = 1 + len(confs)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n + 0.6, 3.0), constrained_layout=True)
    panels = [("original image", img)] + [
        (f"after {s} sweep{'s' if s != 1 else ''}\ncorr {np.corrcoef(c.ravel(), img.ravel())[0, 1]:+.2f}", c)
        for s, c in zip(args.sweeps, confs)]
    for ax, (title, x) in zip(axes, panels):
        im = ax.imshow(x, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize="medium")
        ax.set_xlabel("$x_1$")
        ax.set_ylabel("$x_0$")
    fig.colorbar(im, ax=axes, shrink=0.8, label=r"$\phi_i$")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    print(f"wrote {out}")
    for s, c in zip(args.sweeps, confs):
        print(f"sweep {s}: correlation with the image {np.corrcoef(c.ravel(), img.ravel())[0, 1]:+.3f}, "
              f"rms difference {np.sqrt(np.mean((c - img) ** 2)):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
